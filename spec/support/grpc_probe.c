/* grpc_probe.c: a tiny gRPC C-core client for the dev-server specs, independent of the Lua
 * client: TLS / mTLS channels, arbitrary metadata (authorization), and many calls in flight at
 * once on one channel. Built by spec/support/probe.lua into build/grpc-probe.
 *
 *   grpc-probe --target HOST:PORT [--ca FILE [--cert FILE --key FILE] [--server-name NAME]]
 *              [--md KEY=VALUE]... [--method get-def|put-event|get-event] [--def NAME]
 *              [--wf ID] [--guid G] [--count N] [--timeout SECONDS]
 *              [--path /service/Method --body-hex HEX]
 *
 * Starts --count calls (default 1) at once on one channel and waits for all. Prints one line
 * per call, in completion order, then a summary:
 *   CALL <i> <STATUS_NAME> <code> <elapsed_ms> <message>
 *   REPLY <i> <hex>        (with --path, for each call that returned a message)
 *   DONE <count> ok=<n> wall_ms=<ms>
 * --path calls any method with the request bytes given in hex (instead of --method). 
 * With --count > 1, put-event uses guid "<guid>-<i>". Exit 0 unless the usage is wrong. */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/status_names.h"

#define MAX_MD 16


typedef struct probe_call {
    grpc_call *call;
    grpc_metadata_array initial, trailing;
    grpc_byte_buffer *send, *recv;
    grpc_status_code status;
    grpc_slice details;
    double started;
} probe_call;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "grpc-probe: cannot read %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) exit(2);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* protobuf: a length-delimited field */
static size_t put_len(unsigned char *p, int field, const void *data, size_t len)
{
    size_t n = 0;
    p[n++] = (unsigned char)(field << 3 | 2);
    size_t l = len;
    while (l >= 0x80) { p[n++] = (unsigned char)(l | 0x80); l >>= 7; }
    p[n++] = (unsigned char)l;
    memcpy(p + n, data, len);
    return n + len;
}

/* {1: WfRunId{1: wf}, 2: ExternalEventDefId{1: def}, 3: guid}: both PutExternalEventRequest and
 * ExternalEventId start with these three fields. */
static size_t event_id(unsigned char *out, const char *wf, const char *def, const char *guid)
{
    unsigned char tmp[600];
    size_t n = 0, t;
    t = put_len(tmp, 1, wf, strlen(wf));
    n += put_len(out + n, 1, tmp, t);
    t = put_len(tmp, 1, def, strlen(def));
    n += put_len(out + n, 2, tmp, t);
    n += put_len(out + n, 3, guid, strlen(guid));
    return n;
}

static void usage(void)
{
    fprintf(stderr, "usage: grpc-probe --target HOST:PORT [--ca F [--cert F --key F] [--server-name N]] "
                    "[--md K=V]... [--method get-def|put-event|get-event] [--def NAME] [--wf ID] [--guid G] "
                    "[--count N] [--timeout S] [--path /service/Method --body-hex HEX]\n");
    exit(2);
}

/* hex text -> bytes (malloc'd); exits on bad input */
static unsigned char *from_hex(const char *h, size_t *len)
{
    size_t n = strlen(h);
    if (n % 2) usage();
    unsigned char *b = malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) usage();
        b[i] = (unsigned char)v;
    }
    *len = n / 2;
    return b;
}

static void print_hex(const grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, (grpc_byte_buffer *)bb)) return;
    grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    const unsigned char *p = GRPC_SLICE_START_PTR(all);
    for (size_t i = 0; i < GRPC_SLICE_LENGTH(all); i++) printf("%02x", p[i]);
    grpc_slice_unref(all);
}

int main(int argc, char **argv)
{
    const char *target = NULL, *ca = NULL, *cert = NULL, *key = NULL, *server_name = NULL;
    const char *method = "get-def", *def = "probe", *wf = "probe-wf", *guid = "probe-guid";
    const char *raw_path = NULL, *body_hex = NULL;
    const char *md_kv[MAX_MD];
    int nmd = 0, count = 1;
    double timeout = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--target")) target = v;
        else if (!strcmp(a, "--ca")) ca = v;
        else if (!strcmp(a, "--cert")) cert = v;
        else if (!strcmp(a, "--key")) key = v;
        else if (!strcmp(a, "--server-name")) server_name = v;
        else if (!strcmp(a, "--md") && nmd < MAX_MD && strchr(v, '=')) md_kv[nmd++] = v;
        else if (!strcmp(a, "--method")) method = v;
        else if (!strcmp(a, "--def")) def = v;
        else if (!strcmp(a, "--wf")) wf = v;
        else if (!strcmp(a, "--guid")) guid = v;
        else if (!strcmp(a, "--count")) count = atoi(v);
        else if (!strcmp(a, "--timeout")) timeout = atof(v);
        else if (!strcmp(a, "--path")) raw_path = v;
        else if (!strcmp(a, "--body-hex")) body_hex = v;
        else usage();
    }
    if (!target || count < 1 || timeout <= 0 || (!cert != !key)) usage();
    const char *path;
    size_t body_len = 0;
    unsigned char *body = NULL;
    if (!raw_path != !body_hex) usage();
    if (raw_path) {
        path = raw_path;
        body = from_hex(body_hex, &body_len);
    } else if (!strcmp(method, "get-def")) path = "/littlehorse.LittleHorse/GetExternalEventDef";
    else if (!strcmp(method, "put-event")) path = "/littlehorse.LittleHorse/PutExternalEvent";
    else if (!strcmp(method, "get-event")) path = "/littlehorse.LittleHorse/GetExternalEvent";
    else usage();

    grpc_init();
    grpc_channel_credentials *creds;
    char *ca_pem = NULL, *cert_pem = NULL, *key_pem = NULL;
    if (ca) {
        ca_pem = read_file(ca);
        grpc_ssl_pem_key_cert_pair pair;
        if (cert) {
            cert_pem = read_file(cert);
            key_pem = read_file(key);
            pair.private_key = key_pem;
            pair.cert_chain = cert_pem;
        }
        creds = grpc_ssl_credentials_create(ca_pem, cert ? &pair : NULL, NULL, NULL);
    } else {
        creds = grpc_insecure_credentials_create();
    }
    grpc_arg args[2];
    size_t nargs = 0;
    /* A private subchannel: this probe's connection is its own, never shared. */
    args[nargs].type = GRPC_ARG_INTEGER;
    args[nargs].key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    args[nargs].value.integer = 1;
    nargs++;
    if (server_name) {
        args[nargs].type = GRPC_ARG_STRING;
        args[nargs].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
        args[nargs].value.string = (char *)server_name;
        nargs++;
    }
    grpc_channel_args chargs = { .num_args = nargs, .args = args };
    grpc_channel *ch = grpc_channel_create(target, creds, &chargs);
    grpc_channel_credentials_release(creds);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);

    grpc_metadata md[MAX_MD];
    for (int i = 0; i < nmd; i++) {
        const char *eq = strchr(md_kv[i], '=');
        md[i].key = grpc_slice_from_copied_buffer(md_kv[i], (size_t)(eq - md_kv[i]));
        md[i].value = grpc_slice_from_copied_string(eq + 1);
    }

    probe_call *calls = calloc((size_t)count, sizeof *calls);
    grpc_slice method_slice = grpc_slice_from_static_string(path);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                         gpr_time_from_millis((int64_t)(timeout * 1000), GPR_TIMESPAN));
    double wall0 = now_ms();
    for (int i = 0; i < count; i++) {
        probe_call *c = &calls[i];
        unsigned char req[2048];
        size_t n;
        char g[300];
        if (count > 1) snprintf(g, sizeof g, "%s-%d", guid, i);
        else snprintf(g, sizeof g, "%s", guid);
        if (body) n = 0;
        else if (!strcmp(method, "get-def")) n = put_len(req, 1, def, strlen(def));
        else n = event_id(req, wf, def, g);
        grpc_slice s = body ? grpc_slice_from_copied_buffer((const char *)body, body_len)
                            : grpc_slice_from_copied_buffer((const char *)req, n);
        c->send = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method_slice, NULL, deadline, NULL);
        grpc_metadata_array_init(&c->initial);
        grpc_metadata_array_init(&c->trailing);
        c->details = grpc_empty_slice();
        grpc_op ops[6];
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[0].data.send_initial_metadata.count = (size_t)nmd;
        ops[0].data.send_initial_metadata.metadata = md;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = c->send;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->initial;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &c->recv;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.trailing_metadata = &c->trailing;
        ops[5].data.recv_status_on_client.status = &c->status;
        ops[5].data.recv_status_on_client.status_details = &c->details;
        c->started = now_ms();
        if (grpc_call_start_batch(c->call, ops, 6, c, NULL) != GRPC_CALL_OK) {
            fprintf(stderr, "grpc-probe: cannot start call %d\n", i);
            return 2;
        }
    }
    int ok = 0;
    for (int done = 0; done < count; done++) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        probe_call *c = ev.tag;
        int i = (int)(c - calls);
        double ms = now_ms() - c->started;
        const char *name = (int)c->status >= 0 && (int)c->status < LH_STATUS_COUNT ? lh_status_names[c->status] : "UNKNOWN_CODE";
        char *msg = grpc_slice_to_c_string(c->details);
        for (char *p = msg; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        printf("CALL %d %s %d %.1f %s\n", i, name, (int)c->status, ms, msg);
        gpr_free(msg);
        if (body && c->recv) {
            printf("REPLY %d ", i);
            print_hex(c->recv);
            printf("\n");
        }
        if (c->status == GRPC_STATUS_OK) ok++;
    }
    printf("DONE %d ok=%d wall_ms=%.1f\n", count, ok, now_ms() - wall0);
    fflush(stdout);

    for (int i = 0; i < count; i++) {
        probe_call *c = &calls[i];
        grpc_call_unref(c->call);
        grpc_byte_buffer_destroy(c->send);
        if (c->recv) grpc_byte_buffer_destroy(c->recv);
        grpc_slice_unref(c->details);
        grpc_metadata_array_destroy(&c->initial);
        grpc_metadata_array_destroy(&c->trailing);
    }
    free(calls);
    free(body);
    for (int i = 0; i < nmd; i++) {
        grpc_slice_unref(md[i].key);
        grpc_slice_unref(md[i].value);
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
    free(ca_pem);
    free(cert_pem);
    free(key_pem);
    grpc_shutdown();
    return 0;
}
