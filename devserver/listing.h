/* listing.h: ListExternalEvents, SearchExternalEvent, SearchCorrelatedEvent and
 * SearchExternalEventDef: pages of at most `limit` results (100 when unset, as on the real
 * server; a limit <= 0 gives an empty page with a bookmark when anything matches, as there)
 * with an opaque bookmark that is absent when nothing follows. Order: ListExternalEvents and
 * SearchExternalEventDef by id (store key), the searches by created_at, then id.
 * A bookmark names the first result of the next page (results removed in between are just
 * not there). The real server ignores a bookmark of the Search RPCs that it cannot read and
 * starts from the beginning; ListExternalEvents answers INTERNAL. The dev server does the
 * same with bookmarks that are not its own (an empty one counts as none).
 * Every call scans the whole store: fine for a dev server, and the put paths stay free of
 * index upkeep. */
#ifndef LHDS_LISTING_H
#define LHDS_LISTING_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "db.h"
#include "rpcutil.h"

void list_external_events(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);
void search_external_event(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);
void search_correlated_event(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);
void search_external_event_def(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);

#endif
