#include <string.h>
#include "event_def.h"
#include "keep.h"
#include "reply.h"
#include "request.h"
#include "type_spec.h"
#include "value.h"
#include "service.pb-c.h"

enum { F_NAME, F_SECONDS_AFTER_PUT, F_CONTENT_TYPE, F_CORRELATED };
static const char *const fields[] = { "name", "seconds_after_put", "content_type", "correlated_event_config", NULL };

/* correlated_event_config = true | { ttl_seconds =, delete_after_first_correlation = } */
static Littlehorse__CorrelatedEventConfig *correlated_config(lua_State *L, int idx, lh_context *c, const lh_path *p) {
  static const char *const names[] = { "ttl_seconds", "delete_after_first_correlation", NULL };
  Littlehorse__CorrelatedEventConfig *cfg = lh_req_alloc(L, c, sizeof *cfg);
  Littlehorse__CorrelatedEventConfig init = LITTLEHORSE__CORRELATED_EVENT_CONFIG__INIT;
  *cfg = init;
  if (lua_type(L, idx) == LUA_TBOOLEAN && lua_toboolean(L, idx)) return cfg;
  if (!lua_istable(L, idx))
    lh_path_error(L, p, "expected true or { ttl_seconds =, delete_after_first_correlation = }, got %s",
                  luaL_typename(L, idx));
  lua_checkstack(L, 3);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int f = lh_req_field(L, p, names, "a correlated_event_config");
    lh_path pf = lh_path_field(p, names[f], strlen(names[f]));
    if (f == 0) {
      cfg->_ttl_seconds_case = LITTLEHORSE__CORRELATED_EVENT_CONFIG___TTL_SECONDS_TTL_SECONDS;
      cfg->ttl_seconds = lh_req_integer(L, -1, &pf, 1, INT64_MAX);
    } else {
      cfg->delete_after_first_correlation = lh_req_boolean(L, -1, &pf);
    }
    lua_pop(L, 1);
  }
  return cfg;
}

/* Every packer converts inside lh_keep_begin .. lh_keep_end (keep.h). */
void lh_pack_put_external_event_def(lua_State *L, int idx, const lh_path *root, lh_context *c) {
  idx = lua_absindex(L, idx);
  lh_keep_begin(L, c);
  Littlehorse__PutExternalEventDefRequest req = LITTLEHORSE__PUT_EXTERNAL_EVENT_DEF_REQUEST__INIT;
  Littlehorse__ExternalEventRetentionPolicy policy = LITTLEHORSE__EXTERNAL_EVENT_RETENTION_POLICY__INIT;
  req.retention_policy = &policy; /* upstream SDKs always send one; empty = keep forever */
  if (lua_type(L, idx) == LUA_TSTRING) {
    req.name = (char *)lh_text_field(L, c, idx, root, 1);
  } else {
    lh_req_table(L, idx, root, "a PutExternalEventDef request");
    lua_checkstack(L, 4);
    lua_pushnil(L); /* the content type: converted after the other fields */
    int content_type = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      int f = lh_req_field(L, root, fields, "a PutExternalEventDef request");
      lh_path p = lh_path_field(root, fields[f], strlen(fields[f]));
      int v = lua_gettop(L);
      switch (f) {
      case F_NAME: req.name = (char *)lh_text_field(L, c, v, &p, 1); break;
      case F_SECONDS_AFTER_PUT: {
        lua_Integer s = lua_isinteger(L, v) ? (lua_Integer)lua_tointeger(L, v) : -1;
        if (s <= 0) lh_path_error(L, &p, "expected a positive integer number of seconds");
        policy.ext_evt_gc_policy_case = LITTLEHORSE__EXTERNAL_EVENT_RETENTION_POLICY__EXT_EVT_GC_POLICY_SECONDS_AFTER_PUT;
        policy.seconds_after_put = (int64_t)s;
        break;
      }
      case F_CONTENT_TYPE:
        lua_pushvalue(L, v);
        lua_replace(L, content_type);
        break;
      case F_CORRELATED:
        if (!(lua_type(L, v) == LUA_TBOOLEAN && !lua_toboolean(L, v))) /* false: none */
          req.correlated_event_config = correlated_config(L, v, c, &p);
        break;
      }
      lua_pop(L, 1);
    }
    if (req.name == (char *)protobuf_c_empty_string) {
      lh_path p = lh_path_field(root, "name", 4);
      lh_path_error(L, &p, "required");
    }
    if (!lua_isnil(L, content_type)) {
      lh_path p = lh_path_field(root, "content_type", 12);
      req.content_type = lh_return_type_to_pb(L, content_type, c, &p);
    }
  }
  lh_req_pack(L, c, &req.base);
  lh_keep_end(L, c);
}

static const char *def_name(lua_State *L, int idx, const lh_path *root, lh_context *c) {
  return lua_type(L, idx) == LUA_TSTRING ? lh_text_field(L, c, idx, root, 1) : lh_req_def_id_table(L, c, idx, root);
}

void lh_pack_external_event_def_id(lua_State *L, int idx, const lh_path *root, lh_context *c) {
  idx = lua_absindex(L, idx);
  lh_keep_begin(L, c);
  lh_req_pack(L, c, &lh_req_def_id(L, c, def_name(L, idx, root, c))->base);
  lh_keep_end(L, c);
}

void lh_pack_delete_external_event_def(lua_State *L, int idx, const lh_path *root, lh_context *c) {
  idx = lua_absindex(L, idx);
  lh_keep_begin(L, c);
  Littlehorse__DeleteExternalEventDefRequest req = LITTLEHORSE__DELETE_EXTERNAL_EVENT_DEF_REQUEST__INIT;
  req.id = lh_req_def_id(L, c, def_name(L, idx, root, c));
  lh_req_pack(L, c, &req.base);
  lh_keep_end(L, c);
}

int lh_push_external_event_def(lua_State *L, const char *bytes, size_t len, lh_context *c) {
  Littlehorse__ExternalEventDef *d =
      (Littlehorse__ExternalEventDef *)lh_reply_unpack(c, &littlehorse__external_event_def__descriptor, bytes, len);
  if (!d) return 0;
  const lh_arena *a = &c->arena;
  lua_checkstack(L, 6);
  lua_createtable(L, 0, 5);
  lh_reply_def_id(L, a, d->id);
  lua_setfield(L, -2, "id");
  lh_reply_set_timestamp(L, "created_at", d->created_at);
  if (d->retention_policy && d->retention_policy->ext_evt_gc_policy_case ==
        LITTLEHORSE__EXTERNAL_EVENT_RETENTION_POLICY__EXT_EVT_GC_POLICY_SECONDS_AFTER_PUT) {
    lua_pushinteger(L, (lua_Integer)d->retention_policy->seconds_after_put);
    lua_setfield(L, -2, "seconds_after_put");
  }
  if (d->type_information) {
    lh_return_type_push(L, a, d->type_information);
    lua_setfield(L, -2, "type_information");
  }
  if (d->correlated_event_config) {
    const Littlehorse__CorrelatedEventConfig *cfg = d->correlated_event_config;
    lua_createtable(L, 0, 2);
    if (cfg->_ttl_seconds_case == LITTLEHORSE__CORRELATED_EVENT_CONFIG___TTL_SECONDS_TTL_SECONDS) {
      lua_pushinteger(L, (lua_Integer)cfg->ttl_seconds);
      lua_setfield(L, -2, "ttl_seconds");
    }
    lua_pushboolean(L, cfg->delete_after_first_correlation);
    lua_setfield(L, -2, "delete_after_first_correlation");
    lua_setfield(L, -2, "correlated_event_config");
  }
  return 1;
}
