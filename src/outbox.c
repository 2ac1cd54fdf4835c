/* The outbox userdata and its job handles (see outbox.h). Requests are converted once, when
 * posted, by the same packer as client:put_external_event (misuse raises there, naming the
 * field); the packed bytes are what the outbox stores and, later, sends. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <grpc/status.h>
#include "outbox.h"
#include "context.h"
#include "error.h"
#include "correlated.h"
#include "messages.h"
#include "path.h"
#include "runtime.h"
#include "timestamp.h"
#include "outbox_record.h"
#include "outbox_writer.h"

/* User values of an outbox: 1 the anchor table of jobs with an on_done callback (slot -> handle). */
enum { OV_ANCHORS = 1, OUTBOX_NUV = 1 };
/* User values of a job handle: 1 its outbox, 2 its result (or error object), 3 on_done. */
enum { JV_OUTBOX = 1, JV_RESULT = 2, JV_ON_DONE = 3, JOB_NUV = 3 };

typedef struct lh_outbox {
  ob_outbox *ob;      /* NULL once closed */
  pid_t pid;          /* the process that made it (a forked child never touches it) */
  int ordered;        /* posts carry their WfRun as order key */
  int closed;
} lh_outbox;

typedef struct lh_job {
  ob_job *j;          /* NULL once settled (or closed) */
  pid_t pid;
  int kind;
  int nresults;       /* 0 until settled; then 1 (the result) or 3 (nil, err, code) */
} lh_job;

static const char *const job_names[OB_JOB_KINDS] = {
  "outbox:ready", "outbox:post", "outbox:claim", "outbox:ack", "outbox:stats", "outbox:list",
  "outbox:requeue", "outbox:purge", "outbox:watch",
};

static int inherited(pid_t made_in) { return made_in != lh_runtime_pid(); }

static void refuse_inherited(lua_State *L, const char *what, pid_t made_in) {
  lh_misuse(L, "littlehorse: this %s was made in process %d and cannot be used in forked process %d; "
               "open outboxes after the fork", what, (int)made_in, (int)getpid());
}

static lh_outbox *check_outbox(lua_State *L) {
  lh_outbox *o = luaL_checkudata(L, 1, LH_OUTBOX_MT);
  if (o->closed) lh_misuse(L, "littlehorse: this outbox is closed");
  if (inherited(o->pid)) refuse_inherited(L, "outbox", o->pid);
  return o;
}

static lh_job *check_job(lua_State *L) {
  lh_job *h = luaL_checkudata(L, 1, LH_OUTBOX_JOB_MT);
  if (inherited(h->pid)) refuse_inherited(L, "outbox job", h->pid);
  return h;
}

/* A number of seconds at idx (>= 0, finite), named by path in errors. */
static double check_seconds(lua_State *L, int idx, const lh_path *p, int allow_zero) {
  if (lua_type(L, idx) != LUA_TNUMBER) lh_path_error(L, p, "expected a number of seconds, got %s", luaL_typename(L, idx));
  double s = (double)lua_tonumber(L, idx);
  if (!(s >= 0) || !isfinite(s) || s > 1e9 || (!allow_zero && s == 0))
    lh_path_error(L, p, allow_zero ? "must be a number of seconds >= 0" : "must be a positive number of seconds");
  return s;
}

static lua_Integer check_count(lua_State *L, int idx, const lh_path *p, lua_Integer lo, lua_Integer hi) {
  if (!lua_isinteger(L, idx) || lua_tointeger(L, idx) < lo || lua_tointeger(L, idx) > hi) {
    char range[64]; /* lua_pushfstring has no 64-bit format on every Lua version */
    snprintf(range, sizeof range, "%lld to %lld", (long long)lo, (long long)hi);
    lh_path_error(L, p, "expected an integer from %s", range);
  }
  return lua_tointeger(L, idx);
}

/* ---- job options: { on_done = fn } and per-method keys ---- */

typedef struct job_opts {
  int on_done;        /* stack index of the callback, or 0 */
  lua_Integer after, limit;
  int requests;
} job_opts;

/* Read the options table at idx, raw (no metamethod runs): on_done, and for list_async
 * after, limit and requests. Misuse raises naming the key. The callback replaces the table at
 * idx (o->on_done = idx), where it stays until the handle takes it. */
static const char *const JOB_OPTIONS[] = { "on_done", NULL };
static const char *const LIST_OPTIONS[] = { "after", "limit", "requests", "on_done", NULL };

static void job_opts_at(lua_State *L, int idx, const char *method, int argn, int list, job_opts *o) {
  lh_path root = lh_path_root(method, argn);
  memset(o, 0, sizeof *o);
  o->limit = 100;
  if (lua_isnoneornil(L, idx)) return;
  if (!lua_istable(L, idx)) lh_path_error(L, &root, "expected a table of options, got %s", luaL_typename(L, idx));
  lh_check_keys(L, idx, &root, list ? LIST_OPTIONS : JOB_OPTIONS, "option");
  lua_pushliteral(L, "on_done");
  lua_rawget(L, idx);
  int has_fn = !lua_isnil(L, -1);
  if (has_fn && !lua_isfunction(L, -1)) {
    lh_path p = lh_path_field(&root, "on_done", 7);
    lh_path_error(L, &p, "expected a function");
  }
  if (list) {
    static const char *const keys[] = { "after", "limit", "requests" };
    for (int i = 0; i < 3; i++) {
      lua_pushstring(L, keys[i]);
      lua_rawget(L, idx);
      lh_path p = lh_path_field(&root, keys[i], strlen(keys[i]));
      if (!lua_isnil(L, -1)) {
        if (i == 0) o->after = check_count(L, -1, &p, 0, LUA_MAXINTEGER);
        else if (i == 1) o->limit = check_count(L, -1, &p, 1, 10000);
        else if (!lua_isboolean(L, -1)) lh_path_error(L, &p, "expected a boolean");
        else o->requests = lua_toboolean(L, -1);
      }
      lua_pop(L, 1);
    }
  }
  if (has_fn) {
    lua_replace(L, idx); /* the callback takes the options' slot */
    o->on_done = idx;
  } else {
    lua_pop(L, 1);
  }
}

/* ---- job handles ---- */

/* Push a handle for j (submitted here), anchoring it when it has a callback. Outbox at 1. */
static void push_job(lua_State *L, lh_outbox *o, ob_job *j, const job_opts *jo) {
  lh_job *h = lua_newuserdatauv(L, sizeof *h, JOB_NUV);
  h->j = NULL;
  h->pid = o->pid;
  h->kind = j->kind;
  h->nresults = 0;
  luaL_getmetatable(L, LH_OUTBOX_JOB_MT);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, JV_OUTBOX);
  if (jo && jo->on_done) {
    lua_pushvalue(L, jo->on_done);
    lua_setiuservalue(L, -2, JV_ON_DONE);
    lua_getiuservalue(L, 1, OV_ANCHORS);
    lua_pushvalue(L, -2);
    j->anchor = luaL_ref(L, -2);
    lua_pop(L, 1);
  }
  h->j = j; /* from here the handle owns its reference (its __gc releases it) */
  ob_job_submit(j);
}

static ob_job *new_job(lua_State *L, lh_outbox *o, int kind) {
  ob_job *j = ob_job_new(o->ob, kind);
  if (!j) luaL_error(L, "littlehorse: out of memory");
  return j;
}

static void set_int(lua_State *L, const char *k, int64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void set_time(lua_State *L, const char *k, int64_t ms) {
  int64_t s = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
  lh_timestamp_push(L, s, (int32_t)((ms - s * 1000) * 1000000));
  lua_setfield(L, -2, k);
}

/* Seconds from now until the epoch-ms time t (0 when past); nothing when t < 0. */
static void set_due(lua_State *L, const char *k, int64_t t) {
  if (t < 0) return;
  int64_t d = t - ob_now_ms();
  lua_pushnumber(L, d > 0 ? (lua_Number)d / 1000.0 : 0);
  lua_setfield(L, -2, k);
}

static const char *kind_name(int kind) { return kind == OB_KIND_CORRELATED ? "correlated" : "event"; }

static void push_record(lua_State *L, const ob_record *r) {
  lua_createtable(L, 0, 16);
  set_int(L, "id", r->id);
  set_str(L, "guid", r->guid);
  set_str(L, "kind", kind_name(r->kind));
  set_str(L, "wf_run_id", r->wf_run_id);
  set_str(L, "external_event_def_name", r->def_name);
  set_str(L, "key", r->corr_key);
  set_str(L, "order_key", r->order_key);
  set_time(L, "created_at", r->created_at);
  if (r->expires_at >= 0) set_time(L, "expires_at", r->expires_at);
  set_int(L, "attempts", r->attempts);
  set_str(L, "state", r->state ? "dead" : "pending");
  if (r->state) set_str(L, "reason", r->dead_reason == OB_DEAD_EXPIRED ? "expired" : "rejected");
  else if (r->due_at == OB_HELD) set_bool(L, "held", 1); /* waits for its WfRun's earlier record */
  else set_due(L, "due_in", r->due_at);
  set_str(L, "lease_owner", r->lease_owner);
  set_str(L, "last_code", r->last_code);
  set_str(L, "last_message", r->last_message);
  if (r->request) {
    lua_pushlstring(L, r->request, r->request_len);
    lua_setfield(L, -2, "request");
  }
}

/* Push the result of a finished job (1 value) or its error (3 values); returns how many. */
static int push_job_outcome(lua_State *L, ob_job *j) {
  if (!j->ok) {
    int n = lh_error_push(L, j->err.code, j->err.msg, strlen(j->err.msg), job_names[j->kind], -1);
    if (j->kind == OB_JOB_POST) { /* which post was not stored */
      lua_pushstring(L, j->u.post.rec.guid);
      lua_setfield(L, -3, "guid");
      if (j->u.post.rec.corr_key) {
        lua_pushstring(L, j->u.post.rec.corr_key);
        lua_setfield(L, -3, "key");
      }
    }
    return n;
  }
  switch (j->kind) {
  case OB_JOB_POST: /* what identifies the post on the server: its guid, or its key */
    lua_pushstring(L, j->u.post.rec.corr_key ? j->u.post.rec.corr_key : j->u.post.rec.guid);
    break;
  case OB_JOB_CLAIM: { /* by column: a table per record cost more than the rest of its delivery's bookkeeping */
    const ob_claim_out *c = &j->u.claim.out;
    int n = (int)c->n;
    lua_createtable(L, 0, 10);
    set_int(L, "n", (int64_t)n);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
      lua_pushinteger(L, (lua_Integer)c->rows[i].id);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "id");
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
      lua_pushlstring(L, c->rows[i].request, c->rows[i].request_len);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "request");
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
      lua_pushinteger(L, (lua_Integer)c->rows[i].attempts);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "attempts");
    /* kind and ordered: only the records that have them (most are ExternalEvents, unordered) */
    lua_createtable(L, 0, 0);
    for (int i = 0; i < n; i++)
      if (c->rows[i].kind != OB_KIND_EVENT) {
        lua_pushstring(L, kind_name(c->rows[i].kind));
        lua_rawseti(L, -2, i + 1);
      }
    lua_setfield(L, -2, "kind");
    lua_createtable(L, 0, 0);
    for (int i = 0; i < n; i++)
      if (c->rows[i].ordered) {
        lua_pushboolean(L, 1);
        lua_rawseti(L, -2, i + 1);
      }
    lua_setfield(L, -2, "ordered");
    lua_createtable(L, 0, 0);
    for (int i = 0; i < n; i++)
      if (c->rows[i].block) {
        lua_pushinteger(L, (lua_Integer)c->rows[i].block);
        lua_rawseti(L, -2, i + 1);
      }
    lua_setfield(L, -2, "block");
    set_due(L, "next_due", c->next_due);
    set_int(L, "pending", c->pending);
    if (j->u.claim.nacks) {
      lua_createtable(L, 0, 4);
      set_int(L, "delivered", c->acked.delivered);
      set_int(L, "duplicates", c->acked.duplicates);
      set_int(L, "retries", c->acked.retries);
      set_int(L, "dead", c->acked.dead);
      lua_setfield(L, -2, "acked");
    }
    break;
  }
  case OB_JOB_ACK:
    lua_createtable(L, 0, 4);
    set_int(L, "delivered", j->u.ack.counts.delivered);
    set_int(L, "duplicates", j->u.ack.counts.duplicates);
    set_int(L, "retries", j->u.ack.counts.retries);
    set_int(L, "dead", j->u.ack.counts.dead);
    break;
  case OB_JOB_STATS: {
    const ob_stats *s = &j->u.stats;
    lua_createtable(L, 0, 10);
    set_int(L, "accepted", s->accepted);
    set_int(L, "delivered", s->delivered);
    set_int(L, "duplicates", s->duplicates);
    set_int(L, "retries", s->retries);
    set_int(L, "dead", s->dead);
    set_int(L, "pending", s->pending);
    set_int(L, "dead_letters", s->dead_letters);
    set_int(L, "bytes", s->bytes);
    int64_t age = s->oldest_pending_ms >= 0 ? ob_now_ms() - s->oldest_pending_ms : 0;
    lua_pushnumber(L, age > 0 ? (lua_Number)age / 1000.0 : 0);
    lua_setfield(L, -2, "oldest_pending_age");
    set_due(L, "next_due", s->next_due_ms);
    break;
  }
  case OB_JOB_LIST:
    lua_createtable(L, (int)j->u.list.n, 0);
    for (size_t i = 0; i < j->u.list.n; i++) {
      push_record(L, &j->u.list.recs[i]);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  case OB_JOB_REQUEUE:
  case OB_JOB_PURGE: lua_pushinteger(L, (lua_Integer)j->u.change.count); break;
  case OB_JOB_WATCH: lua_pushboolean(L, j->u.watch.fired); break;
  default: lua_pushboolean(L, 1); break;
  }
  return 1;
}

/* Move the outcome of h's finished job into its cached result (user value JV_RESULT). */
static void job_settle(lua_State *L, int hidx, lh_job *h) {
  int top = lua_gettop(L);
  ob_job *j = h->j;
  int n = push_job_outcome(L, j);
  h->j = NULL;
  ob_job_release(j);
  lua_pushvalue(L, n == 1 ? top + 1 : top + 2); /* the value, or the error object */
  lua_setiuservalue(L, hidx, JV_RESULT);
  h->nresults = n;
  lua_settop(L, top);
}

static int push_results(lua_State *L, int hidx) {
  lh_job *h = lua_touserdata(L, hidx);
  if (h->nresults == 1) {
    lua_getiuservalue(L, hidx, JV_RESULT);
    return 1;
  }
  lua_pushnil(L);
  lua_getiuservalue(L, hidx, JV_RESULT);
  lua_getfield(L, -1, "code");
  return 3;
}

static int anchored(const lh_job *h) { return h->j && h->j->anchor; }

static void unanchor(lua_State *L, int hidx, lh_job *h) {
  lua_getiuservalue(L, hidx, JV_OUTBOX);
  if (lua_getiuservalue(L, -1, OV_ANCHORS) == LUA_TTABLE) luaL_unref(L, -1, h->j->anchor);
  lua_pop(L, 2);
  h->j->anchor = 0;
}

/* job:wait([timeout]) -> the job's results | false (not finished after timeout seconds) */
static int job_wait(lua_State *L) {
  lh_job *h = check_job(L);
  double timeout = -1;
  if (!lua_isnoneornil(L, 2)) {
    lh_path root = lh_path_root("wait", 1);
    timeout = lua_isnumber(L, 2) && lua_tonumber(L, 2) == 0 ? 0 : check_seconds(L, 2, &root, 0);
  }
  if (h->j) {
    if (!ob_job_wait(h->j, timeout)) { lua_pushboolean(L, 0); return 1; }
    if (anchored(h)) unanchor(L, 1, h); /* the caller takes the results: no callback */
    job_settle(L, 1, h);
  }
  if (!h->nresults) return lh_misuse(L, "littlehorse: this outbox job is closed");
  return push_results(L, 1);
}

static int job_done(lua_State *L) {
  lh_job *h = check_job(L);
  lua_pushboolean(L, h->j == NULL || ob_job_wait(h->j, 0));
  return 1;
}

/* job:id() -> the job's process-unique id (for the wake channel); nil once settled */
static int job_id(lua_State *L) {
  lh_job *h = check_job(L);
  if (h->j) lua_pushnumber(L, (lua_Number)h->j->id);
  else lua_pushnil(L);
  return 1;
}

/* job:cancel(): a job still queued is taken off the queue and completes with CANCELLED (a
 * post cancelled so is not stored); one the writer has begun completes as it would have. */
static int job_cancel(lua_State *L) {
  lh_job *h = check_job(L);
  if (h->j) ob_job_cancel(h->j);
  return 0;
}

/* Idempotent; __gc and __close share it; never blocks (the writer frees a job it still runs). */
static int job_close(lua_State *L) {
  lh_job *h = luaL_checkudata(L, 1, LH_OUTBOX_JOB_MT);
  if (inherited(h->pid)) { h->j = NULL; return 0; }
  if (anchored(h)) unanchor(L, 1, h);
  if (h->j) {
    ob_job_release(h->j);
    h->j = NULL;
  }
  return 0;
}

static int job_tostring(lua_State *L) {
  lh_job *h = luaL_checkudata(L, 1, LH_OUTBOX_JOB_MT);
  const char *state = inherited(h->pid) ? "made in another process" :
                      h->j ? (ob_job_wait(h->j, 0) ? "done" : "in flight") : "settled";
  lua_pushfstring(L, LH_OUTBOX_JOB_MT ": %p (%s, %s)", (void *)h, job_names[h->kind], state);
  return 1;
}

/* ---- posting ---- */

/* Copy the packed request (with a guid added when it has none) and its columns into one
 * block owned by the job. */
static void fill_post(lua_State *L, lh_outbox *o, ob_job *j, int kind, const char *bytes, size_t len) {
  ob_fields f;
  if (!ob_read_request(kind, bytes, len, &f)) {
    ob_job_discard(j);
    luaL_error(L, "littlehorse: the packed request does not parse (a bug: please report it)");
  }
  char guid[33];
  int add_guid = kind == OB_KIND_EVENT && f.guid_len == 0;
  if (kind == OB_KIND_CORRELATED || add_guid) {
    if (!ob_new_guid(guid)) {
      ob_job_discard(j);
      luaL_error(L, "littlehorse: cannot read random bytes for a guid");
    }
    f.guid = guid;
    f.guid_len = 32;
  }
  size_t req_len = len + (add_guid ? 34 : 0);
  size_t need = req_len + (f.guid_len + 1) + (f.wf_len + 1) * (o->ordered ? 2 : 1) + (f.def_len + 1) + (f.key_len + 1);
  char *m = malloc(need);
  if (!m) {
    ob_job_discard(j);
    luaL_error(L, "littlehorse: out of memory");
  }
  j->u.post.mem = m;
  ob_new *r = &j->u.post.rec;
  memset(r, 0, sizeof *r);
  r->kind = kind;
  r->request = m;
  memcpy(m, bytes, len);
  if (add_guid) ob_put_guid_field(m + len, guid, 32);
  r->request_len = req_len;
  m += req_len;
  memcpy(m, f.guid, f.guid_len);
  m[f.guid_len] = '\0';
  r->guid = m;
  m += f.guid_len + 1;
  if (f.wf) {
    size_t n = ob_format_wf_run_id(f.wf, f.wf_len, m);
    r->wf_run_id = m;
    if (o->ordered) r->order_key = m;
    m += n + 1;
  }
  if (f.def) {
    memcpy(m, f.def, f.def_len);
    m[f.def_len] = '\0';
    r->def_name = m;
    m += f.def_len + 1;
  }
  if (f.key) {
    memcpy(m, f.key, f.key_len);
    m[f.key_len] = '\0';
    r->corr_key = m;
  }
  r->created_at = ob_now_ms();
}

/* outbox:post_async(request [, { on_done = fn } [, fname]]) -> job, guid (the job's result is
 * the guid too, once the record is stored). fname: the function misuse errors name (the Lua
 * layer's method; default "post_async"). outbox:post_correlated_async takes a
 * put_correlated_event request the same way and returns job, key (its result is the key): the
 * server deduplicates it by its key; its record's guid only names the record in the file. */
static int post_body(lua_State *L, int kind, const char *default_name) {
  lua_settop(L, 4);
  lh_outbox *o = check_outbox(L);
  lh_context *c = lh_context_get(L);
  const char *fname = lua_type(L, 4) == LUA_TSTRING ? lua_tostring(L, 4) : default_name; /* held at 4 */
  job_opts jo;
  job_opts_at(L, 3, fname, 2, 0, &jo);
  lh_path root = lh_path_root(fname, 1);
  if (kind == OB_KIND_CORRELATED) lh_pack_put_correlated_event(L, 2, &root, c);
  else lh_pack_put_external_event(L, 2, &root, c);
  /* a finalizer that ran during packing may have closed the outbox */
  if (o->closed || !o->ob) return lh_misuse(L, "littlehorse: this outbox is closed");
  ob_job *j = new_job(L, o, OB_JOB_POST);
  fill_post(L, o, j, kind, c->wire.data, c->wire.len);
  push_job(L, o, j, &jo);
  /* the job's own copy: alive while the handle is */
  lua_pushstring(L, kind == OB_KIND_CORRELATED ? j->u.post.rec.corr_key : j->u.post.rec.guid);
  return 2;
}

static int post_event_body(lua_State *L) { return post_body(L, OB_KIND_EVENT, "post_async"); }
static int post_correlated_body(lua_State *L) { return post_body(L, OB_KIND_CORRELATED, "post_correlated_async"); }

static int post_async(lua_State *L) {
  check_outbox(L);
  return lh_context_protect(L, post_event_body);
}

static int post_correlated_async(lua_State *L) {
  check_outbox(L);
  return lh_context_protect(L, post_correlated_body);
}

/* ---- the other jobs ---- */

/* outbox:ready_async([opts]) -> job (true once the file is open, or why it cannot be) */
static int ready_async(lua_State *L) {
  lh_outbox *o = check_outbox(L);
  lua_settop(L, 2);
  job_opts jo;
  job_opts_at(L, 2, "ready_async", 1, 0, &jo);
  push_job(L, o, new_job(L, o, OB_JOB_OPEN), &jo);
  return 1;
}

static int outcome_of(const char *s) {
  if (!s) return 0;
  if (strcmp(s, "delivered") == 0) return OB_ACK_DELIVERED;
  if (strcmp(s, "duplicate") == 0) return OB_ACK_DUPLICATE;
  if (strcmp(s, "retry") == 0) return OB_ACK_RETRY;
  if (strcmp(s, "dead") == 0) return OB_ACK_DEAD;
  if (strcmp(s, "release") == 0) return OB_ACK_RELEASE;
  if (strcmp(s, "block") == 0) return OB_ACK_BLOCK;
  return 0;
}

/* A string field of the ack table at -1, copied into m; NULL when absent. */
static const char *ack_text(lua_State *L, const char *k, char **m) {
  lua_pushstring(L, k);
  lua_rawget(L, -2);
  const char *out = NULL;
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (n > 4096) n = 4096; /* an error message, kept for the dead-letter list */
    memcpy(*m, s, n);
    (*m)[n] = '\0';
    out = *m;
    *m += n + 1;
  }
  lua_pop(L, 1);
  return out;
}

/* Read the list of outcomes at idx: { { id =, outcome = "delivered"|"duplicate"|"retry"|"dead",
 * delay =, code =, message = }, ... } (raw), checked, into *acks and *mem (malloc'd). An item
 * may also be a record id alone, which means { id = id, outcome = "delivered" }: the common
 * outcome, acknowledged without a table per record. */
static void read_acks(lua_State *L, int idx, const lh_path *root, ob_job *j, ob_ack **acks, size_t *nacks, char **mem) {
  size_t n = (size_t)lua_rawlen(L, idx), text = 0;
  static const char *const fields[] = { "id", "outcome", "delay", "code", "message", "count", "duplicates", NULL };
  for (size_t i = 1; i <= n; i++) { /* check, and size the strings */
    lh_path p = lh_path_index(root, (lua_Integer)i);
    lua_rawgeti(L, idx, (lua_Integer)i);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      if (!(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1)) {
        ob_job_discard(j);
        lh_path_error(L, &p, "expected a record id or a table");
      }
      lua_pop(L, 1);
      continue;
    }
    if (!lua_istable(L, -1)) { ob_job_discard(j); lh_path_error(L, &p, "expected a record id or a table"); }
    lh_check_keys(L, -1, &p, fields, "field");
    int block = 0; /* outcome "block" (read before count, which it needs) */
    for (int f = 0; f < 7; f++) {
      lua_pushstring(L, fields[f]);
      lua_rawget(L, -2);
      int t = lua_type(L, -1);
      lh_path q = lh_path_field(&p, fields[f], strlen(fields[f]));
      const char *why = NULL;
      if (f == 0 && !(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1)) why = "expected a record id";
      if (f == 1 && !outcome_of(t == LUA_TSTRING ? lua_tostring(L, -1) : NULL))
        why = "expected \"delivered\", \"duplicate\", \"retry\", \"dead\", \"release\" or \"block\"";
      if (f == 2 && t != LUA_TNIL && !(t == LUA_TNUMBER && lua_tonumber(L, -1) >= 0 && lua_tonumber(L, -1) < 1e9))
        why = "expected a number of seconds >= 0";
      if (f == 3 || f == 4) {
        if (t != LUA_TNIL && t != LUA_TSTRING) why = "expected a string";
      } else if (f == 5 && !(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= OB_BLOCK_MAX)) {
        if (t != LUA_TNIL || block) why = "expected the number of records of the block (1 to 64)";
      } else if (f == 6 && t != LUA_TNIL && !(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0)) {
        why = "expected a count >= 0";
      }
      if (f == 1) block = outcome_of(t == LUA_TSTRING ? lua_tostring(L, -1) : NULL) == OB_ACK_BLOCK;
      if ((f == 3 || f == 4) && t == LUA_TSTRING) {
        size_t len = lua_rawlen(L, -1);
        text += (len > 4096 ? 4096 : len) + 1;
      }
      if (why) { ob_job_discard(j); lh_path_error(L, &q, "%s", why); }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  *acks = calloc(n ? n : 1, sizeof **acks);
  *mem = malloc(text ? text : 1);
  if (!*acks || !*mem) {
    ob_job_discard(j); /* frees what is set */
    luaL_error(L, "littlehorse: out of memory");
  }
  *nacks = n;
  int64_t now = ob_now_ms();
  char *m = *mem;
  for (size_t i = 1; i <= n; i++) {
    ob_ack *a = &(*acks)[i - 1];
    lua_rawgeti(L, idx, (lua_Integer)i);
    if (lua_type(L, -1) == LUA_TNUMBER) { /* a record delivered (checked above) */
      a->id = (int64_t)lua_tointeger(L, -1);
      a->outcome = OB_ACK_DELIVERED;
      lua_pop(L, 1);
      continue;
    }
    lua_pushliteral(L, "id");
    lua_rawget(L, -2);
    a->id = (int64_t)lua_tointeger(L, -1);
    lua_pushliteral(L, "outcome");
    lua_rawget(L, -3);
    a->outcome = outcome_of(lua_tostring(L, -1));
    lua_pushliteral(L, "delay");
    lua_rawget(L, -4);
    a->due_at = now + (int64_t)(lua_tonumber(L, -1) * 1000.0);
    lua_pushliteral(L, "count");
    lua_rawget(L, -5);
    a->count = (int64_t)lua_tointeger(L, -1);
    lua_pushliteral(L, "duplicates");
    lua_rawget(L, -6);
    a->duplicates = (int64_t)lua_tointeger(L, -1);
    lua_pop(L, 5);
    a->code = ack_text(L, "code", &m);
    a->message = ack_text(L, "message", &m);
    lua_pop(L, 1);
  }
}

/* outbox:claim_async(limit [, acks [, opts]]) -> job: apply the outcomes acks (as ack_async
 * takes them) and lease up to limit due records, in one transaction. Its result holds the n
 * leased records by column, what delivery uses and no more: id[i], request[i] (the bytes to
 * send), attempts[i], kind[i] ("correlated", or nil for an ExternalEvent), ordered[i] (true, or
 * nil: it has no order key), block[i] (the id of the block it came in, or nil: see
 * OB_BLOCK_MIN; acknowledge a block whose records were all delivered with one outcome
 * { id = block, outcome = "block", count =, duplicates = }); with next_due (seconds, or nil), pending (records left, leased
 * included) and acked (what the outcomes changed, as ack_async's result). limit may be 0. */
static int claim_async(lua_State *L) {
  lh_outbox *o = check_outbox(L);
  lua_settop(L, 4);
  lh_path root = lh_path_root("claim_async", 1), racks = lh_path_root("claim_async", 2);
  lua_Integer limit = check_count(L, 2, &root, 0, 10000);
  if (!lua_isnil(L, 3) && !lua_istable(L, 3)) lh_path_error(L, &racks, "expected a list of outcomes");
  job_opts jo;
  job_opts_at(L, 4, "claim_async", 3, 0, &jo);
  ob_job *j = new_job(L, o, OB_JOB_CLAIM);
  j->u.claim.limit = (size_t)limit;
  if (!lua_isnil(L, 3)) read_acks(L, 3, &racks, j, &j->u.claim.acks, &j->u.claim.nacks, &j->u.claim.mem);
  push_job(L, o, j, &jo);
  return 1;
}

/* outbox:ack_async(acks [, opts]) -> job (what the outcomes changed: delivered, duplicates,
 * retries, dead) */
static int ack_async(lua_State *L) {
  lh_outbox *o = check_outbox(L);
  lua_settop(L, 3);
  lh_path root = lh_path_root("ack_async", 1);
  if (!lua_istable(L, 2)) lh_path_error(L, &root, "expected a list of outcomes");
  job_opts jo;
  job_opts_at(L, 3, "ack_async", 2, 0, &jo);
  ob_job *j = new_job(L, o, OB_JOB_ACK);
  read_acks(L, 2, &root, j, &j->u.ack.acks, &j->u.ack.n, &j->u.ack.mem);
  push_job(L, o, j, &jo);
  return 1;
}

/* outbox:stats_async([opts]) -> job (the counters and gauges) */
static int stats_async(lua_State *L) {
  lh_outbox *o = check_outbox(L);
  lua_settop(L, 2);
  job_opts jo;
  job_opts_at(L, 2, "stats_async", 1, 0, &jo);
  push_job(L, o, new_job(L, o, OB_JOB_STATS), &jo);
  return 1;
}

/* outbox:list_async("pending" | "dead" [, { after =, limit =, requests = , on_done = }]) -> job */
static int list_async(lua_State *L) {
  lh_outbox *o = check_outbox(L);
  lua_settop(L, 3);
  static const char *const states[] = { "pending", "dead", NULL };
  int state = luaL_checkoption(L, 2, NULL, states);
  job_opts jo;
  job_opts_at(L, 3, "list_async", 2, 1, &jo);
  ob_job *j = new_job(L, o, OB_JOB_LIST);
  j->u.list.state = state;
  j->u.list.after = (int64_t)jo.after;
  j->u.list.limit = (size_t)jo.limit;
  j->u.list.with_request = jo.requests;
  push_job(L, o, j, &jo);
  return 1;
}

/* requeue_async / purge_async: ids (a list of record ids) or "all" */
static int change_async(lua_State *L, int kind, const char *name) {
  lh_outbox *o = check_outbox(L);
  lua_settop(L, 3);
  lh_path root = lh_path_root(name, 1);
  int all = lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "all") == 0;
  if (!all && !lua_istable(L, 2)) lh_path_error(L, &root, "expected a list of record ids, or \"all\"");
  size_t n = all ? 0 : (size_t)lua_rawlen(L, 2);
  for (size_t i = 1; i <= n; i++) {
    lh_path p = lh_path_index(&root, (lua_Integer)i);
    lua_rawgeti(L, 2, (lua_Integer)i);
    check_count(L, -1, &p, 1, LUA_MAXINTEGER);
    lua_pop(L, 1);
  }
  job_opts jo;
  job_opts_at(L, 3, name, 2, 0, &jo);
  ob_job *j = new_job(L, o, kind);
  if (!all) {
    j->u.change.ids = malloc((n ? n : 1) * sizeof *j->u.change.ids);
    if (!j->u.change.ids) {
      ob_job_discard(j);
      return luaL_error(L, "littlehorse: out of memory");
    }
    for (size_t i = 1; i <= n; i++) {
      lua_rawgeti(L, 2, (lua_Integer)i);
      j->u.change.ids[i - 1] = (int64_t)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    j->u.change.nids = n;
  }
  push_job(L, o, j, &jo);
  return 1;
}

static int requeue_async(lua_State *L) { return change_async(L, OB_JOB_REQUEUE, "requeue_async"); }
static int purge_async(lua_State *L) { return change_async(L, OB_JOB_PURGE, "purge_async"); }

/* outbox:watch_async(seconds [, opts]) -> job (true when posts were stored since, false when
 * the time ran out first) */
static int watch_async(lua_State *L) {
  lh_outbox *o = check_outbox(L);
  lua_settop(L, 3);
  lh_path root = lh_path_root("watch_async", 1);
  double s = check_seconds(L, 2, &root, 1);
  job_opts jo;
  job_opts_at(L, 3, "watch_async", 2, 0, &jo);
  ob_job *j = new_job(L, o, OB_JOB_WATCH);
  j->u.watch.until_ms = ob_now_ms() + (int64_t)(s * 1000.0);
  push_job(L, o, j, &jo);
  return 1;
}

/* outbox:poll([timeout]) -> n: settle finished jobs that have an on_done callback, calling it
 * with their results (as client:poll does for calls). */
static int outbox_poll(lua_State *L) {
  lh_outbox *o = check_outbox(L);
  double timeout = 0;
  if (!lua_isnoneornil(L, 2)) {
    lh_path root = lh_path_root("poll", 1);
    timeout = lua_isnumber(L, 2) && lua_tonumber(L, 2) == 0 ? 0 : check_seconds(L, 2, &root, 0);
  }
  lua_settop(L, 1);
  ob_job *done[64];
  int slots[64], failed = 0;
  size_t total = 0, n;
  lua_pushnil(L);
  int err_slot = lua_gettop(L);
  lua_getiuservalue(L, 1, OV_ANCHORS);
  int anchors = lua_gettop(L);
  while (o->ob && (n = ob_outbox_poll(o->ob, total ? 0 : timeout, done, 64)) > 0) {
    for (size_t i = 0; i < n; i++) slots[i] = done[i]->anchor;
    if (!lua_checkstack(L, (int)n + 8)) luaL_error(L, "littlehorse: out of memory");
    int first = lua_gettop(L) + 1;
    for (size_t i = 0; i < n; i++) {
      if (!slots[i]) continue;
      lua_rawgeti(L, anchors, slots[i]);
      luaL_unref(L, anchors, slots[i]);
      lh_job *h = lua_touserdata(L, -1);
      if (h->j) h->j->anchor = 0;
    }
    int last = lua_gettop(L);
    for (int hidx = first; hidx <= last; hidx++) {
      lh_job *h = lua_touserdata(L, hidx);
      if (h->j) job_settle(L, hidx, h);
      if (!h->nresults) continue;
      lua_getiuservalue(L, hidx, JV_ON_DONE);
      int nres = push_results(L, hidx);
      if (lua_pcall(L, nres, 0, 0) != LUA_OK && !failed) {
        lua_replace(L, err_slot);
        failed = 1;
      }
      lua_settop(L, last);
    }
    lua_settop(L, anchors);
    total += n;
    if (failed) break;
  }
  if (failed) {
    lua_pushvalue(L, err_slot);
    return lua_error(L);
  }
  lua_pushinteger(L, (lua_Integer)total);
  return 1;
}

/* outbox:fd() -> an eventfd, readable while finished jobs wait for poll() */
static int outbox_fd(lua_State *L) {
  lh_outbox *o = check_outbox(L);
  lua_pushinteger(L, o->ob->efd);
  return 1;
}

static int outbox_in_flight(lua_State *L) {
  lh_outbox *o = check_outbox(L);
  lua_pushinteger(L, (lua_Integer)ob_outbox_in_flight(o->ob));
  return 1;
}

static int outbox_path(lua_State *L) {
  lh_outbox *o = luaL_checkudata(L, 1, LH_OUTBOX_MT);
  if (o->closed || !o->ob) lua_pushnil(L);
  else lua_pushstring(L, o->ob->path);
  return 1;
}

static int outbox_is_closed(lua_State *L) {
  lh_outbox *o = luaL_checkudata(L, 1, LH_OUTBOX_MT);
  lua_pushboolean(L, o->closed);
  return 1;
}

/* Idempotent. close() and __close wait until the writer has finished what was queued (posts
 * queued are committed) and closed the file; __gc never blocks: the writer finishes alone. */
static void outbox_teardown(lua_State *L, int wait) {
  lh_outbox *o = luaL_checkudata(L, 1, LH_OUTBOX_MT);
  o->closed = 1;
  if (!o->ob) return;
  if (inherited(o->pid)) { o->ob = NULL; return; } /* the parent's: abandoned */
  ob_outbox *ob = o->ob;
  o->ob = NULL;
  ob_outbox_close(ob, wait);
}

static int outbox_close(lua_State *L) { outbox_teardown(L, 1); return 0; }
static int outbox_gc(lua_State *L) { outbox_teardown(L, 0); return 0; }

static int outbox_tostring(lua_State *L) {
  lh_outbox *o = luaL_checkudata(L, 1, LH_OUTBOX_MT);
  if (o->closed || !o->ob) lua_pushfstring(L, LH_OUTBOX_MT ": %p (closed)", (void *)o);
  else if (inherited(o->pid))
    lua_pushfstring(L, LH_OUTBOX_MT ": %p (%s, made in process %d: unusable in this forked process)", (void *)o,
                    o->ob->path, (int)o->pid);
  else lua_pushfstring(L, LH_OUTBOX_MT ": %p (%s)", (void *)o, o->ob->path);
  return 1;
}

static const luaL_Reg outbox_methods[] = {
  { "post_async", post_async },
  { "post_correlated_async", post_correlated_async },
  { "ready_async", ready_async },
  { "claim_async", claim_async },
  { "ack_async", ack_async },
  { "stats_async", stats_async },
  { "list_async", list_async },
  { "requeue_async", requeue_async },
  { "purge_async", purge_async },
  { "watch_async", watch_async },
  { "poll", outbox_poll },
  { "fd", outbox_fd },
  { "in_flight", outbox_in_flight },
  { "path", outbox_path },
  { "is_closed", outbox_is_closed },
  { "close", outbox_close },
  { NULL, NULL },
};

static const luaL_Reg job_methods[] = {
  { "wait", job_wait },
  { "done", job_done },
  { "id", job_id },
  { "cancel", job_cancel },
  { "close", job_close },
  { NULL, NULL },
};

static void new_type(lua_State *L, const char *name, const luaL_Reg *meths, lua_CFunction gc,
                     lua_CFunction close, lua_CFunction tostring) {
  /* context on the stack top */
  if (luaL_newmetatable(L, name)) {
    lua_newtable(L);
    lua_pushvalue(L, -3);
    luaL_setfuncs(L, meths, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
#endif
    (void)close;
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

void lh_outbox_register(lua_State *L) {
  new_type(L, LH_OUTBOX_MT, outbox_methods, outbox_gc, outbox_close, outbox_tostring);
  new_type(L, LH_OUTBOX_JOB_MT, job_methods, job_close, job_close, job_tostring);
}

/* ---- core._outbox(path [, opts]) ---- */

static int64_t opt_ms(lua_State *L, const lh_path *p, int allow_zero) {
  return (int64_t)llround(check_seconds(L, -1, p, allow_zero) * 1000.0);
}

/* core._outbox(path [, { max_rows =, max_bytes =, max_age =, lease =, busy_timeout =, check =,
 *   ordered = }]) -> outbox. Options are read raw; unknown keys raise. The file is opened by
 * the writer thread (ready_async tells how that went); no disk I/O happens here. */
int lh_outbox_new(lua_State *L) {
  size_t plen;
  const char *path = luaL_checklstring(L, 1, &plen);
  if (plen == 0 || memchr(path, '\0', plen)) luaL_argerror(L, 1, "expected a file path (non-empty, without NUL bytes)");
  lh_path root = lh_path_root("outbox", 2);
  ob_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.open.busy_timeout_ms = 5000;
  cfg.open.check = 1;
  cfg.limits.max_rows = 100000;
  cfg.limits.max_bytes = 256LL * 1024 * 1024;
  cfg.limits.max_age_ms = 86400LL * 1000;
  cfg.lease_ms = 60000;
  int ordered = 0;
  if (!lua_isnoneornil(L, 2)) {
    if (!lua_istable(L, 2)) lh_path_error(L, &root, "expected a table of options, got %s", luaL_typename(L, 2));
    static const char *const names[] = { "max_rows", "max_bytes", "max_age", "lease", "busy_timeout", "check",
                                         "ordered", NULL };
    lh_check_keys(L, 2, &root, names, "option");
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      const char *k = lua_tostring(L, -2);
      lh_path p = lh_path_field(&root, k, strlen(k));
      if (strcmp(k, "max_rows") == 0) cfg.limits.max_rows = (int64_t)check_count(L, -1, &p, 0, LUA_MAXINTEGER);
      else if (strcmp(k, "max_bytes") == 0) cfg.limits.max_bytes = (int64_t)check_count(L, -1, &p, 0, LUA_MAXINTEGER);
      else if (strcmp(k, "max_age") == 0) cfg.limits.max_age_ms = opt_ms(L, &p, 1);
      else if (strcmp(k, "lease") == 0) cfg.lease_ms = opt_ms(L, &p, 0);
      else if (strcmp(k, "busy_timeout") == 0) cfg.open.busy_timeout_ms = opt_ms(L, &p, 1);
      else if (strcmp(k, "check") == 0 || strcmp(k, "ordered") == 0) {
        if (!lua_isboolean(L, -1)) lh_path_error(L, &p, "expected a boolean");
        if (k[0] == 'c') cfg.open.check = lua_toboolean(L, -1);
        else ordered = lua_toboolean(L, -1);
      }
      lua_pop(L, 1);
    }
  }
  lh_outbox *o = lua_newuserdatauv(L, sizeof *o, OUTBOX_NUV);
  memset(o, 0, sizeof *o);
  o->closed = 1;
  o->pid = lh_runtime_pid();
  o->ordered = ordered;
  luaL_getmetatable(L, LH_OUTBOX_MT);
  lua_setmetatable(L, -2);
  lua_newtable(L);
  lua_setiuservalue(L, -2, OV_ANCHORS);
  ob_err e;
  o->ob = ob_outbox_new(path, &cfg, &e);
  if (!o->ob) return luaL_error(L, "littlehorse: %s", e.msg);
  o->closed = 0;
  /* the first job opens the file: everything queued after it waits for that */
  ob_job *j = ob_job_new(o->ob, OB_JOB_OPEN);
  if (!j) return luaL_error(L, "littlehorse: out of memory");
  ob_job_submit(j);
  ob_job_release(j); /* nobody waits for this one: ready_async asks again */
  return 1;
}
