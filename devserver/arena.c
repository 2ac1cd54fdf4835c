/* arena.c: see arena.h. */
#include "arena.h"

#include <stdlib.h>

struct arena_chunk {
    arena_chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

static void *pb_alloc(void *ud, size_t n) { return arena_alloc(ud, n); }
static void pb_free(void *ud, void *p) { (void)ud; (void)p; }

void arena_init(arena *a)
{
    a->used = 0;
    a->spill = NULL;
    a->pb.alloc = pb_alloc;
    a->pb.free = pb_free;
    a->pb.allocator_data = a;
}

void *arena_alloc(arena *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n) return NULL;
    if (need <= ARENA_INLINE - a->used) {
        void *p = a->block + a->used;
        a->used += need;
        return p;
    }
    arena_chunk *c = a->spill;
    if (!c || need > c->cap - c->used) {
        /* New chunk: at least 4x the inline block, or exactly `need` for one big buffer. */
        size_t cap = need > 4 * ARENA_INLINE ? need : 4 * ARENA_INLINE;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = a->spill;
        a->spill = c;
    }
    void *p = c->data + c->used;
    c->used += need;
    return p;
}

void arena_reset(arena *a)
{
    arena_chunk *c = a->spill;
    while (c) {
        arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->spill = NULL;
    a->used = 0;
}
