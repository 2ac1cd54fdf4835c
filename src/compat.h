/* Lua 5.1/LuaJIT/5.3/5.4 differences, in one place. Only what the module uses. */
#ifndef LH_COMPAT_H
#define LH_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
/* Lua 5.1 / LuaJIT */
#define lua_rawlen(L, i) lua_objlen((L), (i))
#define luaL_newlibtable(L, l) lua_createtable((L), 0, sizeof(l) / sizeof((l)[0]) - 1)
void lh_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
#define luaL_setfuncs(L, l, n) lh_compat_setfuncs((L), (l), (n))
void *lh_compat_testudata(lua_State *L, int i, const char *tname);
#define luaL_testudata(L, i, t) lh_compat_testudata((L), (i), (t))
#define lua_isinteger(L, i) 0
#define LUA_OK 0
#endif

#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, sz, nuv) lua_newuserdata((L), (sz))
#if LUA_VERSION_NUM >= 502
#define lua_setiuservalue(L, i, n) (lua_setuservalue((L), (i)), 1)
#else
/* 5.1: the environment table of a userdata holds the reference */
#define lua_setiuservalue(L, i, n) \
  (lua_createtable((L), 1, 0), lua_insert((L), -2), lua_rawseti((L), -2, 1), lua_setfenv((L), (i) < 0 ? (i) - 0 : (i)))
#endif
#endif

#endif
