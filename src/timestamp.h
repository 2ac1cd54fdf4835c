/* google.protobuf.Timestamp as a Lua value: a table { seconds = <int>, nanos = <int> } with
 * the metatable "littlehorse.timestamp", whose __tostring is RFC 3339 in UTC
 * ("2026-11-28T11:28:19.123Z"). Used for created_at and for utc_timestamp contents. */
#ifndef LH_TIMESTAMP_H
#define LH_TIMESTAMP_H

#include <stdint.h>
#include "compat.h"

#define LH_TIMESTAMP_MT "littlehorse.timestamp"

void lh_timestamp_register(lua_State *L);
void lh_timestamp_push(lua_State *L, int64_t seconds, int32_t nanos);
/* The same, with its keys from a names table at stack index names (lh_keep_names), if not 0. */
void lh_timestamp_push_names(lua_State *L, int64_t seconds, int32_t nanos, int names);

#endif
