/* faults.h: fault injection for tests (--fail-next, --fail-rate, --store-then-fail,
 * --exhaust-next, --drop-next, --delay-ms). Every counter is atomic: any worker thread may
 * take a fault. Faults other than the delay apply to the put RPCs (PutExternalEvent,
 * PutCorrelatedEvent: lh_method.faults), sharing their counters; the delay applies to every
 * reply.
 *
 * Order for one put call (after the token and tenant checks):
 *   1. --exhaust-next: RESOURCE_EXHAUSTED + RetryInfo, nothing stored (the real server checks
 *      quotas before the command runs);
 *   2. --fail-next, then --fail-rate: --fail-code, nothing stored;
 *   3. --drop-next: the connection is dropped, nothing stored;
 *   4. the handler runs; if it stored the event (OK), --store-then-fail, then
 *      --store-then-fail-rate, replace the reply by --fail-code (the lost-reply case).
 *      ALREADY_EXISTS and other answers pass unchanged. */
#ifndef LHDS_FAULTS_H
#define LHDS_FAULTS_H

#include <grpc/status.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct faults {
    atomic_long fail_next;           /* calls left to fail */
    double fail_rate;                /* 0..1 */
    grpc_status_code fail_code;      /* default UNAVAILABLE */
    const char *fail_message;        /* NULL: a default naming the fault */
    atomic_long store_then_fail;     /* stored puts left whose reply is replaced */
    double store_then_fail_rate;
    atomic_long exhaust_next;
    int retry_after_ms;              /* RetryInfo.retry_delay (default 1000) */
    atomic_long drop_next;
    int delay_ms;                    /* every reply, every method */
    uint64_t seed;                   /* for the rates */
    atomic_ullong rng_counter;

    /* What was injected (stats). */
    atomic_long n_failed, n_store_then_failed, n_exhausted, n_dropped, n_delayed;
} faults;

typedef enum {
    FAULT_NONE,
    FAULT_EXHAUST,
    FAULT_FAIL,
    FAULT_DROP,
} fault_kind;

/* Defaults: nothing injected, fail code UNAVAILABLE, retry-after 1000 ms, a random seed. */
void faults_init(faults *f);

/* Parses a status name ("UNAVAILABLE", "unavailable", "GRPC_STATUS_UNAVAILABLE") or number
 * 1..16 into *out. OK is refused. 0 on success. */
int faults_parse_code(const char *s, grpc_status_code *out);

/* Decides the faults before a put call runs (steps 1-3 above). */
fault_kind faults_before_put(faults *f);

/* After a put call stored what it puts: 1 if the reply must become --fail-code. */
int faults_after_store(faults *f);

/* The message for an injected --fail-code reply; `stored` picks the store-then-fail default. */
const char *faults_fail_message(const faults *f, int stored);

/* "Quota exceeded. Retry after Nms." and the serialized google.rpc.Status (code 8, that
 * message, one Any holding a google.rpc.RetryInfo) for grpc-status-details-bin. Built once
 * at start; both are static for the process' lifetime. */
int faults_build_exhausted(faults *f);
const char *faults_exhausted_message(void);
const uint8_t *faults_exhausted_details(size_t *len);

#endif
