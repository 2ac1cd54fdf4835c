/* The async engine of one client: a `next` completion queue whose completions move finished
 * calls to a "done" list. Made lazily on a client's first async call, in one of two modes:
 * - inline (the default): the Lua thread takes completions off the queue itself, inside
 *   wait(), done() and poll(); no extra thread and no cross-thread hand-off per call;
 * - threaded (from the first client:fd(), or littlehorse.resty's use of the wake channel): a
 *   background thread drains the queue, so a host's own event loop (luv, cqueues, a game's
 *   select/epoll, nginx) can wait for completions without spinning. Its eventfd is made
 *   readable only once someone asked for it (client:fd()): nginx waits on the wake channel
 *   (wake.h) instead, and an eventfd nobody reads would cost a write and a read per call.
 *
 * Lifetimes: an lh_pending (one call) is shared by its Lua handle and the engine, and an
 * engine by its client and its pendings; each is freed by whoever drops the last reference,
 * so a handle collected mid-call, or a client closed with calls in flight, never blocks and
 * never frees memory gRPC still writes into. */
#ifndef LH_ASYNC_H
#define LH_ASYNC_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include "call.h"

typedef struct lh_engine lh_engine;

typedef struct lh_pending {
  lh_call_state st;          /* what gRPC writes into; stable while in flight */
  lh_engine *engine;
  int refs;                  /* the handle's, and the engine's while in flight or uncollected */
  int done;                  /* the completion arrived */
  int ok;                    /* its success flag */
  int in_done_list;
  uint64_t id;               /* process-unique: announced to wake.h's channel on completion */
  int anchor;                /* client.c: the anchor slot of its handle (on_done), 0 none;
                              * set and read by the Lua thread only */
  struct lh_pending *prev, *next;   /* in the engine's in-flight list, then its done list */
} lh_pending;

struct lh_engine {
  grpc_completion_queue *cq;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int efd;                       /* eventfd: readable while the done list is not empty, once
                                  * efd_wanted (before that it is never written or read) */
  int efd_wanted;                /* client:fd() was asked for; set under mu */
  int refs;                      /* the client's + one per live pending */
  int stopping;
  int threaded;                  /* a thread drains the queue (else the Lua thread, inline) */
  unsigned starts;               /* calls started (inline mode reaps every 64) */
  pid_t pid;                     /* the process that made it (a forked child never touches it) */
  lh_pending live;               /* sentinel of the in-flight list */
  lh_pending done;               /* sentinel of the done list (completed, not yet collected) */
  size_t nlive, ndone;
};

/* Make an engine (inline mode); NULL on failure. */
lh_engine *lh_engine_new(void);
/* Switch to threaded mode (idempotent); 0 if the thread cannot be started. Only from the
 * thread that otherwise drives the engine inline. */
int lh_engine_start_thread(lh_engine *e);
/* From now on keep e->efd readable while the done list is not empty (idempotent): it is made
 * readable at once when calls finished before this wait to be polled. */
void lh_engine_want_fd(lh_engine *e);
/* The client lets go: cancel calls in flight, stop the thread, and drop the client's
 * reference. Joins the thread, which ends as soon as the cancelled calls complete. */
void lh_engine_close(lh_engine *e);

/* A new pending (refs: handle + engine) registered as in flight; NULL on out-of-memory.
 * Start its call with lh_call_start(&p->st, ..., e->cq, ..., p). If the start fails, call
 * lh_engine_fail_start(p). */
lh_pending *lh_pending_new(lh_engine *e);
void lh_engine_fail_start(lh_pending *p);

/* Wait up to timeout seconds (< 0: forever) for p to complete; 1 if it has. */
int lh_pending_wait(lh_pending *p, double timeout);
/* The handle lets go (cancelling the call if still in flight, taking it off the done list if
 * it is there). */
void lh_pending_release(lh_pending *p);
void lh_pending_cancel(lh_pending *p);

/* Wait up to timeout seconds for the done list to be non-empty (or nothing to be in flight),
 * then take up to max pendings off it into out, dropping the engine's references: each is
 * then kept alive by its handle only, so out[] may be used as keys to find handles, not
 * dereferenced after a handle may have been collected. Returns how many. Drains the eventfd
 * (when wanted) as the list empties. */
size_t lh_engine_poll(lh_engine *e, double timeout, lh_pending **out, size_t max);

/* A new process-unique id (calls, HTTP jobs and outbox jobs share the sequence, and so the
 * wake channel, wake.h). */
uint64_t lh_async_new_id(void);

/* CLOCK_MONOTONIC now + timeout seconds, for pthread_cond_timedwait on condition variables
 * made with that clock (the engine's and the outbox writer's). */
struct timespec lh_monotonic_after(double timeout);

#endif
