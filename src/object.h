/* What the module's userdata types (client.c, handle.c) share: one named metatable each with
 * the methods under __index (the context as their upvalue 1), one idempotent close as __gc
 * and __close, and __tostring; a fast check of `self`; and the refusal of objects a forked
 * child inherited from its parent. */
#ifndef LH_OBJECT_H
#define LH_OBJECT_H

#include <sys/types.h>
#include "compat.h"
#include "runtime.h"

/* Create the metatable `name` (the context on the stack top, left there). */
void lh_object_register(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction close,
                        lua_CFunction tostring);

/* luaL_checkudata(L, 1, tname), faster: the metatable is compared with mt, the one this
 * state's context recorded at registration, instead of looked up by name in the registry on
 * every call (a measurable share of a call). Anything else goes to luaL_checkudata, which
 * raises. */
static inline void *lh_object_check(lua_State *L, const void *mt, const char *tname) {
  if (mt && lua_type(L, 1) == LUA_TUSERDATA && lua_getmetatable(L, 1)) {
    int same = lua_topointer(L, -1) == mt;
    lua_pop(L, 1);
    if (same) return lua_touserdata(L, 1);
  }
  return luaL_checkudata(L, 1, tname);
}

/* After fork(): a client or call handle made in the parent belongs to the parent's gRPC,
 * whose file descriptors, epoll set and connections the child shares. Polling them would
 * take the parent's events, cancelling a call would write to the parent's connection, and
 * the parent's threads (which hold its locks) are not in the child. So in a child every
 * method refuses before touching anything of gRPC's, and close()/__gc abandon the object:
 * what it holds is left as it is, never torn down. */
static inline int lh_object_inherited(pid_t made_in) { return made_in != lh_runtime_pid(); }

/* Raise the misuse error for a `what` ("client", "call handle") made in process made_in. */
int lh_object_refuse_inherited(lua_State *L, const char *what, pid_t made_in);

#endif
