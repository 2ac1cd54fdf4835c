#include "error.h"
#include "status_names.h"

const char *lh_status_name(int code) {
  if (code < 0 || code >= LH_STATUS_COUNT) return "UNKNOWN";
  return lh_status_names[code];
}

static int error_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "code");
  lua_getfield(L, 1, "status");
  lua_getfield(L, 1, "message");
  lua_getfield(L, 1, "method");
  lua_getfield(L, 1, "target");
  const char *method = lua_tostring(L, -2), *target = lua_tostring(L, -1);
  lua_pushfstring(L, "%s%s%s (%d): %s", method ? method : "", method ? ": " : "",
                  luaL_optstring(L, -5, "UNKNOWN"), (int)luaL_optinteger(L, -4, 2),
                  luaL_optstring(L, -3, ""));
  if (target) lua_pushfstring(L, "%s (target %s)", lua_tostring(L, -1), target);
  return 1;
}

void lh_error_register(lua_State *L) {
  if (luaL_newmetatable(L, LH_ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

int lh_error_push(lua_State *L, int status, const char *message, size_t msglen,
                  const char *method, double retry_delay) {
  const char *name = lh_status_name(status);
  lua_pushnil(L);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "code");
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, message ? message : "", message ? msglen : 0);
  lua_setfield(L, -2, "message");
  if (method) {
    lua_pushstring(L, method);
    lua_setfield(L, -2, "method");
  }
  if (retry_delay >= 0) {
    lua_pushnumber(L, retry_delay);
    lua_setfield(L, -2, "retry_delay");
  }
  luaL_getmetatable(L, LH_ERROR_MT);
  lua_setmetatable(L, -2);
  lua_pushstring(L, name);
  return 3;
}
