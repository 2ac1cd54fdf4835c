#include <string.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include "call.h"
#include "google/rpc/status.pb-c.h"

#define RETRY_INFO_TYPE "type.googleapis.com/google.rpc.RetryInfo"

double lh_call_retry_delay(const unsigned char *bin, size_t len) {
  double delay = -1;
  Google__Rpc__Status *st = google__rpc__status__unpack(NULL, len, bin);
  if (!st) return -1;
  for (size_t i = 0; i < st->n_details && delay < 0; i++) {
    Google__Protobuf__Any *any = st->details[i];
    if (!any->type_url || strcmp(any->type_url, RETRY_INFO_TYPE) != 0) continue;
    Google__Rpc__RetryInfo *ri = google__rpc__retry_info__unpack(NULL, any->value.len, any->value.data);
    if (ri && ri->retry_delay)
      delay = (double)ri->retry_delay->seconds + ri->retry_delay->nanos / 1e9;
    if (delay < 0 && ri) delay = 0;
    if (ri) google__rpc__retry_info__free_unpacked(ri, NULL);
  }
  google__rpc__status__free_unpacked(st, NULL);
  return delay;
}

static void set_message(lh_call_result *out, const char *s, size_t n) {
  lh_buf_reset(out->message);
  if (lh_buf_reserve(out->message, n + 1)) {
    lh_buf_put_unchecked(out->message, s, n);
    out->message->data[out->message->len] = '\0';
  }
}

static int copy_reply(grpc_byte_buffer *bb, lh_buf *dst) {
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return 0;
  lh_buf_reset(dst);
  size_t total = grpc_byte_buffer_length(bb);
  int ok = lh_buf_reserve(dst, total ? total : 1);
  grpc_slice s;
  while (grpc_byte_buffer_reader_next(&r, &s)) {
    if (ok) lh_buf_put_unchecked(dst, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
    grpc_slice_unref(s);
  }
  grpc_byte_buffer_reader_destroy(&r);
  return ok;
}

int lh_call_unary(grpc_channel *ch, grpc_completion_queue *cq, void *method_handle,
                  gpr_timespec deadline, grpc_metadata *md, size_t nmd,
                  const char *req, size_t reqlen, lh_call_result *out) {
  out->has_reply = 0;
  out->retry_delay = -1;
  grpc_call *call = grpc_channel_create_registered_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                                        method_handle, deadline, NULL);
  if (!call) {
    out->status = GRPC_STATUS_INTERNAL;
    set_message(out, "could not create the gRPC call", 30);
    return 0;
  }
  grpc_slice req_slice = grpc_slice_from_copied_buffer(req, reqlen);
  grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&req_slice, 1);
  grpc_slice_unref(req_slice);

  grpc_metadata_array initial_md, trailing_md;
  grpc_metadata_array_init(&initial_md);
  grpc_metadata_array_init(&trailing_md);
  grpc_byte_buffer *recv = NULL;
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();

  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = nmd;
  ops[0].data.send_initial_metadata.metadata = md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;

  int started = 1;
  grpc_call_error err = grpc_call_start_batch(call, ops, 6, call, NULL);
  if (err != GRPC_CALL_OK) {
    started = 0;
    status = GRPC_STATUS_INTERNAL;
  } else {
    /* The call's own deadline bounds this wait. */
    grpc_event ev = grpc_completion_queue_pluck(cq, call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) status = GRPC_STATUS_INTERNAL;
  }

  out->status = status;
  if (started)
    set_message(out, (const char *)GRPC_SLICE_START_PTR(details), GRPC_SLICE_LENGTH(details));
  else
    set_message(out, "could not start the gRPC call", 29);
  if (status == GRPC_STATUS_OK && recv) {
    out->has_reply = copy_reply(recv, out->reply);
    if (!out->has_reply) {
      out->status = GRPC_STATUS_RESOURCE_EXHAUSTED;
      set_message(out, "out of memory reading the reply", 31);
    }
  } else if (status == GRPC_STATUS_OK) {
    out->status = GRPC_STATUS_INTERNAL;
    set_message(out, "the server sent no reply message", 32);
  }
  for (size_t i = 0; i < trailing_md.count && status != GRPC_STATUS_OK; i++) {
    if (grpc_slice_str_cmp(trailing_md.metadata[i].key, "grpc-status-details-bin") == 0) {
      grpc_slice v = trailing_md.metadata[i].value;
      out->retry_delay = lh_call_retry_delay(GRPC_SLICE_START_PTR(v), GRPC_SLICE_LENGTH(v));
    }
  }

  if (recv) grpc_byte_buffer_destroy(recv);
  grpc_byte_buffer_destroy(send);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&initial_md);
  grpc_metadata_array_destroy(&trailing_md);
  grpc_call_unref(call);
  return started;
}
