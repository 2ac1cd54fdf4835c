/* store.h: an in-memory key -> bytes map, safe for many threads.
 * Sharded hash table (one mutex per shard, O(1) lookups). Two kinds:
 *   STORE_APPEND_ONLY  entries are immutable once inserted and live until store_free(), so a
 *                      reader may use an entry's bytes without holding a lock (the server
 *                      sends ExternalEvents zero-copy): store_get.
 *   STORE_MUTABLE      entries may be replaced (store_put) or removed (store_remove), which
 *                      frees them at once; readers copy what they need while the shard is
 *                      locked: store_get_copy, store_scan. store_get is refused (abort). */
#ifndef LHDS_STORE_H
#define LHDS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

typedef enum { STORE_APPEND_ONLY, STORE_MUTABLE } store_kind;

typedef struct store store;
typedef struct store_entry store_entry;

store *store_new(store_kind kind);
void store_free(store *s);

/* A detached entry with room for `vcap` value bytes; fill them, then insert or free it. */
store_entry *store_entry_new(const char *key, size_t klen, size_t vcap);
uint8_t *store_entry_buf(store_entry *e);
void store_entry_set_len(store_entry *e, size_t vlen);   /* vlen <= vcap */
void store_entry_free(store_entry *e);                     /* only a detached entry */
/* A time in ms since the epoch that the store keeps with the entry and never interprets
 * (CorrelatedEvents keep their expiry here). 0 when never set. */
void store_entry_set_stamp(store_entry *e, int64_t ms);
int64_t store_entry_stamp(const store_entry *e);

const uint8_t *store_entry_value(const store_entry *e, size_t *vlen);
const char *store_entry_key(const store_entry *e, size_t *klen);

/* Inserts `e` unless its key is taken. Returns the entry stored under the key afterwards:
 * `e` itself (*inserted = 1, the store now owns it) or the existing one (*inserted = 0, the
 * caller still owns `e`). The returned entry is borrowed: see the kinds above. */
const store_entry *store_insert(store *s, store_entry *e, int *inserted);
/* STORE_APPEND_ONLY only: as store_insert, but an entry already under the key is replaced
 * when stale(old, ctx) returns non-zero (an ExternalEvent past its retention). The old entry
 * leaves the table but stays allocated until store_free, since a reader may still be sending
 * its bytes. */
typedef int (*store_stale_fn)(const store_entry *old, void *ctx);
const store_entry *store_insert_over(store *s, store_entry *e, store_stale_fn stale, void *ctx, int *inserted);
/* STORE_APPEND_ONLY only: the entry under `key`, borrowed until store_free, or NULL. */
const store_entry *store_get(store *s, const char *key, size_t klen);
size_t store_count(store *s);

/* STORE_MUTABLE only. store_put inserts `e` (the store owns it), replacing and freeing any
 * entry under its key. store_remove frees the entry under `key`: 1 if there was one. */
void store_put(store *s, store_entry *e);
int store_remove(store *s, const char *key, size_t klen);

/* Copies the value under `key` into `a` (NUL-terminated for convenience; *vlen excludes the
 * NUL) and, if stamp is not NULL, reads the entry's stamp. 1 if found, 0 if absent, -1 when
 * out of memory. */
int store_get_copy(store *s, const char *key, size_t klen, arena *a, uint8_t **val, size_t *vlen, int64_t *stamp);

/* Calls fn once for every entry, shard by shard, with that shard locked: fn must not call
 * into the same store. On a mutable store, fn copies what it keeps. A non-zero return from fn
 * stops the scan and is returned. */
typedef int (*store_scan_fn)(const store_entry *e, void *ctx);
int store_scan(store *s, store_scan_fn fn, void *ctx);

#endif
