#include <stdarg.h>
#include <ctype.h>
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

void lh_path_push(lua_State *L, const lh_path *p) {
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

int lh_path_error(lua_State *L, const lh_path *p, const char *fmt, ...) {
  const lh_path *root = p;
  while (root->parent) root = root->parent;
  lh_path_push(L, p);
  const char *where = lua_tostring(L, -1);
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  const char *msg = lua_tostring(L, -1);
  if (*where) msg = lua_pushfstring(L, "%s: %s", where, msg);
  if (root->fname && *root->fname) {
    lua_pushfstring(L, "bad argument #%d to '%s' (%s)", root->argn, root->fname, msg);
    return lua_error(L);
  }
  return luaL_argerror(L, root->argn, msg);
}
