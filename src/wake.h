/* Wake-ups for hosts that can only wait on their own sockets (nginx cosockets).
 *
 * One thread per process owns a unix socket at <dir>/lhwake.<pid>.sock. A waiter connects,
 * writes "<call id>\n" and reads a line: the server answers "<id>\n" when that async call
 * completes (at once if it already has, or is unknown). The answer comes from the engine's
 * completion thread (async.c), so the waiter's event loop is woken by the kernel, with no
 * polling anywhere. Connections may be kept and reused for later ids. */
#ifndef LH_WAKE_H
#define LH_WAKE_H

#include "compat.h"

/* core._wake_start([dir]) -> socket path | nil, err, kind. Idempotent per process. dir (default
 * ($TMPDIR or /tmp)/littlehorse-wake-<euid>) is made 0700 if missing, and used only if it is
 * private to this process's user (wake.c says exactly what that means); otherwise kind is
 * "unsafe" and nothing in it is touched ("failed" for any other error). Removes stale
 * lhwake.<pid>.sock sockets of its user whose process is gone and nobody listens on. */
int lh_wake_lua_start(lua_State *L);
/* core._wake_stop(): stop the thread, close its sockets, unlink the socket file. */
int lh_wake_lua_stop(lua_State *L);

#endif
