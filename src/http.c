/* A tiny HTTP POST on libcurl's easy API: see http.h. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "async.h"
#include "http.h"
#include "runtime.h"
#include "wake.h"

typedef struct http_request {
  const char *url;        /* http:// or https:// only */
  const char *body;       /* already application/x-www-form-urlencoded */
  size_t body_len;
  const char *user;       /* HTTP Basic auth, or NULL for none */
  const char *password;
  double timeout;         /* seconds for the whole exchange (connect included); <= 0: 10 s */
  const char *ca_file;    /* PEM bundle to verify the server with, or NULL for the system roots */
  const int *cancel;      /* when not NULL: the transfer stops once *cancel is nonzero */
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

/* The transfer's progress callback: a nonzero return aborts it (CURLE_ABORTED_BY_CALLBACK). */
static int on_progress(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
  (void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
  return __atomic_load_n((const int *)p, __ATOMIC_RELAXED);
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
  if (req->cancel) {
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)req->cancel);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  }
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
  } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
    snprintf(res->error, sizeof res->error, "cancelled");
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

/* The arguments of http_post and http_post_async, checked: url, body (string or form table,
 * replaced on the stack by its text), options. The strings stay on the stack. */
static void read_request(lua_State *L, http_request *req) {
  const char *url = luaL_checkstring(L, 1);
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
    luaL_argerror(L, 1, "expected an http:// or https:// URL");
  if (lua_istable(L, 2)) encode_form(L, 2);
  size_t body_len;
  const char *body = luaL_checklstring(L, 2, &body_len);
  memset(req, 0, sizeof *req);
  req->url = url;
  req->body = body;
  req->body_len = body_len;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    req->user = opt_string(L, 3, "user");
    req->password = opt_string(L, 3, "password");
    req->ca_file = opt_string(L, 3, "ca_file");
    lua_getfield(L, 3, "timeout");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TNUMBER) luaL_argerror(L, 3, "timeout: expected a number of seconds");
      req->timeout = (double)lua_tonumber(L, -1);
      if (!(req->timeout > 0) || req->timeout > 1e6) luaL_argerror(L, 3, "timeout: must be a positive number of seconds");
    }
    lua_pop(L, 1);
  }
}

static int push_response(lua_State *L, int ok, http_response *res) {
  if (!ok) {
    lua_pushnil(L);
    lua_pushstring(L, res->error);
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)res->status);
  lua_pushlstring(L, res->body, res->body_len);
  return 2;
}

int lh_http_lua_post(lua_State *L) {
  http_request req;
  read_request(L, &req);
  http_response res;
  int ok = post_form(&req, &res);
  int n = push_response(L, ok, &res); /* on a memory error here the body leaks: acceptable */
  response_free(&res);
  return n;
}

/* ---- the same request on a thread of its own (littlehorse.http_job) ----
 *
 * For hosts whose thread must not block (nginx): the transfer runs on a detached thread, which
 * marks the job done and announces its id on the wake channel (wake.h). The job is shared by
 * its Lua object and the thread; whoever lets go last frees it, so a job collected mid-transfer
 * never blocks its __gc and never frees memory the thread still uses. */

#define LH_HTTP_JOB_MT "littlehorse.http_job"

typedef struct http_job {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;              /* the Lua object's and the thread's */
  int done, ok;
  int cancel;            /* read by the transfer (on_progress) */
  uint64_t id;
  char *url, *body, *user, *password, *ca_file;
  size_t body_len;
  double timeout;
  http_response res;
} http_job;

typedef struct http_handle {
  http_job *j;           /* NULL once closed */
  pid_t pid;             /* the process that started it: a forked child has no such thread */
} http_handle;

static void forget_secret(char *s) {
  if (!s) return;
  volatile char *v = s;
  while (*v) *v++ = 0;
  free(s);
}

static void job_unref(http_job *j) {
  pthread_mutex_lock(&j->mu);
  int last = --j->refs == 0;
  pthread_mutex_unlock(&j->mu);
  if (!last) return;
  free(j->url);
  free(j->body);
  forget_secret(j->user);
  forget_secret(j->password);
  free(j->ca_file);
  response_free(&j->res);
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cv);
  free(j);
}

static void *job_thread(void *arg) {
  http_job *j = arg;
  http_request req = { j->url, j->body, j->body_len, j->user, j->password, j->timeout, j->ca_file, &j->cancel };
  http_response res;
  int ok = post_form(&req, &res);
  pthread_mutex_lock(&j->mu);
  j->res = res;
  j->ok = ok;
  j->done = 1;
  pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
  lh_wake_post(j->id); /* after done is set (wake.h) */
  job_unref(j);
  return NULL;
}

static char *dup_or_null(const char *s, int *oom) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom = 1;
  return d;
}

static http_handle *check_job(lua_State *L) {
  http_handle *h = luaL_checkudata(L, 1, LH_HTTP_JOB_MT);
  if (h->pid != lh_runtime_pid())
    luaL_error(L, "littlehorse: this HTTP job was started in process %d and cannot be used in forked process %d",
               (int)h->pid, (int)getpid());
  if (!h->j) luaL_error(L, "littlehorse: this HTTP job is closed");
  return h;
}

/* job:id() -> its process-unique id (announced on the wake channel when it completes) */
static int job_id(lua_State *L) {
  http_handle *h = check_job(L);
  lua_pushnumber(L, (lua_Number)h->j->id);
  return 1;
}

static int job_done(lua_State *L) {
  http_handle *h = check_job(L);
  pthread_mutex_lock(&h->j->mu);
  int done = h->j->done;
  pthread_mutex_unlock(&h->j->mu);
  lua_pushboolean(L, done);
  return 1;
}

/* job:wait([timeout]) -> status, body | nil, err | false (still running after timeout seconds;
 * none: until done). Blocks the calling thread: under nginx, wait for the job's id first. */
static int job_wait(lua_State *L) {
  http_handle *h = check_job(L);
  double timeout = luaL_optnumber(L, 2, -1);
  http_job *j = h->j;
  pthread_mutex_lock(&j->mu);
  if (!j->done && timeout != 0) {
    if (timeout < 0) {
      while (!j->done) pthread_cond_wait(&j->cv, &j->mu);
    } else {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      double whole = (double)(time_t)timeout;
      until.tv_sec += (time_t)whole;
      until.tv_nsec += (long)((timeout - whole) * 1e9);
      if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
      while (!j->done && pthread_cond_timedwait(&j->cv, &j->mu, &until) == 0) {}
    }
  }
  int done = j->done;
  pthread_mutex_unlock(&j->mu);
  if (!done) {
    lua_pushboolean(L, 0);
    return 1;
  }
  return push_response(L, j->ok, &j->res); /* the thread is done with res */
}

/* job:cancel(): abort the transfer (it then completes with nil, "cancelled"). */
static int job_cancel(lua_State *L) {
  http_handle *h = check_job(L);
  __atomic_store_n(&h->j->cancel, 1, __ATOMIC_RELAXED);
  return 0;
}

/* Idempotent; __gc and __close share it. Never blocks: a transfer still running is cancelled
 * and the thread frees the job when it ends. */
static int job_close(lua_State *L) {
  http_handle *h = luaL_checkudata(L, 1, LH_HTTP_JOB_MT);
  if (h->j && h->pid == lh_runtime_pid()) {
    __atomic_store_n(&h->j->cancel, 1, __ATOMIC_RELAXED);
    job_unref(h->j);
  }
  h->j = NULL; /* in a forked child: abandoned, as the parent's thread holds it */
  return 0;
}

static int job_tostring(lua_State *L) {
  http_handle *h = luaL_checkudata(L, 1, LH_HTTP_JOB_MT);
  lua_pushfstring(L, LH_HTTP_JOB_MT ": %p (%s)", (void *)h, h->j ? "open" : "closed");
  return 1;
}

/* core._http_post_async(url, body, opts) -> job | nil, err: http_post's request on a thread.
 * job:id(), job:done(), job:wait([timeout]), job:cancel(), job:close(). */
int lh_http_lua_post_async(lua_State *L) {
  http_request req;
  read_request(L, &req);
  pthread_once(&init_once, global_init); /* here, not on the job's thread: curl_global_init is not thread-safe */
  http_handle *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->j = NULL;
  h->pid = lh_runtime_pid();
  if (luaL_newmetatable(L, LH_HTTP_JOB_MT)) {
    static const luaL_Reg methods[] = {
      { "id", job_id }, { "done", job_done }, { "wait", job_wait }, { "cancel", job_cancel },
      { "close", job_close }, { NULL, NULL },
    };
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, job_close);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, job_close);
    lua_setfield(L, -2, "__close");
#endif
    lua_pushcfunction(L, job_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
  http_job *j = calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "littlehorse: out of memory");
  int oom = 0;
  j->url = dup_or_null(req.url, &oom);
  j->body = malloc(req.body_len + 1);
  if (j->body) { memcpy(j->body, req.body, req.body_len); j->body[req.body_len] = '\0'; } else oom = 1;
  j->body_len = req.body_len;
  j->user = dup_or_null(req.user, &oom);
  j->password = dup_or_null(req.password, &oom);
  j->ca_file = dup_or_null(req.ca_file, &oom);
  j->timeout = req.timeout;
  j->id = lh_async_new_id();
  j->refs = 2; /* the handle's and the thread's */
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  h->j = j;
  if (oom) {
    j->refs = 1;
    return luaL_error(L, "littlehorse: out of memory"); /* the handle's __gc frees j */
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old); /* the host's signals stay with the host's threads */
  pthread_t t;
  int rc = pthread_create(&t, &attr, job_thread, j);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    j->refs = 1;
    lua_pushnil(L);
    lua_pushfstring(L, "cannot start a thread for the HTTP request: %s", strerror(rc));
    return 2;
  }
  return 1;
}
