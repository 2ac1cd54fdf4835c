/* eventdefs.c: see eventdefs.h. Semantics of the real server (shared/docs/littlehorse-protocol.md
 * sections 3 and 8): names must be hostnames; a put replaces any def of that name
 * unconditionally (created_at, retention, type information, correlated-event config). */
#include "eventdefs.h"

#include <string.h>

#include "external_event.pb-c.h"
#include "service.pb-c.h"
#include "status.h"
#include "wire.h"

int def_lookup(lh_db *db, const char *name, arena *a, def_info *out)
{
    memset(out, 0, sizeof *out);
    uint8_t *v;
    size_t vlen;
    int rc = store_get_copy(db->defs, name, strlen(name), a, &v, &vlen, NULL);
    if (rc <= 0) return rc;
    /* ExternalEventDef { ..., 3 retention_policy, 4 type_information: ReturnType,
     *                   5 correlated_event_config } */
    const uint8_t *p = v, *end = v + vlen;
    wire_field f;
    while ((rc = wire_next(&p, end, &f)) == 1) {
        if (f.wt != WIRE_LEN) continue;
        if (f.no == 3) {
            Littlehorse__ExternalEventRetentionPolicy *rp =
                unpack(&littlehorse__external_event_retention_policy__descriptor, f.data, f.len, a);
            if (!rp) return -1;
            out->has_retention = rp->ext_evt_gc_policy_case ==
                                 LITTLEHORSE__EXTERNAL_EVENT_RETENTION_POLICY__EXT_EVT_GC_POLICY_SECONDS_AFTER_PUT;
            out->seconds_after_put = rp->seconds_after_put;
        } else if (f.no == 4) {
            out->type = unpack(&littlehorse__return_type__descriptor, f.data, f.len, a);
            if (!out->type) return -1;
        } else if (f.no == 5) {
            Littlehorse__CorrelatedEventConfig *c =
                unpack(&littlehorse__correlated_event_config__descriptor, f.data, f.len, a);
            if (!c) return -1;
            out->correlated = 1;
            out->has_ttl = c->_ttl_seconds_case == LITTLEHORSE__CORRELATED_EVENT_CONFIG___TTL_SECONDS_TTL_SECONDS;
            out->ttl_seconds = c->ttl_seconds;
            out->delete_after_first_correlation = c->delete_after_first_correlation;
        }
    }
    return rc < 0 ? -1 : 1;
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

void put_external_event_def(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
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

    int64_t now = now_ms();
    size_t nlen = strlen(name);
    size_t id_size = wire_len_field_size(1, nlen);
    size_t total = wire_len_field_size(1, id_size) + wire_len_field_size(2, timestamp_size(now)) +
                   wire_opt_len_size(3, &retention) + wire_opt_len_size(4, &content_type) + wire_opt_len_size(5, &correlated);

    store_entry *e = store_entry_new(name, nlen, total);
    if (!e) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    uint8_t *start = store_entry_buf(e), *p = start;
    p = wire_put_len_header(p, 1, id_size);
    p = wire_put_len_field(p, 1, name, nlen);
    p = put_timestamp(p, 2, now);
    p = wire_put_opt_len(p, 3, &retention);
    p = wire_put_opt_len(p, 4, &content_type);
    p = wire_put_opt_len(p, 5, &correlated);
    size_t vlen = (size_t)(p - start);
    store_entry_set_len(e, vlen);

    /* The reply is a copy: once put, the entry may be replaced (and freed) by another call. */
    uint8_t *copy = arena_alloc(a, vlen);
    if (!copy) {
        store_entry_free(e);
        FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    }
    memcpy(copy, start, vlen);
    db_put(db, db->defs, e);
    reply_copied(r, copy, vlen);
}

void get_external_event_def(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__ExternalEventDefId *id = unpack(&littlehorse__external_event_def_id__descriptor, data, len, a);
    if (!id) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    const char *name = str_or_empty(id->name);
    uint8_t *v;
    size_t vlen;
    int rc = store_get_copy(db->defs, name, strlen(name), a, &v, &vlen, NULL);
    if (rc < 0) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    if (rc == 0) FAIL(r, GRPC_STATUS_NOT_FOUND, arena_printf(a, MSG_DEF_NOT_FOUND "%s", name));
    reply_copied(r, v, vlen);
}

void delete_external_event_def(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__DeleteExternalEventDefRequest *req =
        unpack(&littlehorse__delete_external_event_def_request__descriptor, data, len, a);
    if (!req) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    const char *name = req->id ? str_or_empty(req->id->name) : "";
    if (!db_remove(db, db->defs, name, strlen(name))) FAIL(r, GRPC_STATUS_NOT_FOUND, MSG_DELETE_DEF_NOT_FOUND);
    reply_borrowed(r, (const uint8_t *)"", 0); /* google.protobuf.Empty */
}

void register_def_name(lh_db *db, const char *name, arena *a, lh_reply *r)
{
    uint8_t *v;
    size_t vlen;
    int rc = store_get_copy(db->defs, name, strlen(name), a, &v, &vlen, NULL);
    if (rc < 0) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    if (rc > 0) {
        reply_copied(r, v, vlen);
        return;
    }
    /* PutExternalEventDefRequest { name = 1 }, through the same code path as the RPC. */
    size_t nlen = strlen(name);
    uint8_t *buf = arena_alloc(a, wire_len_field_size(1, nlen));
    if (!buf) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    uint8_t *end = wire_put_len_field(buf, 1, name, nlen);
    put_external_event_def(db, buf, (size_t)(end - buf), a, r);
}
