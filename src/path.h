/* The path of the value being converted (e.g. `content.items[3]`), kept as a chain of
 * stack-allocated segments so that naming the culprit in an error costs nothing until an
 * error actually happens. */
#ifndef LH_PATH_H
#define LH_PATH_H

#include <stddef.h>
#include <string.h>
#include "compat.h"

typedef struct lh_path {
  const struct lh_path *parent;
  const char *key;     /* a field name, or NULL for an array index */
  size_t keylen;
  lua_Integer index;   /* 1-based, when key is NULL */
  int argn;            /* root only: the argument number blamed by errors */
  const char *fname;   /* root only: the function named by errors, or NULL (ask Lua) */
} lh_path;

/* The root of a path: errors read "bad argument #<argn> to '<fname>' (<path>: <msg>)".
 * Naming the function here (rather than asking the debug API, as luaL_argerror does) keeps
 * the message right when the C function is reached through a Lua wrapper or pcall; with
 * fname NULL or "", luaL_argerror names it. */
static inline lh_path lh_path_root(const char *fname, int argn) {
  lh_path p = { NULL, NULL, 0, 0, argn, fname };
  return p;
}
static inline lh_path lh_path_field(const lh_path *parent, const char *key, size_t len) {
  lh_path p = { parent, key, len, 0, 0, NULL };
  return p;
}
static inline lh_path lh_path_index(const lh_path *parent, lua_Integer i) {
  lh_path p = { parent, NULL, 0, i, 0, NULL };
  return p;
}

/* Raise a misuse error blaming the root's argument, message "<path>: <msg>", prefixed with
 * the caller's position (see lh_misuse). */
int lh_path_error(lua_State *L, const lh_path *p, const char *fmt, ...);

/* Raise a formatted misuse error at the caller's position: "chunk:line: " of the first Lua
 * function up the stack that is not one of this library's Lua files (they live in a
 * `littlehorse/` directory), so misuse is blamed on the caller's line, also when the call
 * came through the Lua layer. */
int lh_misuse(lua_State *L, const char *fmt, ...);
/* Raise unless every key of the table at idx is one of the NULL-terminated names (raw
 * iteration), naming the nearest valid one; `what` is the kind of key ("call option"). */
void lh_check_keys(lua_State *L, int idx, const lh_path *root, const char *const *names, const char *what);
/* The number of seconds at idx (a timeout): positive, finite, at most 1e9; otherwise raise,
 * naming path. */
double lh_check_seconds(lua_State *L, int idx, const lh_path *path);
/* The name in the NULL-terminated list nearest to key (a likely typo of it), or NULL. */
const char *lh_nearest(const char *key, size_t len, const char *const *names);

#endif
