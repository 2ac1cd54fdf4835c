/* Lua value <-> JSON text. See json.h for the mapping; numbers are written and read by
 * numfmt.c (shortest doubles, exact integers, no dependence on the C locale). */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <stdarg.h>
#include <string.h>
#include <math.h>
#include "json.h"
#include "numfmt.h"
#include "utf8.h"
#include "context.h"
#include "timestamp.h"
#include "value.h"
#include "int64.h"

/* The registry key (its address) of the array metatable, and the address that
 * `lh.empty_array` (a light userdata) points to. */
static const char lh_json_array_mt_key = 'A';
static const char lh_json_empty_array_key = 'E';

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LH_SWAR 1 /* scan strings 8 bytes at a time */
#define LH_LIKELY(x) __builtin_expect(!!(x), 1)
#define LH_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LH_SWAR 0
#endif
#ifndef LH_LIKELY
#define LH_LIKELY(x) (x)
#define LH_UNLIKELY(x) (x)
#endif

/* ---------------------------------------------------------------- registry markers */

static void reg_get(lua_State *L, const void *key) {
#if LUA_VERSION_NUM >= 502
  lua_rawgetp(L, LUA_REGISTRYINDEX, key);
#else
  lua_pushlightuserdata(L, (void *)key);
  lua_rawget(L, LUA_REGISTRYINDEX);
#endif
}

void lh_json_push_array_mt(lua_State *L) {
  reg_get(L, &lh_json_array_mt_key);
  if (lua_istable(L, -1)) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "littlehorse.array");
  lua_setfield(L, -2, "__name");
  lua_pushlightuserdata(L, (void *)&lh_json_array_mt_key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

void lh_json_push_empty_array(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&lh_json_empty_array_key);
}

/* ---------------------------------------------------------------- escapes */

/* Per byte: 0 = written as is; 'U' = start of a UTF-8 sequence to validate; 'u' = written
 * as \u00XX; any other letter = written as a backslash and that letter. The decoder uses
 * it too: a nonzero entry stops the fast scan of a string. */
static const char ESC[256] = {
  'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
  'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
  0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U',
  'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U',
  'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U',
  'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U',
  'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U',
  'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U',
  'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U',
  'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U', 'U',
};

/* ---------------------------------------------------------------- encoder */

typedef struct enc {
  lua_State *L;
  lh_buf *b;
  const void *arr_mt;      /* our array metatable, NULL until created */
  const void *cj_arr_mt;   /* package.loaded.cjson.array_mt */
  const void *cj_earr_mt;  /* package.loaded.cjson.empty_array_mt */
  void *cj_earr;           /* package.loaded.cjson.empty_array (light userdata) */
  int has_cj_earr;
  const void *typed_mt;    /* values made by lh.bytes, lh.int, ... (value.h): no JSON form */
  const void *ts_mt;       /* timestamp objects (timestamp.h): no JSON form either */
  int markers_found;       /* the fields above are looked up on first need (find_markers) */
} enc;

/* The chain of tables being encoded, innermost first: a table met again is a cycle. */
typedef struct anc {
  const void *t;
  const struct anc *up;
} anc;

static void encode_value(enc *e, int idx, const lh_path *path, const anc *up, int depth);
static void find_markers(enc *e);

static void no_memory(lua_State *L) { luaL_error(L, "out of memory"); }

/* Room for n more bytes; returns the write position. */
static inline char *need(enc *e, size_t n) {
  lh_buf *b = e->b;
  if (LH_UNLIKELY(b->cap - b->len < n) && !lh_buf_reserve(b, n)) no_memory(e->L);
  return b->data + b->len;
}

static inline void put_char(enc *e, char c) {
  char *o = need(e, 1);
  *o = c;
  e->b->len++;
}

static inline void put_lit(enc *e, const char *s, size_t n) {
  char *o = need(e, n);
  memcpy(o, s, n);
  e->b->len += n;
}

#if LH_SWAR
/* Bit 7 set in each byte that is < 0x20, '"', '\\' or >= 0x80 (exact for the lowest one). */
static inline uint64_t special_mask(uint64_t w) {
  const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
  uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
  return (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs) | w) & high;
}
#endif

static const char HEX[] = "0123456789abcdef";

/* A JSON string for s[0..n), which must be valid UTF-8. */
static void put_string(enc *e, const char *s, size_t n, const lh_path *path, int is_key) {
  lh_buf *b = e->b;
  const unsigned char *p = (const unsigned char *)s, *end = p + n;
  char *o = need(e, n + 2);
  *o++ = '"';
  for (;;) {
#if LH_SWAR
    while (end - p >= 8) {
      uint64_t w, m;
      memcpy(&w, p, 8);
      memcpy(o, p, 8); /* room: the reserve covers every remaining input byte */
      m = special_mask(w);
      if (m) {
        unsigned k = (unsigned)__builtin_ctzll(m) >> 3;
        o += k; p += k;
        goto special;
      }
      o += 8; p += 8;
    }
#endif
    while (p < end && !ESC[*p]) *o++ = (char)*p++;
    if (p == end) break;
#if LH_SWAR
  special:
#endif
    {
      unsigned c = *p;
      char x = ESC[c];
      if (x == 'U') {
        size_t k = lh_utf8_seq(p, (size_t)(end - p));
        if (LH_UNLIKELY(!k)) {
          char nb[24];
          nb[lh_num_format_int(nb, (int64_t)((const char *)p - s) + 1)] = 0;
          b->len = (size_t)(o - b->data);
          lh_path_error(e->L, path, is_key
            ? "invalid UTF-8 at byte %s of a key (use lh.bytes for binary data)"
            : "invalid UTF-8 at byte %s (use lh.bytes for binary data)", nb);
        }
        memcpy(o, p, k);
        o += k; p += k;
        continue;
      }
      /* An escape: up to 6 bytes for this one; keep room for the rest and the quote. */
      b->len = (size_t)(o - b->data);
      o = need(e, (size_t)(end - p) + 7);
      if (x == 'u') {
        memcpy(o, "\\u00", 4);
        o[4] = HEX[c >> 4];
        o[5] = HEX[c & 15];
        o += 6;
      } else {
        o[0] = '\\';
        o[1] = x;
        o += 2;
      }
      p++;
    }
  }
  *o++ = '"';
  b->len = (size_t)(o - b->data);
}

static void put_integer(enc *e, int64_t v) {
  char *o = need(e, 24);
  e->b->len += lh_num_format_int(o, v);
}

static void put_number(enc *e, int idx, const lh_path *path) {
  lua_State *L = e->L;
  lua_Number d;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) { put_integer(e, (int64_t)lua_tointeger(L, idx)); return; }
#endif
  d = lua_tonumber(L, idx);
  if (LH_UNLIKELY(d != d || d - d != 0)) lh_path_error(L, path, "NaN and infinity have no JSON form");
#if LUA_VERSION_NUM < 503
  /* Lua 5.1 / LuaJIT have no integers: integral values within +-2^53 print as integers
   * (those are the numbers json_decode gives for integers; larger ones: int64.h) */
  if (d == floor(d) && fabs(d) <= 9007199254740992.0 && !(d == 0 && signbit(d))) {
    put_integer(e, (int64_t)d);
    return;
  }
#endif
  {
    char *o = need(e, LH_NUM_DOUBLE_MAX);
    e->b->len += lh_num_format_double(o, (double)d);
  }
}

/* Lua integer value of the key at k if it is one (an integral float under 5.1). */
static int key_integer(lua_State *L, int k, lua_Integer *out) {
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, k)) { *out = lua_tointeger(L, k); return 1; }
  return 0;
#else
  lua_Number x;
  if (lua_type(L, k) != LUA_TNUMBER) return 0;
  x = lua_tonumber(L, k);
  if (x != floor(x) || !(x >= -9223372036854775808.0 && x < 9223372036854775808.0)) return 0;
  *out = (lua_Integer)x;
  return 1;
#endif
}

enum { K_AUTO, K_ARRAY, K_EMPTY_ARRAY };

/* A typed value (lh.bytes(...), lh.int(...), ...) or a timestamp object met inside JSON: JSON
 * has no faithful form for it (it would silently become an object of its internals). */
static void typed_in_json(enc *e, int t, const lh_path *path, int is_ts) {
  lua_State *L = e->L;
  const char *kind = "TIMESTAMP";
  if (!is_ts) {
    lua_pushliteral(L, "type");
    lua_rawget(L, t);
    kind = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "typed";
  }
  lh_path_error(L, path, "a %s value cannot be inside JSON content (use plain Lua values in tables, "
                "or nest typed values with lh.array, lh.map or lh.struct)", kind);
}

/* The table at t is not a plain object and not an array walked in order: check all its keys.
 * Returns n when they are exactly 1..n; otherwise raises the error that fits best. */
static lua_Integer check_array_keys(enc *e, int t, const lh_path *path, int kind) {
  lua_State *L = e->L;
  lua_Integer count = 0, max = 0, bad = 0, v;
  int has_str = 0, has_int = 0, has_bad = 0;
  const char *bad_type = NULL;
  char nb[32], cb[32];
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      has_str = 1;
    } else if (key_integer(L, -1, &v)) {
      has_int = 1;
      if (v < 1) { if (!has_bad) { has_bad = 1; bad = v; } }
      else { count++; if (v > max) max = v; }
    } else if (!bad_type) {
      bad_type = lua_type(L, -1) == LUA_TNUMBER ? "float" : luaL_typename(L, -1);
    }
  }
  if (bad_type) lh_path_error(L, path, "keys must be strings, or 1..n (found a %s key)", bad_type);
  if (has_str && has_int) lh_path_error(L, path, "mixed string and integer keys");
  if (has_str) lh_path_error(L, path, kind == K_ARRAY
                             ? "string key in a table marked as an array"
                             : "keys must be strings, or 1..n");
  if (has_bad) {
    nb[lh_num_format_int(nb, (int64_t)bad)] = 0;
    lh_path_error(L, path, "keys must be strings, or 1..n (found key %s)", nb);
  }
  if (max != count) {
    nb[lh_num_format_int(nb, (int64_t)max)] = 0;
    cb[lh_num_format_int(cb, (int64_t)count)] = 0;
    lh_path_error(L, path, "sparse array: key %s but only %s elements", nb, cb);
  }
  return count;
}

/* The table at t, which is the stack top. */
static void encode_table(enc *e, int t, const lh_path *path, const anc *up, int depth) {
  lua_State *L = e->L;
  lh_buf *b = e->b;
  const void *tp = lua_topointer(L, t);
  const anc *a;
  anc me;
  int kind = K_AUTO;
  lua_Integer i;
  size_t start;

  for (a = up; a; a = a->up)
    if (a->t == tp) lh_path_error(L, path, "cycle: this table contains itself");
  if (depth > LH_JSON_MAX_DEPTH) lh_path_error(L, path, "nesting deeper than %d", LH_JSON_MAX_DEPTH);
  if (lua_getmetatable(L, t)) {
    const void *mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    if (!e->markers_found) find_markers(e);
    if (mt == e->arr_mt || mt == e->cj_arr_mt) kind = K_ARRAY;
    else if (mt == e->cj_earr_mt) kind = K_EMPTY_ARRAY;
    else if (LH_UNLIKELY(mt == e->typed_mt || mt == e->ts_mt)) {
      int64_t v; /* lh.int(...) is an integer (the exact form of a large one under Lua 5.1) */
      if (mt == e->typed_mt && lh_int64_get(L, t, &v, path, LH_INT_TYPED)) {
        put_integer(e, v);
        return;
      }
      typed_in_json(e, t, path, mt == e->ts_mt);
    }
  }
  me.t = tp;
  me.up = up;

  lua_pushnil(L);
  if (!lua_next(L, t)) {
    put_lit(e, kind == K_AUTO ? "{}" : "[]", 2);
    return;
  }
  /* key at t + 1, value at t + 2 */
  if (lua_type(L, t + 1) == LUA_TSTRING && kind != K_ARRAY) {
    put_char(e, '{');
    do {
      size_t kn;
      const char *ks;
      lh_path child;
      if (LH_UNLIKELY(lua_type(L, t + 1) != LUA_TSTRING)) {
        lua_pop(L, 2);
        check_array_keys(e, t, path, kind); /* raises: there is a string key too */
      }
      ks = lua_tolstring(L, t + 1, &kn);
      put_string(e, ks, kn, path, 1);
      put_char(e, ':');
      child = lh_path_field(path, ks, kn);
      encode_value(e, t + 2, &child, &me, depth + 1);
      lua_pop(L, 1);
      put_char(e, ',');
    } while (lua_next(L, t));
    b->data[b->len - 1] = '}';
    return;
  }

  /* An array. Fast path: tables built as sequences yield keys 1, 2, 3, ... in order. */
  start = b->len;
  put_char(e, '[');
  for (i = 1;; i++) {
    lua_Integer k;
    lh_path child;
    if (!key_integer(L, t + 1, &k) || k != i) break;
    child = lh_path_index(path, i);
    encode_value(e, t + 2, &child, &me, depth + 1);
    lua_pop(L, 1);
    put_char(e, ',');
    if (!lua_next(L, t)) {
      b->data[b->len - 1] = ']';
      return;
    }
  }
  /* Out of order (or not an array at all): check every key, then write 1..n. */
  lua_pop(L, 2);
  b->len = start;
  {
    lua_Integer n = check_array_keys(e, t, path, kind);
    put_char(e, '[');
    for (i = 1; i <= n; i++) {
      lh_path child = lh_path_index(path, i);
      lua_rawgeti(L, t, i);
      encode_value(e, t + 1, &child, &me, depth + 1);
      lua_pop(L, 1);
      put_char(e, ',');
    }
    b->data[b->len - 1] = ']';
  }
}

/* The value at idx, which is the stack top. */
static void encode_value(enc *e, int idx, const lh_path *path, const anc *up, int depth) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    put_string(e, s, n, path, 0);
    return;
  }
  case LUA_TNUMBER:
    put_number(e, idx, path);
    return;
  case LUA_TTABLE:
    encode_table(e, idx, path, up, depth);
    return;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) put_lit(e, "true", 4);
    else put_lit(e, "false", 5);
    return;
  case LUA_TLIGHTUSERDATA: {
    void *p = lua_touserdata(L, idx);
    if (p && !e->markers_found) find_markers(e);
    if (!p) put_lit(e, "null", 4);
    else if (p == (void *)&lh_json_empty_array_key || (e->has_cj_earr && p == e->cj_earr)) put_lit(e, "[]", 2);
    else lh_path_error(L, path, "cannot encode a light userdata as JSON");
    return;
  }
  case LH_TCDATA: { /* LuaJIT: an int64_t / uint64_t is an integer; other cdata raise */
    int64_t v;
    lh_int64_get(L, idx, &v, path, 0);
    put_integer(e, v);
    return;
  }
  default:
    lh_path_error(L, path, "cannot encode a %s as JSON", luaL_typename(L, idx));
  }
}

/* The markers other than ours: lua-cjson's, when it is loaded (raw lookups only). */
static void find_markers(enc *e) {
  lua_State *L = e->L;
  e->markers_found = 1;
  reg_get(L, &lh_json_array_mt_key);
  e->arr_mt = lua_istable(L, -1) ? lua_topointer(L, -1) : NULL;
  lua_pop(L, 1);
  reg_get(L, &lh_value_typed_mt_key);
  e->typed_mt = lua_istable(L, -1) ? lua_topointer(L, -1) : NULL;
  lua_pop(L, 1);
  luaL_getmetatable(L, LH_TIMESTAMP_MT);
  e->ts_mt = lua_istable(L, -1) ? lua_topointer(L, -1) : NULL;
  lua_pop(L, 1);
  e->cj_arr_mt = e->cj_earr_mt = NULL;
  e->cj_earr = NULL;
  e->has_cj_earr = 0;
  lua_pushliteral(L, "_LOADED");
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (lua_istable(L, -1)) {
    lua_pushliteral(L, "cjson");
    lua_rawget(L, -2);
    if (lua_istable(L, -1)) {
      lua_pushliteral(L, "array_mt");
      lua_rawget(L, -2);
      if (lua_istable(L, -1)) e->cj_arr_mt = lua_topointer(L, -1);
      lua_pop(L, 1);
      lua_pushliteral(L, "empty_array_mt");
      lua_rawget(L, -2);
      if (lua_istable(L, -1)) e->cj_earr_mt = lua_topointer(L, -1);
      lua_pop(L, 1);
      lua_pushliteral(L, "empty_array");
      lua_rawget(L, -2);
      if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
        e->cj_earr = lua_touserdata(L, -1);
        e->has_cj_earr = e->cj_earr != NULL;
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void lh_json_encode(lua_State *L, int idx, lh_buf *out, const lh_path *path) {
  enc e;
  int top, t;
#if LUA_VERSION_NUM >= 502
  idx = lua_absindex(L, idx);
#else
  if (idx < 0 && idx > LUA_REGISTRYINDEX) idx = lua_gettop(L) + idx + 1;
#endif
  e.L = L;
  e.b = out;
  t = lua_type(L, idx);
  /* Two slots per nesting level (key, value), plus a few for markers and error messages. */
  if (!lua_checkstack(L, t == LUA_TTABLE ? 2 * LH_JSON_MAX_DEPTH + 20 : 20)) no_memory(L);
  /* The markers (metatables and light userdata that say "array", "empty array", "typed")
   * cost registry and package.loaded lookups: made only when a value could be one. */
  e.markers_found = 0;
  top = lua_gettop(L);
  lua_pushvalue(L, idx);
  encode_value(&e, top + 1, path, NULL, 1);
  lua_settop(L, top);
}

/* ---------------------------------------------------------------- decoder */

/* Correctly rounded value of the JSON number s[0..n) (already validated, no sign). */
static double slow_number(lua_State *L, const char *s, size_t n) {
  char small[128], *buf = small;
  double v;
  int ud = 0;
  /* room for the text with the decimal point spelled the locale's way (lh_num_parse) */
  if (n + 16 > sizeof small) {
    buf = (char *)lua_newuserdata(L, n + 16);
    ud = 1;
  }
  v = lh_num_parse(s, n, buf);
  if (ud) lua_pop(L, 1);
  return v;
}

typedef struct dec {
  lua_State *L;
  const unsigned char *p, *end, *start;
  char *err;
  size_t errlen;
  int build;   /* push the Lua value; 0: only check the text (lh_json_check) */
  int mt;      /* stack index of the array metatable (nil until the first array) */
  int depth;
  unsigned char sbuf[2048]; /* strings with escapes are unescaped here (or in a userdata) */
} dec;

static int fail(dec *d, const unsigned char *at, const char *fmt, ...) {
  if (d->errlen > 0) {
    va_list ap;
    int n = snprintf(d->err, d->errlen, "at byte %llu: ", (unsigned long long)(at - d->start) + 1);
    if (n >= 0 && (size_t)n < d->errlen) {
      va_start(ap, fmt);
      vsnprintf(d->err + n, d->errlen - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return 0;
}

/* "'x'", "byte 0xNN" or "end of text", for messages. */
static const char *found(dec *d, const unsigned char *p, char *buf, size_t n) {
  if (p >= d->end) return "end of text";
  if (*p >= 0x20 && *p < 0x7f) snprintf(buf, n, "'%c'", *p);
  else snprintf(buf, n, "byte 0x%02X", *p);
  return buf;
}

static int fail_expected(dec *d, const unsigned char *p, const char *what) {
  char fb[16];
  return fail(d, p, "expected %s, found %s", what, found(d, p, fb, sizeof fb));
}

static inline const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end) {
  while (p < end && *p <= ' ' && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  return p;
}

#define IS_DIGIT(c) ((unsigned)((c) - '0') < 10)

static int parse_number(dec *d) {
  lua_State *L = d->L;
  const unsigned char *p = d->p, *end = d->end, *s = p;
  uint64_t m = 0;
  int nd = 0, neg = 0, is_float = 0, truncated = 0;
  long e10 = 0;
  double v;

  if (*p == '-') { neg = 1; p++; }
  if (p >= end || !IS_DIGIT(*p)) return fail_expected(d, p, "a digit");
  if (*p == '0') {
    p++;
    if (p < end && IS_DIGIT(*p)) return fail(d, p - 1, "leading zeros are not allowed");
  } else {
    do {
      if (nd < 19) { m = m * 10 + (unsigned)(*p - '0'); nd++; }
      else { e10++; truncated |= *p != '0'; }
      p++;
    } while (p < end && IS_DIGIT(*p));
  }
  if (p < end && *p == '.') {
    is_float = 1;
    p++;
    if (p >= end || !IS_DIGIT(*p)) return fail_expected(d, p, "a digit after '.'");
    do {
      if (nd < 19) { m = m * 10 + (unsigned)(*p - '0'); e10--; nd += m != 0; }
      else truncated |= *p != '0';
      p++;
    } while (p < end && IS_DIGIT(*p));
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    long x = 0;
    int eneg = 0;
    is_float = 1;
    p++;
    if (p < end && (*p == '+' || *p == '-')) { eneg = *p == '-'; p++; }
    if (p >= end || !IS_DIGIT(*p)) return fail_expected(d, p, "a digit in the exponent");
    do {
      if (x < 100000) x = x * 10 + (*p - '0');
      p++;
    } while (p < end && IS_DIGIT(*p));
    e10 += eneg ? -x : x;
  }
  d->p = p;

  if (!is_float && e10 == 0) {
    /* at most 19 digits: an integer if it fits */
    /* beyond 2^53 under 5.1 / LuaJIT: the exact forms of int64.h */
    if (!neg && m <= (uint64_t)INT64_MAX) {
      if (!d->build) return 1;
      lh_int64_push(L, (int64_t)m);
      return 1;
    }
    if (neg && m <= (uint64_t)INT64_MAX + 1) {
      if (!d->build) return 1;
      lh_int64_push(L, (int64_t)(0 - m));
      return 1;
    }
  }
  if (!truncated && lh_num_exact(m, e10, &v)) goto done;
  v = slow_number(L, (const char *)s + neg, (size_t)(p - s) - (size_t)neg);
  if (v - v != 0) return fail(d, s, "number out of range (beyond the largest double)");
done:
  if (d->build) lua_pushnumber(L, (lua_Number)(neg ? -v : v));
  return 1;
}

static inline int hexval(unsigned c) {
  if (c - '0' < 10) return (int)(c - '0');
  c |= 0x20;
  if (c - 'a' < 6) return (int)(c - 'a' + 10);
  return -1;
}

/* The 4 hex digits at p (p + 4 <= end is checked by the caller), or -1. */
static inline long hex4(const unsigned char *p) {
  int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]), e = hexval(p[3]);
  if ((a | b | c | e) < 0) return -1;
  return (long)((a << 12) | (b << 8) | (c << 4) | e);
}

/* The rest of a string with escapes: s is its first byte, p its first backslash. */
static int parse_string_escaped(dec *d, const unsigned char *s, const unsigned char *p) {
  lua_State *L = d->L;
  const unsigned char *q = p, *end = d->end;
  unsigned char *out, *o;
  size_t cap;
  /* The closing quote; unescaping only shrinks the text, so q - s bytes are enough. */
  while (q < end && *q != '"') q += *q == '\\' ? 2 : 1;
  if (q >= end) return fail(d, d->p, "unterminated string");
  cap = (size_t)(q - s);
  out = cap <= sizeof d->sbuf ? d->sbuf : (unsigned char *)lua_newuserdata(L, cap);
  memcpy(out, s, (size_t)(p - s));
  o = out + (p - s);
  while (p < q) {
    unsigned c = *p;
    if (c == '\\') {
      const unsigned char *esc = p;
      p++;
      switch (*p) {
      case '"': *o++ = '"'; p++; break;
      case '\\': *o++ = '\\'; p++; break;
      case '/': *o++ = '/'; p++; break;
      case 'b': *o++ = '\b'; p++; break;
      case 'f': *o++ = '\f'; p++; break;
      case 'n': *o++ = '\n'; p++; break;
      case 'r': *o++ = '\r'; p++; break;
      case 't': *o++ = '\t'; p++; break;
      case 'u': {
        long u;
        if (q - p < 5 || (u = hex4(p + 1)) < 0) return fail(d, esc, "invalid \\u escape");
        p += 5;
        if (u >= 0xD800 && u <= 0xDBFF) {
          long lo;
          if (q - p < 6 || p[0] != '\\' || p[1] != 'u' || (lo = hex4(p + 2)) < 0xDC00 || lo > 0xDFFF)
            return fail(d, esc, "lone surrogate \\u%04lX (not followed by \\uDC00..\\uDFFF)", u);
          u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
          return fail(d, esc, "lone surrogate \\u%04lX", u);
        }
        if (u < 0x80) {
          *o++ = (unsigned char)u;
        } else if (u < 0x800) {
          *o++ = (unsigned char)(0xC0 | (u >> 6));
          *o++ = (unsigned char)(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
          *o++ = (unsigned char)(0xE0 | (u >> 12));
          *o++ = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
          *o++ = (unsigned char)(0x80 | (u & 0x3F));
        } else {
          *o++ = (unsigned char)(0xF0 | (u >> 18));
          *o++ = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
          *o++ = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
          *o++ = (unsigned char)(0x80 | (u & 0x3F));
        }
        break;
      }
      default: {
        char fb[16];
        return fail(d, esc, "invalid escape: backslash followed by %s", found(d, p, fb, sizeof fb));
      }
      }
    } else if (c < 0x80) {
      if (c < 0x20) return fail(d, p, "control character in string (must be escaped)");
      *o++ = (unsigned char)c;
      p++;
    } else {
      size_t k = lh_utf8_seq(p, (size_t)(q - p));
      if (!k) return fail(d, p, "invalid UTF-8 in string");
      memcpy(o, p, k);
      o += k;
      p += k;
    }
  }
  if (d->build) {
    lua_pushlstring(L, (const char *)out, (size_t)(o - out));
    if (out != d->sbuf) lua_remove(L, -2);
  } else if (out != d->sbuf) {
    lua_pop(L, 1);
  }
  d->p = q + 1;
  return 1;
}

/* The string at d->p (an opening quote); pushes it. */
static int parse_string(dec *d) {
  const unsigned char *s = d->p + 1, *p = s, *end = d->end;
  for (;;) {
#if LH_SWAR
    while (end - p >= 8) {
      uint64_t w, m;
      memcpy(&w, p, 8);
      m = special_mask(w);
      if (m) { p += (unsigned)__builtin_ctzll(m) >> 3; break; }
      p += 8;
    }
#endif
    while (p < end && !ESC[*p]) p++;
    if (p >= end) return fail(d, d->p, "unterminated string");
    if (*p == '"') {
      if (d->build) lua_pushlstring(d->L, (const char *)s, (size_t)(p - s));
      d->p = p + 1;
      return 1;
    }
    if (*p == '\\') return parse_string_escaped(d, s, p);
    if (*p < 0x20) return fail(d, p, "control character in string (must be escaped)");
    {
      size_t k = lh_utf8_seq(p, (size_t)(end - p));
      if (!k) return fail(d, p, "invalid UTF-8 in string");
      p += k;
    }
  }
}

static int parse_value(dec *d);

/* Containers are made at their final size: the first JSON_GATHER members are parsed onto the
 * stack and only then put into a table created with room for exactly that many, so a small
 * object or array (the usual event content) costs no rehash; larger ones continue with plain
 * inserts into that table (Lua grows it by doubling). */
#define JSON_GATHER 32

/* Pop the n values above `first` (a stack index) into a new array table at index `first`. */
static void array_from_stack(dec *d, int first, int n) {
  lua_State *L = d->L;
  if (lua_isnil(L, d->mt)) { /* the first array of the text: look the metatable up now */
    lh_json_push_array_mt(L);
    lua_replace(L, d->mt);
  }
  lua_createtable(L, n, 0);
  lua_pushvalue(L, d->mt);
  lua_setmetatable(L, -2);
  lua_insert(L, first);
  for (int i = n; i >= 1; i--) lua_rawseti(L, first, i);
}

static int parse_array(dec *d) {
  lua_State *L = d->L;
  const unsigned char *p;
  lua_Integer i = 1;
  int first = lua_gettop(L) + 1, gathering = 1;
  if (++d->depth > LH_JSON_MAX_DEPTH) return fail(d, d->p, "nesting deeper than %d", LH_JSON_MAX_DEPTH);
  if (!d->build) gathering = 0; /* and nothing is pushed */
  else if (!lua_checkstack(L, JSON_GATHER + 4)) no_memory(L);
  p = skip_ws(d->p + 1, d->end);
  if (p < d->end && *p == ']') {
    if (d->build) array_from_stack(d, first, 0);
    d->p = p + 1;
    d->depth--;
    return 1;
  }
  for (;;) {
    d->p = p;
    if (!parse_value(d)) return 0;
    if (!gathering) {
      if (d->build) lua_rawseti(L, first, i);
    } else if (i == JSON_GATHER) {
      array_from_stack(d, first, (int)i);
      gathering = 0;
    }
    i++;
    p = skip_ws(d->p, d->end);
    if (p < d->end && *p == ',') {
      p = skip_ws(p + 1, d->end);
      continue;
    }
    if (p < d->end && *p == ']') break;
    return fail_expected(d, p, "',' or ']'");
  }
  if (gathering) array_from_stack(d, first, (int)(i - 1));
  d->p = p + 1;
  d->depth--;
  return 1;
}

/* Move the n key/value pairs above `first` into a new table at index `first`, in text order
 * (a repeated key: the last one wins). */
static void object_from_stack(dec *d, int first, int n) {
  lua_State *L = d->L;
  lua_createtable(L, 0, n);
  int t = lua_gettop(L);
  for (int k = 0; k < n; k++) {
    lua_pushvalue(L, first + 2 * k);
    lua_pushvalue(L, first + 2 * k + 1);
    lua_rawset(L, t);
  }
  lua_replace(L, first);
  lua_settop(L, first);
}

static int parse_object(dec *d) {
  lua_State *L = d->L;
  const unsigned char *p;
  int first = lua_gettop(L) + 1, n = 0, gathering = 1;
  if (++d->depth > LH_JSON_MAX_DEPTH) return fail(d, d->p, "nesting deeper than %d", LH_JSON_MAX_DEPTH);
  if (!d->build) gathering = 0; /* and nothing is pushed */
  else if (!lua_checkstack(L, 2 * JSON_GATHER + 4)) no_memory(L);
  p = skip_ws(d->p + 1, d->end);
  if (p < d->end && *p == '}') {
    if (d->build) lua_createtable(L, 0, 0);
    d->p = p + 1;
    d->depth--;
    return 1;
  }
  for (;;) {
    if (p >= d->end || *p != '"') return fail_expected(d, p, "a string key");
    d->p = p;
    if (!parse_string(d)) return 0;
    p = skip_ws(d->p, d->end);
    if (p >= d->end || *p != ':') return fail_expected(d, p, "':'");
    d->p = skip_ws(p + 1, d->end);
    if (!parse_value(d)) return 0;
    if (!gathering) {
      if (d->build) lua_rawset(L, first);
    } else if (++n == JSON_GATHER) {
      object_from_stack(d, first, n);
      gathering = 0;
    }
    p = skip_ws(d->p, d->end);
    if (p < d->end && *p == ',') {
      p = skip_ws(p + 1, d->end);
      continue;
    }
    if (p < d->end && *p == '}') break;
    return fail_expected(d, p, "',' or '}'");
  }
  if (gathering) object_from_stack(d, first, n);
  d->p = p + 1;
  d->depth--;
  return 1;
}

/* The value at d->p (whitespace already skipped); pushes it. */
static int parse_value(dec *d) {
  const unsigned char *p = d->p;
  size_t left = (size_t)(d->end - p);
  if (!left) return fail_expected(d, p, "a value");
  switch (*p) {
  case '"': return parse_string(d);
  case '{': return parse_object(d);
  case '[': return parse_array(d);
  case '-': case '0': case '1': case '2': case '3': case '4':
  case '5': case '6': case '7': case '8': case '9':
    return parse_number(d);
  case 't':
    if (left >= 4 && memcmp(p, "true", 4) == 0) { if (d->build) lua_pushboolean(d->L, 1); d->p = p + 4; return 1; }
    return fail(d, p, "invalid literal (expected true)");
  case 'f':
    if (left >= 5 && memcmp(p, "false", 5) == 0) { if (d->build) lua_pushboolean(d->L, 0); d->p = p + 5; return 1; }
    return fail(d, p, "invalid literal (expected false)");
  case 'n':
    if (left >= 4 && memcmp(p, "null", 4) == 0) { if (d->build) lua_pushlightuserdata(d->L, NULL); d->p = p + 4; return 1; }
    return fail(d, p, "invalid literal (expected null)");
  default:
    return fail_expected(d, p, "a value");
  }
}

static int decode(lua_State *L, const char *text, size_t len, char *err, size_t errlen, int build) {
  dec d;
  int base = lua_gettop(L);
  if (errlen > 0) err[0] = 0;
  d.L = L;
  d.start = (const unsigned char *)text;
  d.end = d.start + len;
  d.err = err;
  d.errlen = errlen;
  d.build = build;
  d.depth = 0;
  d.mt = 0;
  if (build) {
    /* Per nesting level: the container and (in objects) a key; plus scratch. */
    if (!lua_checkstack(L, 2 * LH_JSON_MAX_DEPTH + 20)) no_memory(L);
    lua_pushnil(L); /* the array metatable's slot: a registry lookup only when an array comes */
    d.mt = base + 1;
  }
  d.p = skip_ws(d.start, d.end);
  if (!parse_value(&d)) {
    lua_settop(L, base);
    return 0;
  }
  d.p = skip_ws(d.p, d.end);
  if (d.p != d.end) {
    lua_settop(L, base);
    return fail_expected(&d, d.p, "end of text after the value");
  }
  if (build) lua_remove(L, base + 1);
  return 1;
}

int lh_json_decode(lua_State *L, const char *text, size_t len, char *err, size_t errlen) {
  return decode(L, text, len, err, errlen, 1);
}

int lh_json_check(lua_State *L, const char *text, size_t len, char *err, size_t errlen) {
  return decode(L, text, len, err, errlen, 0);
}

/* ---------------------------------------------------------------- Lua functions */

int lh_json_lua_encode(lua_State *L) {
  lh_context *c = lh_context_get(L);
  lh_path root = lh_path_root("json_encode", 1);
  luaL_checkany(L, 1);
  lh_buf_reset(&c->json);
  lh_json_encode(L, 1, &c->json, &root);
  lua_pushlstring(L, c->json.data, c->json.len);
  return 1;
}

int lh_json_lua_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char err[200];
  if (lh_json_decode(L, s, n, err, sizeof err)) return 1;
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}
