/* fork_host: a C program embedding Lua 5.4 that makes a client, posts, then fork()s. The
 * child must be refused (its client belongs to the parent's gRPC), with the error that says
 * so, for an existing client and for a new one; the parent must go on posting. Used by
 * spec/fork_spec.lua; prints one line per check, "ok ..." or "FAIL ...".
 *   fork_host LUA_MODULES_ROOT HOST PORT */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static const char *SETUP =
  "local root, host, port = ...\n"
  "package.path = root .. '/share/lua/5.4/?.lua;' .. root .. '/share/lua/5.4/?/init.lua;' .. package.path\n"
  "package.cpath = root .. '/lib/lua/5.4/?.so;' .. package.cpath\n"
  "lh = require 'littlehorse'\n"
  "function new_client() return lh.client { host = host, port = math.tointeger(tonumber(port)), timeout = 5 } end\n"
  "client = new_client()\n"
  "function post(guid)\n"
  "  return client:put_external_event { wf_run_id = 'fork-wf', external_event_def_name = 'fork-event',\n"
  "                                     guid = guid, content = { from = guid } }\n"
  "end\n";

/* Run chunk; print "ok NAME" if it raised an error containing want (or, want NULL, if it
 * returned a true value), else "FAIL NAME: ...". */
static int check(lua_State *L, const char *name, const char *chunk, const char *want) {
  int rc = luaL_dostring(L, chunk); /* the stack was empty: results (or the error) from 1 */
  const char *msg = lua_tostring(L, rc == LUA_OK ? 2 : 1); /* an error, or a call's err */
  int ok = want ? rc != LUA_OK && msg && strstr(msg, want) != NULL : rc == LUA_OK && lua_toboolean(L, 1);
  printf("%s %s%s%s\n", ok ? "ok" : "FAIL", name, ok ? "" : ": ", ok ? "" : (msg ? msg : "(no message)"));
  fflush(stdout);
  lua_settop(L, 0);
  return ok;
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: fork_host LUA_MODULES_ROOT HOST PORT\n"); return 2; }
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_loadstring(L, SETUP) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); return 2; }
  for (int i = 1; i <= 3; i++) lua_pushstring(L, argv[i]);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); return 2; }
  int good = check(L, "parent posts before the fork", "return post('before')", NULL);
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); return 2; }
  if (pid == 0) {
    int ok = check(L, "child: the parent's client refuses", "return post('child')", "cannot be used in forked process");
    ok &= check(L, "child: a new client refuses", "return new_client()", "before this process");
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  good &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
  good &= check(L, "parent posts after the fork", "return post('after')", NULL);
  lua_close(L);
  return good ? 0 : 1;
}
