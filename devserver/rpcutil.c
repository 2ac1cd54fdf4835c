/* rpcutil.c: see rpcutil.h. */
#include "rpcutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wire.h"

void reply_error(lh_reply *r, grpc_status_code code, const char *msg)
{
    r->code = code;
    r->message = msg;
    r->payload = NULL;
    r->payload_len = 0;
    r->copy = 0;
    r->stored = 0;
}

void reply_borrowed(lh_reply *r, const uint8_t *p, size_t len)
{
    reply_error(r, GRPC_STATUS_OK, NULL);
    r->payload = p;
    r->payload_len = len;
}

void reply_copied(lh_reply *r, const uint8_t *p, size_t len)
{
    reply_borrowed(r, p, len);
    r->copy = 1;
}

const char *arena_printf(arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *m = n >= 0 ? arena_alloc(a, (size_t)n + 1) : NULL;
    if (!m) return fmt;
    va_start(ap, fmt);
    vsnprintf(m, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return m;
}

const char *str_or_empty(const char *s) { return s ? s : ""; }

void *unpack(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, arena *a)
{
    if (wire_check_depth(d, data, len, WIRE_MAX_DEPTH)) return NULL;
    return protobuf_c_message_unpack(d, &a->pb, len, data);
}

char *wf_run_id_string(const Littlehorse__WfRunId *w, arena *a, size_t *out_len)
{
    size_t n = 0;
    for (const Littlehorse__WfRunId *p = w; p; p = p->parent_wf_run_id)
        n += strlen(str_or_empty(p->id)) + (p->parent_wf_run_id ? 1 : 0);
    char *buf = arena_alloc(a, n + 1);
    if (!buf) return NULL;
    size_t pos = n;
    buf[n] = '\0';
    for (const Littlehorse__WfRunId *p = w; p; p = p->parent_wf_run_id) {
        size_t l = strlen(str_or_empty(p->id));
        pos -= l;
        memcpy(buf + pos, str_or_empty(p->id), l);
        if (p->parent_wf_run_id) buf[--pos] = '_';
    }
    *out_len = n;
    return buf;
}

char *join_key(arena *a, size_t *out_len, int n, const char *const *parts)
{
    size_t total = n > 0 ? (size_t)n - 1 : 0;
    for (int i = 0; i < n; i++) total += strlen(parts[i]);
    char *k = arena_alloc(a, total + 1);
    if (!k) return NULL;
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        if (i) k[pos++] = '/';
        memcpy(k + pos, parts[i], l);
        pos += l;
    }
    k[pos] = '\0';
    *out_len = pos;
    return k;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Seconds and nanos of a ms time, nanos in [0, 1e9) as Timestamp requires. */
static void split_ms(int64_t ms, int64_t *sec, int32_t *nanos)
{
    int64_t s = ms / 1000, r = ms % 1000;
    if (r < 0) { s--; r += 1000; }
    *sec = s;
    *nanos = (int32_t)(r * 1000000);
}

size_t timestamp_size(int64_t ms)
{
    int64_t sec;
    int32_t nanos;
    split_ms(ms, &sec, &nanos);
    return (sec ? wire_uint64_field_size(1, (uint64_t)sec) : 0) + (nanos ? wire_int32_field_size(2, nanos) : 0);
}

uint8_t *put_timestamp(uint8_t *p, uint32_t field, int64_t ms)
{
    int64_t sec;
    int32_t nanos;
    split_ms(ms, &sec, &nanos);
    p = wire_put_len_header(p, field, timestamp_size(ms));
    if (sec) p = wire_put_uint64_field(p, 1, (uint64_t)sec);
    if (nanos) p = wire_put_int32_field(p, 2, nanos);
    return p;
}

int64_t timestamp_ms(const uint8_t *body, size_t len)
{
    const uint8_t *p = body, *end = body + len;
    int64_t sec = 0, nanos = 0;
    wire_field f;
    int rc;
    while ((rc = wire_next(&p, end, &f)) == 1) {
        if (f.wt != WIRE_VARINT) continue;
        if (f.no == 1) sec = (int64_t)f.varint;
        else if (f.no == 2) nanos = (int32_t)f.varint;
    }
    if (rc < 0) return 0;
    return sec * 1000 + nanos / 1000000;
}
