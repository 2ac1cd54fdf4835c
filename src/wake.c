#define _GNU_SOURCE 1 /* accept4, struct ucred */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "runtime.h"
#include "wake.h"

/* How many ids one core._wake_ready() hands over (the reader calls it again while full). */
#define READY_BATCH 256
/* Completed ids nobody collects (no reader) are dropped past this many, and the reader told
 * that some were lost, so that every waiter checks its own call instead. */
#define READY_MAX (1u << 20)

/* Process-wide C state: this process's wake channel. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int enabled; /* ids are queued (read without the lock by lh_wake_post, as a hint) */
static struct {
  pid_t pid;             /* the process it belongs to; a forked child starts its own */
  int listen_fd;         /* bound and listening until the reader attaches, else -1 */
  int notify_fd;         /* our end of the reader's connection, else -1 */
  int signalled;         /* a byte was sent that the reader has not answered with a drain */
  int lost;              /* ids were dropped (memory, or nobody reading): wake everyone */
  uint64_t *ids;         /* completed ids, [head, n) not yet handed over */
  size_t head, n, cap;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
} w = { 0, -1, -1, 0, 0, NULL, 0, 0, 0, "" };

static int mine(void) { return w.pid == lh_runtime_pid(); }

/* The lock is held across fork() so that a child never inherits it locked by a thread of the
 * parent's (a completion thread posting an id) that the child does not have. */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void before_fork(void) { pthread_mutex_lock(&mu); }
static void after_fork(void) { pthread_mutex_unlock(&mu); }
static void atfork_setup(void) { pthread_atfork(before_fork, after_fork, after_fork); }

/* One byte to the reader, unless one is already on its way. Called with mu held. */
static void signal_reader(void) {
  if (w.signalled || w.notify_fd < 0) return;
  ssize_t r = send(w.notify_fd, "!", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  /* EAGAIN cannot happen with at most one byte unread; any other failure means the reader
   * is gone, and the next one to attach is signalled then */
  if (r == 1) w.signalled = 1;
}

void lh_wake_post(uint64_t id) {
  if (!__atomic_load_n(&enabled, __ATOMIC_RELAXED)) return;
  pthread_mutex_lock(&mu);
  if (!enabled || !mine()) { pthread_mutex_unlock(&mu); return; }
  if (w.n == w.cap) {
    if (w.head > 0) { /* slide the unread ids down before growing */
      memmove(w.ids, w.ids + w.head, (w.n - w.head) * sizeof *w.ids);
      w.n -= w.head;
      w.head = 0;
    }
  }
  if (w.n == w.cap) {
    size_t cap = w.cap ? w.cap * 2 : 64;
    uint64_t *grown = cap <= READY_MAX ? realloc(w.ids, cap * sizeof *grown) : NULL;
    if (grown) {
      w.ids = grown;
      w.cap = cap;
    }
  }
  if (w.n < w.cap) w.ids[w.n++] = id;
  else w.lost = 1;
  signal_reader();
  pthread_mutex_unlock(&mu);
}

/* ---- the directory: private to this process's user, or refused ----
 *
 * The socket file's directory decides who can replace the socket (and so answer our waiters)
 * or make us unlink files: it must be a real directory (not a symbolic link) owned by this
 * process's effective user and writable by nobody else, and so must every directory above it
 * (or be sticky, as /tmp is, so that nobody else can rename what is in it). A directory that
 * fails is refused with the reason; nothing is created, bound or removed in it. */

typedef struct { char text[512]; int unsafe; } wake_err;

static void fail(wake_err *e, int unsafe, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(wake_err *e, int unsafe, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->text, sizeof e->text, fmt, ap);
  va_end(ap);
  e->unsafe = unsafe;
}

/* An ancestor directory (already without symbolic links): owned by root or by us, and either
 * writable by nobody else or sticky. */
static int ancestor_ok(const char *path, wake_err *e) {
  struct stat st;
  if (lstat(path, &st) < 0) { fail(e, 0, "cannot inspect %s: %s", path, strerror(errno)); return 0; }
  if (st.st_uid != 0 && st.st_uid != geteuid()) {
    fail(e, 1, "%s (above the wake directory) is owned by uid %d, neither root nor this process's user (uid %d)",
         path, (int)st.st_uid, (int)geteuid());
    return 0;
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
    fail(e, 1, "%s (above the wake directory) is writable by other users (mode %03o) and not sticky",
         path, (unsigned)(st.st_mode & 07777));
    return 0;
  }
  return 1;
}

/* Make (mode 0700) or accept dir; on success real holds the directory's path with every
 * symbolic link above it resolved, which is what the socket path is built from. */
static int private_dir(const char *dir, char *real, size_t realsz, wake_err *e) {
  char parent[PATH_MAX], buf[PATH_MAX];
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') n--; /* "dir/" names dir */
  if (n == 0 || n >= sizeof buf) { fail(e, 0, "bad wake directory name '%s'", dir); return 0; }
  memcpy(buf, dir, n);
  buf[n] = '\0';
  char *slash = strrchr(buf, '/');
  const char *base = slash ? slash + 1 : buf;
  if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
    fail(e, 0, "the wake directory '%s' must end in a name of its own", dir);
    return 0;
  }
  if (slash == buf) strcpy(parent, "/");
  else if (slash) { *slash = '\0'; snprintf(parent, sizeof parent, "%s", buf); *slash = '/'; }
  else strcpy(parent, ".");
  char canon[PATH_MAX];
  if (!realpath(parent, canon)) { fail(e, 0, "cannot resolve %s: %s", parent, strerror(errno)); return 0; }
  /* every directory from / down to the parent (canon is absolute, without links) */
  if (!ancestor_ok("/", e)) return 0;
  size_t len = strlen(canon);
  for (size_t i = 1; i <= len; i++) {
    if (canon[i] != '/' && canon[i] != '\0') continue;
    char c = canon[i];
    canon[i] = '\0';
    int ok = ancestor_ok(canon, e);
    canon[i] = c;
    if (!ok) return 0;
  }
  int m = snprintf(real, realsz, "%s/%s", strcmp(canon, "/") == 0 ? "" : canon, base);
  if (m < 0 || (size_t)m >= realsz) { fail(e, 0, "wake directory path too long"); return 0; }
  if (mkdir(real, 0700) < 0 && errno != EEXIST) {
    fail(e, 0, "cannot create the wake directory %s: %s", real, strerror(errno));
    return 0;
  }
  struct stat st;
  if (lstat(real, &st) < 0) { fail(e, 0, "cannot inspect %s: %s", real, strerror(errno)); return 0; }
  if (S_ISLNK(st.st_mode)) { fail(e, 1, "the wake directory %s is a symbolic link", real); return 0; }
  if (!S_ISDIR(st.st_mode)) { fail(e, 1, "the wake directory %s is not a directory", real); return 0; }
  if (st.st_uid != geteuid()) {
    fail(e, 1, "the wake directory %s is owned by uid %d, not by this process's user (uid %d)",
         real, (int)st.st_uid, (int)geteuid());
    return 0;
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    fail(e, 1, "the wake directory %s is writable by other users (mode %03o)", real, (unsigned)(st.st_mode & 07777));
    return 0;
  }
  return 1;
}

/* The default directory: per user, under $TMPDIR (or /tmp). */
static void default_dir(char *out, size_t n) {
  const char *tmp = getenv("TMPDIR");
  snprintf(out, n, "%s/littlehorse-wake-%d", tmp && *tmp ? tmp : "/tmp", (int)geteuid());
}

/* Is the socket file `name` in dir (open as dfd) a dead one of ours: a socket owned by this
 * user, named for a process that is gone, that nobody listens on? */
static int stale_socket(int dfd, const char *dir, const char *name, int pid) {
  struct stat st;
  if (pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH) return 0;
  if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid())
    return 0;
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  int n = snprintf(a.sun_path, sizeof a.sun_path, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= sizeof a.sun_path) return 0;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return 0;
  int refused = connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno == ECONNREFUSED;
  close(fd);
  return refused;
}

/* Remove lhwake.<pid>.sock files left by processes that are gone (a worker killed with -9).
 * Only in our private directory, only sockets of ours that nobody listens on. */
static void remove_stale(const char *dir) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return;
  DIR *d = fdopendir(dfd);
  if (!d) { close(dfd); return; }
  struct dirent *de;
  while ((de = readdir(d))) {
    int pid, used = 0;
    if (sscanf(de->d_name, "lhwake.%d.sock%n", &pid, &used) != 1 || de->d_name[used] != '\0' || pid <= 0) continue;
    if (stale_socket(dfd, dir, de->d_name, pid)) unlinkat(dfd, de->d_name, 0);
  }
  closedir(d); /* closes dfd */
}

/* Close what this process opened for the wake channel. Called with mu held. */
static void close_all(void) {
  if (w.listen_fd >= 0) {
    close(w.listen_fd);
    unlink(w.path); /* only the file we bound */
  }
  if (w.notify_fd >= 0) close(w.notify_fd);
  w.listen_fd = w.notify_fd = -1;
  w.signalled = 0;
}

/* A forked child inherited the parent's state: the descriptors stay the parent's (they are
 * open in the parent too, closing our copies does not touch its connection). */
static void adopt_if_forked(void) {
  if (w.pid == lh_runtime_pid()) return;
  if (w.listen_fd >= 0) close(w.listen_fd); /* our copy; the file is the parent's: left */
  if (w.notify_fd >= 0) close(w.notify_fd);
  free(w.ids);
  w.listen_fd = w.notify_fd = -1;
  w.ids = NULL;
  w.head = w.n = w.cap = 0;
  w.signalled = w.lost = 0;
  w.pid = lh_runtime_pid();
  __atomic_store_n(&enabled, 0, __ATOMIC_RELAXED);
}

/* core._wake_start([dir]) -> socket path | nil, err, kind ("unsafe": the directory was refused
 * for who owns or can change it; "failed": anything else). */
int lh_wake_lua_start(lua_State *L) {
  const char *given = luaL_optstring(L, 1, NULL);
  pthread_once(&atfork_once, atfork_setup);
  pthread_mutex_lock(&mu);
  adopt_if_forked();
  if (w.listen_fd >= 0) { /* listening already: the same socket */
    lua_pushstring(L, w.path);
    pthread_mutex_unlock(&mu);
    return 1;
  }
  wake_err e = { "", 0 };
  int ok, fd = -1;
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  char dflt[PATH_MAX], dir[PATH_MAX];
  if (!given) default_dir(dflt, sizeof dflt);
  ok = private_dir(given ? given : dflt, dir, sizeof dir, &e);
  if (ok) {
    int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/lhwake.%d.sock", dir, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof addr.sun_path) {
      fail(&e, 0, "the wake socket path %s/lhwake.%d.sock is too long for a unix socket", dir, (int)getpid());
      ok = 0;
    }
  }
  if (ok) {
    remove_stale(dir);
    struct stat st; /* our own name, left by an earlier process with our pid */
    if (lstat(addr.sun_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_uid == geteuid()) unlink(addr.sun_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
      fail(&e, 0, "cannot bind the wake socket %s: %s", addr.sun_path, strerror(errno));
      if (fd >= 0) close(fd);
      ok = 0;
    } else if (chmod(addr.sun_path, 0600) < 0 || listen(fd, 8) < 0) {
      /* 0600: whatever the umask, only our user may connect */
      fail(&e, 0, "cannot listen on the wake socket %s: %s", addr.sun_path, strerror(errno));
      close(fd);
      unlink(addr.sun_path); /* only the file we made */
      ok = 0;
    }
  }
  if (!ok) {
    pthread_mutex_unlock(&mu);
    lua_pushnil(L);
    lua_pushstring(L, e.text);
    lua_pushstring(L, e.unsafe ? "unsafe" : "failed");
    return 3;
  }
  w.listen_fd = fd;
  memcpy(w.path, addr.sun_path, sizeof w.path);
  __atomic_store_n(&enabled, 1, __ATOMIC_RELAXED); /* from here on completions are queued */
  lua_pushstring(L, w.path);
  pthread_mutex_unlock(&mu);
  return 1;
}

/* core._wake_attach() -> true | nil, err: take the reader's connection, which the caller has
 * just made to the path _wake_start returned (a unix socket connect completes in the listen
 * backlog, before any accept). Only a connection from this very process is taken (its peer
 * credentials say so); anything else that got into the backlog is closed. Then the listening
 * socket is closed and its file removed: nothing is left to find or clean up. */
int lh_wake_lua_attach(lua_State *L) {
  pthread_mutex_lock(&mu);
  adopt_if_forked();
  if (w.listen_fd < 0) {
    pthread_mutex_unlock(&mu);
    lua_pushnil(L);
    lua_pushliteral(L, "the wake socket is not listening (call _wake_start first)");
    return 2;
  }
  int fd;
  const char *why = NULL;
  for (;;) {
    fd = accept4(w.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      why = errno == EAGAIN || errno == EWOULDBLOCK ? "no connection from this process is waiting" : strerror(errno);
      break;
    }
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid == getpid()) break;
    close(fd); /* not ours */
  }
  if (why) {
    pthread_mutex_unlock(&mu);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot attach the wake reader: %s", why);
    return 2;
  }
  close(w.listen_fd);
  unlink(w.path);
  w.listen_fd = -1;
  if (w.notify_fd >= 0) close(w.notify_fd); /* an earlier reader's, gone */
  w.notify_fd = fd;
  w.signalled = 0;
  if (w.n > w.head || w.lost) signal_reader(); /* completed while nobody read */
  pthread_mutex_unlock(&mu);
  lua_pushboolean(L, 1);
  return 1;
}

/* core._wake_ready(t) -> n, lost: moves up to READY_BATCH completed ids into t[1..n] (as
 * numbers: ids stay below 2^53). Call again while n is READY_BATCH. lost: ids were dropped,
 * so every waiter must look at its own call. Once everything is handed over, the next
 * completion sends the reader a byte again. */
int lh_wake_lua_ready(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  uint64_t batch[READY_BATCH];
  size_t k = 0;
  int lost = 0;
  pthread_mutex_lock(&mu);
  if (mine()) {
    while (k < READY_BATCH && w.head < w.n) batch[k++] = w.ids[w.head++];
    if (w.head == w.n) {
      w.head = w.n = 0;
      w.signalled = 0;
    }
    lost = w.lost;
    w.lost = 0;
  }
  pthread_mutex_unlock(&mu);
  /* Lua work (allocation, so possibly an error) only after the lock is released */
  for (size_t i = 0; i < k; i++) {
    lua_pushnumber(L, (lua_Number)batch[i]);
    lua_rawseti(L, 1, (int)i + 1);
  }
  lua_pushinteger(L, (lua_Integer)k);
  lua_pushboolean(L, lost);
  return 2;
}

/* core._wake_kick(): one byte to the reader, to have it look at its state (the worker is
 * exiting, say). Harmless when nobody reads. */
int lh_wake_lua_kick(lua_State *L) {
  (void)L;
  pthread_mutex_lock(&mu);
  if (mine() && w.notify_fd >= 0) {
    ssize_t r = send(w.notify_fd, "!", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)r;
  }
  pthread_mutex_unlock(&mu);
  return 0;
}

/* core._wake_stop(): stop queueing, close the sockets, remove the socket file if still there. */
int lh_wake_lua_stop(lua_State *L) {
  (void)L;
  pthread_mutex_lock(&mu);
  if (mine()) {
    __atomic_store_n(&enabled, 0, __ATOMIC_RELAXED);
    close_all();
    w.head = w.n = 0;
    w.lost = 0;
  }
  pthread_mutex_unlock(&mu);
  return 0;
}
