/* The call handle ("littlehorse.call"): one async call started by a client's *_async method.
 * It holds the call's pending (async.h) until the outcome is settled into its cached
 * results, which wait() returns and client:poll() passes to its on_done callback. */
#ifndef LH_HANDLE_H
#define LH_HANDLE_H

#include <sys/types.h>
#include "compat.h"
#include "async.h"

#define LH_CALL_MT "littlehorse.call"

typedef struct lh_handle {
  lh_pending *p;                /* NULL once the outcome is cached (or the handle closed) */
  pid_t pid;                    /* the process that started the call */
  int method;                   /* lh_rpc_id */
  int no_reply;                 /* the call's reply = false */
  int nresults;                 /* 0 until settled; then 1 (the reply) or 3 (nil, err, code) */
} lh_handle;

/* Register the metatable; its methods get the context (on the stack top) as upvalue 1. */
void lh_handle_register(lua_State *L);

/* Push a new handle for a call of `method` made by the client at index client (which the
 * handle keeps alive); its pending is set by the caller. */
lh_handle *lh_handle_push(lua_State *L, int client, int method, int no_reply, pid_t pid);

/* Give the handle at hidx the on_done callback at index fn. */
void lh_handle_set_on_done(lua_State *L, int hidx, int fn);

/* For client:poll(): settle the handle at hidx if its call finished, then push its on_done
 * callback and the call's results; returns how many results (not counting the callback), or
 * -1 with nothing pushed when the handle was closed meanwhile. */
int lh_handle_push_delivery(lua_State *L, int hidx);

#endif
