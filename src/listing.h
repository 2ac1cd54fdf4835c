/* Listing and search: one page per call. A request may carry `bookmark` (the opaque bytes of
 * the previous page's reply) and `limit` (at least 1); a reply is { results = { ... },
 * bookmark = <string> } with bookmark absent on the last page (docs/api.md, "Pages"). */
#ifndef LH_LISTING_H
#define LH_LISTING_H

#include "compat.h"
#include "context.h"
#include "path.h"

/* { wf_run_id =, bookmark =, limit = } */
void lh_pack_list_external_events(lua_State *L, int idx, const lh_path *root, lh_context *c);
/* { external_event_def_name = (or _id), earliest_start =, latest_start =, is_claimed =, bookmark =, limit = } */
void lh_pack_search_external_events(lua_State *L, int idx, const lh_path *root, lh_context *c);
/* { external_event_def_name = (or _id), earliest_start =, latest_start =, has_external_events =, bookmark =, limit = } */
void lh_pack_search_correlated_events(lua_State *L, int idx, const lh_path *root, lh_context *c);
/* nil or { prefix =, bookmark =, limit = } */
void lh_pack_search_external_event_defs(lua_State *L, int idx, const lh_path *root, lh_context *c);

int lh_push_external_event_list(lua_State *L, const char *bytes, size_t len, lh_context *c);
int lh_push_external_event_id_list(lua_State *L, const char *bytes, size_t len, lh_context *c);
int lh_push_correlated_event_id_list(lua_State *L, const char *bytes, size_t len, lh_context *c);
int lh_push_external_event_def_id_list(lua_State *L, const char *bytes, size_t len, lh_context *c);

/* google.protobuf.Empty (the deletes): true */
int lh_push_empty(lua_State *L, const char *bytes, size_t len, lh_context *c);

#endif
