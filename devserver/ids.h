/* ids.h: server-generated values: event guids (OS RNG) and millisecond timestamps. */
#ifndef LHDS_IDS_H
#define LHDS_IDS_H

#include <stdint.h>

#define GUID_LEN 32

/* 32 lowercase hex chars + NUL from getrandom(2), like the server's dashless UUID.
 * Returns 0, or -1 if the RNG failed. */
int ids_guid(char out[GUID_LEN + 1]);

/* Wall-clock now, truncated to whole milliseconds (nanos is a multiple of 1e6). */
void ids_now_ms(int64_t *seconds, int32_t *nanos);

#endif
