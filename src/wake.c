#define _GNU_SOURCE 1 /* accept4 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "async.h"
#include "wake.h"

#define MAX_LINE 32

/* Process-wide C state: the one wake server of this process. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  pid_t pid;          /* owner process; a forked child starts its own */
  int running;
  int listen_fd, stop_fd, epfd;
  pthread_t thread;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
} srv;

typedef struct conn { char buf[MAX_LINE]; int len; } conn;

static void close_conn(int fd, conn **conns, int *nconns) {
  lh_async_wake_forget(fd); /* before close(): fd numbers are reused */
  epoll_ctl(srv.epfd, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  if (fd < *nconns && (*conns)[fd].len >= 0) (*conns)[fd].len = -1;
}

static void *wake_thread(void *arg) {
  (void)arg;
  conn *conns = NULL;
  int nconns = 0;
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(srv.epfd, evs, 64, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == srv.stop_fd) goto out;
      if (fd == srv.listen_fd) {
        int c;
        while ((c = accept4(srv.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          if (c >= nconns) {
            int nn = c + 64;
            conn *grown = realloc(conns, (size_t)nn * sizeof *conns);
            if (!grown) { close(c); continue; }
            for (int k = nconns; k < nn; k++) grown[k].len = -1;
            conns = grown;
            nconns = nn;
          }
          conns[c].len = 0;
          struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = c };
          if (epoll_ctl(srv.epfd, EPOLL_CTL_ADD, c, &ev) < 0) close(c);
        }
        continue;
      }
      conn *cn = &conns[fd];
      char tmp[256];
      ssize_t r = read(fd, tmp, sizeof tmp);
      if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        close_conn(fd, &conns, &nconns);
        continue;
      }
      int bad = 0;
      for (ssize_t k = 0; k < r && !bad; k++) {
        char ch = tmp[k];
        if (ch == '\n') {
          cn->buf[cn->len] = '\0';
          char *end;
          unsigned long long id = strtoull(cn->buf, &end, 10);
          if (end == cn->buf || *end) { bad = 1; break; }
          if (!lh_async_wake_register((uint64_t)id, fd)) {
            char line[MAX_LINE + 2];
            int m = snprintf(line, sizeof line, "%llu\n", id);
            ssize_t w = write(fd, line, (size_t)m);
            (void)w;
          }
          cn->len = 0;
        } else if (cn->len < MAX_LINE - 1) {
          cn->buf[cn->len++] = ch;
        } else {
          bad = 1;
        }
      }
      if (bad) close_conn(fd, &conns, &nconns);
    }
  }
out:
  for (int fd = 0; fd < nconns; fd++)
    if (conns[fd].len >= 0) { lh_async_wake_forget(fd); close(fd); }
  free(conns);
  return NULL;
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

/* core._wake_start([dir]) -> socket path | nil, err, kind ("unsafe": the directory was refused
 * for who owns or can change it; "failed": anything else). */
int lh_wake_lua_start(lua_State *L) {
  const char *given = luaL_optstring(L, 1, NULL);
  pthread_mutex_lock(&mu);
  if (srv.running && srv.pid == getpid()) {
    lua_pushstring(L, srv.path);
    pthread_mutex_unlock(&mu);
    return 1;
  }
  /* (a forked child's inherited state is for the parent's thread, which it does not have) */
  wake_err e = { "", 0 };
  int ok = 1, bound = 0;
  srv.listen_fd = srv.stop_fd = srv.epfd = -1;
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
    srv.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv.listen_fd < 0 || bind(srv.listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
      fail(&e, 0, "cannot bind the wake socket %s: %s", addr.sun_path, strerror(errno));
      ok = 0;
    } else {
      bound = 1;
      /* 0600: whatever the umask, only our user may connect */
      if (chmod(addr.sun_path, 0600) < 0 || listen(srv.listen_fd, 1024) < 0) {
        fail(&e, 0, "cannot listen on the wake socket %s: %s", addr.sun_path, strerror(errno));
        ok = 0;
      }
    }
  }
  if (ok) {
    srv.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv.epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event a = { .events = EPOLLIN, .data.fd = srv.listen_fd };
    struct epoll_event b = { .events = EPOLLIN, .data.fd = srv.stop_fd };
    if (srv.stop_fd < 0 || srv.epfd < 0 || epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.listen_fd, &a) < 0 ||
        epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.stop_fd, &b) < 0) {
      fail(&e, 0, "cannot set up the wake thread: %s", strerror(errno));
      ok = 0;
    }
  }
  if (ok) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the host's signals stay with the host's threads */
    int rc = pthread_create(&srv.thread, NULL, wake_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
      fail(&e, 0, "cannot start the wake thread: %s", strerror(rc));
      ok = 0;
    }
  }
  if (!ok) {
    if (srv.listen_fd >= 0) close(srv.listen_fd);
    if (bound) unlink(addr.sun_path); /* only the file we made */
    if (srv.stop_fd >= 0) close(srv.stop_fd);
    if (srv.epfd >= 0) close(srv.epfd);
    srv.listen_fd = srv.stop_fd = srv.epfd = -1;
    pthread_mutex_unlock(&mu);
    lua_pushnil(L);
    lua_pushstring(L, e.text);
    lua_pushstring(L, e.unsafe ? "unsafe" : "failed");
    return 3;
  }
  srv.running = 1;
  srv.pid = getpid();
  memcpy(srv.path, addr.sun_path, sizeof srv.path);
  lua_pushstring(L, srv.path);
  pthread_mutex_unlock(&mu);
  return 1;
}

int lh_wake_lua_stop(lua_State *L) {
  (void)L;
  pthread_mutex_lock(&mu);
  if (srv.running && srv.pid == getpid()) {
    uint64_t one = 1;
    ssize_t w = write(srv.stop_fd, &one, sizeof one);
    (void)w;
    pthread_join(srv.thread, NULL);
    close(srv.listen_fd);
    close(srv.stop_fd);
    close(srv.epfd);
    unlink(srv.path);
    srv.running = 0;
  }
  pthread_mutex_unlock(&mu);
  return 0;
}
