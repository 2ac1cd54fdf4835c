/* A bump allocator for the protobuf-c messages of one conversion (request or reply). It is
 * owned by the context and reset before each use, so a Lua error raised half-way through a
 * conversion leaks nothing, and steady-state calls allocate nothing. */
#ifndef LH_ARENA_H
#define LH_ARENA_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

typedef struct lh_arena_block lh_arena_block;

typedef struct lh_arena {
  lh_arena_block *head;   /* the block being filled; older blocks follow */
  size_t used;            /* bytes used in head */
  ProtobufCAllocator pb;  /* protobuf-c allocator view of this arena (for unpack) */
} lh_arena;

void lh_arena_init(lh_arena *a);
/* Release everything but the largest block, ready for reuse. */
void lh_arena_reset(lh_arena *a);
void lh_arena_free(lh_arena *a);
/* 16-byte aligned memory; NULL on out-of-memory. */
void *lh_arena_alloc(lh_arena *a, size_t n);
/* The length of a `string` field that protobuf-c unpacked through a->pb, NUL bytes included
 * (protobuf-c itself only gives the C string); strlen for any other string. */
size_t lh_arena_pb_strlen(const lh_arena *a, const char *s);

#endif
