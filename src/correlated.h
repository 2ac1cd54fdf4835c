/* CorrelatedEvents: events posted by a correlation key (a business key such as an order id)
 * instead of a WfRunId. Requests from Lua tables, replies to Lua tables (docs/api.md). */
#ifndef LH_CORRELATED_H
#define LH_CORRELATED_H

#include "compat.h"
#include "context.h"
#include "path.h"

/* PutCorrelatedEventRequest { key =, external_event_def_name = (or _id), content = } */
void lh_pack_put_correlated_event(lua_State *L, int idx, const lh_path *root, lh_context *c);
/* CorrelatedEventId { key =, external_event_def_name = (or _id) } */
void lh_pack_correlated_event_id(lua_State *L, int idx, const lh_path *root, lh_context *c);
/* DeleteCorrelatedEventRequest, from the same table as a CorrelatedEventId */
void lh_pack_delete_correlated_event(lua_State *L, int idx, const lh_path *root, lh_context *c);

/* CorrelatedEvent reply -> { id =, created_at =, content =, content_type =, external_events = } */
int lh_push_correlated_event(lua_State *L, const char *bytes, size_t len, lh_context *c);

#endif
