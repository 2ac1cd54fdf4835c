#include <unistd.h>
#include "object.h"
#include "path.h"

void lh_object_register(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction close,
                        lua_CFunction tostring) {
  if (luaL_newmetatable(L, name)) {
    lua_newtable(L);
    lua_pushvalue(L, -3);
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
#endif
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

int lh_object_refuse_inherited(lua_State *L, const char *what, pid_t made_in) {
  return lh_misuse(L, "littlehorse: this %s was made in process %d and cannot be used in forked "
                      "process %d; make clients after the fork", what, (int)made_in, (int)getpid());
}
