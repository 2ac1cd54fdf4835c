/* db.c: see db.h. */
#include "db.h"

#include <string.h>

#include "events.h"
#include "rpcutil.h"

#define KIND_EVENT 'E'
#define KIND_EVENT_EXPIRING 'X'
#define KIND_DEF 'D'
#define KIND_DEF_DELETED 'd'
#define KIND_CORRELATED 'C'
#define KIND_CORRELATED_DELETED 'c'
#define KIND_WAITING 'W'
#define KIND_WAITING_DELETED 'w'
#define EXPIRY_LEN 8

int lh_db_init(lh_db *db)
{
    memset(db, 0, sizeof *db);
    pthread_mutex_init(&db->correlation_mu, NULL);
    db->events = store_new(STORE_APPEND_ONLY);
    db->defs = store_new(STORE_MUTABLE);
    db->correlated = store_new(STORE_MUTABLE);
    db->waiting = store_new(STORE_MUTABLE);
    if (db->events && db->defs && db->correlated && db->waiting) return 0;
    lh_db_free(db);
    return -1;
}

void lh_db_free(lh_db *db)
{
    journal_close(db->journal);
    store_free(db->events);
    store_free(db->defs);
    store_free(db->correlated);
    store_free(db->waiting);
    pthread_mutex_destroy(&db->correlation_mu);
    memset(db, 0, sizeof *db);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The kind of a put into / removal from one of the mutable stores. */
static char kind_of(lh_db *db, store *s, int removed)
{
    if (s == db->defs) return removed ? KIND_DEF_DELETED : KIND_DEF;
    if (s == db->correlated) return removed ? KIND_CORRELATED_DELETED : KIND_CORRELATED;
    return removed ? KIND_WAITING_DELETED : KIND_WAITING;
}

static int replay_put(store *s, const char *key, size_t klen, const uint8_t *val, size_t vlen, int64_t stamp)
{
    store_entry *e = store_entry_new(key, klen, vlen);
    if (!e) return -1;
    if (vlen) memcpy(store_entry_buf(e), val, vlen);
    store_entry_set_stamp(e, stamp);
    store_put(s, e);
    return 0;
}

static int replace_always(const store_entry *old, void *ctx)
{
    (void)old;
    (void)ctx;
    return 1;
}

static int expired_now(const store_entry *old, void *ctx)
{
    return !event_live(old, *(const int64_t *)ctx);
}

static int apply(void *ctx, char kind, const char *key, size_t klen, const uint8_t *val, size_t vlen)
{
    lh_db *db = ctx;
    switch (kind) {
    case KIND_EVENT:
    case KIND_EVENT_EXPIRING: {
        int64_t expiry = 0;
        if (kind == KIND_EVENT_EXPIRING) {
            if (vlen < EXPIRY_LEN) return JOURNAL_UNKNOWN_KIND;
            expiry = (int64_t)get_u64(val);
            val += EXPIRY_LEN;
            vlen -= EXPIRY_LEN;
        }
        store_entry *e = store_entry_new(key, klen, vlen);
        if (!e) return -1;
        if (vlen) memcpy(store_entry_buf(e), val, vlen);
        store_entry_set_stamp(e, expiry);
        int inserted;
        /* A second record of a key was written only after the first had expired: it stands. */
        store_insert_over(db->events, e, replace_always, NULL, &inserted);
        if (!inserted) store_entry_free(e);
        return 0;
    }
    case KIND_DEF: return replay_put(db->defs, key, klen, val, vlen, 0);
    case KIND_DEF_DELETED: store_remove(db->defs, key, klen); return 0;
    case KIND_CORRELATED: {
        if (vlen < EXPIRY_LEN) return JOURNAL_UNKNOWN_KIND; /* not a record this server wrote */
        int64_t expiry = (int64_t)get_u64(val);
        if (expiry && expiry <= now_ms()) {
            store_remove(db->correlated, key, klen);
            return 0;
        }
        return replay_put(db->correlated, key, klen, val + EXPIRY_LEN, vlen - EXPIRY_LEN, expiry);
    }
    case KIND_CORRELATED_DELETED: store_remove(db->correlated, key, klen); return 0;
    case KIND_WAITING: return replay_put(db->waiting, key, klen, val, vlen, 0);
    case KIND_WAITING_DELETED: store_remove(db->waiting, key, klen); return 0;
    default: return JOURNAL_UNKNOWN_KIND;
    }
}

int lh_db_open_journal(lh_db *db, const char *path, char *err, size_t errlen)
{
    db->journal = journal_open(path, apply, db, err, errlen);
    return db->journal ? 0 : -1;
}

const store_entry *db_insert_event(lh_db *db, store_entry *e, int *inserted)
{
    int64_t now = now_ms();
    if (!db->journal) return store_insert_over(db->events, e, expired_now, &now, inserted);
    int64_t expiry = store_entry_stamp(e);
    uint8_t head[EXPIRY_LEN];
    put_u64(head, (uint64_t)expiry);
    return journal_insert(db->journal, db->events, expiry ? KIND_EVENT_EXPIRING : KIND_EVENT, e, expiry ? head : NULL,
                          expiry ? EXPIRY_LEN : 0, expired_now, &now, inserted);
}

void db_put(lh_db *db, store *s, store_entry *e)
{
    if (!db->journal) {
        store_put(s, e);
        return;
    }
    uint8_t expiry[EXPIRY_LEN];
    int correlated = s == db->correlated;
    if (correlated) put_u64(expiry, (uint64_t)store_entry_stamp(e));
    journal_put(db->journal, s, kind_of(db, s, 0), e, correlated ? expiry : NULL, correlated ? EXPIRY_LEN : 0);
}

int db_remove(lh_db *db, store *s, const char *key, size_t klen)
{
    if (db->journal) return journal_remove(db->journal, s, kind_of(db, s, 1), key, klen);
    return store_remove(s, key, klen);
}
