/* The client userdata ("littlehorse.client"): one gRPC channel to one target, the tenant
 * header, a default deadline, and the LittleHorse RPCs as methods (blocking, and async ones
 * that return call handles, handle.h). */
#ifndef LH_CLIENT_H
#define LH_CLIENT_H

#include <sys/types.h>
#include <grpc/grpc.h>
#include "compat.h"
#include "async.h"
#include "channel.h"
#include "rpc.h"

#define LH_CLIENT_MT "littlehorse.client"

/* User values of a client: 1 the context (keeps gRPC alive while the client lives), 2 the
 * anchor table of async calls that have an on_done callback: slot (a luaL_ref) -> handle.
 * Integer slots, reused through luaL_ref's free list, keep that table's array part dense;
 * keys that come and go (pending pointers, say) would make it rehash every few dozen calls
 * (bench/: a tenth of a call's cost). */
enum { LH_CLIENT_UV_CONTEXT = 1, LH_CLIENT_UV_ANCHORS = 2, LH_CLIENT_UV_CALL_MT = 3, LH_CLIENT_NUV = 3 };
/* 3: the call-handle metatable, which every async call sets on its new handle (a user value
 * is read in a few instructions; the registry lookup by name costs a string lookup). */

typedef struct lh_client {
  lh_channel *shared;           /* the (possibly shared) channel this client holds */
  grpc_channel *channel;        /* shared->channel */
  size_t max_send;              /* requests larger than this are refused before sending */
  grpc_completion_queue *cq;    /* pluck queue for this client's blocking calls */
  lh_engine *engine;            /* async calls; NULL until the first one */
  void *method[LH_RPC_COUNT];   /* registered call handles */
  double timeout;               /* default per-call deadline, seconds */
  char *target;
  char *tenant;
  grpc_slice tenant_key, tenant_value; /* the `tenantid` header, made once (when tenant is set) */
  pid_t pid;                    /* the process that made the channel */
  int closed;
  int busy;                     /* methods running on this client (a __gc may nest one) */
  int close_deferred;           /* close() came from a __gc during a method: finish it after */
} lh_client;

/* Register the metatable; its methods get the context (on the stack top) as upvalue 1. */
void lh_client_register(lua_State *L);
/* core.client{ target =, timeout =, max_send_size =, ... } (see client.c) */
int lh_client_new(lua_State *L);
/* core.channel_count() */
int lh_client_channel_count(lua_State *L);

#endif
