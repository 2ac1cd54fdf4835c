/* store.c: see store.h. Chained buckets per shard; a shard doubles at load factor 1, so a
 * rehash only ever stalls one shard (1/STORE_SHARDS of the keys). */
#include "store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STORE_SHARDS 64              /* power of two */
#define SHARD_INITIAL_BUCKETS 64     /* power of two */

struct store_entry {
    store_entry *next;
    uint64_t hash;
    size_t klen, vlen;
    uint8_t *value;                  /* points into data, after the key */
    char data[];                     /* key, NUL, value */
};

typedef struct shard {
    pthread_mutex_t mu;
    store_entry **buckets;
    size_t mask, count;
    char pad[64];                    /* keep shards' mutexes off each other's cache lines */
} shard;

struct store {
    shard shards[STORE_SHARDS];
};

static uint64_t hash_key(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a murmur3 finaliser to spread bits */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static shard *shard_of(store *s, uint64_t h) { return &s->shards[h >> 58 & (STORE_SHARDS - 1)]; }

store *store_new(void)
{
    store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    for (int i = 0; i < STORE_SHARDS; i++) {
        shard *sh = &s->shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->buckets = calloc(SHARD_INITIAL_BUCKETS, sizeof *sh->buckets);
        if (!sh->buckets) {
            for (int j = 0; j <= i; j++) free(s->shards[j].buckets);
            free(s);
            return NULL;
        }
        sh->mask = SHARD_INITIAL_BUCKETS - 1;
    }
    return s;
}

void store_free(store *s)
{
    if (!s) return;
    for (int i = 0; i < STORE_SHARDS; i++) {
        shard *sh = &s->shards[i];
        for (size_t b = 0; b <= sh->mask; b++) {
            store_entry *e = sh->buckets[b];
            while (e) {
                store_entry *n = e->next;
                free(e);
                e = n;
            }
        }
        free(sh->buckets);
        pthread_mutex_destroy(&sh->mu);
    }
    free(s);
}

store_entry *store_entry_new(const char *key, size_t klen, size_t vcap)
{
    store_entry *e = malloc(sizeof *e + klen + 1 + vcap);
    if (!e) return NULL;
    e->next = NULL;
    e->hash = hash_key(key, klen);
    e->klen = klen;
    e->vlen = vcap;
    memcpy(e->data, key, klen);
    e->data[klen] = '\0';
    e->value = (uint8_t *)e->data + klen + 1;
    return e;
}

uint8_t *store_entry_buf(store_entry *e) { return e->value; }
void store_entry_set_len(store_entry *e, size_t vlen) { e->vlen = vlen; }
void store_entry_free(store_entry *e) { free(e); }

const uint8_t *store_entry_value(const store_entry *e, size_t *vlen)
{
    *vlen = e->vlen;
    return e->value;
}

const char *store_entry_key(const store_entry *e, size_t *klen)
{
    *klen = e->klen;
    return e->data;
}

static store_entry *find_locked(shard *sh, uint64_t h, const char *key, size_t klen)
{
    for (store_entry *e = sh->buckets[h & sh->mask]; e; e = e->next)
        if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0) return e;
    return NULL;
}

static void grow_locked(shard *sh)
{
    size_t nb = (sh->mask + 1) * 2;
    store_entry **b = calloc(nb, sizeof *b);
    if (!b) return; /* keep the old table: slower chains, still correct */
    for (size_t i = 0; i <= sh->mask; i++) {
        store_entry *e = sh->buckets[i];
        while (e) {
            store_entry *n = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = n;
        }
    }
    free(sh->buckets);
    sh->buckets = b;
    sh->mask = nb - 1;
}

const store_entry *store_insert(store *s, store_entry *e, int *inserted)
{
    shard *sh = shard_of(s, e->hash);
    pthread_mutex_lock(&sh->mu);
    store_entry *old = find_locked(sh, e->hash, e->data, e->klen);
    if (old) {
        pthread_mutex_unlock(&sh->mu);
        *inserted = 0;
        return old;
    }
    store_entry **slot = &sh->buckets[e->hash & sh->mask];
    e->next = *slot;
    *slot = e;
    if (++sh->count > sh->mask) grow_locked(sh);
    pthread_mutex_unlock(&sh->mu);
    *inserted = 1;
    return e;
}

const store_entry *store_get(store *s, const char *key, size_t klen)
{
    uint64_t h = hash_key(key, klen);
    shard *sh = shard_of(s, h);
    pthread_mutex_lock(&sh->mu);
    store_entry *e = find_locked(sh, h, key, klen);
    pthread_mutex_unlock(&sh->mu);
    return e;
}

size_t store_count(store *s)
{
    size_t n = 0;
    for (int i = 0; i < STORE_SHARDS; i++) {
        pthread_mutex_lock(&s->shards[i].mu);
        n += s->shards[i].count;
        pthread_mutex_unlock(&s->shards[i].mu);
    }
    return n;
}
