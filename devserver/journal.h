/* journal.h: --store FILE, the dev server's persistent store: an append-only log of every
 * stored ExternalEvent and ExternalEventDef, replayed at start.
 *
 * File: the 8 bytes "LHDSJRN1", then records
 *     u32 body_len (LE) | u32 crc32(body) (LE) | body = kind ('E' event, 'D' def) | u32 klen | key | value
 * A torn or corrupt tail (a crash mid-write) is cut off at the last good record on open.
 * The file is locked (flock) so two servers cannot share it.
 *
 * Durability: a reply that depends on the store (every PutExternalEvent / GetExternalEvent /
 * ...Def answer) is released only once everything appended before it is on disk
 * (write + fdatasync). One writer thread does the I/O and group-commits: it takes every
 * record appended so far and every reply waiting so far, writes and syncs once, then releases
 * those replies. Worker threads never block on the disk; under load a sync covers many calls.
 * Inserting into the in-memory store and appending the record happen under one lock, so a
 * reply that has seen an entry always waits for that entry's record. */
#ifndef LHDS_JOURNAL_H
#define LHDS_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define JOURNAL_EVENT 'E'
#define JOURNAL_DEF   'D'

typedef struct journal journal;

/* A reply waiting for durability; embed it in the caller's call object. */
typedef struct journal_waiter {
    struct journal_waiter *next;
    uint64_t seq;
} journal_waiter;

typedef void (*journal_release_fn)(journal_waiter *w, void *ctx);

typedef struct journal_stats {
    uint64_t records;        /* records in the file (replayed + appended) */
    uint64_t replayed;       /* records read at open */
    uint64_t syncs;          /* fdatasync calls */
} journal_stats;

/* Opens (creating if needed) and replays into `events` and `defs`. NULL with a message. */
journal *journal_open(const char *path, store *events, store *defs, char *err, size_t errlen);

/* Starts the writer thread; `release` runs on it for each waiter whose records are durable. */
int journal_start(journal *j, journal_release_fn release, void *ctx);

/* Inserts `e` into `s` unless the key exists (as store_insert) and, if inserted, appends its
 * record; both under the journal lock. */
const store_entry *journal_insert(journal *j, store *s, char kind, store_entry *e, int *inserted);

/* After journal_start: queues `w` to be released once everything appended so far is durable.
 * If that is already the case (or the writer has stopped) it is released at once on the
 * calling thread. */
void journal_wait(journal *j, journal_waiter *w);

/* Writes and syncs whatever is pending, on the calling thread (before journal_start). */
int journal_flush(journal *j);

/* Final sync, releases every waiter, joins the writer. Later journal_wait calls release at
 * once. */
void journal_stop(journal *j);
void journal_close(journal *j);

void journal_get_stats(journal *j, journal_stats *out);

#endif
