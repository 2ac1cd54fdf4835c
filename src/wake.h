/* Wake-ups for hosts that can only wait on their own sockets (nginx cosockets).
 *
 * One channel per process: a unix socket connection from the host's reader (under nginx, one
 * per worker: littlehorse.resty's reader timer) to this module. Whatever completes in a
 * background thread (an async call's completion, an HTTP job, an outbox job) announces its
 * process-unique id with lh_wake_post(); the ids are queued here and the reader is sent one
 * byte when the queue stops being empty. The reader then takes the ids (core._wake_ready) and
 * wakes whoever waits for each of them. So a waiter registers nothing here (it keys itself by
 * its id on the host's side: O(1)), and no connection is made per wait.
 *
 * Setting up (from Lua, in this order):
 *   core._wake_start([dir]) -> path | nil, err, kind
 *       binds and listens on <dir>/lhwake.<pid>.sock and starts queueing ids. dir (default
 *       ($TMPDIR or /tmp)/littlehorse-wake-<euid>) is made 0700 if missing, and used only if it
 *       is private to this process's user (wake.c says exactly what that means); otherwise kind
 *       is "unsafe" and nothing in it is touched ("failed" for any other error). Removes stale
 *       lhwake.<pid>.sock sockets of its user whose process is gone and nobody listens on.
 *       Idempotent while listening.
 *   the host connects to "unix:" .. path (the connect completes at once, in the backlog)
 *   core._wake_attach() -> true | nil, err
 *       takes that connection (only one from this process), closes the listening socket and
 *       removes its file. Ids completed before are signalled at once.
 * Then, on every byte the reader receives: core._wake_ready(t) -> n, lost (t[1..n] = ids; call
 * again while n is 256; lost: some ids were dropped, every waiter must check its own job).
 *   core._wake_kick(): one byte to the reader (to have it look at its state, e.g. exiting).
 *   core._wake_stop(): stop queueing, close everything, remove the socket file if present.
 *
 * A waiter must register itself on the host's side before it checks whether its job is
 * done, and the job must be marked done before its id is posted: then no wake-up is lost. */
#ifndef LH_WAKE_H
#define LH_WAKE_H

#include <stdint.h>
#include "compat.h"

/* The job `id` completed (any thread; never blocks beyond a short mutex; a no-op unless a
 * wake channel was started in this process). Ids come from lh_async_new_id(). */
void lh_wake_post(uint64_t id);

int lh_wake_lua_start(lua_State *L);
int lh_wake_lua_attach(lua_State *L);
int lh_wake_lua_ready(lua_State *L);
int lh_wake_lua_kick(lua_State *L);
int lh_wake_lua_stop(lua_State *L);

#endif
