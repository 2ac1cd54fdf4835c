/* The protobuf wire checks that need descriptors (see pbwire.h). */
#include "pbwire.h"

/* protobuf-c unpacks nested messages by recursion with no depth limit, so a reply of a few
 * hundred KB of nested VariableValue arrays (from a broken or hostile server) overflows the C
 * stack inside protobuf_c_message_unpack. Before unpacking, walk the wire bytes against the
 * descriptors (recursion bounded by the limit) and refuse anything nested deeper than
 * LH_PB_MAX_DEPTH messages. A real server parses what it stores with protobuf-java, whose
 * default recursion limit is 100, so nothing it sends back is deeper; 128 leaves room for the
 * reply's envelope. Bytes that are not valid wire format are refused too (unpack would fail). */
int lh_pb_depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, int depth) {
  if (depth > LH_PB_MAX_DEPTH) return 0;
  const uint8_t *end = p + len;
  while (p < end) {
    uint64_t key, v;
    if (!lh_pb_read_varint(&p, end, &key)) return 0;
    switch (key & 7) {
    case 0: if (!lh_pb_read_varint(&p, end, &v)) return 0; break;
    case 1: if (end - p < 8) return 0; p += 8; break;
    case 5: if (end - p < 4) return 0; p += 4; break;
    case 2: {
      if (!lh_pb_read_varint(&p, end, &v) || v > (uint64_t)(end - p)) return 0;
      const ProtobufCFieldDescriptor *f =
          (key >> 3) <= 0x1fffffff ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3)) : NULL;
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
          !lh_pb_depth_ok((const ProtobufCMessageDescriptor *)f->descriptor, p, (size_t)v, depth + 1))
        return 0;
      p += v;
      break;
    }
    default: return 0; /* groups (3, 4) and 6, 7: protobuf-c refuses them as well */
    }
  }
  return 1;
}
