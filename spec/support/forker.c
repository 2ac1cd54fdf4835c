/* forker: a Lua interpreter with fork() (specs need it; Debian's Lua packages have no posix
 * module), built against the runtime under test. Runs SCRIPT with ARGS as `...`, with three extra globals:
 *   fork() -> pid (0 in the child)
 *   wait_child(pid) -> the child's exit status (or 128 + signal)
 *   exit_child(code [, close_state]) -> _exit(code), after lua_close() when close_state
 * Exits 0 when the script returns normally, 1 (printing the error) when it raises.
 *   forker SCRIPT [ARGS...] */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#ifndef LUA_OK
#define LUA_OK 0
#endif

static int l_fork(lua_State *L) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return luaL_error(L, "fork failed");
  lua_pushinteger(L, pid);
  return 1;
}

static int l_wait(lua_State *L) {
  int st = 0;
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  if (waitpid(pid, &st, 0) < 0) return luaL_error(L, "waitpid failed");
  lua_pushinteger(L, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  return 1;
}

static int l_exit(lua_State *L) {
  int code = (int)luaL_checkinteger(L, 1);
  int close_state = lua_toboolean(L, 2);
  fflush(NULL);
  if (close_state) lua_close(L); /* every finalizer of what the child inherited runs here */
  _exit(code);
}

/* debug.traceback(msg, 2): luaL_traceback is missing from Lua 5.1 */
static int traceback(lua_State *L) {
  lua_getglobal(L, "debug");
  lua_getfield(L, -1, "traceback");
  lua_pushvalue(L, 1);
  lua_pushinteger(L, 2);
  lua_call(L, 2, 1);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: forker SCRIPT [ARGS...]\n");
    return 2;
  }
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_register(L, "fork", l_fork);
  lua_register(L, "wait_child", l_wait);
  lua_register(L, "exit_child", l_exit);
  lua_pushcfunction(L, traceback);
  if (luaL_loadfile(L, argv[1]) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }
  for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
  int rc = lua_pcall(L, argc - 2, 0, 1);
  if (rc != LUA_OK) fprintf(stderr, "%s\n", lua_tostring(L, -1));
  lua_close(L);
  return rc == LUA_OK ? 0 : 1;
}
