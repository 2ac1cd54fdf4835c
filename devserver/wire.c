/* wire.c: see wire.h. */
#include "wire.h"

#include <string.h>

size_t wire_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}

uint8_t *wire_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint64_t tag_of(uint32_t field, unsigned wt) { return ((uint64_t)field << 3) | wt; }

size_t wire_len_field_size(uint32_t field, size_t len)
{
    return wire_varint_size(tag_of(field, WIRE_LEN)) + wire_varint_size(len) + len;
}

uint8_t *wire_put_len_header(uint8_t *p, uint32_t field, size_t len)
{
    p = wire_put_varint(p, tag_of(field, WIRE_LEN));
    return wire_put_varint(p, len);
}

uint8_t *wire_put_len_field(uint8_t *p, uint32_t field, const void *data, size_t len)
{
    p = wire_put_len_header(p, field, len);
    if (len) memcpy(p, data, len);
    return p + len;
}

size_t wire_opt_len_size(uint32_t field, const wire_bytes *b)
{
    return b->present ? wire_len_field_size(field, b->len) : 0;
}

uint8_t *wire_put_opt_len(uint8_t *p, uint32_t field, const wire_bytes *b)
{
    return b->present ? wire_put_len_field(p, field, b->data, b->len) : p;
}

size_t wire_int32_field_size(uint32_t field, int32_t v)
{
    return wire_varint_size(tag_of(field, WIRE_VARINT)) + wire_varint_size((uint64_t)(int64_t)v);
}

uint8_t *wire_put_int32_field(uint8_t *p, uint32_t field, int32_t v)
{
    p = wire_put_varint(p, tag_of(field, WIRE_VARINT));
    return wire_put_varint(p, (uint64_t)(int64_t)v); /* sign-extended, per the spec */
}

size_t wire_uint64_field_size(uint32_t field, uint64_t v)
{
    return wire_varint_size(tag_of(field, WIRE_VARINT)) + wire_varint_size(v);
}

uint8_t *wire_put_uint64_field(uint8_t *p, uint32_t field, uint64_t v)
{
    p = wire_put_varint(p, tag_of(field, WIRE_VARINT));
    return wire_put_varint(p, v);
}

static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p >= end) return -1;
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return 0;
        }
    }
    return -1;
}

int wire_find_len_field(const uint8_t *msg, size_t len, uint32_t field, arena *a, wire_bytes *out)
{
    const uint8_t *p = msg, *end = msg + len;
    const uint8_t *first = NULL;
    size_t first_len = 0, total = 0, count = 0;

    /* Pass 1: locate occurrences. */
    while (p < end) {
        uint64_t key, n;
        if (get_varint(&p, end, &key)) return -1;
        switch (key & 7) {
        case 0: if (get_varint(&p, end, &n)) return -1; break;
        case 1: if ((size_t)(end - p) < 8) return -1; p += 8; break;
        case 5: if ((size_t)(end - p) < 4) return -1; p += 4; break;
        case 2:
            if (get_varint(&p, end, &n) || n > (uint64_t)(end - p)) return -1;
            if ((key >> 3) == field) {
                if (!count++) { first = p; first_len = (size_t)n; }
                total += (size_t)n;
            }
            p += n;
            break;
        default: return -1; /* groups (3/4) never occur in our protos */
        }
    }
    out->present = count > 0;
    if (count <= 1) {
        out->data = first;
        out->len = first_len;
        return 0;
    }

    /* Pass 2 (rare): concatenate all occurrences. */
    uint8_t *buf = arena_alloc(a, total ? total : 1), *w = buf;
    if (!buf) return -1;
    p = msg;
    while (p < end) {
        uint64_t key = 0, n = 0;
        get_varint(&p, end, &key);
        switch (key & 7) {
        case 0: get_varint(&p, end, &n); break;
        case 1: p += 8; break;
        case 5: p += 4; break;
        default:
            get_varint(&p, end, &n);
            if ((key >> 3) == field) { memcpy(w, p, n); w += n; }
            p += n;
        }
    }
    out->data = buf;
    out->len = total;
    return 0;
}

int wire_check_depth(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len, int max_depth)
{
    const uint8_t *p = msg, *end = msg + len;
    while (p < end) {
        uint64_t key, n;
        if (get_varint(&p, end, &key)) return -1;
        switch (key & 7) {
        case 0: if (get_varint(&p, end, &n)) return -1; break;
        case 1: if ((size_t)(end - p) < 8) return -1; p += 8; break;
        case 5: if ((size_t)(end - p) < 4) return -1; p += 4; break;
        case 2: {
            if (get_varint(&p, end, &n) || n > (uint64_t)(end - p)) return -1;
            const ProtobufCFieldDescriptor *f =
                key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3)) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (max_depth <= 0 || wire_check_depth(f->descriptor, p, (size_t)n, max_depth - 1)) return -1;
            }
            p += n;
            break;
        }
        default: return -1;
        }
    }
    return 0;
}

int wire_next(const uint8_t **pp, const uint8_t *end, wire_field *f)
{
    const uint8_t *p = *pp;
    if (p >= end) return 0;
    uint64_t key, n;
    if (get_varint(&p, end, &key) || key >> 3 == 0 || key >> 3 > UINT32_MAX) return -1;
    f->no = (uint32_t)(key >> 3);
    f->wt = (int)(key & 7);
    f->varint = 0;
    f->data = NULL;
    f->len = 0;
    switch (f->wt) {
    case WIRE_VARINT: if (get_varint(&p, end, &f->varint)) return -1; break;
    case WIRE_I64: if ((size_t)(end - p) < 8) return -1; f->data = p; f->len = 8; p += 8; break;
    case WIRE_I32: if ((size_t)(end - p) < 4) return -1; f->data = p; f->len = 4; p += 4; break;
    case WIRE_LEN:
        if (get_varint(&p, end, &n) || n > (uint64_t)(end - p)) return -1;
        f->data = p;
        f->len = (size_t)n;
        p += n;
        break;
    default: return -1;
    }
    *pp = p;
    return 1;
}

void wbuf_init(wbuf *b, arena *a)
{
    b->a = a;
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

static int wbuf_reserve(wbuf *b, size_t more)
{
    if (b->oom) return -1;
    if (more <= b->cap - b->len) return 0;
    size_t nc = b->cap ? b->cap * 2 : 256;
    while (nc - b->len < more) {
        if (nc > SIZE_MAX / 2) { b->oom = 1; return -1; }
        nc *= 2;
    }
    uint8_t *np = arena_alloc(b->a, nc); /* the old block stays in the arena until its reset */
    if (!np) { b->oom = 1; return -1; }
    if (b->len) memcpy(np, b->p, b->len);
    b->p = np;
    b->cap = nc;
    return 0;
}

void wbuf_put(wbuf *b, const void *data, size_t len)
{
    if (!len || wbuf_reserve(b, len)) return;
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

void wbuf_varint_field(wbuf *b, uint32_t field, uint64_t v)
{
    if (wbuf_reserve(b, 20)) return;
    uint8_t *p = wire_put_varint(b->p + b->len, tag_of(field, WIRE_VARINT));
    p = wire_put_varint(p, v);
    b->len = (size_t)(p - b->p);
}

void wbuf_len_field(wbuf *b, uint32_t field, const void *data, size_t len)
{
    if (wbuf_reserve(b, 20 + len)) return;
    uint8_t *p = wire_put_len_header(b->p + b->len, field, len);
    if (len) memcpy(p, data, len);
    b->len = (size_t)(p + len - b->p);
}
