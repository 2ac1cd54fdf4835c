/* The canonical gRPC status names, indexed by code (grpc/status.h): the one table for the
 * module's error objects (error.c), the dev server (devserver/status.c) and the specs' gRPC
 * probe (spec/support/grpc_probe.c). The Lua side asks the module (core.status_name). */
#ifndef LH_STATUS_NAMES_H
#define LH_STATUS_NAMES_H

static const char *const lh_status_names[] = {
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
  "UNAUTHENTICATED",
};

#define LH_STATUS_COUNT ((int)(sizeof lh_status_names / sizeof lh_status_names[0]))

#endif
