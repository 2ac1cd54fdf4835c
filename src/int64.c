/* 64-bit integers on every runtime (see int64.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "int64.h"
#include "value.h"

/* The registry slot (its address is the key) of this state's FFI shim: a table
 * { [1] = kind(v) -> 1 (int64_t) | 2 (uint64_t) | "cdata<T>", [2] = the int64_t ctype }.
 * Absent on runtimes without the FFI. */
static const char shim_key = 0;

/* Runs under LuaJIT only (luaL_loadbuffer by lh_int64_open), so its LL literal is fine. */
static const char SHIM[] =
    "local ffi = require 'ffi'\n"
    "local istype, typeof = ffi.istype, ffi.typeof\n"
    "local i64, u64 = typeof('int64_t'), typeof('uint64_t')\n"
    "local function kind(v)\n"
    "  if istype(i64, v) then return 1 end\n"
    "  if istype(u64, v) then return 2 end\n"
    "  return 'cdata' .. tostring(typeof(v)):sub(6)\n" /* ctype<double> -> cdata<double> */
    "end\n"
    "return { kind, i64 }, 0x0123456789ABCDEFLL\n";

#define PROBE_VALUE INT64_C(0x0123456789ABCDEF)
#define EXACT_MAX 9007199254740992.0 /* 2^53 */

void lh_int64_open(lua_State *L) {
  /* LuaJIT registers its `jit` module as loaded from the start; plain 5.1 has none. */
  int is_jit = 0;
  lua_pushliteral(L, "_LOADED");
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_istable(L, -1)) {
    lua_pushliteral(L, "jit");
    lua_rawget(L, -2);
    is_jit = lua_istable(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (!is_jit) return;
  if (luaL_loadbuffer(L, SHIM, sizeof SHIM - 1, "=littlehorse.int64") != 0) lua_error(L);
  lua_call(L, 0, 2);
  if (lua_type(L, -1) != LH_TCDATA || *(const int64_t *)lua_topointer(L, -1) != PROBE_VALUE)
    luaL_error(L, "littlehorse: this LuaJIT does not give a cdata's payload through lua_topointer; "
                  "int64_t values cannot be read");
  lua_pop(L, 1);
  lua_pushlightuserdata(L, (void *)&shim_key);
  lua_insert(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

/* Push shim[i]; 0 (nothing pushed) when this state has no shim. */
static int push_shim(lua_State *L, int i) {
  lua_pushlightuserdata(L, (void *)&shim_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_rawgeti(L, -1, i);
  lua_remove(L, -2);
  return 1;
}

size_t lh_int64_format(char *buf, int64_t v) {
  char tmp[24];
  char *p = tmp + sizeof tmp;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do { *--p = (char)('0' + u % 10); u /= 10; } while (u);
  if (v < 0) *--p = '-';
  size_t n = (size_t)(tmp + sizeof tmp - p);
  memcpy(buf, p, n);
  buf[n] = '\0';
  return n;
}

int lh_int64_parse(const char *s, size_t n, int64_t *out) {
  size_t i = 0;
  int neg = n > 0 && s[0] == '-';
  uint64_t m = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  if (neg) i++;
  if (i == n) return 0;
  for (; i < n; i++) {
    unsigned d = (unsigned char)s[i] - '0';
    if (d > 9 || m > (limit - d) / 10) return 0;
    m = m * 10 + d;
  }
  *out = neg ? (int64_t)(0 - m) : (int64_t)m;
  return 1;
}

/* The int64_t / uint64_t cdata at idx, or a misuse error naming path. */
static int64_t cdata_value(lua_State *L, int idx, const lh_path *path) {
  idx = lua_absindex(L, idx);
  if (!push_shim(L, 1)) lh_path_error(L, path, "cannot read a cdata here");
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  int kind = lua_type(L, -1) == LUA_TNUMBER ? (int)lua_tonumber(L, -1) : 0;
  if (!kind) lh_path_error(L, path, "a %s is not an integer (int64_t and uint64_t cdata are)", lua_tostring(L, -1));
  lua_pop(L, 1);
  const void *p = lua_topointer(L, idx);
  if (kind == 2) {
    uint64_t u = *(const uint64_t *)p;
    if (u > (uint64_t)INT64_MAX) {
      char msg[80];
      snprintf(msg, sizeof msg, "%lluULL is beyond the int64 range (at most 9223372036854775807)",
               (unsigned long long)u);
      lh_path_error(L, path, "%s", msg);
    }
    return (int64_t)u;
  }
  return *(const int64_t *)p;
}

/* The typed int at idx ({ type = "INT", value = v }, lh's typed metatable): 1 and *out when
 * it is one, else 0. */
static int typed_int(lua_State *L, int idx, int64_t *out, const lh_path *path) {
  if (!lua_getmetatable(L, idx)) return 0;
  lh_value_push_typed_mt(L);
  int typed = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (!typed) return 0;
  lua_pushliteral(L, "type");
  lua_rawget(L, idx);
  int is_int = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "INT") == 0;
  lua_pop(L, 1);
  if (!is_int) return 0;
  lua_pushliteral(L, "value");
  lua_rawget(L, idx);
  if (!lh_int64_get(L, -1, out, path, LH_INT_TEXT))
    lh_path_error(L, path, "lh.int needs an integer, got %s", luaL_typename(L, -1));
  lua_pop(L, 1);
  return 1;
}

int lh_int64_get(lua_State *L, int idx, int64_t *out, const lh_path *path, int flags) {
  switch (lua_type(L, idx)) {
  case LUA_TNUMBER: {
#if LUA_VERSION_NUM >= 503
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, idx, &isnum);
    if (!isnum) return 0;
    *out = (int64_t)v;
    return 1;
#else
    lua_Number d = lua_tonumber(L, idx);
    if (d != floor(d) || !(d >= -EXACT_MAX && d <= EXACT_MAX)) return 0;
    *out = (int64_t)d;
    return 1;
#endif
  }
  case LUA_TSTRING: {
    if (!(flags & LH_INT_TEXT)) return 0;
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (!lh_int64_parse(s, n, out))
      lh_path_error(L, path, "'%s' is not a decimal integer in the int64 range", s);
    return 1;
  }
  case LUA_TTABLE:
    return (flags & LH_INT_TYPED) ? typed_int(L, lua_absindex(L, idx), out, path) : 0;
  case LH_TCDATA:
    *out = cdata_value(L, idx, path);
    return 1;
  default:
    return 0;
  }
}

const char *lh_int64_not_integer(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TNUMBER) return luaL_typename(L, idx);
  lua_Number d = lua_tonumber(L, idx);
  if (d != d || d - d != 0) return "NaN or infinity";
  if (d != floor(d)) return "a float with a fraction";
#if LUA_VERSION_NUM >= 503
  return "a float beyond the int64 range";
#else
  return "a number beyond 2^53, which a double may have rounded (exact ints that large are "
         "int64_t cdata under LuaJIT, or lh.int(\"<decimal text>\"))";
#endif
}

void lh_int64_push(lua_State *L, int64_t v) {
#if LUA_VERSION_NUM >= 503
  lua_pushinteger(L, (lua_Integer)v);
#else
  if (v >= -(int64_t)EXACT_MAX && v <= (int64_t)EXACT_MAX) {
    lua_pushnumber(L, (lua_Number)v);
    return;
  }
  if (!lua_checkstack(L, 4)) luaL_error(L, "out of memory");
  if (push_shim(L, 2)) {
    lua_call(L, 0, 1); /* a new int64_t box, 0 */
    *(int64_t *)lua_topointer(L, -1) = v;
    return;
  }
  char text[24];
  size_t n = lh_int64_format(text, v);
  lua_createtable(L, 0, 2);
  lua_pushliteral(L, "INT");
  lua_setfield(L, -2, "type");
  lua_pushlstring(L, text, n);
  lua_setfield(L, -2, "value");
  lh_value_push_typed_mt(L);
  lua_setmetatable(L, -2);
#endif
}

int lh_int64_lua_int(lua_State *L) {
  lh_path root = lh_path_root("int", 1);
  int64_t v;
  lua_settop(L, 1);
  if (lua_type(L, 1) == LUA_TNUMBER) {
    lua_Number d = lua_tonumber(L, 1);
    /* An explicit int: any integral double in the int64 range is that integer, exactly. */
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, 1)) {
      lua_pushvalue(L, 1);
      return 1;
    }
#endif
    if (d != floor(d) || !(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
      return lh_misuse(L, "bad argument #1 to 'int' (number has no integer representation)");
    lh_int64_push(L, (int64_t)d);
    return 1;
  }
  /* lh.int's own value (a typed int: 5.1's form of a large int) is accepted too */
  if ((lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LH_TCDATA && lua_type(L, 1) != LUA_TTABLE)
      || !lh_int64_get(L, 1, &v, &root, LH_INT_TEXT | LH_INT_TYPED))
    return lh_misuse(L, "bad argument #1 to 'int' (number, decimal text or int64 cdata expected, got %s)",
                     luaL_typename(L, 1));
  lh_int64_push(L, v);
  return 1;
}
