/* The outbox's writer thread: the only thread that touches the outbox's file. Everything a
 * caller asks of an outbox (open, post, claim, acknowledge, stats, dead letters) is a job,
 * queued to the thread and completed by it, the way async calls are (async.c): a waiter
 * blocks on a condition variable (job:wait()), or is told by an eventfd (fd()) or by the
 * process's wake channel (wake.h: the job's id is posted, for nginx), and on_done callbacks run in
 * poll(). The thread takes every job queued since its last turn at once, so all posts waiting
 * share one transaction and one fsync (group commit).
 *
 * Lifetimes: a job is shared by its Lua handle and the thread, an outbox by its Lua object,
 * its thread and its jobs; whoever drops the last reference frees it. Closing an outbox lets
 * the thread finish what is queued (queued posts are committed), then it closes the file. */
#ifndef LH_OUTBOX_WRITER_H
#define LH_OUTBOX_WRITER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include "outbox_store.h"

enum {
  OB_JOB_OPEN, OB_JOB_POST, OB_JOB_CLAIM, OB_JOB_ACK, OB_JOB_STATS, OB_JOB_LIST,
  OB_JOB_REQUEUE, OB_JOB_PURGE, OB_JOB_WATCH, OB_JOB_KINDS
};

typedef struct ob_outbox ob_outbox;

typedef struct ob_job {
  int kind;
  int refs;          /* the handle's, and the writer's until completed and collected */
  int done, ok;      /* completed; succeeded (else err says why) */
  ob_err err;
  uint64_t id;       /* process-unique (shared with async calls), for wake-ups */
  int anchor;        /* outbox.c: the anchor slot of its handle (on_done); Lua thread only */
  int in_done_list;
  struct ob_job *prev, *next;
  ob_outbox *ob;
  union {
    struct { ob_new rec; char *mem; } post;   /* mem holds the request bytes and strings */
    struct { size_t limit; ob_ack *acks; size_t nacks; char *mem; ob_claim_out out; } claim; /* with acks */
    struct { ob_ack *acks; size_t n; char *mem; ob_ack_counts counts; } ack;
    ob_stats stats;
    struct { int state; int64_t after; size_t limit; int with_request; ob_record *recs; size_t n; } list;
    struct { int64_t *ids; size_t nids; int64_t count; } change;  /* requeue, purge */
    struct { int64_t until_ms; uint64_t seen; int fired; } watch;
  } u;
} ob_job;

typedef struct ob_config {
  ob_open_opts open;
  ob_limits limits;
  int64_t lease_ms;
} ob_config;

struct ob_outbox {
  pthread_mutex_t mu;
  pthread_cond_t work;      /* the writer waits for jobs */
  pthread_cond_t finished;  /* waiters wait for completions */
  pthread_t thread;
  int efd;                  /* eventfd: readable while the done list is not empty */
  int refs;                 /* the Lua object's, the thread's, one per live job */
  int stopping;             /* close(): finish what is queued, then stop */
  int running;              /* the thread was started (and has not been joined or detached) */
  ob_job queue;             /* sentinel: jobs waiting for the writer */
  ob_job batch;             /* sentinel: the jobs the writer is running */
  ob_job watching;          /* sentinel: watch jobs waiting for commits or their time */
  ob_job done;              /* sentinel: completed, not yet collected */
  size_t nqueued, ndone, nlive;
  uint64_t commits;         /* transactions that stored posts, for watch jobs */
  int open_state;           /* 0 not yet, 1 open, -1 failed (open_err) */
  ob_err open_err;
  ob_store *store;
  ob_config cfg;
  char *path;
  char owner[64];           /* this process's name in leases */
  dev_t file_dev;           /* the open file, recorded while open (see file_opened) */
  ino_t file_ino;
  int file_recorded;
  pid_t pid;
};

/* A new outbox for path (not yet open: the first job opens it) with its thread started;
 * NULL with e set when the thread cannot start. */
ob_outbox *ob_outbox_new(const char *path, const ob_config *cfg, ob_err *e);
/* The Lua object lets go: the thread finishes the queued jobs and closes the file. With
 * wait, returns once it has (close()); else at once (__gc never blocks). */
void ob_outbox_close(ob_outbox *ob, int wait);

/* A new job of kind (refs: handle + writer), not yet queued; NULL on out-of-memory. */
ob_job *ob_job_new(ob_outbox *ob, int kind);
/* Queue it (the writer owns it from here until it completes). */
void ob_job_submit(ob_job *j);
/* Drop a job never submitted. */
void ob_job_discard(ob_job *j);

/* Wait up to timeout seconds (< 0 forever) for j to complete; 1 if it has. */
int ob_job_wait(ob_job *j, double timeout);
/* Take a job the writer has not begun off its queue: it completes with CANCELLED. */
void ob_job_cancel(ob_job *j);
/* The handle lets go (taking it off the done list if it is there). */
void ob_job_release(ob_job *j);
/* Take up to max completed jobs off the done list (their writer references dropped: each is
 * then kept alive by its handle only; see async.h's lh_engine_poll). Drains the eventfd when
 * the list empties. */
size_t ob_outbox_poll(ob_outbox *ob, double timeout, ob_job **out, size_t max);
/* Jobs not yet completed. */
size_t ob_outbox_in_flight(ob_outbox *ob);


/* Milliseconds since the epoch (the file's clock: records outlive processes). */
int64_t ob_now_ms(void);

#endif
