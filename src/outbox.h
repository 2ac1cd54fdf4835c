/* The outbox userdata ("littlehorse.outbox") and its job handle ("littlehorse.outbox_job"):
 * the Lua face of outbox_writer.c. Every method that touches the file returns a job handle
 * (wait, done, id, close; on_done callbacks run in outbox:poll()); the Lua layer
 * (lua/littlehorse/outbox.lua) makes the blocking and nginx forms and drives delivery. */
#ifndef LH_OUTBOX_H
#define LH_OUTBOX_H

#include "compat.h"

#define LH_OUTBOX_MT "littlehorse.outbox"
#define LH_OUTBOX_JOB_MT "littlehorse.outbox_job"

/* Register the metatables; methods get the context (on the stack top) as upvalue 1. */
void lh_outbox_register(lua_State *L);
/* core._outbox(path [, opts]) -> outbox (its file is opened by the first job) */
int lh_outbox_new(lua_State *L);

#endif
