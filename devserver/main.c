/* main.c: lh-devserver's command line, signals and lifecycle.
 *
 *   lh-devserver [--host H] [--port N] [--def NAME]... [--threads N] [--verbose]
 *                [--wait-correlation DEF:KEY:WFRUN]...
 *                [fault, store, TLS, tenant/token and stats options: see usage()]
 *
 * Prints one line "LISTENING <host>:<port>" on stdout once it accepts calls. SIGINT/SIGTERM
 * stop it cleanly (exit 0); SIGUSR1 prints a "STATS seq=N ..." line on stdout. Exit 1: cannot
 * listen or open the store; exit 2: bad usage or a bad --def name. Signals are blocked in
 * every thread (set first, so gRPC's and our own threads inherit it) and taken synchronously
 * by the main thread: no gRPC call runs in a handler. Between signals it frees expired
 * CorrelatedEvents (every second) and keeps --stats-file current. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "auth.h"
#include "correlated.h"
#include "db.h"
#include "eventdefs.h"
#include "faults.h"
#include "server.h"

#define MAX_THREADS 256
#define STATS_FILE_PERIOD_MS 100
#define SWEEP_PERIOD_MS 1000

static void usage(FILE *f)
{
    fprintf(f,
        "usage: lh-devserver [options]\n"
        "  --host H              address to listen on (default 127.0.0.1)\n"
        "  --port N              TCP port, 0 = any free port (default 2023)\n"
        "  --def NAME            pre-register ExternalEventDef NAME unless the store has it\n"
        "                        (repeatable)\n"
        "  --wait-correlation DEF:KEY:WFRUN  WfRun WFRUN waits on correlation key KEY of\n"
        "                        ExternalEventDef DEF (thread 0, node position 1), as the\n"
        "                        DevServer.StartWaiting RPC does (repeatable; after --def)\n"
        "  --threads N           worker threads / completion queues (default: online CPUs)\n"
        "  --verbose             log one line per call to stderr\n"
        "Persistent store:\n"
        "  --store FILE          append-only log of every change (events, defs, correlated\n"
        "                        events, waiting WfRuns), synced (fdatasync)\n"
        "                        before any reply that depends on it; replayed at start\n"
        "Faults (PutExternalEvent and PutCorrelatedEvent, except --delay-ms; counters are\n"
        "shared by all threads and both RPCs):\n"
        "  --fail-next N         the next N calls fail with --fail-code, storing nothing\n"
        "  --fail-rate P         each call fails with probability P (0..1), storing nothing\n"
        "  --fail-code CODE      status name (UNAVAILABLE) or number (14); default UNAVAILABLE\n"
        "  --fail-message TEXT   status message of injected failures\n"
        "  --store-then-fail N   the next N calls that store something answer --fail-code instead\n"
        "  --store-then-fail-rate P  same, with probability P per stored put (lost replies)\n"
        "  --exhaust-next N      the next N calls answer RESOURCE_EXHAUSTED \"Quota exceeded. Retry\n"
        "                        after Mms.\" with a google.rpc.RetryInfo in grpc-status-details-bin\n"
        "  --retry-after-ms M    the RetryInfo delay (default 1000)\n"
        "  --drop-next N         the next N calls have their TCP connection shut down mid-call\n"
        "  --delay-ms N          every reply of every method is sent N ms after its request came\n"
        "                        (a timer thread: other calls are served meanwhile)\n"
        "  --seed N              seed for the --*-rate draws (default: random)\n"
        "TLS and auth:\n"
        "  --tls-cert FILE --tls-key FILE   serve TLS with this PEM certificate chain and key\n"
        "  --tls-client-ca FILE  mutual TLS: require a client certificate signed by this CA\n"
        "  --tenants A,B         allowed `tenantid` values (no header = \"default\"); others get\n"
        "                        PERMISSION_DENIED \"Tenant not allowed\" (repeatable)\n"
        "  --require-token T     require `authorization: Bearer T` (or bare T); repeatable.\n"
        "                        Else UNAUTHENTICATED \"Token is empty\" / \"Token is not active\"\n"
        "  --token-file FILE     more accepted tokens, one per line with an optional expiry in\n"
        "                        Unix seconds; re-read whenever it changes\n"
        "Stats:\n"
        "  --stats-file FILE     keep a STATS line in FILE (rewritten within 100 ms of a change)\n"
        "Prints \"LISTENING <host>:<port>\" on stdout once ready. SIGUSR1 prints \"STATS seq=N\n"
        "accepted=... open=... events=... ...\" on stdout; SIGINT/SIGTERM stop it.\n");
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* parse_long for int options (lo and hi within int's range) */
static int parse_int(const char *s, long lo, long hi, int *out)
{
    long v;
    if (parse_long(s, lo, hi, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

static int parse_prob(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0 && v <= 1)) return -1;
    *out = v;
    return 0;
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) return 1;
    return n > MAX_THREADS ? MAX_THREADS : (int)n;
}

/* Writes `line` to path atomically (temp file + rename). */
static void write_stats_file(const char *path, const char *line)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) return;
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "%s\n", line);
    if (fclose(f) == 0) rename(tmp, path);
    else remove(tmp);
}

enum {
    OPT_FAIL_NEXT = 256, OPT_FAIL_RATE, OPT_FAIL_CODE, OPT_FAIL_MESSAGE, OPT_STORE_THEN_FAIL,
    OPT_STORE_THEN_FAIL_RATE, OPT_EXHAUST_NEXT, OPT_RETRY_AFTER_MS, OPT_DROP_NEXT, OPT_DELAY_MS, OPT_SEED,
    OPT_STORE, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_CLIENT_CA, OPT_TENANTS, OPT_REQUIRE_TOKEN, OPT_TOKEN_FILE,
    OPT_STATS_FILE, OPT_WAIT_CORRELATION,
};

/* --wait-correlation DEF:KEY:WFRUN: DEF up to the first ':', WFRUN after the last one, KEY
 * (which may hold ':') in between. */
static int wait_correlation(lh_db *db, const char *arg, arena *a)
{
    const char *c1 = strchr(arg, ':'), *c2 = strrchr(arg, ':');
    if (!c1 || c2 == c1 || c1 == arg || !c2[1]) {
        fprintf(stderr, "lh-devserver: bad --wait-correlation '%s' (DEF:KEY:WFRUN)\n", arg);
        return -1;
    }
    char *def = strndup(arg, (size_t)(c1 - arg)), *key = strndup(c1 + 1, (size_t)(c2 - c1 - 1));
    lh_reply r = { .code = GRPC_STATUS_INTERNAL, .message = "out of memory" };
    if (def && key) wait_correlation_arg(db, def, key, c2 + 1, a, &r);
    if (r.code != GRPC_STATUS_OK) fprintf(stderr, "lh-devserver: --wait-correlation '%s': %s\n", arg, r.message);
    free(def);
    free(key);
    return r.code == GRPC_STATUS_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    /* First, so that every thread (gRPC's, the store writer, the timer) inherits the mask. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    server_config cfg = { .host = "127.0.0.1", .port = 2023, .threads = default_threads(), .verbose = 0 };
    faults f;
    auth au;
    faults_init(&f);
    auth_init(&au);
    cfg.faults = &f;
    cfg.auth = &au;
    const char *store_path = NULL, *stats_path = NULL;
    const char **defs = calloc((size_t)argc, sizeof *defs);
    const char **waits = calloc((size_t)argc, sizeof *waits);
    int ndefs = 0, nwaits = 0, rc = 2;
    long lv;
    if (!defs || !waits) return 1;

    static const struct option longopts[] = {
        { "host", required_argument, NULL, 'h' },
        { "port", required_argument, NULL, 'p' },
        { "def", required_argument, NULL, 'd' },
        { "threads", required_argument, NULL, 't' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'H' },
        { "fail-next", required_argument, NULL, OPT_FAIL_NEXT },
        { "fail-rate", required_argument, NULL, OPT_FAIL_RATE },
        { "fail-code", required_argument, NULL, OPT_FAIL_CODE },
        { "fail-message", required_argument, NULL, OPT_FAIL_MESSAGE },
        { "store-then-fail", required_argument, NULL, OPT_STORE_THEN_FAIL },
        { "store-then-fail-rate", required_argument, NULL, OPT_STORE_THEN_FAIL_RATE },
        { "exhaust-next", required_argument, NULL, OPT_EXHAUST_NEXT },
        { "retry-after-ms", required_argument, NULL, OPT_RETRY_AFTER_MS },
        { "drop-next", required_argument, NULL, OPT_DROP_NEXT },
        { "delay-ms", required_argument, NULL, OPT_DELAY_MS },
        { "seed", required_argument, NULL, OPT_SEED },
        { "store", required_argument, NULL, OPT_STORE },
        { "tls-cert", required_argument, NULL, OPT_TLS_CERT },
        { "tls-key", required_argument, NULL, OPT_TLS_KEY },
        { "tls-client-ca", required_argument, NULL, OPT_TLS_CLIENT_CA },
        { "tenants", required_argument, NULL, OPT_TENANTS },
        { "require-token", required_argument, NULL, OPT_REQUIRE_TOKEN },
        { "token-file", required_argument, NULL, OPT_TOKEN_FILE },
        { "stats-file", required_argument, NULL, OPT_STATS_FILE },
        { "wait-correlation", required_argument, NULL, OPT_WAIT_CORRELATION },
        { NULL, 0, NULL, 0 },
    };
    opterr = 0;
    int opt;
#define BAD(...) do { fprintf(stderr, "lh-devserver: " __VA_ARGS__); fputc('\n', stderr); goto bad_usage; } while (0)
    while ((opt = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            if (!*optarg) goto bad_usage;
            cfg.host = optarg;
            break;
        case 'p':
            if (parse_int(optarg, 0, 65535, &cfg.port)) BAD("bad --port '%s' (0-65535)", optarg);
            break;
        case 'd': defs[ndefs++] = optarg; break;
        case 't':
            if (parse_int(optarg, 1, MAX_THREADS, &cfg.threads)) BAD("bad --threads '%s' (1-%d)", optarg, MAX_THREADS);
            break;
        case 'v': cfg.verbose = 1; break;
        case 'H':
            usage(stdout);
            rc = 0;
            goto out;
        case OPT_FAIL_NEXT:
            if (parse_long(optarg, 0, LONG_MAX, &lv)) BAD("bad --fail-next '%s' (a count)", optarg);
            atomic_store(&f.fail_next, lv);
            break;
        case OPT_FAIL_RATE:
            if (parse_prob(optarg, &f.fail_rate)) BAD("bad --fail-rate '%s' (0..1)", optarg);
            break;
        case OPT_FAIL_CODE:
            if (faults_parse_code(optarg, &f.fail_code))
                BAD("bad --fail-code '%s' (a status name such as UNAVAILABLE, or 1-16)", optarg);
            break;
        case OPT_FAIL_MESSAGE: f.fail_message = optarg; break;
        case OPT_STORE_THEN_FAIL:
            if (parse_long(optarg, 0, LONG_MAX, &lv)) BAD("bad --store-then-fail '%s' (a count)", optarg);
            atomic_store(&f.store_then_fail, lv);
            break;
        case OPT_STORE_THEN_FAIL_RATE:
            if (parse_prob(optarg, &f.store_then_fail_rate)) BAD("bad --store-then-fail-rate '%s' (0..1)", optarg);
            break;
        case OPT_EXHAUST_NEXT:
            if (parse_long(optarg, 0, LONG_MAX, &lv)) BAD("bad --exhaust-next '%s' (a count)", optarg);
            atomic_store(&f.exhaust_next, lv);
            break;
        case OPT_RETRY_AFTER_MS:
            if (parse_int(optarg, 0, INT_MAX, &f.retry_after_ms)) BAD("bad --retry-after-ms '%s'", optarg);
            break;
        case OPT_DROP_NEXT:
            if (parse_long(optarg, 0, LONG_MAX, &lv)) BAD("bad --drop-next '%s' (a count)", optarg);
            atomic_store(&f.drop_next, lv);
            break;
        case OPT_DELAY_MS:
            if (parse_int(optarg, 0, 3600 * 1000, &f.delay_ms)) BAD("bad --delay-ms '%s' (0-3600000)", optarg);
            break;
        case OPT_SEED:
            if (parse_long(optarg, 0, LONG_MAX, &lv)) BAD("bad --seed '%s'", optarg);
            f.seed = (uint64_t)lv;
            break;
        case OPT_STORE: store_path = optarg; break;
        case OPT_TLS_CERT: cfg.tls_cert = optarg; break;
        case OPT_TLS_KEY: cfg.tls_key = optarg; break;
        case OPT_TLS_CLIENT_CA: cfg.tls_client_ca = optarg; break;
        case OPT_TENANTS:
            if (auth_add_tenants(&au, optarg)) BAD("bad --tenants '%s' (comma-separated names)", optarg);
            break;
        case OPT_REQUIRE_TOKEN:
            if (auth_add_token(&au, optarg)) BAD("bad --require-token (empty)");
            break;
        case OPT_TOKEN_FILE: au.token_file = optarg; break;
        case OPT_STATS_FILE: stats_path = optarg; break;
        case OPT_WAIT_CORRELATION: waits[nwaits++] = optarg; break;
        case ':': BAD("option '%s' needs a value", argv[optind - 1]);
        default:
            if (optind > 0 && optind <= argc) BAD("bad option '%s'", argv[optind - 1]);
            goto bad_usage;
        }
    }
    if (optind < argc) BAD("unexpected argument '%s'", argv[optind]);
    if (!cfg.tls_cert != !cfg.tls_key) BAD("--tls-cert and --tls-key go together");
    if (cfg.tls_client_ca && !cfg.tls_cert) BAD("--tls-client-ca needs --tls-cert and --tls-key");
    if (faults_build_exhausted(&f)) BAD("bad --retry-after-ms");
#undef BAD

    rc = 1;
    lh_db db;
    if (lh_db_init(&db)) {
        fprintf(stderr, "lh-devserver: out of memory\n");
        goto out;
    }
    char err[512];
    if (store_path && lh_db_open_journal(&db, store_path, err, sizeof err)) {
        fprintf(stderr, "lh-devserver: --store %s: %s\n", store_path, err);
        lh_db_free(&db);
        goto out;
    }
    {
        arena *a = malloc(sizeof *a);
        if (!a) goto out_db;
        arena_init(a);
        for (int i = 0; i < ndefs; i++) {
            lh_reply r;
            register_def_name(&db, defs[i], a, &r);
            arena_reset(a);
            if (r.code != GRPC_STATUS_OK) {
                fprintf(stderr, "lh-devserver: --def '%s': %s\n", defs[i], r.message);
                free(a);
                rc = 2;
                goto out_db;
            }
        }
        for (int i = 0; i < nwaits; i++) {
            int bad = wait_correlation(&db, waits[i], a);
            arena_reset(a);
            if (bad) {
                free(a);
                rc = 2;
                goto out_db;
            }
        }
        free(a);
    }
    if (db.journal && journal_flush(db.journal)) {
        fprintf(stderr, "lh-devserver: --store %s: cannot write: %s\n", store_path, strerror(errno));
        goto out_db;
    }

    int port = 0;
    lh_server *srv = server_start(&cfg, &db, &port, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "lh-devserver: %s\n", err);
        goto out_db;
    }
    if (strchr(cfg.host, ':')) printf("LISTENING [%s]:%d\n", cfg.host, port);
    else printf("LISTENING %s:%d\n", cfg.host, port);
    fflush(stdout);

    unsigned long seq = 0;
    char line[2048], last[2048] = "";
    struct timespec last_sweep;
    clock_gettime(CLOCK_MONOTONIC, &last_sweep);
    for (;;) {
        long period_ms = stats_path ? STATS_FILE_PERIOD_MS : SWEEP_PERIOD_MS;
        struct timespec period = { .tv_sec = period_ms / 1000, .tv_nsec = period_ms % 1000 * 1000000L };
        int sig = sigtimedwait(&signals, NULL, &period);
        if (sig < 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((now.tv_sec - last_sweep.tv_sec) * 1000 + (now.tv_nsec - last_sweep.tv_nsec) / 1000000 >= SWEEP_PERIOD_MS) {
                correlated_sweep(&db);
                last_sweep = now;
            }
            if (stats_path) {
                server_stats(srv, line, sizeof line);
                if (strcmp(line, last) != 0) {
                    write_stats_file(stats_path, line);
                    strcpy(last, line);
                }
            }
            continue;
        }
        if (sig == SIGUSR1) {
            server_stats(srv, line, sizeof line);
            printf("STATS seq=%lu %s\n", ++seq, line);
            fflush(stdout);
            if (stats_path) {
                write_stats_file(stats_path, line);
                strcpy(last, line);
            }
            continue;
        }
        if (cfg.verbose) fprintf(stderr, "lh-devserver: signal %d, shutting down\n", sig);
        break;
    }

    if (server_stop(srv) != 0) {
        /* gRPC did not wind down in time: exit anyway (the OS reclaims everything; the store
         * is synced before every reply, so nothing acknowledged is lost). */
        fprintf(stderr, "lh-devserver: shutdown timed out; exiting\n");
        fflush(stderr);
        _exit(0);
    }
    rc = 0;
out_db:
    lh_db_free(&db);
out:
    auth_free(&au);
    free(defs);
    free(waits);
    return rc;

bad_usage:
    usage(stderr);
    auth_free(&au);
    free(defs);
    free(waits);
    return 2;
}
