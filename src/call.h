/* One unary gRPC call on the C core API: request bytes in; status, message, reply bytes and
 * the server's RetryInfo delay out. Knows nothing about Lua or LittleHorse messages. */
#ifndef LH_CALL_H
#define LH_CALL_H

#include <grpc/grpc.h>
#include "buffer.h"

typedef struct lh_call_result {
  int status;            /* grpc_status_code */
  lh_buf *message;       /* status message (details); filled by lh_call_unary */
  lh_buf *reply;         /* reply message bytes (only meaningful when status == OK) */
  int has_reply;
  double retry_delay;    /* seconds, from google.rpc.RetryInfo; < 0 when absent */
} lh_call_result;

/* Run the call to completion on the pluck queue cq (blocking until the reply or the
 * deadline). Every gRPC resource of the call is released before returning, so the caller
 * may raise Lua errors freely afterwards. Returns 0 only if the call could not be started
 * (then status/message describe why). */
int lh_call_unary(grpc_channel *ch, grpc_completion_queue *cq, void *method_handle,
                  gpr_timespec deadline, grpc_metadata *md, size_t nmd,
                  const char *req, size_t reqlen, lh_call_result *out);

/* Parse a grpc-status-details-bin value (google.rpc.Status) for a RetryInfo delay in
 * seconds; returns < 0 when there is none. */
double lh_call_retry_delay(const unsigned char *bin, size_t len);

#endif
