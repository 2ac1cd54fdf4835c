/* wire.h: the few protobuf wire-format helpers the handlers need to echo sub-messages
 * byte-for-byte (without a decode/re-encode round trip) and to write replies by hand.
 * Writers never check bounds: size the buffer first with the *_size helpers. */
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
#define WIRE_LEN    2

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

/* Size / write of an int32 varint field (negative values take 10 bytes, as protobuf says). */
size_t wire_int32_field_size(uint32_t field, int32_t v);
uint8_t *wire_put_int32_field(uint8_t *p, uint32_t field, int32_t v);
size_t wire_uint64_field_size(uint32_t field, uint64_t v);
uint8_t *wire_put_uint64_field(uint8_t *p, uint32_t field, uint64_t v);

/* The raw body of top-level length-delimited field `field` in `msg`. Several occurrences are
 * concatenated (copied into `a`), which parses to the same merged message protobuf defines.
 * Returns 0 on success, -1 on malformed input or allocation failure. */
int wire_find_len_field(const uint8_t *msg, size_t len, uint32_t field, arena *a, wire_bytes *out);

/* 0 if no sub-message of `msg` (typed by `desc`) nests deeper than max_depth, else -1.
 * Walks only message-typed fields; bounded recursion (at most max_depth frames). */
int wire_check_depth(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len, int max_depth);

#endif
