#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include "async.h"
#include "runtime.h"
#include "wake.h"

static void list_init(lh_pending *s) { s->prev = s->next = s; }
static void list_unlink(lh_pending *p) {
  p->prev->next = p->next;
  p->next->prev = p->prev;
  p->prev = p->next = p;
}
static void list_push(lh_pending *s, lh_pending *p) {
  p->prev = s->prev;
  p->next = s;
  s->prev->next = p;
  s->prev = p;
}

/* The engine's lock, taken only once a thread other than the Lua thread can touch it (the
 * completion thread). Until then the Lua thread, which alone drives an inline engine, is the
 * only one to read or change it: an uncontended lock and unlock, some ten pairs per call, for
 * nothing. Only the Lua thread changes `threaded` (lh_engine_start_thread, before the thread
 * is made), so a lock taken here is always released by the matching UNLOCK. */
#define LOCK(e) do { if ((e)->threaded) pthread_mutex_lock(&(e)->mu); } while (0)
#define UNLOCK(e) do { if ((e)->threaded) pthread_mutex_unlock(&(e)->mu); } while (0)

/* The process-wide id sequence (C state, not Lua state). */
static uint64_t next_id;

uint64_t lh_async_new_id(void) { return __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED); }

static void engine_free(lh_engine *e) {
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
  if (e->efd >= 0) close(e->efd);
  free(e);
}

/* Drop one reference on e; call with e->mu held; unlocks it (and frees e if last). */
static void engine_unref_locked(lh_engine *e) {
  int last = --e->refs == 0;
  UNLOCK(e);
  if (last) engine_free(e);
}

/* Take p off the done list; call with the engine's mutex held. */
static void done_remove_locked(lh_engine *e, lh_pending *p) {
  list_unlink(p);
  p->in_done_list = 0;
  e->ndone--;
}

/* Make the eventfd readable (someone watches it: finished calls wait for poll()). */
static void signal_efd(lh_engine *e) {
  uint64_t one = 1;
  ssize_t w = write(e->efd, &one, sizeof one);
  (void)w; /* an eventfd counter cannot overflow here */
}

/* Drop one reference on p; call with the engine's mutex held; unlocks it. */
static void pending_unref_locked(lh_pending *p) {
  lh_engine *e = p->engine;
  if (--p->refs > 0) {
    UNLOCK(e);
    return;
  }
  if (p->in_done_list) done_remove_locked(e, p);
  lh_call_discard(&p->st);
  free(p);
  engine_unref_locked(e);
}

/* One completion: move its pending from the in-flight list to the done list (or free it if
 * its handle is gone), wake whoever waits. Called by the thread or by an inline driver. */
static void on_event(lh_engine *e, grpc_event ev) {
  lh_pending *p = ev.tag;
  uint64_t id = p->id;
  LOCK(e);
  p->done = 1;
  p->ok = ev.success;
  list_unlink(p);
  e->nlive--;
  if (p->refs == 1) {
    /* Only the engine cares (the handle is gone): nobody will read it. */
    pending_unref_locked(p);
    return;
  }
  int was_empty = e->ndone == 0;
  list_push(&e->done, p);
  p->in_done_list = 1;
  e->ndone++;
  if (was_empty && e->efd_wanted) signal_efd(e);
  pthread_cond_broadcast(&e->cv);
  UNLOCK(e);
  lh_wake_post(id); /* after done is set: a waiter that saw it unset gets this wake-up */
}

static gpr_timespec cq_deadline(double timeout) {
  if (timeout < 0) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  if (timeout == 0) return gpr_inf_past(GPR_CLOCK_MONOTONIC);
  return lh_deadline_in(timeout);
}

/* Inline mode: take completions off the queue on the calling thread until `until` says
 * stop or the deadline passes (the first wait up to the deadline, then without waiting). */
static void drive(lh_engine *e, gpr_timespec deadline, int (*until)(void *), void *arg) {
  for (;;) {
    if (until(arg)) return;
    grpc_event ev = grpc_completion_queue_next(e->cq, deadline, NULL);
    if (ev.type != GRPC_OP_COMPLETE) return; /* timeout (or shutdown) */
    on_event(e, ev);
  }
}

static void *engine_thread(void *arg) {
  lh_engine *e = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(e->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type == GRPC_OP_COMPLETE) on_event(e, ev);
  }
  return NULL;
}

int lh_engine_start_thread(lh_engine *e) {
  if (e->threaded) return 1;
  sigset_t all, old;
  sigfillset(&all);
  /* Set before the thread exists (pthread_create orders it before anything the thread does):
   * from here on every access to the engine takes the lock (see LOCK). */
  e->threaded = 1;
  pthread_sigmask(SIG_BLOCK, &all, &old); /* the host's signals stay with the host's threads */
  int rc = pthread_create(&e->thread, NULL, engine_thread, e);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    e->threaded = 0;
    return 0;
  }
  return 1;
}

void lh_engine_want_fd(lh_engine *e) {
  LOCK(e);
  if (!e->efd_wanted) {
    e->efd_wanted = 1;
    if (e->ndone > 0) signal_efd(e); /* calls that finished before, not yet polled */
  }
  UNLOCK(e);
}

lh_engine *lh_engine_new(void) {
  lh_engine *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  pthread_mutex_init(&e->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&e->cv, &ca);
  pthread_condattr_destroy(&ca);
  list_init(&e->live);
  list_init(&e->done);
  e->refs = 1;
  e->pid = lh_runtime_pid();
  if (e->efd < 0) { engine_free(e); return NULL; }
  e->cq = grpc_completion_queue_create_for_next(NULL);
  return e;
}

void lh_engine_close(lh_engine *e) {
  LOCK(e);
  e->stopping = 1;
  for (lh_pending *p = e->live.next; p != &e->live; p = p->next)
    if (p->st.call) grpc_call_cancel(p->st.call, NULL);
  UNLOCK(e);
  /* Every call in flight was cancelled, so its completion is immediate; the queue then
   * reports shutdown and the thread (or this inline drain) ends. */
  grpc_completion_queue_shutdown(e->cq);
  if (e->threaded) pthread_join(e->thread, NULL);
  else engine_thread(e); /* the same drain, on this thread */
  grpc_completion_queue_destroy(e->cq);
  e->cq = NULL;
  LOCK(e);
  pthread_cond_broadcast(&e->cv);
  engine_unref_locked(e);
}

lh_pending *lh_pending_new(lh_engine *e) {
  lh_pending *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->engine = e;
  p->refs = 2;
  p->id = lh_async_new_id();
  LOCK(e);
  e->refs++;
  list_push(&e->live, p);
  e->nlive++;
  UNLOCK(e);
  return p;
}

void lh_engine_fail_start(lh_pending *p) {
  lh_engine *e = p->engine;
  LOCK(e);
  list_unlink(p);
  e->nlive--;
  p->done = 1;
  p->ok = 0;
  p->refs--; /* the engine will never see a completion for it */
  UNLOCK(e);
}

struct timespec lh_monotonic_after(double timeout) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  double whole = (double)(time_t)timeout;
  ts.tv_sec += (time_t)whole;
  ts.tv_nsec += (long)((timeout - whole) * 1e9);
  if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
  return ts;
}

static int pending_done(void *arg) {
  lh_pending *p = arg;
  LOCK(p->engine);
  int done = p->done;
  UNLOCK(p->engine);
  return done;
}

static int any_done(void *arg) {
  lh_engine *e = arg;
  LOCK(e);
  int yes = e->ndone > 0 || e->nlive == 0;
  UNLOCK(e);
  return yes;
}

int lh_pending_wait(lh_pending *p, double timeout) {
  lh_engine *e = p->engine;
  int inline_mode = !e->threaded && !e->stopping && e->cq;
  if (inline_mode) drive(e, cq_deadline(timeout), pending_done, p);
  LOCK(e);
  /* Only a completion thread can signal cv (an inline engine that is not driven any more is
   * closed, and its calls all drained). */
  if (!p->done && timeout != 0 && !inline_mode && e->threaded) {
    if (timeout < 0) {
      while (!p->done) pthread_cond_wait(&e->cv, &e->mu);
    } else {
      struct timespec until = lh_monotonic_after(timeout);
      while (!p->done && pthread_cond_timedwait(&e->cv, &e->mu, &until) != ETIMEDOUT) {}
    }
  }
  int done = p->done;
  UNLOCK(e);
  return done;
}

static void drain_efd_locked(lh_engine *e) {
  if (e->ndone == 0 && e->efd_wanted) {
    uint64_t v;
    ssize_t r = read(e->efd, &v, sizeof v);
    (void)r; /* EAGAIN when already drained */
  }
}

void lh_pending_cancel(lh_pending *p) {
  lh_engine *e = p->engine;
  LOCK(e);
  if (!p->done && p->st.call) grpc_call_cancel(p->st.call, NULL);
  UNLOCK(e);
}

void lh_pending_release(lh_pending *p) {
  lh_engine *e = p->engine;
  LOCK(e);
  if (!p->done && p->st.call) grpc_call_cancel(p->st.call, NULL); /* completes promptly */
  if (p->in_done_list) {
    /* Nobody will poll it now: drop the engine's reference too. */
    done_remove_locked(e, p);
    drain_efd_locked(e);
    p->refs--;
  }
  pending_unref_locked(p);
}

size_t lh_engine_poll(lh_engine *e, double timeout, lh_pending **out, size_t max) {
  int inline_mode = !e->threaded && !e->stopping && e->cq;
  if (inline_mode) {
    drive(e, cq_deadline(timeout), any_done, e);
    /* then everything else already finished, without waiting */
    for (;;) {
      grpc_event ev = grpc_completion_queue_next(e->cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
      if (ev.type != GRPC_OP_COMPLETE) break;
      on_event(e, ev);
    }
  }
  LOCK(e);
  if (e->ndone == 0 && timeout != 0 && !e->stopping && !inline_mode && e->threaded) {
    if (timeout < 0) {
      while (e->ndone == 0 && e->nlive > 0) pthread_cond_wait(&e->cv, &e->mu);
    } else {
      struct timespec until = lh_monotonic_after(timeout);
      while (e->ndone == 0 && e->nlive > 0 && pthread_cond_timedwait(&e->cv, &e->mu, &until) != ETIMEDOUT) {}
    }
  }
  size_t n = 0;
  while (n < max && e->ndone > 0) {
    lh_pending *p = e->done.next;
    done_remove_locked(e, p);
    p->refs--; /* the engine's reference; the handle's keeps p alive (see async.h) */
    out[n++] = p;
  }
  drain_efd_locked(e);
  UNLOCK(e);
  return n;
}
