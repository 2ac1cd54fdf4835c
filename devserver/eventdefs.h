/* eventdefs.h: the ExternalEventDef RPCs (Put, Get, Delete; SearchExternalEventDef is in
 * listing.h) and reading a stored def for the other RPCs. */
#ifndef LHDS_EVENTDEFS_H
#define LHDS_EVENTDEFS_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "db.h"
#include "rpcutil.h"
#include "type_definition.pb-c.h"

/* What the other RPCs need to know about a def. */
typedef struct def_info {
    const Littlehorse__ReturnType *type;  /* type_information, NULL when the def has none */
    int correlated;                       /* has a correlated_event_config */
    int has_ttl;                          /* ... with ttl_seconds set */
    int64_t ttl_seconds;
    int delete_after_first_correlation;
    int has_retention;                    /* retention_policy with seconds_after_put */
    int64_t seconds_after_put;
} def_info;

/* Reads the def `name` (a copy, in `a`): 1 if found, 0 if not, -1 when out of memory or the
 * stored def does not parse. */
int def_lookup(lh_db *db, const char *name, arena *a, def_info *out);

void put_external_event_def(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);
void get_external_event_def(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);
void delete_external_event_def(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *r);

/* --def NAME: registers the def unless one by that name exists (a store replayed at start
 * keeps the defs clients made). */
void register_def_name(lh_db *db, const char *name, arena *a, lh_reply *r);

#endif
