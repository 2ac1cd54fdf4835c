/* status.h: gRPC status names and the fixed messages the LittleHorse server sends. */
#ifndef LHDS_STATUS_H
#define LHDS_STATUS_H

#include <grpc/status.h>

const char *status_name(grpc_status_code code);   /* "OK", "NOT_FOUND", ... */

#define MSG_BAD_PROTOBUF     "Invalid protobuf byte sequence"
#define MSG_NO_REQUEST       "Half-closed without a request"
#define MSG_EVENT_EXISTS     "ExternalEvent already exists"
#define MSG_NOT_FOUND        "Requested object was not found."
#define MSG_BAD_DEF_NAME     "ExternalEventDefName must be a valid hostname"
#define MSG_NO_DEF_PREFIX    "No ExternalEventDef named "          /* + name (PutExternalEvent) */
#define MSG_DEF_NOT_FOUND    "Couldn't find ExternalEventDef "      /* + name (GetExternalEventDef) */
#define MSG_DELETE_DEF_NOT_FOUND "Couldn't find provided ExternalEventDefModel" /* DeleteExternalEventDef */
#define MSG_BAD_TYPE_EVENT   "Invalid type of content for event. Check the return type of ExternalEventDef %s: %s"
#define MSG_BAD_TYPE_CORRELATED "Invalid type of content for event: %s: %s"  /* PutCorrelatedEvent */
#define MSG_BAD_CORRELATION_KEY "CorrelatedEvent keys cannot contain '/' or '~'"
#define MSG_CORRELATED_NO_DEF "Could not find specified ExternalEventDef"
#define MSG_CORRELATED_DISABLED "Specified ExternalEventDef does not have CorrelatedEvent enabled"
#define MSG_CORRELATED_EXISTS "Correlated Event with key %s already exists!"
#define MSG_SEARCH_NO_DEF    "Missing required argument: ExternalEventDefId."
#define MSG_SEARCH_UNKNOWN_DEF "ExternalEventDef \"%s\" does not exist."
#define MSG_WAITING_NO_WF_RUN "lh-devserver: node_run_id.wf_run_id.id is required"  /* StartWaiting, StopWaiting */
#define MSG_INTERNAL         "An unexpected internal error occurred. Please contact support for assistance."
#define MSG_NO_METHOD_PREFIX "Method not found: "    /* + service/method, as grpc-java says */
#define MSG_OUT_OF_MEMORY    "lh-devserver: out of memory"
#define MSG_RNG_FAILED       "lh-devserver: could not read the OS random generator"

#endif
