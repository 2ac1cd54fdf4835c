/* store.c: see store.h. Chained buckets per shard; a shard doubles at load factor 1, so a
 * rehash only ever stalls one shard (1/STORE_SHARDS of the keys). */
#include "store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_SHARDS 64              /* power of two */
#define SHARD_INITIAL_BUCKETS 64     /* power of two */

struct store_entry {
    store_entry *next;
    uint64_t hash;
    int64_t stamp;
    size_t klen, vlen;
    uint8_t *value;                  /* points into data, after the key */
    char data[];                     /* key, NUL, value */
};

typedef struct shard {
    pthread_mutex_t mu;
    store_entry **buckets;
    size_t mask, count;
    store_entry *retired;            /* replaced by store_insert_over, freed by store_free */
    char pad[64];                    /* keep shards' mutexes off each other's cache lines */
} shard;

struct store {
    store_kind kind;
    shard shards[STORE_SHARDS];
};

/* A programming error (e.g. store_get on a mutable store, whose entries may be freed under
 * the reader): stop at once rather than serve freed memory. */
static void misuse(const char *what)
{
    fprintf(stderr, "lh-devserver: internal error: %s\n", what);
    abort();
}

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

store *store_new(store_kind kind)
{
    store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->kind = kind;
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
        while (sh->retired) {
            store_entry *n = sh->retired->next;
            free(sh->retired);
            sh->retired = n;
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
    e->stamp = 0;
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
void store_entry_set_stamp(store_entry *e, int64_t ms) { e->stamp = ms; }
int64_t store_entry_stamp(const store_entry *e) { return e->stamp; }

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

/* Unlinks the entry under key from its bucket chain (shard locked); NULL if absent. */
static store_entry *unlink_locked(shard *sh, uint64_t h, const char *key, size_t klen)
{
    for (store_entry **pp = &sh->buckets[h & sh->mask]; *pp; pp = &(*pp)->next) {
        store_entry *e = *pp;
        if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0) {
            *pp = e->next;
            sh->count--;
            return e;
        }
    }
    return NULL;
}

const store_entry *store_insert(store *s, store_entry *e, int *inserted)
{
    return store_insert_over(s, e, NULL, NULL, inserted);
}

const store_entry *store_insert_over(store *s, store_entry *e, store_stale_fn stale, void *ctx, int *inserted)
{
    if (stale && s->kind != STORE_APPEND_ONLY) misuse("store_insert_over on a mutable store");
    shard *sh = shard_of(s, e->hash);
    pthread_mutex_lock(&sh->mu);
    store_entry *old = find_locked(sh, e->hash, e->data, e->klen);
    if (old && !(stale && stale(old, ctx))) {
        pthread_mutex_unlock(&sh->mu);
        *inserted = 0;
        return old;
    }
    if (old) {
        unlink_locked(sh, old->hash, old->data, old->klen);
        old->next = sh->retired;
        sh->retired = old;
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
    if (s->kind != STORE_APPEND_ONLY) misuse("store_get on a mutable store");
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

void store_put(store *s, store_entry *e)
{
    if (s->kind != STORE_MUTABLE) misuse("store_put on an append-only store");
    shard *sh = shard_of(s, e->hash);
    pthread_mutex_lock(&sh->mu);
    store_entry *old = unlink_locked(sh, e->hash, e->data, e->klen);
    store_entry **slot = &sh->buckets[e->hash & sh->mask];
    e->next = *slot;
    *slot = e;
    if (++sh->count > sh->mask) grow_locked(sh);
    pthread_mutex_unlock(&sh->mu);
    free(old);
}

int store_remove(store *s, const char *key, size_t klen)
{
    if (s->kind != STORE_MUTABLE) misuse("store_remove on an append-only store");
    uint64_t h = hash_key(key, klen);
    shard *sh = shard_of(s, h);
    pthread_mutex_lock(&sh->mu);
    store_entry *old = unlink_locked(sh, h, key, klen);
    pthread_mutex_unlock(&sh->mu);
    free(old);
    return old != NULL;
}

int store_get_copy(store *s, const char *key, size_t klen, arena *a, uint8_t **val, size_t *vlen, int64_t *stamp)
{
    uint64_t h = hash_key(key, klen);
    shard *sh = shard_of(s, h);
    int rc = 0;
    pthread_mutex_lock(&sh->mu);
    store_entry *e = find_locked(sh, h, key, klen);
    if (e) {
        uint8_t *copy = arena_alloc(a, e->vlen + 1);
        if (copy) {
            memcpy(copy, e->value, e->vlen);
            copy[e->vlen] = 0;
            *val = copy;
            *vlen = e->vlen;
            if (stamp) *stamp = e->stamp;
            rc = 1;
        } else {
            rc = -1;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return rc;
}

int store_scan(store *s, store_scan_fn fn, void *ctx)
{
    int rc = 0;
    for (int i = 0; i < STORE_SHARDS && !rc; i++) {
        shard *sh = &s->shards[i];
        pthread_mutex_lock(&sh->mu);
        for (size_t b = 0; b <= sh->mask && !rc; b++)
            for (const store_entry *e = sh->buckets[b]; e && !rc; e = e->next) rc = fn(e, ctx);
        pthread_mutex_unlock(&sh->mu);
    }
    return rc;
}
