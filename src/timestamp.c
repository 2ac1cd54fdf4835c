#include <stdio.h>
#include <time.h>
#include "timestamp.h"
#include "keep.h"

/* Days since 1970-01-01 to a civil date (proleptic Gregorian), valid for any int64 range
 * we accept; avoids gmtime's time_t and locale limits. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t yy = (int64_t)yoe + era * 400;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yy + (*m <= 2);
}

/* Format as RFC 3339 UTC into buf (at least 40 bytes); returns the length. */
static int format_rfc3339(int64_t seconds, int32_t nanos, char *buf, size_t size) {
  int64_t days = seconds / 86400, rem = seconds % 86400;
  if (rem < 0) { rem += 86400; days--; }
  int64_t y; unsigned mo, d;
  civil_from_days(days, &y, &mo, &d);
  int n = snprintf(buf, size, "%04lld-%02u-%02uT%02u:%02u:%02u", (long long)y, mo, d,
                   (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60));
  if (nanos > 0 && n > 0 && (size_t)n < size) {
    /* 3, 6 or 9 fraction digits, as RFC 3339 producers (and protobuf's JSON) do */
    if (nanos % 1000000 == 0) n += snprintf(buf + n, size - n, ".%03d", nanos / 1000000);
    else if (nanos % 1000 == 0) n += snprintf(buf + n, size - n, ".%06d", nanos / 1000);
    else n += snprintf(buf + n, size - n, ".%09d", nanos);
  }
  if (n > 0 && (size_t)n + 1 < size) { buf[n++] = 'Z'; buf[n] = '\0'; }
  return n;
}

static int ts_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "seconds");
  lua_getfield(L, 1, "nanos");
  char buf[64];
  int n = format_rfc3339((int64_t)luaL_checkinteger(L, -2), (int32_t)luaL_optinteger(L, -1, 0),
                              buf, sizeof buf);
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

static int ts_eq(lua_State *L) {
  int eq = 1;
  for (const char *const *f = (const char *const[]){ "seconds", "nanos", NULL }; *f; f++) {
    lua_getfield(L, 1, *f);
    lua_getfield(L, 2, *f);
    eq = eq && lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  lua_pushboolean(L, eq);
  return 1;
}

void lh_timestamp_register(lua_State *L) {
  if (luaL_newmetatable(L, LH_TIMESTAMP_MT)) {
    lua_pushcfunction(L, ts_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, ts_eq);
    lua_setfield(L, -2, "__eq");
  }
  lua_pop(L, 1);
}

void lh_timestamp_push_names(lua_State *L, int64_t seconds, int32_t nanos, int names) {
  /* Some encoders write instants before 1970 with negative nanos (-0.5 s as {0, -5e8});
   * normalise to the canonical form, 0 <= nanos < 1e9, so tostring tells the right time. */
  seconds += nanos / 1000000000;
  nanos %= 1000000000;
  if (nanos < 0) { nanos += 1000000000; seconds--; }
  lua_createtable(L, 0, 2);
  if (names) {
    lua_rawgeti(L, names, LH_KEY_SECONDS);
    lua_pushinteger(L, (lua_Integer)seconds);
    lua_rawset(L, -3);
    lua_rawgeti(L, names, LH_KEY_NANOS);
    lua_pushinteger(L, nanos);
    lua_rawset(L, -3);
  } else {
    lua_pushinteger(L, (lua_Integer)seconds);
    lua_setfield(L, -2, "seconds");
    lua_pushinteger(L, nanos);
    lua_setfield(L, -2, "nanos");
  }
  luaL_getmetatable(L, LH_TIMESTAMP_MT);
  lua_setmetatable(L, -2);
}

void lh_timestamp_push(lua_State *L, int64_t seconds, int32_t nanos) {
  lh_timestamp_push_names(L, seconds, nanos, 0);
}
