#define _GNU_SOURCE 1 /* dladdr, RTLD_NODELETE */
/* luaopen_littlehorse_core: registers the types and functions, nothing else. Every function
 * gets this state's context as upvalue 1 (see context.h); no gRPC work happens here, so the
 * module may be required before a fork. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include "compat.h"
#include "version.h"
#include "context.h"
#include "client.h"
#include "content_check.h"
#include "handle.h"
#include "error.h"
#include "json.h"
#include "messages.h"
#include "timestamp.h"
#include "value.h"
#include "http.h"
#include "int64.h"
#include "wake.h"
#include "path.h"
#include "outbox.h"
#include "rpc.h"
#include <dlfcn.h>

/* core.encode_put_external_event(request [, "generic"]) -> wire bytes (what
 * put_external_event sends; "generic": packed by protobuf-c, for the spec that compares) */
static int encode_put_external_event_body(lua_State *L) {
  lh_context *c = lh_context_get(L);
  lh_path root = lh_path_root("encode_put_external_event", 1);
  static const char *const modes[] = { "direct", "generic", NULL };
  c->generic_encode = luaL_checkoption(L, 2, "direct", modes) == 1; /* reset by the next call */
  lua_settop(L, 1);
  lh_pack_put_external_event(L, 1, &root, c);
  lua_pushlstring(L, c->wire.data, c->wire.len);
  return 1;
}

static int encode_put_external_event(lua_State *L) {
  return lh_context_protect(L, encode_put_external_event_body);
}

/* core.decode_external_event(bytes [, "generic"]) -> table | nil, message
 * ("generic": skip the direct reader, for the spec that compares the two decoders) */
static int decode_external_event_body(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  static const char *const modes[] = { "direct", "generic", NULL };
  lh_context *c = lh_context_get(L);
  c->generic_decode = luaL_checkoption(L, 2, "direct", modes) == 1; /* reset by the next call */
  if (lh_push_external_event(L, s, n, c)) return 1;
  lua_pushnil(L);
  lua_pushliteral(L, "not a valid ExternalEvent message");
  return 2;
}

static int decode_external_event(lua_State *L) {
  return lh_context_protect(L, decode_external_event_body);
}

/* core.decode_reply(rpc, bytes) -> value | nil, message: reply bytes of the named RPC
 * ("GetCorrelatedEvent") as that RPC's method returns them; every reply reader reachable
 * without a server, for the fuzzer and the specs. */
static int decode_reply_body(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n); /* anchored: argument 2 stays on the stack */
  for (int m = 0; m < LH_RPC_COUNT; m++) {
    if (strcmp(lh_rpcs[m].name, name) != 0) continue;
    lh_context *c = lh_context_get(L);
    c->generic_decode = 0;
    if (lh_rpcs[m].push(L, s, n, c)) return 1;
    lua_pushnil(L);
    lua_pushfstring(L, "not a valid %s reply", name);
    return 2;
  }
  return luaL_argerror(L, 1, lua_pushfstring(L, "unknown RPC '%s'", name));
}

static int decode_reply(lua_State *L) { return lh_context_protect(L, decode_reply_body); }

static int json_encode(lua_State *L) { return lh_context_protect(L, lh_json_lua_encode); }

/* core.sleep(seconds): a plain blocking sleep, for hosts with no event loop of their own. */
static int core_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  if (!(s >= 0)) return luaL_argerror(L, 1, "expected a non-negative number of seconds");
  if (s > 1e9) s = 1e9;
  struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
  return 0;
}

/* core.now() -> seconds on the monotonic clock (for deadlines; immune to clock changes) */
static int core_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* core.random_bytes(n) -> n bytes from the OS random source */
static int random_bytes(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= 4096, 1, "between 0 and 4096 bytes");
  unsigned char buf[4096];
  size_t got = 0;
  while (got < (size_t)n) {
    ssize_t r = getrandom(buf + got, (size_t)n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return luaL_error(L, "littlehorse: getrandom failed (errno %d)", errno);
    }
    got += (size_t)r;
  }
  lua_pushlstring(L, (const char *)buf, (size_t)n);
  return 1;
}

/* core.new_error(code, message [, method]) -> nil, err, code: an error object made in Lua
 * (e.g. a failed OAuth token fetch) that looks like every other one. */
static int new_error(lua_State *L) {
  int code;
  if (lua_type(L, 1) == LUA_TSTRING) {
    const char *name = lua_tostring(L, 1);
    for (code = 0; code <= 16 && strcmp(lh_status_name(code), name) != 0; code++) {}
    luaL_argcheck(L, code <= 16, 1, "not a gRPC status name");
  } else {
    code = (int)luaL_checkinteger(L, 1);
  }
  size_t n;
  const char *msg = luaL_checklstring(L, 2, &n);
  return lh_error_push(L, code, msg, n, luaL_optstring(L, 3, NULL), -1);
}

static int status_name(lua_State *L) {
  lua_pushstring(L, lh_status_name((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* core.timestamp(seconds, nanos) -> a timestamp object (see timestamp.h) */
static int make_timestamp(lua_State *L) {
  lua_Integer s = luaL_checkinteger(L, 1);
  lua_Integer ns = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, ns >= 0 && ns <= 999999999, 2, "nanos must be 0..999999999");
  lh_timestamp_push(L, (int64_t)s, (int32_t)ns);
  return 1;
}

static int versions(lua_State *L) {
  lua_pushstring(L, LH_VERSION);
  lua_pushstring(L, grpc_version_string());
  lua_pushstring(L, protobuf_c_version());
  return 3;
}

/* core._misuse(message): raise message blamed on the caller's line, past the library's own
 * Lua files (see lh_misuse): how the Lua layer reports misuse, as the C side does. Not API. */
static int misuse(lua_State *L) {
  const char *msg = luaL_checkstring(L, 1);
  return lh_misuse(L, "%s", msg);
}

static const luaL_Reg functions[] = {
  { "client", lh_client_new },
  { "json_encode", json_encode },
  { "json_decode", lh_json_lua_decode },
  { "encode_put_external_event", encode_put_external_event },
  { "decode_external_event", decode_external_event },
  { "decode_reply", decode_reply },
  { "check_content", lh_check_content },
  { "sleep", core_sleep },
  { "now", core_now },
  { "random_bytes", random_bytes },
  { "status_name", status_name },
  { "new_error", new_error },
  { "timestamp", make_timestamp },
  { "versions", versions },
  { "channel_count", lh_client_channel_count },
  /* not API: for littlehorse.oauth, littlehorse.resty and the Lua layer's misuse errors */
  { "_http_post", lh_http_lua_post },
  { "_http_post_async", lh_http_lua_post_async },
  { "_wake_start", lh_wake_lua_start },
  { "_wake_attach", lh_wake_lua_attach },
  { "_wake_ready", lh_wake_lua_ready },
  { "_wake_kick", lh_wake_lua_kick },
  { "_wake_stop", lh_wake_lua_stop },
  { "_misuse", misuse },
  { "_int", lh_int64_lua_int },
  /* not API: littlehorse.outbox's C object */
  { "_outbox", lh_outbox_new },
  { NULL, NULL },
};

/* Keep this shared object mapped for the life of the process. Its threads (async engines,
 * HTTP jobs) may outlive the lua_State that loaded it (nginx closes a worker's Lua VM,
 * and dlclose()s its modules, at exit); unmapping their code under them would crash. This
 * is RTLD_NODELETE set at run time, so it holds whatever built or loaded the module. */
static void pin_module(void) {
  Dl_info info;
  if (dladdr((void *)pin_module, &info) && info.dli_fname)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

LUALIB_API int luaopen_littlehorse_core(lua_State *L) {
  pin_module();
  lh_error_register(L);
  lh_timestamp_register(L);
  lh_value_register(L);
  lh_int64_open(L);

  luaL_newlibtable(L, functions);
  lh_context_new(L);
  lh_client_register(L);
  lh_handle_register(L);
  lh_outbox_register(L);
  luaL_setfuncs(L, functions, 1);

  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lh_json_push_empty_array(L);
  lua_setfield(L, -2, "empty_array");
  lh_json_push_array_mt(L);
  lua_setfield(L, -2, "array_mt");
  lh_value_push_typed_mt(L);
  lua_setfield(L, -2, "typed_mt");
  luaL_getmetatable(L, LH_TIMESTAMP_MT);
  lua_setfield(L, -2, "timestamp_mt");
  luaL_getmetatable(L, LH_ERROR_MT);
  lua_setfield(L, -2, "error_mt");
  lua_pushstring(L, LH_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
