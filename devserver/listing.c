/* listing.c: see listing.h. A scan offers each matching entry to a page, a max-heap that
 * keeps the smallest limit+1 by sort key (time, store key) at or after the bookmark; the
 * page is then sorted, its first `limit` items answered and the next one, if any, becomes
 * the bookmark: 0x01, the time as 8 bytes big-endian (sign bit flipped, so the bytes sort
 * like the numbers), the store key. */
#include "listing.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "correlated.h"
#include "events.h"
#include "service.pb-c.h"
#include "status.h"
#include "wire.h"

#define DEFAULT_LIMIT 100
#define BOOKMARK_VERSION 1
#define BOOKMARK_HEAD 9

typedef struct item {
    int64_t t;                /* created_at in ms, or 0 where the order is by key alone */
    const char *key;
    size_t klen;
    const uint8_t *result;    /* the bytes answered for it (one repeated `results` field) */
    size_t rlen;
} item;

typedef struct page {
    arena *a;
    item from;                /* the bookmark's position (inclusive), if has_from */
    int has_from;
    size_t keep;              /* limit + 1, at least 1 */
    item *heap;               /* max-heap of the smallest `keep` offered items */
    size_t n, cap;
    int oom;
} page;

static int item_cmp(const item *x, const item *y)
{
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

static int item_qsort_cmp(const void *x, const void *y) { return item_cmp(x, y); }

/* 1 if an item with this sort key would be kept (after the bookmark, and smaller than the
 * largest kept once the page is full). */
static int page_wants(const page *pg, const item *it)
{
    if (pg->has_from && item_cmp(it, &pg->from) < 0) return 0;
    return pg->n < pg->keep || item_cmp(it, &pg->heap[0]) < 0;
}

static void sift_down(item *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && item_cmp(&h[l], &h[m]) > 0) m = l;
        if (r < n && item_cmp(&h[r], &h[m]) > 0) m = r;
        if (m == i) return;
        item t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Adds an item page_wants (its pointers must stay valid until the reply is built). */
static void page_add(page *pg, const item *it)
{
    if (pg->n == pg->keep) { /* full: the new one replaces the largest */
        pg->heap[0] = *it;
        sift_down(pg->heap, pg->n, 0);
        return;
    }
    if (pg->n == pg->cap) {
        size_t nc = pg->cap ? pg->cap * 2 : 64;
        if (nc > pg->keep) nc = pg->keep;
        item *h = arena_alloc(pg->a, nc * sizeof *h);
        if (!h) {
            pg->oom = 1;
            return;
        }
        if (pg->n) memcpy(h, pg->heap, pg->n * sizeof *h);
        pg->heap = h;
        pg->cap = nc;
    }
    size_t i = pg->n++;
    pg->heap[i] = *it;
    while (i > 0) { /* sift up */
        size_t p = (i - 1) / 2;
        if (item_cmp(&pg->heap[p], &pg->heap[i]) >= 0) break;
        item t = pg->heap[p];
        pg->heap[p] = pg->heap[i];
        pg->heap[i] = t;
        i = p;
    }
}

/* A copy in the arena of what a mutable store's entry lends only under its lock. */
static int page_add_copy(page *pg, item it)
{
    char *k = arena_alloc(pg->a, it.klen + 1);
    uint8_t *v = arena_alloc(pg->a, it.rlen + 1);
    if (!k || !v) return pg->oom = 1;
    memcpy(k, it.key, it.klen);
    if (it.rlen) memcpy(v, it.result, it.rlen);
    it.key = k;
    it.result = v;
    page_add(pg, &it);
    return 0;
}

/* Reads the bookmark (if any) into pg->from. -1 if it is not one of ours. */
static int page_init(page *pg, arena *a, int has_limit, int32_t limit, int has_bookmark, ProtobufCBinaryData bm)
{
    memset(pg, 0, sizeof *pg);
    pg->a = a;
    int64_t l = has_limit ? limit : DEFAULT_LIMIT;
    pg->keep = l > 0 ? (size_t)l + 1 : 1;
    if (!has_bookmark || bm.len == 0) return 0;
    if (bm.len < BOOKMARK_HEAD || bm.data[0] != BOOKMARK_VERSION) return -1;
    uint64_t u = 0;
    for (int i = 1; i < BOOKMARK_HEAD; i++) u = u << 8 | bm.data[i];
    pg->from.t = (int64_t)(u ^ (1ull << 63));
    pg->from.key = (const char *)bm.data + BOOKMARK_HEAD;
    pg->from.klen = bm.len - BOOKMARK_HEAD;
    pg->has_from = 1;
    return 0;
}

/* The reply: results (field 1) and, when more follow, the bookmark (field 2). */
static void page_reply(page *pg, int64_t limit_or_default, lh_reply *r)
{
    if (pg->oom) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    qsort(pg->heap, pg->n, sizeof *pg->heap, item_qsort_cmp);
    size_t take = limit_or_default > 0 ? (size_t)limit_or_default : 0;
    if (take > pg->n) take = pg->n;
    wbuf b;
    wbuf_init(&b, pg->a);
    for (size_t i = 0; i < take; i++) wbuf_len_field(&b, 1, pg->heap[i].result, pg->heap[i].rlen);
    if (pg->n > take) {
        const item *next = &pg->heap[take];
        uint8_t head[BOOKMARK_HEAD];
        uint64_t u = (uint64_t)next->t ^ (1ull << 63);
        head[0] = BOOKMARK_VERSION;
        for (int i = 0; i < 8; i++) head[1 + i] = (uint8_t)(u >> (56 - 8 * i));
        wbuf body;
        wbuf_init(&body, pg->a);
        wbuf_put(&body, head, sizeof head);
        wbuf_put(&body, next->key, next->klen);
        if (body.oom) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
        wbuf_len_field(&b, 2, body.p, body.len);
    }
    if (b.oom) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    reply_copied(r, b.p ? b.p : (const uint8_t *)"", b.len);
}

/* ---- reading stored messages --------------------------------------------------------- */

/* The last occurrence of length-delimited field `no` in a message (absent: present = 0). */
static wire_bytes field_of(const uint8_t *m, size_t len, uint32_t no)
{
    wire_bytes out = { NULL, 0, 0 };
    const uint8_t *p = m, *end = m + len;
    wire_field f;
    while (wire_next(&p, end, &f) == 1)
        if (f.no == no && f.wt == WIRE_LEN) out = (wire_bytes){ f.data, f.len, 1 };
    return out;
}

/* The last value of varint field `no` (0 when absent). */
static uint64_t varint_of(const uint8_t *m, size_t len, uint32_t no)
{
    uint64_t v = 0;
    const uint8_t *p = m, *end = m + len;
    wire_field f;
    while (wire_next(&p, end, &f) == 1)
        if (f.no == no && f.wt == WIRE_VARINT) v = f.varint;
    return v;
}

static int64_t created_of(const uint8_t *m, size_t len)
{
    wire_bytes ts = field_of(m, len, 2);
    return ts.present ? timestamp_ms(ts.data, ts.len) : 0;
}

static int64_t ts_ms(const Google__Protobuf__Timestamp *t) { return t->seconds * 1000 + t->nanos / 1000000; }

/* The time filter of the searches (inclusive bounds, as given). */
typedef struct window {
    const Google__Protobuf__Timestamp *earliest, *latest;
} window;

static int in_window(const window *w, int64_t t)
{
    return (!w->earliest || t >= ts_ms(w->earliest)) && (!w->latest || t <= ts_ms(w->latest));
}

static int is_blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

/* ---- ListExternalEvents -------------------------------------------------------------- */

typedef struct list_scan {
    page pg;
    const char *prefix;
    size_t prefix_len;
    int64_t now;              /* events expired by then are gone */
} list_scan;

static int offer_event_of_wf_run(const store_entry *e, void *ctx)
{
    list_scan *s = ctx;
    item it = { 0 };
    it.key = store_entry_key(e, &it.klen);
    if (it.klen < s->prefix_len || memcmp(it.key, s->prefix, s->prefix_len) != 0) return 0;
    if (!event_live(e, s->now)) return 0;
    if (!page_wants(&s->pg, &it)) return 0;
    it.result = store_entry_value(e, &it.rlen); /* events never change: borrowed */
    page_add(&s->pg, &it);
    return 0;
}

void list_external_events(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__ListExternalEventsRequest *req =
        unpack(&littlehorse__list_external_events_request__descriptor, data, len, a);
    if (!req) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    list_scan s = { .now = now_ms() };
    int has_limit = req->_limit_case == LITTLEHORSE__LIST_EXTERNAL_EVENTS_REQUEST___LIMIT_LIMIT;
    if (page_init(&s.pg, a, has_limit, req->limit,
                  req->_bookmark_case == LITTLEHORSE__LIST_EXTERNAL_EVENTS_REQUEST___BOOKMARK_BOOKMARK, req->bookmark))
        FAIL(r, GRPC_STATUS_INTERNAL, MSG_INTERNAL);
    size_t wl;
    char *wf = wf_run_id_string(req->wf_run_id, a, &wl);
    const char *parts[] = { wf ? wf : "", "" };
    s.prefix = join_key(a, &s.prefix_len, 2, parts); /* "<wfRunId>/" */
    if (!wf || !s.prefix) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    store_scan(db->events, offer_event_of_wf_run, &s);
    page_reply(&s.pg, has_limit ? req->limit : DEFAULT_LIMIT, r);
}

/* ---- SearchExternalEvent ------------------------------------------------------------- */

typedef struct event_scan {
    page pg;
    window w;
    const char *def;
    size_t def_len;
    int claimed;              /* -1: either */
    int64_t now;              /* events expired by then are gone */
} event_scan;

static int offer_event_of_def(const store_entry *e, void *ctx)
{
    event_scan *s = ctx;
    if (!event_live(e, s->now)) return 0;
    size_t vlen;
    const uint8_t *v = store_entry_value(e, &vlen);
    wire_bytes id = field_of(v, vlen, 1);
    wire_bytes defid = id.present ? field_of(id.data, id.len, 2) : id;
    wire_bytes name = defid.present ? field_of(defid.data, defid.len, 1) : defid;
    if (name.len != s->def_len || (s->def_len && memcmp(name.data, s->def, s->def_len) != 0)) return 0;
    if (s->claimed >= 0 && (int)(varint_of(v, vlen, 6) != 0) != s->claimed) return 0;
    item it = { .t = created_of(v, vlen) };
    if (!in_window(&s->w, it.t)) return 0;
    it.key = store_entry_key(e, &it.klen);
    if (!page_wants(&s->pg, &it)) return 0;
    it.result = id.data ? id.data : (const uint8_t *)"";
    it.rlen = id.len;
    page_add(&s->pg, &it);
    return 0;
}

void search_external_event(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__SearchExternalEventRequest *req =
        unpack(&littlehorse__search_external_event_request__descriptor, data, len, a);
    if (!req) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    event_scan s = { .w = { req->earliest_start, req->latest_start }, .now = now_ms() };
    s.def = req->external_event_def_id ? str_or_empty(req->external_event_def_id->name) : "";
    s.def_len = strlen(s.def);
    if (is_blank(s.def)) FAIL(r, GRPC_STATUS_INVALID_ARGUMENT, MSG_SEARCH_NO_DEF);
    uint8_t *v;
    size_t vlen;
    int found = store_get_copy(db->defs, s.def, s.def_len, a, &v, &vlen, NULL);
    if (found < 0) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    if (!found) FAIL(r, GRPC_STATUS_INVALID_ARGUMENT, arena_printf(a, MSG_SEARCH_UNKNOWN_DEF, s.def));
    int has_limit = req->_limit_case == LITTLEHORSE__SEARCH_EXTERNAL_EVENT_REQUEST___LIMIT_LIMIT;
    int has_bookmark = req->_bookmark_case == LITTLEHORSE__SEARCH_EXTERNAL_EVENT_REQUEST___BOOKMARK_BOOKMARK;
    if (page_init(&s.pg, a, has_limit, req->limit, has_bookmark, req->bookmark))
        page_init(&s.pg, a, has_limit, req->limit, 0, req->bookmark); /* not ours: from the start */
    s.claimed = req->_is_claimed_case == LITTLEHORSE__SEARCH_EXTERNAL_EVENT_REQUEST___IS_CLAIMED_IS_CLAIMED
                    ? !!req->is_claimed : -1;
    store_scan(db->events, offer_event_of_def, &s);
    page_reply(&s.pg, has_limit ? req->limit : DEFAULT_LIMIT, r);
}

/* ---- SearchCorrelatedEvent ----------------------------------------------------------- */

typedef struct correlated_scan {
    page pg;
    window w;
    const char *suffix;       /* "/<defName>": the end of the store keys of that def */
    size_t suffix_len;
    int has_events;           /* -1: either */
    int64_t now;
} correlated_scan;

static int offer_correlated(const store_entry *e, void *ctx)
{
    correlated_scan *s = ctx;
    item it = { 0 };
    it.key = store_entry_key(e, &it.klen);
    /* keys are "<key>/<defName>" and a correlation key has no '/' */
    const char *slash = memchr(it.key, '/', it.klen);
    if (!slash || (size_t)(it.key + it.klen - slash) != s->suffix_len ||
        memcmp(slash, s->suffix, s->suffix_len) != 0)
        return 0;
    if (correlated_expired(store_entry_stamp(e), s->now)) return 0;
    size_t vlen;
    const uint8_t *v = store_entry_value(e, &vlen);
    if (s->has_events >= 0 && field_of(v, vlen, 4).present != s->has_events) return 0;
    it.t = created_of(v, vlen);
    if (!in_window(&s->w, it.t) || !page_wants(&s->pg, &it)) return 0;
    wire_bytes id = field_of(v, vlen, 1);
    it.result = id.data;
    it.rlen = id.len;
    return page_add_copy(&s->pg, it); /* a mutable store: copied under its lock */
}

void search_correlated_event(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__SearchCorrelatedEventRequest *req =
        unpack(&littlehorse__search_correlated_event_request__descriptor, data, len, a);
    if (!req) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    correlated_scan s = { .w = { req->earliest_start, req->latest_start }, .now = now_ms() };
    const char *def = req->external_event_def_id ? str_or_empty(req->external_event_def_id->name) : "";
    const char *parts[] = { "", def };
    s.suffix = join_key(a, &s.suffix_len, 2, parts);
    if (!s.suffix) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    int has_limit = req->_limit_case == LITTLEHORSE__SEARCH_CORRELATED_EVENT_REQUEST___LIMIT_LIMIT;
    int has_bookmark = req->_bookmark_case == LITTLEHORSE__SEARCH_CORRELATED_EVENT_REQUEST___BOOKMARK_BOOKMARK;
    if (page_init(&s.pg, a, has_limit, req->limit, has_bookmark, req->bookmark))
        page_init(&s.pg, a, has_limit, req->limit, 0, req->bookmark);
    s.has_events = req->_has_external_events_case ==
                           LITTLEHORSE__SEARCH_CORRELATED_EVENT_REQUEST___HAS_EXTERNAL_EVENTS_HAS_EXTERNAL_EVENTS
                       ? !!req->has_external_events : -1;
    store_scan(db->correlated, offer_correlated, &s);
    page_reply(&s.pg, has_limit ? req->limit : DEFAULT_LIMIT, r);
}

/* ---- SearchExternalEventDef ---------------------------------------------------------- */

typedef struct def_scan {
    page pg;
    const char *prefix;
    size_t prefix_len;
} def_scan;

static int offer_def(const store_entry *e, void *ctx)
{
    def_scan *s = ctx;
    item it = { 0 };
    it.key = store_entry_key(e, &it.klen);
    if (it.klen < s->prefix_len || memcmp(it.key, s->prefix, s->prefix_len) != 0) return 0;
    if (!page_wants(&s->pg, &it)) return 0;
    size_t vlen;
    const uint8_t *v = store_entry_value(e, &vlen);
    wire_bytes id = field_of(v, vlen, 1); /* ExternalEventDefId, as served */
    it.result = id.data;
    it.rlen = id.len;
    return page_add_copy(&s->pg, it);
}

void search_external_event_def(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__SearchExternalEventDefRequest *req =
        unpack(&littlehorse__search_external_event_def_request__descriptor, data, len, a);
    if (!req) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    def_scan s;
    int has_limit = req->_limit_case == LITTLEHORSE__SEARCH_EXTERNAL_EVENT_DEF_REQUEST___LIMIT_LIMIT;
    int has_bookmark = req->_bookmark_case == LITTLEHORSE__SEARCH_EXTERNAL_EVENT_DEF_REQUEST___BOOKMARK_BOOKMARK;
    if (page_init(&s.pg, a, has_limit, req->limit, has_bookmark, req->bookmark))
        page_init(&s.pg, a, has_limit, req->limit, 0, req->bookmark);
    s.prefix = req->_prefix_case == LITTLEHORSE__SEARCH_EXTERNAL_EVENT_DEF_REQUEST___PREFIX_PREFIX
                   ? str_or_empty(req->prefix) : "";
    s.prefix_len = strlen(s.prefix);
    store_scan(db->defs, offer_def, &s);
    page_reply(&s.pg, has_limit ? req->limit : DEFAULT_LIMIT, r);
}
