#define _GNU_SOURCE 1 /* accept4 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
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

/* Remove lhwake.<pid>.sock files whose process is gone (a worker killed with -9). */
static void remove_stale(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d))) {
    int pid;
    char tail[16];
    if (sscanf(de->d_name, "lhwake.%d.%15s", &pid, tail) != 2 || strcmp(tail, "sock") != 0) continue;
    if (pid == getpid() || (kill(pid, 0) == 0 || errno == EPERM)) continue;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    unlink(p);
  }
  closedir(d);
}

int lh_wake_lua_start(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  pthread_mutex_lock(&mu);
  if (srv.running && srv.pid == getpid()) {
    lua_pushstring(L, srv.path);
    pthread_mutex_unlock(&mu);
    return 1;
  }
  /* (a forked child's inherited state is for the parent's thread, which it does not have) */
  const char *err = NULL;
  srv.listen_fd = srv.stop_fd = srv.epfd = -1;
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) err = "cannot create the wake directory";
  int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/lhwake.%d.sock", dir, (int)getpid());
  if (!err && (n < 0 || (size_t)n >= sizeof addr.sun_path)) err = "wake directory path too long";
  if (!err) {
    remove_stale(dir);
    unlink(addr.sun_path);
    srv.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv.listen_fd < 0 || bind(srv.listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(srv.listen_fd, 1024) < 0)
      err = "cannot listen on the wake socket";
  }
  if (!err) {
    srv.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv.epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event a = { .events = EPOLLIN, .data.fd = srv.listen_fd };
    struct epoll_event b = { .events = EPOLLIN, .data.fd = srv.stop_fd };
    if (srv.stop_fd < 0 || srv.epfd < 0 || epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.listen_fd, &a) < 0 ||
        epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.stop_fd, &b) < 0)
      err = "cannot set up the wake thread";
  }
  if (!err) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the host's signals stay with the host's threads */
    if (pthread_create(&srv.thread, NULL, wake_thread, NULL) != 0) err = "cannot start the wake thread";
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  if (err) {
    int e = errno;
    if (srv.listen_fd >= 0) close(srv.listen_fd);
    if (srv.stop_fd >= 0) close(srv.stop_fd);
    if (srv.epfd >= 0) close(srv.epfd);
    srv.listen_fd = srv.stop_fd = srv.epfd = -1;
    unlink(addr.sun_path);
    pthread_mutex_unlock(&mu);
    lua_pushnil(L);
    lua_pushfstring(L, "%s (%s): %s", err, addr.sun_path, strerror(e));
    return 2;
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
