/* events.c: see events.h. Semantics follow the real server (shared/docs/littlehorse-protocol.md
 * section 3). Replies are written by hand (wire.h) so that sub-messages the client sent
 * (wf_run_id, external_event_def_id, content) are echoed byte for byte; protobuf-c still
 * unpacks every request first, which validates it and reads the scalars. */
#include "events.h"

#include <string.h>

#include "eventdefs.h"
#include "ids.h"
#include "service.pb-c.h"
#include "status.h"
#include "typecheck.h"

char *event_key(const Littlehorse__WfRunId *wf, const char *def, const char *guid, arena *a, size_t *out_len)
{
    size_t wl;
    char *w = wf_run_id_string(wf, a, &wl);
    if (!w) return NULL;
    const char *parts[] = { w, def, guid };
    return join_key(a, out_len, 3, parts);
}

store_entry *event_entry_new(const char *key, size_t klen, const event_parts *ev)
{
    /* ExternalEvent { 1 id: ExternalEventId {1 wf_run_id, 2 external_event_def_id, 3 guid},
     *                 2 created_at, 3 content, 4 thread_run_number?, 5 node_run_position?,
     *                 6 claimed (false: omitted) } */
    size_t glen = strlen(ev->guid);
    size_t id_size = wire_opt_len_size(1, &ev->wf) + wire_opt_len_size(2, &ev->defid) + (glen ? wire_len_field_size(3, glen) : 0);
    size_t total = wire_len_field_size(1, id_size) + wire_len_field_size(2, timestamp_size(ev->created_ms)) +
                   wire_opt_len_size(3, &ev->content) + (ev->has_thread ? wire_int32_field_size(4, ev->thread) : 0) +
                   (ev->has_position ? wire_int32_field_size(5, ev->position) : 0) +
                   (ev->claimed ? wire_uint64_field_size(6, 1) : 0);
    store_entry *e = store_entry_new(key, klen, total);
    if (!e) return NULL;
    uint8_t *p = store_entry_buf(e);
    p = wire_put_len_header(p, 1, id_size);
    p = wire_put_opt_len(p, 1, &ev->wf);
    p = wire_put_opt_len(p, 2, &ev->defid);
    if (glen) p = wire_put_len_field(p, 3, ev->guid, glen);
    p = put_timestamp(p, 2, ev->created_ms);
    p = wire_put_opt_len(p, 3, &ev->content);
    if (ev->has_thread) p = wire_put_int32_field(p, 4, ev->thread);
    if (ev->has_position) p = wire_put_int32_field(p, 5, ev->position);
    if (ev->claimed) p = wire_put_uint64_field(p, 6, 1);
    store_entry_set_len(e, (size_t)(p - store_entry_buf(e)));
    store_entry_set_stamp(e, ev->expires_ms);
    return e;
}

int event_live(const store_entry *e, int64_t now)
{
    int64_t expiry = store_entry_stamp(e);
    return expiry == 0 || now < expiry;
}

const store_entry *event_get_live(lh_db *db, const char *key, size_t klen)
{
    const store_entry *e = store_get(db->events, key, klen);
    return e && event_live(e, now_ms()) ? e : NULL;
}

void put_external_event(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__PutExternalEventRequest *req =
        unpack(&littlehorse__put_external_event_request__descriptor, data, len, a);
    if (!req) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);

    /* An absent external_event_def_id is the name "", which is never registered. */
    const char *def = req->external_event_def_id ? str_or_empty(req->external_event_def_id->name) : "";
    def_info info;
    int found = def_lookup(db, def, a, &info);
    if (found < 0) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    if (!found) FAIL(r, GRPC_STATUS_INVALID_ARGUMENT, arena_printf(a, MSG_NO_DEF_PREFIX "%s", def));

    /* guid: as sent whenever present (even ""), otherwise generated. */
    char generated[GUID_LEN + 1];
    event_parts ev = { .created_ms = now_ms() };
    if (req->_guid_case == LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST___GUID_GUID) {
        ev.guid = str_or_empty(req->guid);
    } else {
        if (ids_guid(generated)) FAIL(r, GRPC_STATUS_INTERNAL, MSG_RNG_FAILED);
        ev.guid = generated;
    }

    size_t klen;
    char *key = event_key(req->wf_run_id, def, ev.guid, a, &klen);
    if (!key) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);

    /* A typed def (type_information with a return_type): a repeated id is ALREADY_EXISTS
     * before the content is checked, as on the real server. Untyped defs skip both here (the
     * insert below still refuses a repeated id). */
    if (info.type && info.type->return_type) {
        if (event_get_live(db, key, klen)) FAIL(r, GRPC_STATUS_ALREADY_EXISTS, MSG_EVENT_EXISTS);
        const char *detail;
        if (typecheck_put_event(info.type->return_type, req->content, a, &detail))
            FAIL(r, GRPC_STATUS_INVALID_ARGUMENT, arena_printf(a, MSG_BAD_TYPE_EVENT, def, detail));
    }

    if (wire_find_len_field(data, len, 1, a, &ev.wf) || wire_find_len_field(data, len, 2, a, &ev.defid) ||
        wire_find_len_field(data, len, 5, a, &ev.content))
        FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    ev.has_thread = req->_thread_run_number_case ==
                    LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST___THREAD_RUN_NUMBER_THREAD_RUN_NUMBER;
    ev.has_position = req->_node_run_position_case ==
                      LITTLEHORSE__PUT_EXTERNAL_EVENT_REQUEST___NODE_RUN_POSITION_NODE_RUN_POSITION;
    ev.thread = req->thread_run_number;
    ev.position = req->node_run_position;
    if (info.has_retention) ev.expires_ms = ev.created_ms + info.seconds_after_put * 1000;

    store_entry *e = event_entry_new(key, klen, &ev);
    if (!e) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);

    /* With --store the record is appended here; the reply waits for it (server.c), and a
     * --store-then-fail fault replaces an OK reply there (r->stored tells it this call stored). */
    int inserted;
    const store_entry *stored = db_insert_event(db, e, &inserted);
    if (!inserted) {
        store_entry_free(e);
        FAIL(r, GRPC_STATUS_ALREADY_EXISTS, MSG_EVENT_EXISTS);
    }
    size_t vlen;
    const uint8_t *v = store_entry_value(stored, &vlen);
    reply_borrowed(r, v, vlen);
    r->stored = 1;
}

void get_external_event(lh_db *db, const uint8_t *data, size_t len, arena *a, lh_reply *r)
{
    Littlehorse__ExternalEventId *id = unpack(&littlehorse__external_event_id__descriptor, data, len, a);
    if (!id) FAIL(r, GRPC_STATUS_INTERNAL, MSG_BAD_PROTOBUF);
    const char *def = id->external_event_def_id ? str_or_empty(id->external_event_def_id->name) : "";
    size_t klen;
    char *key = event_key(id->wf_run_id, def, str_or_empty(id->guid), a, &klen);
    if (!key) FAIL(r, GRPC_STATUS_INTERNAL, MSG_OUT_OF_MEMORY);
    const store_entry *e = event_get_live(db, key, klen);
    if (!e) FAIL(r, GRPC_STATUS_NOT_FOUND, MSG_NOT_FOUND);
    size_t vlen;
    const uint8_t *v = store_entry_value(e, &vlen);
    reply_borrowed(r, v, vlen);
}
