/* host.c: a C program that embeds Lua 5.4 and posts LittleHorse ExternalEvents from a script.
 *
 *   host [--root DIR] [--threads T] SCRIPT [ARG...]
 *
 * Each of T OS threads (default 1) makes its own lua_State, points package.path and
 * package.cpath at the lua_modules tree DIR (where `make build` installs the rock), loads
 * SCRIPT and calls it as a function with (thread_number, ARG...). All threads start their
 * scripts together (a barrier), so they load the module, make their clients and post at the
 * same time. The script returns true on success, or nil/false and a message.
 *
 * The rules this follows (docs/cli.md, "Embedding"): one client per lua_State, made and used
 * by the thread that owns that state; no client, value or state is shared across threads.
 * Loading the module in several states is safe: littlehorse.core keeps its scratch space per
 * state and no process-global Lua state; gRPC's process-wide initialisation is reference
 * counted under a mutex.
 *
 * Exit status: 0 only if every thread's script returned true; 1 otherwise; 2 usage error.
 * Build: examples/embed/build.sh (gcc, pkg-config lua5.4, -lpthread).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#ifndef LH_LUA_ROOT
#define LH_LUA_ROOT "./lua_modules" /* build.sh bakes in the checkout's absolute path */
#endif

#define MAX_THREADS 64

typedef struct {
  int number;         /* 1-based, passed to the script */
  const char *root;   /* lua_modules tree */
  const char *script;
  int argc;           /* extra script arguments */
  char **argv;
  pthread_barrier_t *start;
  int ok;             /* result: 1 when the script returned true */
  char message[512];  /* why not */
} job;

/* package.path / package.cpath: the tree first, then Lua's defaults (so system rocks work). */
static void set_paths(lua_State *L, const char *root) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;%s", root, root,
                  lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 1);
  lua_getfield(L, -1, "cpath");
  lua_pushfstring(L, "%s/lib/lua/5.4/?.so;%s", root, lua_tostring(L, -1));
  lua_setfield(L, -3, "cpath");
  lua_pop(L, 2);
}

static int traceback(lua_State *L) {
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

static void *run(void *arg) {
  job *j = arg;
  lua_State *L = luaL_newstate(); /* this thread's own state; no other thread touches it */
  if (!L) {
    snprintf(j->message, sizeof j->message, "cannot create a lua_State");
    pthread_barrier_wait(j->start);
    return NULL;
  }
  luaL_openlibs(L);
  set_paths(L, j->root);
  lua_pushcfunction(L, traceback);
  int loaded = luaL_loadfile(L, j->script);
  pthread_barrier_wait(j->start); /* every thread has a state and its script: go together */
  if (loaded != LUA_OK) {
    snprintf(j->message, sizeof j->message, "%s", lua_tostring(L, -1));
  } else {
    lua_pushinteger(L, j->number);
    for (int i = 0; i < j->argc; i++) lua_pushstring(L, j->argv[i]);
    if (lua_pcall(L, 1 + j->argc, 2, 1) != LUA_OK) {
      snprintf(j->message, sizeof j->message, "%s", lua_tostring(L, -1));
    } else if (lua_toboolean(L, -2)) {
      j->ok = 1;
    } else {
      const char *why = lua_tostring(L, -1);
      snprintf(j->message, sizeof j->message, "%s", why ? why : "the script returned false");
    }
  }
  lua_close(L); /* closes the script's clients too (__gc), in the thread that made them */
  return NULL;
}

static int usage(void) {
  fprintf(stderr, "usage: host [--root DIR] [--threads T] SCRIPT [ARG...]\n"
                  "  --root DIR    lua_modules tree with the littlehorse rock (default %s,\n"
                  "                or $LH_LUA_ROOT)\n"
                  "  --threads T   run SCRIPT in T threads at once, one lua_State each (1-%d)\n",
          LH_LUA_ROOT, MAX_THREADS);
  return 2;
}

int main(int argc, char **argv) {
  const char *root = getenv("LH_LUA_ROOT");
  if (!root || !*root) root = LH_LUA_ROOT;
  int threads = 1, i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
    if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
      root = argv[++i];
    } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      char *end;
      long t = strtol(argv[++i], &end, 10);
      if (*end || t < 1 || t > MAX_THREADS) return usage();
      threads = (int)t;
    } else {
      return usage();
    }
  }
  if (i >= argc) return usage();

  job jobs[MAX_THREADS];
  pthread_t ids[MAX_THREADS];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, (unsigned)threads);
  for (int t = 0; t < threads; t++) {
    jobs[t] = (job){ .number = t + 1, .root = root, .script = argv[i], .argc = argc - i - 1,
                     .argv = argv + i + 1, .start = &start };
    if (pthread_create(&ids[t], NULL, run, &jobs[t]) != 0) {
      fprintf(stderr, "host: cannot start thread %d\n", t + 1);
      return 1; /* the others wait at the barrier forever; exiting ends them */
    }
  }
  int failed = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(ids[t], NULL);
    if (!jobs[t].ok) {
      failed++;
      fprintf(stderr, "host: thread %d failed: %s\n", t + 1, jobs[t].message);
    }
  }
  pthread_barrier_destroy(&start);
  if (threads > 1) printf("host: %d of %d threads succeeded\n", threads - failed, threads);
  return failed ? 1 : 0;
}
