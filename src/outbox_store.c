#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>
#include <grpc/status.h>
#include "outbox_store.h"

/* Layouts 1 to 3 (outbox_store.h). `due_at` is when a pending record may next be sent: its post
 * time, then its next attempt after a retryable failure; OB_HELD (layout 3) while an earlier
 * pending record of its order key holds it back: it is left out of every claim's walk of
 * records_due until that record ends, which sets its successor's due_at (unhold). While a
 * process delivers it, the record is leased to it (`lease_owner`, `lease_until`): a claim
 * skips it until the lease ends. The lease is kept out of the due index, so a claim rewrites
 * rows but no index entry.
 * `counters` holds one row: totals since the file was made and the gauges the limits need,
 * kept in step by the same transactions that change the records. */
/* The expiry sweep's index (see expire), made by check_or_create in every file it opens, new or
 * not: an index changes no record, so the layout stays, and SQLite keeps it up to date in every
 * version. */
#define EXPIRY_INDEX \
  "CREATE INDEX IF NOT EXISTS records_expiry ON records (expires_at) WHERE state = 0 AND expires_at IS NOT NULL"

/* The id past every record, and the reserved row's (see reserve_ids), which no record ever had
 * (`+state`: the walk from the highest rowid); Q_NEXT_ID adds the blocks. */
#define NEXT_ID_OF_RECORDS \
  "coalesce((SELECT id FROM records WHERE +state < 2 ORDER BY id DESC LIMIT 1), 0) + 1," \
  " coalesce((SELECT id FROM records WHERE state = 2), 0)"

static const char *const SCHEMA =
  "CREATE TABLE records ("
  "  id INTEGER PRIMARY KEY,"
  "  guid TEXT NOT NULL,"
  "  kind INTEGER NOT NULL,"
  "  wf_run_id TEXT, def_name TEXT NOT NULL, corr_key TEXT, order_key TEXT,"
  "  request BLOB NOT NULL,"
  "  created_at INTEGER NOT NULL,"
  "  expires_at INTEGER,"
  "  attempts INTEGER NOT NULL DEFAULT 0,"
  "  due_at INTEGER NOT NULL,"
  "  state INTEGER NOT NULL DEFAULT 0,"       /* 0 pending, 1 dead letter, 2 reserved ids (see reserve_ids) */
  "  dead_reason INTEGER,"
  "  lease_owner TEXT,"
  "  lease_until INTEGER NOT NULL DEFAULT 0,"
  "  last_code TEXT, last_message TEXT);"
  "CREATE INDEX records_due ON records (state, due_at);"
  "CREATE INDEX records_order ON records (order_key, id) WHERE order_key IS NOT NULL;"
  "CREATE TABLE counters ("
  "  id INTEGER PRIMARY KEY CHECK (id = 1),"
  "  accepted INTEGER NOT NULL, delivered INTEGER NOT NULL, duplicates INTEGER NOT NULL,"
  "  retries INTEGER NOT NULL, dead INTEGER NOT NULL,"
  "  pending_rows INTEGER NOT NULL, dead_rows INTEGER NOT NULL, bytes INTEGER NOT NULL);"
  "INSERT INTO counters VALUES (1, 0, 0, 0, 0, 0, 0, 0, 0);";

enum {
  Q_BEGIN, Q_COMMIT, Q_ROLLBACK, Q_SYNC_FULL, Q_SYNC_NORMAL,
  Q_COUNTERS, Q_ADD_COUNTERS, Q_INSERT,
  Q_CLAIM, Q_LEASE, Q_NEXT_DUE, Q_EXPIRE,
  Q_ACKED, Q_DELETE, Q_RETRY, Q_DEAD, Q_RELEASE,
  Q_OLDEST, Q_OLDEST_BY_STATE,
  Q_KEY_PENDING, Q_UNHOLD, Q_RUN_KEYS, Q_ORDER_KEY,
  Q_LAYOUT, Q_NEXT_ID_RECORDS, Q_NEXT_ID, Q_BLOCK_INSERT, Q_BLOCK_DATA_INSERT, Q_CLAIM_BLOCKS, Q_BLOCK_LEASE,
  Q_BLOCK_NEXT_DUE, Q_BLOCK_EXPIRED, Q_BLOCK_OF, Q_BLOCK_READ, Q_INSERT_FULL, Q_BLOCK_INFO, Q_BLOCK_DELETE,
  Q_BLOCK_DATA_DELETE, Q_BLOCK_OLDEST, Q_BLOCK_PAGE, Q_UNRESERVE, Q_RESERVE,
  Q_COUNT
};

static const char *const SQL[Q_COUNT] = {
  [Q_BEGIN] = "BEGIN IMMEDIATE",
  [Q_COMMIT] = "COMMIT",
  [Q_ROLLBACK] = "ROLLBACK",
  [Q_SYNC_FULL] = "PRAGMA synchronous = FULL",
  [Q_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
  [Q_COUNTERS] = "SELECT pending_rows, dead_rows, bytes, accepted, delivered, duplicates, retries, dead FROM counters WHERE id = 1",
  [Q_ADD_COUNTERS] = "UPDATE counters SET accepted = accepted + ?1, delivered = delivered + ?2, duplicates = duplicates + ?3,"
                     " retries = retries + ?4, dead = dead + ?5, pending_rows = pending_rows + ?6,"
                     " dead_rows = dead_rows + ?7, bytes = bytes + ?8 WHERE id = 1",
  /* ?11: the id (see reserve_ids) */
  [Q_INSERT] = "INSERT INTO records (guid, kind, wf_run_id, def_name, corr_key, order_key, request, created_at,"
               " expires_at, due_at, id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
  /* Due, pending, not leased, and first of its order key among pending records (held records
   * are past the walk's end; the order check is for records of older layouts, and for a
   * requeued record ahead of a due one). (A plain SELECT, then one UPDATE per run of ids: an
   * UPDATE ... WHERE id IN (SELECT ...) RETURNING builds ephemeral tables whose memory, freed
   * at every claim, made glibc return it to the kernel and fault it in again, with TLB
   * shootdowns: a third of a claim's cost.) */
  [Q_CLAIM] = "SELECT id, kind, request, attempts, order_key IS NOT NULL, due_at FROM records AS r"
              " WHERE state = 0 AND due_at <= ?1 AND lease_until <= ?1"
              "  AND (order_key IS NULL OR NOT EXISTS (SELECT 1 FROM records AS p"
              "       WHERE p.order_key = r.order_key AND p.id < r.id AND p.state = 0))"
              " ORDER BY due_at, id LIMIT ?2",
  /* Leases and removals go by runs of consecutive ids (see id_runs): one statement per run,
   * not per record, and every id of a run is one of the records meant. OR FAIL, here and in
   * every UPDATE that changes many rows: a plain UPDATE of a NOT NULL column may abort halfway,
   * so SQLite first copies each page it changes into a statement journal, to undo just that
   * statement. Every transaction here is rolled back whole on any error, so that copy is never
   * needed; OR FAIL tells SQLite so. */
  [Q_LEASE] = "UPDATE OR FAIL records SET lease_owner = ?3, lease_until = ?4 WHERE id BETWEEN ?1 AND ?2",
  /* the next record that becomes due (records due now are leased, or wait for their order) */
  [Q_NEXT_DUE] = "SELECT min(due_at) FROM records WHERE state = 0 AND due_at > ?1 AND due_at < " OB_HELD_SQL,
  /* Not while a lease on it runs: that delivery's outcome decides. (INDEXED BY: without
   * statistics the planner would walk records_due, every pending record, once a second.) */
  [Q_EXPIRE] = "UPDATE OR FAIL records INDEXED BY records_expiry"
               " SET state = 1, dead_reason = 2, lease_owner = NULL, lease_until = 0,"
               " last_code = coalesce(last_code, 'DEADLINE_EXCEEDED'),"
               " last_message = 'expired: not delivered before its max_age ran out' ||"
               "   coalesce(' (last error: ' || last_code || ': ' || last_message || ')', '')"
               " WHERE state = 0 AND expires_at IS NOT NULL AND expires_at <= ?1 AND lease_until <= ?1"
               " RETURNING order_key",
  /* What removing a run of delivered records changes in the counters, and how many of them are
   * pending records with an order key (whose keys are read before the removal, see run_keys),
   * then the removal. (Not one DELETE ... RETURNING: RETURNING collects its rows in an
   * ephemeral table built and freed at every execution, which cost more than the DELETE.) */
  [Q_ACKED] = "SELECT count(*), coalesce(sum(state), 0), coalesce(sum(length(request)), 0),"
              " coalesce(sum(order_key IS NOT NULL AND state = 0), 0) FROM records WHERE id BETWEEN ?1 AND ?2 AND state < 2",
  [Q_DELETE] = "DELETE FROM records WHERE id BETWEEN ?1 AND ?2 AND state < 2",
  [Q_RETRY] = "UPDATE records SET attempts = attempts + 1, due_at = ?2, lease_owner = NULL, lease_until = 0, last_code = ?3,"
              " last_message = ?4 WHERE id = ?1 AND state = 0 AND lease_owner = ?5",
  [Q_DEAD] = "UPDATE records SET attempts = attempts + 1, state = 1, dead_reason = 1, lease_owner = NULL, lease_until = 0,"
             " last_code = ?2, last_message = ?3 WHERE id = ?1 AND state = 0 AND lease_owner = ?4",
  [Q_RELEASE] = "UPDATE records SET lease_owner = NULL, lease_until = 0 WHERE id = ?1 AND state = 0 AND lease_owner = ?2",
  /* The oldest pending record is the first pending one in id order. Two ways to find it (see
   * by_id_order): walking the table in id order (`+state` keeps the planner off records_due)
   * steps over the dead letters with lower ids; records_due reads every pending record and
   * sorts them. */
  [Q_OLDEST] = "SELECT created_at FROM records WHERE +state = 0 ORDER BY id LIMIT 1",
  [Q_OLDEST_BY_STATE] = "SELECT created_at FROM records WHERE state = 0 ORDER BY id LIMIT 1",
  /* Order keys (see due_at above): whether a key has a pending record (a new record of it is
   * held); the next pending record of a key, unheld when the one before it ends; the order
   * keys of a run's pending records (before they are removed); one record's key. `+state`
   * keeps key lookups on records_order whatever the planner guesses (through records_due, a
   * key's first record would walk every pending record). A record unheld is due from its post
   * time, as it would have been unordered, not behind every record due meanwhile. */
  [Q_KEY_PENDING] = "SELECT 1 FROM records WHERE order_key = ?1 AND +state = 0 LIMIT 1",
  [Q_UNHOLD] = "UPDATE records SET due_at = min(created_at, ?2) WHERE due_at = " OB_HELD_SQL " AND id ="
               " (SELECT id FROM records WHERE order_key = ?1 AND +state = 0 ORDER BY id LIMIT 1)",
  [Q_RUN_KEYS] = "SELECT DISTINCT order_key FROM records WHERE id BETWEEN ?1 AND ?2 AND order_key IS NOT NULL AND +state = 0",
  [Q_ORDER_KEY] = "SELECT order_key FROM records WHERE id = ?1",
  /* Blocks (layout 4; these statements are prepared only in a file that has them) */
  [Q_LAYOUT] = "PRAGMA user_version",
  /* The id of the next record: past every record (and block), and at least the reserved row's */
  [Q_NEXT_ID_RECORDS] = "SELECT max(" NEXT_ID_OF_RECORDS ")",
  [Q_NEXT_ID] = "SELECT max(" NEXT_ID_OF_RECORDS ", coalesce((SELECT id + n FROM blocks ORDER BY id DESC LIMIT 1), 0))",
  [Q_BLOCK_INSERT] = "INSERT INTO blocks (id, n, bytes, created_at, expires_at, due_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
  [Q_BLOCK_DATA_INSERT] = "INSERT INTO block_data (id, data) VALUES (?1, ?2)",
  [Q_CLAIM_BLOCKS] = "SELECT b.id, b.n, d.data, b.due_at FROM blocks AS b LEFT JOIN block_data AS d ON d.id = b.id"
                     " WHERE b.due_at <= ?1 AND b.lease_until <= ?1 ORDER BY b.due_at, b.id",
  [Q_BLOCK_LEASE] = "UPDATE OR FAIL blocks SET lease_owner = ?2, lease_until = ?3 WHERE id = ?1",
  [Q_BLOCK_NEXT_DUE] = "SELECT min(due_at) FROM blocks WHERE due_at > ?1",
  [Q_BLOCK_EXPIRED] = "SELECT id FROM blocks INDEXED BY blocks_expiry"
                      " WHERE expires_at IS NOT NULL AND expires_at <= ?1 AND lease_until <= ?1",
  [Q_BLOCK_OF] = "SELECT id, n FROM blocks WHERE id <= ?1 ORDER BY id DESC LIMIT 1",
  /* (LEFT JOIN: a block without its data is a damaged file, reported, not a block skipped) */
  [Q_BLOCK_READ] = "SELECT b.n, b.due_at, b.lease_owner, b.lease_until, d.data FROM blocks AS b"
                   " LEFT JOIN block_data AS d ON d.id = b.id WHERE b.id = ?1",
  [Q_INSERT_FULL] = "INSERT INTO records (id, guid, kind, wf_run_id, def_name, corr_key, request, created_at,"
                    " expires_at, due_at, lease_owner, lease_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
  [Q_BLOCK_INFO] = "SELECT n, bytes FROM blocks WHERE id = ?1",
  [Q_BLOCK_DELETE] = "DELETE FROM blocks WHERE id = ?1",
  [Q_BLOCK_DATA_DELETE] = "DELETE FROM block_data WHERE id = ?1",
  /* ids only grow (the next is past every record and block), so the first block is the oldest */
  [Q_BLOCK_OLDEST] = "SELECT created_at FROM blocks ORDER BY id LIMIT 1",
  [Q_BLOCK_PAGE] = "SELECT b.id, b.n, b.due_at, b.lease_owner, d.data FROM blocks AS b LEFT JOIN block_data AS d"
                   " ON d.id = b.id WHERE b.id > ?1 ORDER BY b.id",
  /* A row of state 2 past every block (see reserve_ids): no query of any version reads it. */
  [Q_UNRESERVE] = "DELETE FROM records WHERE state = 2",
  [Q_RESERVE] = "INSERT INTO records (id, guid, kind, def_name, request, created_at, due_at, state)"
                " VALUES (?1, '', 0, '', x'', 0, 0, 2)",
};

/* The tables of blocks (layout 4), made by the transaction that stores the first block. A
 * block's row holds what changes (its lease), block_data what does not (its records, see
 * block_put), so that a lease does not rewrite the records. */
static const char *const BLOCK_SCHEMA =
  "CREATE TABLE IF NOT EXISTS blocks ("
  "  id INTEGER PRIMARY KEY,"                  /* the id of its first record */
  "  n INTEGER NOT NULL,"                      /* its records: ids id .. id + n - 1 */
  "  bytes INTEGER NOT NULL,"                  /* their request bytes */
  "  created_at INTEGER NOT NULL,"             /* the earliest post time of its records */
  "  expires_at INTEGER,"                      /* the earliest expiry of its records */
  "  due_at INTEGER NOT NULL,"
  "  lease_owner TEXT, lease_until INTEGER NOT NULL DEFAULT 0);"
  "CREATE INDEX IF NOT EXISTS blocks_due ON blocks (due_at);"
  "CREATE INDEX IF NOT EXISTS blocks_expiry ON blocks (expires_at) WHERE expires_at IS NOT NULL;"
  "CREATE TABLE IF NOT EXISTS block_data (id INTEGER PRIMARY KEY, data BLOB NOT NULL);";

struct ob_store {
  sqlite3 *db;
  sqlite3_stmt *q[Q_COUNT];
  char *path;
  int64_t last_sweep;   /* when expired records were last looked for (ms) */
  int sync_full;        /* the connection's synchronous setting */
  int64_t busy_timeout_ns, busy_since_ns; /* see on_busy */
  uint32_t jitter;      /* xorshift state for on_busy's delays */
  int64_t layout;       /* the file's layout when last read (it only grows) */
};

/* ---- waiting for another process's lock ---- */

static int64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* SQLite's own handler (sqlite3_busy_timeout) sleeps 1, 2, 5, 10 ... up to 100 ms between
 * tries, so with two processes (two nginx workers) taking turns on one file a post waited up
 * to a second for locks held well under a millisecond each. This one tries again after
 * 50 us, doubling to at most 1.6 ms, each delay jittered by up to half so that waiting
 * writers do not retry in step, until busy_timeout has passed. It runs on the writer thread. */
static int on_busy(void *ud, int count) {
  ob_store *s = ud;
  int64_t now = monotonic_ns();
  if (count == 0) s->busy_since_ns = now;
  if (now - s->busy_since_ns >= s->busy_timeout_ns) return 0;
  int64_t delay = 50000ll << (count < 5 ? count : 5);
  s->jitter ^= s->jitter << 13;
  s->jitter ^= s->jitter >> 17;
  s->jitter ^= s->jitter << 5;
  delay -= (int64_t)(s->jitter % (uint32_t)(delay / 2));
  struct timespec ts = { 0, (long)delay };
  nanosleep(&ts, NULL);
  return 1;
}

/* ---- errors ---- */

static void set_err(ob_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(ob_err *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  e->code = code;
}

/* The gRPC status family of an SQLite result code. */
static int status_of(int rc) {
  switch (rc & 0xff) {
  case SQLITE_FULL:
  case SQLITE_NOMEM:
  case SQLITE_TOOBIG: return GRPC_STATUS_RESOURCE_EXHAUSTED;
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return GRPC_STATUS_UNAVAILABLE;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB: return GRPC_STATUS_DATA_LOSS;
  case SQLITE_READONLY:
  case SQLITE_CANTOPEN:
  case SQLITE_PERM:
  case SQLITE_AUTH: return GRPC_STATUS_FAILED_PRECONDITION;
  default: return GRPC_STATUS_INTERNAL;
  }
}

static const char *advice(int rc) {
  if (rc == SQLITE_IOERR_WRITE) return " (a write failed: the disk may be full, or a file size limit reached)";
  if (rc == SQLITE_IOERR_FSYNC || rc == SQLITE_IOERR_DIR_FSYNC) return " (syncing to disk failed)";
  switch (rc & 0xff) {
  case SQLITE_FULL: return " (the disk is full)";
  case SQLITE_BUSY: return " (another process held the file longer than busy_timeout)";
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB: return " (the file is damaged; it was left as it is)";
  case SQLITE_READONLY: return " (the file or its directory is read-only)";
  case SQLITE_CANTOPEN: return " (check that the directory exists and is writable)";
  default: return "";
  }
}

static int db_err(ob_store *s, ob_err *e, int rc, const char *what) {
  const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
  int sys = s->db && (rc & 0xff) == SQLITE_IOERR ? sqlite3_system_errno(s->db) : 0;
  if (sys) set_err(e, status_of(rc), "outbox %s: %s: %s (%s)%s", s->path, what, msg, strerror(sys), advice(rc));
  else set_err(e, status_of(rc), "outbox %s: %s: %s%s", s->path, what, msg, advice(rc));
  return 0;
}

/* ---- statements ---- */

static int stmt(ob_store *s, int q, sqlite3_stmt **out, ob_err *e) {
  if (!s->q[q]) {
    int rc = sqlite3_prepare_v3(s->db, SQL[q], -1, SQLITE_PREPARE_PERSISTENT, &s->q[q], NULL);
    if (rc != SQLITE_OK) return db_err(s, e, rc, "preparing a statement");
  }
  *out = s->q[q];
  return 1;
}

/* Run a statement that returns no rows (or whose rows are not wanted). */
static int exec_q(ob_store *s, int q, ob_err *e, const char *what) {
  sqlite3_stmt *st = NULL;
  if (!stmt(s, q, &st, e)) return 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
  if (rc != SQLITE_DONE) db_err(s, e, rc, what); /* before the reset, which may clear errno */
  sqlite3_reset(st);
  return rc == SQLITE_DONE;
}

static int set_sync(ob_store *s, int full, ob_err *e) {
  if (s->sync_full == full) return 1;
  if (!exec_q(s, full ? Q_SYNC_FULL : Q_SYNC_NORMAL, e, "setting synchronous")) return 0;
  s->sync_full = full;
  return 1;
}

/* BEGIN IMMEDIATE (the write lock now, waiting busy_timeout for another process), with the
 * sync level the transaction's COMMIT uses. */
static int begin(ob_store *s, int full, ob_err *e) {
  if (!set_sync(s, full, e)) return 0;
  return exec_q(s, Q_BEGIN, e, "starting a transaction");
}

static void rollback(ob_store *s) {
  ob_err ignored;
  if (!sqlite3_get_autocommit(s->db)) exec_q(s, Q_ROLLBACK, &ignored, "rollback");
}

static int commit(ob_store *s, ob_err *e) {
  if (exec_q(s, Q_COMMIT, e, "committing")) return 1;
  rollback(s); /* a failed COMMIT may leave the transaction open: nothing of it stays */
  return 0;
}

typedef struct counters { int64_t pending, dead_rows, bytes, accepted, delivered, duplicates, retries, dead; } counters;

static int read_counters(ob_store *s, counters *c, ob_err *e) {
  sqlite3_stmt *st = NULL;
  if (!stmt(s, Q_COUNTERS, &st, e)) return 0;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    c->pending = sqlite3_column_int64(st, 0);
    c->dead_rows = sqlite3_column_int64(st, 1);
    c->bytes = sqlite3_column_int64(st, 2);
    c->accepted = sqlite3_column_int64(st, 3);
    c->delivered = sqlite3_column_int64(st, 4);
    c->duplicates = sqlite3_column_int64(st, 5);
    c->retries = sqlite3_column_int64(st, 6);
    c->dead = sqlite3_column_int64(st, 7);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_ROW) {
    if (rc == SQLITE_DONE) { set_err(e, GRPC_STATUS_DATA_LOSS, "outbox %s: its counters row is missing (the file was changed by something else)", s->path); return 0; }
    return db_err(s, e, rc, "reading the counters");
  }
  return 1;
}

/* Whether to find records of one state in id order by walking the table in id order, which
 * reads the other state's records on the way, rather than through records_due, which reads
 * every record of the state and sorts them. A record walked over costs about five read through
 * the index (whole rows against index entries): 20,000 dead letters walked over took 8-11 ms,
 * 60,000 pending records through the index 4.7 ms. Either way alone was slow for some file:
 * the index took 22 ms for stats() with 200,000 pending records. */
static int by_id_order(const counters *c, int state) {
  int64_t other = state == 0 ? c->dead_rows : c->pending, mine = state == 0 ? c->pending : c->dead_rows;
  return other * 5 < mine;
}

static int add_counters(ob_store *s, const counters *d, ob_err *e) {
  sqlite3_stmt *st = NULL;
  if (!stmt(s, Q_ADD_COUNTERS, &st, e)) return 0;
  sqlite3_bind_int64(st, 1, d->accepted);
  sqlite3_bind_int64(st, 2, d->delivered);
  sqlite3_bind_int64(st, 3, d->duplicates);
  sqlite3_bind_int64(st, 4, d->retries);
  sqlite3_bind_int64(st, 5, d->dead);
  sqlite3_bind_int64(st, 6, d->pending);
  sqlite3_bind_int64(st, 7, d->dead_rows);
  sqlite3_bind_int64(st, 8, d->bytes);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return db_err(s, e, rc, "updating the counters");
  return 1;
}

/* ---- open ---- */

static int pragma_int(ob_store *s, const char *sql, int64_t *out, ob_err *e) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return db_err(s, e, rc, "reading the file's header");
  rc = sqlite3_step(st);
  *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_err(s, e, rc, "reading the file's header");
  return 1;
}

static int exec_sql(ob_store *s, const char *sql, ob_err *e, const char *what) {
  char *msg = NULL;
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
  sqlite3_free(msg);
  if (rc != SQLITE_OK) return db_err(s, e, rc, what);
  return 1;
}

/* PRAGMA quick_check: the first line is "ok" for a sound file. */
static int quick_check(ob_store *s, ob_err *e) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL);
  if (rc != SQLITE_OK) return db_err(s, e, rc, "checking the file");
  rc = sqlite3_step(st);
  int ok = 1;
  if (rc == SQLITE_ROW) {
    const char *line = (const char *)sqlite3_column_text(st, 0);
    if (!line || strcmp(line, "ok") != 0) {
      set_err(e, GRPC_STATUS_DATA_LOSS, "outbox %s is corrupt (SQLite quick_check: %s); it was left as it is: "
              "move it aside, and recover what it holds with the sqlite3 tool's .recover",
              s->path, line ? line : "?");
      ok = 0;
    }
  } else {
    ok = db_err(s, e, rc, "checking the file");
  }
  sqlite3_finalize(st);
  return ok;
}

/* A held record is released by the end of the record before it, in the same transaction. A
 * process of an older version that opened the file before it became layout 3 ends records
 * without releasing anything: at open, the first pending record of each order key, if held,
 * becomes due (an index seek when nothing is held). `now` in ms from SQLite's clock, the
 * system's real-time clock like ob_now_ms. */
static const char *const RELEASE_ORPHANS =
  "UPDATE OR FAIL records SET due_at = min(created_at, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))"
  " WHERE state = 0 AND due_at = " OB_HELD_SQL " AND NOT EXISTS (SELECT 1 FROM records AS p"
  " WHERE p.order_key = records.order_key AND p.id < records.id AND +p.state = 0)";

/* At open, in every file (see reserve_ids): the reserved row, for a file that has none yet (one
 * of an older version: its next id past what it holds now), and a trigger that moves it past
 * any record stored beyond it, which only an older version's store can do: SQLite runs the
 * trigger whatever version writes. (This version stores with the reserved row removed, or below
 * it, and the trigger's WHEN is then false.) */
static const char *const RESERVE_AT_OPEN =
  "INSERT INTO records (id, guid, kind, def_name, request, created_at, due_at, state)"
  " SELECT (SELECT coalesce(max(id), 0) + 1 FROM records), '', 0, '', x'', 0, 0, 2"
  " WHERE NOT EXISTS (SELECT 1 FROM records WHERE state = 2);"
  "CREATE TRIGGER IF NOT EXISTS records_ids AFTER INSERT ON records"
  " WHEN NEW.id > (SELECT id FROM records WHERE state = 2)"
  " BEGIN UPDATE records SET id = NEW.id + 1 WHERE state = 2; END;";

/* Create the layout in a new file, or check an existing one. Under the write lock, so two
 * processes opening a new file at once make it once. */
static int check_or_create(ob_store *s, ob_err *e) {
  if (!begin(s, 1, e)) return 0;
  int64_t version, app, tables;
  if (!pragma_int(s, "PRAGMA user_version", &version, e) || !pragma_int(s, "PRAGMA application_id", &app, e) ||
      !pragma_int(s, "SELECT count(*) FROM sqlite_schema", &tables, e)) {
    rollback(s);
    return 0;
  }
  if (app != OB_APPLICATION_ID && (app != 0 || tables != 0)) {
    rollback(s);
    set_err(e, GRPC_STATUS_FAILED_PRECONDITION, "%s is not a littlehorse outbox (an SQLite database of something "
            "else); it was left as it is", s->path);
    return 0;
  }
  if (version > OB_LAYOUT) {
    rollback(s);
    set_err(e, GRPC_STATUS_FAILED_PRECONDITION, "outbox %s was written by a newer version of littlehorse (record "
            "layout %lld; this version reads layout %d); it was left as it is: use the newer version",
            s->path, (long long)version, OB_LAYOUT);
    return 0;
  }
  if (app == 0) {
    char sql[160];
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d;", OB_APPLICATION_ID,
             OB_LAYOUT_EVENTS);
    version = OB_LAYOUT_EVENTS;
    if (!exec_sql(s, SCHEMA, e, "creating the layout") || !exec_sql(s, sql, e, "creating the layout")) {
      rollback(s);
      return 0;
    }
  } else if (version < 1) {
    rollback(s);
    set_err(e, GRPC_STATUS_DATA_LOSS, "outbox %s has no record layout version; it was left as it is", s->path);
    return 0;
  }
  if (!exec_sql(s, EXPIRY_INDEX, e, "adding the expiry index") ||
      !exec_sql(s, RESERVE_AT_OPEN, e, "reserving record ids") || (version >= OB_LAYOUT_HELD && !exec_sql(s, RELEASE_ORPHANS, e, "releasing records held back by order"))) {
    rollback(s);
    return 0;
  }
  s->layout = version;
  return commit(s, e);
}

ob_store *ob_store_open(const char *path, const ob_open_opts *o, ob_err *e) {
  ob_store *s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(path))) {
    free(s);
    set_err(e, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s: out of memory", path);
    return NULL;
  }
  s->sync_full = -1;
  /* NOMUTEX: the connection is only ever used by one thread at a time (the writer). */
  int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    db_err(s, e, rc, "cannot open");
    ob_store_close(s);
    return NULL;
  }
  sqlite3_extended_result_codes(s->db, 1);
  s->busy_timeout_ns = o->busy_timeout_ms > INT64_MAX / 1000000 ? INT64_MAX : o->busy_timeout_ms * 1000000;
  s->jitter = (uint32_t)monotonic_ns() | 1;
  sqlite3_busy_handler(s->db, on_busy, s);
  int ok = 1;
  if (sqlite3_db_readonly(s->db, "main") == 1) {
    set_err(e, GRPC_STATUS_FAILED_PRECONDITION, "outbox %s: the file is read-only; an outbox must be writable", path);
    ok = 0;
  }
  /* WAL: posts append to the log and readers never block the writer; the mode is kept in
   * the file, so every process that opens it agrees. */
  sqlite3_stmt *st = NULL;
  if (ok) {
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    /* Switching a new file to WAL takes an exclusive lock, and SQLite answers BUSY at once,
     * without its busy handler, while another connection opens the same file: wait here, as
     * long as busy_timeout allows. */
    for (int64_t waited = 0; rc == SQLITE_OK;) {
      rc = sqlite3_step(st);
      if ((rc & 0xff) != SQLITE_BUSY || waited >= o->busy_timeout_ms) break;
      sqlite3_reset(st);
      rc = SQLITE_OK;
      int slept = sqlite3_sleep(5);
      waited += slept > 0 ? slept : 5;
    }
    if (rc == SQLITE_ROW) {
      const char *mode = (const char *)sqlite3_column_text(st, 0);
      if (!mode || strcmp(mode, "wal") != 0) {
        set_err(e, GRPC_STATUS_FAILED_PRECONDITION, "outbox %s: cannot use WAL mode (journal mode stays '%s')",
                path, mode ? mode : "?");
        ok = 0;
      }
    } else {
      ok = db_err(s, e, rc, "cannot open");
    }
    sqlite3_finalize(st);
  }
  /* Temporary files (statement journals, RETURNING's and sorters' tables) stay in memory: they
   * are small here (see Q_LEASE), and on disk they would go to SQLite's temporary directory
   * (/var/tmp, /tmp), whose disk is not the outbox's: a full /tmp stopped every claim. */
  if (ok) ok = exec_sql(s, "PRAGMA temp_store = MEMORY", e, "setting up the connection");
  if (ok && o->check) ok = quick_check(s, e);
  if (ok) ok = check_or_create(s, e);
  if (ok) {
    counters c;
    ok = read_counters(s, &c, e);
  }
  if (!ok) {
    ob_store_close(s);
    return NULL;
  }
  return s;
}

void ob_store_close(ob_store *s) {
  if (!s) return;
  for (int i = 0; i < Q_COUNT; i++)
    if (s->q[i]) sqlite3_finalize(s->q[i]);
  if (s->db) sqlite3_close_v2(s->db);
  free(s->path);
  free(s);
}

/* ---- adding records ---- */

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v) {
  if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

/* In the transaction that adds the file's first CorrelatedEvent, the file becomes layout 2, so
 * that an older version, which would send its request as a PutExternalEventRequest, refuses
 * it; in the one that first holds a record back by its order (OB_HELD), layout 3, so that an
 * older version, which would never send it, refuses it. (Another process may have done it
 * already: the header is read under the write lock.) */
static int mark_layout(ob_store *s, int64_t layout, ob_err *e) {
  if (s->layout >= layout) return 1;
  int64_t version;
  if (!pragma_int(s, "PRAGMA user_version", &version, e)) return 0;
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %lld", (long long)layout);
  const char *what = layout == OB_LAYOUT_BLOCKS ? "marking the file as holding blocks of records"
                     : layout == OB_LAYOUT_HELD ? "marking the file as holding records back by order"
                                                : "marking the file as holding CorrelatedEvents";
  return version >= layout || exec_sql(s, sql, e, what);
}

/* After the commit that marked it: the file's layout as this connection knows it. */
static void layout_is(ob_store *s, int64_t layout) {
  if (s->layout < layout) s->layout = layout;
}

static char *dup_bytes(const void *p, size_t n) {
  char *c = malloc(n + 1);
  if (c) {
    if (n) memcpy(c, p, n);
    c[n] = '\0';
  }
  return c;
}

static char *col_text(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? dup_bytes(t, (size_t)sqlite3_column_bytes(st, i)) : NULL;
}

/* ---- blocks (see OB_BLOCK_MIN) ---- */

/* Whether the file has blocks (layout 4 or later), read in the transaction begun: another
 * process may have stored the first block since this one last looked. */
static int has_blocks(ob_store *s, int *out, ob_err *e) {
  if (s->layout < OB_LAYOUT_BLOCKS) {
    sqlite3_stmt *st = NULL;
    if (!stmt(s, Q_LAYOUT, &st, e)) return 0;
    int rc = sqlite3_step(st);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return db_err(s, e, rc, "reading the file's header");
    if (v > s->layout) s->layout = v; /* committed by that process: it stays */
  }
  *out = s->layout >= OB_LAYOUT_BLOCKS;
  return 1;
}

/* The id the next record stored gets (blocks: whether the file has them). */
static int next_id(ob_store *s, int blocks, int64_t *out, ob_err *e) {
  sqlite3_stmt *st = NULL;
  if (!stmt(s, blocks ? Q_NEXT_ID : Q_NEXT_ID_RECORDS, &st, e)) return 0;
  int rc = sqlite3_step(st);
  *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  if (rc != SQLITE_ROW) return db_err(s, e, rc, "reading the last record id");
  return 1;
}

/* A block's records, one after another in block_data: kind (1 byte), created_at and expires_at
 * (8 bytes each, little-endian; -1: none), then guid, wf_run_id, def_name, corr_key and the
 * request bytes, each as a 4-byte length (0xffffffff: none) and that many bytes. */
#define NO_FIELD 0xffffffffu
enum { BF_GUID, BF_WF_RUN_ID, BF_DEF_NAME, BF_CORR_KEY, BF_REQUEST, BF_COUNT };

typedef struct block_rec {
  int kind;
  int64_t created_at, expires_at;
  const char *f[BF_COUNT]; /* NULL: none (not NUL-terminated: see len) */
  size_t len[BF_COUNT];
} block_rec;

static size_t block_rec_size(const ob_new *r) {
  size_t n = 1 + 8 + 8 + 4 * BF_COUNT + strlen(r->guid) + r->request_len;
  const char *t[] = { r->wf_run_id, r->def_name, r->corr_key };
  for (int i = 0; i < 3; i++) n += t[i] ? strlen(t[i]) : 0;
  return n;
}

static unsigned char *put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
  return p + 8;
}

static unsigned char *put_field(unsigned char *p, const void *v, size_t n) {
  uint32_t len = v ? (uint32_t)n : NO_FIELD;
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(len >> (8 * i));
  if (v && n) memcpy(p + 4, v, n);
  return p + 4 + (v ? n : 0);
}

static unsigned char *block_put(unsigned char *p, const ob_new *r, int64_t expires_at) {
  *p++ = (unsigned char)r->kind;
  p = put_u64(p, (uint64_t)r->created_at);
  p = put_u64(p, (uint64_t)expires_at);
  p = put_field(p, r->guid, strlen(r->guid));
  p = put_field(p, r->wf_run_id, r->wf_run_id ? strlen(r->wf_run_id) : 0);
  p = put_field(p, r->def_name, r->def_name ? strlen(r->def_name) : 0);
  p = put_field(p, r->corr_key, r->corr_key ? strlen(r->corr_key) : 0);
  return put_field(p, r->request, r->request_len);
}

/* Reads the record at *pos of data[0..size); 0 when the bytes are not a record (a damaged
 * file: the reader reports DATA_LOSS). */
static int block_get(const unsigned char *data, size_t size, size_t *pos, block_rec *r) {
  size_t p = *pos;
  if (size - p < 17) return 0;
  r->kind = data[p];
  uint64_t c = 0, x = 0;
  for (int i = 7; i >= 0; i--) {
    c = (c << 8) | data[p + 1 + i];
    x = (x << 8) | data[p + 9 + i];
  }
  r->created_at = (int64_t)c;
  r->expires_at = (int64_t)x;
  p += 17;
  for (int f = 0; f < BF_COUNT; f++) {
    if (size - p < 4) return 0;
    uint32_t len = (uint32_t)data[p] | (uint32_t)data[p + 1] << 8 | (uint32_t)data[p + 2] << 16 |
                   (uint32_t)data[p + 3] << 24;
    p += 4;
    if (len == NO_FIELD) {
      r->f[f] = NULL;
      r->len[f] = 0;
      continue;
    }
    if (size - p < len) return 0;
    r->f[f] = (const char *)data + p;
    r->len[f] = len;
    p += len;
  }
  if ((r->kind != OB_KIND_EVENT && r->kind != OB_KIND_CORRELATED) || !r->f[BF_GUID] || !r->f[BF_DEF_NAME] ||
      !r->f[BF_REQUEST])
    return 0;
  *pos = p;
  return 1;
}

static int damaged_block(ob_store *s, int64_t id, ob_err *e) {
  set_err(e, GRPC_STATUS_DATA_LOSS, "outbox %s: the block of records %lld is damaged (the file was changed by "
          "something else); it was left as it is", s->path, (long long)id);
  return 0;
}

/* Stores recs[idx[0..k)] (k <= OB_BLOCK_MAX) as one block whose records get ids first ..
 * first + k - 1. */
static int store_block(ob_store *s, ob_new *recs, const size_t *idx, size_t k, int64_t first, int64_t max_age_ms,
                       ob_err *e) {
  size_t size = 0;
  int64_t bytes = 0, created = INT64_MAX;
  for (size_t i = 0; i < k; i++) {
    size += block_rec_size(&recs[idx[i]]);
    bytes += (int64_t)recs[idx[i]].request_len;
    if (recs[idx[i]].created_at < created) created = recs[idx[i]].created_at;
  }
  unsigned char *data = malloc(size ? size : 1), *p = data;
  if (!data) {
    set_err(e, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s: out of memory", s->path);
    return 0;
  }
  for (size_t i = 0; i < k; i++) {
    ob_new *r = &recs[idx[i]];
    p = block_put(p, r, max_age_ms > 0 ? r->created_at + max_age_ms : -1);
    r->id = first + (int64_t)i;
  }
  sqlite3_stmt *b = NULL, *d = NULL;
  int rc = SQLITE_ERROR;
  if (stmt(s, Q_BLOCK_INSERT, &b, e) && stmt(s, Q_BLOCK_DATA_INSERT, &d, e)) {
    sqlite3_bind_int64(b, 1, first);
    sqlite3_bind_int64(b, 2, (int64_t)k);
    sqlite3_bind_int64(b, 3, bytes);
    sqlite3_bind_int64(b, 4, created);
    if (max_age_ms > 0) sqlite3_bind_int64(b, 5, created + max_age_ms);
    else sqlite3_bind_null(b, 5);
    sqlite3_bind_int64(b, 6, created);
    rc = sqlite3_step(b);
    sqlite3_reset(b);
    if (rc == SQLITE_DONE) {
      sqlite3_bind_int64(d, 1, first);
      sqlite3_bind_blob64(d, 2, data, size, SQLITE_STATIC);
      rc = sqlite3_step(d);
      sqlite3_reset(d);
      sqlite3_clear_bindings(d);
    }
    if (rc != SQLITE_DONE) db_err(s, e, rc, "storing a block of records");
  }
  free(data);
  return rc == SQLITE_DONE;
}

/* Ids are never used twice: a late outcome (of a process whose lease ended, after another
 * delivered the record) names a record that is gone, never a newer one that took its id. So
 * every record gets its id from next_id, and one row of state 2, which no query of any version
 * reads, holds the next id past every id given so far (SQLite alone would give the highest id
 * again once its record is removed). Its rowid also keeps the rowid that an older version (one
 * that had the file open before it became layout 4) gives a record it stores past every
 * block's ids. A transaction that stores records removes it first (Q_UNRESERVE) and puts it
 * back here, past what it stored. */
static int reserve_ids(ob_store *s, int64_t id, ob_err *e) {
  sqlite3_stmt *st = NULL;
  if (!stmt(s, Q_RESERVE, &st, e)) return 0;
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return db_err(s, e, rc, "storing a block of records");
  return 1;
}

/* Removes block `id`: its row and its records' data. */
static int delete_block(ob_store *s, int64_t id, const char *what, ob_err *e) {
  sqlite3_stmt *del = NULL, *deld = NULL;
  if (!stmt(s, Q_BLOCK_DELETE, &del, e) || !stmt(s, Q_BLOCK_DATA_DELETE, &deld, e)) return 0;
  int rc = SQLITE_DONE;
  for (int t = 0; t < 2 && rc == SQLITE_DONE; t++) {
    sqlite3_stmt *st = t ? deld : del;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
  }
  if (rc != SQLITE_DONE) return db_err(s, e, rc, what);
  return 1;
}

/* Turns block `id` back into records of their own (one row each, same ids, same lease and due
 * time), for an outcome other than "all delivered". Counters do not change. */
static int explode(ob_store *s, int64_t id, ob_err *e) {
  sqlite3_stmt *rd = NULL, *ins = NULL;
  if (!stmt(s, Q_BLOCK_READ, &rd, e) || !stmt(s, Q_INSERT_FULL, &ins, e)) return 0;
  sqlite3_bind_int64(rd, 1, id);
  int rc = sqlite3_step(rd);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(rd);
    return rc == SQLITE_DONE ? 1 : db_err(s, e, rc, "reading a block of records");
  }
  int64_t n = sqlite3_column_int64(rd, 0), due = sqlite3_column_int64(rd, 1), until = sqlite3_column_int64(rd, 3);
  int has_owner = sqlite3_column_type(rd, 2) != SQLITE_NULL, has_data = sqlite3_column_type(rd, 4) != SQLITE_NULL;
  char *owner = col_text(rd, 2);
  size_t size = (size_t)sqlite3_column_bytes(rd, 4);
  unsigned char *data = size ? malloc(size) : NULL;
  if (data) memcpy(data, sqlite3_column_blob(rd, 4), size);
  sqlite3_reset(rd);
  int ok = 1;
  if (!has_data) {
    ok = damaged_block(s, id, e);
  } else if ((size && !data) || (has_owner && !owner)) {
    set_err(e, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s: out of memory", s->path);
    ok = 0;
  }
  size_t pos = 0;
  for (int64_t i = 0; ok && i < n; i++) {
    block_rec r;
    if (!block_get(data, size, &pos, &r)) { ok = damaged_block(s, id, e); break; }
    sqlite3_bind_int64(ins, 1, id + i);
    sqlite3_bind_text(ins, 2, r.f[BF_GUID], (int)r.len[BF_GUID], SQLITE_STATIC);
    sqlite3_bind_int(ins, 3, r.kind);
    for (int f = BF_WF_RUN_ID; f <= BF_CORR_KEY; f++) {
      if (r.f[f]) sqlite3_bind_text(ins, 3 + f, r.f[f], (int)r.len[f], SQLITE_STATIC);
      else sqlite3_bind_null(ins, 3 + f);
    }
    sqlite3_bind_blob64(ins, 7, r.f[BF_REQUEST], r.len[BF_REQUEST], SQLITE_STATIC);
    sqlite3_bind_int64(ins, 8, r.created_at);
    if (r.expires_at >= 0) sqlite3_bind_int64(ins, 9, r.expires_at);
    else sqlite3_bind_null(ins, 9);
    sqlite3_bind_int64(ins, 10, due);
    if (owner) sqlite3_bind_text(ins, 11, owner, -1, SQLITE_STATIC);
    else sqlite3_bind_null(ins, 11);
    sqlite3_bind_int64(ins, 12, until);
    rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    sqlite3_clear_bindings(ins);
    if (rc != SQLITE_DONE) ok = db_err(s, e, rc, "storing the records of a block");
  }
  if (ok && pos != size) ok = damaged_block(s, id, e);
  free(data);
  free(owner);
  return ok && delete_block(s, id, "removing a block of records", e);
}

/* If record `id` is in a block, the block becomes records (explode). */
static int explode_block_of(ob_store *s, int64_t id, ob_err *e) {
  sqlite3_stmt *st = NULL;
  if (!stmt(s, Q_BLOCK_OF, &st, e)) return 0;
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st);
  int64_t first = 0, n = 0;
  if (rc == SQLITE_ROW) {
    first = sqlite3_column_int64(st, 0);
    n = sqlite3_column_int64(st, 1);
    rc = SQLITE_DONE;
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return db_err(s, e, rc, "finding a record's block");
  if (n > 0 && id < first + n) return explode(s, first, e);
  return 1;
}

static int key_pending(ob_store *s, const char *key, int *out, ob_err *e);

/* Stores r as a row of its own, with id `id` (see reserve_ids). */
static int insert_row(ob_store *s, sqlite3_stmt *ins, ob_new *r, const ob_limits *lim, int behind, int64_t id,
                      ob_err *e) {
  sqlite3_bind_text(ins, 1, r->guid, -1, SQLITE_STATIC);
  sqlite3_bind_int(ins, 2, r->kind);
  bind_text_or_null(ins, 3, r->wf_run_id);
  bind_text_or_null(ins, 4, r->def_name);
  bind_text_or_null(ins, 5, r->corr_key);
  bind_text_or_null(ins, 6, r->order_key);
  sqlite3_bind_blob64(ins, 7, r->request, r->request_len, SQLITE_STATIC);
  sqlite3_bind_int64(ins, 8, r->created_at);
  if (lim->max_age_ms > 0) sqlite3_bind_int64(ins, 9, r->created_at + lim->max_age_ms);
  else sqlite3_bind_null(ins, 9);
  sqlite3_bind_int64(ins, 10, behind ? OB_HELD : r->created_at);
  sqlite3_bind_int64(ins, 11, id);
  int rc = sqlite3_step(ins);
  sqlite3_reset(ins);
  sqlite3_clear_bindings(ins);
  if (rc != SQLITE_DONE) return db_err(s, e, rc, "storing a record");
  r->id = id;
  return 1;
}

int ob_store_add(ob_store *s, ob_new *recs, size_t n, const ob_limits *lim, ob_err *e) {
  if (!begin(s, 1, e)) return 0;
  counters now, d;
  memset(&d, 0, sizeof d);
  sqlite3_stmt *ins = NULL;
  int correlated = 0, held = 0, blocks = 0, new_blocks = 0;
  if (!read_counters(s, &now, e) || !stmt(s, Q_INSERT, &ins, e) || !has_blocks(s, &blocks, e)) {
    rollback(s);
    return 0;
  }
  int64_t next = 0; /* the id of the next record stored (see reserve_ids, which puts the
                     * reserved row back past what is stored) */
  if (!next_id(s, blocks, &next, e) || !exec_q(s, Q_UNRESERVE, e, "storing records")) {
    rollback(s);
    return 0;
  }
  /* records without an order key go in blocks when there are enough of them (OB_BLOCK_MIN) */
  size_t candidates = 0, nblock = 0;
  for (size_t i = 0; i < n; i++) candidates += recs[i].order_key == NULL;
  size_t *in_block = candidates >= OB_BLOCK_MIN ? malloc(candidates * sizeof *in_block) : NULL;
  if (candidates >= OB_BLOCK_MIN && !in_block) {
    rollback(s);
    set_err(e, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s: out of memory", s->path);
    return 0;
  }
  int ok = 1;
  for (size_t i = 0; ok && i < n; i++) {
    ob_new *r = &recs[i];
    r->refused = 0;
    r->id = 0;
    int64_t rows = now.pending + now.dead_rows + d.pending, bytes = now.bytes + d.bytes;
    if (lim->max_rows > 0 && rows + 1 > lim->max_rows) {
      r->refused = 1;
      set_err(&r->err, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s is full: it holds %lld records (max_rows = %lld; "
              "%lld of them dead letters); nothing was stored", s->path, (long long)rows, (long long)lim->max_rows,
              (long long)now.dead_rows);
      continue;
    }
    if (lim->max_bytes > 0 && bytes + (int64_t)r->request_len > lim->max_bytes) {
      r->refused = 1;
      set_err(&r->err, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s is full: it holds %lld bytes of requests, and "
              "this one (%zu bytes) would pass max_bytes = %lld; nothing was stored", s->path, (long long)bytes,
              r->request_len, (long long)lim->max_bytes);
      continue;
    }
    if (in_block && !r->order_key) {
      in_block[nblock++] = i; /* stored after the loop */
    } else {
      /* a record whose order key has a pending record already waits for it (see due_at) */
      int behind = 0;
      ok = (!r->order_key || key_pending(s, r->order_key, &behind, e)) &&
           insert_row(s, ins, r, lim, behind, next++, e);
      held |= behind;
    }
    if (r->kind == OB_KIND_CORRELATED) correlated = 1;
    d.pending++;
    d.accepted++;
    d.bytes += (int64_t)r->request_len;
  }
  if (ok && nblock && nblock < OB_BLOCK_MIN) { /* fewer than planned (the limits refused some) */
    for (size_t i = 0; ok && i < nblock; i++) ok = insert_row(s, ins, &recs[in_block[i]], lim, 0, next++, e);
    nblock = 0;
  }
  if (ok && nblock) {
    if (!blocks) { /* the file's first block: its tables, and layout 4 */
      ok = exec_sql(s, BLOCK_SCHEMA, e, "adding blocks of records") && mark_layout(s, OB_LAYOUT_BLOCKS, e);
      new_blocks = 1;
    }
    /* as few blocks as OB_BLOCK_MAX allows, of even sizes (65 records: 33 and 32, not 64 and 1) */
    size_t nblocks = (nblock + OB_BLOCK_MAX - 1) / OB_BLOCK_MAX;
    for (size_t b = 0, off = 0; ok && b < nblocks; b++) {
      size_t k = nblock / nblocks + (b < nblock % nblocks);
      ok = store_block(s, recs, in_block + off, k, next, lim->max_age_ms, e);
      next += (int64_t)k;
      off += k;
    }
  }
  if (ok) ok = reserve_ids(s, next, e);
  free(in_block);
  if (!ok || (d.accepted && !add_counters(s, &d, e)) || (correlated && !mark_layout(s, OB_LAYOUT_CORRELATED, e)) ||
      (held && !mark_layout(s, OB_LAYOUT_HELD, e))) {
    rollback(s);
    for (size_t i = 0; i < n; i++) recs[i].id = 0;
    return 0;
  }
  if (!commit(s, e)) return 0;
  if (correlated) layout_is(s, OB_LAYOUT_CORRELATED);
  if (held) layout_is(s, OB_LAYOUT_HELD);
  if (new_blocks) layout_is(s, OB_LAYOUT_BLOCKS);
  return 1;
}

/* ---- delivery ---- */

void ob_claim_out_free(ob_claim_out *out) {
  free(out->rows);
  free(out->bytes);
  out->rows = NULL;
  out->bytes = NULL;
  out->n = 0;
}

/* ---- order keys: holding a record back behind its key's earlier ones ---- */

/* The order keys of records that ended in this transaction: each key's next pending record,
 * if held, becomes due once the changes are made (a key named twice unholds one record). */
typedef struct keyset {
  char **k;
  size_t n, cap;
} keyset;

static void keyset_free(keyset *ks) {
  for (size_t i = 0; i < ks->n; i++) free(ks->k[i]);
  free(ks->k);
  ks->k = NULL;
  ks->n = ks->cap = 0;
}

/* Adds column i of st (an order key, or NULL: nothing to add). */
static int keyset_add(ob_store *s, keyset *ks, sqlite3_stmt *st, int i, ob_err *e) {
  const unsigned char *t = sqlite3_column_text(st, i);
  if (!t) return 1;
  if (ks->n == ks->cap) {
    size_t cap = ks->cap ? ks->cap * 2 : 8;
    char **k = realloc(ks->k, cap * sizeof *k);
    if (!k) goto oom;
    ks->k = k;
    ks->cap = cap;
  }
  if (!(ks->k[ks->n] = dup_bytes(t, (size_t)sqlite3_column_bytes(st, i)))) goto oom;
  ks->n++;
  return 1;
oom:
  set_err(e, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s: out of memory", s->path);
  return 0;
}

/* Makes the next pending record of each key in ks due at `now` if it was held. */
static int unhold(ob_store *s, const keyset *ks, int64_t now, ob_err *e) {
  if (ks->n == 0) return 1;
  sqlite3_stmt *st = NULL;
  if (!stmt(s, Q_UNHOLD, &st, e)) return 0;
  for (size_t i = 0; i < ks->n; i++) {
    sqlite3_bind_text(st, 1, ks->k[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return db_err(s, e, rc, "releasing a record held back by its order");
  }
  return 1;
}

/* Whether order key `key` has a pending record (*out). */
static int key_pending(ob_store *s, const char *key, int *out, ob_err *e) {
  sqlite3_stmt *st = NULL;
  if (!stmt(s, Q_KEY_PENDING, &st, e)) return 0;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_err(s, e, rc, "reading a record's order");
  *out = rc == SQLITE_ROW;
  return 1;
}

/* Records past their expiry become dead letters (looked for at most once a second, in
 * records_expiry: a sweep reads the expired records only, not the whole backlog). */
static int expire(ob_store *s, int64_t now, counters *d, keyset *ended, ob_err *e) {
  if (now - s->last_sweep < 1000 && now >= s->last_sweep) return 1;
  s->last_sweep = now;
  sqlite3_stmt *st = NULL;
  int blocks = 0;
  if (!has_blocks(s, &blocks, e)) return 0;
  if (blocks) { /* a block holding an expired record becomes records, which the sweep below reads */
    if (!stmt(s, Q_BLOCK_EXPIRED, &st, e)) return 0;
    sqlite3_bind_int64(st, 1, now);
    int64_t ids[OB_BLOCK_MAX];
    size_t k;
    do { /* a few at a time: explode changes the table the statement reads */
      k = 0;
      int rc = SQLITE_DONE;
      while (k < OB_BLOCK_MAX && (rc = sqlite3_step(st)) == SQLITE_ROW) ids[k++] = sqlite3_column_int64(st, 0);
      sqlite3_reset(st);
      if (k < OB_BLOCK_MAX && rc != SQLITE_DONE) return db_err(s, e, rc, "expiring records");
      for (size_t i = 0; i < k; i++)
        if (!explode(s, ids[i], e)) return 0;
    } while (k == OB_BLOCK_MAX);
  }
  if (!stmt(s, Q_EXPIRE, &st, e)) return 0;
  sqlite3_bind_int64(st, 1, now);
  int rc, ok = 1;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    d->pending--;
    d->dead_rows++;
    d->dead++;
    if (ok) ok = keyset_add(s, ended, st, 0, e);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return db_err(s, e, rc, "expiring records");
  return ok;
}

static int next_due(ob_store *s, int64_t now, int64_t *out, ob_err *e) {
  int blocks = 0;
  if (!has_blocks(s, &blocks, e)) return 0;
  *out = -1;
  for (int q = 0; q <= blocks; q++) {
    sqlite3_stmt *st = NULL;
    if (!stmt(s, q ? Q_BLOCK_NEXT_DUE : Q_NEXT_DUE, &st, e)) return 0;
    sqlite3_bind_int64(st, 1, now);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
      int64_t t = sqlite3_column_int64(st, 0);
      if (*out < 0 || t < *out) *out = t;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return db_err(s, e, rc, "reading the next due time");
  }
  return 1;
}

static int cmp_id(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Sorts ids (n > 0) and makes them distinct; returns how many remain. Runs of consecutive ids
 * then stand for ranges [first, last] in which every id is one of them, so that a statement
 * over `id BETWEEN first AND last` touches exactly those records. */
static size_t id_runs(int64_t *ids, size_t n) {
  qsort(ids, n, sizeof *ids, cmp_id);
  size_t k = 1;
  for (size_t i = 1; i < n; i++)
    if (ids[i] != ids[k - 1]) ids[k++] = ids[i];
  return k;
}

/* The end of the run of consecutive ids that begins at ids[i] (sorted, distinct). */
static size_t run_end(const int64_t *ids, size_t n, size_t i) {
  while (i + 1 < n && ids[i + 1] == ids[i] + 1) i++;
  return i;
}

/* Run st (a statement over `id BETWEEN ?1 AND ?2`, its other parameters bound) for one run;
 * returns the SQLite result code of its step. */
static int step_run(sqlite3_stmt *st, int64_t first, int64_t last) {
  sqlite3_bind_int64(st, 1, first);
  sqlite3_bind_int64(st, 2, last);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc;
}

/* Adds the order keys of the pending records with ids in [first, last] to `ended`. */
static int run_keys(ob_store *s, int64_t first, int64_t last, keyset *ended, ob_err *e) {
  sqlite3_stmt *st = NULL;
  if (!stmt(s, Q_RUN_KEYS, &st, e)) return 0;
  sqlite3_bind_int64(st, 1, first);
  sqlite3_bind_int64(st, 2, last);
  int rc = SQLITE_DONE, ok = 1;
  while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) ok = keyset_add(s, ended, st, 0, e);
  sqlite3_reset(st);
  if (!ok) return 0;
  if (rc != SQLITE_DONE) return db_err(s, e, rc, "recording delivery outcomes");
  return 1;
}

/* Remove the records delivered (or found to be there already) whose ids are in ids[0..n),
 * sorted and distinct; records gone already (delivered by another process) count nothing. */
static int remove_delivered(ob_store *s, const int64_t *ids, size_t n, int duplicate, counters *d, keyset *ended,
                            ob_err *e) {
  sqlite3_stmt *acked = NULL, *del = NULL;
  if (!stmt(s, Q_ACKED, &acked, e) || !stmt(s, Q_DELETE, &del, e)) return 0;
  for (size_t i = 0; i < n; i++) {
    size_t j = run_end(ids, n, i);
    sqlite3_bind_int64(acked, 1, ids[i]);
    sqlite3_bind_int64(acked, 2, ids[j]);
    int rc = sqlite3_step(acked);
    int64_t found = 0, dead_rows = 0, bytes = 0, ordered = 0;
    if (rc == SQLITE_ROW) {
      found = sqlite3_column_int64(acked, 0);
      dead_rows = sqlite3_column_int64(acked, 1);
      bytes = sqlite3_column_int64(acked, 2);
      ordered = sqlite3_column_int64(acked, 3);
      rc = SQLITE_DONE;
    }
    sqlite3_reset(acked);
    if (rc == SQLITE_DONE && ordered > 0 && !run_keys(s, ids[i], ids[j], ended, e)) return 0;
    if (rc == SQLITE_DONE && found > 0) {
      d->pending -= found - dead_rows;
      d->dead_rows -= dead_rows;
      d->bytes -= bytes;
      if (duplicate) d->duplicates += found;
      else d->delivered += found;
      rc = step_run(del, ids[i], ids[j]);
    }
    if (rc != SQLITE_DONE) return db_err(s, e, rc, "recording delivery outcomes");
    i = j;
  }
  return 1;
}

/* Adds the order key of record `id` (just made a dead letter) to `ended`. */
static int dead_key(ob_store *s, int64_t id, keyset *ended, ob_err *e) {
  sqlite3_stmt *st = NULL;
  if (!stmt(s, Q_ORDER_KEY, &st, e)) return 0;
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st), ok = 1;
  if (rc == SQLITE_ROW) ok = keyset_add(s, ended, st, 0, e);
  sqlite3_reset(st);
  if (ok && rc != SQLITE_ROW && rc != SQLITE_DONE) ok = db_err(s, e, rc, "recording delivery outcomes");
  return ok;
}

/* Apply acknowledgements inside the transaction begun; the counters' changes go into d, and the
 * order keys of the pending records that ended into `ended`. */
/* Block `a->id` delivered whole: removed, with what it held counted. If it is not there as a
 * block any more (its lease ended and another process turned it into records), its records
 * are removed as delivered one by one (ids[0..a->count): scratch). */
static int remove_block(ob_store *s, const ob_ack *a, int64_t *ids, counters *d, keyset *ended, ob_err *e) {
  sqlite3_stmt *info = NULL;
  if (!stmt(s, Q_BLOCK_INFO, &info, e)) return 0;
  sqlite3_bind_int64(info, 1, a->id);
  int rc = sqlite3_step(info);
  int64_t n = 0, bytes = 0;
  int found = rc == SQLITE_ROW;
  if (found) {
    n = sqlite3_column_int64(info, 0);
    bytes = sqlite3_column_int64(info, 1);
    rc = SQLITE_DONE;
  }
  sqlite3_reset(info);
  if (rc != SQLITE_DONE) return db_err(s, e, rc, "recording delivery outcomes");
  if (!found) {
    for (int64_t i = 0; i < a->count; i++) ids[i] = a->id + i;
    int64_t before = d->delivered;
    if (!remove_delivered(s, ids, (size_t)a->count, 0, d, ended, e)) return 0;
    int64_t removed = d->delivered - before, dup = a->duplicates < removed ? a->duplicates : removed;
    d->delivered -= dup;
    d->duplicates += dup;
    return 1;
  }
  if (!delete_block(s, a->id, "recording delivery outcomes", e)) return 0;
  int64_t dup = a->duplicates < n ? a->duplicates : n;
  d->pending -= n;
  d->bytes -= bytes;
  d->duplicates += dup;
  d->delivered += n - dup;
  return 1;
}

static int apply_acks(ob_store *s, const ob_ack *acks, size_t n, const char *owner, counters *d, keyset *ended,
                      ob_err *e) {
  if (n == 0) return 1;
  sqlite3_stmt *retry = NULL, *dead = NULL, *release = NULL;
  if (!stmt(s, Q_RETRY, &retry, e) || !stmt(s, Q_DEAD, &dead, e) || !stmt(s, Q_RELEASE, &release, e)) return 0;
  int blocks = 0;
  if (!has_blocks(s, &blocks, e)) return 0;
  size_t nids = n;
  for (size_t i = 0; i < n; i++)
    if (acks[i].outcome == OB_ACK_BLOCK && (size_t)acks[i].count > nids) nids = (size_t)acks[i].count;
  int64_t *ids = malloc(nids * sizeof *ids);
  if (!ids) {
    set_err(e, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s: out of memory", s->path);
    return 0;
  }
  int ok = 1;
  /* whole blocks delivered; then the blocks of records with any other outcome become records */
  for (size_t i = 0; ok && blocks && i < n; i++) /* (a file without blocks never had the one named) */
    if (acks[i].outcome == OB_ACK_BLOCK) ok = remove_block(s, &acks[i], ids, d, ended, e);
  for (size_t i = 0; ok && blocks && i < n; i++)
    if (acks[i].outcome != OB_ACK_BLOCK) ok = explode_block_of(s, acks[i].id, e);
  if (!ok) {
    free(ids);
    return 0;
  }
  size_t ndelivered = 0, nduplicate = 0;
  for (size_t i = 0; i < n; i++) { /* delivered ids from the front, duplicates from the back */
    if (acks[i].outcome == OB_ACK_DELIVERED) ids[ndelivered++] = acks[i].id;
    else if (acks[i].outcome == OB_ACK_DUPLICATE) ids[n - ++nduplicate] = acks[i].id;
  }
  if (ndelivered) ok = remove_delivered(s, ids, id_runs(ids, ndelivered), 0, d, ended, e);
  if (ok && nduplicate)
    ok = remove_delivered(s, ids + n - nduplicate, id_runs(ids + n - nduplicate, nduplicate), 1, d, ended, e);
  free(ids);
  for (size_t i = 0; ok && i < n; i++) {
    const ob_ack *a = &acks[i];
    if (a->outcome == OB_ACK_DELIVERED || a->outcome == OB_ACK_DUPLICATE || a->outcome == OB_ACK_BLOCK)
      continue; /* removed above */
    int rc;
    if (a->outcome == OB_ACK_RELEASE) {
      sqlite3_bind_int64(release, 1, a->id);
      sqlite3_bind_text(release, 2, owner, -1, SQLITE_STATIC);
      rc = sqlite3_step(release);
      sqlite3_reset(release);
    } else {
      sqlite3_stmt *st = a->outcome == OB_ACK_RETRY ? retry : dead;
      sqlite3_bind_int64(st, 1, a->id);
      int i2 = 2;
      if (a->outcome == OB_ACK_RETRY) sqlite3_bind_int64(st, i2++, a->due_at);
      bind_text_or_null(st, i2++, a->code);
      bind_text_or_null(st, i2++, a->message);
      sqlite3_bind_text(st, i2, owner, -1, SQLITE_STATIC);
      rc = sqlite3_step(st);
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
      if (rc == SQLITE_DONE && sqlite3_changes(s->db) > 0) {
        if (a->outcome == OB_ACK_RETRY) d->retries++;
        else {
          d->dead++;
          d->pending--;
          d->dead_rows++;
          if (!dead_key(s, a->id, ended, e)) return 0;
        }
      }
    }
    if (rc != SQLITE_DONE) ok = db_err(s, e, rc, "recording delivery outcomes");
  }
  return ok;
}

static void ack_counts(const counters *d, ob_ack_counts *out) {
  out->delivered = d->delivered;
  out->duplicates = d->duplicates;
  out->retries = d->retries;
  out->dead = d->dead;
}

int ob_store_ack(ob_store *s, const ob_ack *acks, size_t n, const char *owner, int64_t now, ob_ack_counts *out,
                 ob_err *e) {
  memset(out, 0, sizeof *out);
  if (!begin(s, 0, e)) return 0;
  counters d;
  memset(&d, 0, sizeof d);
  keyset ended = { 0 };
  int ok = apply_acks(s, acks, n, owner, &d, &ended, e) && unhold(s, &ended, now, e) && add_counters(s, &d, e) &&
           commit(s, e);
  keyset_free(&ended);
  if (!ok) {
    rollback(s);
    return 0;
  }
  ack_counts(&d, out);
  return 1;
}

/* Lease the records of their own among the k claimed (block == 0), by runs of consecutive ids.
 * Returns an SQLite result code. */
static int lease_rows(sqlite3_stmt *lease, const ob_claimed *rows, size_t k, const ob_claim_in *in) {
  int64_t *ids = malloc((k ? k : 1) * sizeof *ids);
  if (!ids) return SQLITE_NOMEM;
  size_t n = 0;
  for (size_t i = 0; i < k; i++)
    if (!rows[i].block) ids[n++] = rows[i].id;
  int rc = SQLITE_DONE;
  if (n) {
    n = id_runs(ids, n);
    sqlite3_bind_text(lease, 3, in->owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(lease, 4, in->now + in->lease_ms);
  }
  for (size_t i = 0; i < n && rc == SQLITE_DONE; i++) {
    size_t j = run_end(ids, n, i);
    rc = step_run(lease, ids[i], ids[j]);
    i = j;
  }
  free(ids);
  return rc;
}

/* The claim's rows and their request bytes, as they are read (see ob_claim_out). */
typedef struct claim_buf {
  ob_claimed *rows;
  size_t k, cap;
  char *bytes;
  size_t used, cap_bytes;
} claim_buf;

/* Appends a row with its request bytes; NULL when out of memory. */
static ob_claimed *claim_add(claim_buf *c, const void *req, size_t len) {
  if (c->k == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 64;
    ob_claimed *g = realloc(c->rows, cap * sizeof *g);
    if (!g) return NULL;
    c->rows = g;
    c->cap = cap;
  }
  if (c->used + len > c->cap_bytes) {
    size_t want = c->cap_bytes ? c->cap_bytes : 16384;
    while (want < c->used + len) want *= 2;
    char *g = realloc(c->bytes, want);
    if (!g) return NULL;
    c->bytes = g;
    c->cap_bytes = want;
  }
  if (len) memcpy(c->bytes + c->used, req, len);
  c->used += len;
  ob_claimed *r = &c->rows[c->k++];
  memset(r, 0, sizeof *r);
  r->request_len = len;
  return r;
}

/* Appends the records of the block at the current row of st (Q_CLAIM_BLOCKS). */
static int claim_block_records(ob_store *s, sqlite3_stmt *st, claim_buf *c, ob_err *e) {
  int64_t id = sqlite3_column_int64(st, 0), n = sqlite3_column_int64(st, 1);
  const unsigned char *data = sqlite3_column_blob(st, 2);
  size_t size = (size_t)sqlite3_column_bytes(st, 2), pos = 0;
  for (int64_t i = 0; i < n; i++) {
    block_rec b;
    if (!block_get(data, size, &pos, &b)) return damaged_block(s, id, e);
    ob_claimed *r = claim_add(c, b.f[BF_REQUEST], b.len[BF_REQUEST]);
    if (!r) {
      set_err(e, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s: out of memory", s->path);
      return 0;
    }
    r->id = id + i;
    r->block = id;
    r->kind = b.kind;
  }
  return pos == size || damaged_block(s, id, e);
}

/* Walks the due records of their own (Q_CLAIM) and the due blocks (Q_CLAIM_BLOCKS, blocks: the
 * file has them) together, the earlier due first, until the claim holds `limit` records (a
 * block is taken whole, so the last may take it past limit); then leases them all (once both
 * walks are over: a lease changes the tables they walk). */
static int claim_due(ob_store *s, const ob_claim_in *in, int blocks, claim_buf *c, ob_err *e) {
  sqlite3_stmt *rows = NULL, *bl = NULL, *lease = NULL, *blease = NULL;
  if (!stmt(s, Q_CLAIM, &rows, e) || !stmt(s, Q_LEASE, &lease, e)) return 0;
  if (blocks && (!stmt(s, Q_CLAIM_BLOCKS, &bl, e) || !stmt(s, Q_BLOCK_LEASE, &blease, e))) return 0;
  sqlite3_bind_int64(rows, 1, in->now);
  sqlite3_bind_int64(rows, 2, (sqlite3_int64)in->limit);
  if (bl) sqlite3_bind_int64(bl, 1, in->now);
  int rr = sqlite3_step(rows), br = bl ? sqlite3_step(bl) : SQLITE_DONE, ok = 1;
  while (ok && c->k < in->limit && (rr == SQLITE_ROW || br == SQLITE_ROW)) {
    if (rr == SQLITE_ROW && (br != SQLITE_ROW || sqlite3_column_int64(rows, 5) <= sqlite3_column_int64(bl, 3))) {
      ob_claimed *r = claim_add(c, sqlite3_column_blob(rows, 2), (size_t)sqlite3_column_bytes(rows, 2));
      if (!r) {
        set_err(e, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s: out of memory", s->path);
        ok = 0;
        break;
      }
      r->id = sqlite3_column_int64(rows, 0);
      r->kind = sqlite3_column_int(rows, 1);
      r->attempts = sqlite3_column_int(rows, 3);
      r->ordered = sqlite3_column_int(rows, 4);
      rr = sqlite3_step(rows);
    } else {
      ok = claim_block_records(s, bl, c, e);
      br = sqlite3_step(bl);
    }
  }
  if (ok && ((rr != SQLITE_ROW && rr != SQLITE_DONE) || (br != SQLITE_ROW && br != SQLITE_DONE)))
    ok = db_err(s, e, rr != SQLITE_ROW && rr != SQLITE_DONE ? rr : br, "claiming records");
  sqlite3_reset(rows);
  if (bl) sqlite3_reset(bl);
  if (!ok) return 0;
  int rc = lease_rows(lease, c->rows, c->k, in);
  for (size_t i = 0; rc == SQLITE_DONE && i < c->k; i++) {
    if (!c->rows[i].block || (i > 0 && c->rows[i].block == c->rows[i - 1].block)) continue;
    sqlite3_bind_int64(blease, 1, c->rows[i].block);
    sqlite3_bind_text(blease, 2, in->owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(blease, 3, in->now + in->lease_ms);
    rc = sqlite3_step(blease);
    sqlite3_reset(blease);
  }
  if (rc != SQLITE_DONE) return db_err(s, e, rc, "claiming records");
  return 1;
}

int ob_store_claim(ob_store *s, const ob_claim_in *in, ob_claim_out *out, ob_err *e) {
  memset(out, 0, sizeof *out);
  out->next_due = -1;
  if (!begin(s, 0, e)) return 0;
  counters d;
  memset(&d, 0, sizeof d);
  keyset ended = { 0 };
  int blocks = 0;
  int ok = apply_acks(s, in->acks, in->nacks, in->owner, &d, &ended, e) && expire(s, in->now, &d, &ended, e) &&
           unhold(s, &ended, in->now, e) && has_blocks(s, &blocks, e);
  keyset_free(&ended);
  if (!ok) {
    rollback(s);
    return 0;
  }
  ack_counts(&d, &out->acked);
  claim_buf c = { 0 };
  int rc = SQLITE_DONE;
  if (in->limit && !claim_due(s, in, blocks, &c, e)) rc = SQLITE_ERROR; /* e is set */
  /* the bytes have their final address now */
  for (size_t i = 0, off = 0; rc == SQLITE_DONE && i < c.k; off += c.rows[i++].request_len)
    c.rows[i].request = c.bytes ? c.bytes + off : "";
  counters now;
  ok = rc == SQLITE_DONE;
  if (!ok && rc != SQLITE_ERROR) db_err(s, e, rc, "claiming records");
  ok = ok && add_counters(s, &d, e) && read_counters(s, &now, e) && next_due(s, in->now, &out->next_due, e) &&
       commit(s, e);
  if (!ok) {
    rollback(s);
    free(c.rows);
    free(c.bytes);
    memset(&out->acked, 0, sizeof out->acked);
    return 0;
  }
  if (c.k == 0) {
    free(c.rows);
    c.rows = NULL;
  }
  out->rows = c.rows;
  out->bytes = c.bytes;
  out->n = c.k;
  out->pending = now.pending;
  return 1;
}

/* ---- reading ---- */

int ob_store_stats(ob_store *s, int64_t now, ob_stats *out, ob_err *e) {
  memset(out, 0, sizeof *out);
  /* one read transaction: the counters and the records agree */
  if (!exec_sql(s, "BEGIN", e, "reading the stats")) return 0;
  counters c;
  sqlite3_stmt *st = NULL;
  int ok = read_counters(s, &c, e) && stmt(s, by_id_order(&c, 0) ? Q_OLDEST : Q_OLDEST_BY_STATE, &st, e);
  if (ok) {
    int rc = sqlite3_step(st);
    out->oldest_pending_ms = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) ok = db_err(s, e, rc, "reading the stats");
  }
  int blocks = 0;
  if (ok) ok = has_blocks(s, &blocks, e);
  if (ok && blocks && stmt(s, Q_BLOCK_OLDEST, &st, e)) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      int64_t t = sqlite3_column_int64(st, 0);
      if (out->oldest_pending_ms < 0 || t < out->oldest_pending_ms) out->oldest_pending_ms = t;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) ok = db_err(s, e, rc, "reading the stats");
  } else if (blocks) {
    ok = 0;
  }
  if (ok) ok = next_due(s, now, &out->next_due_ms, e);
  ob_err ignored;
  exec_sql(s, "COMMIT", &ignored, "reading the stats");
  if (!ok) return 0;
  out->accepted = c.accepted;
  out->delivered = c.delivered;
  out->duplicates = c.duplicates;
  out->retries = c.retries;
  out->dead = c.dead;
  out->pending = c.pending;
  out->dead_letters = c.dead_rows;
  out->bytes = c.bytes;
  return 1;
}

static void record_fields_free(ob_record *x) {
  free(x->guid);
  free(x->wf_run_id);
  free(x->def_name);
  free(x->corr_key);
  free(x->order_key);
  free(x->lease_owner);
  free(x->last_code);
  free(x->last_message);
  free(x->request);
}

void ob_records_free(ob_record *r, size_t n) {
  if (!r) return;
  for (size_t i = 0; i < n; i++) record_fields_free(&r[i]);
  free(r);
}

/* A page of pending records in id order: the k rows in *r (records of their own, in id order, at
 * most limit) merged with the records of blocks with ids > after, and cut to limit. (Read in
 * the same read transaction as the rows: ob_store_list runs in one.) */
static int list_blocks(ob_store *s, int64_t after, size_t limit, int with_request, ob_record **r, size_t *k,
                       ob_err *e) {
  int blocks = 0;
  sqlite3_stmt *st = NULL;
  if (!has_blocks(s, &blocks, e)) { ob_records_free(*r, *k); return 0; }
  if (!blocks) return 1;
  if (!stmt(s, Q_BLOCK_PAGE, &st, e)) { ob_records_free(*r, *k); return 0; }
  ob_record *q = calloc(limit, sizeof *q);
  size_t m = 0;
  int ok = q != NULL, rc = SQLITE_DONE;
  if (!q) set_err(e, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s: out of memory listing records", s->path);
  /* a block that begins before `after` may end past it */
  sqlite3_bind_int64(st, 1, after > INT64_MIN + OB_BLOCK_MAX ? after - OB_BLOCK_MAX : INT64_MIN);
  /* enough blocks for `limit` records past the rows' last one, or past `after` */
  int64_t stop = *k == limit ? (*r)[*k - 1].id : INT64_MAX;
  while (ok && m < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(st, 0), nb = sqlite3_column_int64(st, 1);
    if (id > stop) break;
    const unsigned char *data = sqlite3_column_blob(st, 4);
    size_t size = (size_t)sqlite3_column_bytes(st, 4), pos = 0;
    for (int64_t i = 0; ok && i < nb && m < limit; i++) {
      block_rec b;
      if (!block_get(data, size, &pos, &b)) { ok = damaged_block(s, id, e); break; }
      if (id + i <= after) continue;
      ob_record *x = &q[m++];
      x->id = id + i;
      x->created_at = b.created_at;
      x->due_at = sqlite3_column_int64(st, 2);
      x->expires_at = b.expires_at;
      x->kind = b.kind;
      x->guid = dup_bytes(b.f[BF_GUID], b.len[BF_GUID]);
      x->wf_run_id = b.f[BF_WF_RUN_ID] ? dup_bytes(b.f[BF_WF_RUN_ID], b.len[BF_WF_RUN_ID]) : NULL;
      x->def_name = dup_bytes(b.f[BF_DEF_NAME], b.len[BF_DEF_NAME]);
      x->corr_key = b.f[BF_CORR_KEY] ? dup_bytes(b.f[BF_CORR_KEY], b.len[BF_CORR_KEY]) : NULL;
      x->lease_owner = col_text(st, 3);
      if (!x->guid || !x->def_name || (b.f[BF_WF_RUN_ID] && !x->wf_run_id) || (b.f[BF_CORR_KEY] && !x->corr_key) ||
          (sqlite3_column_type(st, 3) != SQLITE_NULL && !x->lease_owner))
        ok = 0;
      if (ok && with_request) {
        x->request_len = b.len[BF_REQUEST];
        if (!(x->request = dup_bytes(b.f[BF_REQUEST], b.len[BF_REQUEST]))) ok = 0;
      }
      if (!ok) set_err(e, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s: out of memory listing records", s->path);
    }
  }
  sqlite3_reset(st);
  if (ok && rc != SQLITE_ROW && rc != SQLITE_DONE) ok = db_err(s, e, rc, "listing records");
  ob_record *merged = ok ? calloc(limit, sizeof *merged) : NULL;
  if (ok && !merged) {
    set_err(e, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s: out of memory listing records", s->path);
    ok = 0;
  }
  if (!ok) {
    ob_records_free(q, m);
    ob_records_free(*r, *k);
    return 0;
  }
  /* merge by id (the two never share one); what is past the page is freed */
  size_t i = 0, j = 0, t = 0;
  while (t < limit && (i < *k || j < m)) {
    if (j == m || (i < *k && (*r)[i].id < q[j].id)) merged[t++] = (*r)[i++];
    else merged[t++] = q[j++];
  }
  for (; i < *k; i++) record_fields_free(&(*r)[i]);
  for (; j < m; j++) record_fields_free(&q[j]);
  free(*r);
  free(q);
  *r = merged;
  *k = t;
  return 1;
}

static int list_page(ob_store *s, int state, int64_t after, size_t limit, int with_request, ob_record **out,
                     size_t *n, ob_err *e);

int ob_store_list(ob_store *s, int state, int64_t after, size_t limit, int with_request,
                  ob_record **out, size_t *n, ob_err *e) {
  *out = NULL;
  *n = 0;
  if (limit == 0) return 1;
  /* one read transaction: a block that becomes records meanwhile is read once, as one or the other */
  if (!exec_sql(s, "BEGIN", e, "listing records")) return 0;
  int ok = list_page(s, state, after, limit, with_request, out, n, e);
  ob_err ignored;
  exec_sql(s, "COMMIT", &ignored, "listing records");
  return ok;
}

static int list_page(ob_store *s, int state, int64_t after, size_t limit, int with_request, ob_record **out,
                     size_t *n, ob_err *e) {
  /* A page in id order from `after` (by_id_order: listing every page by the walk reads each
   * record once; through records_due, every page reads every record of the state). Counts
   * that change between the two reads can only make the plan slower, never the page wrong. */
  counters c;
  if (!read_counters(s, &c, e)) return 0;
  char sql[512];
  snprintf(sql, sizeof sql,
    "SELECT id, created_at, due_at, expires_at, kind, attempts, state, dead_reason, guid, wf_run_id, def_name,"
    " corr_key, order_key, lease_owner, last_code, last_message, CASE WHEN ?4 THEN request END"
    " FROM records WHERE %sstate = ?1 AND id > ?2 ORDER BY id LIMIT ?3", by_id_order(&c, state) ? "+" : "");
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return db_err(s, e, rc, "listing records");
  sqlite3_bind_int(st, 1, state);
  sqlite3_bind_int64(st, 2, after);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
  sqlite3_bind_int(st, 4, with_request);
  size_t cap = limit < 64 ? limit : 64, k = 0;
  ob_record *r = calloc(cap, sizeof *r);
  int oom = r == NULL;
  while (!oom && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (k == cap) {
      ob_record *g = realloc(r, cap * 2 * sizeof *r);
      if (!g) { oom = 1; break; }
      memset(g + cap, 0, cap * sizeof *r);
      r = g;
      cap *= 2;
    }
    ob_record *x = &r[k++];
    x->id = sqlite3_column_int64(st, 0);
    x->created_at = sqlite3_column_int64(st, 1);
    x->due_at = sqlite3_column_int64(st, 2);
    x->expires_at = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 3);
    x->kind = sqlite3_column_int(st, 4);
    x->attempts = sqlite3_column_int(st, 5);
    x->state = sqlite3_column_int(st, 6);
    x->dead_reason = sqlite3_column_int(st, 7);
    x->guid = col_text(st, 8);
    x->wf_run_id = col_text(st, 9);
    x->def_name = col_text(st, 10);
    x->corr_key = col_text(st, 11);
    x->order_key = col_text(st, 12);
    x->lease_owner = col_text(st, 13);
    x->last_code = col_text(st, 14);
    x->last_message = col_text(st, 15);
    if (with_request) {
      x->request_len = (size_t)sqlite3_column_bytes(st, 16);
      x->request = dup_bytes(sqlite3_column_blob(st, 16), x->request_len);
      if (!x->request) oom = 1;
    }
  }
  sqlite3_finalize(st);
  if (oom) {
    ob_records_free(r, k);
    set_err(e, GRPC_STATUS_RESOURCE_EXHAUSTED, "outbox %s: out of memory listing records", s->path);
    return 0;
  }
  if (rc != SQLITE_DONE) {
    ob_records_free(r, k);
    return db_err(s, e, rc, "listing records");
  }
  if (state == 0 && !list_blocks(s, after, limit, with_request, &r, &k, e)) return 0;
  *out = r;
  *n = k;
  return 1;
}

/* ---- dead letters ---- */

/* Run `change` over the dead letters named in ids, one statement per id, or over all of them
 * when ids is NULL; counts the rows it changed, their request bytes, and how many are held back
 * by order afterwards. `change` is the statement up to its WHERE clause; ?3 is now and ?4 the
 * new expiry time. A named id gets a clause of its own, found by its rowid: a clause serving
 * both cases makes SQLite walk every dead letter once per id (1,000 ids among 100,000 dead
 * letters: 5.5 s on the writer thread). */
static int each_id(ob_store *s, const char *change, const int64_t *ids, size_t nids, int64_t now, int64_t max_age,
                   int64_t *count, int64_t *bytes, int64_t *held, ob_err *e) {
  char sql[768];
  snprintf(sql, sizeof sql, "%s WHERE %s RETURNING length(request), due_at = " OB_HELD_SQL, change,
           ids ? "id = ?1 AND state = 1" : "state = 1");
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return db_err(s, e, rc, "changing dead letters");
  int np = sqlite3_bind_parameter_count(st);
  if (np >= 3) sqlite3_bind_int64(st, 3, now);
  if (np >= 4) {
    if (max_age > 0) sqlite3_bind_int64(st, 4, now + max_age);
    else sqlite3_bind_null(st, 4);
  }
  size_t rounds = ids ? nids : 1;
  for (size_t i = 0; i < rounds; i++) {
    if (ids) sqlite3_bind_int64(st, 1, ids[i]);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      (*count)++;
      *bytes += sqlite3_column_int64(st, 0);
      *held += sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) break;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return db_err(s, e, rc, "changing dead letters");
  return 1;
}

int ob_store_requeue(ob_store *s, const int64_t *ids, size_t nids, int64_t now, int64_t max_age_ms,
                     int64_t *count, ob_err *e) {
  *count = 0;
  if (!begin(s, 1, e)) return 0;
  int64_t bytes = 0;
  counters d;
  memset(&d, 0, sizeof d);
  int64_t held = 0;
  /* a record requeued behind a pending record of its order key is held back (see due_at) */
  int ok = each_id(s, "UPDATE OR FAIL records SET state = 0, dead_reason = NULL, attempts = 0, expires_at = ?4,"
                      " lease_owner = NULL, lease_until = 0, due_at = CASE WHEN order_key IS NOT NULL AND EXISTS"
                      " (SELECT 1 FROM records AS p WHERE p.order_key = records.order_key AND p.id < records.id"
                      " AND p.state = 0) THEN " OB_HELD_SQL " ELSE ?3 END",
                   ids, nids, now, max_age_ms, count, &bytes, &held, e);
  d.pending = *count;
  d.dead_rows = -*count;
  if (!ok || !add_counters(s, &d, e) || (held && !mark_layout(s, OB_LAYOUT_HELD, e)) || !commit(s, e)) {
    rollback(s);
    *count = 0;
    return 0;
  }
  if (held) layout_is(s, OB_LAYOUT_HELD);
  return 1;
}

int ob_store_purge(ob_store *s, const int64_t *ids, size_t nids, int64_t *count, ob_err *e) {
  *count = 0;
  if (!begin(s, 1, e)) return 0;
  int64_t bytes = 0;
  counters d;
  memset(&d, 0, sizeof d);
  int64_t held = 0;
  int ok = each_id(s, "DELETE FROM records", ids, nids, 0, 0, count, &bytes, &held, e);
  d.dead_rows = -*count;
  d.bytes = -bytes;
  if (!ok || !add_counters(s, &d, e) || !commit(s, e)) {
    rollback(s);
    *count = 0;
    return 0;
  }
  return 1;
}
