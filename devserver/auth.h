/* auth.h: the real server's tenant and OAuth checks, as far as a client can see them.
 *   --tenants a,b    only these `tenantid` values are served; no header means "default".
 *                    Others: PERMISSION_DENIED "Tenant not allowed".
 *   --require-token T (repeatable) and/or --token-file FILE: `authorization` must carry an
 *                    active token, as "Bearer T" or bare T (the server strips "Bearer" and
 *                    trims). None: UNAUTHENTICATED "Token is empty"; unknown or expired:
 *                    UNAUTHENTICATED "Token is not active".
 * The token file is re-read whenever it changes (checked on every call): one token per line,
 * optionally followed by its expiry in Unix seconds; '#' starts a comment. A missing file
 * means no active token. The token check comes first (authentication, then authorization). */
#ifndef LHDS_AUTH_H
#define LHDS_AUTH_H

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

typedef struct token_set token_set;

typedef struct auth {
    char **tenants;             /* NULL: any tenant */
    size_t ntenants;
    char **tokens;              /* --require-token values */
    size_t ntokens;
    const char *token_file;     /* NULL: none */

    pthread_mutex_t mu;         /* guards the file's token set */
    token_set *file_tokens;
    int file_seen;              /* identity of the file last read */
    dev_t file_dev;
    ino_t file_ino;
    off_t file_size;
    struct timespec file_mtime;

    atomic_long n_unauthenticated, n_denied;
} auth;

void auth_init(auth *a);
void auth_free(auth *a);

/* Adds the comma-separated tenants of `list` (kept by pointer into a private copy). */
int auth_add_tenants(auth *a, const char *list);
int auth_add_token(auth *a, const char *token);

/* GRPC_STATUS_OK, or the error code with *msg set to a static message. */
grpc_status_code auth_check(auth *a, const grpc_metadata_array *md, const char **msg);

#endif
