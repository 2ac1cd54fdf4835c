/* The client userdata ("littlehorse.client").
 *
 * A client owns one gRPC channel, a pluck queue for blocking calls, and (made on first use)
 * an async engine (async.c) for calls in flight, each one held by a call handle (handle.c).
 * Blocking and async calls share the request conversion (messages.c) and the reply/status
 * handling (lh_rpc_push_outcome, rpc.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grpc/grpc.h>
#include "client.h"
#include "async.h"
#include "call.h"
#include "channel.h"
#include "context.h"
#include "error.h"
#include "handle.h"
#include "object.h"
#include "path.h"
#include "rpc.h"
#include "runtime.h"

static lh_client *check_client(lua_State *L) {
  lh_context *c = lh_context_get(L);
  lh_client *cl = lh_object_check(L, c ? c->client_mt : NULL, LH_CLIENT_MT);
  if (cl->closed) lh_misuse(L, "littlehorse: this client is closed");
  if (lh_object_inherited(cl->pid)) lh_object_refuse_inherited(L, "client", cl->pid);
  return cl;
}

/* ---- call options: { timeout =, metadata = { key = value }, on_done = fn, reply = } ---- */

#define MAX_CALL_HEADERS (LH_CALL_MAX_MD - 1) /* one entry is kept for the tenant */

/* The options of one call, read once. */
typedef struct call_opts {
  double timeout;
  int headers;   /* stack index of the first of nheaders (name, value) pairs of checked
                  * strings, held there until the call is started (gRPC copies them) */
  int nheaders;
  int no_reply;  /* reply = false: success is `true`, the reply message is not decoded */
  int on_done;   /* stack index of the on_done function (async calls), or 0 */
} call_opts;

enum { OPT_TIMEOUT, OPT_REPLY, OPT_ON_DONE, OPT_METADATA, OPT_OTHER };

static int option_name(lua_State *L, int k) {
  if (lua_type(L, k) != LUA_TSTRING) return OPT_OTHER;
  size_t n;
  const char *s = lua_tolstring(L, k, &n);
  switch (n) { /* the length picks the one candidate (every call reads its options) */
  case 7:
    if (memcmp(s, "timeout", 7) == 0) return OPT_TIMEOUT;
    if (memcmp(s, "on_done", 7) == 0) return OPT_ON_DONE;
    break;
  case 5: if (memcmp(s, "reply", 5) == 0) return OPT_REPLY; break;
  case 8: if (memcmp(s, "metadata", 8) == 0) return OPT_METADATA; break;
  }
  return OPT_OTHER;
}

/* The key at -2 of the options table at idx is not a call option: raise, naming the nearest
 * valid one (a typo such as `timout` would otherwise be ignored in silence). `retry` gets
 * its own message: the Lua client's puts and posts take it, and never pass it on to the C
 * call. */
static void unknown_call_opt(lua_State *L, int idx, const lh_path *root, const lh_rpc *r, int async) {
  static const char *const sync_names[] = { "timeout", "metadata", "reply", NULL };
  static const char *const async_names[] = { "timeout", "metadata", "reply", "on_done", NULL };
  /* The Lua client's blocking puts take `validate`; their async forms say so here (read raw,
   * as every option), which spares the Lua wrapper a check of its own on every call. */
  if (async && lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "validate") == 0
      && (strcmp(r->method, "put_external_event") == 0 || strcmp(r->method, "put_correlated_event") == 0)) {
    lh_path pv = lh_path_field(root, "validate", 8);
    lh_path_error(L, &pv, "an async call does not validate (the blocking %s does)", r->method);
  }
  if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "retry") == 0) {
    lh_path pr = lh_path_field(root, "retry", 5);
    lh_path_error(L, &pr, "%s does not retry: the littlehorse client's blocking puts and posts "
                  "(put_external_event, post_event, put_correlated_event, post_correlated_event) do", async ? "an async call" : "this call");
  }
  /* every key before this one was valid, so the first unknown key is this one */
  lh_check_keys(L, idx, root, async ? async_names : sync_names, "call option");
}

static void check_header(lua_State *L, const lh_path *pm) {
  size_t kl, vl;
  if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
    lh_path_error(L, pm, "headers and values must be strings");
  const char *k = lua_tolstring(L, -2, &kl), *v = lua_tolstring(L, -1, &vl);
  lh_path pk = lh_path_field(pm, k, kl);
  for (size_t i = 0; i < kl; i++)
    if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '-' || k[i] == '_' || k[i] == '.'))
      lh_path_error(L, &pk, "header names are lowercase letters, digits, '-', '_' and '.'");
  if (kl == 0 || (kl > 4 && memcmp(k + kl - 4, "-bin", 4) == 0) || strcmp(k, "tenantid") == 0)
    lh_path_error(L, &pk, "not a header a call may set");
  for (size_t i = 0; i < vl; i++)
    if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e) lh_path_error(L, &pk, "header values are printable ASCII");
}

/* During read_call_opts's walk of the options (key and value on the stack top): insert the
 * slots for on_done and metadata (both nil) below them; returns on_done's, *md metadata's. */
static int opt_slots(lua_State *L, int *md) {
  int fn = lua_gettop(L) - 1; /* where the key is now */
  lua_pushnil(L);
  lua_insert(L, fn);
  lua_pushnil(L);
  lua_insert(L, fn + 1);
  *md = fn + 1;
  return fn;
}

/* Read and check the options at index 3, raw (lua_next: no metamethod runs, and nothing is
 * allocated, so no finalizer runs either: the caller's code cannot run between the start of
 * a call and the conversion of its request). Every key must be a call option. Leaves on the
 * stack the on_done function and the headers, as (name, value) pairs. Misuse raises here,
 * before anything is allocated for the call. */
static void read_call_opts(lua_State *L, lh_client *cl, const lh_rpc *r, int async, call_opts *o) {
  lh_path root = lh_path_root(async ? r->async_method : r->method, 2);
  o->timeout = cl->timeout;
  o->nheaders = 0;
  o->headers = 0;
  o->no_reply = 0;
  o->on_done = 0;
  if (lua_isnoneornil(L, 3)) return;
  if (!lua_istable(L, 3)) lh_path_error(L, &root, "expected a table of call options, got %s", luaL_typename(L, 3));
  luaL_checkstack(L, 2 * MAX_CALL_HEADERS + 8, "littlehorse: out of memory");
  /* The slots for on_done and metadata are made when one of them is there: the usual
   * options (reply, timeout) need neither. */
  int fn = 0, md = 0;
  lua_pushnil(L);
  while (lua_next(L, 3)) {
    switch (option_name(L, -2)) {
    case OPT_TIMEOUT: {
      lh_path pt = lh_path_field(&root, "timeout", 7);
      o->timeout = lh_check_seconds(L, lua_gettop(L), &pt);
      break;
    }
    case OPT_REPLY: {
      lh_path pr = lh_path_field(&root, "reply", 5);
      if (!lua_isboolean(L, -1)) lh_path_error(L, &pr, "expected a boolean (false: success returns true, the reply is not decoded)");
      o->no_reply = !lua_toboolean(L, -1);
      break;
    }
    case OPT_ON_DONE:
      if (!async || !lua_isfunction(L, -1)) {
        lh_path po = lh_path_field(&root, "on_done", 7);
        lh_path_error(L, &po, async ? "expected a function" : "only async calls take on_done");
      }
      if (!fn) fn = opt_slots(L, &md);
      lua_pushvalue(L, -1);
      lua_replace(L, fn);
      break;
    case OPT_METADATA:
      if (!fn) fn = opt_slots(L, &md);
      lua_pushvalue(L, -1);
      lua_replace(L, md);
      break;
    default:
      unknown_call_opt(L, 3, &root, r, async);
    }
    lua_pop(L, 1);
  }
  if (!fn) return; /* neither on_done nor metadata */
  if (!lua_isnil(L, md)) {
    lh_path pm = lh_path_field(&root, "metadata", 8);
    if (!lua_istable(L, md)) lh_path_error(L, &pm, "expected a table of header = value strings");
    lua_pushnil(L);
    while (lua_next(L, md)) {
      check_header(L, &pm);
      if (o->nheaders == MAX_CALL_HEADERS) lh_path_error(L, &pm, "too many headers (at most %d)", MAX_CALL_HEADERS);
      o->nheaders++;
      lua_pop(L, 1);
    }
    /* the pairs go on the stack (a table for them would be an allocation) */
    o->headers = lua_gettop(L) + 1;
    lua_pushnil(L);
    while (lua_next(L, md)) {
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      lua_insert(L, -4); /* name, value below the iteration's key and value */
      lua_insert(L, -4);
      lua_pop(L, 1);
    }
  }
  if (lua_isnil(L, fn)) {
    lua_remove(L, md);
    lua_remove(L, fn);
    if (o->headers) o->headers -= 2;
  } else {
    o->on_done = fn; /* stays on the stack for the handle */
    lua_remove(L, md);
    if (o->headers) o->headers -= 1;
  }
}

/* Copy the tenant header and the checked headers into st. Cannot raise. */
static void add_headers(lua_State *L, lh_client *cl, const call_opts *o, lh_call_state *st) {
  if (cl->tenant) lh_call_add_md_slices(st, cl->tenant_key, cl->tenant_value);
  for (int i = 0; i < o->nheaders; i++) {
    size_t kl, vl;
    const char *k = lua_tolstring(L, o->headers + 2 * i, &kl), *v = lua_tolstring(L, o->headers + 2 * i + 1, &vl);
    lh_call_add_md(st, k, kl, v, vl);
  }
}

/* A request over the size limit never leaves: the server would refuse it anyway (gRPC's
 * default 4 MiB inbound limit), after the bytes had crossed the network. */
static int too_large(lua_State *L, lh_client *cl, const lh_rpc *r, lh_context *c) {
  char msg[160];
  int n = snprintf(msg, sizeof msg, "the request is %zu bytes, larger than the %zu-byte limit (max_send_size); nothing was sent",
                   c->wire.len, cl->max_send);
  lh_error_push(L, GRPC_STATUS_RESOURCE_EXHAUSTED, msg, (size_t)n, r->name, -1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -3, "sent"); /* refused here: another attempt cannot help */
  return 3;
}

/* What every call does first: check the client, read the options, pack the request into the
 * context's wire buffer. Returns 0, or the number of results pushed (nil, err, code) when the
 * request is over max_send_size. */
static int begin_call(lua_State *L, lh_rpc_id m, int async, int packed, lh_client **clp, call_opts *o) {
  /* METHOD checked self before the body started; only close() can have happened since (a
   * finalizer run by the allocation of the body's closure). */
  lh_client *cl = *clp = lua_touserdata(L, 1);
  if (cl->closed) lh_misuse(L, "littlehorse: this client is closed");
  lh_context *c = lh_context_get(L);
  const lh_rpc *r = packed ? &lh_rpcs_packed[m] : &lh_rpcs[m];
  lh_path req_root = lh_path_root(async ? r->async_method : r->method, 1);
  read_call_opts(L, cl, r, async, o);
  r->pack(L, 2, &req_root, c);
  return c->wire.len > cl->max_send ? too_large(L, cl, r, c) : 0;
}

/* ---- blocking calls ---- */

/* client:<rpc>(request [, { timeout =, metadata = }]) -> reply | nil, err, code */
static int do_call(lua_State *L, lh_rpc_id m, int packed) {
  lh_client *cl;
  call_opts o;
  int refused = begin_call(L, m, 0, packed, &cl, &o);
  if (refused) return refused;
  lh_context *c = lh_context_get(L);
  const lh_rpc *r = &lh_rpcs[m];
  lh_call_state st;
  lh_call_init(&st);
  add_headers(L, cl, &o, &st);
  lh_call_result res = { 0, &c->message, &c->reply, 0, -1 };
  lh_call_unary(&st, cl->channel, cl->cq, cl->method[m], lh_deadline_in(o.timeout), c->wire.data, c->wire.len, &res);
  return lh_rpc_push_outcome(L, r, &res, c, o.no_reply, cl->target);
}

/* Each method checks its client first (so a wrong self is named as usual), then runs its body
 * under lh_context_protect. */
static void client_teardown(lh_client *cl);

/* A method is running: close() (from a __gc inside it) must not free what it is using. */
static void client_leave(void *ud) {
  lh_client *cl = ud;
  if (--cl->busy == 0 && cl->close_deferred) {
    cl->close_deferred = 0;
    client_teardown(cl);
  }
}

#define METHOD(name, body)                                              \
  static int name##_body(lua_State *L) { return body; }                 \
  static int name(lua_State *L) {                                       \
    lh_client *cl_ = check_client(L);                                   \
    cl_->busy++;                                                        \
    return lh_context_protect_then(L, name##_body, client_leave, cl_);    \
  }

METHOD(put_external_event, do_call(L, LH_RPC_PUT_EVENT, 0))
METHOD(get_external_event, do_call(L, LH_RPC_GET_EVENT, 0))
METHOD(put_external_event_def, do_call(L, LH_RPC_PUT_DEF, 0))
METHOD(get_external_event_def, do_call(L, LH_RPC_GET_DEF, 0))
METHOD(put_correlated_event, do_call(L, LH_RPC_PUT_CORRELATED, 0))
METHOD(get_correlated_event, do_call(L, LH_RPC_GET_CORRELATED, 0))
METHOD(delete_correlated_event, do_call(L, LH_RPC_DELETE_CORRELATED, 0))
METHOD(delete_external_event_def, do_call(L, LH_RPC_DELETE_DEF, 0))
METHOD(list_external_events, do_call(L, LH_RPC_LIST_EVENTS, 0))
METHOD(search_external_events, do_call(L, LH_RPC_SEARCH_EVENTS, 0))
METHOD(search_correlated_events, do_call(L, LH_RPC_SEARCH_CORRELATED, 0))
METHOD(search_external_event_defs, do_call(L, LH_RPC_SEARCH_DEFS, 0))
METHOD(put_external_event_packed, do_call(L, LH_RPC_PUT_EVENT, 1))
METHOD(put_correlated_event_packed, do_call(L, LH_RPC_PUT_CORRELATED, 1))

/* ---- async calls ---- */

static lh_engine *client_engine(lua_State *L, lh_client *cl) {
  if (!cl->engine) {
    cl->engine = lh_engine_new();
    if (!cl->engine) luaL_error(L, "littlehorse: could not start the async engine (out of resources)");
  }
  return cl->engine;
}

/* client:put_external_event_async(request [, { timeout =, metadata =, on_done = fn }]) -> handle */
static int do_call_async(lua_State *L, lh_rpc_id m, int packed) {
  lua_settop(L, 3); /* options (or nil) stay at 3, whatever is pushed later */
  lh_client *cl;
  call_opts o;
  int refused = begin_call(L, m, 1, packed, &cl, &o);
  if (refused) return refused;
  lh_context *c = lh_context_get(L);
  lh_engine *e = client_engine(L, cl);
  /* Inline mode: now and then reap finished calls nobody waits for (fire and forget), so
   * their memory does not wait for the next wait()/poll(). */
  if (!e->threaded && (++e->starts & 63) == 0) lh_engine_poll(e, 0, NULL, 0);

  lh_handle *h = lh_handle_push(L, 1, m, o.no_reply, cl->pid);
  lh_pending *p = lh_pending_new(e);
  if (!p) return luaL_error(L, "littlehorse: out of memory");
  h->p = p;
  lh_call_init(&p->st);
  add_headers(L, cl, &o, &p->st);
  if (!lh_call_start(&p->st, cl->channel, e->cq, cl->method[m], lh_deadline_in(o.timeout),
                     c->wire.data, c->wire.len, p))
    lh_engine_fail_start(p); /* completes at once with INTERNAL */
  if (o.on_done) {
    lh_handle_set_on_done(L, -1, o.on_done);
    /* anchor: a handle with a callback lives until client:poll() delivers it */
    lua_getiuservalue(L, 1, LH_CLIENT_UV_ANCHORS);
    lua_pushvalue(L, -2);
    p->anchor = luaL_ref(L, -2);
    lua_pop(L, 1);
  }
  return 1;
}

METHOD(put_external_event_async, do_call_async(L, LH_RPC_PUT_EVENT, 0))
METHOD(get_external_event_async, do_call_async(L, LH_RPC_GET_EVENT, 0))
METHOD(put_external_event_def_async, do_call_async(L, LH_RPC_PUT_DEF, 0))
METHOD(get_external_event_def_async, do_call_async(L, LH_RPC_GET_DEF, 0))
METHOD(put_correlated_event_async, do_call_async(L, LH_RPC_PUT_CORRELATED, 0))
METHOD(get_correlated_event_async, do_call_async(L, LH_RPC_GET_CORRELATED, 0))
METHOD(delete_correlated_event_async, do_call_async(L, LH_RPC_DELETE_CORRELATED, 0))
METHOD(delete_external_event_def_async, do_call_async(L, LH_RPC_DELETE_DEF, 0))
METHOD(list_external_events_async, do_call_async(L, LH_RPC_LIST_EVENTS, 0))
METHOD(search_external_events_async, do_call_async(L, LH_RPC_SEARCH_EVENTS, 0))
METHOD(search_correlated_events_async, do_call_async(L, LH_RPC_SEARCH_CORRELATED, 0))
METHOD(search_external_event_defs_async, do_call_async(L, LH_RPC_SEARCH_DEFS, 0))
METHOD(put_external_event_packed_async, do_call_async(L, LH_RPC_PUT_EVENT, 1))
METHOD(put_correlated_event_packed_async, do_call_async(L, LH_RPC_PUT_CORRELATED, 1))

/* client:poll([timeout]) -> n: wait up to timeout seconds (default 0) for completions, then
 * settle every finished call whose handle has an on_done callback, calling it with the
 * results. Returns how many calls finished. If a callback raises, the other finished calls
 * are still delivered, then the first error is raised. */
static int client_poll_body(lua_State *L) {
  lh_client *cl = check_client(L);
  double timeout = 0;
  if (!lua_isnoneornil(L, 2)) {
    lh_path root = lh_path_root("poll", 1);
    timeout = lua_isnumber(L, 2) && lua_tonumber(L, 2) == 0 ? 0 : lh_check_seconds(L, 2, &root);
  }
  if (!cl->engine) { lua_pushinteger(L, 0); return 1; }
  lh_pending *done[64];
  int slots[64], failed = 0;
  size_t total = 0, n;
  lua_pushnil(L); /* the first error a callback raised */
  int err_slot = lua_gettop(L);
  lua_getiuservalue(L, 1, LH_CLIENT_UV_ANCHORS);
  int anchors = lua_gettop(L);
  while ((n = lh_engine_poll(cl->engine, total ? 0 : timeout, done, 64)) > 0) {
    /* Read the slots before any Lua code (or allocation, hence a __gc) can run: from here on
     * done[] is not dereferenced. Then take the handles out of their slots onto the stack,
     * so that whatever the callbacks do (close other handles, start calls that reuse slots)
     * cannot change which handle each entry names. */
    for (size_t i = 0; i < n; i++) slots[i] = done[i]->anchor;
    if (!lua_checkstack(L, (int)n + 8)) luaL_error(L, "littlehorse: out of memory");
    int first = lua_gettop(L) + 1;
    for (size_t i = 0; i < n; i++) {
      if (!slots[i]) continue; /* no callback: wait() will read it */
      lua_rawgeti(L, anchors, slots[i]);
      luaL_unref(L, anchors, slots[i]);
      lh_handle *h = lua_touserdata(L, -1);
      if (h->p) h->p->anchor = 0;
    }
    int last = lua_gettop(L);
    for (int hidx = first; hidx <= last; hidx++) {
      int nres = lh_handle_push_delivery(L, hidx);
      if (nres < 0) continue; /* closed by an earlier callback of this batch */
      /* Every callback of the batch runs (its handle is out of its slot already); the first
       * error is raised once they have. */
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

static int client_poll(lua_State *L) {
  lh_client *cl = check_client(L);
  cl->busy++;
  return lh_context_protect_then(L, client_poll_body, client_leave, cl);
}

/* client:fd() -> a file descriptor that is readable while finished calls wait for poll().
 * Asking for it starts the client's completion thread (see async.h). */
static int client_fd(lua_State *L) {
  lh_client *cl = check_client(L);
  lh_engine *e = client_engine(L, cl);
  if (!lh_engine_start_thread(e)) return luaL_error(L, "littlehorse: could not start the completion thread");
  lh_engine_want_fd(e);
  lua_pushinteger(L, e->efd);
  return 1;
}

/* client:_completion_thread(): start the completion thread without the fd (internal: for
 * littlehorse.resty, whose waiters are woken through the wake channel, wake.h). */
static int client_completion_thread(lua_State *L) {
  lh_client *cl = check_client(L);
  if (!lh_engine_start_thread(client_engine(L, cl)))
    return luaL_error(L, "littlehorse: could not start the completion thread");
  return 0;
}

static int client_in_flight(lua_State *L) {
  lh_client *cl = luaL_checkudata(L, 1, LH_CLIENT_MT);
  if (!cl->closed && lh_object_inherited(cl->pid)) lh_object_refuse_inherited(L, "client", cl->pid);
  size_t n = 0;
  if (cl->engine && !cl->closed) {
    lh_engine_poll(cl->engine, 0, NULL, 0); /* inline mode: take in what has finished */
    pthread_mutex_lock(&cl->engine->mu);
    n = cl->engine->nlive + cl->engine->ndone; /* finished, not yet collected: poll() will */
    pthread_mutex_unlock(&cl->engine->mu);
  }
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* ---- lifecycle ---- */

/* Idempotent; shared by close(), __close and __gc. Calls in flight are cancelled (their
 * handles then report CANCELLED); the engine thread is joined, which takes only as long as
 * gRPC needs to acknowledge the cancellations. */
static void client_teardown(lh_client *cl) {
  int mine = !lh_object_inherited(cl->pid); /* in a forked child: abandon (see object.h) */
  if (cl->channel && mine) {
    if (cl->engine) lh_engine_close(cl->engine);
    grpc_completion_queue_shutdown(cl->cq);
    while (grpc_completion_queue_pluck(cl->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type
           != GRPC_QUEUE_SHUTDOWN) {}
    grpc_completion_queue_destroy(cl->cq);
    lh_channel_release(cl->shared);
  }
  cl->shared = NULL;
  cl->engine = NULL;
  cl->channel = NULL;
  cl->cq = NULL;
  if (cl->tenant && mine) grpc_slice_unref(cl->tenant_value);
  free(cl->target);
  free(cl->tenant);
  cl->target = cl->tenant = NULL;
}

static int client_close(lua_State *L) {
  lh_client *cl = luaL_checkudata(L, 1, LH_CLIENT_MT);
  cl->closed = 1;
  if (cl->busy) cl->close_deferred = 1; /* a __gc inside one of our methods: after it */
  else client_teardown(cl);
  return 0;
}

static int client_tostring(lua_State *L) {
  lh_client *cl = luaL_checkudata(L, 1, LH_CLIENT_MT);
  if (cl->closed) lua_pushfstring(L, LH_CLIENT_MT ": %p (closed)", (void *)cl);
  else if (lh_object_inherited(cl->pid))
    lua_pushfstring(L, LH_CLIENT_MT ": %p (%s, made in process %d: unusable in this forked process)",
                    (void *)cl, cl->target, (int)cl->pid);
  else if (cl->tenant) lua_pushfstring(L, LH_CLIENT_MT ": %p (%s, tenant %s)", (void *)cl, cl->target, cl->tenant);
  else lua_pushfstring(L, LH_CLIENT_MT ": %p (%s)", (void *)cl, cl->target);
  return 1;
}

static int client_target(lua_State *L) {
  lh_client *cl = luaL_checkudata(L, 1, LH_CLIENT_MT);
  lua_pushstring(L, cl->closed ? NULL : cl->target);
  return 1;
}

static int client_timeout(lua_State *L) {
  lh_client *cl = luaL_checkudata(L, 1, LH_CLIENT_MT);
  lua_pushnumber(L, cl->timeout);
  return 1;
}

static int client_is_closed(lua_State *L) {
  lh_client *cl = luaL_checkudata(L, 1, LH_CLIENT_MT);
  lua_pushboolean(L, cl->closed);
  return 1;
}

static const luaL_Reg methods[] = {
  { "put_external_event", put_external_event },
  { "get_external_event", get_external_event },
  { "put_external_event_def", put_external_event_def },
  { "get_external_event_def", get_external_event_def },
  { "put_external_event_async", put_external_event_async },
  { "get_external_event_async", get_external_event_async },
  { "put_external_event_def_async", put_external_event_def_async },
  { "get_external_event_def_async", get_external_event_def_async },
#define RPC_METHODS(name) { #name, name }, { #name "_async", name##_async }
  RPC_METHODS(put_correlated_event),
  RPC_METHODS(get_correlated_event),
  RPC_METHODS(delete_correlated_event),
  RPC_METHODS(delete_external_event_def),
  RPC_METHODS(list_external_events),
  RPC_METHODS(search_external_events),
  RPC_METHODS(search_correlated_events),
  RPC_METHODS(search_external_event_defs),
#undef RPC_METHODS
  { "put_external_event_packed", put_external_event_packed },
  { "put_external_event_packed_async", put_external_event_packed_async },
  { "put_correlated_event_packed", put_correlated_event_packed },
  { "put_correlated_event_packed_async", put_correlated_event_packed_async },
  { "poll", client_poll },
  { "fd", client_fd },
  { "_completion_thread", client_completion_thread },
  { "in_flight", client_in_flight },
  { "target", client_target },
  { "timeout", client_timeout },
  { "is_closed", client_is_closed },
  { "close", client_close },
  { NULL, NULL },
};

void lh_client_register(lua_State *L) {
  lh_context *c = lua_touserdata(L, -1); /* context on the stack top */
  lh_object_register(L, LH_CLIENT_MT, methods, client_close, client_tostring);
  luaL_getmetatable(L, LH_CLIENT_MT);
  c->client_mt = lua_topointer(L, -1);
  lua_pop(L, 1);
}

/* Push the field `name` of the client options at t, read raw (a plain table: lh.client makes
 * it, see config.lua). */
static void raw_field(lua_State *L, int t, const char *name) {
  lua_pushstring(L, name);
  lua_rawget(L, t);
}

static char *opt_string(lua_State *L, const char *field, int required) {
  raw_field(L, 1, field);
  char *out = NULL;
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (n == 0 || memchr(s, '\0', n))
      luaL_argerror(L, 1, lua_pushfstring(L, "%s: must be a non-empty string without NUL bytes", field));
    out = strdup(s);
    if (!out) luaL_error(L, "littlehorse: out of memory");
  } else if (!lua_isnil(L, -1) || required) {
    luaL_argerror(L, 1, lua_pushfstring(L, "%s: expected a string, got %s", field, luaL_typename(L, -1)));
  }
  lua_pop(L, 1);
  return out;
}

/* An optional integer option in [lo, hi]; def when absent. */
static lua_Integer opt_int(lua_State *L, int t, const char *field, lua_Integer lo, lua_Integer hi, lua_Integer def) {
  raw_field(L, t, field);
  lua_Integer v = def;
  if (!lua_isnil(L, -1)) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < lo || lua_tointeger(L, -1) > hi)
      luaL_argerror(L, 1, lua_pushfstring(L, "%s: expected an integer from %d to %d", field, (int)lo, (int)hi));
    v = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* A string field of the table at t (PEM text and the like), read raw. The value is left on
 * the stack, where it stays until the channel is made: a finalizer running in between may
 * empty the table, but cannot free what the stack holds. */
static const char *opt_text(lua_State *L, int t, const char *field) {
  raw_field(L, t, field);
  const char *s = NULL;
  if (lua_type(L, -1) == LUA_TSTRING) s = lua_tostring(L, -1);
  else if (!lua_isnil(L, -1)) luaL_argerror(L, 1, lua_pushfstring(L, "tls.%s: expected a string", field));
  return s;
}

/* core.client{ target =, timeout =, max_send_size =, tenant =, tls = { ca_pem =, cert_pem =,
 *   key_pem =, server_name = }, keepalive_time_ms =, keepalive_timeout_ms =, lb_policy =,
 *   max_receive_size = } (what lh.client passes, from littlehorse.config: docs/api.md).
 * Holds no defaults: target, timeout and max_send_size are required, and an absent channel
 * setting is gRPC's own default. Checks what it stores (types and ranges), nothing more. */
int lh_client_new(lua_State *L) {
  lh_context *c = lh_context_get(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  /* The userdata comes first and stays "closed" until fully made: an error raised while
   * reading the options leaves an object whose __gc frees what was read so far. */
  lh_client *cl = lua_newuserdatauv(L, sizeof *cl, LH_CLIENT_NUV);
  memset(cl, 0, sizeof *cl);
  cl->closed = 1;
  cl->pid = lh_runtime_pid();
  luaL_getmetatable(L, LH_CLIENT_MT);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setiuservalue(L, -2, LH_CLIENT_UV_CONTEXT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, LH_CLIENT_UV_ANCHORS);
  luaL_getmetatable(L, LH_CALL_MT);
  lua_setiuservalue(L, -2, LH_CLIENT_UV_CALL_MT);

  static const char *const names[] = { "target", "tenant", "timeout", "max_send_size", "tls",
    "keepalive_time_ms", "keepalive_timeout_ms", "lb_policy", "max_receive_size", NULL };
  static const char *const tls_names[] = { "ca_pem", "cert_pem", "key_pem", "server_name", NULL };
  lh_path root = lh_path_root("client", 1), p = lh_path_field(&root, "timeout", 7);
  lh_check_keys(L, 1, &root, names, "option");
  raw_field(L, 1, "timeout");
  cl->timeout = lh_check_seconds(L, lua_gettop(L), &p); /* required: the defaults live in littlehorse.config */
  lua_pop(L, 1);
  cl->target = opt_string(L, "target", 1);
  cl->tenant = opt_string(L, "tenant", 0);
  if (cl->tenant) {
    cl->tenant_key = grpc_slice_from_static_string("tenantid");
    cl->tenant_value = grpc_slice_from_copied_string(cl->tenant);
  }

  lh_channel_opts o;
  memset(&o, 0, sizeof o);
  o.target = cl->target;
  o.keepalive_time_ms = (int)opt_int(L, 1, "keepalive_time_ms", 1, INT32_MAX, 0);
  o.keepalive_timeout_ms = (int)opt_int(L, 1, "keepalive_timeout_ms", 1, INT32_MAX, 0);
  o.max_receive_size = (int)opt_int(L, 1, "max_receive_size", -1, INT32_MAX, 0);
  lua_Integer max_send = opt_int(L, 1, "max_send_size", 1, INT32_MAX, 0);
  if (max_send == 0) luaL_argerror(L, 1, "max_send_size: required (a number of bytes)");
  cl->max_send = (size_t)max_send;
  raw_field(L, 1, "lb_policy");
  if (!lua_isnil(L, -1)) {
    const char *lb = lua_tostring(L, -1);
    if (!lb || (strcmp(lb, "pick_first") != 0 && strcmp(lb, "round_robin") != 0))
      luaL_argerror(L, 1, "lb_policy: expected \"pick_first\" or \"round_robin\"");
    o.lb_policy = strcmp(lb, "round_robin") == 0 ? "round_robin" : "pick_first"; /* static text */
  }
  lua_pop(L, 1);
  int tls_top = lua_gettop(L);
  raw_field(L, 1, "tls"); /* stays on the stack, and so do its strings: they are used below */
  if (!lua_isnil(L, -1)) {
    int t = lua_gettop(L);
    if (!lua_istable(L, t)) luaL_argerror(L, 1, "tls: expected a table");
    lh_path pt = lh_path_field(&root, "tls", 3);
    lh_check_keys(L, t, &pt, tls_names, "option");
    o.tls = 1;
    o.ca_pem = opt_text(L, t, "ca_pem");
    o.cert_pem = opt_text(L, t, "cert_pem");
    o.key_pem = opt_text(L, t, "key_pem");
    o.server_name = opt_text(L, t, "server_name");
    if (!o.cert_pem != !o.key_pem) luaL_argerror(L, 1, "tls: cert_pem and key_pem go together");
  }

  lh_context_hold_grpc(L, c); /* lazily initialises gRPC; raises after a bad fork */

  const char *paths[LH_RPC_COUNT];
  for (int m = 0; m < LH_RPC_COUNT; m++) paths[m] = lh_rpcs[m].path;
  const char *err = NULL;
  cl->shared = lh_channel_get(&o, paths, LH_RPC_COUNT, &err);
  if (!cl->shared) return luaL_error(L, "littlehorse: %s", err);
  lua_settop(L, tls_top); /* tls and its strings */
  cl->channel = cl->shared->channel;
  for (int m = 0; m < LH_RPC_COUNT; m++) cl->method[m] = cl->shared->methods[m];
  cl->cq = grpc_completion_queue_create_for_pluck(NULL);
  cl->closed = 0;
  return 1;
}

/* core.channel_count() -> open channels in this process (clients share them) */
int lh_client_channel_count(lua_State *L) {
  lua_pushinteger(L, lh_channel_count());
  return 1;
}
