/* core.check_content(type, content [, rpc]) -> true | false, detail, path (docs/api.md). */
#ifndef LH_CONTENT_CHECK_H
#define LH_CONTENT_CHECK_H

#include "compat.h"
#include "context.h"

int lh_check_content(lua_State *L);

#endif
