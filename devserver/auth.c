/* auth.c: see auth.h. */
#include "auth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MSG_TENANT_DENIED  "Tenant not allowed"
#define MSG_TOKEN_EMPTY    "Token is empty"
#define MSG_TOKEN_INACTIVE "Token is not active"
#define DEFAULT_TENANT     "default"

struct token_set {
    size_t n;
    char **tokens;
    double *expires;     /* Unix seconds; 0: never */
};

void auth_init(auth *a)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void token_set_free(token_set *t)
{
    if (!t) return;
    free_strings(t->tokens, t->n);
    free(t->expires);
    free(t);
}

void auth_free(auth *a)
{
    free_strings(a->tenants, a->ntenants);
    free_strings(a->tokens, a->ntokens);
    token_set_free(a->file_tokens);
    pthread_mutex_destroy(&a->mu);
    a->tenants = a->tokens = NULL;
    a->file_tokens = NULL;
}

static int push(char ***v, size_t *n, const char *s, size_t len)
{
    char **nv = realloc(*v, (*n + 1) * sizeof **v);
    if (!nv) return -1;
    *v = nv;
    char *c = malloc(len + 1);
    if (!c) return -1;
    memcpy(c, s, len);
    c[len] = '\0';
    nv[(*n)++] = c;
    return 0;
}

int auth_add_tenants(auth *a, const char *list)
{
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0) return -1; /* empty tenant name */
        if (push(&a->tenants, &a->ntenants, p, len)) return -1;
        if (!e) return 0;
        p = e + 1;
    }
}

int auth_add_token(auth *a, const char *token)
{
    if (!*token) return -1;
    return push(&a->tokens, &a->ntokens, token, strlen(token));
}


/* The value of metadata `key` (lowercase, as gRPC delivers it), or NULL. */
static const grpc_slice *md_get(const grpc_metadata_array *md, const char *key)
{
    for (size_t i = 0; i < md->count; i++)
        if (grpc_slice_str_cmp(md->metadata[i].key, key) == 0) return &md->metadata[i].value;
    return NULL;
}

static int slice_eq(const char *s, size_t n, const char *z)
{
    return strlen(z) == n && memcmp(s, z, n) == 0;
}

/* ---- the token file ------------------------------------------------------------------ */

static token_set *parse_token_file(const char *path)
{
    token_set *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    FILE *f = fopen(path, "r");
    if (!f) return t; /* no file yet: no active token */
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        char *p = line;
        char *hash = strchr(p, '#');
        if (hash) *hash = '\0';
        while (isspace((unsigned char)*p)) p++;
        char *tok = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        size_t tlen = (size_t)(p - tok);
        if (!tlen) continue;
        double exp = 0;
        if (*p) exp = strtod(p, NULL);
        double *ne = realloc(t->expires, (t->n + 1) * sizeof *ne);
        if (!ne) break;
        t->expires = ne;
        ne[t->n] = exp;
        if (push(&t->tokens, &t->n, tok, tlen)) break;
    }
    free(line);
    fclose(f);
    return t;
}

/* Re-reads the file if it changed since the last read. Called with a->mu held. */
static void refresh_token_file(auth *a)
{
    struct stat st;
    int exists = stat(a->token_file, &st) == 0;
    if (a->file_seen && exists == (a->file_seen == 1) &&
        (!exists || (st.st_dev == a->file_dev && st.st_ino == a->file_ino && st.st_size == a->file_size &&
                     st.st_mtim.tv_sec == a->file_mtime.tv_sec && st.st_mtim.tv_nsec == a->file_mtime.tv_nsec)))
        return;
    token_set *t = parse_token_file(a->token_file);
    if (!t) return; /* out of memory: keep the old set */
    token_set_free(a->file_tokens);
    a->file_tokens = t;
    a->file_seen = exists ? 1 : 2;
    if (exists) {
        a->file_dev = st.st_dev;
        a->file_ino = st.st_ino;
        a->file_size = st.st_size;
        a->file_mtime = st.st_mtim;
    }
}

static int token_active(auth *a, const char *tok, size_t n)
{
    for (size_t i = 0; i < a->ntokens; i++)
        if (slice_eq(tok, n, a->tokens[i])) return 1;
    if (!a->token_file) return 0;
    int ok = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double t_now = (double)now.tv_sec + now.tv_nsec / 1e9;
    pthread_mutex_lock(&a->mu);
    refresh_token_file(a);
    token_set *t = a->file_tokens;
    for (size_t i = 0; t && i < t->n && !ok; i++)
        if (slice_eq(tok, n, t->tokens[i]) && (t->expires[i] == 0 || t->expires[i] > t_now)) ok = 1;
    pthread_mutex_unlock(&a->mu);
    return ok;
}

/* ---- the check ----------------------------------------------------------------------- */

grpc_status_code auth_check(auth *a, const grpc_metadata_array *md, const char **msg)
{
    if (a->tokens || a->token_file) {
        const grpc_slice *v = md_get(md, "authorization");
        const char *s = v ? (const char *)GRPC_SLICE_START_PTR(*v) : "";
        size_t n = v ? GRPC_SLICE_LENGTH(*v) : 0;
        /* OAuthAuthenticator.extractAccessToken: drop "Bearer", trim. */
        while (n && isspace((unsigned char)*s)) { s++; n--; }
        if (n >= 6 && strncasecmp(s, "Bearer", 6) == 0) { s += 6; n -= 6; }
        while (n && isspace((unsigned char)*s)) { s++; n--; }
        while (n && isspace((unsigned char)s[n - 1])) n--;
        if (n == 0) {
            atomic_fetch_add(&a->n_unauthenticated, 1);
            *msg = MSG_TOKEN_EMPTY;
            return GRPC_STATUS_UNAUTHENTICATED;
        }
        if (!token_active(a, s, n)) {
            atomic_fetch_add(&a->n_unauthenticated, 1);
            *msg = MSG_TOKEN_INACTIVE;
            return GRPC_STATUS_UNAUTHENTICATED;
        }
    }
    if (a->tenants) {
        const grpc_slice *v = md_get(md, "tenantid");
        const char *s = v ? (const char *)GRPC_SLICE_START_PTR(*v) : DEFAULT_TENANT;
        size_t n = v ? GRPC_SLICE_LENGTH(*v) : strlen(DEFAULT_TENANT);
        int ok = 0;
        for (size_t i = 0; i < a->ntenants && !ok; i++) ok = slice_eq(s, n, a->tenants[i]);
        if (!ok) {
            atomic_fetch_add(&a->n_denied, 1);
            *msg = MSG_TENANT_DENIED;
            return GRPC_STATUS_PERMISSION_DENIED;
        }
    }
    return GRPC_STATUS_OK;
}
