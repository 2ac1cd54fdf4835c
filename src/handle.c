/* The call handle: see handle.h. */
#include "handle.h"
#include "client.h"
#include "context.h"
#include "object.h"
#include "path.h"
#include "rpc.h"

/* User values of a handle: 1 its client, 2 the cached results, 3 its on_done callback. */
enum { HV_CLIENT = 1, HV_RESULTS = 2, HV_ON_DONE = 3, HANDLE_NUV = 3 };

static lh_handle *check_handle(lua_State *L) {
  lh_context *c = lh_context_get(L);
  lh_handle *h = lh_object_check(L, c ? c->call_mt : NULL, LH_CALL_MT);
  if (lh_object_inherited(h->pid)) lh_object_refuse_inherited(L, "call handle", h->pid);
  return h;
}

lh_handle *lh_handle_push(lua_State *L, int client, int method, int no_reply, pid_t pid) {
  client = lua_absindex(L, client);
  lh_handle *h = lua_newuserdatauv(L, sizeof *h, HANDLE_NUV);
  h->p = NULL;
  h->pid = pid;
  h->method = method;
  h->no_reply = no_reply;
  h->nresults = 0;
  lua_getiuservalue(L, client, LH_CLIENT_UV_CALL_MT); /* luaL_getmetatable(L, LH_CALL_MT) */
  lua_setmetatable(L, -2);
  lua_pushvalue(L, client);
  lua_setiuservalue(L, -2, HV_CLIENT);
  return h;
}

void lh_handle_set_on_done(lua_State *L, int hidx, int fn) {
  hidx = lua_absindex(L, hidx);
  lua_pushvalue(L, fn);
  lua_setiuservalue(L, hidx, HV_ON_DONE);
}

/* A handle is anchored (it has an on_done callback, and poll() has yet to deliver it) while
 * its call's pending names a slot; the slot is cleared before the pending is let go. */
static int anchored(const lh_handle *h) { return h->p && h->p->anchor; }

/* The anchored handle at hidx will not be delivered by poll() after all (closed, or its
 * results taken by wait()): give its slot back to the client. */
static void unanchor(lua_State *L, int hidx, lh_handle *h) {
  lua_getiuservalue(L, hidx, HV_CLIENT);
  if (lua_getiuservalue(L, -1, LH_CLIENT_UV_ANCHORS) == LUA_TTABLE) luaL_unref(L, -1, h->p->anchor);
  lua_pop(L, 2);
  h->p->anchor = 0;
}

/* The finished call of h was made with reply = false and succeeded (the common post):
 * settle it as `true` and return 1; otherwise return 0 and change nothing. Nothing is read
 * into the context's buffers and nothing is allocated (so no Lua code can run), which is why
 * handle:wait() does this without the protected call the other outcomes need. */
static int settle_true(lua_State *L, int hidx, lh_handle *h) {
  lh_pending *p = h->p;
  if (!h->no_reply || !p->ok || !p->st.started || p->st.status != GRPC_STATUS_OK || !p->st.recv) return 0;
  lh_call_discard(&p->st);
  h->p = NULL;
  lh_pending_release(p);
  lua_pushboolean(L, 1);
  lua_setiuservalue(L, hidx, HV_RESULTS);
  h->nresults = 1;
  return 1;
}

/* Move the outcome of h's finished call into its cached results (uservalue HV_RESULTS). */
static void settle(lua_State *L, int hidx, lh_handle *h) {
  if (settle_true(L, hidx, h)) return;
  lh_context *c = lh_context_get(L);
  lh_pending *p = h->p;
  lh_call_result res = { 0, &c->message, &c->reply, 0, -1 };
  lh_call_finish(&p->st, p->ok, &res);
  h->p = NULL;
  lh_pending_release(p);
  int top = lua_gettop(L);
  lua_getiuservalue(L, hidx, HV_CLIENT);
  const lh_client *cl = lua_touserdata(L, -1); /* anchored by the handle */
  int n = lh_rpc_push_outcome(L, &lh_rpcs[h->method], &res, c, h->no_reply, cl ? cl->target : NULL);
  lua_remove(L, top + 1);
  /* Keep one value, no wrapper table: the reply, or the error object (its code is err.code). */
  lua_pushvalue(L, n == 1 ? top + 1 : top + 2);
  lua_setiuservalue(L, hidx, HV_RESULTS);
  h->nresults = n;
  lua_settop(L, top);
}

static int push_results(lua_State *L, int hidx) {
  lh_handle *h = lua_touserdata(L, hidx);
  if (h->nresults == 1) {
    lua_getiuservalue(L, hidx, HV_RESULTS);
    return 1;
  }
  lua_pushnil(L);
  lua_getiuservalue(L, hidx, HV_RESULTS);
  lua_getfield(L, -1, "code");
  return 3;
}

int lh_handle_push_delivery(lua_State *L, int hidx) {
  lh_handle *h = lua_touserdata(L, hidx);
  if (h->p) settle(L, hidx, h);
  if (!h->nresults) return -1; /* closed by an earlier callback of this batch */
  lua_getiuservalue(L, hidx, HV_ON_DONE);
  return push_results(L, hidx);
}

static double wait_timeout(lua_State *L) {
  if (lua_isnoneornil(L, 2)) return -1;
  lh_path root = lh_path_root("wait", 1);
  return lua_isnumber(L, 2) && lua_tonumber(L, 2) == 0 ? 0 : lh_check_seconds(L, 2, &root);
}

/* handle:wait([timeout]) -> the call's results | false (still in flight after timeout) */
static int handle_wait_body(lua_State *L) {
  lh_handle *h = lua_touserdata(L, 1); /* checked by handle_wait */
  double timeout = wait_timeout(L);
  if (h->p) {
    if (!lh_pending_wait(h->p, timeout)) { lua_pushboolean(L, 0); return 1; }
    if (anchored(h)) unanchor(L, 1, h); /* the caller takes the results: no callback */
    settle(L, 1, h);
  }
  if (!h->nresults) return luaL_error(L, "littlehorse: this call handle is closed");
  return push_results(L, 1);
}

static int handle_wait(lua_State *L) {
  lh_handle *h = check_handle(L);
  if (h->p && h->no_reply && !anchored(h)) {
    double timeout = wait_timeout(L);
    if (!lh_pending_wait(h->p, timeout)) { lua_pushboolean(L, 0); return 1; }
    if (settle_true(L, 1, h)) return push_results(L, 1);
  }
  return lh_context_protect(L, handle_wait_body);
}

static int handle_done(lua_State *L) {
  lh_handle *h = check_handle(L);
  lua_pushboolean(L, h->p == NULL || lh_pending_wait(h->p, 0));
  return 1;
}

/* handle:id() -> the call's process-unique id (for wake-ups, see wake.h); nil once settled */
static int handle_id(lua_State *L) {
  lh_handle *h = check_handle(L);
  if (h->p) lua_pushnumber(L, (lua_Number)h->p->id); /* < 2^53 in any realistic process */
  else lua_pushnil(L);
  return 1;
}

static int handle_cancel(lua_State *L) {
  lh_handle *h = check_handle(L);
  if (h->p) lh_pending_cancel(h->p);
  return 0;
}

/* Idempotent; __gc and __close share it. Never blocks: a call still in flight is cancelled
 * and its memory is freed by the engine when the cancellation completes. */
static int handle_close(lua_State *L) {
  lh_handle *h = luaL_checkudata(L, 1, LH_CALL_MT);
  if (lh_object_inherited(h->pid)) { /* a forked child abandons it: its pending is the parent's */
    h->p = NULL;
    return 0;
  }
  if (anchored(h)) unanchor(L, 1, h); /* a __gc never sees one: anchored means reachable */
  if (h->p) {
    lh_pending_release(h->p);
    h->p = NULL;
  }
  return 0;
}

static int handle_tostring(lua_State *L) {
  lh_handle *h = luaL_checkudata(L, 1, LH_CALL_MT);
  if (lh_object_inherited(h->pid)) {
    lua_pushfstring(L, LH_CALL_MT ": %p (%s, made in process %d: unusable in this forked process)",
                    (void *)h, lh_rpcs[h->method].name, (int)h->pid);
    return 1;
  }
  const char *state = h->p ? (lh_pending_wait(h->p, 0) ? "done" : "in flight") : "settled";
  lua_pushfstring(L, LH_CALL_MT ": %p (%s, %s)", (void *)h, lh_rpcs[h->method].name, state);
  return 1;
}

static const luaL_Reg handle_methods[] = {
  { "wait", handle_wait },
  { "id", handle_id },
  { "done", handle_done },
  { "cancel", handle_cancel },
  { "close", handle_close },
  { NULL, NULL },
};

void lh_handle_register(lua_State *L) {
  lh_context *c = lua_touserdata(L, -1); /* context on the stack top */
  lh_object_register(L, LH_CALL_MT, handle_methods, handle_close, handle_tostring);
  luaL_getmetatable(L, LH_CALL_MT);
  c->call_mt = lua_topointer(L, -1);
  lua_pop(L, 1);
}
