#include <string.h>
#include "rpc.h"
#include "error.h"
#include "correlated.h"
#include "event_def.h"
#include "listing.h"
#include "messages.h"
#include "buffer.h"

#define SERVICE "/littlehorse.LittleHorse/"

const lh_rpc lh_rpcs[LH_RPC_COUNT] = {
  { "PutExternalEvent", "put_external_event", "put_external_event_async", SERVICE "PutExternalEvent", lh_pack_put_external_event, lh_push_external_event },
  { "GetExternalEvent", "get_external_event", "get_external_event_async", SERVICE "GetExternalEvent", lh_pack_external_event_id, lh_push_external_event },
  { "PutExternalEventDef", "put_external_event_def", "put_external_event_def_async", SERVICE "PutExternalEventDef", lh_pack_put_external_event_def, lh_push_external_event_def },
  { "GetExternalEventDef", "get_external_event_def", "get_external_event_def_async", SERVICE "GetExternalEventDef", lh_pack_external_event_def_id, lh_push_external_event_def },
  { "PutCorrelatedEvent", "put_correlated_event", "put_correlated_event_async", SERVICE "PutCorrelatedEvent", lh_pack_put_correlated_event, lh_push_correlated_event },
  { "GetCorrelatedEvent", "get_correlated_event", "get_correlated_event_async", SERVICE "GetCorrelatedEvent", lh_pack_correlated_event_id, lh_push_correlated_event },
  { "DeleteCorrelatedEvent", "delete_correlated_event", "delete_correlated_event_async", SERVICE "DeleteCorrelatedEvent", lh_pack_delete_correlated_event, lh_push_empty },
  { "DeleteExternalEventDef", "delete_external_event_def", "delete_external_event_def_async", SERVICE "DeleteExternalEventDef", lh_pack_delete_external_event_def, lh_push_empty },
  { "ListExternalEvents", "list_external_events", "list_external_events_async", SERVICE "ListExternalEvents", lh_pack_list_external_events, lh_push_external_event_list },
  { "SearchExternalEvent", "search_external_events", "search_external_events_async", SERVICE "SearchExternalEvent", lh_pack_search_external_events, lh_push_external_event_id_list },
  { "SearchCorrelatedEvent", "search_correlated_events", "search_correlated_events_async", SERVICE "SearchCorrelatedEvent", lh_pack_search_correlated_events, lh_push_correlated_event_id_list },
  { "SearchExternalEventDef", "search_external_event_defs", "search_external_event_defs_async", SERVICE "SearchExternalEventDef", lh_pack_search_external_event_defs, lh_push_external_event_def_id_list },
};

/* A packed request's bytes go into the wire buffer as they are. */
static void pack_bytes(lua_State *L, int idx, const lh_path *root, lh_context *c) {
  size_t n;
  if (lua_type(L, idx) != LUA_TSTRING)
    lh_path_error(L, root, "expected the packed request bytes (a string), got %s", luaL_typename(L, idx));
  const char *s = lua_tolstring(L, idx, &n);
  lh_buf_reset(&c->wire);
  if (!lh_buf_reserve(&c->wire, n ? n : 1)) luaL_error(L, "littlehorse: out of memory");
  lh_buf_put_unchecked(&c->wire, s, n);
}

const lh_rpc lh_rpcs_packed[LH_RPC_COUNT] = {
  [LH_RPC_PUT_EVENT] = { "PutExternalEvent", "put_external_event_packed", "put_external_event_packed_async",
                         SERVICE "PutExternalEvent", pack_bytes, lh_push_external_event },
  [LH_RPC_PUT_CORRELATED] = { "PutCorrelatedEvent", "put_correlated_event_packed", "put_correlated_event_packed_async",
                              SERVICE "PutCorrelatedEvent", pack_bytes, lh_push_correlated_event },
};

/* reply = false skips the reply's decoding: a post whose stored event nobody reads saves a
 * fifth of a call's CPU (bench/). */
int lh_rpc_push_outcome(lua_State *L, const lh_rpc *r, lh_call_result *res, lh_context *c, int no_reply,
                        const char *target) {
  if (res->status != GRPC_STATUS_OK) {
    int n = lh_error_push(L, res->status, c->message.data, c->message.len, r->name, res->retry_delay);
    /* "which server?" is the first question about these two; the others are the server's answer */
    if (target && (res->status == GRPC_STATUS_UNAVAILABLE || res->status == GRPC_STATUS_DEADLINE_EXCEEDED)) {
      lua_pushstring(L, target);
      lua_setfield(L, -3, "target");
    }
    return n;
  }
  if (no_reply) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!r->push(L, c->reply.data, c->reply.len, c)) {
    const char *msg = "the server's reply is not a valid message";
    return lh_error_push(L, GRPC_STATUS_INTERNAL, msg, strlen(msg), r->name, -1);
  }
  return 1;
}
