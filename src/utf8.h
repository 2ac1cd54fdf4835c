/* Strict UTF-8 validation (RFC 3629): no overlong forms, no surrogates (U+D800..U+DFFF),
 * nothing above U+10FFFF. Used by the JSON codec for every string it writes or reads. */
#ifndef LH_UTF8_H
#define LH_UTF8_H

#include <stddef.h>

#define LH_UTF8_OK ((size_t)-1)

/* Offset of the first byte of the first invalid sequence in s[0..n), or LH_UTF8_OK.
 * A sequence cut short by the end of the text is invalid. ASCII runs go 8 bytes at a time. */
size_t lh_utf8_check(const char *s, size_t n);

/* Length (1..4) of the valid sequence that starts at p, of which rem >= 1 bytes are
 * available, or 0 if it is not a valid sequence. */
static inline size_t lh_utf8_seq(const unsigned char *p, size_t rem) {
  unsigned c = p[0], c1;
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;                 /* stray continuation byte, or overlong 2-byte */
  if (c < 0xE0) return (rem >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
  if (c < 0xF0) {
    if (rem < 3) return 0;
    c1 = p[1];
    if (c == 0xE0) { if (c1 < 0xA0 || c1 > 0xBF) return 0; }        /* overlong */
    else if (c == 0xED) { if (c1 < 0x80 || c1 > 0x9F) return 0; }   /* surrogates */
    else if ((c1 & 0xC0) != 0x80) return 0;
    return (p[2] & 0xC0) == 0x80 ? 3 : 0;
  }
  if (c < 0xF5) {
    if (rem < 4) return 0;
    c1 = p[1];
    if (c == 0xF0) { if (c1 < 0x90 || c1 > 0xBF) return 0; }        /* overlong */
    else if (c == 0xF4) { if (c1 < 0x80 || c1 > 0x8F) return 0; }   /* > U+10FFFF */
    else if ((c1 & 0xC0) != 0x80) return 0;
    return ((p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80) ? 4 : 0;
  }
  return 0;                               /* 0xF5..0xFF never appear in UTF-8 */
}

#endif
