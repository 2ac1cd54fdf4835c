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
    int64_t expires_ms;       /* created_ms + the def's seconds_after_put; 0: kept */
} event_parts;

/* Is a stored ExternalEvent still there at `now_ms`? The real server deletes an unclaimed
 * event seconds_after_put after its put (its def's retention policy at that time); the dev
 * server keeps it in memory but treats it as gone: not found, not listed, and its id can be
 * put again. */
int event_live(const store_entry *e, int64_t now_ms);
/* The live ExternalEvent under `key` (borrowed until the server exits), or NULL. */
const store_entry *event_get_live(lh_db *db, const char *key, size_t klen);

/* The store key of an ExternalEvent: "<wfRunId>/<defName>/<guid>", as the server keys it. */
char *event_key(const Littlehorse__WfRunId *wf, const char *def, const char *guid, arena *a, size_t *out_len);

/* A detached store entry holding the ExternalEvent message (its stamp: expires_ms); NULL
 * when out of memory. */
store_entry *event_entry_new(const char *key, size_t klen, const event_parts *ev);

void put_external_event(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);
void get_external_event(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);

#endif
