/* Reading request tables into protobuf-c messages: the checks every request packer shares.
 *
 * Every function runs inside a conversion begun with lh_keep_begin (keep.h): messages come
 * from the context's arena, strings are kept until lh_keep_end, tables are read raw. Misuse
 * raises, naming the field path (path.h). */
#ifndef LH_REQUEST_H
#define LH_REQUEST_H

#include <stdint.h>
#include "compat.h"
#include "context.h"
#include "path.h"
#include "object_id.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

/* n bytes from the context's arena (zeroed); raises when out of memory. */
void *lh_req_alloc(lua_State *L, lh_context *c, size_t n);

/* Pack m into c->wire. */
void lh_req_pack(lua_State *L, lh_context *c, const ProtobufCMessage *m);

/* Raise unless the value at idx is a table; `what` names it ("a PutCorrelatedEvent request"). */
void lh_req_table(lua_State *L, int idx, const lh_path *p, const char *what);

/* Which of the NULL-terminated `names` the key at -2 is; raises (naming the nearest valid
 * one) for anything else. `what` names the table ("a PutCorrelatedEvent request"). */
int lh_req_field(lua_State *L, const lh_path *root, const char *const names[], const char *what);

/* An integer in [lo, hi] at idx (an integral float too, under 5.1 / LuaJIT). */
int64_t lh_req_integer(lua_State *L, int idx, const lh_path *p, int64_t lo, int64_t hi);

/* A boolean at idx. */
int lh_req_boolean(lua_State *L, int idx, const lh_path *p);

/* An ExternalEventDefId message for a name already kept. */
Littlehorse__ExternalEventDefId *lh_req_def_id(lua_State *L, lh_context *c, const char *name);

/* The name of an ExternalEventDefId given as a table { name = "..." } at idx, kept. */
const char *lh_req_def_id_table(lua_State *L, lh_context *c, int idx, const lh_path *p);

/* A google.protobuf.Timestamp from a timestamp object (lh.timestamp(...), created_at) or a
 * table { seconds =, nanos = } at idx. */
Google__Protobuf__Timestamp *lh_req_timestamp(lua_State *L, lh_context *c, int idx, const lh_path *p);

/* The opaque bytes of a bookmark (a string from a reply), kept; *len gets their length. */
const uint8_t *lh_req_bookmark(lua_State *L, lh_context *c, int idx, const lh_path *p, size_t *len);

/* A page size: an integer from 1. The server answers limit <= 0 with an empty page that still
 * has a bookmark, so a loop that follows bookmarks would never end. */
int32_t lh_req_limit(lua_State *L, int idx, const lh_path *p);

/* How a request names its ExternalEventDef: external_event_def_name = "..." or
 * external_event_def_id = { name = }. Call for a key that lh_req_field found to be one of
 * the two (is_id: the second); *name must start NULL. */
void lh_req_def_field(lua_State *L, lh_context *c, int idx, const lh_path *p, int is_id, const char **name);

/* Raise `external_event_def_name: required` unless name is set. */
void lh_req_def_required(lua_State *L, const lh_path *root, const char *name);

#endif
