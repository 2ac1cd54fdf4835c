/* A tiny HTTP POST on libcurl's easy API: see http.h. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "http.h"

typedef struct http_request {
  const char *url;        /* http:// or https:// only */
  const char *body;       /* already application/x-www-form-urlencoded */
  size_t body_len;
  const char *user;       /* HTTP Basic auth, or NULL for none */
  const char *password;
  double timeout;         /* seconds for the whole exchange (connect included); <= 0: 10 s */
  const char *ca_file;    /* PEM bundle to verify the server with, or NULL for the system roots */
} http_request;

typedef struct http_response {
  long status;            /* the HTTP status, 0 when there was no reply */
  char *body;             /* malloc'd, NUL-terminated (body_len excludes the NUL); free with response_free */
  size_t body_len;
  char error[512];        /* the reason when post_form returns 0; never holds the password */
} http_response;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_result = CURLE_FAILED_INIT;

static void global_init(void) { init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct sink {
  char *data;
  size_t len, cap;
  int too_big;
} sink;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
  sink *s = userdata;
  size_t n = size * nmemb;
  if (s->len + n > LH_HTTP_MAX_BODY) {
    s->too_big = 1;
    return 0; /* makes curl stop with CURLE_WRITE_ERROR */
  }
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 1024;
    while (cap < s->len + n + 1) cap *= 2;
    char *p = realloc(s->data, cap);
    if (!p) return 0;
    s->data = p;
    s->cap = cap;
  }
  memcpy(s->data + s->len, ptr, n);
  s->len += n;
  s->data[s->len] = '\0';
  return n;
}

static void response_free(http_response *res) {
  free(res->body);
  res->body = NULL;
  res->body_len = 0;
}

/* 1: a reply came (any status; res->status and res->body set). 0: no reply, res->error says why. */
static int post_form(const http_request *req, http_response *res) {
  memset(res, 0, sizeof *res);
  pthread_once(&init_once, global_init);
  if (init_result != CURLE_OK) {
    snprintf(res->error, sizeof res->error, "libcurl could not be initialised: %s", curl_easy_strerror(init_result));
    return 0;
  }
  CURL *h = curl_easy_init();
  if (!h) {
    snprintf(res->error, sizeof res->error, "libcurl could not make a handle");
    return 0;
  }
  char errbuf[CURL_ERROR_SIZE] = "";
  sink s = { NULL, 0, 0, 0 };
  struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
  long timeout_ms = req->timeout > 0 ? (long)(req->timeout * 1000.0) : 10000L;
  if (timeout_ms < 1) timeout_ms = 1;

  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);           /* threads: no SIGALRM for DNS timeouts */
  curl_easy_setopt(h, CURLOPT_URL, req->url);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);     /* never resend credentials elsewhere */
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);     /* Content-Type: form-urlencoded is curl's default */
  curl_easy_setopt(h, CURLOPT_USERAGENT, "littlehorse-lua");
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (req->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, req->ca_file);
  if (req->user) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERNAME, req->user);
    curl_easy_setopt(h, CURLOPT_PASSWORD, req->password ? req->password : "");
  }

  CURLcode rc = curl_easy_perform(h);
  int ok = 0;
  if (rc == CURLE_OK) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
    if (!s.data) s.data = calloc(1, 1);
    if (s.data) {
      res->body = s.data;
      res->body_len = s.len;
      s.data = NULL;
      ok = 1;
    } else {
      snprintf(res->error, sizeof res->error, "out of memory");
    }
  } else if (s.too_big) {
    snprintf(res->error, sizeof res->error, "the reply is larger than %d bytes", LH_HTTP_MAX_BODY);
  } else {
    snprintf(res->error, sizeof res->error, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
  }
  free(s.data);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  return ok;
}

/* Lua binding -------------------------------------------------------------------------------- */

static const char *opt_string(lua_State *L, int t, const char *name) {
  lua_pushstring(L, name);
  lua_rawget(L, t); /* raw: the string must stay referenced by the table after the pop */
  const char *s = NULL;
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n;
    s = lua_tolstring(L, -1, &n);
    if (memchr(s, '\0', n)) luaL_argerror(L, 3, lua_pushfstring(L, "%s: must not contain NUL bytes", name));
  } else if (!lua_isnil(L, -1)) {
    luaL_argerror(L, 3, lua_pushfstring(L, "%s: expected a string, got %s", name, luaL_typename(L, -1)));
  }
  lua_pop(L, 1);
  return s;
}

/* Replaces the table of form fields at idx by its application/x-www-form-urlencoded text. */
static void encode_form(lua_State *L, int idx) {
  pthread_once(&init_once, global_init);
  if (init_result != CURLE_OK) luaL_error(L, "littlehorse: libcurl could not be initialised");
  lua_newtable(L); /* the encoded "name=value" pieces, joined below */
  int pieces = lua_gettop(L), n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, 2, "form fields must be string names with string values");
    size_t kn, vn;
    const char *k = lua_tolstring(L, -2, &kn), *v = lua_tolstring(L, -1, &vn);
    char *ek = curl_easy_escape(NULL, k, (int)kn), *ev = curl_easy_escape(NULL, v, (int)vn);
    if (ek && ev) lua_pushfstring(L, "%s=%s", ek, ev);
    curl_free(ek);
    curl_free(ev);
    if (!ek || !ev) luaL_error(L, "littlehorse: out of memory");
    lua_rawseti(L, pieces, ++n);
    lua_pop(L, 1);
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '&');
    lua_rawgeti(L, pieces, i);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  lua_replace(L, idx);
  lua_pop(L, 1); /* pieces */
}

int lh_http_lua_post(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
    return luaL_argerror(L, 1, "expected an http:// or https:// URL");
  if (lua_istable(L, 2)) encode_form(L, 2);
  size_t body_len;
  const char *body = luaL_checklstring(L, 2, &body_len);
  http_request req = { url, body, body_len, NULL, NULL, 0, NULL };
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    req.user = opt_string(L, 3, "user");
    req.password = opt_string(L, 3, "password");
    req.ca_file = opt_string(L, 3, "ca_file");
    lua_getfield(L, 3, "timeout");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TNUMBER) luaL_argerror(L, 3, "timeout: expected a number of seconds");
      req.timeout = (double)lua_tonumber(L, -1);
      if (!(req.timeout > 0) || req.timeout > 1e6) luaL_argerror(L, 3, "timeout: must be a positive number of seconds");
    }
    lua_pop(L, 1);
  }
  http_response res;
  if (!post_form(&req, &res)) {
    lua_pushnil(L);
    lua_pushstring(L, res.error);
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)res.status);
  lua_pushlstring(L, res.body, res.body_len); /* on a memory error here the body leaks: acceptable */
  response_free(&res);
  return 2;
}
