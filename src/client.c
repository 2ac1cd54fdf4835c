#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include "client.h"
#include "version.h"
#include "codec.h"
#include "call.h"
#include "error.h"
#include "messages.h"
#include "path.h"

#define SERVICE "/littlehorse.LittleHorse/"

typedef enum { M_PUT_EVENT, M_GET_EVENT, M_PUT_DEF, M_GET_DEF, M_COUNT } method_id;

typedef struct rpc {
  const char *name;    /* the RPC, for error objects: "PutExternalEvent" */
  const char *method;  /* the Lua method, for misuse errors: "put_external_event" */
  const char *path;
  void (*pack)(lua_State *L, int idx, const lh_path *root, lh_codec *c);
  int (*push)(lua_State *L, const char *bytes, size_t len, lh_codec *c);
} rpc;

static const rpc rpcs[M_COUNT] = {
  { "PutExternalEvent", "put_external_event", SERVICE "PutExternalEvent", lh_pack_put_external_event, lh_push_external_event },
  { "GetExternalEvent", "get_external_event", SERVICE "GetExternalEvent", lh_pack_external_event_id, lh_push_external_event },
  { "PutExternalEventDef", "put_external_event_def", SERVICE "PutExternalEventDef", lh_pack_put_external_event_def, lh_push_external_event_def },
  { "GetExternalEventDef", "get_external_event_def", SERVICE "GetExternalEventDef", lh_pack_external_event_def_id, lh_push_external_event_def },
};

typedef struct lh_client {
  grpc_channel *channel;
  grpc_completion_queue *cq;    /* pluck queue for this client's blocking calls */
  void *method[M_COUNT];        /* registered call handles */
  grpc_metadata md[1];          /* tenantid */
  size_t nmd;
  double timeout;               /* default per-call deadline, seconds */
  char *target;
  char *tenant;
  pid_t pid;                    /* the process that made the channel */
  int closed;
} lh_client;

static lh_client *check_client(lua_State *L) {
  lh_client *cl = luaL_checkudata(L, 1, LH_CLIENT_MT);
  if (cl->closed) luaL_error(L, "littlehorse: this client is closed");
  if (cl->pid != getpid())
    luaL_error(L, "littlehorse: this client was made in process %d and cannot be used in forked "
                  "process %d; make clients after the fork", (int)cl->pid, (int)getpid());
  return cl;
}

/* A timeout in seconds at idx, named by path in errors. */
static double check_timeout(lua_State *L, int idx, const lh_path *path) {
  if (lua_type(L, idx) != LUA_TNUMBER)
    lh_path_error(L, path, "expected a number of seconds, got %s", luaL_typename(L, idx));
  double t = (double)lua_tonumber(L, idx);
  if (!(t > 0) || !isfinite(t) || t > 1e9) lh_path_error(L, path, "must be a positive number of seconds");
  return t;
}

/* Idempotent; shared by close(), __close and __gc. Never blocks: with no call in flight
 * (calls are synchronous) the queue drains at once. */
static int client_close(lua_State *L) {
  lh_client *cl = luaL_checkudata(L, 1, LH_CLIENT_MT);
  if (!cl->closed) {
    cl->closed = 1;
    if (cl->pid == getpid()) {
      /* In a forked child the channel belongs to the parent's gRPC: leave it alone. */
      grpc_channel_destroy(cl->channel);
      grpc_completion_queue_shutdown(cl->cq);
      while (grpc_completion_queue_pluck(cl->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type
             != GRPC_QUEUE_SHUTDOWN) {}
      grpc_completion_queue_destroy(cl->cq);
      for (size_t i = 0; i < cl->nmd; i++) grpc_slice_unref(cl->md[i].value);
    }
    cl->channel = NULL;
    cl->cq = NULL;
    cl->nmd = 0;
  }
  free(cl->target);
  free(cl->tenant);
  cl->target = cl->tenant = NULL;
  return 0;
}

static int client_tostring(lua_State *L) {
  lh_client *cl = luaL_checkudata(L, 1, LH_CLIENT_MT);
  if (cl->closed) lua_pushfstring(L, LH_CLIENT_MT ": %p (closed)", (void *)cl);
  else if (cl->tenant) lua_pushfstring(L, LH_CLIENT_MT ": %p (%s, tenant %s)", (void *)cl, cl->target, cl->tenant);
  else lua_pushfstring(L, LH_CLIENT_MT ": %p (%s)", (void *)cl, cl->target);
  return 1;
}

/* client:<rpc>(request [, { timeout = seconds }]) -> reply | nil, err, code */
static int do_call(lua_State *L, method_id m) {
  lh_client *cl = check_client(L);
  lh_codec *c = lh_codec_get(L);
  const rpc *r = &rpcs[m];
  double timeout = cl->timeout;
  lh_path req_root = lh_path_root(r->method, 1);
  lh_path opt_root = lh_path_root(r->method, 2);
  if (!lua_isnoneornil(L, 3)) {
    if (!lua_istable(L, 3)) lh_path_error(L, &opt_root, "expected a table of call options, got %s", luaL_typename(L, 3));
    lua_getfield(L, 3, "timeout");
    lh_path p = lh_path_field(&opt_root, "timeout", 7);
    if (!lua_isnil(L, -1)) timeout = check_timeout(L, lua_gettop(L), &p);
    lua_pop(L, 1);
  }
  r->pack(L, 2, &req_root, c);

  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_nanos((int64_t)(timeout * 1e9), GPR_TIMESPAN));
  lh_call_result res = { 0, &c->message, &c->reply, 0, -1 };
  lh_call_unary(cl->channel, cl->cq, cl->method[m], deadline, cl->md, cl->nmd,
                c->wire.data, c->wire.len, &res);
  if (res.status != GRPC_STATUS_OK)
    return lh_error_push(L, res.status, c->message.data, c->message.len, r->name, res.retry_delay);
  if (!r->push(L, c->reply.data, c->reply.len, c)) {
    const char *msg = "the server's reply is not a valid message";
    return lh_error_push(L, GRPC_STATUS_INTERNAL, msg, strlen(msg), r->name, -1);
  }
  return 1;
}

static int put_external_event(lua_State *L) { return do_call(L, M_PUT_EVENT); }
static int get_external_event(lua_State *L) { return do_call(L, M_GET_EVENT); }
static int put_external_event_def(lua_State *L) { return do_call(L, M_PUT_DEF); }
static int get_external_event_def(lua_State *L) { return do_call(L, M_GET_DEF); }

static int client_index_target(lua_State *L) {
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
  { "target", client_index_target },
  { "timeout", client_timeout },
  { "is_closed", client_is_closed },
  { "close", client_close },
  { NULL, NULL },
};

void lh_client_register(lua_State *L) {
  /* codec on the stack top */
  if (luaL_newmetatable(L, LH_CLIENT_MT)) {
    luaL_newlibtable(L, methods);
    lua_pushvalue(L, -3);
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, client_close);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, client_close);
    lua_setfield(L, -2, "__close");
#endif
    lua_pushcfunction(L, client_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

static char *opt_string(lua_State *L, const char *field, int required) {
  lua_getfield(L, 1, field);
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

int lh_client_new(lua_State *L) {
  lh_codec *c = lh_codec_get(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  /* The userdata comes first and stays "closed" until fully made: an error raised while
   * reading the options leaves an object whose __gc frees what was read so far. */
  lh_client *cl = lua_newuserdatauv(L, sizeof *cl, 1);
  memset(cl, 0, sizeof *cl);
  cl->closed = 1;
  cl->pid = getpid();
  luaL_getmetatable(L, LH_CLIENT_MT);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, lua_upvalueindex(1)); /* keep the codec (and so gRPC) alive while we live */
  lua_setiuservalue(L, -2, 1);

  cl->timeout = LH_DEFAULT_TIMEOUT;
  lua_getfield(L, 1, "timeout");
  lh_path root = lh_path_root("client", 1), p = lh_path_field(&root, "timeout", 7);
  if (!lua_isnil(L, -1)) cl->timeout = check_timeout(L, lua_gettop(L), &p);
  lua_pop(L, 1);
  cl->target = opt_string(L, "target", 1);
  cl->tenant = opt_string(L, "tenant", 0);
  const char *target = cl->target, *tenant = cl->tenant;

  lh_codec_hold_grpc(L, c); /* lazily initialises gRPC; raises after a bad fork */

  grpc_arg args[1];
  args[0].type = GRPC_ARG_STRING;
  args[0].key = GRPC_ARG_PRIMARY_USER_AGENT_STRING;
  args[0].value.string = "littlehorse-lua/" LH_VERSION;
  grpc_channel_args chargs = { 1, args };
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  cl->channel = grpc_channel_create(target, creds, &chargs);
  grpc_channel_credentials_release(creds);
  cl->cq = grpc_completion_queue_create_for_pluck(NULL);
  for (int m = 0; m < M_COUNT; m++)
    cl->method[m] = grpc_channel_register_call(cl->channel, rpcs[m].path, NULL, NULL);
  if (tenant) {
    cl->md[0].key = grpc_slice_from_static_string("tenantid"); /* static: never unref'd */
    cl->md[0].value = grpc_slice_from_copied_string(tenant);
    cl->nmd = 1;
  }
  cl->closed = 0;
  return 1;
}
