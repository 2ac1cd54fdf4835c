/* Reply messages (unpacked by protobuf-c into the context's arena) -> Lua tables: the pieces
 * every reply shares. Strings are pushed whole, NUL bytes included (lh_arena_pb_strlen). */
#ifndef LH_REPLY_H
#define LH_REPLY_H

#include <stddef.h>
#include <stdint.h>
#include "compat.h"
#include "context.h"
#include "external_event.pb-c.h"
#include "object_id.pb-c.h"

/* Check the bytes (well-formed, nesting within protobuf-c's safe depth), reset the arena and
 * unpack them as d; NULL when they are not a valid message. */
ProtobufCMessage *lh_reply_unpack(lh_context *c, const ProtobufCMessageDescriptor *d, const char *bytes, size_t len);

void lh_reply_text(lua_State *L, const lh_arena *a, const char *s);
/* { name = } (an empty name for an absent id) */
void lh_reply_def_id(lua_State *L, const lh_arena *a, const Littlehorse__ExternalEventDefId *d);
/* { wf_run_id =, external_event_def_id = { name = }, guid = } */
void lh_reply_external_event_id(lua_State *L, const lh_arena *a, const Littlehorse__ExternalEventId *id);
/* { key =, external_event_def_id = { name = } } */
void lh_reply_correlated_event_id(lua_State *L, const lh_arena *a, const Littlehorse__CorrelatedEventId *id);
/* t[name] = the timestamp, when ts is set (t is the table at -1) */
void lh_reply_set_timestamp(lua_State *L, const char *name, const Google__Protobuf__Timestamp *ts);
/* t.content and t.content_type from a VariableValue, when it is not NULL (t at -1) */
void lh_reply_set_content(lua_State *L, const lh_arena *a, const Littlehorse__VariableValue *v);
/* The ExternalEvent table (docs/api.md, "ExternalEvent"). */
void lh_reply_external_event(lua_State *L, const lh_arena *a, const Littlehorse__ExternalEvent *ev);
/* t.bookmark = the bytes, when the page has one (a bookmark of no bytes counts as none) */
void lh_reply_set_bookmark(lua_State *L, int has, const ProtobufCBinaryData *b);

#endif
