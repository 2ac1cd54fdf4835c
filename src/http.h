/* A tiny HTTP POST on libcurl's easy API, for the OAuth2 token request (lua/littlehorse/oauth.lua).
 * Blocking; thread-safe (one easy handle per call, no signals); curl_global_init runs once, on
 * first use only (never at require time, so it never runs in an nginx master before the fork). */
#ifndef LH_HTTP_H
#define LH_HTTP_H

#include <stddef.h>
#include "compat.h"

#define LH_HTTP_MAX_BODY (1024 * 1024) /* replies larger than this are an error */

typedef struct lh_http_request {
  const char *url;        /* http:// or https:// only */
  const char *body;       /* already application/x-www-form-urlencoded */
  size_t body_len;
  const char *user;       /* HTTP Basic auth, or NULL for none */
  const char *password;
  double timeout;         /* seconds for the whole exchange (connect included); <= 0: 10 s */
  const char *ca_file;    /* PEM bundle to verify the server with, or NULL for the system roots */
} lh_http_request;

typedef struct lh_http_response {
  long status;            /* the HTTP status, 0 when there was no reply */
  char *body;             /* malloc'd, NUL-terminated (body_len excludes the NUL); free with lh_http_response_free */
  size_t body_len;
  char error[512];        /* the reason when lh_http_post_form returns 0; never holds the password */
} lh_http_response;

/* 1: a reply came (any status; res->status and res->body set). 0: no reply, res->error says why. */
int lh_http_post_form(const lh_http_request *req, lh_http_response *res);
void lh_http_response_free(lh_http_response *res);

/* Lua: http_post(url, body, { user =, password =, timeout =, ca_file = }) -> status, body | nil, err
 * body is a string (sent as is) or a table of form fields { name = value } (URL-encoded here).
 * Misuse (wrong argument types) raises. */
int lh_http_lua_post(lua_State *L);

#endif
