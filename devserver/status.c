/* status.c: see status.h. */
#include "status.h"
#include "../src/status_names.h"

const char *status_name(grpc_status_code code)
{
    if ((int)code >= 0 && (int)code < LH_STATUS_COUNT) return lh_status_names[code];
    return "UNKNOWN_CODE";
}
