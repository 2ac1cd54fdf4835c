/* The ExternalEvent reply read directly from its wire bytes (the common, canonical case);
 * see event_reader.c. */
#ifndef LH_EVENT_READER_H
#define LH_EVENT_READER_H

#include <stddef.h>
#include <stdint.h>
#include "compat.h"
#include "context.h"

enum { LH_READ_GENERIC = 0, LH_READ_DONE = 1 };

/* Push the reply's Lua table and return LH_READ_DONE; or push nothing and return
 * LH_READ_GENERIC when the bytes are not in the canonical shape (the caller then uses the
 * generic protobuf-c decoder, which also decides whether they are valid at all). */
int lh_read_external_event(lua_State *L, const uint8_t *bytes, size_t len, lh_context *c);

#endif
