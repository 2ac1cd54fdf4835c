#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include "arena.h"

struct lh_arena_block {
  lh_arena_block *next;
  size_t size;
  max_align_t data[];
};

#define FIRST_BLOCK 4096

/* protobuf-c's allocations carry their size in front (16 bytes, which keeps the alignment), so
 * that the length of an unpacked `string` field can be known: protobuf-c keeps those as C
 * strings, and would hand back "a" for "a\0b". It unpacks a string of n bytes into an
 * allocation of exactly n + 1 (the bytes and a terminator); lh_arena_pb_strlen reads it back. */
typedef struct pb_header {
  size_t size;
  size_t check; /* size ^ PB_CHECK: this really is a header */
} pb_header;
#define PB_CHECK ((size_t)0x6c68617265706221ULL)

static void *pb_alloc(void *ud, size_t n) {
  pb_header *h = lh_arena_alloc(ud, sizeof *h + n);
  if (!h) return NULL;
  h->size = n;
  h->check = n ^ PB_CHECK;
  return h + 1;
}
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

size_t lh_arena_pb_strlen(const lh_arena *a, const char *s) {
  if (!s || s == protobuf_c_empty_string) return 0;
  uintptr_t p = (uintptr_t)s;
  for (const lh_arena_block *b = a->head; b; b = b->next) {
    uintptr_t start = (uintptr_t)b->data, end = start + b->size;
    if (p < start + sizeof(pb_header) || p >= end) continue;
    const pb_header *h = (const pb_header *)s - 1;
    if ((h->check ^ PB_CHECK) == h->size && h->size >= 1 && h->size <= end - p && s[h->size - 1] == '\0')
      return h->size - 1;
    break;
  }
  return strlen(s); /* not one of protobuf-c's strings (a default, or a static text) */
}
