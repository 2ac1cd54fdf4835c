/* handlers.c: see handlers.h. Semantics follow the real server (docs/littlehorse-protocol.md
 * section 3). Replies are written by hand (wire.h) so that sub-messages the client sent
 * (wf_run_id, external_event_def_id, content, retention policy, ...) are echoed byte for byte;
 * protobuf-c still unpacks every request first, which validates it and reads the scalars. */
#include "handlers.h"

#include <string.h>

#include "external_event.pb-c.h"
#include "ids.h"
#include "object_id.pb-c.h"
#include "service.pb-c.h"
#include "status.h"
#include "wire.h"

#define LH_SERVICE "/littlehorse.LittleHorse/"

const char *const lh_rpc_path[RPC_COUNT] = {
    LH_SERVICE "PutExternalEvent",
    LH_SERVICE "GetExternalEvent",
    LH_SERVICE "PutExternalEventDef",
    LH_SERVICE "GetExternalEventDef",
};

const char *const lh_rpc_name[RPC_COUNT] = {
    "PutExternalEvent",
    "GetExternalEvent",
    "PutExternalEventDef",
    "GetExternalEventDef",
};

int lh_db_init(lh_db *db)
{
    db->journal = NULL;
    db->events = store_new();
    db->defs = store_new();
    if (db->events && db->defs) return 0;
    lh_db_free(db);
    return -1;
}

void lh_db_free(lh_db *db)
{
    journal_close(db->journal);
    db->journal = NULL;
    store_free(db->events);
    store_free(db->defs);
    db->events = db->defs = NULL;
}

/* ---- small helpers ------------------------------------------------------------------- */

/* Inserts into the store, through the journal when there is one. */
static const store_entry *db_insert(lh_db *db, store *s, char kind, store_entry *e, int *inserted)
{
    if (db->journal) return journal_insert(db->journal, s, kind, e, inserted);
    return store_insert(s, e, inserted);
}

static void reply_error(lh_reply *r, grpc_status_code code, const char *msg)
{
    r->code = code;
    r->message = msg;
    r->payload = NULL;
    r->payload_len = 0;
    r->stored = 0;
}

#define FAIL(r, code, msg) do { reply_error((r), (code), (msg)); return; } while (0)

static void reply_entry(lh_reply *r, const store_entry *e)
{
    r->code = GRPC_STATUS_OK;
    r->message = NULL;
    r->payload = store_entry_value(e, &r->payload_len);
    r->stored = 0;
}

/* prefix + s in the arena; falls back to the bare prefix if memory is short. */
static const char *concat(arena *a, const char *prefix, const char *s)
{
    size_t pl = strlen(prefix), sl = strlen(s);
    char *m = arena_alloc(a, pl + sl + 1);
    if (!m) return prefix;
    memcpy(m, prefix, pl);
    memcpy(m + pl, s, sl + 1);
    return m;
}

static const char *str_or_empty(const char *s) { return s ? s : ""; }

/* The SDKs' string form of a WfRunId: ancestors joined with '_', root first. Absent -> "". */
static char *wf_run_id_string(const Littlehorse__WfRunId *w, arena *a, size_t *out_len)
{
    size_t n = 0;
    for (const Littlehorse__WfRunId *p = w; p; p = p->parent_wf_run_id)
        n += strlen(str_or_empty(p->id)) + (p->parent_wf_run_id ? 1 : 0);
    char *buf = arena_alloc(a, n + 1);
    if (!buf) return NULL;
    size_t pos = n;
    buf[n] = '\0';
    for (const Littlehorse__WfRunId *p = w; p; p = p->parent_wf_run_id) {
        size_t l = strlen(str_or_empty(p->id));
        pos -= l;
        memcpy(buf + pos, str_or_empty(p->id), l);
        if (p->parent_wf_run_id) buf[--pos] = '_';
    }
    *out_len = n;
    return buf;
}

/* Store key of an ExternalEvent: "<wfRunId>/<defName>/<guid>", as the server keys it. */
static char *event_key(const Littlehorse__WfRunId *wf, const char *def, const char *guid,
                       arena *a, size_t *out_len)
{
    size_t wl, dl = strlen(def), gl = strlen(guid);
    char *w = wf_run_id_string(wf, a, &wl);
    if (!w) return NULL;
    char *k = arena_alloc(a, wl + dl + gl + 3);
    if (!k) return NULL;
    memcpy(k, w, wl);
    k[wl] = '/';
    memcpy(k + wl + 1, def, dl);
    k[wl + 1 + dl] = '/';
    memcpy(k + wl + dl + 2, guid, gl + 1);
    *out_len = wl + dl + gl + 2;
    return k;
}

/* [A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])? */
static int valid_hostname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i != 0 && i != n - 1)) return 0;
    }
    return 1;
}

/* google.protobuf.Timestamp body: proto3 scalars, zero values omitted. */
static size_t timestamp_size(int64_t sec, int32_t nanos)
{
    return (sec ? wire_uint64_field_size(1, (uint64_t)sec) : 0) +
           (nanos ? wire_int32_field_size(2, nanos) : 0);
}

static uint8_t *put_timestamp(uint8_t *p, uint32_t field, int64_t sec, int32_t nanos)
{
    p = wire_put_len_header(p, field, timestamp_size(sec, nanos));
    if (sec) p = wire_put_uint64_field(p, 1, (uint64_t)sec);
    if (nanos) p = wire_put_int32_field(p, 2, nanos);
    return p;
}

static size_t opt_len_size(uint32_t field, const wire_bytes *b)
{
    return b->present ? wire_len_field_size(field, b->len) : 0;
}

static uint8_t *put_opt_len(uint8_t *p, uint32_t field, const wire_bytes *b)
{
    return b->present ? wire_put_len_field(p, field, b->data, b->len) : p;
}

/* protobuf-c unpack behind the nesting limit (wire.h); NULL for any invalid request. */
static void *unpack(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, arena *a)
{
    if (wire_check_depth(d, data, len, WIRE_MAX_DEPTH)) return NULL;
    return protobuf_c_message_unpack(d, &a->pb, len, data);
}

/* ---- PutExternalEvent ---------------------------------------------------------------- */

static void put_external_event(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__PutExternalEventRequest *req =
        unpack(&littlehorse__put_external_event_request__descriptor, data, len, a);
    if (!req) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);

    /* An absent external_event_def_id is the name "", which is never registered. */
    const char *def = req->external_event_def_id ? str_or_empty(req->external_event_def_id->name) : "";
    if (!store_get(db->defs, def, strlen(def)))
        FAIL(r, GRPC_STATUS_INVALID_ARGUMENT, concat(a, MSG_NO_DEF_PREFIX, def));

    /* guid: as sent whenever present (even ""), otherwise generated. */
    char generated[GUID_LEN + 1];
    const char *guid;
    if (req->_guid_case == LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST___GUID_GUID) {
        guid = str_or_empty(req->guid);
    } else {
        if (ids_guid(generated)) FAIL(r, GRPC_STATUS_INTERNAL, MSG_RNG_FAILED);
        guid = generated;
    }

    size_t klen;
    char *key = event_key(req->wf_run_id, def, guid, a, &klen);
    wire_bytes wf, defid, content;
    if (!key) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    if (wire_find_len_field(data, len, 1, a, &wf) || wire_find_len_field(data, len, 2, a, &defid) ||
        wire_find_len_field(data, len, 5, a, &content))
        FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);

    int64_t sec;
    int32_t nanos;
    ids_now_ms(&sec, &nanos);
    int has_thread = req->_thread_run_number_case ==
                     LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST___THREAD_RUN_NUMBER_THREAD_RUN_NUMBER;
    int has_pos = req->_node_run_position_case ==
                  LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST___NODE_RUN_POSITION_NODE_RUN_POSITION;
    size_t glen = strlen(guid);

    /* ExternalEvent { 1 id: ExternalEventId {1 wf_run_id, 2 external_event_def_id, 3 guid},
     *                 2 created_at, 3 content, 4 thread_run_number?, 5 node_run_position?,
     *                 6 claimed (false: omitted) } */
    size_t id_size = opt_len_size(1, &wf) + opt_len_size(2, &defid) +
                     (glen ? wire_len_field_size(3, glen) : 0);
    size_t total = wire_len_field_size(1, id_size) +
                   wire_len_field_size(2, timestamp_size(sec, nanos)) + opt_len_size(3, &content) +
                   (has_thread ? wire_int32_field_size(4, req->thread_run_number) : 0) +
                   (has_pos ? wire_int32_field_size(5, req->node_run_position) : 0);

    store_entry *e = store_entry_new(key, klen, total);
    if (!e) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    uint8_t *p = store_entry_buf(e);
    p = wire_put_len_header(p, 1, id_size);
    p = put_opt_len(p, 1, &wf);
    p = put_opt_len(p, 2, &defid);
    if (glen) p = wire_put_len_field(p, 3, guid, glen);
    p = put_timestamp(p, 2, sec, nanos);
    p = put_opt_len(p, 3, &content);
    if (has_thread) p = wire_put_int32_field(p, 4, req->thread_run_number);
    if (has_pos) p = wire_put_int32_field(p, 5, req->node_run_position);
    store_entry_set_len(e, (size_t)(p - store_entry_buf(e)));

    /* With --store the record is appended here; the reply waits for it (server.c), and a
     * --store-then-fail fault replaces an OK reply there (r->stored tells it this call stored). */
    int inserted;
    const store_entry *stored = db_insert(db, db->events, JOURNAL_EVENT, e, &inserted);
    if (!inserted) {
        store_entry_free(e);
        FAIL(r, GRPC_STATUS_ALREADY_EXISTS, MSG_EVENT_EXISTS);
    }
    reply_entry(r, stored);
    r->stored = 1;
}

/* ---- GetExternalEvent ---------------------------------------------------------------- */

static void get_external_event(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__ExternalEventId *id = unpack(&littlehorse__external_event_id__descriptor, data, len, a);
    if (!id) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    const char *def = id->external_event_def_id ? str_or_empty(id->external_event_def_id->name) : "";
    size_t klen;
    char *key = event_key(id->wf_run_id, def, str_or_empty(id->guid), a, &klen);
    if (!key) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    const store_entry *e = store_get(db->events, key, klen);
    if (!e) FAIL(r, GRPC_STATUS_NOT_FOUND, MSG_NOT_FOUND);
    reply_entry(r, e);
}

/* ---- PutExternalEventDef ------------------------------------------------------------- */

static void put_external_event_def(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__PutExternalEventDefRequest *req =
        unpack(&littlehorse__put_external_event_def_request__descriptor, data, len, a);
    if (!req) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    const char *name = str_or_empty(req->name);
    if (!valid_hostname(name)) FAIL(r, GRPC_STATUS_INVALID_ARGUMENT, MSG_BAD_DEF_NAME);

    /* Request fields 2/3/4 are echoed as ExternalEventDef fields 3/4/5 (content_type becomes
     * type_information), present exactly when the client sent them. */
    wire_bytes retention, content_type, correlated;
    if (wire_find_len_field(data, len, 2, a, &retention) ||
        wire_find_len_field(data, len, 3, a, &content_type) ||
        wire_find_len_field(data, len, 4, a, &correlated))
        FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);

    int64_t sec;
    int32_t nanos;
    ids_now_ms(&sec, &nanos);
    size_t nlen = strlen(name);
    size_t id_size = wire_len_field_size(1, nlen);
    size_t total = wire_len_field_size(1, id_size) +
                   wire_len_field_size(2, timestamp_size(sec, nanos)) +
                   opt_len_size(3, &retention) + opt_len_size(4, &content_type) +
                   opt_len_size(5, &correlated);

    store_entry *e = store_entry_new(name, nlen, total);
    if (!e) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    uint8_t *p = store_entry_buf(e);
    p = wire_put_len_header(p, 1, id_size);
    p = wire_put_len_field(p, 1, name, nlen);
    p = put_timestamp(p, 2, sec, nanos);
    p = put_opt_len(p, 3, &retention);
    p = put_opt_len(p, 4, &content_type);
    p = put_opt_len(p, 5, &correlated);
    store_entry_set_len(e, (size_t)(p - store_entry_buf(e)));

    /* A name that already exists returns the existing def unchanged (first writer wins; the
     * new request's fields are ignored). This keeps PutExternalEventDef idempotent for test
     * setups that register the same def repeatedly; the real server's answer to a *changed*
     * def differs between versions, and a dev server has no versioning to offer. */
    int inserted;
    const store_entry *stored = db_insert(db, db->defs, JOURNAL_DEF, e, &inserted);
    if (!inserted) store_entry_free(e);
    reply_entry(r, stored);
}

/* ---- GetExternalEventDef ------------------------------------------------------------- */

static void get_external_event_def(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__ExternalEventDefId *id = unpack(&littlehorse__external_event_def_id__descriptor, data, len, a);
    if (!id) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    const char *name = str_or_empty(id->name);
    const store_entry *e = store_get(db->defs, name, strlen(name));
    if (!e) FAIL(r, GRPC_STATUS_NOT_FOUND, concat(a, MSG_DEF_NOT_FOUND, name));
    reply_entry(r, e);
}

/* ---- dispatch ------------------------------------------------------------------------ */

void handlers_call(lh_db *db, lh_rpc rpc, const uint8_t *req, size_t len, arena *a, lh_reply *out)
{
    switch (rpc) {
    case RPC_PUT_EXTERNAL_EVENT: put_external_event(db, req, len, a, out); break;
    case RPC_GET_EXTERNAL_EVENT: get_external_event(db, req, len, a, out); break;
    case RPC_PUT_EXTERNAL_EVENT_DEF: put_external_event_def(db, req, len, a, out); break;
    case RPC_GET_EXTERNAL_EVENT_DEF: get_external_event_def(db, req, len, a, out); break;
    default: reply_error(out, GRPC_STATUS_UNIMPLEMENTED, MSG_NO_METHOD_PREFIX); break;
    }
}

void handlers_put_def_name(lh_db *db, const char *name, arena *a, lh_reply *out)
{
    /* PutExternalEventDefRequest { name = 1 }, through the same code path as the RPC. */
    size_t nlen = strlen(name);
    uint8_t *buf = arena_alloc(a, wire_len_field_size(1, nlen));
    if (!buf) FAIL(out, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    uint8_t *end = wire_put_len_field(buf, 1, name, nlen);
    put_external_event_def(db, buf, (size_t)(end - buf), a, out);
}
