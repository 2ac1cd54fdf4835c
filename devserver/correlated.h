/* correlated.h: CorrelatedEvents (Put, Get, Delete; SearchCorrelatedEvent is in listing.h)
 * and the dev server's stand-in for WfRuns that wait on a correlation key (the DevServer
 * service's StartWaiting / StopWaiting).
 *
 * As on the real server: the NodeRuns waiting on (key, def) are kept as one list (the real
 * server's correlation marker). Whenever a CorrelatedEvent and waiting NodeRuns meet, in
 * either order, every waiting NodeRun gets an ExternalEvent (a fresh 32-hex guid, the
 * CorrelatedEvent's content, the NodeRun's thread and position, claimed, since the waiting
 * node takes it) whose id is added to the CorrelatedEvent's external_events; the list is
 * then cleared, and with delete_after_first_correlation the CorrelatedEvent is deleted. A
 * CorrelatedEvent expires ttl_seconds (of its def when it was put) after it was put. */
#ifndef LHDS_CORRELATED_H
#define LHDS_CORRELATED_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "db.h"
#include "rpcutil.h"

void put_correlated_event(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);
void get_correlated_event(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);
void delete_correlated_event(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);
void start_waiting(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);
void stop_waiting(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);

/* A CorrelatedEvent whose expiry (store stamp) has passed is gone for every RPC. */
int correlated_expired(int64_t expiry_ms, int64_t now);

/* Frees the CorrelatedEvents that have expired; returns how many are left. */
size_t correlated_sweep(lh_db *db);

/* --wait-correlation DEF:KEY:WFRUN: StartWaiting for thread 0, position 1. */
void wait_correlation_arg(lh_db *db, const char *def, const char *key, const char *wf_run_id, arena *a,
                          lh_reply *r);

#endif
