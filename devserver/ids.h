/* ids.h: server-generated event guids (OS RNG). */
#ifndef LHDS_IDS_H
#define LHDS_IDS_H

#include <stdint.h>

#define GUID_LEN 32

/* 32 lowercase hex chars + NUL from getrandom(2), like the server's dashless UUID.
 * Returns 0, or -1 if the RNG failed. */
int ids_guid(char out[GUID_LEN + 1]);

#endif
