/* The ExternalEvent reply, read straight from its wire bytes into Lua tables.
 *
 * Every call decodes one of these, and going through protobuf-c (a descriptor-driven unpack
 * into arena structs, after a depth-checking pre-scan of the same bytes) costs more than the
 * tables themselves (bench/: ~3.5k of ~17k instructions per reply). This reader walks the
 * bytes once, for the canonical shape a server sends: each field at most once, known field
 * numbers with their own wire types, shallow WfRunId nesting. Anything
 * else (repeated or unknown fields, which protobuf merges or keeps; deep nesting; malformed
 * bytes) is left to the generic decoder in messages.c, so both give the same table for every
 * input they share (spec/event_reader_spec.lua compares them), and the generic one keeps
 * deciding what is refused. Strings are pushed whole, NUL bytes included, as the generic
 * decoder pushes them. The content (a VariableValue, with 13 shapes) is read here too when it
 * is JSON text (json_obj or json_arr as its only field, the usual event content); any other
 * shape is unpacked by protobuf-c. */
#include <string.h>
#include "event_reader.h"
#include "keep.h"
#include "pbwire.h"
#include "timestamp.h"
#include "value.h"
#include "type_definition.pb-c.h"

/* WfRunId.parent_wf_run_id chains deeper than this go to the generic decoder. */
#define FAST_MAX_WF_DEPTH 16

typedef struct span {
  const uint8_t *p;
  size_t n;
  int set;
} span;

/* A varint, refusing one whose tenth byte carries bits past 64 (leave those to protobuf-c). */
static int varint(const uint8_t **pp, const uint8_t *end, uint64_t *out) {
  const uint8_t *start = *pp;
  size_t n = lh_pb_read_varint(pp, end, out);
  return n && !(n == 10 && start[9] > 1);
}

/* One field key; 0 at the end of the bytes or on anything but a well-formed key. */
static int next_key(const uint8_t **pp, const uint8_t *end, unsigned *field, unsigned *wire) {
  uint64_t k;
  if (*pp >= end || !varint(pp, end, &k) || (k >> 3) == 0 || (k >> 3) > 0x1fffffff) return 0;
  *field = (unsigned)(k >> 3);
  *wire = (unsigned)(k & 7);
  return 1;
}

/* A length-delimited field's bytes, once: a second occurrence means "merge" in protobuf. */
static int take_span(const uint8_t **pp, const uint8_t *end, span *s) {
  uint64_t n;
  if (s->set || !varint(pp, end, &n) || n > (uint64_t)(end - *pp)) return 0;
  s->p = *pp;
  s->n = (size_t)n;
  s->set = 1;
  *pp += n;
  return 1;
}

static int take_varint(const uint8_t **pp, const uint8_t *end, int *seen, uint64_t *v) {
  if (*seen || !varint(pp, end, v)) return 0;
  *seen = 1;
  return 1;
}

static void push_text(lua_State *L, const span *s) {
  if (s->set) lua_pushlstring(L, (const char *)s->p, s->n);
  else lua_pushliteral(L, "");
}

/* WfRunId { string id = 1; WfRunId parent_wf_run_id = 2; }: check only (no pushing). */
static int wf_run_id_ok(const uint8_t *p, size_t n, int depth) {
  const uint8_t *end = p + n;
  span id = { 0 }, parent = { 0 };
  unsigned f, w;
  if (depth > FAST_MAX_WF_DEPTH) return 0;
  while (p < end) {
    if (!next_key(&p, end, &f, &w) || w != 2) return 0;
    if (f == 1) { if (!take_span(&p, end, &id)) return 0; }
    else if (f == 2) { if (!take_span(&p, end, &parent)) return 0; }
    else return 0;
  }
  return !parent.set || wf_run_id_ok(parent.p, parent.n, depth + 1);
}

/* Push a WfRunId already checked by wf_run_id_ok (the same table lh_wf_run_id_push makes); its
 * keys come from the names table at stack index names (lh_keep_names). */
static void push_wf_run_id(lua_State *L, int names, const uint8_t *p, size_t n) {
  const uint8_t *end = p + n;
  span id = { 0 }, parent = { 0 };
  unsigned f, w;
  while (p < end && next_key(&p, end, &f, &w)) take_span(&p, end, f == 1 ? &id : &parent);
  lua_checkstack(L, 4);
  lua_createtable(L, 0, 2);
  lua_rawgeti(L, names, LH_KEY_ID);
  push_text(L, &id);
  lua_rawset(L, -3);
  if (parent.set) {
    lua_rawgeti(L, names, LH_KEY_PARENT_WF_RUN_ID);
    push_wf_run_id(L, names, parent.p, parent.n);
    lua_rawset(L, -3);
  }
}

typedef struct event_id {
  span wf_run_id, def_id, guid, def_name;
} event_id;

/* ExternalEventId { WfRunId wf_run_id = 1; ExternalEventDefId external_event_def_id = 2;
 * string guid = 3; } with ExternalEventDefId { string name = 1; } */
static int read_event_id(const uint8_t *p, size_t n, event_id *o) {
  const uint8_t *end = p + n;
  unsigned f, w;
  memset(o, 0, sizeof *o);
  while (p < end) {
    if (!next_key(&p, end, &f, &w) || w != 2) return 0;
    span *s = f == 1 ? &o->wf_run_id : f == 2 ? &o->def_id : f == 3 ? &o->guid : NULL;
    if (!s || !take_span(&p, end, s)) return 0;
  }
  if (o->def_id.set) {
    const uint8_t *q = o->def_id.p, *qend = q + o->def_id.n;
    while (q < qend) {
      if (!next_key(&q, qend, &f, &w) || w != 2 || f != 1 || !take_span(&q, qend, &o->def_name)) return 0;
    }
  }
  return !o->wf_run_id.set || wf_run_id_ok(o->wf_run_id.p, o->wf_run_id.n, 1);
}

/* google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2; } */
static int read_timestamp(const span *s, int64_t *seconds, int32_t *nanos) {
  const uint8_t *p = s->p, *end = p + s->n;
  unsigned f, w;
  int seen_s = 0, seen_n = 0;
  uint64_t v;
  *seconds = 0;
  *nanos = 0;
  while (p < end) {
    if (!next_key(&p, end, &f, &w) || w != 0) return 0;
    if (f == 1) { if (!take_varint(&p, end, &seen_s, &v)) return 0; *seconds = (int64_t)v; }
    else if (f == 2) { if (!take_varint(&p, end, &seen_n, &v)) return 0; *nanos = (int32_t)(uint32_t)v; }
    else return 0;
  }
  return 1;
}

/* A VariableValue whose only field is json_obj (2) or json_arr (3): its text into *text,
 * and the kind. Anything else (other members, several fields, unknown ones): 0. */
static int read_json_content(const span *s, span *text, const char **kind, int *kind_key) {
  const uint8_t *p = s->p, *end = p + s->n;
  unsigned f, w;
  if (!next_key(&p, end, &f, &w) || w != 2 || (f != 2 && f != 3) || !take_span(&p, end, text) || p != end)
    return 0;
  *kind = f == 2 ? "JSON_OBJ" : "JSON_ARR";
  *kind_key = f == 2 ? LH_KEY_JSON_OBJ : LH_KEY_JSON_ARR;
  return 1;
}

int lh_read_external_event(lua_State *L, const uint8_t *bytes, size_t len, lh_context *c) {
  const uint8_t *p = bytes, *end = bytes + len;
  span id = { 0 }, created = { 0 }, content = { 0 };
  int seen_thread = 0, seen_node = 0, seen_claimed = 0;
  uint64_t thread = 0, node = 0, claimed = 0;
  unsigned f, w;
  while (p < end) {
    if (!next_key(&p, end, &f, &w)) return LH_READ_GENERIC;
    int ok;
    switch (f) {
    case 1: ok = w == 2 && take_span(&p, end, &id); break;
    case 2: ok = w == 2 && take_span(&p, end, &created); break;
    case 3: ok = w == 2 && take_span(&p, end, &content); break;
    case 4: ok = w == 0 && take_varint(&p, end, &seen_thread, &thread); break;
    case 5: ok = w == 0 && take_varint(&p, end, &seen_node, &node); break;
    case 6: ok = w == 0 && take_varint(&p, end, &seen_claimed, &claimed); break;
    default: ok = 0;
    }
    if (!ok) return LH_READ_GENERIC;
  }
  event_id eid;
  int64_t seconds = 0;
  int32_t nanos = 0;
  if (id.set && !read_event_id(id.p, id.n, &eid)) return LH_READ_GENERIC;
  if (created.set && !read_timestamp(&created, &seconds, &nanos)) return LH_READ_GENERIC;

  /* JSON content is read here; any other goes through protobuf-c, with its depth checked
   * first (see messages.c). */
  Littlehorse__VariableValue *vv = NULL;
  span json = { 0 };
  const char *json_kind = NULL;
  int json_kind_key = 0;
  if (content.set && !read_json_content(&content, &json, &json_kind, &json_kind_key)) {
    if (!lh_pb_depth_ok(&littlehorse__variable_value__descriptor, content.p, content.n, 2))
      return LH_READ_GENERIC;
    lh_arena_reset(&c->arena);
    vv = littlehorse__variable_value__unpack(&c->arena.pb, content.n, content.p);
    if (!vv) return LH_READ_GENERIC;
  }

  /* Everything is known to be well-formed: build the same tables as lh_push_external_event
   * (fresh tables without metatables: rawset is what setfield would do). */
  lua_checkstack(L, 10);
  int names = lh_keep_names(L);
  lua_createtable(L, 0, 8);
  if (id.set) {
    lua_rawgeti(L, names, LH_KEY_ID);
    lua_createtable(L, 0, 3);
    if (eid.wf_run_id.set) {
      lua_rawgeti(L, names, LH_KEY_WF_RUN_ID);
      push_wf_run_id(L, names, eid.wf_run_id.p, eid.wf_run_id.n);
      lua_rawset(L, -3);
    }
    lua_rawgeti(L, names, LH_KEY_EXTERNAL_EVENT_DEF_ID);
    lua_createtable(L, 0, 1);
    lua_rawgeti(L, names, LH_KEY_NAME);
    push_text(L, &eid.def_name);
    lua_rawset(L, -3);
    lua_rawset(L, -3);
    lua_rawgeti(L, names, LH_KEY_GUID);
    push_text(L, &eid.guid);
    lua_rawset(L, -3);
    lua_rawset(L, -3);
  }
  if (created.set) {
    lua_rawgeti(L, names, LH_KEY_CREATED_AT);
    lh_timestamp_push_names(L, seconds, nanos, names);
    lua_rawset(L, -3);
  }
  if (json_kind) {
    lua_rawgeti(L, names, LH_KEY_CONTENT);
    lh_value_push_json(L, (const char *)json.p, json.n, json_kind);
    lua_rawset(L, -3);
    lua_rawgeti(L, names, LH_KEY_CONTENT_TYPE);
    lua_rawgeti(L, names, json_kind_key);
    lua_rawset(L, -3);
  } else {
    const char *kind = lh_value_kind(vv);
    if (kind) {
      lua_rawgeti(L, names, LH_KEY_CONTENT);
      lh_value_push(L, &c->arena, vv, 0);
      lua_rawset(L, -3);
      lua_rawgeti(L, names, LH_KEY_CONTENT_TYPE);
      lua_pushstring(L, kind);
      lua_rawset(L, -3);
    }
  }
  lua_rawgeti(L, names, LH_KEY_CLAIMED);
  lua_pushboolean(L, claimed != 0);
  lua_rawset(L, -3);
  if (seen_thread) {
    lua_rawgeti(L, names, LH_KEY_THREAD_RUN_NUMBER);
    lua_pushinteger(L, (int32_t)(uint32_t)thread);
    lua_rawset(L, -3);
  }
  if (seen_node) {
    lua_rawgeti(L, names, LH_KEY_NODE_RUN_POSITION);
    lua_pushinteger(L, (int32_t)(uint32_t)node);
    lua_rawset(L, -3);
  }
  lua_remove(L, names);
  return LH_READ_DONE;
}
