/* The outbox's file: an SQLite database (WAL mode) of records waiting for delivery and of
 * dead letters, with counters. Pure C, no Lua; one store is used by one thread at a time
 * (the outbox's writer thread, outbox_writer.c). Several processes may open the same file:
 * every change runs in an IMMEDIATE transaction, and records being delivered are leased to
 * their process (lease owner and end), so a killed process's records come back when the lease
 * ends.
 *
 * The record layout is versioned (PRAGMA user_version); a file of a newer layout than
 * OB_LAYOUT is refused, and so is a file that is not an outbox or fails SQLite's quick_check at
 * open. A refused file is left exactly as it was. Layouts: 1, records of ExternalEvents only;
 * 2, the same tables, records of CorrelatedEvents too (kind OB_KIND_CORRELATED, whose request
 * an older version would send as a PutExternalEventRequest); 3, the same tables, pending records
 * held back behind an earlier pending record of their order key (due_at = OB_HELD, which an
 * older version would never send). A new file starts at layout 1 and becomes layout 2 in the
 * transaction that adds its first CorrelatedEvent, and 3 in the one that first holds a record
 * back, so a file that never holds such records stays readable by older versions; 4, records
 * posted together also stored several to a row (a block: see OB_BLOCK_MIN), which an older
 * version would not see, from the transaction that stores the first block. */
#ifndef LH_OUTBOX_STORE_H
#define LH_OUTBOX_STORE_H

#include <stddef.h>
#include <stdint.h>

#define OB_LAYOUT 4            /* the newest layout this version reads and writes */
#define OB_LAYOUT_EVENTS 1     /* a file that holds ExternalEvents only */
#define OB_LAYOUT_CORRELATED 2 /* ... and CorrelatedEvents */
#define OB_LAYOUT_HELD 3       /* ... and records held back by their order (OB_HELD) */
#define OB_LAYOUT_BLOCKS 4     /* ... and blocks of records */
/* Records without an order key that one transaction adds are stored as blocks of up to
 * OB_BLOCK_MAX records, one row each, when there are at least OB_BLOCK_MIN of them: a block is
 * claimed, leased and removed by one statement each, as long as all its records are delivered
 * together. A record of a block that is anything else (a retry, a dead letter, released,
 * expired) first turns its block back into records of their own, one row each, with the same
 * ids. A block's records have consecutive ids: id .. id + n - 1. */
#define OB_BLOCK_MIN 8
#define OB_BLOCK_MAX 64
/* The due time of a record held back by its order: after every real time, so that a claim's
 * walk of the due index stops before it. */
#define OB_HELD INT64_MAX
#define OB_HELD_SQL "9223372036854775807"
#define OB_APPLICATION_ID 0x4c484f42 /* "LHOB" in the SQLite header: a littlehorse outbox */

/* Record kinds: which RPC delivers the stored request bytes. */
enum { OB_KIND_EVENT = 1, OB_KIND_CORRELATED = 2 };
/* Why a record became a dead letter. */
enum { OB_DEAD_REJECTED = 1, OB_DEAD_EXPIRED = 2 };

/* An error: a gRPC status code (the family callers test) and a message naming the file. */
typedef struct ob_err {
  int code;
  char msg[768];
} ob_err;

typedef struct ob_store ob_store;

typedef struct ob_open_opts {
  int64_t busy_timeout_ms;   /* how long to wait for another process's transaction */
  int check;                 /* run PRAGMA quick_check at open (1) or not (0) */
} ob_open_opts;

/* Open (creating when missing) the file at path; NULL with e set when it cannot be used. */
ob_store *ob_store_open(const char *path, const ob_open_opts *o, ob_err *e);
void ob_store_close(ob_store *s);

/* Limits checked when records are added; 0 = none. */
typedef struct ob_limits {
  int64_t max_rows, max_bytes;   /* over every record in the file, dead letters included */
  int64_t max_age_ms;            /* a record not delivered this long after its post expires */
} ob_limits;

/* One record to add. */
typedef struct ob_new {
  const char *guid;
  int kind;
  const char *wf_run_id, *def_name, *corr_key, *order_key; /* NULL when absent */
  const void *request;
  size_t request_len;
  int64_t created_at;   /* ms since the epoch */
  /* out */
  int64_t id;
  int refused;          /* 1: it would exceed a limit (e holds why); not added */
  ob_err err;
} ob_new;

/* Add n records in one transaction, committed with a full sync (fsync of the WAL). Each is
 * added or refused (over a limit: its own err); returns 1 when the transaction committed,
 * 0 with e set when it did not (then none was added). */
int ob_store_add(ob_store *s, ob_new *recs, size_t n, const ob_limits *lim, ob_err *e);

/* A record claimed for delivery (its request bytes are in its claim's one buffer: see
 * ob_claim_out). */
typedef struct ob_claimed {
  int64_t id;
  int64_t block;        /* the id of the block it came in (its first record's), or 0 */
  int kind, attempts;
  int ordered;          /* it has an order key: its end may make the next record of it due */
  const char *request;
  size_t request_len;
} ob_claimed;

/* The outcome of one delivery attempt. */
enum { OB_ACK_DELIVERED = 1, OB_ACK_DUPLICATE, OB_ACK_RETRY, OB_ACK_DEAD,
       OB_ACK_RELEASE, /* not sent after all: the lease ends now, nothing else changes */
       OB_ACK_BLOCK    /* every record of block `id` (count of them) delivered, duplicates of
                        * them there already */ };
typedef struct ob_ack {
  int64_t id;
  int outcome;
  int64_t count, duplicates; /* OB_ACK_BLOCK */
  int64_t due_at;       /* OB_ACK_RETRY: the next attempt, ms since the epoch */
  const char *code, *message; /* RETRY and DEAD: the last error */
} ob_ack;

typedef struct ob_ack_counts { int64_t delivered, duplicates, retries, dead; } ob_ack_counts;

/* Apply acknowledgements in one transaction (not synced: a lost acknowledgement only makes a
 * record be delivered again, which the server answers ALREADY_EXISTS). Retries and dead
 * letters apply only while owner still holds the record's lease. A record that ends makes the
 * next record of its order key, if held back, due at `now` (epoch ms). */
int ob_store_ack(ob_store *s, const ob_ack *acks, size_t n, const char *owner, int64_t now, ob_ack_counts *out,
                 ob_err *e);

typedef struct ob_claim_in {
  int64_t now, lease_ms;      /* ms since the epoch; the lease's length */
  const char *owner;
  size_t limit;               /* 0: acknowledge only */
  const ob_ack *acks;         /* applied first, in the same transaction */
  size_t nacks;
} ob_claim_in;

typedef struct ob_claim_out {
  ob_claimed *rows;           /* in the order claimed (due time, then id); NULL when none
                               * (freed by ob_claim_out_free) */
  char *bytes;                /* the rows' request bytes, one buffer for all (one malloc, and
                               * one free on the thread that reads them, not one per row) */
  size_t n;
  int64_t next_due;           /* the next time a pending record becomes due (ms), or -1 */
  int64_t pending;            /* pending records after the claim (leased ones too) */
  ob_ack_counts acked;        /* what the acknowledgements changed */
} ob_claim_out;
void ob_claim_out_free(ob_claim_out *out);

/* In one transaction (not synced, like ob_store_ack): apply in->acks, turn records past their
 * expiry into dead letters, and lease up to in->limit due records to in->owner for
 * in->lease_ms: they are not claimed again (here or by another process) until acknowledged or
 * the lease ends. A record whose order_key has an earlier pending record waits for it. Records
 * of their own and whole blocks, the earliest due first (the last block may take the claim
 * past limit). */
int ob_store_claim(ob_store *s, const ob_claim_in *in, ob_claim_out *out, ob_err *e);

typedef struct ob_stats {
  int64_t accepted, delivered, duplicates, retries, dead; /* totals since the file was made */
  int64_t pending, dead_letters, bytes;                  /* now */
  int64_t oldest_pending_ms;                             /* created_at of the oldest, or -1 */
  int64_t next_due_ms;                                   /* the next record to become due, or -1 */
} ob_stats;
int ob_store_stats(ob_store *s, int64_t now, ob_stats *out, ob_err *e);

/* A record as listed or inspected (strings malloc'd; request only when asked for). */
typedef struct ob_record {
  int64_t id, created_at, due_at, expires_at;
  int kind, attempts, state, dead_reason;
  char *guid, *wf_run_id, *def_name, *corr_key, *order_key, *lease_owner, *last_code, *last_message;
  char *request;
  size_t request_len;
} ob_record;
void ob_records_free(ob_record *r, size_t n);

/* Records of one state (0 pending, 1 dead) with id > after, in id order; with_request: the
 * request bytes too. */
int ob_store_list(ob_store *s, int state, int64_t after, size_t limit, int with_request,
                  ob_record **out, size_t *n, ob_err *e);

/* Dead letters back to pending (ids, or every dead letter when ids is NULL): due now, attempts
 * from 0, a new expiry (now + max_age_ms, or none). Returns how many in *count. Synced. */
int ob_store_requeue(ob_store *s, const int64_t *ids, size_t nids, int64_t now, int64_t max_age_ms,
                     int64_t *count, ob_err *e);
/* Delete dead letters (ids, or all when ids is NULL). Synced. */
int ob_store_purge(ob_store *s, const int64_t *ids, size_t nids, int64_t *count, ob_err *e);

#endif
