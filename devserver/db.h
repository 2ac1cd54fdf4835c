/* db.h: everything the RPCs read and write, and every change to it, which goes through the
 * journal (--store) when there is one.
 *
 * Journal record kinds (journal.h), all with the store key as the record key:
 *   'E'  ExternalEvent stored (value: the message as served). Events never change.
 *   'X'  ExternalEvent stored that expires (its def's seconds_after_put; value: u64 LE expiry
 *        in ms since the epoch, then the message as served). Replaces an 'E' or 'X' of the
 *        same key, which it could only follow once that one had expired.
 *   'D'  ExternalEventDef put, replacing any earlier one (value: the message as served)
 *   'd'  ExternalEventDef deleted
 *   'C'  CorrelatedEvent put or changed (value: u64 LE expiry in ms since the epoch, 0 for
 *        none, then the message as served)
 *   'c'  CorrelatedEvent deleted
 *   'W'  the NodeRuns waiting on a correlation key (value: WaitingList below)
 *   'w'  nothing waits on that key any more
 * Replay applies them in order; a 'C' already expired is dropped; an 'X' already expired is
 * kept (as on a live server, an expired event is invisible until its key is put again). */
#ifndef LHDS_DB_H
#define LHDS_DB_H

#include <pthread.h>
#include <stddef.h>

#include "journal.h"
#include "store.h"

typedef struct lh_db {
    /* append-only: "<wfRunId>/<defName>/<guid>" -> ExternalEvent; the entry's stamp is its
     * expiry in ms since the epoch (0: kept), see event_live (events.h) */
    store *events;
    store *defs;        /* mutable: "<defName>" -> ExternalEventDef */
    /* mutable: "<key>/<defName>" -> CorrelatedEvent; the entry's stamp is its expiry in ms
     * since the epoch (0: none) */
    store *correlated;
    /* mutable: "<key>/<defName>" -> the NodeRuns waiting on that key as a message whose field
     * 1 repeats NodeRunId (written by correlated.c) */
    store *waiting;
    journal *journal;   /* --store FILE, or NULL */
    /* Serializes the multi-step changes to `correlated` and `waiting` (correlated.c). */
    pthread_mutex_t correlation_mu;
} lh_db;

int lh_db_init(lh_db *db);
void lh_db_free(lh_db *db);

/* --store: opens the journal and replays it into the stores. -1 with a message. */
int lh_db_open_journal(lh_db *db, const char *path, char *err, size_t errlen);

/* Stores an ExternalEvent unless a live one (events.h: event_live) has its key; an expired one
 * is replaced. */
const store_entry *db_insert_event(lh_db *db, store_entry *e, int *inserted);
/* Puts (replacing) / removes an entry of a mutable store: defs, correlated (the entry's
 * stamp is journaled with it), waiting. db_remove: 1 if there was one. */
void db_put(lh_db *db, store *s, store_entry *e);
int db_remove(lh_db *db, store *s, const char *key, size_t klen);

#endif
