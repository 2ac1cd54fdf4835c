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
#define MSG_NO_METHOD_PREFIX "Method not found: "    /* + service/method, as grpc-java says */
#define MSG_OUT_OF_MEMORY    "lh-devserver: out of memory"
#define MSG_RNG_FAILED       "lh-devserver: could not read the OS random generator"

#endif
