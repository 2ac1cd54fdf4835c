/* Lua 5.1/LuaJIT/5.3/5.4 differences, in one place. Only what the module uses.
 * The module is written against the 5.4 API; older versions get these stand-ins. */
#ifndef LH_COMPAT_H
#define LH_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
/* Lua 5.1 / LuaJIT */
#define LUA_OK 0
#define lua_rawlen(L, i) lua_objlen((L), (i))
#ifndef luaL_newlibtable /* LuaJIT 2.1 has it */
#define luaL_newlibtable(L, l) lua_createtable((L), 0, sizeof(l) / sizeof((l)[0]) - 1)
#endif
#define lua_absindex(L, i) \
  (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
void lh_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
#define luaL_setfuncs(L, l, n) lh_compat_setfuncs((L), (l), (n))
#endif

#if LUA_VERSION_NUM < 503
/* No integer subtype: integers are doubles, exact up to 2^53. An integral number within
 * +-2^53 (but -0.0) counts as an integer; larger ints travel as int64.h describes. */
#define lua_isinteger(L, i) lh_compat_isinteger((L), (i))
int lh_compat_isinteger(lua_State *L, int i);
#define LUA_MAXINTEGER ((lua_Integer)9007199254740992LL)
#define LUA_MININTEGER ((lua_Integer)-9007199254740992LL)
#endif

#if LUA_VERSION_NUM < 504
/* One user value (5.3) or the environment table (5.1) holds a table of numbered slots. */
void *lh_compat_newuserdatauv(lua_State *L, size_t size, int nuv);
int lh_compat_getiuservalue(lua_State *L, int idx, int n);
int lh_compat_setiuservalue(lua_State *L, int idx, int n);
#define lua_newuserdatauv(L, sz, nuv) lh_compat_newuserdatauv((L), (sz), (nuv))
#define lua_getiuservalue(L, i, n) lh_compat_getiuservalue((L), (i), (n))
#define lua_setiuservalue(L, i, n) lh_compat_setiuservalue((L), (i), (n))
#endif

#endif
