/* Lua value <-> JSON text (RFC 8259), exact in both directions.
 *
 * Encoding: booleans; integers as exact decimals; floats as the shortest text that reads
 * back to the same double, always with a `.` or an `e` (1.0 -> "1.0", 1e300 -> "1e+300");
 * strings must be valid UTF-8; tables with keys 1..n (or marked with the array metatable)
 * -> arrays, tables with string keys -> objects (Lua traversal order), empty plain table ->
 * {}; the light userdata NULL -> null. Only raw access is used, so no Lua code runs.
 * Decoding: strict RFC 8259; integers that fit int64 -> Lua integers, other numbers ->
 * floats; arrays get the array metatable (so decode -> encode gives back `[]`); null -> the
 * light userdata NULL. Neither direction depends on the C locale. */
#ifndef LH_JSON_H
#define LH_JSON_H

#include <stddef.h>
#include "compat.h"
#include "buffer.h"
#include "path.h"

#define LH_JSON_MAX_DEPTH 128

/* Push the array metatable (`__name = "littlehorse.array"`), creating it on first use. A
 * table with this metatable always encodes as a JSON array, even when empty. */
void lh_json_push_array_mt(lua_State *L);

/* Push `lh.empty_array`: a light userdata that encodes as `[]`. */
void lh_json_push_empty_array(lua_State *L);

/* Append the JSON text of the Lua value at idx to out. Misuse (a function, a cycle, a sparse
 * array, NaN, invalid UTF-8, ...) raises through lh_path_error, naming the path of the
 * culprit below `path` (e.g. "content.items[3].bad: cannot encode a function as JSON").
 * Out-of-memory raises "out of memory". On error, out holds a partial text: reset it. */
void lh_json_encode(lua_State *L, int idx, lh_buf *out, const lh_path *path);

/* Parse text[0..len). On success push one Lua value and return 1. On invalid JSON push
 * nothing, write a message such as "at byte 7: expected ',' or ']', found '}'" (byte offsets
 * are 1-based) into err (always NUL-terminated when errlen > 0) and return 0. Only memory
 * errors raise. */
int lh_json_decode(lua_State *L, const char *text, size_t len, char *err, size_t errlen);

/* Check text[0..len) as lh_json_decode would, pushing nothing: 1, or 0 with the same message
 * in err. Makes no Lua value (so no collection step, no finalizer), except a scratch buffer
 * for a string with escapes longer than 2 KiB or a number longer than about 100 digits. */
int lh_json_check(lua_State *L, const char *text, size_t len, char *err, size_t errlen);

/* lua_CFunctions with the context as upvalue 1 (lh_context_get(L)->json is the scratch buffer):
 *   json_encode(v) -> string       raises on misuse ("bad argument #1 to 'json_encode' (...)")
 *   json_decode(s) -> value | nil, err */
int lh_json_lua_encode(lua_State *L);
int lh_json_lua_decode(lua_State *L);

#endif
