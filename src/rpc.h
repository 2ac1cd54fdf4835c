/* The LittleHorse RPCs the module calls: for each, its names (for errors and methods), its
 * path, how its request is packed and how its reply is pushed; and how the outcome of a
 * finished call becomes Lua results (the same for blocking calls and call handles). */
#ifndef LH_RPC_H
#define LH_RPC_H

#include "compat.h"
#include "call.h"
#include "context.h"
#include "path.h"

typedef enum {
  LH_RPC_PUT_EVENT, LH_RPC_GET_EVENT, LH_RPC_PUT_DEF, LH_RPC_GET_DEF, LH_RPC_PUT_CORRELATED, LH_RPC_GET_CORRELATED,
  LH_RPC_DELETE_CORRELATED, LH_RPC_DELETE_DEF, LH_RPC_LIST_EVENTS, LH_RPC_SEARCH_EVENTS, LH_RPC_SEARCH_CORRELATED,
  LH_RPC_SEARCH_DEFS, LH_RPC_COUNT
} lh_rpc_id;

typedef struct lh_rpc {
  const char *name;          /* the RPC, for error objects: "PutExternalEvent" */
  const char *method;        /* the Lua method, for misuse errors: "put_external_event" */
  const char *async_method;  /* "put_external_event_async" */
  const char *path;          /* "/littlehorse.LittleHorse/PutExternalEvent" */
  void (*pack)(lua_State *L, int idx, const lh_path *root, lh_context *c);
  int (*push)(lua_State *L, const char *bytes, size_t len, lh_context *c);
} lh_rpc;

extern const lh_rpc lh_rpcs[LH_RPC_COUNT];

/* The RPCs that also take a request packed beforehand (an outbox record of either kind,
 * core.encode_put_external_event), sent as it is: client:<method>_packed(bytes [, opts]) and
 * its async form. Only rows with a pack function exist; the reply is the RPC's. */
extern const lh_rpc lh_rpcs_packed[LH_RPC_COUNT];

/* Push the outcome of a finished call: the reply (true when no_reply: the caller said
 * reply = false), or nil, err, code; returns how many values. target is named in
 * UNAVAILABLE and DEADLINE_EXCEEDED errors (NULL: not named). */
int lh_rpc_push_outcome(lua_State *L, const lh_rpc *r, lh_call_result *res, lh_context *c, int no_reply,
                        const char *target);

#endif
