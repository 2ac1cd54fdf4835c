/* rpcutil.h: what every RPC handler shares: the reply it fills in, unpacking the request,
 * status texts in the call's arena, string forms of ids, and timestamps on the wire. */
#ifndef LHDS_RPCUTIL_H
#define LHDS_RPCUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "arena.h"
#include "object_id.pb-c.h"

/* A handler's outcome. `message` is NUL-terminated (static or in the call's arena).
 * `payload` (OK only) is either borrowed from an append-only store (valid until the store is
 * freed) or, when `copy` is set, in the call's arena: the server copies it into the reply. */
typedef struct lh_reply {
    grpc_status_code code;
    const char *message;
    const uint8_t *payload;
    size_t payload_len;
    int copy;
    int stored;      /* the put RPCs: this call stored something new (--store-then-fail) */
} lh_reply;

void reply_error(lh_reply *r, grpc_status_code code, const char *msg);
void reply_borrowed(lh_reply *r, const uint8_t *p, size_t len);
void reply_copied(lh_reply *r, const uint8_t *p, size_t len);

/* Fill in an error reply and return from the (void) handler. */
#define FAIL(r, code, msg) do { reply_error((r), (code), (msg)); return; } while (0)

/* printf into the arena; on allocation failure the format itself (never NULL). */
const char *arena_printf(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *str_or_empty(const char *s);

/* protobuf-c unpack behind the nesting limit (wire.h); NULL for any invalid request. */
void *unpack(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, arena *a);

/* The SDKs' string form of a WfRunId: ancestors joined with '_', root first. Absent -> "".
 * NULL when out of memory. */
char *wf_run_id_string(const Littlehorse__WfRunId *w, arena *a, size_t *out_len);

/* parts[0] "/" parts[1] "/" ... in the arena (NUL-terminated), e.g. a store key. */
char *join_key(arena *a, size_t *out_len, int n, const char *const *parts);

/* Wall-clock now in whole milliseconds since the epoch. */
int64_t now_ms(void);

/* google.protobuf.Timestamp for a time in ms: body size, and tag + length + body. */
size_t timestamp_size(int64_t ms);
uint8_t *put_timestamp(uint8_t *p, uint32_t field, int64_t ms);
/* A Timestamp message body (absent fields are zero) as ms since the epoch; 0 if malformed. */
int64_t timestamp_ms(const uint8_t *body, size_t len);

#endif
