/* Request strings kept alive while a request is converted and packed.
 *
 * The invariant every packer obeys: every byte the packer reads stays reachable until packing
 * ends, whatever Lua code runs in between. Lua code can run in the middle of a conversion: a
 * `__gc` finalizer at any allocation (JSON decoding and encoding allocate), and it may remove
 * fields from the request, after which a collection frees their strings. So a string whose
 * pointer goes into the message is never referenced where it was found (a table field, a
 * stack slot popped later): lh_keep_string copies it into the context's arena (short strings,
 * the common case) or anchors it in the context's scratch table (long ones, not copied), which
 * is on the stack during the conversion. Neither creates a Lua object nor runs a collection step
 * (nor does lh_keep_field), so no Lua code runs while a request's own fields are read: only
 * JSON encoding and decoding (lh.json_obj / lh.json_arr text, tables as JSON) can run a
 * finalizer.
 *
 *   lh_keep_begin(L, c);        the conversion starts: resets the arena, reserves the slot
 *   s = lh_keep_string(L, c, idx, &len);   ... as often as needed
 *   ... pack into c->wire ...
 *   lh_keep_end(L, c);          packing is done: drops the slot (and what is above it)
 *
 * A raise in between needs no clean-up: the next conversion empties the anchor table and
 * resets the arena. */
#ifndef LH_KEEP_H
#define LH_KEEP_H

#include "compat.h"
#include "context.h"

/* Strings up to this length are copied; longer ones are anchored (a copy of a few hundred
 * bytes costs about what anchoring costs). */
#define LH_KEEP_COPY_MAX 512

/* Field names read raw from request tables and typed values (lh_keep_field), and the names
 * (and content_type values) of the ExternalEvent reply, which event_reader.c sets with
 * lh_keep_names. */
enum { LH_KEY_TYPE = 1, LH_KEY_VALUE, LH_KEY_NAME, LH_KEY_VERSION, LH_KEY_SECONDS, LH_KEY_NANOS,
       LH_KEY_ID, LH_KEY_WF_RUN_ID, LH_KEY_PARENT_WF_RUN_ID, LH_KEY_EXTERNAL_EVENT_DEF_ID, LH_KEY_GUID,
       LH_KEY_CREATED_AT, LH_KEY_CONTENT, LH_KEY_CONTENT_TYPE, LH_KEY_CLAIMED, LH_KEY_THREAD_RUN_NUMBER,
       LH_KEY_NODE_RUN_POSITION, LH_KEY_JSON_OBJ, LH_KEY_JSON_ARR,
       LH_KEY_COUNT = LH_KEY_JSON_ARR };

/* Push a new scratch table for a context (made once per context, context.c): the field-name strings,
 * and room for anchors. */
void lh_keep_push_table(lua_State *L);

void lh_keep_begin(lua_State *L, lh_context *c);
void lh_keep_end(lua_State *L, lh_context *c);

/* The string at idx (which must be a string), valid and NUL-terminated until lh_keep_end;
 * its length in *len (may be NULL). Raises only when out of memory. Runs inside a function
 * whose upvalue 1 is the context c (every module function). */
const char *lh_keep_string(lua_State *L, lh_context *c, int idx, size_t *len);
/* The same, for the string at idx already read as s, n (lua_tolstring). */
const char *lh_keep_bytes(lua_State *L, lh_context *c, int idx, const char *s, size_t n);

/* Push t[key] read raw (key: LH_KEY_*), between lh_keep_begin and lh_keep_end; returns its
 * type. Unlike lua_pushstring + lua_rawget (or lua_getfield, which may call a metamethod),
 * this runs no collection step, so no finalizer runs while a request's own fields are read. */
int lh_keep_field(lua_State *L, lh_context *c, int t, int key);

/* Push the names table of the running function's context (upvalue 1, as in every module
 * function; key LH_KEY_x is at index x) and return its stack index; needs one free stack slot.
 * Setting a reply field as lua_rawgeti(names, key), value, lua_rawset costs less than
 * lua_setfield, which looks its C string up in Lua's string cache every time. */
int lh_keep_names(lua_State *L);

#endif
