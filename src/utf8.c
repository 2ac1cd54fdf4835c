#include <stdint.h>
#include <string.h>
#include "utf8.h"

size_t lh_utf8_check(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s, *end = p + n;
  while (p < end) {
    /* ASCII fast path: 8 bytes at a time while no byte has its high bit set. */
    while (end - p >= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      if (w & UINT64_C(0x8080808080808080)) break;
      p += 8;
    }
    if (p >= end) break;
    if (*p < 0x80) { p++; continue; }
    size_t k = lh_utf8_seq(p, (size_t)(end - p));
    if (!k) return (size_t)(p - (const unsigned char *)s);
    p += k;
  }
  return LH_UTF8_OK;
}
