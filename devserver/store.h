/* store.h: an in-memory key -> bytes map, safe for many threads.
 * Sharded hash table (one mutex per shard, O(1) lookups). Entries are immutable once inserted
 * and live until store_free(), so a reader may use an entry's bytes without holding a lock
 * (the server sends them zero-copy). A future delete/GC or an append-only file must keep this
 * promise (e.g. refcount entries) or change how replies borrow the bytes. */
#ifndef LHDS_STORE_H
#define LHDS_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct store store;
typedef struct store_entry store_entry;

store *store_new(void);
void store_free(store *s);

/* A detached entry with room for `vcap` value bytes; fill them, then insert or free it. */
store_entry *store_entry_new(const char *key, size_t klen, size_t vcap);
uint8_t *store_entry_buf(store_entry *e);
void store_entry_set_len(store_entry *e, size_t vlen);   /* vlen <= vcap */
void store_entry_free(store_entry *e);                     /* only a detached entry */

const uint8_t *store_entry_value(const store_entry *e, size_t *vlen);
const char *store_entry_key(const store_entry *e, size_t *klen);

/* Inserts `e` unless its key is taken. Returns the entry stored under the key afterwards:
 * `e` itself (*inserted = 1, the store now owns it) or the existing one (*inserted = 0, the
 * caller still owns `e`). */
const store_entry *store_insert(store *s, store_entry *e, int *inserted);
const store_entry *store_get(store *s, const char *key, size_t klen);
size_t store_count(store *s);

#endif
