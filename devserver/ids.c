/* ids.c: see ids.h. Random bytes come from a small per-thread pool refilled by one
 * getrandom(2) call per 16 guids. */
#include "ids.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#define POOL 256

static _Thread_local unsigned char pool[POOL];
static _Thread_local size_t pool_left;

static int refill(void)
{
    size_t got = 0;
    while (got < POOL) {
        ssize_t n = getrandom(pool + got, POOL - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        got += (size_t)n;
    }
    pool_left = POOL;
    return 0;
}

int ids_guid(char out[GUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    if (pool_left < 16 && refill()) return -1;
    unsigned char *r = pool + POOL - pool_left;
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    memset(r, 0, 16); /* do not keep used randomness around */
    pool_left -= 16;
    out[GUID_LEN] = '\0';
    return 0;
}
