#include <string.h>
#include "reply.h"
#include "event_reader.h"
#include "pbwire.h"
#include "timestamp.h"
#include "value.h"

ProtobufCMessage *lh_reply_unpack(lh_context *c, const ProtobufCMessageDescriptor *d, const char *bytes, size_t len) {
  if (!lh_pb_depth_ok(d, (const uint8_t *)bytes, len, 1)) return NULL;
  lh_arena_reset(&c->arena);
  return protobuf_c_message_unpack(d, &c->arena.pb, len, (const uint8_t *)bytes);
}

void lh_reply_text(lua_State *L, const lh_arena *a, const char *s) {
  lua_pushlstring(L, s ? s : "", lh_arena_pb_strlen(a, s));
}

void lh_reply_def_id(lua_State *L, const lh_arena *a, const Littlehorse__ExternalEventDefId *d) {
  lua_createtable(L, 0, 1);
  lh_reply_text(L, a, d ? d->name : NULL);
  lua_setfield(L, -2, "name");
}

void lh_reply_external_event_id(lua_State *L, const lh_arena *a, const Littlehorse__ExternalEventId *id) {
  lua_checkstack(L, 4);
  lua_createtable(L, 0, 3);
  if (id->wf_run_id) {
    lh_wf_run_id_push(L, a, id->wf_run_id);
    lua_setfield(L, -2, "wf_run_id");
  }
  lh_reply_def_id(L, a, id->external_event_def_id);
  lua_setfield(L, -2, "external_event_def_id");
  lh_reply_text(L, a, id->guid);
  lua_setfield(L, -2, "guid");
}

void lh_reply_correlated_event_id(lua_State *L, const lh_arena *a, const Littlehorse__CorrelatedEventId *id) {
  lua_checkstack(L, 4);
  lua_createtable(L, 0, 2);
  lh_reply_text(L, a, id->key);
  lua_setfield(L, -2, "key");
  lh_reply_def_id(L, a, id->external_event_def_id);
  lua_setfield(L, -2, "external_event_def_id");
}

void lh_reply_set_timestamp(lua_State *L, const char *name, const Google__Protobuf__Timestamp *ts) {
  if (!ts) return;
  lh_timestamp_push(L, ts->seconds, ts->nanos);
  lua_setfield(L, -2, name);
}

void lh_reply_set_content(lua_State *L, const lh_arena *a, const Littlehorse__VariableValue *v) {
  const char *kind = lh_value_kind(v);
  if (!kind) return;
  lh_value_push(L, a, v, 0);
  lua_setfield(L, -2, "content");
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "content_type");
}

void lh_reply_external_event(lua_State *L, const lh_arena *a, const Littlehorse__ExternalEvent *ev) {
  lua_checkstack(L, 8);
  lua_createtable(L, 0, 8);
  if (ev->id) {
    lh_reply_external_event_id(L, a, ev->id);
    lua_setfield(L, -2, "id");
  }
  lh_reply_set_timestamp(L, "created_at", ev->created_at);
  lh_reply_set_content(L, a, ev->content);
  lua_pushboolean(L, ev->claimed);
  lua_setfield(L, -2, "claimed");
  if (ev->_thread_run_number_case == LITTLEHORSE__EXTERNAL_EVENT___THREAD_RUN_NUMBER_THREAD_RUN_NUMBER) {
    lua_pushinteger(L, ev->thread_run_number);
    lua_setfield(L, -2, "thread_run_number");
  }
  if (ev->_node_run_position_case == LITTLEHORSE__EXTERNAL_EVENT___NODE_RUN_POSITION_NODE_RUN_POSITION) {
    lua_pushinteger(L, ev->node_run_position);
    lua_setfield(L, -2, "node_run_position");
  }
}

void lh_reply_set_bookmark(lua_State *L, int has, const ProtobufCBinaryData *b) {
  if (!has || b->len == 0) return;
  lua_pushlstring(L, (const char *)b->data, b->len);
  lua_setfield(L, -2, "bookmark");
}
