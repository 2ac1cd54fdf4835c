#include <stdarg.h>
#include <math.h>
#include <ctype.h>
#include <string.h>
#include "path.h"

static int is_identifier(const char *s, size_t n) {
  if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return 0;
  return 1;
}

static void add_segment(luaL_Buffer *b, const lh_path *p, int first) {
  if (p->key) {
    if (is_identifier(p->key, p->keylen)) {
      if (!first) luaL_addchar(b, '.');
      luaL_addlstring(b, p->key, p->keylen);
    } else {
      luaL_addstring(b, "[\"");
      for (size_t i = 0; i < p->keylen && i < 64; i++) {
        unsigned char c = (unsigned char)p->key[i];
        if (c == '"' || c == '\\') { luaL_addchar(b, '\\'); luaL_addchar(b, (char)c); }
        else if (c < 0x20 || c == 0x7f) { char e[8]; snprintf(e, sizeof e, "\\%03u", c); luaL_addstring(b, e); }
        else luaL_addchar(b, (char)c);
      }
      if (p->keylen > 64) luaL_addstring(b, "...");
      luaL_addstring(b, "\"]");
    }
  } else {
    char e[32];
    snprintf(e, sizeof e, "[%lld]", (long long)p->index);
    luaL_addstring(b, e);
  }
}

/* Push the path as text: `content.items[3]`, `content["odd key"]`. */
static void path_push(lua_State *L, const lh_path *p) {
  /* Segments are linked child -> parent; collect them root-first (paths are shallow). */
  const lh_path *seg[256];
  int n = 0;
  for (const lh_path *q = p; q && n < 256; q = q->parent) seg[n++] = q;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int first = 1;
  for (int i = n - 1; i >= 0; i--) {
    if (!seg[i]->parent && (!seg[i]->key || seg[i]->keylen == 0)) continue; /* unnamed root */
    add_segment(&b, seg[i], first);
    first = 0;
  }
  luaL_pushresult(&b);
}

/* Lua files of this library live in a `littlehorse/` directory: "@.../littlehorse/client.lua". */
static int is_library_source(const char *source) {
  static const char dir[] = "littlehorse/";
  const size_t dlen = sizeof dir - 1;
  size_t n = strlen(source);
  if (source[0] != '@' || n < 5 || strcmp(source + n - 4, ".lua") != 0) return 0;
  const char *slash = strrchr(source, '/');
  if (!slash || (size_t)(slash + 1 - source) < dlen + 1) return 0;
  const char *d = slash + 1 - dlen;
  return memcmp(d, dir, dlen) == 0 && (d[-1] == '/' || d[-1] == '@');
}

/* Push "chunk:line: " of the first Lua function up the stack outside this library's Lua
 * files, or "" when there is none. */
static void where(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue; /* C, or no line info */
    if (is_library_source(ar.source)) continue;
    lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
    return;
  }
  lua_pushliteral(L, "");
}

int lh_misuse(lua_State *L, const char *fmt, ...) {
  where(L);
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

/* Edit distance (insertions, deletions, substitutions, adjacent swaps) between two short
 * names, capped: names longer than 63 bytes are never "near". */
static size_t distance(const char *a, size_t la, const char *b, size_t lb) {
  enum { MAX = 64 };
  if (la >= MAX || lb >= MAX) return (size_t)-1;
  size_t d[MAX][MAX];
  for (size_t i = 0; i <= la; i++) d[i][0] = i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      size_t cost = a[i - 1] != b[j - 1], best = d[i - 1][j - 1] + cost;
      if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[la][lb];
}

const char *lh_nearest(const char *key, size_t len, const char *const *names) {
  const char *best = NULL;
  size_t best_d = len / 3 + 1; /* a typo, not a different word: at most a third of it wrong */
  if (best_d > 3) best_d = 3;
  for (; *names; names++) {
    size_t d = distance(key, len, *names, strlen(*names));
    if (d <= best_d && (!best || d < distance(key, len, best, strlen(best)))) best = *names;
  }
  return best;
}

void lh_check_keys(lua_State *L, int idx, const lh_path *root, const char *const *names, const char *what) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    size_t n = 0;
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    const char *const *q = names;
    while (k && *q && strcmp(k, *q) != 0) q++;
    if (k && *q) continue;
    luaL_Buffer b; /* the valid names, for the message */
    luaL_buffinit(L, &b);
    for (q = names; *q; q++) {
      if (q != names) luaL_addstring(&b, q[1] ? ", " : " or ");
      luaL_addstring(&b, *q);
    }
    luaL_pushresult(&b);
    if (!k) lh_path_error(L, root, "%ss are named %s, got a %s key", what, lua_tostring(L, -1), luaL_typename(L, -2));
    lh_path pk = lh_path_field(root, k, n);
    const char *near = lh_nearest(k, n, names);
    if (near) lh_path_error(L, &pk, "unknown %s (did you mean %s?)", what, near);
    lh_path_error(L, &pk, "unknown %s (expected %s)", what, lua_tostring(L, -1));
  }
}

int lh_path_error(lua_State *L, const lh_path *p, const char *fmt, ...) {
  const lh_path *root = p;
  while (root->parent) root = root->parent;
  where(L);
  const char *pos = lua_tostring(L, -1);
  path_push(L, p);
  const char *where = lua_tostring(L, -1);
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  const char *msg = lua_tostring(L, -1);
  if (*where) msg = lua_pushfstring(L, "%s: %s", where, msg);
  if (root->fname && *root->fname)
    lua_pushfstring(L, "%sbad argument #%d to '%s' (%s)", pos, root->argn, root->fname, msg);
  else
    lua_pushfstring(L, "%sbad argument #%d (%s)", pos, root->argn, msg);
  return lua_error(L);
}

double lh_check_seconds(lua_State *L, int idx, const lh_path *path) {
  if (lua_type(L, idx) != LUA_TNUMBER)
    lh_path_error(L, path, "expected a number of seconds, got %s", luaL_typename(L, idx));
  double t = (double)lua_tonumber(L, idx);
  if (!(t > 0) || !isfinite(t) || t > 1e9) lh_path_error(L, path, "must be a positive number of seconds");
  return t;
}
