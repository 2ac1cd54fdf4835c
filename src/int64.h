/* 64-bit integers on every runtime, exact both ways.
 *
 * Lua 5.3+ has a 64-bit integer subtype. Lua 5.1 and LuaJIT have only doubles, exact up to
 * 2^53, so an int beyond that travels in another form:
 *   LuaJIT   an FFI int64_t cdata (`12345678901234567LL`, the OpenResty convention); uint64_t
 *            cdata are taken too when they fit an int64
 *   Lua 5.1  lh's typed int { type = "INT", value = "<decimal text>" } (what lh.int("...") makes)
 * and integers within +-2^53 stay plain numbers, so ordinary code keeps working.
 *
 * The classic C API shows a cdata only as a value of type LH_TCDATA whose lua_topointer is its
 * payload (LuaJIT 2.1's lj_obj_ptr); its C type is not visible. So at load time (lh_int64_open)
 * a small FFI shim is set up in the state's registry: it tells an int64_t from a uint64_t from
 * anything else, and makes new int64_t boxes whose payload C then writes. The shim checks once
 * that lua_topointer really gives the payload of a known value, and refuses to load otherwise,
 * rather than read garbage. Only values that are cdata (rare) reach it: plain numbers never
 * call into Lua. */
#ifndef LH_INT64_H
#define LH_INT64_H

#include <stdint.h>
#include <stddef.h>
#include "compat.h"
#include "path.h"

/* LuaJIT's type number for FFI cdata (lj_obj.h; its lua.h has no name for it). */
#define LH_TCDATA 10

/* Which forms lh_int64_get takes besides numbers and cdata. */
#define LH_INT_TEXT  1 /* decimal text: "-123" (optional '-', digits only) */
#define LH_INT_TYPED 2 /* lh's typed int { type = "INT", value = <any form above> } */

/* Set up the FFI shim when this state is LuaJIT (a no-op elsewhere). Called by luaopen. */
void lh_int64_open(lua_State *L);

/* The integer at idx: a Lua integer (5.3+), an integral number within +-2^53 (5.1, LuaJIT:
 * a larger one may already be rounded), an int64_t or uint64_t cdata (LuaJIT), and the forms
 * `flags` adds. Returns 1 and sets *out; returns 0 when the value is none of these kinds (the
 * caller names what it expected). Raises, naming path, for a cdata of another C type, a
 * uint64_t above INT64_MAX, and text that is not a decimal integer in the int64 range. */
int lh_int64_get(lua_State *L, int idx, int64_t *out, const lh_path *path, int flags);

/* What the value at idx is, for "expected an integer, got ..." when lh_int64_get returned 0:
 * "a float with a fraction", a number too large, or its type name. */
const char *lh_int64_not_integer(lua_State *L, int idx);

/* Push v as this runtime's integer (see the header). */
void lh_int64_push(lua_State *L, int64_t v);

/* The decimal text of v into buf (room for 21 bytes), NUL-terminated; returns its length. */
size_t lh_int64_format(char *buf, int64_t v);

/* Parse decimal text exactly ('-'? digits); 1 and *out on success, 0 on anything else
 * (empty, a sign alone, other characters, beyond the int64 range). */
int lh_int64_parse(const char *s, size_t n, int64_t *out);

/* core._int(v): v (a number, decimal text, an int64/uint64 cdata) as this runtime's integer,
 * or a misuse error naming lh.int's argument. For lh.int in values.lua. */
int lh_int64_lua_int(lua_State *L);

#endif
