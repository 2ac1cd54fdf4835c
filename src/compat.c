/* Stand-ins for Lua 5.4 API functions on Lua 5.1, LuaJIT and 5.3 (see compat.h). */
#include <math.h>
#include "compat.h"

#if LUA_VERSION_NUM < 502
void lh_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name; l++) {
    for (int i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#endif

#if LUA_VERSION_NUM < 503
int lh_compat_isinteger(lua_State *L, int i) {
  if (lua_type(L, i) != LUA_TNUMBER) return 0;
  lua_Number d = lua_tonumber(L, i);
  /* -0.0 is not the integer 0: it stays a float (as in JSON), so its sign survives */
  return d == floor(d) && d >= -9007199254740992.0 && d <= 9007199254740992.0 && !(d == 0 && signbit(d));
}
#endif

#if LUA_VERSION_NUM < 504
static void push_slots(lua_State *L, int idx) {
#if LUA_VERSION_NUM < 502
  lua_getfenv(L, idx);
#else
  lua_getuservalue(L, idx);
#endif
}

void *lh_compat_newuserdatauv(lua_State *L, size_t size, int nuv) {
  void *p = lua_newuserdata(L, size);
  /* always a fresh table: under 5.1 a new userdata's environment is the caller's globals */
  lua_createtable(L, nuv > 0 ? nuv : 0, 0);
#if LUA_VERSION_NUM < 502
  lua_setfenv(L, -2);
#else
  lua_setuservalue(L, -2);
#endif
  return p;
}

int lh_compat_getiuservalue(lua_State *L, int idx, int n) {
  idx = lua_absindex(L, idx);
  push_slots(L, idx);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return LUA_TNIL;
  }
  lua_rawgeti(L, -1, n);
  lua_remove(L, -2);
  return lua_type(L, -1);
}

int lh_compat_setiuservalue(lua_State *L, int idx, int n) {
  idx = lua_absindex(L, idx);
  push_slots(L, idx);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 2);
    return 0;
  }
  lua_insert(L, -2);
  lua_rawseti(L, -2, n);
  lua_pop(L, 1);
  return 1;
}
#endif
