/* handlers.c: see handlers.h. */
#include "handlers.h"

#include "correlated.h"
#include "eventdefs.h"
#include "events.h"
#include "listing.h"
#include "status.h"

#define LH "/littlehorse.LittleHorse/"
#define DEV "/littlehorse.devserver.DevServer/"

const lh_method lh_methods[RPC_COUNT] = {
    [RPC_PUT_EXTERNAL_EVENT] = { LH "PutExternalEvent", "PutExternalEvent", "put_event", put_external_event, 1, 1 },
    [RPC_GET_EXTERNAL_EVENT] = { LH "GetExternalEvent", "GetExternalEvent", "get_event", get_external_event, 0, 1 },
    [RPC_LIST_EXTERNAL_EVENTS] = { LH "ListExternalEvents", "ListExternalEvents", "list_events", list_external_events, 0, 0 },
    [RPC_SEARCH_EXTERNAL_EVENT] = { LH "SearchExternalEvent", "SearchExternalEvent", "search_events", search_external_event, 0, 0 },
    [RPC_PUT_CORRELATED_EVENT] = { LH "PutCorrelatedEvent", "PutCorrelatedEvent", "put_correlated", put_correlated_event, 1, 1 },
    [RPC_GET_CORRELATED_EVENT] = { LH "GetCorrelatedEvent", "GetCorrelatedEvent", "get_correlated", get_correlated_event, 0, 1 },
    [RPC_DELETE_CORRELATED_EVENT] = { LH "DeleteCorrelatedEvent", "DeleteCorrelatedEvent", "delete_correlated", delete_correlated_event, 0, 0 },
    [RPC_SEARCH_CORRELATED_EVENT] = { LH "SearchCorrelatedEvent", "SearchCorrelatedEvent", "search_correlated", search_correlated_event, 0, 0 },
    [RPC_PUT_EXTERNAL_EVENT_DEF] = { LH "PutExternalEventDef", "PutExternalEventDef", "put_def", put_external_event_def, 0, 0 },
    [RPC_GET_EXTERNAL_EVENT_DEF] = { LH "GetExternalEventDef", "GetExternalEventDef", "get_def", get_external_event_def, 0, 0 },
    [RPC_DELETE_EXTERNAL_EVENT_DEF] = { LH "DeleteExternalEventDef", "DeleteExternalEventDef", "delete_def", delete_external_event_def, 0, 0 },
    [RPC_SEARCH_EXTERNAL_EVENT_DEF] = { LH "SearchExternalEventDef", "SearchExternalEventDef", "search_defs", search_external_event_def, 0, 0 },
    [RPC_START_WAITING] = { DEV "StartWaiting", "DevServer.StartWaiting", "start_waiting", start_waiting, 0, 0 },
    [RPC_STOP_WAITING] = { DEV "StopWaiting", "DevServer.StopWaiting", "stop_waiting", stop_waiting, 0, 0 },
};

void handlers_call(lh_db *db, lh_rpc rpc, const uint8_t *req, size_t len, arena *a, lh_reply *out)
{
    if ((unsigned)rpc >= RPC_COUNT) FAIL(out, GRPC_STATUS_UNIMPLEMENTED, MSG_NO_METHOD_PREFIX);
    lh_methods[rpc].handler(db, req, len, a, out);
}
