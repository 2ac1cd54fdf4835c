/* The PutExternalEventRequest written straight to wire bytes.
 *
 * The request is read from its Lua table into protobuf-c structs (messages.c does every
 * check there); only the last step, packing, is done here instead of by protobuf-c's
 * descriptor-driven packer, which walks each message twice (size, then bytes) through its
 * generic field tables: about a quarter of the encoding's cost per call (bench/). The bytes
 * are the ones protobuf-c writes, field by field (numbers ascending; proto3 strings and
 * messages only when set; oneof members whenever their case is set), and
 * spec/event_writer_spec.lua compares the two on generated requests. Content kinds other
 * than the scalar and JSON ones, and WfRunId chains deeper than a few parents, are left to
 * protobuf-c. */
#include <string.h>
#include "event_writer.h"
#include "pbwire.h"

/* WfRunId parent chains deeper than this are packed by protobuf-c (sizes are recomputed per
 * level here, which is fine for the usual one or two levels). */
#define WRITE_MAX_WF_DEPTH 8

/* Every field number here is below 16: its key is one byte. */
static size_t len_field_size(size_t body) { return 1 + lh_pb_varint_size(body) + body; }

/* A proto3 string field: written only when non-empty. */
static size_t opt_str_size(const char *s) {
  size_t n = s ? strlen(s) : 0;
  return n ? len_field_size(n) : 0;
}

static uint8_t *put_bytes(uint8_t *p, unsigned field, const void *s, size_t n) {
  *p++ = (uint8_t)(field << 3 | 2);
  p = lh_pb_put_varint(p, n);
  if (n) memcpy(p, s, n);
  return p + n;
}

static uint8_t *put_opt_str(uint8_t *p, unsigned field, const char *s) {
  size_t n = s ? strlen(s) : 0;
  return n ? put_bytes(p, field, s, n) : p;
}

static int wf_depth_ok(const Littlehorse__WfRunId *w) {
  int d = 0;
  for (; w; w = w->parent_wf_run_id)
    if (++d > WRITE_MAX_WF_DEPTH) return 0;
  return 1;
}

static size_t wf_body_size(const Littlehorse__WfRunId *w) {
  size_t n = opt_str_size(w->id);
  if (w->parent_wf_run_id) n += len_field_size(wf_body_size(w->parent_wf_run_id));
  return n;
}

/* w as field `field`, its body size already known (`body`, from wf_body_size). */
static uint8_t *put_wf(uint8_t *p, unsigned field, const Littlehorse__WfRunId *w, size_t body) {
  *p++ = (uint8_t)(field << 3 | 2);
  p = lh_pb_put_varint(p, body);
  p = put_opt_str(p, 1, w->id);
  if (w->parent_wf_run_id) p = put_wf(p, 2, w->parent_wf_run_id, wf_body_size(w->parent_wf_run_id));
  return p;
}

/* How a VariableValue is written, worked out once for sizing and writing: its member is
 * either length-delimited (field, data, len: the JSON, string and bytes kinds) or a scalar
 * (field 0). */
typedef struct {
  int ok;            /* 0: a kind left to protobuf-c */
  unsigned field;    /* the length-delimited member's field number, or 0 */
  const void *data;
  size_t len;
  int raw;           /* data is what follows the key (length included): an unknown field */
  size_t body;       /* the VariableValue's body size */
} value_plan;

static value_plan plan_value(const Littlehorse__VariableValue *v) {
  value_plan vp = { 1, 0, NULL, 0, 0, 0 };
  if (v->base.n_unknown_fields) {
    /* A `str` with NUL bytes (set_str in value.c): the member unset, one length-delimited
     * unknown field in its place, whose data holds the length and the bytes. */
    const ProtobufCMessageUnknownField *u = v->base.unknown_fields;
    if (v->value_case != LITTLEHORSE__VARIABLE_VALUE__VALUE__NOT_SET || v->base.n_unknown_fields != 1 ||
        u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED || u->tag == 0 || u->tag >= 16) {
      vp.ok = 0;
      return vp;
    }
    vp.field = u->tag;
    vp.data = u->data;
    vp.len = u->len;
    vp.raw = 1;
    vp.body = 1 + vp.len;
    return vp;
  }
  switch (v->value_case) {
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_JSON_OBJ: vp.field = 2; vp.data = v->json_obj; break;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_JSON_ARR: vp.field = 3; vp.data = v->json_arr; break;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_STR: vp.field = 6; vp.data = v->str; break;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_BYTES:
    vp.field = 8;
    vp.data = v->bytes.data;
    vp.len = v->bytes.len;
    vp.body = len_field_size(vp.len);
    return vp;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_DOUBLE: vp.body = 1 + 8; return vp;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_BOOL: vp.body = 1 + 1; return vp;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_INT: vp.body = 1 + lh_pb_varint_size((uint64_t)v->int_); return vp;
  default: vp.ok = 0; return vp;
  }
  vp.len = vp.data ? strlen(vp.data) : 0; /* the NUL-terminated kinds */
  vp.body = len_field_size(vp.len);
  return vp;
}

static uint8_t *put_value(uint8_t *p, unsigned field, const Littlehorse__VariableValue *v, const value_plan *vp) {
  *p++ = (uint8_t)(field << 3 | 2);
  p = lh_pb_put_varint(p, vp->body);
  if (vp->raw) {
    *p++ = (uint8_t)(vp->field << 3 | 2);
    memcpy(p, vp->data, vp->len);
    return p + vp->len;
  }
  if (vp->field) return put_bytes(p, vp->field, vp->data, vp->len);
  switch (v->value_case) {
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_DOUBLE: {
    uint64_t bits;
    memcpy(&bits, &v->double_, 8);
    *p++ = 4 << 3 | 1;
    for (int i = 0; i < 8; i++) *p++ = (uint8_t)(bits >> (8 * i)); /* little-endian, as the wire */
    return p;
  }
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_BOOL:
    *p++ = 5 << 3;
    *p++ = v->bool_ ? 1 : 0;
    return p;
  case LITTLEHORSE__VARIABLE_VALUE__VALUE_INT:
    *p++ = 7 << 3;
    return lh_pb_put_varint(p, (uint64_t)v->int_);
  default:
    return p; /* not reached: plan_value refused it */
  }
}

int lh_write_put_external_event(const Littlehorse__PutExternalEventRequest *r, lh_buf *out) {
  if (!r->wf_run_id || !r->external_event_def_id || !wf_depth_ok(r->wf_run_id)) return 0;
  value_plan vp = { 1, 0, NULL, 0, 0, 0 };
  if (r->content && !(vp = plan_value(r->content)).ok) return 0;
  int has_guid = r->_guid_case == LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST___GUID_GUID;
  int has_thread = r->_thread_run_number_case == LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST___THREAD_RUN_NUMBER_THREAD_RUN_NUMBER;
  int has_node = r->_node_run_position_case == LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST___NODE_RUN_POSITION_NODE_RUN_POSITION;
  size_t wf_body = wf_body_size(r->wf_run_id);
  size_t def_body = opt_str_size(r->external_event_def_id->name);
  size_t n = len_field_size(wf_body) + len_field_size(def_body);
  size_t guid_len = has_guid && r->guid ? strlen(r->guid) : 0;
  if (has_guid) n += len_field_size(guid_len);
  if (r->content) n += len_field_size(vp.body);
  /* int32: negative values go out sign-extended to 64 bits, as protobuf-c writes them */
  if (has_thread) n += 1 + lh_pb_varint_size((uint64_t)(int64_t)r->thread_run_number);
  if (has_node) n += 1 + lh_pb_varint_size((uint64_t)(int64_t)r->node_run_position);

  lh_buf_reset(out);
  if (!lh_buf_reserve(out, n ? n : 1)) return -1;
  uint8_t *start = (uint8_t *)out->data, *p = start;
  p = put_wf(p, 1, r->wf_run_id, wf_body);
  *p++ = 2 << 3 | 2;
  p = lh_pb_put_varint(p, def_body);
  p = put_opt_str(p, 1, r->external_event_def_id->name);
  if (has_guid) p = put_bytes(p, 3, r->guid, guid_len);
  if (r->content) p = put_value(p, 5, r->content, &vp);
  if (has_thread) { *p++ = 6 << 3; p = lh_pb_put_varint(p, (uint64_t)(int64_t)r->thread_run_number); }
  if (has_node) { *p++ = 7 << 3; p = lh_pb_put_varint(p, (uint64_t)(int64_t)r->node_run_position); }
  out->len = (size_t)(p - start);
  return 1;
}
