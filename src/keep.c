#include <string.h>
#include "keep.h"

/* The codec's user values that hold its tables (codec.c). */
#define ANCHORS_UV 2
#define NAMES_UV 3

static const char *const key_names[LH_KEY_COUNT] = {
  "content", "type", "value", "name", "version", "seconds", "nanos",
};

void lh_keep_push_tables(lua_State *L) {
  lua_newtable(L);
  lua_createtable(L, LH_KEY_COUNT, 0);
  for (int i = 0; i < LH_KEY_COUNT; i++) {
    lua_pushstring(L, key_names[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

/* Empty the anchor table's first c->kept slots: no allocation, so no Lua code runs. */
static void release(lua_State *L, lh_codec *c) {
  for (int i = c->kept; i > 0; i--) {
    lua_pushnil(L);
    lua_rawseti(L, c->keep_slot, i);
  }
  c->kept = 0;
}

void lh_keep_begin(lua_State *L, lh_codec *c) {
  lh_arena_reset(&c->arena);
  luaL_checkstack(L, 4, "littlehorse: out of memory");
  lua_getiuservalue(L, lua_upvalueindex(1), ANCHORS_UV);
  c->keep_slot = lua_gettop(L);
  lua_getiuservalue(L, lua_upvalueindex(1), NAMES_UV); /* at keep_slot + 1 */
  release(L, c); /* what a conversion that raised left there */
}

void lh_keep_end(lua_State *L, lh_codec *c) {
  release(L, c);
  lua_settop(L, c->keep_slot - 1);
  c->keep_slot = 0;
}

int lh_keep_field(lua_State *L, lh_codec *c, int t, int key) {
  t = lua_absindex(L, t);
  lua_rawgeti(L, c->keep_slot + 1, key);
  lua_rawget(L, t); /* returns nothing before 5.3 */
  return lua_type(L, -1);
}

const char *lh_keep_string(lua_State *L, lh_codec *c, int idx, size_t *len) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  if (len) *len = n;
  if (n <= LH_KEEP_COPY_MAX) {
    char *copy = lh_arena_alloc(&c->arena, n + 1);
    if (!copy) luaL_error(L, "littlehorse: out of memory");
    memcpy(copy, s, n + 1); /* with the terminator every Lua string has */
    return copy;
  }
  /* Anchored, not copied: a Lua string never moves, so s stays valid while the table holds
   * it. Storing into the table may grow it, which allocates memory but creates no object, so
   * no collection step (and no finalizer) can run here. */
  lua_pushvalue(L, idx);
  lua_rawseti(L, c->keep_slot, ++c->kept);
  return s;
}
