/* handlers.h: the table of RPCs the dev server serves, independent of gRPC transport code.
 * A handler turns request bytes into an lh_reply (rpcutil.h); server.c puts that on the wire.
 * Adding an RPC: a new lh_rpc value and its row in lh_methods (handlers.c). */
#ifndef LHDS_HANDLERS_H
#define LHDS_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "db.h"
#include "rpcutil.h"

typedef enum lh_rpc {
    RPC_PUT_EXTERNAL_EVENT,
    RPC_GET_EXTERNAL_EVENT,
    RPC_LIST_EXTERNAL_EVENTS,
    RPC_SEARCH_EXTERNAL_EVENT,
    RPC_PUT_CORRELATED_EVENT,
    RPC_GET_CORRELATED_EVENT,
    RPC_DELETE_CORRELATED_EVENT,
    RPC_SEARCH_CORRELATED_EVENT,
    RPC_PUT_EXTERNAL_EVENT_DEF,
    RPC_GET_EXTERNAL_EVENT_DEF,
    RPC_DELETE_EXTERNAL_EVENT_DEF,
    RPC_SEARCH_EXTERNAL_EVENT_DEF,
    RPC_START_WAITING,          /* the dev server's own DevServer service */
    RPC_STOP_WAITING,
    RPC_COUNT
} lh_rpc;

typedef void (*lh_handler)(lh_db *db, const uint8_t *req, size_t len, arena *a, lh_reply *out);

typedef struct lh_method {
    const char *path;    /* "/littlehorse.LittleHorse/PutExternalEvent" */
    const char *name;    /* "PutExternalEvent" (logs) */
    const char *stat;    /* "put_event": its call counter in the STATS line */
    lh_handler handler;
    int faults;          /* the fault options (faults.h) apply to it */
    int hot;             /* many calls expected: more calls requested up front */
} lh_method;

extern const lh_method lh_methods[RPC_COUNT];

/* Runs one RPC. `a` holds all temporaries; reset it only after the reply has been used. */
void handlers_call(lh_db *db, lh_rpc rpc, const uint8_t *req, size_t len, arena *a, lh_reply *out);

#endif
