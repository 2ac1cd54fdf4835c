/* The gRPC library's lifetime in this process. gRPC is initialised lazily, when the first
 * client of a Lua state is made (never at require time), so a host may load the module
 * before it forks (nginx's init_by_lua) as long as it makes clients after the fork.
 * A process that inherited an initialised gRPC from its parent cannot use it (gRPC's global
 * state does not survive fork); that case is refused with an error that says what to do. */
#ifndef LH_RUNTIME_H
#define LH_RUNTIME_H

#include <sys/types.h>
#include "compat.h"

/* getpid(), without a system call (kept up to date across fork by a fork handler). */
pid_t lh_runtime_pid(void);

/* Take one reference on gRPC (grpc_init), or raise if gRPC was initialised before a fork. */
void lh_runtime_acquire(lua_State *L);
/* Drop it (grpc_shutdown). Only from the owning process. */
void lh_runtime_release(void);

#endif
