/* server.h: the gRPC C-core server: one completion queue and thread per worker, registered
 * methods dispatched to handlers.c, everything else answered UNIMPLEMENTED. On top of the
 * handlers: token and tenant checks (auth.h), fault injection (faults.h), replies held back
 * until the store is durable (journal.h) and delayed replies (delayq.h). */
#ifndef LHDS_SERVER_H
#define LHDS_SERVER_H

#include <stddef.h>
#include <stdio.h>

#include "auth.h"
#include "faults.h"
#include "handlers.h"

typedef struct server_config {
    const char *host;
    int port;          /* 0: any free port */
    int threads;       /* worker threads = completion queues */
    int verbose;       /* one stderr line per call */
    const char *tls_cert, *tls_key;   /* PEM files: TLS when set */
    const char *tls_client_ca;        /* PEM file: require and verify client certificates */
    faults *faults;    /* never NULL */
    auth *auth;        /* never NULL */
} server_config;

typedef struct lh_server lh_server;

/* grpc_init, bind, start the workers. On failure returns NULL with a message in err (gRPC is
 * shut down again). *bound_port receives the real port. Call with SIGINT/SIGTERM blocked so
 * gRPC's own threads inherit the mask. */
lh_server *server_start(const server_config *cfg, lh_db *db, int *bound_port, char *err, size_t errlen);

/* One line of counters (no newline): connections accepted/open, what the store holds, calls,
 * injected faults, auth refusals, store file records and syncs. */
void server_stats(lh_server *s, char *buf, size_t len);

/* Stop accepting, cancel calls in flight, drain and destroy the queues, grpc_shutdown.
 * Returns 0, or -1 if gRPC did not finish within ~1 s (then nothing was freed and the caller
 * should just exit). */
int server_stop(lh_server *s);

#endif
