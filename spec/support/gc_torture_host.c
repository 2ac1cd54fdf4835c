/* gc_torture_host: a Lua 5.4 interpreter (enough of lua.c to run busted) whose allocator can
 * put the collector to work at every allocation of a Lua object, for the GC-torture suite
 * (scripts/suites/gc.sh, with spec/support/gc_torture.lua as busted's helper).
 *
 *   gc_torture_host SCRIPT [ARGS...]
 *
 * While torture is on (require("lh_gc_torture").on() / .off(), counted), every allocation of a
 * new Lua object (string, table, closure, userdata, thread, upvalue, prototype) fails once: Lua
 * answers a failed allocation with an emergency full collection and then asks again, which
 * this allocator grants. So everything unreachable is freed at every point where Lua code or
 * the C module allocates, exactly where a pointer kept into an object the C code no longer
 * anchors would go stale. Other requests (growing arrays and stacks, lauxlib's buffers, which
 * do not retry) are never failed. Every freed block is overwritten with 0xA5 first, so a read
 * of freed memory gives recognisable junk in a plain build too (no sanitizer needed).
 *
 * Emergency collections do not call finalizers (they are queued and run by the next regular
 * step): the specs that need a finalizer inside a conversion arrange it themselves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

typedef struct torture {
  int on;                   /* nesting count of on() calls */
  int pending;              /* the last object allocation was refused: grant the retry */
  unsigned long refused;    /* emergency collections caused */
} torture;

static torture T;

/* Lua passes the new object's type tag as osize when ptr is NULL (lmem.c); these are the
 * collectable types, whose allocation goes through luaM_malloc_, which retries after an
 * emergency collection. */
static int is_object_tag(size_t tag) {
  return tag == LUA_TSTRING || tag == LUA_TTABLE || tag == LUA_TFUNCTION || tag == LUA_TUSERDATA ||
         tag == LUA_TTHREAD || tag == LUA_NUMTYPES /* upvalue */ || tag == LUA_NUMTYPES + 1 /* proto */;
}

/* Called through a volatile pointer: a memset right before free() is otherwise dropped by the
 * compiler as a dead store. */
static void *(*volatile poison)(void *, int, size_t) = memset;

static void *torture_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  torture *t = ud;
  if (nsize == 0) {
    if (ptr && osize) poison(ptr, 0xA5, osize);
    free(ptr);
    return NULL;
  }
  if (ptr == NULL && t->on && is_object_tag(osize)) {
    if (!t->pending) {
      t->pending = 1;
      t->refused++;
      return NULL; /* Lua collects everything it can, then asks again */
    }
    t->pending = 0;
  }
  if (ptr && nsize < osize) poison((char *)ptr + nsize, 0xA5, osize - nsize);
  return realloc(ptr, nsize);
}

static int t_on(lua_State *L) {
  (void)L;
  T.on++;
  T.pending = 0;
  return 0;
}
static int t_off(lua_State *L) {
  (void)L;
  if (T.on > 0) T.on--;
  T.pending = 0;
  return 0;
}
static int t_refused(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)T.refused);
  return 1;
}

static int open_torture(lua_State *L) {
  static const luaL_Reg fns[] = { { "on", t_on }, { "off", t_off }, { "refused", t_refused }, { NULL, NULL } };
  luaL_newlib(L, fns);
  return 1;
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

static int panic(lua_State *L) {
  fprintf(stderr, "gc_torture_host: panic: %s\n", lua_tostring(L, -1));
  fflush(stderr);
  return 0; /* abort() follows */
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: gc_torture_host SCRIPT [ARGS...]\n"); return 2; }
  lua_State *L = lua_newstate(torture_alloc, &T);
  if (!L) { fprintf(stderr, "gc_torture_host: cannot create a Lua state\n"); return 1; }
  lua_atpanic(L, panic);
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open_torture);
  lua_setfield(L, -2, "lh_gc_torture");
  lua_pop(L, 1);
  /* arg, as lua.c makes it: arg[0] the script, arg[1..] its arguments */
  lua_createtable(L, argc - 2, 1);
  for (int i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  if (luaL_loadfile(L, argv[1]) != LUA_OK) {
    fprintf(stderr, "gc_torture_host: %s\n", lua_tostring(L, -1));
    return 1;
  }
  for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
  int rc = lua_pcall(L, argc - 2, 0, 1);
  if (rc != LUA_OK) fprintf(stderr, "gc_torture_host: %s\n", lua_tostring(L, -1));
  lua_close(L);
  return rc == LUA_OK ? 0 : 1;
}
