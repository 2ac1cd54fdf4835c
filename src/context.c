#include <string.h>
#include "context.h"
#include "runtime.h"
#include "keep.h"

/* Runs when the Lua state closes (the context is an upvalue of every module function, so it
 * outlives every client of the state): frees the scratch space and drops the state's
 * reference on gRPC, which lets gRPC stop its threads once no state in the process uses it. */
static int context_gc(lua_State *L) {
  lh_context *c = luaL_checkudata(L, 1, LH_CONTEXT_MT);
  lh_buf_free(&c->json);
  lh_buf_free(&c->wire);
  lh_buf_free(&c->reply);
  lh_buf_free(&c->message);
  lh_arena_free(&c->arena);
  if (c->grpc_held) {
    c->grpc_held = 0;
    /* In a forked child the reference is the parent's: no grpc_shutdown here (it would run
     * gRPC's teardown on state whose threads and descriptors belong to the parent). */
    if (c->grpc_pid == (long)lh_runtime_pid()) lh_runtime_release();
  }
  return 0;
}

static int context_tostring(lua_State *L) {
  lua_pushfstring(L, LH_CONTEXT_MT ": %p", lua_touserdata(L, 1));
  return 1;
}

lh_context *lh_context_new(lua_State *L) {
  lh_context *c = lua_newuserdatauv(L, sizeof *c, 3);
  memset(c, 0, sizeof *c);
  lua_newtable(L); /* the closure cache (see push_body) */
  lua_setiuservalue(L, -2, 1);
  lh_keep_push_table(L); /* the conversions' scratch table (keep.c) */
  lua_setiuservalue(L, -2, 2);
  /* user value 3: the spare contexts of nested calls (push_spare), made when first needed */
  lh_arena_init(&c->arena);
  if (luaL_newmetatable(L, LH_CONTEXT_MT)) {
    lua_pushcfunction(L, context_gc);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, context_gc);
    lua_setfield(L, -2, "__close");
#endif
    lua_pushcfunction(L, context_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
  return c;
}

int lh_context_protect(lua_State *L, lua_CFunction body) {
  return lh_context_protect_then(L, body, NULL, NULL);
}

/* Push body as a closure over the context c at stack index cidx. Each body's closure is made
 * once and kept in the context's user value: making it per call would be a measurable share of
 * a call's cost (an allocation, and garbage). The cache holds the context through the
 * closures, a cycle the collector handles. */
static void push_body(lua_State *L, lh_context *c, int cidx, lua_CFunction body) {
  int i = 0;
  while (i < c->nbodies && c->bodies[i] != body) i++;
  lua_getiuservalue(L, cidx, 1);
  if (i < c->nbodies) {
    lua_rawgeti(L, -1, i + 1);
    lua_remove(L, -2);
    return;
  }
  lua_pushvalue(L, cidx);
  lua_pushcclosure(L, body, 1);
  if (i < LH_CONTEXT_BODIES) {
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, i + 1);
    c->bodies[i] = body;
    c->nbodies++;
  }
  lua_remove(L, -2);
}

/* A call made while another one of this state runs (from an on_done callback that starts the
 * next call, or from a __gc) needs scratch space of its own. The state's context keeps a few
 * spare contexts for that (user value 3), reused from one nested call to the next: making a
 * context per nested call cost more than the rest of the call's binding (its buffers grow
 * again, and are garbage). Pushes the first spare not in use; deeper nesting than
 * LH_CONTEXT_SPARES gets a private context, collected with its buffers. */
#define LH_CONTEXT_SPARES 4
static lh_context *push_spare(lua_State *L) {
  int root = lua_upvalueindex(1);
  if (lua_getiuservalue(L, root, 3) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, LH_CONTEXT_SPARES, 0);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, root, 3);
  }
  for (int i = 1; i <= LH_CONTEXT_SPARES; i++) {
    lua_rawgeti(L, -1, i);
    lh_context *s = lua_touserdata(L, -1);
    if (!s) {
      lua_pop(L, 1);
      s = lh_context_new(L);
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, i);
    }
    if (!s->busy) {
      lua_remove(L, -2); /* the spares table */
      return s;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return lh_context_new(L);
}

int lh_context_protect_then(lua_State *L, lua_CFunction body, void (*after)(void *), void *ud) {
  int n = lua_gettop(L);
  lh_context *c = lh_context_get(L);
  if (c->busy) {
    c = push_spare(L);
    push_body(L, c, lua_gettop(L), body);
    lua_remove(L, -2); /* the spare: the closure holds it */
  } else {
    push_body(L, c, lua_upvalueindex(1), body);
  }
  c->generic_encode = c->generic_decode = 0; /* test switches never outlive their call */
  lua_insert(L, 1);
  c->busy++;
  int status = lua_pcall(L, n, LUA_MULTRET, 0);
  c->busy--;
  if (after) after(ud);
  if (status != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

void lh_context_hold_grpc(lua_State *L, lh_context *c) {
  if (c->grpc_held && c->grpc_pid == (long)lh_runtime_pid()) return;
  lh_runtime_acquire(L); /* raises if gRPC was initialised before a fork */
  c->grpc_held = 1;
  c->grpc_pid = (long)lh_runtime_pid();
}
