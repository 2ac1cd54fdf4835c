#include <stdlib.h>
#include <stdint.h>
#include "arena.h"

struct lh_arena_block {
  lh_arena_block *next;
  size_t size;
  max_align_t data[];
};

#define FIRST_BLOCK 4096

static void *pb_alloc(void *ud, size_t n) { return lh_arena_alloc(ud, n); }
static void pb_free(void *ud, void *p) { (void)ud; (void)p; /* freed with the arena */ }

void lh_arena_init(lh_arena *a) {
  a->head = NULL;
  a->used = 0;
  a->pb.alloc = pb_alloc;
  a->pb.free = pb_free;
  a->pb.allocator_data = a;
}

void lh_arena_reset(lh_arena *a) {
  /* Keep one block, the largest, so a steady stream of similar calls never mallocs. */
  lh_arena_block *keep = a->head, *b;
  for (b = a->head; b; b = b->next)
    if (b->size > keep->size) keep = b;
  b = a->head;
  while (b) {
    lh_arena_block *next = b->next;
    if (b != keep) free(b);
    b = next;
  }
  if (keep) keep->next = NULL;
  a->head = keep;
  a->used = 0;
}

void lh_arena_free(lh_arena *a) {
  lh_arena_block *b = a->head;
  while (b) {
    lh_arena_block *next = b->next;
    free(b);
    b = next;
  }
  a->head = NULL;
  a->used = 0;
}

void *lh_arena_alloc(lh_arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (n == 0) n = 16;
  if (!a->head || a->head->size - a->used < n) {
    size_t size = a->head ? a->head->size * 2 : FIRST_BLOCK;
    while (size < n) size *= 2;
    lh_arena_block *b = malloc(sizeof *b + size);
    if (!b) return NULL;
    b->size = size;
    b->next = a->head;
    a->head = b;
    a->used = 0;
  }
  void *p = (char *)a->head->data + a->used;
  a->used += n;
  return p;
}
