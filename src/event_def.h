/* ExternalEventDefs: the put request (name, retention, content type, correlated-event
 * config), the delete request and the reply, in full (docs/api.md, "ExternalEventDef"). */
#ifndef LH_EVENT_DEF_H
#define LH_EVENT_DEF_H

#include "compat.h"
#include "context.h"
#include "path.h"

/* "name" or { name =, seconds_after_put =, content_type =, correlated_event_config = } */
void lh_pack_put_external_event_def(lua_State *L, int idx, const lh_path *root, lh_context *c);
/* "name" or { name = } */
void lh_pack_external_event_def_id(lua_State *L, int idx, const lh_path *root, lh_context *c);
/* DeleteExternalEventDefRequest, from "name" or { name = } */
void lh_pack_delete_external_event_def(lua_State *L, int idx, const lh_path *root, lh_context *c);

int lh_push_external_event_def(lua_State *L, const char *bytes, size_t len, lh_context *c);

#endif
