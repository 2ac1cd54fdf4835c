#include <string.h>
#include "keep.h"

/* The context's user value that holds its scratch table (context.c): the field-name strings at
 * 1..LH_KEY_COUNT, then the anchored strings of the conversion under way. */
#define SCRATCH_UV 2
#define FIRST_ANCHOR (LH_KEY_COUNT + 1)

static const char *const key_names[LH_KEY_COUNT] = {
  "type", "value", "name", "version", "seconds", "nanos",
  "id", "wf_run_id", "parent_wf_run_id", "external_event_def_id", "guid",
  "created_at", "content", "content_type", "claimed", "thread_run_number",
  "node_run_position", "JSON_OBJ", "JSON_ARR",
};

int lh_keep_names(lua_State *L) {
  lua_getiuservalue(L, lua_upvalueindex(1), SCRATCH_UV);
  return lua_gettop(L);
}

void lh_keep_push_table(lua_State *L) {
  lua_createtable(L, LH_KEY_COUNT + 4, 0);
  for (int i = 0; i < LH_KEY_COUNT; i++) {
    lua_pushstring(L, key_names[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

/* Drop the anchored strings: no allocation, so no Lua code runs. */
static void release(lua_State *L, lh_context *c) {
  for (int i = c->kept; i > 0; i--) {
    lua_pushnil(L);
    lua_rawseti(L, c->keep_slot, LH_KEY_COUNT + i);
  }
  c->kept = 0;
}

void lh_keep_begin(lua_State *L, lh_context *c) {
  lh_arena_reset(&c->arena);
  if (!lua_checkstack(L, 2)) luaL_error(L, "littlehorse: out of memory");
  lua_getiuservalue(L, lua_upvalueindex(1), SCRATCH_UV);
  c->keep_slot = lua_gettop(L);
  if (c->kept) release(L, c); /* what a conversion that raised left there */
}

void lh_keep_end(lua_State *L, lh_context *c) {
  if (c->kept) release(L, c);
  lua_settop(L, c->keep_slot - 1);
  c->keep_slot = 0;
}

int lh_keep_field(lua_State *L, lh_context *c, int t, int key) {
  t = lua_absindex(L, t);
  lua_rawgeti(L, c->keep_slot, key);
  lua_rawget(L, t); /* returns nothing before 5.3 */
  return lua_type(L, -1);
}

const char *lh_keep_bytes(lua_State *L, lh_context *c, int idx, const char *s, size_t n) {
  if (n <= LH_KEEP_COPY_MAX) {
    char *copy = lh_arena_alloc(&c->arena, n + 1);
    if (!copy) luaL_error(L, "littlehorse: out of memory");
    memcpy(copy, s, n + 1); /* with the terminator every Lua string has */
    return copy;
  }
  /* Anchored, not copied: a Lua string never moves, so s stays valid while the table holds
   * it. Storing into the table may grow it, which allocates memory but creates no object, so
   * no collection step (and no finalizer) can run here. */
  luaL_checkstack(L, 1, "littlehorse: out of memory");
  lua_pushvalue(L, idx);
  lua_rawseti(L, c->keep_slot, FIRST_ANCHOR + c->kept++);
  return s;
}

const char *lh_keep_string(lua_State *L, lh_context *c, int idx, size_t *len) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  if (len) *len = n;
  return lh_keep_bytes(L, c, idx, s, n);
}
