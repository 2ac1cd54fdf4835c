#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <grpc/grpc_security.h>
#include "channel.h"
#include "version.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static lh_channel *channels; /* process-wide C state: the open shared channels */

/* Every setting that changes the channel, in one string: equal strings may share. */
static char *make_key(const lh_channel_opts *o) {
  const char *parts[] = { o->target, o->tls ? "tls" : "plain", o->ca_pem, o->cert_pem, o->key_pem,
                          o->server_name, o->lb_policy };
  size_t n = 64;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) n += (parts[i] ? strlen(parts[i]) : 0) + 2;
  char *k = malloc(n), *w = k;
  if (!k) return NULL;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    size_t l = parts[i] ? strlen(parts[i]) : 0;
    memcpy(w, parts[i] ? parts[i] : "", l);
    w += l;
    *w++ = '\x1f';
    *w++ = parts[i] ? '1' : '0';
  }
  snprintf(w, 64, "|%d|%d|%d", o->keepalive_time_ms, o->keepalive_timeout_ms, o->max_receive_size);
  return k;
}

static grpc_channel *make_channel(const lh_channel_opts *o, const char **err) {
  grpc_arg args[8];
  int n = 0;
  args[n].type = GRPC_ARG_STRING;
  args[n].key = GRPC_ARG_PRIMARY_USER_AGENT_STRING;
  args[n++].value.string = "littlehorse-lua/" LH_VERSION;
  if (o->keepalive_time_ms > 0) {
    args[n].type = GRPC_ARG_INTEGER;
    args[n].key = GRPC_ARG_KEEPALIVE_TIME_MS;
    args[n++].value.integer = o->keepalive_time_ms;
    args[n].type = GRPC_ARG_INTEGER;
    args[n].key = GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS; /* as the Java SDK; the server allows it */
    args[n++].value.integer = 1;
    args[n].type = GRPC_ARG_INTEGER;
    args[n].key = GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA;
    args[n++].value.integer = 0;
  }
  if (o->keepalive_timeout_ms > 0) {
    args[n].type = GRPC_ARG_INTEGER;
    args[n].key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS;
    args[n++].value.integer = o->keepalive_timeout_ms;
  }
  if (o->lb_policy) {
    args[n].type = GRPC_ARG_STRING;
    args[n].key = GRPC_ARG_LB_POLICY_NAME;
    args[n++].value.string = (char *)o->lb_policy;
  }
  if (o->max_receive_size != 0) {
    args[n].type = GRPC_ARG_INTEGER;
    args[n].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[n++].value.integer = o->max_receive_size;
  }
  if (o->tls && o->server_name) {
    args[n].type = GRPC_ARG_STRING;
    args[n].key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    args[n++].value.string = (char *)o->server_name;
  }
  grpc_channel_args chargs = { (size_t)n, args };
  grpc_channel_credentials *creds;
  if (o->tls) {
    grpc_ssl_pem_key_cert_pair pair = { o->key_pem, o->cert_pem };
    creds = grpc_ssl_credentials_create(o->ca_pem, o->cert_pem ? &pair : NULL, NULL, NULL);
    if (!creds) { *err = "the TLS settings were refused (check the CA, certificate and key PEM)"; return NULL; }
  } else {
    creds = grpc_insecure_credentials_create();
  }
  grpc_channel *ch = grpc_channel_create(o->target, creds, &chargs);
  grpc_channel_credentials_release(creds);
  if (!ch) *err = "gRPC could not make a channel for this target";
  return ch;
}

lh_channel *lh_channel_get(const lh_channel_opts *o, const char *const *paths, int npaths, const char **err) {
  char *key = make_key(o);
  if (!key) { *err = "out of memory"; return NULL; }
  long pid = (long)getpid();
  pthread_mutex_lock(&mu);
  for (lh_channel *c = channels; c; c = c->next) {
    if (c->pid == pid && strcmp(c->key, key) == 0) {
      c->refs++;
      pthread_mutex_unlock(&mu);
      free(key);
      return c;
    }
  }
  lh_channel *c = calloc(1, sizeof *c);
  void **methods = calloc((size_t)npaths, sizeof *methods);
  grpc_channel *gc = c && methods ? make_channel(o, err) : NULL;
  if (!gc) {
    if (!c || !methods) *err = "out of memory";
    pthread_mutex_unlock(&mu);
    free(c);
    free(methods);
    free(key);
    return NULL;
  }
  c->channel = gc;
  c->methods = methods;
  for (int i = 0; i < npaths; i++) c->methods[i] = grpc_channel_register_call(gc, paths[i], NULL, NULL);
  c->key = key;
  c->refs = 1;
  c->pid = pid;
  c->next = channels;
  channels = c;
  pthread_mutex_unlock(&mu);
  return c;
}

void lh_channel_release(lh_channel *c) {
  pthread_mutex_lock(&mu);
  int last = --c->refs == 0;
  if (last)
    for (lh_channel **q = &channels; *q; q = &(*q)->next)
      if (*q == c) { *q = c->next; break; }
  pthread_mutex_unlock(&mu);
  if (!last) return;
  if (c->pid == (long)getpid()) grpc_channel_destroy(c->channel); /* a forked child leaves it */
  free(c->methods);
  free(c->key);
  free(c);
}

int lh_channel_count(void) {
  int n = 0;
  long pid = (long)getpid();
  pthread_mutex_lock(&mu);
  for (lh_channel *c = channels; c; c = c->next) n += c->pid == pid;
  pthread_mutex_unlock(&mu);
  return n;
}
