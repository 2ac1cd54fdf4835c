/* correlated.c: see correlated.h. Real-server semantics: shared/docs/littlehorse-protocol.md
 * section 8 (PutCorrelatedEventRequestModel, CoreProcessorContext.correlate). Every change
 * to the CorrelatedEvents and waiting lists happens under db->correlation_mu. */
#include "correlated.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "devserver.pb-c.h"
#include "eventdefs.h"
#include "events.h"
#include "external_event.pb-c.h"
#include "ids.h"
#include "service.pb-c.h"
#include "status.h"
#include "typecheck.h"
#include "wire.h"

int correlated_expired(int64_t expiry_ms, int64_t now) { return expiry_ms != 0 && now >= expiry_ms; }

/* Store key of a CorrelatedEvent and of its waiting list: "<key>/<defName>". */
static char *correlated_key(const char *key, const char *def, arena *a, size_t *klen)
{
    const char *parts[] = { key, def };
    return join_key(a, klen, 2, parts);
}

/* now + ttl seconds in ms, never 0 (0 means "no expiry"), saturating. */
static int64_t expiry_after(int64_t now, int64_t ttl_seconds)
{
    if (ttl_seconds > (INT64_MAX - now) / 1000) return INT64_MAX;
    int64_t t = now + ttl_seconds * 1000;
    return t > 0 ? t : 1;
}

static store_entry *entry_of(const char *key, size_t klen, const uint8_t *v, size_t vlen, int64_t stamp)
{
    store_entry *e = store_entry_new(key, klen, vlen);
    if (!e) return NULL;
    if (vlen) memcpy(store_entry_buf(e), v, vlen);
    store_entry_set_stamp(e, stamp);
    return e;
}

/* The CorrelatedEvent's id.external_event_def_id and content, as stored. */
static int ce_parts(const uint8_t *ce, size_t len, arena *a, wire_bytes *defid, wire_bytes *content)
{
    wire_bytes id;
    if (wire_find_len_field(ce, len, 1, a, &id) || wire_find_len_field(ce, len, 3, a, content)) return -1;
    defid->present = 0;
    return id.present ? wire_find_len_field(id.data, id.len, 2, a, defid) : 0;
}

/* Makes the ExternalEvents for every NodeRun in `waiting` (a list message: field 1 repeats
 * NodeRunId), appends their ids to the CorrelatedEvent `ce` (written to *ce_out) and to
 * `ids` (as ExternalEventIdList results), then stores or deletes the CorrelatedEvent
 * (`stored`: it is in the store now) and clears the waiting list. Under correlation_mu.
 * 0, or -1 when out of memory (nothing is lost that was acknowledged: what was made stays). */
static int correlate(lh_db *db, const char *ckey, size_t cklen, const char *def, const uint8_t *ce, size_t celen,
                     int64_t expiry, int stored, const uint8_t *waiting, size_t wlen, arena *a, wbuf *ce_out,
                     wbuf *ids)
{
    event_parts ev = { .claimed = 1, .has_thread = 1, .has_position = 1, .created_ms = now_ms() };
    if (ce_parts(ce, celen, a, &ev.defid, &ev.content)) return -1;
    wbuf_init(ce_out, a);
    wbuf_put(ce_out, ce, celen);

    const uint8_t *p = waiting, *end = waiting + wlen;
    wire_field f;
    int rc;
    while ((rc = wire_next(&p, end, &f)) == 1) {
        if (f.no != 1 || f.wt != WIRE_LEN) continue;
        Littlehorse__NodeRunId *n = unpack(&littlehorse__node_run_id__descriptor, f.data, f.len, a);
        if (!n || wire_find_len_field(f.data, f.len, 1, a, &ev.wf)) return -1;
        char guid[GUID_LEN + 1];
        if (ids_guid(guid)) return -1;
        ev.guid = guid;
        ev.thread = n->thread_run_number;
        ev.position = n->position;
        size_t klen;
        char *key = event_key(n->wf_run_id, def, guid, a, &klen);
        store_entry *e = key ? event_entry_new(key, klen, &ev) : NULL;
        if (!e) return -1;
        int inserted;
        db_insert_event(db, e, &inserted);
        if (!inserted) { /* a random guid taken: cannot happen in practice */
            store_entry_free(e);
            continue;
        }
        /* ExternalEventId { 1 wf_run_id, 2 external_event_def_id, 3 guid } */
        wbuf id;
        wbuf_init(&id, a);
        if (ev.wf.present) wbuf_len_field(&id, 1, ev.wf.data, ev.wf.len);
        if (ev.defid.present) wbuf_len_field(&id, 2, ev.defid.data, ev.defid.len);
        wbuf_len_field(&id, 3, guid, GUID_LEN);
        if (id.oom) return -1;
        wbuf_len_field(ce_out, 4, id.p, id.len);
        wbuf_len_field(ids, 1, id.p, id.len);
    }
    if (rc < 0 || ce_out->oom || ids->oom) return -1;

    def_info info;
    int delete_after = def_lookup(db, def, a, &info) > 0 && info.delete_after_first_correlation;
    if (delete_after) {
        if (stored) db_remove(db, db->correlated, ckey, cklen);
    } else {
        store_entry *e = entry_of(ckey, cklen, ce_out->p, ce_out->len, expiry);
        if (!e) return -1;
        db_put(db, db->correlated, e);
    }
    db_remove(db, db->waiting, ckey, cklen);
    return 0;
}

void put_correlated_event(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__PutCorrelatedEventRequest *req =
        unpack(&littlehorse__put_correlated_event_request__descriptor, data, len, a);
    if (!req) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    const char *key = str_or_empty(req->key);
    if (strchr(key, '/') || strchr(key, '~')) FAIL(r, GRPC_STATUS_INVALID_ARGUMENT, MSG_BAD_CORRELATION_KEY);
    const char *def = req->external_event_def_id ? str_or_empty(req->external_event_def_id->name) : "";
    def_info info;
    int found = def_lookup(db, def, a, &info);
    if (found < 0) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    if (!found) FAIL(r, GRPC_STATUS_INVALID_ARGUMENT, MSG_CORRELATED_NO_DEF);
    if (!info.correlated) FAIL(r, GRPC_STATUS_INVALID_ARGUMENT, MSG_CORRELATED_DISABLED);
    const char *detail;
    if (info.type && typecheck_put_correlated(info.type, req->content, a, &detail))
        FAIL(r, GRPC_STATUS_INVALID_ARGUMENT, arena_printf(a, MSG_BAD_TYPE_CORRELATED, def, detail));

    wire_bytes defid, content;
    if (wire_find_len_field(data, len, 2, a, &defid) || wire_find_len_field(data, len, 3, a, &content))
        FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    size_t cklen;
    char *ckey = correlated_key(key, def, a, &cklen);
    if (!ckey) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);

    /* CorrelatedEvent { 1 id: CorrelatedEventId {1 key, 2 external_event_def_id},
     *                   2 created_at, 3 content, 4 external_events (none yet) } */
    int64_t now = now_ms();
    wbuf id, ce;
    wbuf_init(&id, a);
    wbuf_init(&ce, a);
    if (*key) wbuf_len_field(&id, 1, key, strlen(key));
    if (defid.present) wbuf_len_field(&id, 2, defid.data, defid.len);
    wbuf_len_field(&ce, 1, id.p, id.len);
    uint8_t ts[32];
    wbuf_put(&ce, ts, (size_t)(put_timestamp(ts, 2, now) - ts));
    if (content.present) wbuf_len_field(&ce, 3, content.data, content.len);
    if (id.oom || ce.oom) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    int64_t expiry = info.has_ttl ? expiry_after(now, info.ttl_seconds) : 0;

    pthread_mutex_lock(&db->correlation_mu);
    uint8_t *old, *waiting;
    size_t oldlen, wlen;
    int64_t old_expiry = 0;
    int has_old = store_get_copy(db->correlated, ckey, cklen, a, &old, &oldlen, &old_expiry);
    int has_waiting = has_old >= 0 ? store_get_copy(db->waiting, ckey, cklen, a, &waiting, &wlen, NULL) : -1;
    if (has_old < 0 || has_waiting < 0) {
        pthread_mutex_unlock(&db->correlation_mu);
        FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    }
    if (has_old && !correlated_expired(old_expiry, now)) {
        pthread_mutex_unlock(&db->correlation_mu);
        FAIL(r, GRPC_STATUS_ALREADY_EXISTS, arena_printf(a, MSG_CORRELATED_EXISTS, key));
    }
    if (has_old) db_remove(db, db->correlated, ckey, cklen); /* expired: as if already deleted */
    wbuf final = ce;
    int rc = 0;
    if (has_waiting) {
        wbuf ids;
        wbuf_init(&ids, a);
        rc = correlate(db, ckey, cklen, def, ce.p, ce.len, expiry, 0, waiting, wlen, a, &final, &ids);
    } else {
        store_entry *e = entry_of(ckey, cklen, ce.p, ce.len, expiry);
        if (e) db_put(db, db->correlated, e);
        else rc = -1;
    }
    pthread_mutex_unlock(&db->correlation_mu);
    if (rc) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    reply_copied(r, final.p, final.len);
    r->stored = 1;
}

/* The store key named by a CorrelatedEventId (NULL: key "" and def ""). */
static char *key_of_id(const Littlehorse__CorrelatedEventId *id, arena *a, size_t *klen)
{
    const char *key = id ? str_or_empty(id->key) : "";
    const char *def = id && id->external_event_def_id ? str_or_empty(id->external_event_def_id->name) : "";
    return correlated_key(key, def, a, klen);
}

void get_correlated_event(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__CorrelatedEventId *id = unpack(&littlehorse__correlated_event_id__descriptor, data, len, a);
    if (!id) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    size_t klen;
    char *key = key_of_id(id, a, &klen);
    if (!key) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    uint8_t *v;
    size_t vlen;
    int64_t expiry = 0;
    int rc = store_get_copy(db->correlated, key, klen, a, &v, &vlen, &expiry);
    if (rc < 0) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    if (rc == 0 || correlated_expired(expiry, now_ms())) FAIL(r, GRPC_STATUS_NOT_FOUND, MSG_NOT_FOUND);
    reply_copied(r, v, vlen);
}

void delete_correlated_event(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__DeleteCorrelatedEventRequest *req =
        unpack(&littlehorse__delete_correlated_event_request__descriptor, data, len, a);
    if (!req) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    size_t klen;
    char *key = key_of_id(req->id, a, &klen);
    if (!key) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    /* Deleting what does not exist (any more) is not an error on the real server either. */
    pthread_mutex_lock(&db->correlation_mu);
    db_remove(db, db->correlated, key, klen);
    pthread_mutex_unlock(&db->correlation_mu);
    reply_borrowed(r, (const uint8_t *)"", 0); /* google.protobuf.Empty */
}

/* ---- waiting NodeRuns (the DevServer service) ---------------------------------------- */

/* The parts of a WaitingNodeRun request, checked: its store key and the NodeRunId in the
 * canonical form kept in waiting lists (field 1 as sent, fields 2 and 3 always written). */
typedef struct waiter {
    char *ckey;
    size_t cklen;
    const char *def;
    uint8_t *node;
    size_t node_len;
} waiter;

static int parse_waiter(lh_db *db, const uint8_t *data, size_t len, arena *a, waiter *w, lh_reply *r)
{
    Littlehorse__Devserver__WaitingNodeRun *req =
        unpack(&littlehorse__devserver__waiting_node_run__descriptor, data, len, a);
    if (!req) return reply_error(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF), -1;
    w->def = req->external_event_def_id ? str_or_empty(req->external_event_def_id->name) : "";
    def_info info;
    int found = def_lookup(db, w->def, a, &info);
    if (found <= 0) {
        reply_error(r, found < 0 ? GRPC_STATUS_INTERNAL : GRPC_STATUS_INVALID_ARGUMENT,
                    found < 0 ? MSG_OUT_OF_MEMORY : arena_printf(a, MSG_NO_DEF_PREFIX "%s", w->def));
        return -1;
    }
    const Littlehorse__NodeRunId *n = req->node_run_id;
    if (!n || !n->wf_run_id || !*str_or_empty(n->wf_run_id->id))
        return reply_error(r, GRPC_STATUS_INVALID_ARGUMENT, MSG_WAITING_NO_WF_RUN), -1;
    wire_bytes node, wf;
    if (wire_find_len_field(data, len, 3, a, &node) || wire_find_len_field(node.data, node.len, 1, a, &wf))
        return reply_error(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF), -1;
    w->node = arena_alloc(a, wire_len_field_size(1, wf.len) + 2 * 11);
    if (!w->node) return reply_error(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY), -1;
    uint8_t *p = wire_put_len_field(w->node, 1, wf.data, wf.len);
    p = wire_put_int32_field(p, 2, n->thread_run_number);
    p = wire_put_int32_field(p, 3, n->position);
    w->node_len = (size_t)(p - w->node);
    w->ckey = correlated_key(str_or_empty(req->key), w->def, a, &w->cklen);
    if (!w->ckey) return reply_error(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY), -1;
    return 0;
}

/* `list` without the entries equal to `node` into *out; returns how many were dropped. */
static int drop_node(const uint8_t *list, size_t len, const uint8_t *node, size_t node_len, wbuf *out)
{
    const uint8_t *p = list, *end = list + len;
    wire_field f;
    int dropped = 0;
    while (wire_next(&p, end, &f) == 1) {
        if (f.no == 1 && f.wt == WIRE_LEN && f.len == node_len && memcmp(f.data, node, node_len) == 0) dropped++;
        else if (f.no == 1 && f.wt == WIRE_LEN) wbuf_len_field(out, 1, f.data, f.len);
    }
    return dropped;
}

/* Under correlation_mu: if a live CorrelatedEvent exists for w, correlate it with `list`. */
static int maybe_correlate(lh_db *db, const waiter *w, const uint8_t *list, size_t len, arena *a, wbuf *ids)
{
    uint8_t *ce;
    size_t celen;
    int64_t expiry = 0;
    int rc = store_get_copy(db->correlated, w->ckey, w->cklen, a, &ce, &celen, &expiry);
    if (rc <= 0 || correlated_expired(expiry, now_ms())) return rc < 0 ? -1 : 0;
    wbuf out;
    return correlate(db, w->ckey, w->cklen, w->def, ce, celen, expiry, 1, list, len, a, &out, ids);
}

void start_waiting(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    waiter w;
    if (parse_waiter(db, data, len, a, &w, r)) return;
    wbuf list, ids;
    wbuf_init(&list, a);
    wbuf_init(&ids, a);
    pthread_mutex_lock(&db->correlation_mu);
    uint8_t *old = NULL;
    size_t oldlen = 0;
    int rc = store_get_copy(db->waiting, w.ckey, w.cklen, a, &old, &oldlen, NULL);
    if (rc > 0) drop_node(old, oldlen, w.node, w.node_len, &list); /* waiting twice is waiting once */
    wbuf_len_field(&list, 1, w.node, w.node_len);
    store_entry *e = rc >= 0 && !list.oom ? entry_of(w.ckey, w.cklen, list.p, list.len, 0) : NULL;
    if (e) {
        db_put(db, db->waiting, e);
        rc = maybe_correlate(db, &w, list.p, list.len, a, &ids);
    } else {
        rc = -1;
    }
    pthread_mutex_unlock(&db->correlation_mu);
    if (rc || ids.oom) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    reply_copied(r, ids.p ? ids.p : (const uint8_t *)"", ids.len); /* ExternalEventIdList */
}

void stop_waiting(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    waiter w;
    if (parse_waiter(db, data, len, a, &w, r)) return;
    wbuf list, ids;
    wbuf_init(&list, a);
    wbuf_init(&ids, a);
    pthread_mutex_lock(&db->correlation_mu);
    uint8_t *old;
    size_t oldlen;
    int rc = store_get_copy(db->waiting, w.ckey, w.cklen, a, &old, &oldlen, NULL);
    if (rc > 0 && drop_node(old, oldlen, w.node, w.node_len, &list)) {
        if (list.oom) {
            rc = -1;
        } else if (list.len == 0) {
            db_remove(db, db->waiting, w.ckey, w.cklen);
        } else {
            store_entry *e = entry_of(w.ckey, w.cklen, list.p, list.len, 0);
            if (e) db_put(db, db->waiting, e);
            rc = e ? maybe_correlate(db, &w, list.p, list.len, a, &ids) : -1;
        }
    }
    pthread_mutex_unlock(&db->correlation_mu);
    if (rc < 0) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    reply_borrowed(r, (const uint8_t *)"", 0); /* google.protobuf.Empty */
}

/* ---- expiry -------------------------------------------------------------------------- */

typedef struct expired_keys {
    int64_t now;
    char **keys;
    size_t *lens;
    size_t n, cap;
    int oom;
} expired_keys;

static int collect_expired(const store_entry *e, void *ctx)
{
    expired_keys *x = ctx;
    if (!correlated_expired(store_entry_stamp(e), x->now)) return 0;
    if (x->n == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 16;
        char **k = realloc(x->keys, nc * sizeof *k);
        if (k) x->keys = k;
        size_t *l = k ? realloc(x->lens, nc * sizeof *l) : NULL;
        if (l) x->lens = l;
        if (!k || !l) return x->oom = 1;
        x->cap = nc;
    }
    size_t klen;
    const char *key = store_entry_key(e, &klen);
    char *copy = malloc(klen + 1);
    if (!copy) return x->oom = 1;
    memcpy(copy, key, klen + 1);
    x->keys[x->n] = copy;
    x->lens[x->n++] = klen;
    return 0;
}

size_t correlated_sweep(lh_db *db)
{
    /* Collect without correlation_mu (the scan only takes the shards' locks, briefly), then
     * remove one by one under it, after checking again: a put may have replaced the entry. */
    expired_keys x = { .now = now_ms() };
    store_scan(db->correlated, collect_expired, &x);
    arena *a = x.n ? malloc(sizeof *a) : NULL;
    if (a) arena_init(a);
    for (size_t i = 0; i < x.n && a; i++) {
        uint8_t *v;
        size_t vlen;
        int64_t expiry = 0;
        pthread_mutex_lock(&db->correlation_mu);
        if (store_get_copy(db->correlated, x.keys[i], x.lens[i], a, &v, &vlen, &expiry) > 0 &&
            correlated_expired(expiry, x.now))
            store_remove(db->correlated, x.keys[i], x.lens[i]); /* no record: the journal's has the expiry */
        pthread_mutex_unlock(&db->correlation_mu);
        arena_reset(a);
    }
    free(a);
    for (size_t i = 0; i < x.n; i++) free(x.keys[i]);
    free(x.keys);
    free(x.lens);
    return store_count(db->correlated);
}

void wait_correlation_arg(lh_db *db, const char *def, const char *key, const char *wf_run_id, arena *a,
                          lh_reply *r)
{
    /* WaitingNodeRun { 1 key, 2 { 1 def }, 3 NodeRunId { 1 { 1 wf_run_id }, 2 0, 3 1 } } */
    wbuf defid, wf, node, req;
    wbuf_init(&defid, a);
    wbuf_init(&wf, a);
    wbuf_init(&node, a);
    wbuf_init(&req, a);
    wbuf_len_field(&defid, 1, def, strlen(def));
    wbuf_len_field(&wf, 1, wf_run_id, strlen(wf_run_id));
    wbuf_len_field(&node, 1, wf.p, wf.len);
    wbuf_varint_field(&node, 3, 1);
    wbuf_len_field(&req, 1, key, strlen(key));
    wbuf_len_field(&req, 2, defid.p, defid.len);
    wbuf_len_field(&req, 3, node.p, node.len);
    if (defid.oom || wf.oom || node.oom || req.oom) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    start_waiting(db, req.p, req.len, a, r);
}
