/* journal.c: see journal.h. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "LHDSJRN2"
#define MAGIC_V1 "LHDSJRN1"       /* kinds 'E' and 'D' only: upgraded to MAGIC on open */
#define MAGIC_LEN 8
#define REC_HEADER 8               /* body_len + crc */
#define MAX_BODY (64u << 20)       /* a longer length is corruption */

struct journal {
    int fd;
    char *path;

    pthread_mutex_t mu;
    pthread_cond_t wake;           /* the writer: work arrived or stop */
    uint8_t *pending;              /* records appended, not yet written */
    size_t pending_len, pending_cap;
    uint8_t *spare;                /* the writer's buffer (swapped with pending) */
    size_t spare_cap;
    uint64_t appended, synced;     /* record sequence numbers */
    journal_waiter *wait_head, *wait_tail;
    int started, stopping, stopped;
    pthread_t thread;
    journal_release_fn release;
    void *ctx;

    journal_stats st;
};

/* ---- helpers ------------------------------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A dev server that cannot keep its durability promise stops rather than lie. */
static void fatal(journal *j, const char *what)
{
    fprintf(stderr, "lh-devserver: --store %s: %s: %s; exiting\n", j->path, what, strerror(errno));
    fflush(stderr);
    _exit(1);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return -1;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (dfd < 0) return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

/* ---- replay -------------------------------------------------------------------------- */

/* Rewrites an "LHDSJRN1" header as MAGIC (through a descriptor without O_APPEND, which
 * would make pwrite append on Linux). */
static int upgrade_header(journal *j)
{
    int fd = open(j->path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = pwrite(fd, MAGIC, MAGIC_LEN, 0) == MAGIC_LEN && fdatasync(fd) == 0 ? 0 : -1;
    close(fd);
    return rc;
}

static int replay(journal *j, journal_apply_fn apply, void *ctx, char *err, size_t errlen)
{
    struct stat sb;
    if (fstat(j->fd, &sb) != 0) {
        snprintf(err, errlen, "cannot stat: %s", strerror(errno));
        return -1;
    }
    if (sb.st_size == 0) {
        if (write_all(j->fd, (const uint8_t *)MAGIC, MAGIC_LEN) || fdatasync(j->fd) || sync_dir_of(j->path)) {
            snprintf(err, errlen, "cannot initialise: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    FILE *f = fdopen(dup(j->fd), "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read: %s", strerror(errno));
        return -1;
    }
    char magic[MAGIC_LEN];
    int v1 = 0;
    if (fread(magic, 1, MAGIC_LEN, f) != MAGIC_LEN ||
        (memcmp(magic, MAGIC, MAGIC_LEN) != 0 && !(v1 = memcmp(magic, MAGIC_V1, MAGIC_LEN) == 0))) {
        fclose(f);
        snprintf(err, errlen, "not an lh-devserver store (bad header)");
        return -1;
    }
    off_t good = MAGIC_LEN;
    uint8_t hdr[REC_HEADER];
    uint8_t *body = NULL;
    size_t cap = 0;
    int rc = 0;
    const char *why = NULL;
    for (;;) {
        size_t got = fread(hdr, 1, REC_HEADER, f);
        if (got == 0) break;
        if (got < REC_HEADER) { why = "torn record header"; break; }
        uint32_t len = get_u32(hdr), crc = get_u32(hdr + 4);
        if (len < 5 || len > MAX_BODY) { why = "bad record length"; break; }
        if (len > cap) {
            uint8_t *nb = realloc(body, len);
            if (!nb) { snprintf(err, errlen, "out of memory"); rc = -1; break; }
            body = nb;
            cap = len;
        }
        if (fread(body, 1, len, f) != len) { why = "torn record"; break; }
        if (crc32(body, len) != crc) { why = "bad record checksum"; break; }
        char kind = (char)body[0];
        uint32_t klen = get_u32(body + 1);
        if (klen > len - 5) { why = "bad record"; break; }
        int arc = apply(ctx, kind, (const char *)body + 5, klen, body + 5 + klen, len - 5 - klen);
        if (arc == JOURNAL_UNKNOWN_KIND) {
            snprintf(err, errlen, "unknown record kind 0x%02x at byte %lld (written by a newer lh-devserver?)",
                     (unsigned char)kind, (long long)good);
            rc = -1;
            break;
        }
        if (arc) { snprintf(err, errlen, "out of memory"); rc = -1; break; }
        good += REC_HEADER + len;
        j->st.replayed++;
    }
    free(body);
    fclose(f);
    if (rc) return rc;
    if (why) {
        fprintf(stderr, "lh-devserver: --store %s: %s at byte %lld; dropping %lld bytes after it\n", j->path, why,
                (long long)good, (long long)(sb.st_size - good));
        if (ftruncate(j->fd, good) != 0 || fdatasync(j->fd) != 0) {
            snprintf(err, errlen, "cannot truncate the torn tail: %s", strerror(errno));
            return -1;
        }
    }
    if (v1 && upgrade_header(j) != 0) {
        snprintf(err, errlen, "cannot rewrite the header: %s", strerror(errno));
        return -1;
    }
    j->st.records = j->st.replayed;
    return 0;
}

journal *journal_open(const char *path, journal_apply_fn apply, void *ctx, char *err, size_t errlen)
{
    pthread_once(&crc_once, crc_init);
    journal *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path))) {
        free(j);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->wake, NULL);
    j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (j->fd < 0) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        journal_close(j);
        return NULL;
    }
    if (flock(j->fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, errno == EWOULDBLOCK ? "in use by another process" : "cannot lock: %s",
                 strerror(errno));
        journal_close(j);
        return NULL;
    }
    if (replay(j, apply, ctx, err, errlen)) {
        journal_close(j);
        return NULL;
    }
    return j;
}

/* ---- appending ----------------------------------------------------------------------- */

static void append_locked(journal *j, char kind, const char *key, size_t klen, const uint8_t *head, size_t hlen,
                          const uint8_t *val, size_t vlen)
{
    size_t body = 5 + klen + hlen + vlen, need = REC_HEADER + body;
    if (j->pending_len + need > j->pending_cap) {
        size_t nc = j->pending_cap ? j->pending_cap : 4096;
        while (nc < j->pending_len + need) nc *= 2;
        uint8_t *nb = realloc(j->pending, nc);
        if (!nb) fatal(j, "out of memory");
        j->pending = nb;
        j->pending_cap = nc;
    }
    uint8_t *p = j->pending + j->pending_len;
    uint8_t *b = p + REC_HEADER;
    b[0] = (uint8_t)kind;
    put_u32(b + 1, (uint32_t)klen);
    memcpy(b + 5, key, klen);
    if (hlen) memcpy(b + 5 + klen, head, hlen);
    if (vlen) memcpy(b + 5 + klen + hlen, val, vlen);
    put_u32(p, (uint32_t)body);
    put_u32(p + 4, crc32(b, body));
    j->pending_len += need;
    j->appended++;
    j->st.records++;
}

const store_entry *journal_insert(journal *j, store *s, char kind, store_entry *e, const uint8_t *head, size_t hlen,
                                  store_stale_fn stale, void *ctx, int *inserted)
{
    pthread_mutex_lock(&j->mu);
    const store_entry *r = store_insert_over(s, e, stale, ctx, inserted);
    if (*inserted) {
        size_t vlen, klen;
        const uint8_t *v = store_entry_value(r, &vlen);
        const char *k = store_entry_key(r, &klen);
        append_locked(j, kind, k, klen, head, hlen, v, vlen);
        if (j->started) pthread_cond_signal(&j->wake);
    }
    pthread_mutex_unlock(&j->mu);
    return r;
}

void journal_put(journal *j, store *s, char kind, store_entry *e, const uint8_t *head, size_t hlen)
{
    size_t vlen, klen;
    const uint8_t *v = store_entry_value(e, &vlen);
    const char *k = store_entry_key(e, &klen);
    pthread_mutex_lock(&j->mu);
    append_locked(j, kind, k, klen, head, hlen, v, vlen); /* before store_put: then `e` is the store's */
    store_put(s, e);
    if (j->started) pthread_cond_signal(&j->wake);
    pthread_mutex_unlock(&j->mu);
}

int journal_remove(journal *j, store *s, char kind, const char *key, size_t klen)
{
    pthread_mutex_lock(&j->mu);
    int removed = store_remove(s, key, klen);
    if (removed) {
        append_locked(j, kind, key, klen, NULL, 0, NULL, 0);
        if (j->started) pthread_cond_signal(&j->wake);
    }
    pthread_mutex_unlock(&j->mu);
    return removed;
}

int journal_flush(journal *j)
{
    pthread_mutex_lock(&j->mu);
    int rc = 0;
    if (j->pending_len) {
        if (write_all(j->fd, j->pending, j->pending_len) || fdatasync(j->fd)) rc = -1;
        else {
            j->st.syncs++;
            j->pending_len = 0;
            j->synced = j->appended;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

/* ---- the writer ---------------------------------------------------------------------- */

static void *writer_main(void *arg)
{
    journal *j = arg;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->stopping && !j->wait_head && !j->pending_len) pthread_cond_wait(&j->wake, &j->mu);
        if (j->stopping && !j->wait_head && !j->pending_len) break;
        /* Take everything appended and every waiter so far (each has seq <= target). */
        uint8_t *buf = j->pending;
        size_t len = j->pending_len, cap = j->pending_cap;
        j->pending = j->spare;
        j->pending_cap = j->spare_cap;
        j->pending_len = 0;
        j->spare = buf;
        j->spare_cap = cap;
        uint64_t target = j->appended;
        journal_waiter *w = j->wait_head;
        j->wait_head = j->wait_tail = NULL;
        pthread_mutex_unlock(&j->mu);

        if (len) {
            if (write_all(j->fd, buf, len)) fatal(j, "write failed");
            if (fdatasync(j->fd)) fatal(j, "fdatasync failed");
        }

        pthread_mutex_lock(&j->mu);
        if (len) j->st.syncs++;
        if (target > j->synced) j->synced = target;
        pthread_mutex_unlock(&j->mu);
        while (w) {
            journal_waiter *n = w->next;
            j->release(w, j->ctx);
            w = n;
        }
        pthread_mutex_lock(&j->mu);
    }
    j->stopped = 1;
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

int journal_start(journal *j, journal_release_fn release, void *ctx)
{
    j->release = release;
    j->ctx = ctx;
    if (pthread_create(&j->thread, NULL, writer_main, j) != 0) return -1;
    pthread_mutex_lock(&j->mu);
    j->started = 1;
    if (j->pending_len) pthread_cond_signal(&j->wake);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

void journal_wait(journal *j, journal_waiter *w)
{
    pthread_mutex_lock(&j->mu);
    w->next = NULL;
    w->seq = j->appended;
    if (j->synced >= w->seq || j->stopped) {
        int flush = j->synced < w->seq;
        pthread_mutex_unlock(&j->mu);
        if (flush && journal_flush(j)) fatal(j, "write failed");
        j->release(w, j->ctx);
        return;
    }
    if (j->wait_tail) j->wait_tail->next = w;
    else j->wait_head = w;
    j->wait_tail = w;
    pthread_cond_signal(&j->wake);
    pthread_mutex_unlock(&j->mu);
}

void journal_stop(journal *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int started = j->started && !j->stopped;
    j->stopping = 1;
    pthread_cond_signal(&j->wake);
    pthread_mutex_unlock(&j->mu);
    if (started) pthread_join(j->thread, NULL);
    journal_flush(j);
}

void journal_close(journal *j)
{
    if (!j) return;
    if (j->fd >= 0) close(j->fd);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->wake);
    free(j->pending);
    free(j->spare);
    free(j->path);
    free(j);
}

void journal_get_stats(journal *j, journal_stats *out)
{
    pthread_mutex_lock(&j->mu);
    *out = j->st;
    pthread_mutex_unlock(&j->mu);
}
