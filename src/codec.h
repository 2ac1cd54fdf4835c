/* Per-Lua-state conversion scratch space: the buffers and the arena every conversion
 * reuses. One codec userdata is created by luaopen_littlehorse_core and passed as upvalue 1
 * to every module function and method, so there is no process-global mutable state and
 * independent lua_States (threads of a game, nginx workers) never share it. */
#ifndef LH_CODEC_H
#define LH_CODEC_H

#include "compat.h"
#include "buffer.h"
#include "arena.h"

#define LH_CODEC_MT "littlehorse.codec"

typedef struct lh_codec {
  lh_buf json;      /* JSON text being encoded */
  lh_buf wire;      /* packed request bytes */
  lh_buf reply;     /* reply bytes of the last call */
  lh_buf message;   /* status message of the last call */
  lh_arena arena;   /* protobuf-c messages being built or unpacked */
  int grpc_held;    /* this state holds a reference on the gRPC library (lh_runtime) */
  long grpc_pid;    /* ...taken in this process (a forked child inherits the flag, not gRPC) */
} lh_codec;

#define lh_codec_get(L) ((lh_codec *)lua_touserdata((L), lua_upvalueindex(1)))

/* Pushes a new codec userdata (with its metatable). */
lh_codec *lh_codec_new(lua_State *L);
/* Make sure this state holds its reference on gRPC (first client of the state). */
void lh_codec_hold_grpc(lua_State *L, lh_codec *c);

#endif
