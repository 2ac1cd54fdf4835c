#include <string.h>
#include <unistd.h>
#include "codec.h"
#include "runtime.h"

/* Runs when the Lua state closes (the codec is an upvalue of every module function, so it
 * outlives every client of the state): frees the scratch space and drops the state's
 * reference on gRPC, which lets gRPC stop its threads once no state in the process uses it. */
static int codec_gc(lua_State *L) {
  lh_codec *c = luaL_checkudata(L, 1, LH_CODEC_MT);
  lh_buf_free(&c->json);
  lh_buf_free(&c->wire);
  lh_buf_free(&c->reply);
  lh_buf_free(&c->message);
  lh_arena_free(&c->arena);
  if (c->grpc_held) {
    c->grpc_held = 0;
    lh_runtime_release();
  }
  return 0;
}

static int codec_tostring(lua_State *L) {
  lua_pushfstring(L, LH_CODEC_MT ": %p", lua_touserdata(L, 1));
  return 1;
}

lh_codec *lh_codec_new(lua_State *L) {
  lh_codec *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  lh_arena_init(&c->arena);
  if (luaL_newmetatable(L, LH_CODEC_MT)) {
    lua_pushcfunction(L, codec_gc);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, codec_gc);
    lua_setfield(L, -2, "__close");
#endif
    lua_pushcfunction(L, codec_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
  return c;
}

void lh_codec_hold_grpc(lua_State *L, lh_codec *c) {
  if (c->grpc_held && c->grpc_pid == (long)getpid()) return;
  lh_runtime_acquire(L); /* raises if gRPC was initialised before a fork */
  c->grpc_held = 1;
  c->grpc_pid = (long)getpid();
}
