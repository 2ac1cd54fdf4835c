/* The hand-written protobuf wire helpers, in one place: varints for the direct reader and
 * writer (event_reader.c, event_writer.c), and the depth check every reply passes before
 * protobuf-c unpacks it (messages.c, event_reader.c). */
#ifndef LH_PBWIRE_H
#define LH_PBWIRE_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

/* Messages nested deeper than this are refused (lh_pb_depth_ok). */
#define LH_PB_MAX_DEPTH 128

/* Read a varint at *pp (not past end) into *out; returns how many bytes it took (*pp moves
 * past them), or 0 when the bytes end first or it runs past 10 bytes. */
static inline size_t lh_pb_read_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
  const uint8_t *p = *pp;
  uint64_t v = 0;
  for (int shift = 0; p < end && shift < 64; shift += 7) {
    uint8_t b = *p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      size_t n = (size_t)(p - *pp);
      *pp = p;
      *out = v;
      return n;
    }
  }
  return 0;
}

static inline size_t lh_pb_varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) { v >>= 7; n++; }
  return n;
}

/* Write v as a varint at p (room for lh_pb_varint_size(v) bytes); returns the end. */
static inline uint8_t *lh_pb_put_varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) { *p++ = (uint8_t)(v | 0x80); v >>= 7; }
  *p++ = (uint8_t)v;
  return p;
}

/* 1 if p[0..len) is well-formed wire format for d with message nesting no deeper than
 * LH_PB_MAX_DEPTH, counting from `depth` (1 for a whole reply); 0 otherwise. */
int lh_pb_depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, int depth);

#endif
