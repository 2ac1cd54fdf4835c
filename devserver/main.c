/* main.c: lh-devserver's command line, signals and lifecycle.
 *
 *   lh-devserver [--host H] [--port N] [--def NAME]... [--threads N] [--verbose]
 *
 * Prints one line "LISTENING <host>:<port>" on stdout once it accepts calls. SIGINT/SIGTERM
 * stop it cleanly (exit 0). Exit 1: cannot listen; exit 2: bad usage or a bad --def name.
 * Signals are blocked in every thread (set before grpc_init so gRPC's threads inherit it) and
 * taken synchronously by sigwait() in the main thread: no gRPC call runs in a handler. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "handlers.h"
#include "server.h"

#define MAX_THREADS 256

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lh-devserver [--host H] [--port N] [--def NAME]... [--threads N] [--verbose]\n"
            "  --host H      address to listen on (default 127.0.0.1)\n"
            "  --port N      TCP port, 0 = any free port (default 2023)\n"
            "  --def NAME    pre-register ExternalEventDef NAME (repeatable)\n"
            "  --threads N   worker threads / completion queues (default: online CPUs)\n"
            "  --verbose     log one line per call to stderr\n"
            "Prints \"LISTENING <host>:<port>\" on stdout once ready; SIGINT/SIGTERM stop it.\n");
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) return 1;
    return n > MAX_THREADS ? MAX_THREADS : (int)n;
}

int main(int argc, char **argv)
{
    server_config cfg = { .host = "127.0.0.1", .port = 2023, .threads = default_threads(), .verbose = 0 };
    const char **defs = calloc((size_t)argc, sizeof *defs);
    int ndefs = 0;
    if (!defs) return 1;

    static const struct option longopts[] = {
        { "host", required_argument, NULL, 'h' },
        { "port", required_argument, NULL, 'p' },
        { "def", required_argument, NULL, 'd' },
        { "threads", required_argument, NULL, 't' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'H' },
        { NULL, 0, NULL, 0 },
    };
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            if (!*optarg) goto bad_usage;
            cfg.host = optarg;
            break;
        case 'p':
            if (parse_int(optarg, 0, 65535, &cfg.port)) {
                fprintf(stderr, "lh-devserver: bad --port '%s' (0-65535)\n", optarg);
                goto bad_usage;
            }
            break;
        case 'd': defs[ndefs++] = optarg; break;
        case 't':
            if (parse_int(optarg, 1, MAX_THREADS, &cfg.threads)) {
                fprintf(stderr, "lh-devserver: bad --threads '%s' (1-%d)\n", optarg, MAX_THREADS);
                goto bad_usage;
            }
            break;
        case 'v': cfg.verbose = 1; break;
        case 'H':
            usage(stdout);
            free(defs);
            return 0;
        case ':':
            fprintf(stderr, "lh-devserver: option '%s' needs a value\n", argv[optind - 1]);
            goto bad_usage;
        default:
            if (optind > 0 && optind <= argc)
                fprintf(stderr, "lh-devserver: bad option '%s'\n", argv[optind - 1]);
            goto bad_usage;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lh-devserver: unexpected argument '%s'\n", argv[optind]);
        goto bad_usage;
    }

    lh_db db;
    if (lh_db_init(&db)) {
        fprintf(stderr, "lh-devserver: out of memory\n");
        free(defs);
        return 1;
    }
    {
        arena *a = malloc(sizeof *a);
        if (!a) return 1;
        arena_init(a);
        for (int i = 0; i < ndefs; i++) {
            lh_reply r;
            handlers_put_def_name(&db, defs[i], a, &r);
            if (r.code != GRPC_STATUS_OK) {
                fprintf(stderr, "lh-devserver: --def '%s': %s\n", defs[i], r.message);
                arena_reset(a);
                free(a);
                lh_db_free(&db);
                free(defs);
                return 2;
            }
            arena_reset(a);
        }
        free(a);
    }
    free(defs);

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    int port = 0;
    lh_server *srv = server_start(&cfg, &db, &port, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "lh-devserver: %s\n", err);
        lh_db_free(&db);
        return 1;
    }
    if (strchr(cfg.host, ':')) printf("LISTENING [%s]:%d\n", cfg.host, port);
    else printf("LISTENING %s:%d\n", cfg.host, port);
    fflush(stdout);

    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0) {
    }
    if (cfg.verbose) fprintf(stderr, "lh-devserver: signal %d, shutting down\n", sig);

    if (server_stop(srv) != 0) {
        /* gRPC did not wind down in time: exit anyway (the OS reclaims everything). */
        fprintf(stderr, "lh-devserver: shutdown timed out; exiting\n");
        fflush(stderr);
        _exit(0);
    }
    lh_db_free(&db);
    return 0;

bad_usage:
    usage(stderr);
    free(defs);
    return 2;
}
