/* server.c: see server.h.
 *
 * Each worker owns a completion queue, keeps REQUESTS_PER_RPC calls requested per registered
 * method (plus a few generic requests that catch unknown methods), and runs every completion
 * on its own thread: request arrives -> request a replacement -> checks, faults, handler ->
 * the reply is prepared in the call object -> one batch (initial metadata, message, status,
 * close). The batch is started at once, or later from another thread: by the store's writer
 * once the store is durable (--store), then by the timer thread once due (--delay-ms).
 * grpc_call_start_batch may be called from any thread; the completion always comes back to
 * the worker's queue. Call objects come from a per-worker free list and all temporaries from
 * a per-worker arena, so the steady state does no malloc of its own except the stored entry. */
#include "server.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <netdb.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "conns.h"
#include "correlated.h"
#include "delayq.h"
#include "journal.h"
#include "status.h"

#define REQUESTS_PER_RPC 16     /* calls requested up front per method and worker (hot ones) */
#define REQUESTS_PER_RARE_RPC 4
#define GENERIC_REQUESTS 2
#define RPC_GENERIC RPC_COUNT     /* pseudo rpc: any unregistered method */
#define GRACE_MS 200            /* in-flight calls may finish during shutdown */
#define STOP_TIMEOUT_MS 900     /* total budget before giving up (exit within 1 s) */

typedef enum { PHASE_REQUESTED, PHASE_REPLYING } call_phase;

typedef struct ds_call {
    journal_waiter jw;            /* --store: waiting for durability */
    dq_item dq;                   /* --delay-ms: waiting to be due */
    struct ds_call *next_free;
    struct ds_call *next_all;
    struct worker *w;
    int rpc;                      /* lh_rpc, or RPC_GENERIC */
    call_phase phase;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;       /* request metadata (tenantid, authorization) */
    grpc_call_details details;    /* RPC_GENERIC only */
    grpc_byte_buffer *payload;    /* registered methods: the request message */
    /* The prepared reply, owned by the call until its batch completes. */
    grpc_status_code status;
    grpc_byte_buffer *reply;      /* OK only */
    grpc_slice status_details;
    int has_status_details;
    grpc_metadata trailer;        /* grpc-status-details-bin (RetryInfo), static slices */
    int has_trailer;
    int cancelled;
    uint64_t arrived_ns;          /* --delay-ms: due = arrival + delay */
    struct timespec started;      /* --verbose only */
} ds_call;

#define CALL_OF(ptr, member) ((ds_call *)((char *)(ptr) - offsetof(ds_call, member)))

typedef struct worker {
    struct lh_server *srv;
    grpc_completion_queue *cq;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t free_mu;      /* a deferred reply that fails to start is freed elsewhere */
    ds_call *free_calls;
    ds_call *all_calls;
    arena arena;
} worker;

struct lh_server {
    grpc_server *server;
    grpc_completion_queue *ctl_cq;       /* receives the shutdown notification only */
    void *methods[RPC_COUNT];
    worker *workers;
    int nworkers;
    lh_db *db;
    int verbose;
    int port;
    faults *faults;
    auth *auth;
    delayq *dq;                          /* --delay-ms, else NULL */
    atomic_int stopping;
    atomic_long calls[RPC_COUNT + 1];
    char shutdown_tag;
};

/* ---- call objects -------------------------------------------------------------------- */

static ds_call *call_get(worker *w)
{
    pthread_mutex_lock(&w->free_mu);
    ds_call *c = w->free_calls;
    if (c) {
        w->free_calls = c->next_free;
    } else {
        c = calloc(1, sizeof *c);
        if (c) {
            c->next_all = w->all_calls;
            w->all_calls = c;
        }
    }
    pthread_mutex_unlock(&w->free_mu);
    if (!c) return NULL;
    c->w = w;
    c->call = NULL;
    c->payload = NULL;
    c->reply = NULL;
    c->has_status_details = 0;
    c->has_trailer = 0;
    c->cancelled = 0;
    grpc_metadata_array_init(&c->md);
    grpc_call_details_init(&c->details);
    return c;
}

/* Releases everything a call holds and puts the object back on the free list. */
static void call_put(worker *w, ds_call *c)
{
    if (c->payload) grpc_byte_buffer_destroy(c->payload);
    if (c->reply) grpc_byte_buffer_destroy(c->reply);
    if (c->has_status_details) grpc_slice_unref(c->status_details);
    grpc_metadata_array_destroy(&c->md);
    grpc_call_details_destroy(&c->details);
    if (c->call) grpc_call_unref(c->call);
    pthread_mutex_lock(&w->free_mu);
    c->next_free = w->free_calls;
    w->free_calls = c;
    pthread_mutex_unlock(&w->free_mu);
}

static int request_call(worker *w, int rpc)
{
    lh_server *s = w->srv;
    ds_call *c = call_get(w);
    if (!c) return -1;
    c->rpc = rpc;
    c->phase = PHASE_REQUESTED;
    grpc_call_error e;
    if (rpc == RPC_GENERIC)
        e = grpc_server_request_call(s->server, &c->call, &c->details, &c->md, w->cq, w->cq, c);
    else
        e = grpc_server_request_registered_call(s->server, s->methods[rpc], &c->call, &c->deadline,
                                                &c->md, &c->payload, w->cq, w->cq, c);
    if (e != GRPC_CALL_OK) {
        call_put(w, c);
        return -1;
    }
    return 0;
}

/* ---- replies ------------------------------------------------------------------------- */

static void log_call(ds_call *c, const lh_reply *r, const char *note)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long us = (long)((now.tv_sec - c->started.tv_sec) * 1000000L + (now.tv_nsec - c->started.tv_nsec) / 1000);
    const char *msg = r->message ? r->message : "";
    if (c->rpc == RPC_GENERIC)
        fprintf(stderr, "lh-devserver: %.*s %s %ldus %s%s\n", (int)GRPC_SLICE_LENGTH(c->details.method),
                (const char *)GRPC_SLICE_START_PTR(c->details.method), status_name(r->code), us, note, msg);
    else
        fprintf(stderr, "lh-devserver: %s %s %ldus %s%s\n", lh_methods[c->rpc].name, status_name(r->code), us, note,
                msg);
}

/* Copies what the reply needs into the call: after this the arena may be reset. */
static void prepare_reply(ds_call *c, const lh_reply *r, int retry_info)
{
    c->status = r->code;
    if (r->code == GRPC_STATUS_OK) {
        /* Zero-copy for bytes of an append-only store, which outlive every call (store.h);
         * anything else (in the arena, reset before the reply is sent) is copied. */
        grpc_slice s = r->copy ? grpc_slice_from_copied_buffer((const char *)r->payload, r->payload_len)
                               : grpc_slice_from_static_buffer(r->payload, r->payload_len);
        c->reply = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
    }
    if (r->message) {
        c->status_details = grpc_slice_from_copied_string(r->message);
        c->has_status_details = 1;
    }
    if (retry_info) {
        size_t len;
        const uint8_t *d = faults_exhausted_details(&len);
        c->trailer.key = grpc_slice_from_static_string("grpc-status-details-bin");
        c->trailer.value = grpc_slice_from_static_buffer(d, len);
        c->has_trailer = 1;
    }
}

/* Starts the reply batch; any thread. Its completion comes to the worker's queue. */
static void start_reply(ds_call *c)
{
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);

    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = 0;
    n++;
    if (c->reply) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->reply;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = c->status;
    ops[n].data.send_status_from_server.trailing_metadata_count = c->has_trailer ? 1 : 0;
    ops[n].data.send_status_from_server.trailing_metadata = c->has_trailer ? &c->trailer : NULL;
    if (c->has_status_details) ops[n].data.send_status_from_server.status_details = &c->status_details;
    n++;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
    n++;

    c->phase = PHASE_REPLYING;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);
    if (e != GRPC_CALL_OK) {
        fprintf(stderr, "lh-devserver: grpc_call_start_batch failed (%d)\n", (int)e);
        call_put(c->w, c);
    }
}

static void fire_delayed(dq_item *it, void *ctx)
{
    (void)ctx;
    start_reply(CALL_OF(it, dq));
}

/* The store is durable for this reply (or there is no store): send it now or when due. */
static void after_durable(lh_server *s, ds_call *c)
{
    if (s->dq) {
        c->dq.due_ns = c->arrived_ns + (uint64_t)s->faults->delay_ms * 1000000ull;
        delayq_add(s->dq, &c->dq);
    } else {
        start_reply(c);
    }
}

static void on_durable(journal_waiter *jw, void *ctx) { after_durable(ctx, CALL_OF(jw, jw)); }

/* --drop-next: the call's connection is shut down under gRPC's feet (conns.h). The call is
 * completed by a close-only batch when gRPC notices. */
static void drop_call(lh_server *s, ds_call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    c->phase = PHASE_REPLYING;
    if (grpc_call_start_batch(c->call, &op, 1, c, NULL) != GRPC_CALL_OK) {
        call_put(c->w, c);
        return;
    }
    char *peer = grpc_call_get_peer(c->call);
    int dropped = peer && conns_drop_peer(peer, s->port) == 0;
    if (!dropped) /* not found (should not happen): at least end the call the same way */
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE, "lh-devserver: connection dropped (--drop-next)",
                                     NULL);
    if (s->verbose)
        fprintf(stderr, "lh-devserver: %s dropped: %s %s\n", lh_methods[c->rpc].name, peer ? peer : "?",
                dropped ? "socket shut down" : "socket not found, call cancelled");
    gpr_free(peer);
}

/* The request message as one contiguous range: the slice itself in the usual case, else a
 * copy in the arena. NULL if there was no message. */
static const uint8_t *request_bytes(worker *w, grpc_byte_buffer *bb, size_t *len)
{
    if (!bb) return NULL;
    if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
        bb->data.raw.slice_buffer.count == 1) {
        grpc_slice *s = &bb->data.raw.slice_buffer.slices[0]; /* by pointer: may be inlined */
        *len = GRPC_SLICE_LENGTH(*s);
        return GRPC_SLICE_START_PTR(*s);
    }
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb)) return NULL;
    grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    *len = GRPC_SLICE_LENGTH(all);
    uint8_t *copy = arena_alloc(&w->arena, *len ? *len : 1);
    if (copy) memcpy(copy, GRPC_SLICE_START_PTR(all), *len);
    grpc_slice_unref(all);
    return copy;
}

static void unimplemented(worker *w, ds_call *c, lh_reply *r)
{
    /* grpc-java's wording, without the leading '/'. */
    size_t ml = GRPC_SLICE_LENGTH(c->details.method);
    const char *m = (const char *)GRPC_SLICE_START_PTR(c->details.method);
    if (ml && m[0] == '/') { m++; ml--; }
    size_t pl = strlen(MSG_NO_METHOD_PREFIX);
    char *msg = arena_alloc(&w->arena, pl + ml + 1);
    if (msg) {
        memcpy(msg, MSG_NO_METHOD_PREFIX, pl);
        memcpy(msg + pl, m, ml);
        msg[pl + ml] = '\0';
    }
    r->code = GRPC_STATUS_UNIMPLEMENTED;
    r->message = msg ? msg : MSG_NO_METHOD_PREFIX;
}

static void release_request(worker *w, ds_call *c)
{
    if (c->payload) {
        grpc_byte_buffer_destroy(c->payload);
        c->payload = NULL;
    }
    arena_reset(&w->arena);
}

static void on_request(worker *w, ds_call *c)
{
    lh_server *s = w->srv;
    lh_reply r = { .code = GRPC_STATUS_OK };
    const char *note = "";
    int retry_info = 0, ran_handler = 0;
    if (s->verbose) clock_gettime(CLOCK_MONOTONIC, &c->started);
    if (s->dq) c->arrived_ns = dq_now_ns();
    atomic_fetch_add_explicit(&s->calls[c->rpc], 1, memory_order_relaxed);

    const char *auth_msg = NULL;
    grpc_status_code auth_code;
    if (c->rpc == RPC_GENERIC) {
        unimplemented(w, c, &r);
    } else if ((auth_code = auth_check(s->auth, &c->md, &auth_msg)) != GRPC_STATUS_OK) {
        r = (lh_reply){ .code = auth_code, .message = auth_msg };
    } else {
        fault_kind fk = lh_methods[c->rpc].faults ? faults_before_put(s->faults) : FAULT_NONE;
        switch (fk) {
        case FAULT_EXHAUST:
            r = (lh_reply){ .code = GRPC_STATUS_RESOURCE_EXHAUSTED, .message = faults_exhausted_message() };
            retry_info = 1;
            note = "[--exhaust-next] ";
            break;
        case FAULT_FAIL:
            r = (lh_reply){ .code = s->faults->fail_code, .message = faults_fail_message(s->faults, 0) };
            note = "[--fail-next/--fail-rate] ";
            break;
        case FAULT_DROP:
            release_request(w, c);
            drop_call(s, c);
            return;
        case FAULT_NONE: {
            size_t len = 0;
            const uint8_t *req = request_bytes(w, c->payload, &len);
            if (!req) {
                r = (lh_reply){ .code = GRPC_STATUS_INTERNAL, .message = MSG_NO_REQUEST };
            } else {
                handlers_call(s->db, (lh_rpc)c->rpc, req, len, &w->arena, &r);
                ran_handler = 1;
            }
            if (r.code == GRPC_STATUS_OK && r.stored && faults_after_store(s->faults)) {
                r = (lh_reply){ .code = s->faults->fail_code, .message = faults_fail_message(s->faults, 1) };
                note = "[--store-then-fail, stored] ";
            }
            break;
        }
        }
    }
    if (s->verbose) log_call(c, &r, note);
    prepare_reply(c, &r, retry_info);
    /* The reply borrows only the store and its own copies: drop the rest before the reply may
     * start (and complete) on another thread. */
    release_request(w, c);
    if (s->dq) atomic_fetch_add_explicit(&s->faults->n_delayed, 1, memory_order_relaxed);
    /* Anything that read or wrote the store waits until the store is durable. */
    if (ran_handler && s->db->journal) journal_wait(s->db->journal, &c->jw);
    else after_durable(s, c);
}

/* ---- workers ------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    worker *w = arg;
    lh_server *s = w->srv;

    for (int rpc = 0; rpc < RPC_COUNT; rpc++)
        for (int i = 0; i < (lh_methods[rpc].hot ? REQUESTS_PER_RPC : REQUESTS_PER_RARE_RPC); i++) request_call(w, rpc);
    for (int i = 0; i < GENERIC_REQUESTS; i++) request_call(w, RPC_GENERIC);

    for (;;) {
        grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE) continue;
        ds_call *c = ev.tag;
        if (c->phase == PHASE_REQUESTED) {
            if (!ev.success) { /* the server is shutting down: no replacement */
                call_put(w, c);
                continue;
            }
            if (!atomic_load_explicit(&s->stopping, memory_order_relaxed)) request_call(w, c->rpc);
            on_request(w, c);
        } else {
            call_put(w, c); /* reply batch done (or the client went away) */
        }
    }
    return NULL;
}

static void drain_and_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

/* Frees everything once no thread runs and no call is alive; grpc_shutdown last. */
static void free_server(lh_server *s)
{
    if (s->server) grpc_server_destroy(s->server);
    if (s->ctl_cq) drain_and_destroy(s->ctl_cq);
    for (int i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        if (w->cq) drain_and_destroy(w->cq);
        ds_call *c = w->all_calls;
        while (c) {
            ds_call *n = c->next_all;
            free(c);
            c = n;
        }
        arena_reset(&w->arena);
    }
    for (int i = 0; i < s->nworkers; i++) pthread_mutex_destroy(&s->workers[i].free_mu);
    free(s->workers);
    free(s);
    grpc_shutdown();
}

/* Waits on the control queue for the shutdown tag until `deadline`. 0 if it arrived. */
static int wait_shutdown_tag(lh_server *s, gpr_timespec deadline)
{
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->ctl_cq, deadline, NULL);
        if (ev.type == GRPC_OP_COMPLETE && ev.tag == &s->shutdown_tag) return 0;
        if (ev.type == GRPC_QUEUE_TIMEOUT || ev.type == GRPC_QUEUE_SHUTDOWN) return -1;
    }
}

static gpr_timespec in_ms(int ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* GOAWAY and stop accepting; calls already received get GRACE_MS to finish normally (their
 * clients see a reply, not a reset), then whatever is left (e.g. a client that never sends its
 * request) is cancelled. 0 once gRPC reports the server fully shut down, -1 on timeout. */
static int shutdown_grpc_server(lh_server *s)
{
    atomic_store(&s->stopping, 1);
    grpc_server_shutdown_and_notify(s->server, s->ctl_cq, &s->shutdown_tag);
    if (wait_shutdown_tag(s, in_ms(GRACE_MS)) == 0) return 0;
    if (s->dq) delayq_flush(s->dq); /* delayed replies go now, else they hold up shutdown */
    grpc_server_cancel_all_calls(s->server);
    return wait_shutdown_tag(s, in_ms(STOP_TIMEOUT_MS - GRACE_MS));
}

/* Why host:port cannot be bound, from a plain bind() (gRPC only says that it failed). */
static const char *bind_failure(const char *host, int port, char *buf, size_t len)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res = NULL;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc) {
        snprintf(buf, len, "%s", gai_strerror(rc));
        return buf;
    }
    snprintf(buf, len, "address in use or not available");
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) continue;
        int one = 1; /* as gRPC does, so TIME_WAIT leftovers are not blamed */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) snprintf(buf, len, "%s", strerror(errno));
        close(fd);
    }
    freeaddrinfo(res);
    return buf;
}

/* A whole PEM file as a NUL-terminated string, or NULL with a message. */
static char *read_pem(const char *flag, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s %s: %s", flag, path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        snprintf(err, errlen, "%s %s: out of memory", flag, path);
        return NULL;
    }
    buf[len] = '\0';
    if (!strstr(buf, "-----BEGIN ")) {
        snprintf(err, errlen, "%s %s: not a PEM file", flag, path);
        free(buf);
        return NULL;
    }
    return buf;
}

/* Insecure credentials, or TLS (mutual when a client CA is given). */
static grpc_server_credentials *make_credentials(const server_config *cfg, char *err, size_t errlen)
{
    if (!cfg->tls_cert) return grpc_insecure_server_credentials_create();
    char *cert = read_pem("--tls-cert", cfg->tls_cert, err, errlen);
    char *key = cert ? read_pem("--tls-key", cfg->tls_key, err, errlen) : NULL;
    char *ca = NULL;
    if (key && cfg->tls_client_ca) ca = read_pem("--tls-client-ca", cfg->tls_client_ca, err, errlen);
    grpc_server_credentials *creds = NULL;
    if (key && (ca || !cfg->tls_client_ca)) {
        grpc_ssl_pem_key_cert_pair pair = { .private_key = key, .cert_chain = cert };
        creds = grpc_ssl_server_credentials_create_ex(
            ca, &pair, 1,
            ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
        if (!creds) snprintf(err, errlen, "cannot make TLS credentials from --tls-cert/--tls-key");
    }
    free(cert);
    free(key);
    free(ca);
    return creds;
}

lh_server *server_start(const server_config *cfg, lh_db *db, int *bound_port, char *err, size_t errlen)
{
    grpc_init();
    lh_server *s = calloc(1, sizeof *s);
    worker *ws = s ? calloc((size_t)cfg->threads, sizeof *ws) : NULL;
    if (!ws) {
        free(s);
        grpc_shutdown();
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->workers = ws;
    s->nworkers = cfg->threads;
    s->db = db;
    s->verbose = cfg->verbose;
    s->faults = cfg->faults;
    s->auth = cfg->auth;
    for (int i = 0; i < s->nworkers; i++) pthread_mutex_init(&ws[i].free_mu, NULL);

    grpc_arg args[] = {
        /* Fail loudly when the port is taken instead of sharing it (Linux default is 1). */
        { .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0 },
        /* Like the real server: keepalive pings every >= 15 s, also without calls. */
        { .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
          .value.integer = 15000 },
        { .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, .value.integer = 1 },
    };
    grpc_channel_args cargs = { .num_args = sizeof args / sizeof args[0], .args = args };
    s->server = grpc_server_create(&cargs, NULL);
    for (int i = 0; i < RPC_COUNT; i++)
        s->methods[i] = grpc_server_register_method(s->server, lh_methods[i].path, NULL,
                                                    GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    s->ctl_cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->ctl_cq, NULL);
    for (int i = 0; i < s->nworkers; i++) {
        ws[i].srv = s;
        ws[i].cq = grpc_completion_queue_create_for_next(NULL);
        arena_init(&ws[i].arena);
        grpc_server_register_completion_queue(s->server, ws[i].cq, NULL);
    }

    char addr[320];
    if (strchr(cfg->host, ':')) snprintf(addr, sizeof addr, "[%s]:%d", cfg->host, cfg->port);
    else snprintf(addr, sizeof addr, "%s:%d", cfg->host, cfg->port);
    grpc_server_credentials *creds = make_credentials(cfg, err, errlen);
    if (!creds) {
        shutdown_grpc_server(s);
        free_server(s);
        return NULL;
    }
    int port = grpc_server_add_http2_port(s->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0) {
        char why[128];
        snprintf(err, errlen, "cannot listen on %s: %s", addr, bind_failure(cfg->host, cfg->port, why, sizeof why));
        shutdown_grpc_server(s); /* an unstarted server completes shutdown at once */
        free_server(s);
        return NULL;
    }
    s->port = port;
    if (s->faults->delay_ms > 0 && !(s->dq = delayq_start(fire_delayed, s))) {
        snprintf(err, errlen, "cannot start the --delay-ms timer thread");
        shutdown_grpc_server(s);
        free_server(s);
        return NULL;
    }
    if (db->journal && journal_start(db->journal, on_durable, s) != 0) {
        snprintf(err, errlen, "cannot start the --store writer thread");
        shutdown_grpc_server(s);
        delayq_stop(s->dq);
        free_server(s);
        return NULL;
    }
    grpc_server_start(s->server);

    for (int i = 0; i < s->nworkers; i++) {
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
            snprintf(err, errlen, "cannot start worker thread %d", i);
            server_stop(s);
            return NULL;
        }
        ws[i].thread_started = 1;
    }
    *bound_port = port;
    return s;
}

/* snprintf at buf + *pos, advancing *pos (never past len). */
static void append(char *buf, size_t len, size_t *pos, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    if (*pos >= len) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (n > 0) *pos += (size_t)n < len - *pos ? (size_t)n : len - *pos - 1;
}

void server_stats(lh_server *s, char *buf, size_t len)
{
    faults *f = s->faults;
    lh_db *db = s->db;
    journal_stats js = { 0 };
    if (db->journal) journal_get_stats(db->journal, &js);
    long calls = atomic_load(&s->calls[RPC_GENERIC]);
    for (int i = 0; i < RPC_COUNT; i++) calls += atomic_load(&s->calls[i]);
    size_t pos = 0;
    buf[0] = '\0';
    append(buf, len, &pos, "accepted=%ld open=%ld events=%zu defs=%zu correlated=%zu waiting=%zu calls=%ld",
           conns_accepted(), conns_open(s->port), store_count(db->events), store_count(db->defs),
           correlated_sweep(db), store_count(db->waiting), calls);
    for (int i = 0; i < RPC_COUNT; i++) append(buf, len, &pos, " %s=%ld", lh_methods[i].stat, atomic_load(&s->calls[i]));
    append(buf, len, &pos,
           " failed=%ld store_then_failed=%ld exhausted=%ld dropped=%ld delayed=%ld unauthenticated=%ld denied=%ld"
           " store_records=%llu store_replayed=%llu store_syncs=%llu",
           atomic_load(&f->n_failed), atomic_load(&f->n_store_then_failed), atomic_load(&f->n_exhausted),
           atomic_load(&f->n_dropped), atomic_load(&f->n_delayed), atomic_load(&s->auth->n_unauthenticated),
           atomic_load(&s->auth->n_denied), (unsigned long long)js.records, (unsigned long long)js.replayed,
           (unsigned long long)js.syncs);
}

int server_stop(lh_server *s)
{
    if (shutdown_grpc_server(s) != 0) return -1;
    /* No call is alive any more: nothing waits on the store writer or the timer. */
    journal_stop(s->db->journal);
    delayq_stop(s->dq);
    s->dq = NULL;
    for (int i = 0; i < s->nworkers; i++) grpc_completion_queue_shutdown(s->workers[i].cq);
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].thread_started) pthread_join(s->workers[i].thread, NULL);
    free_server(s);
    return 0;
}
