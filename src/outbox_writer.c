#define _GNU_SOURCE 1
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <grpc/status.h>
#include <sqlite3.h>
#include "async.h"
#include "runtime.h"
#include "outbox_writer.h"
#include "wake.h"

static void list_init(ob_job *s) { s->prev = s->next = s; }
static int list_empty(const ob_job *s) { return s->next == s; }
static void list_unlink(ob_job *j) {
  j->prev->next = j->next;
  j->next->prev = j->prev;
  j->prev = j->next = j;
}
static void list_push(ob_job *s, ob_job *j) {
  j->prev = s->prev;
  j->next = s;
  s->prev->next = j;
  s->prev = j;
}

int64_t ob_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every file a writer has open (process-wide C state). all_mu is held across fork(), so a child never inherits it
 * locked by a thread it does not have. */
static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct open_file { dev_t dev; ino_t ino; pid_t pid; struct open_file *next; } open_file;
static open_file *open_files;

/* SQLite's process-wide mutexes (its allocator's, its VFS's...) are held across fork() too:
 * a writer thread inside SQLite at the moment of the fork would otherwise leave one locked
 * in the child forever, and the child's first SQLite call (an outbox of its own) would hang.
 * Taken in the order SQLite nests them (the allocator's is innermost). */
static const int SQLITE_STATICS[] = {
  SQLITE_MUTEX_STATIC_MAIN, SQLITE_MUTEX_STATIC_OPEN, SQLITE_MUTEX_STATIC_VFS1, SQLITE_MUTEX_STATIC_VFS2,
  SQLITE_MUTEX_STATIC_VFS3, SQLITE_MUTEX_STATIC_APP1, SQLITE_MUTEX_STATIC_APP2, SQLITE_MUTEX_STATIC_APP3,
  SQLITE_MUTEX_STATIC_LRU, SQLITE_MUTEX_STATIC_PMEM, SQLITE_MUTEX_STATIC_PRNG, SQLITE_MUTEX_STATIC_MEM,
};
#define NSTATICS (sizeof SQLITE_STATICS / sizeof SQLITE_STATICS[0])
static sqlite3_mutex *sqlite_statics[NSTATICS];

static void before_fork(void) {
  pthread_mutex_lock(&all_mu);
  for (size_t i = 0; i < NSTATICS; i++)
    if (sqlite_statics[i]) sqlite3_mutex_enter(sqlite_statics[i]);
}
static void after_fork(void) {
  for (size_t i = NSTATICS; i-- > 0;)
    if (sqlite_statics[i]) sqlite3_mutex_leave(sqlite_statics[i]);
  pthread_mutex_unlock(&all_mu);
}
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void atfork_setup(void) {
  if (sqlite3_initialize() == SQLITE_OK) /* memory set-up only: no file is touched */
    for (size_t i = 0; i < NSTATICS; i++) sqlite_statics[i] = sqlite3_mutex_alloc(SQLITE_STATICS[i]);
  pthread_atfork(before_fork, after_fork, after_fork);
}

/* SQLite keeps per-process state for each open file (its locks, the WAL index mapping): a
 * forked child inherits the parent's and then misreads the locks of any connection it makes to
 * that file (it waits for locks nobody releases, or takes locks it does not hold). So a child
 * may not open a file its parent had open at the fork: checked before opening (0, with e set,
 * in that case). Open files are recorded (file_record) until file_closed. */
static int file_allowed(ob_outbox *ob, ob_err *e) {
  struct stat st;
  if (stat(ob->path, &st) < 0) return 1; /* a new file: nobody had it open */
  pid_t me = lh_runtime_pid();
  int ok = 1;
  pthread_mutex_lock(&all_mu);
  for (open_file *f = open_files; f && ok; f = f->next) {
    if (f->pid != me && f->dev == st.st_dev && f->ino == st.st_ino) {
      e->code = GRPC_STATUS_FAILED_PRECONDITION;
      snprintf(e->msg, sizeof e->msg, "outbox %s: process %d had this file open when it forked this process (%d); "
               "SQLite cannot use a file in a process that inherited a connection to it: open outboxes in processes "
               "that did not inherit one (in nginx: in init_worker_by_lua or later, never in init_by_lua)",
               ob->path, (int)f->pid, (int)me);
      ok = 0;
    }
  }
  pthread_mutex_unlock(&all_mu);
  return ok;
}

static void file_record(ob_outbox *ob) {
  struct stat st;
  open_file *f = malloc(sizeof *f);
  if (!f || stat(ob->path, &st) < 0) { free(f); return; }
  f->dev = ob->file_dev = st.st_dev;
  f->ino = ob->file_ino = st.st_ino;
  f->pid = lh_runtime_pid();
  ob->file_recorded = 1;
  pthread_mutex_lock(&all_mu);
  f->next = open_files;
  open_files = f;
  pthread_mutex_unlock(&all_mu);
}

static void file_closed(ob_outbox *ob) {
  if (!ob->file_recorded) return;
  pid_t me = lh_runtime_pid();
  pthread_mutex_lock(&all_mu);
  for (open_file **q = &open_files; *q; q = &(*q)->next) {
    open_file *f = *q;
    if (f->pid == me && f->dev == ob->file_dev && f->ino == ob->file_ino) {
      *q = f->next;
      free(f);
      break;
    }
  }
  pthread_mutex_unlock(&all_mu);
  ob->file_recorded = 0;
}

/* ---- freeing ---- */

static void outbox_free(ob_outbox *ob) {
  pthread_mutex_destroy(&ob->mu);
  pthread_cond_destroy(&ob->work);
  pthread_cond_destroy(&ob->finished);
  if (ob->efd >= 0) close(ob->efd);
  free(ob->path);
  free(ob);
}

/* Drop one reference on ob; call with ob->mu held; unlocks it (frees ob if last). */
static void outbox_unref_locked(ob_outbox *ob) {
  int last = --ob->refs == 0;
  pthread_mutex_unlock(&ob->mu);
  if (last) outbox_free(ob);
}

static void job_free_payload(ob_job *j) {
  switch (j->kind) {
  case OB_JOB_POST: free(j->u.post.mem); break;
  case OB_JOB_CLAIM:
    ob_claim_out_free(&j->u.claim.out);
    free(j->u.claim.acks);
    free(j->u.claim.mem);
    break;
  case OB_JOB_ACK: free(j->u.ack.acks); free(j->u.ack.mem); break;
  case OB_JOB_LIST: ob_records_free(j->u.list.recs, j->u.list.n); break;
  case OB_JOB_REQUEUE:
  case OB_JOB_PURGE: free(j->u.change.ids); break;
  default: break;
  }
}

static void done_remove_locked(ob_outbox *ob, ob_job *j) {
  list_unlink(j);
  j->in_done_list = 0;
  ob->ndone--;
}

/* Drop one reference on j; call with ob->mu held; unlocks it. */
static void job_unref_locked(ob_job *j) {
  ob_outbox *ob = j->ob;
  if (--j->refs > 0) {
    pthread_mutex_unlock(&ob->mu);
    return;
  }
  if (j->in_done_list) done_remove_locked(ob, j);
  job_free_payload(j);
  free(j);
  outbox_unref_locked(ob);
}

/* ---- completion ---- */

static void signal_efd(ob_outbox *ob) {
  uint64_t one = 1;
  ssize_t w = write(ob->efd, &one, sizeof one);
  (void)w;
}

static void drain_efd_locked(ob_outbox *ob) {
  if (ob->ndone == 0) {
    uint64_t v;
    ssize_t r = read(ob->efd, &v, sizeof v);
    (void)r;
  }
}

/* j is finished: wake its waiters; the done list holds the writer's reference until poll()
 * or the handle collects it (or it is freed now, if its handle is already gone). Call with
 * ob->mu held; keeps it held. */
static void complete_locked(ob_outbox *ob, ob_job *j) {
  j->done = 1;
  ob->nlive--;
  lh_wake_post(j->id); /* after done is set (wake.h); takes only the wake channel's lock */
  if (j->refs == 1) { /* only the writer's: nobody will read it */
    j->refs = 0;
    job_free_payload(j);
    free(j);
    ob->refs--; /* never the last: the thread holds one */
    return;
  }
  int was_empty = ob->ndone == 0;
  list_push(&ob->done, j);
  j->in_done_list = 1;
  ob->ndone++;
  if (was_empty) signal_efd(ob);
}

/* ---- the work ---- */

static void fail_job(ob_job *j, const ob_err *e) {
  j->ok = 0;
  j->err = *e;
}

static void run_posts(ob_outbox *ob, ob_job **posts, size_t n) {
  ob_new *recs = malloc(n * sizeof *recs);
  ob_err e;
  if (!recs) {
    e.code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    snprintf(e.msg, sizeof e.msg, "outbox %s: out of memory; nothing was stored", ob->path);
    for (size_t i = 0; i < n; i++) fail_job(posts[i], &e);
    return;
  }
  for (size_t i = 0; i < n; i++) recs[i] = posts[i]->u.post.rec;
  int committed = ob_store_add(ob->store, recs, n, &ob->cfg.limits, &e);
  size_t stored = 0;
  for (size_t i = 0; i < n; i++) {
    ob_job *j = posts[i];
    if (!committed) {
      fail_job(j, &e);
      /* what the store said, plus what it means for the caller */
      size_t len = strlen(j->err.msg);
      snprintf(j->err.msg + len, sizeof j->err.msg - len, "; the post was not stored");
    } else if (recs[i].refused) {
      fail_job(j, &recs[i].err);
    } else {
      j->ok = 1;
      j->u.post.rec.id = recs[i].id;
      stored++;
    }
  }
  free(recs);
  if (stored) {
    pthread_mutex_lock(&ob->mu);
    ob->commits++;
    pthread_mutex_unlock(&ob->mu);
  }
}

static void run_one(ob_outbox *ob, ob_job *j) {
  ob_err e;
  int ok = 1;
  switch (j->kind) {
  case OB_JOB_OPEN: break;
  case OB_JOB_CLAIM: {
    ob_claim_in in = { ob_now_ms(), ob->cfg.lease_ms, ob->owner, j->u.claim.limit, j->u.claim.acks, j->u.claim.nacks };
    ok = ob_store_claim(ob->store, &in, &j->u.claim.out, &e);
    break;
  }
  case OB_JOB_ACK:
    ok = ob_store_ack(ob->store, j->u.ack.acks, j->u.ack.n, ob->owner, ob_now_ms(), &j->u.ack.counts, &e);
    break;
  case OB_JOB_STATS: ok = ob_store_stats(ob->store, ob_now_ms(), &j->u.stats, &e); break;
  case OB_JOB_LIST:
    ok = ob_store_list(ob->store, j->u.list.state, j->u.list.after, j->u.list.limit, j->u.list.with_request,
                       &j->u.list.recs, &j->u.list.n, &e);
    break;
  case OB_JOB_REQUEUE:
    ok = ob_store_requeue(ob->store, j->u.change.ids, j->u.change.nids, ob_now_ms(), ob->cfg.limits.max_age_ms,
                          &j->u.change.count, &e);
    break;
  case OB_JOB_PURGE:
    ok = ob_store_purge(ob->store, j->u.change.ids, j->u.change.nids, &j->u.change.count, &e);
    break;
  }
  if (ok) j->ok = 1;
  else fail_job(j, &e);
}

/* Run a batch taken off the queue (no lock held): open the file first if need be, then all
 * posts in one transaction, then the other jobs in order. */
static void run_batch(ob_outbox *ob, ob_job *batch) {
  if (ob->open_state == 0) {
    ob_err e;
    ob->store = file_allowed(ob, &e) ? ob_store_open(ob->path, &ob->cfg.open, &e) : NULL;
    if (ob->store) file_record(ob);
    ob->open_state = ob->store ? 1 : -1;
    if (!ob->store) ob->open_err = e;
  }
  size_t nposts = 0;
  for (ob_job *j = batch->next; j != batch; j = j->next) {
    if (ob->open_state < 0) fail_job(j, &ob->open_err);
    else if (j->kind == OB_JOB_POST) nposts++;
  }
  if (ob->open_state < 0) return;
  if (nposts) {
    ob_job **posts = malloc(nposts * sizeof *posts);
    size_t k = 0;
    if (posts) {
      for (ob_job *j = batch->next; j != batch; j = j->next)
        if (j->kind == OB_JOB_POST) posts[k++] = j;
      run_posts(ob, posts, k);
      free(posts);
    } else {
      ob_err e = { GRPC_STATUS_RESOURCE_EXHAUSTED, "" };
      snprintf(e.msg, sizeof e.msg, "outbox %s: out of memory; nothing was stored", ob->path);
      for (ob_job *j = batch->next; j != batch; j = j->next)
        if (j->kind == OB_JOB_POST) fail_job(j, &e);
    }
  }
  for (ob_job *j = batch->next; j != batch; j = j->next)
    if (j->kind != OB_JOB_POST) run_one(ob, j);
}

/* Watches end when posts were committed since they began, or at their time. Returns the
 * earliest time one still waits for (ms), or -1. Call with ob->mu held. */
static int64_t settle_watches_locked(ob_outbox *ob, int closing) {
  int64_t now = ob_now_ms(), earliest = -1;
  int settled = 0;
  ob_job *j = ob->watching.next;
  while (j != &ob->watching) {
    ob_job *next = j->next;
    int fired = ob->commits != j->u.watch.seen;
    if (fired || closing || now >= j->u.watch.until_ms) {
      list_unlink(j);
      j->ok = 1;
      j->u.watch.fired = fired;
      complete_locked(ob, j);
      settled = 1;
    } else if (earliest < 0 || j->u.watch.until_ms < earliest) {
      earliest = j->u.watch.until_ms;
    }
    j = next;
  }
  if (settled) pthread_cond_broadcast(&ob->finished);
  return earliest;
}

static void *writer_main(void *arg) {
  ob_outbox *ob = arg;
  ob_job *batch = &ob->batch;
  pthread_mutex_lock(&ob->mu);
  for (;;) {
    int64_t earliest = settle_watches_locked(ob, 0);
    if (ob->nqueued == 0) {
      if (ob->stopping) break;
      if (earliest < 0) {
        pthread_cond_wait(&ob->work, &ob->mu);
      } else {
        struct timespec until = { (time_t)(earliest / 1000), (long)(earliest % 1000) * 1000000L };
        pthread_cond_timedwait(&ob->work, &ob->mu, &until); /* work is on CLOCK_REALTIME */
      }
      continue;
    }
    /* everything queued, at once: posts share one transaction */
    while (!list_empty(&ob->queue)) {
      ob_job *j = ob->queue.next;
      list_unlink(j);
      if (j->kind == OB_JOB_WATCH) list_push(&ob->watching, j);
      else list_push(batch, j);
    }
    ob->nqueued = 0;
    pthread_mutex_unlock(&ob->mu);
    if (!list_empty(batch)) run_batch(ob, batch);
    pthread_mutex_lock(&ob->mu);
    while (!list_empty(batch)) {
      ob_job *j = batch->next;
      list_unlink(j);
      complete_locked(ob, j);
    }
    pthread_cond_broadcast(&ob->finished);
  }
  settle_watches_locked(ob, 1);
  pthread_cond_broadcast(&ob->finished);
  pthread_mutex_unlock(&ob->mu);
  ob_store_close(ob->store);
  ob->store = NULL;
  file_closed(ob);
  pthread_mutex_lock(&ob->mu);
  outbox_unref_locked(ob); /* the thread's reference */
  return NULL;
}

/* ---- the outbox ---- */

ob_outbox *ob_outbox_new(const char *path, const ob_config *cfg, ob_err *e) {
  pthread_once(&atfork_once, atfork_setup);
  ob_outbox *ob = calloc(1, sizeof *ob);
  if (!ob || !(ob->path = strdup(path))) {
    free(ob);
    e->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    snprintf(e->msg, sizeof e->msg, "outbox %s: out of memory", path);
    return NULL;
  }
  ob->cfg = *cfg;
  ob->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  pthread_mutex_init(&ob->mu, NULL);
  pthread_cond_init(&ob->work, NULL); /* CLOCK_REALTIME: watch times are wall-clock ms */
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&ob->finished, &ca);
  pthread_condattr_destroy(&ca);
  list_init(&ob->queue);
  list_init(&ob->batch);
  list_init(&ob->watching);
  list_init(&ob->done);
  ob->pid = lh_runtime_pid();
  ob->refs = 2; /* the Lua object's and the thread's */
  unsigned char rnd[4] = { 0, 0, 0, 0 };
  ssize_t got = getrandom(rnd, sizeof rnd, GRND_NONBLOCK);
  (void)got; /* the random part only tells processes with a reused pid apart */
  char host[32] = "";
  gethostname(host, sizeof host - 1);
  snprintf(ob->owner, sizeof ob->owner, "%s/%d/%02x%02x%02x%02x", host, (int)ob->pid, rnd[0], rnd[1], rnd[2], rnd[3]);
  if (ob->efd < 0) {
    e->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    snprintf(e->msg, sizeof e->msg, "outbox %s: cannot make an eventfd: %s", path, strerror(errno));
    outbox_free(ob);
    return NULL;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old); /* the host's signals stay with the host's threads */
  int rc = pthread_create(&ob->thread, NULL, writer_main, ob);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    e->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    snprintf(e->msg, sizeof e->msg, "outbox %s: cannot start its writer thread: %s", path, strerror(rc));
    outbox_free(ob);
    return NULL;
  }
  ob->running = 1;
  return ob;
}

void ob_outbox_close(ob_outbox *ob, int wait) {
  pthread_mutex_lock(&ob->mu);
  ob->stopping = 1;
  pthread_cond_signal(&ob->work);
  int running = ob->running;
  ob->running = 0;
  pthread_mutex_unlock(&ob->mu);
  if (running) {
    if (wait) pthread_join(ob->thread, NULL);
    else pthread_detach(ob->thread);
  }
  pthread_mutex_lock(&ob->mu);
  outbox_unref_locked(ob);
}

ob_job *ob_job_new(ob_outbox *ob, int kind) {
  ob_job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->kind = kind;
  j->ob = ob;
  j->refs = 2;
  j->prev = j->next = j;
  j->id = lh_async_new_id();
  pthread_mutex_lock(&ob->mu);
  ob->refs++;
  pthread_mutex_unlock(&ob->mu);
  return j;
}

void ob_job_discard(ob_job *j) {
  ob_outbox *ob = j->ob;
  job_free_payload(j);
  free(j);
  pthread_mutex_lock(&ob->mu);
  outbox_unref_locked(ob);
}

void ob_job_submit(ob_job *j) {
  ob_outbox *ob = j->ob;
  pthread_mutex_lock(&ob->mu);
  if (j->kind == OB_JOB_WATCH) j->u.watch.seen = ob->commits;
  list_push(&ob->queue, j);
  ob->nlive++;
  int first = ob->nqueued++ == 0;
  pthread_mutex_unlock(&ob->mu);
  /* after the unlock: the writer, woken, would otherwise preempt this thread on a shared core
   * only to wait for the lock it still holds */
  if (first) pthread_cond_signal(&ob->work);
}

int ob_job_wait(ob_job *j, double timeout) {
  ob_outbox *ob = j->ob;
  pthread_mutex_lock(&ob->mu);
  if (!j->done && timeout != 0) {
    if (timeout < 0) {
      while (!j->done) pthread_cond_wait(&ob->finished, &ob->mu);
    } else {
      struct timespec until = lh_monotonic_after(timeout);
      while (!j->done && pthread_cond_timedwait(&ob->finished, &ob->mu, &until) != ETIMEDOUT) {}
    }
  }
  int done = j->done;
  pthread_mutex_unlock(&ob->mu);
  return done;
}

void ob_job_cancel(ob_job *j) {
  ob_outbox *ob = j->ob;
  pthread_mutex_lock(&ob->mu);
  if (!j->done) {
    int queued = 0, watching = 0;
    for (ob_job *q = ob->queue.next; q != &ob->queue && !queued; q = q->next) queued = q == j;
    for (ob_job *q = ob->watching.next; q != &ob->watching && !queued && !watching; q = q->next) watching = q == j;
    if (queued || watching) {
      if (queued) ob->nqueued--;
      list_unlink(j);
      j->ok = 0;
      j->err.code = GRPC_STATUS_CANCELLED;
      snprintf(j->err.msg, sizeof j->err.msg, "outbox %s: cancelled before the writer began it%s", ob->path,
               j->kind == OB_JOB_POST ? "; the post was not stored" : "");
      complete_locked(ob, j);
      pthread_cond_broadcast(&ob->finished);
    }
  }
  pthread_mutex_unlock(&ob->mu);
}

void ob_job_release(ob_job *j) {
  ob_outbox *ob = j->ob;
  pthread_mutex_lock(&ob->mu);
  if (j->in_done_list) {
    done_remove_locked(ob, j);
    drain_efd_locked(ob);
    j->refs--; /* the done list's (the writer's) */
  }
  job_unref_locked(j);
}

size_t ob_outbox_poll(ob_outbox *ob, double timeout, ob_job **out, size_t max) {
  pthread_mutex_lock(&ob->mu);
  if (ob->ndone == 0 && timeout != 0) {
    if (timeout < 0) {
      while (ob->ndone == 0 && ob->nlive > 0) pthread_cond_wait(&ob->finished, &ob->mu);
    } else {
      struct timespec until = lh_monotonic_after(timeout);
      while (ob->ndone == 0 && ob->nlive > 0 && pthread_cond_timedwait(&ob->finished, &ob->mu, &until) != ETIMEDOUT) {}
    }
  }
  size_t n = 0;
  while (n < max && ob->ndone > 0) {
    ob_job *j = ob->done.next;
    done_remove_locked(ob, j);
    j->refs--; /* the writer's; the handle's keeps j alive */
    out[n++] = j;
  }
  drain_efd_locked(ob);
  pthread_mutex_unlock(&ob->mu);
  return n;
}

size_t ob_outbox_in_flight(ob_outbox *ob) {
  pthread_mutex_lock(&ob->mu);
  size_t n = ob->nlive;
  pthread_mutex_unlock(&ob->mu);
  return n;
}

