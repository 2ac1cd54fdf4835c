/* fork_host: a C program embedding Lua (5.4, 5.3, 5.1 or LuaJIT: built with that Lua's headers,
 * LUA_DIR naming its module directory, e.g. -DLUA_DIR='"5.1"') that makes clients, starts an async call, then
 * fork()s while the call is in flight, ROUNDS times. In each child everything inherited is
 * tried: the parent's clients (one driven inline, one with its completion thread started)
 * and their methods, a new client, the in-flight handle's methods (wait, done, id, cancel,
 * close), tostring, then collectgarbage() with every inherited object unreachable, and on
 * odd rounds lua_close() too. Each must be refused (an error naming the fork) or do nothing:
 * gRPC's file descriptors and epoll set are shared with the parent, so a child that polls
 * them steals the parent's events, and one that cancels a call writes to the parent's
 * connection. After each child, the parent's in-flight call must complete normally and its
 * next blocking posts must succeed. Used by spec/fork_spec.lua; prints one line per check,
 * "ok ..." or "FAIL ...", and a final "rounds N".
 *   fork_host LUA_MODULES_ROOT HOST PORT ROUNDS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#ifndef LUA_DIR
#define LUA_DIR "5.4"
#endif
#ifndef LUA_OK /* Lua 5.1 and LuaJIT name no success status */
#define LUA_OK 0
#endif

static const char *SETUP =
  "local root, host, port = ...\n"
  "package.path = root .. '/share/lua/" LUA_DIR "/?.lua;' .. root .. '/share/lua/" LUA_DIR "/?/init.lua;' .. package.path\n"
  "package.cpath = root .. '/lib/lua/" LUA_DIR "/?.so;' .. package.cpath\n"
  "lh = require 'littlehorse'\n"
  "function new_client() return lh.client { host = host, port = math.floor(tonumber(port)), timeout = 5 } end\n"
  "client = new_client()\n"
  "threaded = new_client()\n"
  "threaded:fd() -- its completion thread runs from now on\n"
  "function req(guid) return { wf_run_id = 'fork-wf', external_event_def_name = 'fork-event', guid = guid,\n"
  "                            content = { from = guid } } end\n"
  "function post(c, guid) return c:put_external_event(req(guid)) end\n"
  /* Every method of an inherited object must raise the fork error; returns true or a failure. */
  "function all_refuse(calls)\n"
  "  for name, f in pairs(calls) do\n"
  "    local ok, err = pcall(f)\n"
  "    if ok or not tostring(err):find('forked process', 1, true) then\n"
  "      return false, name .. ': ' .. (ok and 'did not raise' or tostring(err))\n"
  "    end\n"
  "  end\n"
  "  return true\n"
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

/* The child: everything it inherited is refused or left alone. */
static int child(lua_State *L, int round) {
  int ok = check(L, "child: the parent's client refuses", "return post(client, 'child')", "cannot be used in forked process");
  ok &= check(L, "child: a new client refuses", "return new_client()", "before this process");
  ok &= check(L, "child: the parent's in-flight call refuses",
              "return all_refuse {\n"
              "  wait = function() return h:wait(1) end, wait0 = function() return h:wait(0) end,\n"
              "  done = function() return h:done() end, id = function() return h:id() end,\n"
              "  cancel = function() return h:cancel() end,\n"
              "  th_wait = function() return th:wait(1) end, th_done = function() return th:done() end }", NULL);
  ok &= check(L, "child: every client method refuses",
              "return all_refuse {\n"
              "  poll = function() return client:poll(0.1) end, fd = function() return client:fd() end,\n"
              "  in_flight = function() return client:in_flight() end,\n"
              "  async = function() return client:put_external_event_async(req('child-async')) end,\n"
              "  th_poll = function() return threaded:poll(0.1) end,\n"
              "  th_in_flight = function() return threaded:in_flight() end,\n"
              "  th_get = function() return threaded:get_external_event { wf_run_id = 'fork-wf',\n"
              "                     external_event_def_name = 'fork-event', guid = 'before' } end }", NULL);
  ok &= check(L, "child: tostring of inherited objects",
              "return tostring(h):find('forked', 1, true) and tostring(client):find('forked', 1, true)", NULL);
  /* Abandon everything: the handles' and clients' __gc run now (explicit close() first on one
   * of each, which must do nothing to gRPC either). */
  ok &= check(L, "child: close() and collectgarbage() leave gRPC alone",
              "h:close(); threaded:close(); h, th, client, threaded = nil, nil, nil, nil\n"
              "collectgarbage(); collectgarbage(); return true", NULL);
  if (round % 2) lua_close(L); /* the context's __gc: no grpc_shutdown in the child */
  return ok;
}

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: fork_host LUA_MODULES_ROOT HOST PORT ROUNDS\n"); return 2; }
  int rounds = atoi(argv[4]);
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_loadstring(L, SETUP) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); return 2; }
  for (int i = 1; i <= 3; i++) lua_pushstring(L, argv[i]);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); return 2; }
  int good = check(L, "parent posts before the fork", "return post(client, 'before') and post(threaded, 'before-t')", NULL);
  int round, failed_rounds = 0;
  /* Every round runs, so a failing run shows how often the parent was hurt (up to 5 times:
   * each costs the call's 5 s deadline). */
  for (round = 0; round < rounds && failed_rounds < 5; round++) {
    char chunk[512];
    /* One call in flight on each client when the fork happens (the server answers late). */
    snprintf(chunk, sizeof chunk,
             "h = client:put_external_event_async(req('async-%d'))\n"
             "th = threaded:put_external_event_async(req('async-t-%d'))\n"
             "return h and th", round, round);
    if (!check(L, "parent starts calls", chunk, NULL)) return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) _exit(child(L, round) ? 0 : 1);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      printf("FAIL child of round %d ended with status %d\n", round, status);
      good = 0;
    }
    snprintf(chunk, sizeof chunk,
             "local a, e1 = h:wait(10)\n"
             "local b, e2 = th:wait(10)\n"
             "assert(a and a.id.guid == 'async-%d', 'inline call: ' .. tostring(e1))\n"
             "assert(b and b.id.guid == 'async-t-%d', 'threaded call: ' .. tostring(e2))\n"
             "local c, e3 = post(client, 'after-%d')\n"
             "assert(c, 'blocking post: ' .. tostring(e3))\n"
             "local d, e4 = post(threaded, 'after-t-%d')\n"
             "assert(d, 'blocking post (threaded client): ' .. tostring(e4))\n"
             "return true", round, round, round, round);
    if (!check(L, "parent: its calls complete and it posts after the fork", chunk, NULL)) {
      good = 0;
      failed_rounds++;
    }
  }
  printf("rounds %d\n", round);
  lua_close(L);
  return good ? 0 : 1;
}
