/* Number text for JSON, independent of the C locale: integers as exact decimals, doubles as
 * the shortest text that reads back to the same double, and decimal text read back as the
 * correctly rounded double. No Lua, no allocation (lua-cjson keeps its fpconv apart the same
 * way). */
#ifndef LH_NUMFMT_H
#define LH_NUMFMT_H

#include <stddef.h>
#include <stdint.h>

/* Room lh_num_format_int and lh_num_format_double need at o. */
#define LH_NUM_INT_MAX 20
#define LH_NUM_DOUBLE_MAX 32

/* The exact decimal of v at o; returns the length (no NUL is written). */
size_t lh_num_format_int(char *o, int64_t v);

/* The shortest text of the finite double d that strtod reads back as d, always with a `.`
 * or an `e`: plain notation when 1e-4 <= |d| < 1e16 ("0.001", "1.0", "123.25"), else
 * d[.ddd]e(+|-)x ("1e+300", "1.5e-7"). Returns the length (no NUL is written). */
size_t lh_num_format_double(char *o, double d);

/* m * 10^e10 when one correctly rounded operation on exact operands gives it (Clinger's
 * fast path: m <= 2^53 and a power of ten that is exact as a double): 1 with *out set;
 * otherwise 0, and the text goes to lh_num_parse. */
int lh_num_exact(uint64_t m, long e10, double *out);

/* The correctly rounded double of the decimal text s[0..n) (JSON number syntax without the
 * sign, already validated), whatever the C locale; buf is scratch space of n + 16 bytes. */
double lh_num_parse(const char *s, size_t n, char *buf);

#endif
