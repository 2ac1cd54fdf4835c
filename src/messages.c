#include <string.h>
#include "messages.h"
#include "event_reader.h"
#include "event_writer.h"
#include "keep.h"
#include "pbwire.h"
#include "path.h"
#include "reply.h"
#include "int64.h"
#include "value.h"
#include "timestamp.h"
#include "service.pb-c.h"

static void *arena_new(lua_State *L, lh_context *c, size_t n) {
  void *p = lh_arena_alloc(&c->arena, n);
  if (!p) luaL_error(L, "littlehorse: out of memory");
  return p;
}

static void pack(lua_State *L, lh_context *c, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  lh_buf_reset(&c->wire);
  if (!lh_buf_reserve(&c->wire, n ? n : 1)) luaL_error(L, "littlehorse: out of memory");
  c->wire.len = protobuf_c_message_pack(m, (uint8_t *)c->wire.data);
}

/* Look up which of `names` the key at -2 is; raise for anything else. */
static int field_index(lua_State *L, const lh_path *root, const char *const names[], const char *what) {
  if (lua_type(L, -2) == LUA_TSTRING) {
    size_t kn;
    const char *k = lua_tolstring(L, -2, &kn);
    /* the first byte rules out most names without a call (this runs for every field) */
    for (int i = 0; names[i]; i++)
      if (names[i][0] == k[0] && strcmp(k, names[i]) == 0) return i;
    lh_path p = lh_path_field(root, k, kn);
    const char *near = lh_nearest(k, kn, names);
    if (near) return lh_path_error(L, &p, "unknown field of %s (did you mean %s?)", what, near);
    return lh_path_error(L, &p, "unknown field of %s", what);
  }
  return lh_path_error(L, root, "%s fields are named by strings, got a %s key", what, luaL_typename(L, -2));
}

static void check_table(lua_State *L, int idx, const lh_path *root, const char *what) {
  if (!lua_istable(L, idx))
    lh_path_error(L, root, "expected %s %s table, got %s", strchr("AEIOU", what[0]) ? "an" : "a", what,
                  luaL_typename(L, idx));
}

static int32_t check_int32(lua_State *L, int idx, const lh_path *p) {
  int64_t v = 0;
  if (!lh_int64_get(L, idx, &v, p, 0)) lh_path_error(L, p, "expected an integer, got %s", lh_int64_not_integer(L, idx));
  if (v < 0 || v > INT32_MAX) lh_path_error(L, p, "must be between 0 and 2147483647");
  return (int32_t)v;
}

/* A guid becomes part of the server's key `<wf>/<def>/<guid>`: refuse what would break it. */
static char *check_guid(lua_State *L, lh_context *c, int idx, const lh_path *p) {
  size_t n;
  const char *g = lh_check_text(L, idx, p, 1, &n);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)g[i];
    if (ch == '/') lh_path_error(L, p, "must not contain '/' (the server keys events as wf/def/guid)");
    if (ch < 0x20 || ch == 0x7f) lh_path_error(L, p, "must not contain control characters");
  }
  return (char *)lh_keep_bytes(L, c, idx, g, n);
}

static Littlehorse__ExternalEventDefId *def_id(lua_State *L, lh_context *c, const char *name) {
  Littlehorse__ExternalEventDefId *d = arena_new(L, c, sizeof *d);
  Littlehorse__ExternalEventDefId init = LITTLEHORSE__EXTERNAL_EVENT_DEF_ID__INIT;
  *d = init;
  d->name = (char *)name;
  return d;
}

/* external_event_def_id = { name = "..." } */
static const char *def_id_table(lua_State *L, lh_context *c, int idx, const lh_path *p) {
  static const char *const names[] = { "name", NULL };
  check_table(L, idx, p, "ExternalEventDefId");
  const char *name = NULL;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    field_index(L, p, names, "an ExternalEventDefId");
    lh_path pn = lh_path_field(p, "name", 4);
    name = lh_text_field(L, c, lua_gettop(L), &pn, 1);
    lua_pop(L, 1);
  }
  if (!name) {
    lh_path pn = lh_path_field(p, "name", 4);
    lh_path_error(L, &pn, "required");
  }
  return name;
}

/* The common shape of PutExternalEventRequest and ExternalEventId. */
enum { F_WF_RUN_ID, F_DEF_NAME, F_DEF_ID, F_GUID, F_CONTENT, F_THREAD, F_NODE };
static const char *const event_fields[] = {
  "wf_run_id", "external_event_def_name", "external_event_def_id", "guid", "content",
  "thread_run_number", "node_run_position", NULL,
};

typedef struct event_fields_out {
  Littlehorse__WfRunId *wf_run_id;
  const char *def_name;
  char *guid;
  int content_idx;    /* the stack slot holding the content (converted after the ids) */
  int has_thread, has_node;
  int32_t thread, node;
} event_fields_out;

static void read_event_fields(lua_State *L, int idx, const lh_path *root, lh_context *c,
                              int nfields, const char *what, event_fields_out *o) {
  memset(o, 0, sizeof *o);
  lua_checkstack(L, 6);
  lua_pushnil(L); /* the content, if any */
  int content = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int f = field_index(L, root, event_fields, what);
    if (f >= nfields) {
      lh_path p = lh_path_field(root, event_fields[f], strlen(event_fields[f]));
      lh_path_error(L, &p, "unknown field of %s", what);
    }
    lh_path p = lh_path_field(root, event_fields[f], strlen(event_fields[f]));
    int v = lua_gettop(L);
    switch (f) {
    case F_WF_RUN_ID: o->wf_run_id = lh_wf_run_id_to_pb(L, v, c, &p); break;
    case F_DEF_NAME:
      if (o->def_name) lh_path_error(L, &p, "give external_event_def_name or external_event_def_id, not both");
      o->def_name = lh_text_field(L, c, v, &p, 1);
      break;
    case F_DEF_ID:
      if (o->def_name) lh_path_error(L, &p, "give external_event_def_name or external_event_def_id, not both");
      o->def_name = def_id_table(L, c, v, &p);
      break;
    case F_GUID: o->guid = check_guid(L, c, v, &p); break;
    case F_CONTENT: /* converted by the caller, after the ids, in a fixed order */
      lua_pushvalue(L, v);
      lua_replace(L, content);
      o->content_idx = content;
      break;
    case F_THREAD: o->has_thread = 1; o->thread = check_int32(L, v, &p); break;
    case F_NODE: o->has_node = 1; o->node = check_int32(L, v, &p); break;
    }
    lua_pop(L, 1);
  }
  if (!o->wf_run_id) {
    lh_path p = lh_path_field(root, "wf_run_id", 9);
    lh_path_error(L, &p, "required (a string, or { id = ..., parent_wf_run_id = ... })");
  }
  if (!o->def_name) {
    lh_path p = lh_path_field(root, "external_event_def_name", 23);
    lh_path_error(L, &p, "required (or external_event_def_id = { name = ... })");
  }
}

/* Every packer below converts inside lh_keep_begin .. lh_keep_end (keep.h): every byte the
 * packer reads stays reachable until packing ends (kept in the context's arena, or anchored in
 * the conversion's slot), whatever Lua code runs in between. Lua code can run there: a `__gc`
 * finalizer at any allocation (JSON text is decoded, tables encoded), and the caller's code
 * in it may change or empty the request. Tables are read raw, so no metamethod runs. */
void lh_pack_put_external_event(lua_State *L, int idx, const lh_path *rootp, lh_context *c) {
  idx = lua_absindex(L, idx);
  lh_path root = *rootp;
  check_table(L, idx, &root, "PutExternalEvent request");
  lh_keep_begin(L, c);
  event_fields_out o;
  read_event_fields(L, idx, &root, c, F_NODE + 1, "a PutExternalEvent request", &o);
  if (o.has_node && !o.has_thread) {
    lh_path p = lh_path_field(&root, "node_run_position", 17);
    lh_path_error(L, &p, "needs thread_run_number too");
  }
  Littlehorse__PutExternalEventRequest req = LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST__INIT;
  Littlehorse__VariableValue content = LITTLEHORSE__VARIABLE_VALUE__INIT;
  req.wf_run_id = o.wf_run_id;
  req.external_event_def_id = def_id(L, c, o.def_name);
  if (o.guid) {
    req._guid_case = LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST___GUID_GUID;
    req.guid = o.guid;
  }
  if (o.content_idx) {
    lh_path p = lh_path_field(&root, "content", 7);
    lh_value_to_pb(L, o.content_idx, c, &content, &p);
    if (content.value_case != LITTLEHORSE__VARIABLE_VALUE__VALUE__NOT_SET || content.base.n_unknown_fields)
      req.content = &content;
  }
  if (o.has_thread) {
    req._thread_run_number_case = LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST___THREAD_RUN_NUMBER_THREAD_RUN_NUMBER;
    req.thread_run_number = o.thread;
  }
  if (o.has_node) {
    req._node_run_position_case = LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST___NODE_RUN_POSITION_NODE_RUN_POSITION;
    req.node_run_position = o.node;
  }
  int written = c->generic_encode ? 0 : lh_write_put_external_event(&req, &c->wire);
  if (written < 0) luaL_error(L, "littlehorse: out of memory");
  if (!written) pack(L, c, &req.base);
  lh_keep_end(L, c);
}

void lh_pack_external_event_id(lua_State *L, int idx, const lh_path *rootp, lh_context *c) {
  idx = lua_absindex(L, idx);
  lh_path root = *rootp;
  check_table(L, idx, &root, "ExternalEventId");
  lh_keep_begin(L, c);
  event_fields_out o;
  read_event_fields(L, idx, &root, c, F_GUID + 1, "an ExternalEventId", &o);
  if (!o.guid) {
    lh_path p = lh_path_field(&root, "guid", 4);
    lh_path_error(L, &p, "required");
  }
  Littlehorse__ExternalEventId id = LITTLEHORSE__EXTERNAL_EVENT_ID__INIT;
  id.wf_run_id = o.wf_run_id;
  id.external_event_def_id = def_id(L, c, o.def_name);
  id.guid = o.guid;
  pack(L, c, &id.base);
  lh_keep_end(L, c);
}

/* ---- replies ---- */

int lh_push_external_event(lua_State *L, const char *bytes, size_t len, lh_context *c) {
  if (!c->generic_decode && lh_read_external_event(L, (const uint8_t *)bytes, len, c) == LH_READ_DONE) return 1;
  if (!lh_pb_depth_ok(&littlehorse__external_event__descriptor, (const uint8_t *)bytes, len, 1)) return 0;
  lh_arena_reset(&c->arena);
  Littlehorse__ExternalEvent *ev =
      littlehorse__external_event__unpack(&c->arena.pb, len, (const uint8_t *)bytes);
  if (!ev) return 0;
  lh_reply_external_event(L, &c->arena, ev);
  return 1;
}
