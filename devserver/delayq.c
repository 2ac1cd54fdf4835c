/* delayq.c: see delayq.h. */
#include "delayq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct delayq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dq_item **heap;
    size_t n, cap;
    int flushing, stop;
    pthread_t thread;
    dq_fire_fn fire;
    void *ctx;
};

uint64_t dq_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sift_up(dq_item **h, size_t i)
{
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p]->due_ns <= h[i]->due_ns) break;
        dq_item *t = h[p]; h[p] = h[i]; h[i] = t;
        i = p;
    }
}

static void sift_down(dq_item **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l]->due_ns < h[m]->due_ns) m = l;
        if (r < n && h[r]->due_ns < h[m]->due_ns) m = r;
        if (m == i) return;
        dq_item *t = h[m]; h[m] = h[i]; h[i] = t;
        i = m;
    }
}

static dq_item *pop(delayq *q)
{
    dq_item *top = q->heap[0];
    q->heap[0] = q->heap[--q->n];
    sift_down(q->heap, q->n, 0);
    return top;
}

/* Fires every item that is due (all of them when flushing), each with the lock released. */
static void fire_due_locked(delayq *q)
{
    for (;;) {
        if (!q->n) return;
        if (!q->flushing && q->heap[0]->due_ns > dq_now_ns()) return;
        dq_item *it = pop(q);
        pthread_mutex_unlock(&q->mu);
        q->fire(it, q->ctx);
        pthread_mutex_lock(&q->mu);
    }
}

static void *timer_main(void *arg)
{
    delayq *q = arg;
    pthread_mutex_lock(&q->mu);
    while (!q->stop || q->n) {
        fire_due_locked(q);
        if (q->stop && !q->n) break;
        if (!q->n) {
            pthread_cond_wait(&q->cv, &q->mu);
        } else {
            uint64_t due = q->heap[0]->due_ns;
            struct timespec ts = { .tv_sec = (time_t)(due / 1000000000ull), .tv_nsec = (long)(due % 1000000000ull) };
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

delayq *delayq_start(dq_fire_fn fire, void *ctx)
{
    delayq *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->fire = fire;
    q->ctx = ctx;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&q->thread, NULL, timer_main, q) != 0) {
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->mu);
        free(q);
        return NULL;
    }
    return q;
}

void delayq_add(delayq *q, dq_item *it)
{
    pthread_mutex_lock(&q->mu);
    if (q->flushing || it->due_ns <= dq_now_ns()) {
        pthread_mutex_unlock(&q->mu);
        q->fire(it, q->ctx);
        return;
    }
    if (q->n == q->cap) {
        size_t nc = q->cap ? q->cap * 2 : 64;
        dq_item **nh = realloc(q->heap, nc * sizeof *nh);
        if (!nh) { /* out of memory: answer now rather than never */
            pthread_mutex_unlock(&q->mu);
            q->fire(it, q->ctx);
            return;
        }
        q->heap = nh;
        q->cap = nc;
    }
    q->heap[q->n] = it;
    sift_up(q->heap, q->n++);
    if (q->heap[0] == it) pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void delayq_flush(delayq *q)
{
    pthread_mutex_lock(&q->mu);
    q->flushing = 1;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void delayq_stop(delayq *q)
{
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->flushing = 1;
    q->stop = 1;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q->heap);
    free(q);
}
