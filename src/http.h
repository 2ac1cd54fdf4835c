/* A tiny HTTP POST on libcurl's easy API, for the OAuth2 token request (lua/littlehorse/oauth.lua).
 * Blocking, or on a thread of its own (http_post_async); thread-safe (one easy handle per call,
 * no signals); curl_global_init runs once, on first use only (never at require time, so it
 * never runs in an nginx master before the fork). */
#ifndef LH_HTTP_H
#define LH_HTTP_H

#include <stddef.h>
#include "compat.h"

#define LH_HTTP_MAX_BODY (1024 * 1024) /* replies larger than this are an error */

/* Lua: http_post(url, body, { user =, password =, timeout =, ca_file = }) -> status, body | nil, err
 * body is a string (sent as is) or a table of form fields { name = value } (URL-encoded here).
 * Misuse (wrong argument types) raises. */
int lh_http_lua_post(lua_State *L);

/* Lua: http_post_async(url, body, opts) -> job | nil, err: the same request on a thread of
 * its own, for hosts that must not block (nginx). job:id() (announced on the wake channel,
 * wake.h, once the job is done), job:done(), job:wait([timeout]) -> status, body | nil, err
 * | false (still running), job:cancel(), job:close() (also __gc/__close; never blocks). */
int lh_http_lua_post_async(lua_State *L);

#endif
