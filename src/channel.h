/* Shared gRPC channels. Clients made with the same target, credentials and transport
 * settings share one channel (gRPC channels are thread-safe and multiplex calls over one
 * HTTP/2 connection), so a thousand lh.client() calls open one connection, not a thousand.
 * Process-wide, refcounted, and never shared across fork (entries remember their pid). */
#ifndef LH_CHANNEL_H
#define LH_CHANNEL_H

#include <grpc/grpc.h>

typedef struct lh_channel_opts {
  const char *target;
  const char *ca_pem, *cert_pem, *key_pem; /* TLS when tls is set; NULL ca = system roots */
  const char *server_name;                 /* TLS name override (tests) */
  int tls;
  int keepalive_time_ms, keepalive_timeout_ms; /* 0 = gRPC default */
  const char *lb_policy;                   /* NULL = pick_first */
  int max_receive_size;                    /* 0 = default (4 MiB), -1 = unlimited */
} lh_channel_opts;

typedef struct lh_channel {
  grpc_channel *channel;
  void **methods;        /* registered call handles, one per path given to lh_channel_get */
  /* private */
  char *key;
  int refs;
  long pid;
  struct lh_channel *next;
} lh_channel;

/* A channel for these options (shared when an equal one exists); registers `paths` on a new
 * channel. NULL with *err set when the options cannot make a channel (bad PEM, ...). */
lh_channel *lh_channel_get(const lh_channel_opts *o, const char *const *paths, int npaths, const char **err);
void lh_channel_release(lh_channel *ch);
/* How many channels are open in this process (for tests). */
int lh_channel_count(void);

#endif
