/* The client userdata ("littlehorse.client"): one gRPC channel to one target, the tenant
 * header, a default deadline, and the LittleHorse RPCs as methods. */
#ifndef LH_CLIENT_H
#define LH_CLIENT_H

#include "compat.h"

#define LH_CLIENT_MT "littlehorse.client"

/* Register the metatable; its methods get the context (on the stack top) as upvalue 1. */
void lh_client_register(lua_State *L);
/* core.client{ target =, timeout =, max_send_size =, ... } (see client.c) */
int lh_client_new(lua_State *L);
/* core.channel_count() */
int lh_client_channel_count(lua_State *L);

#endif
