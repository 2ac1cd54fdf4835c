/* A growable byte buffer. Owned by a longer-lived object (the context), so a Lua error that
 * unwinds through a conversion leaves nothing behind: the next use just resets it. */
#ifndef LH_BUFFER_H
#define LH_BUFFER_H

#include <stddef.h>
#include <string.h>

typedef struct lh_buf {
  char *data;
  size_t len, cap;
} lh_buf;

/* Make room for n more bytes; returns 0 on out-of-memory (the buffer is unchanged). */
int lh_buf_reserve(lh_buf *b, size_t n);
void lh_buf_free(lh_buf *b);

static inline void lh_buf_reset(lh_buf *b) { b->len = 0; }

/* The *_unchecked writers need a prior lh_buf_reserve covering them. */
static inline void lh_buf_put_unchecked(lh_buf *b, const void *p, size_t n) {
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

#endif
