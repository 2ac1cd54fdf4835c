/* frame_loop.c: a C host with a frame loop (a game's, a GUI's, a device's main loop) that posts
 * LittleHorse ExternalEvents without ever waiting on the network.
 *
 *   frame_loop [--root DIR] [--frame-ms MS] [--max-frames N] SCRIPT [ARG...]
 *
 * SCRIPT runs once in the host's lua_State, with (ARG...), and returns an app table:
 *   app.fd          client:fd(): readable while finished calls wait for client:poll()
 *   app.tick(n)     frame n's work: start async calls (put_external_event_async), never wait
 *   app.deliver()   client:poll(0): runs the on_done callbacks of finished calls, returns how many
 *   app.done()      true once every call the app wanted has been delivered
 *   app.report()    -> text, ok: a line for the log, and whether everything went right
 *
 * Each frame: tick(n), then poll(2) on app.fd until the frame's deadline (MS milliseconds after
 * it began, default 16), calling deliver() whenever the fd is readable. The loop ends when
 * done() is true (or after N frames, default 3000).
 *
 * The budget: what the library costs the frame loop is the time its thread spends in tick()
 * and deliver(): CPU time, plus time blocked off the CPU (wall time minus CPU time minus time
 * spent waiting for a CPU, read from /proc/thread-self/schedstat). A frame is over budget when
 * that exceeds MS: the loop would miss its frame because of our code, whatever the machine's
 * load (time the scheduler kept the thread waiting for a CPU is not counted).
 *
 * Prints one line (values in milliseconds):
 *   frames F budget B max_work W (frame N) max_cpu C max_blocked K over_budget O deliveries D
 *   measure M
 * (M: "schedstat", or "cputime" when the kernel has no schedstat and blocked time includes
 * waiting for a CPU), then the app's report. Exit status: 0 when the app reports success and
 * no frame was over budget; 3 when the app succeeded but frames were over budget; 1 on
 * failure; 2 on bad usage. Build: examples/embed/build.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#ifndef LH_LUA_ROOT
#define LH_LUA_ROOT "./lua_modules" /* build.sh bakes in the checkout's absolute path */
#endif

static double now_ms(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Time this thread has spent waiting for a CPU (schedstat's second field), in ms; -1 when the
 * kernel does not say. */
static int schedstat_fd = -1;
static double runqueue_ms(void) {
  char buf[128];
  if (schedstat_fd < 0 || lseek(schedstat_fd, 0, SEEK_SET) != 0) return -1;
  ssize_t n = read(schedstat_fd, buf, sizeof buf - 1);
  if (n <= 0) return -1;
  buf[n] = '\0';
  unsigned long long run_ns, wait_ns;
  if (sscanf(buf, "%llu %llu", &run_ns, &wait_ns) != 2) return -1;
  return (double)wait_ns / 1e6;
}

/* What one piece of the app's work cost this thread. */
typedef struct cost {
  double wall, cpu, waiting;
} cost;

static cost cost_now(void) {
  cost c = { now_ms(CLOCK_MONOTONIC), now_ms(CLOCK_THREAD_CPUTIME_ID), runqueue_ms() };
  return c;
}

static void cost_add(cost *sum, cost a, cost b) {
  sum->wall += b.wall - a.wall;
  sum->cpu += b.cpu - a.cpu;
  if (a.waiting >= 0 && b.waiting >= 0) sum->waiting += b.waiting - a.waiting;
}

static int traceback(lua_State *L) {
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

/* Call app[name](args on the stack) with nret results, under the traceback handler at 1;
 * exits on error. The app table is at index 2. */
static void call_app(lua_State *L, const char *name, int nargs, int nret) {
  lua_getfield(L, 2, name);
  if (!lua_isfunction(L, -1)) {
    fprintf(stderr, "frame_loop: the app has no function %s\n", name);
    exit(1);
  }
  lua_insert(L, -1 - nargs);
  if (lua_pcall(L, nargs, nret, 1) != LUA_OK) {
    fprintf(stderr, "frame_loop: %s: %s\n", name, lua_tostring(L, -1));
    exit(1);
  }
}

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

static int usage(void) {
  fprintf(stderr, "usage: frame_loop [--root DIR] [--frame-ms MS] [--max-frames N] SCRIPT [ARG...]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *root = getenv("LH_LUA_ROOT");
  if (!root || !*root) root = LH_LUA_ROOT;
  long frame_ms = 16, max_frames = 3000;
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
    char *end = NULL;
    if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
      root = argv[++i];
    } else if (strcmp(argv[i], "--frame-ms") == 0 && i + 1 < argc) {
      frame_ms = strtol(argv[++i], &end, 10);
      if (*end || frame_ms < 1 || frame_ms > 1000) return usage();
    } else if (strcmp(argv[i], "--max-frames") == 0 && i + 1 < argc) {
      max_frames = strtol(argv[++i], &end, 10);
      if (*end || max_frames < 1) return usage();
    } else {
      return usage();
    }
  }
  if (i >= argc) return usage();

  schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  int measured = runqueue_ms() >= 0;

  lua_State *L = luaL_newstate();
  if (!L) { fprintf(stderr, "frame_loop: cannot create a lua_State\n"); return 1; }
  luaL_openlibs(L);
  set_paths(L, root);
  lua_pushcfunction(L, traceback); /* 1 */
  if (luaL_loadfile(L, argv[i]) != LUA_OK) {
    fprintf(stderr, "frame_loop: %s\n", lua_tostring(L, -1));
    return 1;
  }
  for (int a = i + 1; a < argc; a++) lua_pushstring(L, argv[a]);
  if (lua_pcall(L, argc - i - 1, 1, 1) != LUA_OK) {
    fprintf(stderr, "frame_loop: %s\n", lua_tostring(L, -1));
    return 1;
  }
  if (!lua_istable(L, 2)) { fprintf(stderr, "frame_loop: the script must return an app table\n"); return 1; }
  lua_getfield(L, 2, "fd");
  if (!lua_isinteger(L, -1)) { fprintf(stderr, "frame_loop: app.fd must be client:fd()\n"); return 1; }
  int fd = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);

  long frames = 0, over = 0, deliveries = 0, worst = 0;
  double max_work = 0, max_cpu = 0, max_blocked = 0;
  int done = 0;
  while (!done && frames < max_frames) {
    double start = now_ms(CLOCK_MONOTONIC), deadline = start + (double)frame_ms;
    cost spent = { 0, 0, 0 };
    frames++;

    cost a = cost_now();
    lua_pushinteger(L, frames);
    call_app(L, "tick", 1, 0);
    cost_add(&spent, a, cost_now());

    /* The rest of the frame: sleep in poll(2) on the client's fd, delivering whenever it is
     * readable (a real host would render, read input, ... here). */
    for (;;) {
      double left = deadline - now_ms(CLOCK_MONOTONIC);
      if (left <= 0) break;
      struct pollfd p = { fd, POLLIN, 0 };
      int r = poll(&p, 1, (int)left + 1);
      if (r < 0 && errno != EINTR) { perror("frame_loop: poll"); return 1; }
      if (r > 0) {
        a = cost_now();
        call_app(L, "deliver", 0, 1);
        deliveries += (long)lua_tointeger(L, -1);
        lua_pop(L, 1);
        cost_add(&spent, a, cost_now());
      }
    }

    double blocked = spent.wall - spent.cpu - spent.waiting, work = spent.cpu + blocked;
    if (blocked < 0) blocked = 0; /* clock granularity */
    if (work > max_work) { max_work = work; worst = frames; }
    if (spent.cpu > max_cpu) max_cpu = spent.cpu;
    if (blocked > max_blocked) max_blocked = blocked;
    if (work > (double)frame_ms) over++;

    call_app(L, "done", 0, 1);
    done = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }

  printf("frames %ld budget %ld max_work %.3f (frame %ld) max_cpu %.3f max_blocked %.3f over_budget %ld "
         "deliveries %ld measure %s\n", frames, frame_ms, max_work, worst, max_cpu, max_blocked, over, deliveries,
         measured ? "schedstat" : "cputime");
  call_app(L, "report", 0, 2);
  int ok = done && lua_toboolean(L, -1);
  printf("%s\n", lua_tostring(L, -2) ? lua_tostring(L, -2) : "");
  fflush(stdout);
  lua_close(L); /* closes the app's client (__gc) */
  if (!ok) return 1;
  return over ? 3 : 0;
}
