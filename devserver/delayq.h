/* delayq.h: --delay-ms without blocking a completion-queue thread. Replies due later are put
 * in a min-heap by due time; one timer thread sleeps until the earliest is due and starts it
 * (grpc_call_start_batch may be called from any thread). Any number of calls wait at once, so
 * 50 concurrent calls delayed by N ms all answer after about N ms. */
#ifndef LHDS_DELAYQ_H
#define LHDS_DELAYQ_H

#include <stdint.h>

typedef struct delayq delayq;

typedef struct dq_item {
    uint64_t due_ns;   /* CLOCK_MONOTONIC */
} dq_item;

typedef void (*dq_fire_fn)(dq_item *it, void *ctx);

uint64_t dq_now_ns(void);

delayq *delayq_start(dq_fire_fn fire, void *ctx);

/* Fires `it` at it->due_ns on the timer thread, or at once on the calling thread if it is
 * already due or the queue is flushing. */
void delayq_add(delayq *q, dq_item *it);

/* Fires everything queued now; from then on every add fires at once (shutdown). */
void delayq_flush(delayq *q);

/* Flush, join the thread, free. */
void delayq_stop(delayq *q);

#endif
