#include <math.h>
#include <stdio.h>
#include <string.h>
#include "request.h"
#include "keep.h"
#include "value.h"

void *lh_req_alloc(lua_State *L, lh_context *c, size_t n) {
  void *p = lh_arena_alloc(&c->arena, n);
  if (!p) luaL_error(L, "littlehorse: out of memory");
  memset(p, 0, n);
  return p;
}

void lh_req_pack(lua_State *L, lh_context *c, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  lh_buf_reset(&c->wire);
  if (!lh_buf_reserve(&c->wire, n ? n : 1)) luaL_error(L, "littlehorse: out of memory");
  c->wire.len = protobuf_c_message_pack(m, (uint8_t *)c->wire.data);
}

void lh_req_table(lua_State *L, int idx, const lh_path *p, const char *what) {
  if (!lua_istable(L, idx)) lh_path_error(L, p, "expected %s table, got %s", what, luaL_typename(L, idx));
}

int lh_req_field(lua_State *L, const lh_path *root, const char *const names[], const char *what) {
  if (lua_type(L, -2) != LUA_TSTRING)
    return lh_path_error(L, root, "fields of %s are named by strings, got a %s key", what, luaL_typename(L, -2));
  size_t n;
  const char *k = lua_tolstring(L, -2, &n);
  for (int i = 0; names[i]; i++)
    if (strcmp(k, names[i]) == 0) return i;
  lh_path p = lh_path_field(root, k, n);
  const char *near = lh_nearest(k, n, names);
  if (near) return lh_path_error(L, &p, "unknown field of %s (did you mean %s?)", what, near);
  return lh_path_error(L, &p, "unknown field of %s", what);
}

int64_t lh_req_integer(lua_State *L, int idx, const lh_path *p, int64_t lo, int64_t hi) {
  int ok = 0;
  lua_Integer v = 0;
  if (lua_type(L, idx) == LUA_TNUMBER) {
#if LUA_VERSION_NUM >= 503
    v = lua_tointegerx(L, idx, &ok);
#else
    lua_Number d = lua_tonumber(L, idx);
    ok = d == floor(d) && d >= -9007199254740992.0 && d <= 9007199254740992.0;
    v = (lua_Integer)d;
#endif
  }
  if (!ok)
    lh_path_error(L, p, "expected an integer, got %s",
                  lua_type(L, idx) == LUA_TNUMBER ? "a float with a fraction" : luaL_typename(L, idx));
  if ((int64_t)v < lo || (int64_t)v > hi) {
    char msg[96]; /* lua_pushfstring has no 64-bit integer format before 5.3 */
    snprintf(msg, sizeof msg, "%lld is out of range %lld..%lld", (long long)v, (long long)lo, (long long)hi);
    lh_path_error(L, p, "%s", msg);
  }
  return (int64_t)v;
}

int lh_req_boolean(lua_State *L, int idx, const lh_path *p) {
  if (!lua_isboolean(L, idx)) lh_path_error(L, p, "expected a boolean, got %s", luaL_typename(L, idx));
  return lua_toboolean(L, idx);
}

Littlehorse__ExternalEventDefId *lh_req_def_id(lua_State *L, lh_context *c, const char *name) {
  Littlehorse__ExternalEventDefId *d = lh_req_alloc(L, c, sizeof *d);
  Littlehorse__ExternalEventDefId init = LITTLEHORSE__EXTERNAL_EVENT_DEF_ID__INIT;
  *d = init;
  d->name = (char *)name;
  return d;
}

const char *lh_req_def_id_table(lua_State *L, lh_context *c, int idx, const lh_path *p) {
  static const char *const names[] = { "name", NULL };
  idx = lua_absindex(L, idx);
  lh_req_table(L, idx, p, "an ExternalEventDefId");
  const char *name = NULL;
  lua_checkstack(L, 3);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lh_req_field(L, p, names, "an ExternalEventDefId");
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

Google__Protobuf__Timestamp *lh_req_timestamp(lua_State *L, lh_context *c, int idx, const lh_path *p) {
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx))
    lh_path_error(L, p, "expected a timestamp (lh.timestamp(...), or { seconds =, nanos = }), got %s",
                  luaL_typename(L, idx));
  Google__Protobuf__Timestamp *ts = lh_req_alloc(L, c, sizeof *ts);
  Google__Protobuf__Timestamp init = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  *ts = init;
  lua_checkstack(L, 2);
  lh_keep_field(L, c, idx, LH_KEY_SECONDS);
  lh_path ps = lh_path_field(p, "seconds", 7);
  /* 0001-01-01 .. 9999-12-31, the range RFC 3339 and google.protobuf.Timestamp allow */
  ts->seconds = lh_req_integer(L, -1, &ps, -62135596800LL, 253402300799LL);
  lh_keep_field(L, c, idx, LH_KEY_NANOS);
  lh_path pn = lh_path_field(p, "nanos", 5);
  ts->nanos = lua_isnil(L, -1) ? 0 : (int32_t)lh_req_integer(L, -1, &pn, 0, 999999999);
  lua_pop(L, 2);
  return ts;
}

const uint8_t *lh_req_bookmark(lua_State *L, lh_context *c, int idx, const lh_path *p, size_t *len) {
  if (lua_type(L, idx) != LUA_TSTRING)
    lh_path_error(L, p, "expected the bookmark of a page (a string), got %s", luaL_typename(L, idx));
  return (const uint8_t *)lh_keep_string(L, c, idx, len);
}

int32_t lh_req_limit(lua_State *L, int idx, const lh_path *p) {
  if (lua_type(L, idx) == LUA_TNUMBER && lua_tonumber(L, idx) < 1)
    lh_path_error(L, p, "must be at least 1 (the server answers a limit of 0 or less with an empty "
                  "page that has a bookmark: following it would never end)");
  return (int32_t)lh_req_integer(L, idx, p, 1, INT32_MAX);
}

void lh_req_def_field(lua_State *L, lh_context *c, int idx, const lh_path *p, int is_id, const char **name) {
  if (*name) lh_path_error(L, p, "give external_event_def_name or external_event_def_id, not both");
  *name = is_id ? lh_req_def_id_table(L, c, idx, p) : lh_text_field(L, c, idx, p, 1);
}

void lh_req_def_required(lua_State *L, const lh_path *root, const char *name) {
  if (name) return;
  lh_path p = lh_path_field(root, "external_event_def_name", 23);
  lh_path_error(L, &p, "required (or external_event_def_id = { name = ... })");
}
