/* The module's per-Lua-state context: the scratch space every conversion reuses (buffers, the
 * message arena), this state's reference on gRPC, the cached closures of protected bodies and
 * the recorded metatables. One context userdata is created by luaopen_littlehorse_core and
 * passed as upvalue 1 to every module function and method, so there is no process-global
 * mutable state and independent lua_States (threads of a game, nginx workers) never share it. */
#ifndef LH_CONTEXT_H
#define LH_CONTEXT_H

#include "compat.h"
#include "buffer.h"
#include "arena.h"

#define LH_CONTEXT_MT "littlehorse.context"
#define LH_CONTEXT_BODIES 48

typedef struct lh_context {
  lh_buf json;      /* JSON text being encoded */
  lh_buf wire;      /* packed request bytes */
  lh_buf reply;     /* reply bytes of the last call */
  lh_buf message;   /* status message of the last call */
  lh_arena arena;   /* protobuf-c messages being built or unpacked */
  int grpc_held;    /* this state holds a reference on the gRPC library (lh_runtime) */
  long grpc_pid;    /* ...taken in this process (a forked child inherits the flag, not gRPC) */
  int busy;         /* a conversion is using this context (see lh_context_protect) */
  int generic_decode; /* tests: decode replies with protobuf-c only (see event_reader.c) */
  int generic_encode; /* tests: pack requests with protobuf-c only (see event_writer.c);
                       * both are cleared when the next protected call starts */
  int keep_slot;    /* during a conversion: the stack slot of its scratch table (keep.c) */
  int kept;         /* strings anchored there */
  lua_CFunction bodies[LH_CONTEXT_BODIES]; /* bodies whose closure is cached (lh_context_protect) */
  int nbodies;
  const void *client_mt, *call_mt; /* the client and call-handle metatables (client.c) */
} lh_context;

#define lh_context_get(L) ((lh_context *)lua_touserdata((L), lua_upvalueindex(1)))

/* Pushes a new context userdata (with its metatable). */
lh_context *lh_context_new(lua_State *L);
/* Run body (a lua_CFunction that reads its context with lh_context_get) on the current
 * arguments, in protected mode, with this state's context marked busy; returns its results.
 * A __gc metamethod can run inside any allocation of a conversion and may itself call the
 * module, and so can an on_done callback that starts the next call: such a nested call finds
 * the context busy and gets scratch space of its own (one of the state's spare contexts, see
 * context.c), so it never resets the arena or buffers under the outer call. Errors are
 * re-raised unchanged. */
int lh_context_protect(lua_State *L, lua_CFunction body);
/* The same, calling after(ud) once the body has returned or raised, before re-raising. */
int lh_context_protect_then(lua_State *L, lua_CFunction body, void (*after)(void *), void *ud);

/* Make sure this state holds its reference on gRPC (first client of the state). */
void lh_context_hold_grpc(lua_State *L, lh_context *c);

#endif
