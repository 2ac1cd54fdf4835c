/* arena.h: a per-call bump allocator, reset (not freed) between calls.
 * Serves protobuf-c unpacking, request copies and key building, so a call costs no malloc in
 * the common case; requests larger than the inline block spill into chunks freed at reset. */
#ifndef LHDS_ARENA_H
#define LHDS_ARENA_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

#define ARENA_INLINE 8192

typedef struct arena_chunk arena_chunk;

typedef struct arena {
    size_t used;                 /* bytes used in `block` */
    arena_chunk *spill;          /* overflow chunks, freed at reset */
    ProtobufCAllocator pb;       /* protobuf-c view of this arena (free is a no-op) */
    _Alignas(16) unsigned char block[ARENA_INLINE];
} arena;

void arena_init(arena *a);
void *arena_alloc(arena *a, size_t n);   /* 16-byte aligned; NULL only if malloc fails */
void arena_reset(arena *a);              /* frees spill chunks, keeps the inline block */

#endif
