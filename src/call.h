/* One unary gRPC call on the C core API: request bytes in; status, message, reply bytes and
 * the server's RetryInfo delay out. Knows nothing about Lua or LittleHorse messages.
 * A call is started on a completion queue (lh_call_start), completes there with its own
 * state as the tag, and is then collected (lh_call_finish). lh_call_unary does all three on
 * a pluck queue for the blocking API; the async engine (async.c) uses a `next` queue. */
#ifndef LH_CALL_H
#define LH_CALL_H

#include <grpc/grpc.h>
#include "buffer.h"

typedef struct lh_call_result {
  int status;            /* grpc_status_code */
  lh_buf *message;       /* status message (details) */
  lh_buf *reply;         /* reply message bytes (only meaningful when status == OK) */
  int has_reply;
  double retry_delay;    /* seconds, from google.rpc.RetryInfo; < 0 when absent */
} lh_call_result;

#define LH_CALL_MAX_MD 8

/* Everything gRPC writes into while a call is in flight. Must not move until it completes. */
typedef struct lh_call_state {
  grpc_metadata md[LH_CALL_MAX_MD]; /* initial metadata, slices owned (unref'd on discard) */
  size_t nmd;
  grpc_call *call;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array initial_md, trailing_md;
  grpc_status_code status;
  grpc_slice details;
  int started;
  int released;  /* lh_call_discard ran: nothing is left to release (it runs again when the
                  * pending is freed after lh_call_finish, and then returns at once) */
} lh_call_state;

/* The monotonic-clock time `seconds` from now (a call's deadline, a queue wait's limit). */
gpr_timespec lh_deadline_in(double seconds);

/* Prepare st (before adding metadata or starting). */
void lh_call_init(lh_call_state *st);
/* Add one initial-metadata entry (copied); 0 when LH_CALL_MAX_MD are already there. */
int lh_call_add_md(lh_call_state *st, const char *key, size_t klen, const char *val, size_t vlen);
/* The same with slices made once by the caller (one more reference on each; no copy). */
int lh_call_add_md_slices(lh_call_state *st, grpc_slice key, grpc_slice val);

/* Start the call (st prepared by lh_call_init); its completion arrives on cq with tag `tag`.
 * Returns 0 if it could not be started (then lh_call_finish still must be called and
 * reports why). */
int lh_call_start(lh_call_state *st, grpc_channel *ch, grpc_completion_queue *cq, void *method_handle,
                  gpr_timespec deadline, const char *req, size_t reqlen, void *tag);

/* After the completion (or a failed start): copy the outcome into out and release every gRPC
 * resource of the call. Idempotent. ok is the completion's success flag. */
void lh_call_finish(lh_call_state *st, int ok, lh_call_result *out);

/* Release the call's resources without reading them (an outcome nobody will look at). */
void lh_call_discard(lh_call_state *st);

/* Blocking: start st (prepared, metadata added) on the pluck queue cq, wait (bounded by the
 * call's deadline), finish. */
int lh_call_unary(lh_call_state *st, grpc_channel *ch, grpc_completion_queue *cq, void *method_handle,
                  gpr_timespec deadline, const char *req, size_t reqlen, lh_call_result *out);

#endif
