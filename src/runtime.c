#include <pthread.h>
#include <unistd.h>
#include <grpc/grpc.h>
#include "runtime.h"

/* Process-wide C state, not Lua state: which process initialised gRPC, and how often. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t owner_pid;
static int refs;

/* This process's id, kept by a fork handler instead of asked of the kernel: every call checks
 * that its client was made in this process, and getpid() is a real system call (two per call
 * cost ~1 us, measured in bench/). Processes made by fork() run the handler; vfork() children
 * only exec, and raw clone() without glibc is outside what we support. */
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;
static volatile pid_t cached_pid;

/* The lock is held across fork() so that a child never inherits it locked (by a thread of
 * the parent that the child does not have). */
static void before_fork(void) { pthread_mutex_lock(&lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&lock); }
static void after_fork_child(void) {
  cached_pid = getpid();
  pthread_mutex_unlock(&lock);
}

static void pid_setup(void) {
  cached_pid = getpid();
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

pid_t lh_runtime_pid(void) {
  pthread_once(&pid_once, pid_setup);
  return cached_pid;
}

void lh_runtime_acquire(lua_State *L) {
  pthread_mutex_lock(&lock);
  pid_t me = getpid();
  if (refs > 0 && owner_pid != me) {
    pid_t owner = owner_pid;
    pthread_mutex_unlock(&lock);
    luaL_error(L, "littlehorse: gRPC was initialised in process %d before this process (%d) "
                  "was forked from it; gRPC cannot be used across fork. Make clients only after "
                  "the fork (in nginx: init_worker_by_lua or lazily in a handler, never "
                  "init_by_lua)", (int)owner, (int)me);
    return;
  }
  owner_pid = me;
  refs++;
  pthread_mutex_unlock(&lock);
  grpc_init();
}

void lh_runtime_release(void) {
  pthread_mutex_lock(&lock);
  int mine = refs > 0 && owner_pid == getpid();
  if (mine) refs--;
  pthread_mutex_unlock(&lock);
  if (mine) grpc_shutdown();
}
