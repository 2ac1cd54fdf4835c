/* Error objects for expected runtime failures: `nil, err, code`, where err is a table with
 * code (the gRPC status name), status (its number), message, method, and retry_delay (seconds,
 * from a google.rpc.RetryInfo detail, when the server sent one); the client adds target (to
 * UNAVAILABLE and DEADLINE_EXCEEDED) and sent = false (a call refused before sending).
 * tostring(err) reads well: "PutExternalEvent: UNAVAILABLE (14): <message> (target h:2023)". */
#ifndef LH_ERROR_H
#define LH_ERROR_H

#include <grpc/status.h>
#include "compat.h"

#define LH_ERROR_MT "littlehorse.error"

/* The canonical name of a gRPC status code ("UNAVAILABLE"); "UNKNOWN" for out-of-range codes. */
const char *lh_status_name(int code);

/* Create the metatable (called once per state from luaopen). */
void lh_error_register(lua_State *L);

/* Push the three results nil, err, code; returns 3. retry_delay < 0 means none. */
int lh_error_push(lua_State *L, int status, const char *message, size_t msglen,
                  const char *method, double retry_delay);

#endif
