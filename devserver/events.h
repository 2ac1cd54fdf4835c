/* events.h: the ExternalEvent RPCs (PutExternalEvent, GetExternalEvent; listing and search
 * are in listing.h), and making a stored ExternalEvent (also used by correlation). */
#ifndef LHDS_EVENTS_H
#define LHDS_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "db.h"
#include "rpcutil.h"
#include "wire.h"

/* What an ExternalEvent is made of. wf, defid and content are sub-message bytes echoed as
 * they came (each written only if present). */
typedef struct event_parts {
    wire_bytes wf, defid, content;
    const char *guid;
    int has_thread, has_position, claimed;
    int32_t thread, position;
    int64_t created_ms;
} event_parts;

/* The store key of an ExternalEvent: "<wfRunId>/<defName>/<guid>", as the server keys it. */
char *event_key(const Littlehorse__WfRunId *wf, const char *def, const char *guid, arena *a, size_t *out_len);

/* A detached store entry holding the ExternalEvent message; NULL when out of memory. */
store_entry *event_entry_new(const char *key, size_t klen, const event_parts *ev);

void put_external_event(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);
void get_external_event(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);

#endif
