#include <string.h>
#include "correlated.h"
#include "keep.h"
#include "reply.h"
#include "request.h"
#include "value.h"
#include "service.pb-c.h"

enum { F_KEY, F_DEF_NAME, F_DEF_ID, F_CONTENT };
static const char *const fields[] = { "key", "external_event_def_name", "external_event_def_id", "content", NULL };

typedef struct correlated_fields {
  const char *key;
  const char *def_name;
  int content;  /* the stack slot holding the content (converted after the ids), or 0 */
} correlated_fields;

/* A correlation key becomes part of the server's store key: it refuses '/' and '~' (with
 * INVALID_ARGUMENT), so they are refused here, before anything is sent, as a guid's '/' is. */
static const char *check_key(lua_State *L, lh_context *c, int idx, const lh_path *p) {
  size_t n;
  const char *k = lh_check_text(L, idx, p, 1, &n);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)k[i];
    if (ch == '/' || ch == '~') lh_path_error(L, p, "must not contain '/' or '~' (the server refuses them in keys)");
    if (ch < 0x20 || ch == 0x7f) lh_path_error(L, p, "must not contain control characters");
  }
  return lh_keep_bytes(L, c, idx, k, n);
}

/* The fields of a request (nfields: how many of `fields` it may have). */
static void read_fields(lua_State *L, int idx, const lh_path *root, lh_context *c, int nfields, const char *what,
                        correlated_fields *o) {
  memset(o, 0, sizeof *o);
  lh_req_table(L, idx, root, what);
  lua_checkstack(L, 6);
  lua_pushnil(L); /* the content, if any */
  int content = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int f = lh_req_field(L, root, fields, what);
    lh_path p = lh_path_field(root, fields[f], strlen(fields[f]));
    if (f >= nfields) lh_path_error(L, &p, "unknown field of %s", what);
    int v = lua_gettop(L);
    switch (f) {
    case F_KEY: o->key = check_key(L, c, v, &p); break;
    case F_DEF_NAME:
    case F_DEF_ID: lh_req_def_field(L, c, v, &p, f == F_DEF_ID, &o->def_name); break;
    case F_CONTENT: /* converted by the caller, after the ids */
      lua_pushvalue(L, v);
      lua_replace(L, content);
      o->content = content;
      break;
    }
    lua_pop(L, 1);
  }
  if (!o->key) {
    lh_path p = lh_path_field(root, "key", 3);
    lh_path_error(L, &p, "required (the correlation key, a non-empty string)");
  }
  lh_req_def_required(L, root, o->def_name);
}

/* Each packer converts inside lh_keep_begin .. lh_keep_end (keep.h). */
void lh_pack_put_correlated_event(lua_State *L, int idx, const lh_path *root, lh_context *c) {
  idx = lua_absindex(L, idx);
  lh_keep_begin(L, c);
  correlated_fields o;
  read_fields(L, idx, root, c, F_CONTENT + 1, "a PutCorrelatedEvent request", &o);
  Littlehorse__PutCorrelatedEventRequest req = LITTLEHORSE__PUT_CORRELATED_EVENT_REQUEST__INIT;
  Littlehorse__VariableValue content = LITTLEHORSE__VARIABLE_VALUE__INIT;
  req.key = (char *)o.key;
  req.external_event_def_id = lh_req_def_id(L, c, o.def_name);
  if (o.content) {
    lh_path p = lh_path_field(root, "content", 7);
    lh_value_to_pb(L, o.content, c, &content, &p);
    if (content.value_case != LITTLEHORSE__VARIABLE_VALUE__VALUE__NOT_SET || content.base.n_unknown_fields)
      req.content = &content;
  }
  lh_req_pack(L, c, &req.base);
  lh_keep_end(L, c);
}

static Littlehorse__CorrelatedEventId *correlated_id(lua_State *L, int idx, const lh_path *root, lh_context *c,
                                                     const char *what) {
  correlated_fields o;
  read_fields(L, idx, root, c, F_DEF_ID + 1, what, &o);
  Littlehorse__CorrelatedEventId *id = lh_req_alloc(L, c, sizeof *id);
  Littlehorse__CorrelatedEventId init = LITTLEHORSE__CORRELATED_EVENT_ID__INIT;
  *id = init;
  id->key = (char *)o.key;
  id->external_event_def_id = lh_req_def_id(L, c, o.def_name);
  return id;
}

void lh_pack_correlated_event_id(lua_State *L, int idx, const lh_path *root, lh_context *c) {
  idx = lua_absindex(L, idx);
  lh_keep_begin(L, c);
  lh_req_pack(L, c, &correlated_id(L, idx, root, c, "a CorrelatedEventId")->base);
  lh_keep_end(L, c);
}

void lh_pack_delete_correlated_event(lua_State *L, int idx, const lh_path *root, lh_context *c) {
  idx = lua_absindex(L, idx);
  lh_keep_begin(L, c);
  Littlehorse__DeleteCorrelatedEventRequest req = LITTLEHORSE__DELETE_CORRELATED_EVENT_REQUEST__INIT;
  req.id = correlated_id(L, idx, root, c, "a CorrelatedEventId");
  lh_req_pack(L, c, &req.base);
  lh_keep_end(L, c);
}

int lh_push_correlated_event(lua_State *L, const char *bytes, size_t len, lh_context *c) {
  Littlehorse__CorrelatedEvent *ev =
      (Littlehorse__CorrelatedEvent *)lh_reply_unpack(c, &littlehorse__correlated_event__descriptor, bytes, len);
  if (!ev) return 0;
  const lh_arena *a = &c->arena;
  lua_checkstack(L, 6);
  lua_createtable(L, 0, 5);
  if (ev->id) {
    lh_reply_correlated_event_id(L, a, ev->id);
    lua_setfield(L, -2, "id");
  }
  lh_reply_set_timestamp(L, "created_at", ev->created_at);
  lh_reply_set_content(L, a, ev->content);
  lua_createtable(L, (int)ev->n_external_events, 0);
  for (size_t i = 0; i < ev->n_external_events; i++) {
    lh_reply_external_event_id(L, a, ev->external_events[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "external_events");
  return 1;
}
