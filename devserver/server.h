/* server.h: the gRPC C-core server: one completion queue and thread per worker, registered
 * methods dispatched to handlers.c, everything else answered UNIMPLEMENTED. */
#ifndef LHDS_SERVER_H
#define LHDS_SERVER_H

#include <stddef.h>

#include "handlers.h"

typedef struct server_config {
    const char *host;
    int port;          /* 0: any free port */
    int threads;       /* worker threads = completion queues */
    int verbose;       /* one stderr line per call */
    /* Room for later: TLS/mTLS credentials, allowed tenants, bearer tokens, fault modes. */
} server_config;

typedef struct lh_server lh_server;

/* grpc_init, bind, start the workers. On failure returns NULL with a message in err (gRPC is
 * shut down again). *bound_port receives the real port. Call with SIGINT/SIGTERM blocked so
 * gRPC's own threads inherit the mask. */
lh_server *server_start(const server_config *cfg, lh_db *db, int *bound_port, char *err, size_t errlen);

/* Stop accepting, cancel calls in flight, drain and destroy the queues, grpc_shutdown.
 * Returns 0, or -1 if gRPC did not finish within ~1 s (then nothing was freed and the caller
 * should just exit). */
int server_stop(lh_server *s);

#endif
