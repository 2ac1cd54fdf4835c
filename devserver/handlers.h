/* handlers.h: the LittleHorse RPC semantics, independent of gRPC transport code.
 * A handler turns request bytes into an lh_reply; server.c puts that on the wire.
 * Adding an RPC: a new lh_rpc value, its path in lh_rpc_path, a case in handlers_call. */
#ifndef LHDS_HANDLERS_H
#define LHDS_HANDLERS_H

#include <stddef.h>
#include <stdint.h>
#include <grpc/status.h>

#include "arena.h"
#include "journal.h"
#include "store.h"

typedef enum lh_rpc {
    RPC_PUT_EXTERNAL_EVENT,
    RPC_GET_EXTERNAL_EVENT,
    RPC_PUT_EXTERNAL_EVENT_DEF,
    RPC_GET_EXTERNAL_EVENT_DEF,
    RPC_COUNT
} lh_rpc;

extern const char *const lh_rpc_path[RPC_COUNT];   /* "/littlehorse.LittleHorse/PutExternalEvent" */
extern const char *const lh_rpc_name[RPC_COUNT];   /* "PutExternalEvent" */

/* Everything the RPCs read and write. */
typedef struct lh_db {
    store *events;   /* "<wfRunId>/<defName>/<guid>" -> packed ExternalEvent */
    store *defs;     /* "<defName>"                  -> packed ExternalEventDef */
    journal *journal; /* --store FILE, or NULL: every insert is also appended there */
} lh_db;

int lh_db_init(lh_db *db);
void lh_db_free(lh_db *db);

/* A handler's outcome. `message` is NUL-terminated (static or in the call's arena).
 * `payload` (OK only) is borrowed from the store and stays valid until lh_db_free. */
typedef struct lh_reply {
    grpc_status_code code;
    const char *message;
    const uint8_t *payload;
    size_t payload_len;
    int stored;      /* PutExternalEvent only: this call stored a new event */
} lh_reply;

/* Runs one RPC. `a` holds all temporaries; reset it only after the reply has been used. */
void handlers_call(lh_db *db, lh_rpc rpc, const uint8_t *req, size_t len, arena *a, lh_reply *out);

/* Registers an ExternalEventDef by name exactly as PutExternalEventDef would (--def). */
void handlers_put_def_name(lh_db *db, const char *name, arena *a, lh_reply *out);

#endif
