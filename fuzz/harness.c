/* libFuzzer harness for littlehorse.core, built twice by scripts/fuzz.sh:
 *   -DLH_FUZZ_TARGET=1  reply: core.decode_external_event(bytes) (ExternalEvent -> Lua table)
 *   -DLH_FUZZ_TARGET=2  json:  core.json_decode(text), then decode -> encode -> decode stability
 *   -DLH_FUZZ_TARGET=3  replies: core.decode_reply(rpc, bytes), every other reply reader
 * The module's C sources are linked in (compiled with the same sanitizers) and opened in one
 * lua_State (liblua5.4); each input goes through the Lua functions of fuzz/checks.lua (path
 * in LH_FUZZ_CHECKS), which raise on a broken property. A raise aborts, so libFuzzer keeps the
 * input as a crasher, like any sanitizer report. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#ifndef LH_FUZZ_CHECKS
#define LH_FUZZ_CHECKS "fuzz/checks.lua"
#endif

int luaopen_littlehorse_core(lua_State *L);

static lua_State *L;
static int check_ref; /* the function checks.reply, checks.json or checks.replies */

static void setup(void) {
  L = luaL_newstate();
  if (!L) abort();
  luaL_openlibs(L);
  luaL_requiref(L, "littlehorse.core", luaopen_littlehorse_core, 0); /* core */
  const char *path = getenv("LH_FUZZ_CHECKS");
  if (!path || !*path) path = LH_FUZZ_CHECKS;
  if (luaL_dofile(L, path) != LUA_OK) { /* core, checks */
    fprintf(stderr, "fuzz: cannot load %s: %s\n", path, lua_tostring(L, -1));
    abort();
  }
#if LH_FUZZ_TARGET == 1
  lua_getfield(L, -1, "reply");
#elif LH_FUZZ_TARGET == 2
  lua_getfield(L, -1, "json");
#else
  lua_getfield(L, -1, "replies");
#endif
  if (!lua_isfunction(L, -1)) abort();
  check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
  luaL_requiref(L, "littlehorse.core", luaopen_littlehorse_core, 0);
  lua_setglobal(L, "core");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) setup();
  lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
  lua_getglobal(L, "core");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz: property violated: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  /* A full collection after every input: everything the input allocated is freed again, so
   * libFuzzer's leak detection (run when an input mallocs more than it frees) stays quiet
   * unless C code really leaks, and __gc paths and freed memory are exercised every time. */
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
