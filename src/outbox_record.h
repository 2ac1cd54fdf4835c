/* What the outbox keeps beside a packed request, read back from the bytes the packer wrote
 * (so the columns are exactly what is sent): the guid, the WfRunId, the def name and the
 * correlation key. Also the guid the outbox adds to a PutExternalEventRequest that has none. */
#ifndef LH_OUTBOX_RECORD_H
#define LH_OUTBOX_RECORD_H

#include <stddef.h>
#include <stdint.h>

typedef struct ob_fields {
  const char *guid, *def, *key; /* into the bytes; NULL when absent */
  size_t guid_len, def_len, key_len;
  const uint8_t *wf;            /* the WfRunId message, or NULL */
  size_t wf_len;
} ob_fields;

/* Read a PutExternalEventRequest (kind OB_KIND_EVENT) or PutCorrelatedEventRequest
 * (OB_KIND_CORRELATED); 0 when the bytes do not parse. */
int ob_read_request(int kind, const char *bytes, size_t len, ob_fields *out);

/* The WfRunId message as text, "parent_child" (ids joined with '_', outermost parent first,
 * as LittleHorse writes them); out needs wf_len + 1 bytes. Returns the length. */
size_t ob_format_wf_run_id(const uint8_t *wf, size_t wf_len, char *out);

/* Field 3 (guid) of a PutExternalEventRequest, to append to a request that has none: writes
 * the tag, length and guid at out (room for guid_len + 2 bytes, guid_len < 128). */
size_t ob_put_guid_field(char *out, const char *guid, size_t guid_len);

/* 32 lowercase hex characters of 128 random bits (what lh.new_guid() makes) into out[33]. */
int ob_new_guid(char out[33]);

#endif
