/* conns.c: see conns.h. */
#define _GNU_SOURCE
#include "conns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_long accepted;

/* Interposes libc's accept4 (see conns.h). */
int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    long r = syscall(SYS_accept4, fd, addr, len, flags);
    if (r >= 0) atomic_fetch_add(&accepted, 1);
    return (int)r;
}

long conns_accepted(void) { return atomic_load(&accepted); }

static int local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &l) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

/* Calls fn(fd, peer, ctx) for each connected TCP socket on local `port`; stops when fn
 * returns nonzero and returns that value. -1 if /proc/self/fd is unreadable. */
static int each_conn(int port, int (*fn)(int, const struct sockaddr_storage *, void *), void *ctx)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int dfd = dirfd(d), rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end || fd == dfd) continue;
        struct sockaddr_storage peer;
        socklen_t l = sizeof peer;
        if (getpeername((int)fd, (struct sockaddr *)&peer, &l) != 0) continue;
        if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6) continue;
        if (local_port((int)fd) != port) continue;
        rc = fn((int)fd, &peer, ctx);
    }
    closedir(d);
    return rc;
}

static int count_one(int fd, const struct sockaddr_storage *peer, void *ctx)
{
    (void)fd; (void)peer;
    ++*(long *)ctx;
    return 0;
}

long conns_open(int port)
{
    long n = 0;
    if (each_conn(port, count_one, &n) < 0) return -1;
    return n;
}

/* "ipv4:1.2.3.4:5" / "ipv6:[::1]:5" (also "ipv6:%5B::1%5D:5", as some versions escape). */
static int parse_peer(const char *peer, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    char buf[128];
    if (strlen(peer) >= sizeof buf) return -1;
    if (strncmp(peer, "ipv4:", 5) == 0) {
        strcpy(buf, peer + 5);
        char *colon = strrchr(buf, ':');
        if (!colon) return -1;
        *colon = '\0';
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)atoi(colon + 1));
        return inet_pton(AF_INET, buf, &in->sin_addr) == 1 ? 0 : -1;
    }
    if (strncmp(peer, "ipv6:", 5) == 0) {
        /* unescape %5B / %5D */
        size_t j = 0;
        for (const char *p = peer + 5; *p && j + 1 < sizeof buf; p++) {
            if (strncasecmp(p, "%5B", 3) == 0) { buf[j++] = '['; p += 2; }
            else if (strncasecmp(p, "%5D", 3) == 0) { buf[j++] = ']'; p += 2; }
            else buf[j++] = *p;
        }
        buf[j] = '\0';
        char *close_br = strrchr(buf, ']');
        if (buf[0] != '[' || !close_br || close_br[1] != ':') return -1;
        *close_br = '\0';
        char *pct = strchr(buf, '%'); /* zone id */
        if (pct) *pct = '\0';
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)atoi(close_br + 2));
        return inet_pton(AF_INET6, buf + 1, &in6->sin6_addr) == 1 ? 0 : -1;
    }
    return -1;
}

/* gRPC listens on dual-stack IPv6 sockets where it can: an IPv4 peer then shows up as
 * ::ffff:a.b.c.d. Compare such addresses as IPv4. */
static void unmap_v4(struct sockaddr_storage *ss)
{
    if (ss->ss_family != AF_INET6) return;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return;
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = in6->sin6_port };
    memcpy(&in.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &in, sizeof in);
}

static int same_peer(const struct sockaddr_storage *a0, const struct sockaddr_storage *b0)
{
    struct sockaddr_storage x0 = *a0, y0 = *b0;
    unmap_v4(&x0);
    unmap_v4(&y0);
    const struct sockaddr_storage *a = &x0, *b = &y0;
    if (a->ss_family != b->ss_family) return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

static int drop_if_peer(int fd, const struct sockaddr_storage *peer, void *ctx)
{
    if (!same_peer(peer, ctx)) return 0;
    return shutdown(fd, SHUT_RDWR) == 0 ? 1 : 0;
}

int conns_drop_peer(const char *peer, int port)
{
    struct sockaddr_storage want;
    if (parse_peer(peer, &want)) return -1;
    return each_conn(port, drop_if_peer, &want) == 1 ? 0 : -1;
}
