/* journal.h: --store FILE, the dev server's persistent store: an append-only log of every
 * change to the stored objects (ExternalEvents, ExternalEventDefs, CorrelatedEvents, waiting
 * NodeRuns), replayed at start.
 *
 * File: the 8 bytes "LHDSJRN2", then records
 *     u32 body_len (LE) | u32 crc32(body) (LE) | body = kind (1 byte) | u32 klen | key | value
 * The kinds and what a value holds belong to the caller (db.h); replay hands every record to
 * a callback in file order. A file that starts "LHDSJRN1" (kinds 'E' and 'D' only, written
 * by earlier servers) is read the same way and its header rewritten to "LHDSJRN2" after the
 * replay, so an earlier server refuses the file instead of cutting off records it does not
 * know. A torn or corrupt tail (a crash mid-write) is cut off at the last good record on
 * open. The file is locked (flock) so two servers cannot share it.
 *
 * Durability: a reply that depends on the store (every answer of an RPC that reads or writes
 * it) is released only once everything appended before it is on disk (write + fdatasync).
 * One writer thread does the I/O and group-commits: it takes every record appended so far and
 * every reply waiting so far, writes and syncs once, then releases those replies. Worker
 * threads never block on the disk; under load a sync covers many calls. Changing the
 * in-memory store and appending the record happen under one lock, so a reply that has seen
 * a change always waits for that change's record. */
#ifndef LHDS_JOURNAL_H
#define LHDS_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

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

/* Replay callback: one record. Returns 0, JOURNAL_UNKNOWN_KIND for a kind it does not know
 * (the file was written by a newer server: opening fails, nothing is cut off), or -1 when
 * out of memory. */
#define JOURNAL_UNKNOWN_KIND 1
typedef int (*journal_apply_fn)(void *ctx, char kind, const char *key, size_t klen, const uint8_t *val,
                                size_t vlen);

/* Opens (creating if needed) and replays every record through `apply`. NULL with a message. */
journal *journal_open(const char *path, journal_apply_fn apply, void *ctx, char *err, size_t errlen);

/* Starts the writer thread; `release` runs on it for each waiter whose records are durable. */
int journal_start(journal *j, journal_release_fn release, void *ctx);

/* Each of these changes the store and appends the record describing the change, both under
 * the journal lock. The record's value is the entry's value, after `head` for journal_put.
 * journal_insert: as store_insert_over (stale may be NULL); a record only if inserted.
 * journal_put: as store_put (`e` is owned by the store afterwards).
 * journal_remove: as store_remove; a record (empty value) only if something was removed. */
const store_entry *journal_insert(journal *j, store *s, char kind, store_entry *e, const uint8_t *head, size_t hlen,
                                  store_stale_fn stale, void *ctx, int *inserted);
void journal_put(journal *j, store *s, char kind, store_entry *e, const uint8_t *head, size_t hlen);
int journal_remove(journal *j, store *s, char kind, const char *key, size_t klen);

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
