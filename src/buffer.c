#include <stdlib.h>
#include "buffer.h"

int lh_buf_reserve(lh_buf *b, size_t n) {
  if (b->cap - b->len >= n) return 1;
  size_t need = b->len + n;
  if (need < b->len) return 0; /* overflow */
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) {
    if (cap > ((size_t)-1) / 2) { cap = need; break; }
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (!p) return 0;
  b->data = p;
  b->cap = cap;
  return 1;
}

void lh_buf_free(lh_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
