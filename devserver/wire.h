/* wire.h: the protobuf wire-format helpers the handlers need to echo sub-messages
 * byte-for-byte (without a decode/re-encode round trip), to read stored messages and to
 * write replies by hand. The wire_put_* writers never check bounds: size the buffer first
 * with the *_size helpers. wbuf is a growing buffer in an arena for replies whose size is
 * not known up front (lists). */
#ifndef LHDS_WIRE_H
#define LHDS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "arena.h"

/* Nesting limit for request messages: protobuf-java's default recursion limit, which the real
 * server applies. protobuf-c itself has none, so a hostile deeply nested message (WfRunId's
 * parent chain, VariableValue arrays) could otherwise exhaust a worker's stack. */
#define WIRE_MAX_DEPTH 100

#define WIRE_VARINT 0
#define WIRE_I64    1
#define WIRE_LEN    2
#define WIRE_I32    5

/* A borrowed byte range; `present` tells an absent field from an empty one. */
typedef struct wire_bytes {
    const uint8_t *data;
    size_t len;
    int present;
} wire_bytes;

size_t wire_varint_size(uint64_t v);
uint8_t *wire_put_varint(uint8_t *p, uint64_t v);

/* Size / write of a length-delimited field (tag + length + bytes). */
size_t wire_len_field_size(uint32_t field, size_t len);
uint8_t *wire_put_len_field(uint8_t *p, uint32_t field, const void *data, size_t len);
/* Tag + length only (the caller writes the body next). */
uint8_t *wire_put_len_header(uint8_t *p, uint32_t field, size_t len);

/* The same for a wire_bytes: nothing when it is absent. */
size_t wire_opt_len_size(uint32_t field, const wire_bytes *b);
uint8_t *wire_put_opt_len(uint8_t *p, uint32_t field, const wire_bytes *b);

/* Size / write of an int32 varint field (negative values take 10 bytes, as protobuf says). */
size_t wire_int32_field_size(uint32_t field, int32_t v);
uint8_t *wire_put_int32_field(uint8_t *p, uint32_t field, int32_t v);
size_t wire_uint64_field_size(uint32_t field, uint64_t v);
uint8_t *wire_put_uint64_field(uint8_t *p, uint32_t field, uint64_t v);

/* The raw body of top-level length-delimited field `field` in `msg`. Several occurrences are
 * concatenated (copied into `a`), which parses to the same merged message protobuf defines.
 * Returns 0 on success, -1 on malformed input or allocation failure. */
int wire_find_len_field(const uint8_t *msg, size_t len, uint32_t field, arena *a, wire_bytes *out);

/* One field read by wire_next: its number and wire type, the value of a varint field, the
 * bytes of a length-delimited one (borrowed from the message). */
typedef struct wire_field {
    uint32_t no;
    int wt;
    uint64_t varint;
    const uint8_t *data;
    size_t len;
} wire_field;

/* Reads the field at *p and advances past it: 1 when a field was read, 0 at `end`, -1 for
 * malformed input (groups included). */
int wire_next(const uint8_t **p, const uint8_t *end, wire_field *f);

/* A growing byte buffer in an arena. Appending never fails: on allocation failure `oom` is
 * set and later appends are dropped, so the caller checks once at the end. */
typedef struct wbuf {
    arena *a;
    uint8_t *p;
    size_t len, cap;
    int oom;
} wbuf;

void wbuf_init(wbuf *b, arena *a);
void wbuf_put(wbuf *b, const void *data, size_t len);
void wbuf_varint_field(wbuf *b, uint32_t field, uint64_t v);
void wbuf_len_field(wbuf *b, uint32_t field, const void *data, size_t len);

/* 0 if no sub-message of `msg` (typed by `desc`) nests deeper than max_depth, else -1.
 * Walks only message-typed fields; bounded recursion (at most max_depth frames). */
int wire_check_depth(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len, int max_depth);

#endif
