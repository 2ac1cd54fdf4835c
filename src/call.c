#include <string.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include "call.h"
#include "google/rpc/status.pb-c.h"

#define RETRY_INFO_TYPE "type.googleapis.com/google.rpc.RetryInfo"

/* Parse a grpc-status-details-bin value (google.rpc.Status) for a RetryInfo delay in
 * seconds; returns < 0 when there is none. */
static double retry_delay(const unsigned char *bin, size_t len) {
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

gpr_timespec lh_deadline_in(double seconds) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos((int64_t)(seconds * 1e9), GPR_TIMESPAN));
}

void lh_call_init(lh_call_state *st) {
  /* every field but md[], whose first nmd entries are the only ones ever read */
  st->nmd = 0;
  st->call = NULL;
  st->send = st->recv = NULL;
  st->started = 0;
  st->released = 0;
  st->status = GRPC_STATUS_UNKNOWN;
  st->details = grpc_empty_slice();
  grpc_metadata_array_init(&st->initial_md);
  grpc_metadata_array_init(&st->trailing_md);
}

int lh_call_add_md(lh_call_state *st, const char *key, size_t klen, const char *val, size_t vlen) {
  if (st->nmd >= LH_CALL_MAX_MD) return 0;
  st->md[st->nmd].key = grpc_slice_from_copied_buffer(key, klen);
  st->md[st->nmd].value = grpc_slice_from_copied_buffer(val, vlen);
  st->nmd++;
  return 1;
}

int lh_call_add_md_slices(lh_call_state *st, grpc_slice key, grpc_slice val) {
  if (st->nmd >= LH_CALL_MAX_MD) return 0;
  st->md[st->nmd].key = grpc_slice_ref(key);
  st->md[st->nmd].value = grpc_slice_ref(val);
  st->nmd++;
  return 1;
}

int lh_call_start(lh_call_state *st, grpc_channel *ch, grpc_completion_queue *cq, void *method_handle,
                  gpr_timespec deadline, const char *req, size_t reqlen, void *tag) {
  st->call = grpc_channel_create_registered_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                                 method_handle, deadline, NULL);
  if (!st->call) return 0;
  grpc_slice req_slice = grpc_slice_from_copied_buffer(req, reqlen);
  st->send = grpc_raw_byte_buffer_create(&req_slice, 1);
  grpc_slice_unref(req_slice);

  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = st->nmd;
  ops[0].data.send_initial_metadata.metadata = st->md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = st->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &st->initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &st->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &st->trailing_md;
  ops[5].data.recv_status_on_client.status = &st->status;
  ops[5].data.recv_status_on_client.status_details = &st->details;
  st->started = grpc_call_start_batch(st->call, ops, 6, tag, NULL) == GRPC_CALL_OK;
  return st->started;
}

void lh_call_discard(lh_call_state *st) {
  if (st->released) return;
  st->released = 1;
  if (st->recv) grpc_byte_buffer_destroy(st->recv);
  if (st->send) grpc_byte_buffer_destroy(st->send);
  st->recv = st->send = NULL;
  grpc_slice_unref(st->details);
  st->details = grpc_empty_slice();
  grpc_metadata_array_destroy(&st->initial_md);
  grpc_metadata_array_destroy(&st->trailing_md);
  grpc_metadata_array_init(&st->initial_md);
  grpc_metadata_array_init(&st->trailing_md);
  if (st->call) grpc_call_unref(st->call);
  st->call = NULL;
  for (size_t i = 0; i < st->nmd; i++) {
    grpc_slice_unref(st->md[i].key);
    grpc_slice_unref(st->md[i].value);
  }
  st->nmd = 0;
}

void lh_call_finish(lh_call_state *st, int ok, lh_call_result *out) {
  out->has_reply = 0;
  out->retry_delay = -1;
  grpc_status_code status = st->status;
  if (!st->call) {
    out->status = GRPC_STATUS_INTERNAL;
    set_message(out, "could not create the gRPC call", 30);
  } else if (!st->started) {
    out->status = GRPC_STATUS_INTERNAL;
    set_message(out, "could not start the gRPC call", 29);
  } else {
    if (!ok) status = GRPC_STATUS_INTERNAL;
    out->status = status;
    set_message(out, (const char *)GRPC_SLICE_START_PTR(st->details), GRPC_SLICE_LENGTH(st->details));
    if (status == GRPC_STATUS_OK && st->recv) {
      out->has_reply = copy_reply(st->recv, out->reply);
      if (!out->has_reply) {
        out->status = GRPC_STATUS_RESOURCE_EXHAUSTED;
        set_message(out, "out of memory reading the reply", 31);
      }
    } else if (status == GRPC_STATUS_OK) {
      out->status = GRPC_STATUS_INTERNAL;
      set_message(out, "the server sent no reply message", 32);
    }
    for (size_t i = 0; i < st->trailing_md.count && status != GRPC_STATUS_OK; i++) {
      if (grpc_slice_str_cmp(st->trailing_md.metadata[i].key, "grpc-status-details-bin") == 0) {
        grpc_slice v = st->trailing_md.metadata[i].value;
        out->retry_delay = retry_delay(GRPC_SLICE_START_PTR(v), GRPC_SLICE_LENGTH(v));
      }
    }
  }
  lh_call_discard(st);
}

int lh_call_unary(lh_call_state *st, grpc_channel *ch, grpc_completion_queue *cq, void *method_handle,
                  gpr_timespec deadline, const char *req, size_t reqlen, lh_call_result *out) {
  int ok = 0;
  if (lh_call_start(st, ch, cq, method_handle, deadline, req, reqlen, st)) {
    /* The call's own deadline bounds this wait. */
    grpc_event ev = grpc_completion_queue_pluck(cq, st, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    ok = ev.type == GRPC_OP_COMPLETE && ev.success;
  }
  int started = st->started;
  lh_call_finish(st, ok, out);
  return started;
}
