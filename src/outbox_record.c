#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include "pbwire.h"
#include "outbox_store.h"
#include "outbox_record.h"

/* One field of a message: its number, wire type, and (for length-delimited ones) its bytes. */
typedef struct field { uint32_t num; int wt; const uint8_t *data; size_t len; } field;

/* The next field at *pp; 0 at the end, -1 when the bytes do not parse. */
static int next_field(const uint8_t **pp, const uint8_t *end, field *f) {
  if (*pp >= end) return 0;
  uint64_t tag, v;
  if (!lh_pb_read_varint(pp, end, &tag)) return -1;
  f->num = (uint32_t)(tag >> 3);
  f->wt = (int)(tag & 7);
  f->data = NULL;
  f->len = 0;
  switch (f->wt) {
  case 0: return lh_pb_read_varint(pp, end, &v) ? 1 : -1;
  case 1: if (end - *pp < 8) return -1; *pp += 8; return 1;
  case 5: if (end - *pp < 4) return -1; *pp += 4; return 1;
  case 2:
    if (!lh_pb_read_varint(pp, end, &v) || v > (uint64_t)(end - *pp)) return -1;
    f->data = *pp;
    f->len = (size_t)v;
    *pp += v;
    return 1;
  default: return -1;
  }
}

/* ExternalEventDefId { string name = 1; } */
static int def_name(const field *f, ob_fields *out) {
  const uint8_t *p = f->data, *end = f->data + f->len;
  field g;
  int r;
  while ((r = next_field(&p, end, &g)) > 0)
    if (g.num == 1 && g.wt == 2) { out->def = (const char *)g.data; out->def_len = g.len; }
  return r == 0;
}

int ob_read_request(int kind, const char *bytes, size_t len, ob_fields *out) {
  memset(out, 0, sizeof *out);
  const uint8_t *p = (const uint8_t *)bytes, *end = p + len;
  field f;
  int r;
  while ((r = next_field(&p, end, &f)) > 0) {
    if (f.wt != 2) continue;
    if (kind == OB_KIND_EVENT) {
      /* PutExternalEventRequest { WfRunId wf_run_id = 1; ExternalEventDefId external_event_def_id = 2;
       *   string guid = 3; ... } */
      if (f.num == 1) { out->wf = f.data; out->wf_len = f.len; }
      else if (f.num == 2 && !def_name(&f, out)) return 0;
      else if (f.num == 3) { out->guid = (const char *)f.data; out->guid_len = f.len; }
    } else {
      /* PutCorrelatedEventRequest { string key = 1; ExternalEventDefId external_event_def_id = 2; ... } */
      if (f.num == 1) { out->key = (const char *)f.data; out->key_len = f.len; }
      else if (f.num == 2 && !def_name(&f, out)) return 0;
    }
  }
  return r == 0;
}

/* WfRunId { string id = 1; WfRunId parent_wf_run_id = 2; } */
size_t ob_format_wf_run_id(const uint8_t *wf, size_t wf_len, char *out) {
  const uint8_t *p = wf, *end = wf + wf_len, *id = NULL, *parent = NULL;
  size_t id_len = 0, parent_len = 0, n = 0;
  field f;
  while (next_field(&p, end, &f) > 0) {
    if (f.num == 1 && f.wt == 2) { id = f.data; id_len = f.len; }
    else if (f.num == 2 && f.wt == 2) { parent = f.data; parent_len = f.len; }
  }
  if (parent) {
    n = ob_format_wf_run_id(parent, parent_len, out);
    out[n++] = '_';
  }
  if (id) memcpy(out + n, id, id_len);
  n += id_len;
  out[n] = '\0';
  return n;
}

size_t ob_put_guid_field(char *out, const char *guid, size_t guid_len) {
  out[0] = (3 << 3) | 2;
  out[1] = (char)guid_len;
  memcpy(out + 2, guid, guid_len);
  return guid_len + 2;
}

int ob_new_guid(char out[33]) {
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t r = getrandom(b + got, sizeof b - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    got += (size_t)r;
  }
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    out[2 * i] = hex[b[i] >> 4];
    out[2 * i + 1] = hex[b[i] & 15];
  }
  out[32] = '\0';
  return 1;
}
