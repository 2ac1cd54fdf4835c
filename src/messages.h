/* Lua request tables -> packed LittleHorse request messages, and reply bytes -> Lua tables.
 * Each request field is checked and named in errors; unknown fields are refused so that a
 * typo (`giud`) never silently drops data. Packing writes into the context's wire buffer. */
#ifndef LH_MESSAGES_H
#define LH_MESSAGES_H

#include "compat.h"
#include "context.h"
#include "path.h"

/* Pack the request at idx into c->wire; misuse raises, blaming `root` (see path.h). */
void lh_pack_put_external_event(lua_State *L, int idx, const lh_path *root, lh_context *c);
void lh_pack_external_event_id(lua_State *L, int idx, const lh_path *root, lh_context *c);

/* Unpack reply bytes and push the Lua table; return 0 (pushing nothing) if the bytes are
 * not a valid message. */
int lh_push_external_event(lua_State *L, const char *bytes, size_t len, lh_context *c);

#endif
