/* faults.c: see faults.h. */
#include "faults.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "google/rpc/status.pb-c.h"
#include "status.h"

#define RETRY_INFO_TYPE "type.googleapis.com/google.rpc.RetryInfo"

static char exhausted_msg[96];
static uint8_t exhausted_details[256];
static size_t exhausted_details_len;

void faults_init(faults *f)
{
    memset(f, 0, sizeof *f);
    f->fail_code = GRPC_STATUS_UNAVAILABLE;
    f->retry_after_ms = 1000;
    if (getrandom(&f->seed, sizeof f->seed, 0) != (ssize_t)sizeof f->seed)
        f->seed = (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ull;
}

int faults_parse_code(const char *s, grpc_status_code *out)
{
    if (!s || !*s) return -1;
    char *end;
    long n = strtol(s, &end, 10);
    if (end != s && *end == '\0') {
        if (n < 1 || n > 16) return -1;
        *out = (grpc_status_code)n;
        return 0;
    }
    if (strncasecmp(s, "GRPC_STATUS_", 12) == 0) s += 12;
    for (int c = 1; c <= 16; c++) {
        if (strcasecmp(s, status_name((grpc_status_code)c)) == 0) {
            *out = (grpc_status_code)c;
            return 0;
        }
    }
    return -1;
}

/* Takes one from a counter if it is positive. */
static int take(atomic_long *n)
{
    long v = atomic_load(n);
    while (v > 0)
        if (atomic_compare_exchange_weak(n, &v, v - 1)) return 1;
    return 0;
}

/* Uniform in [0, 1): splitmix64 over a shared counter (lock-free, one draw per call). */
static double uniform(faults *f)
{
    uint64_t z = f->seed + (atomic_fetch_add(&f->rng_counter, 1) + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

static int chance(faults *f, double p)
{
    if (p <= 0) return 0;
    if (p >= 1) return 1;
    return uniform(f) < p;
}

fault_kind faults_before_put(faults *f)
{
    if (take(&f->exhaust_next)) {
        atomic_fetch_add(&f->n_exhausted, 1);
        return FAULT_EXHAUST;
    }
    if (take(&f->fail_next) || chance(f, f->fail_rate)) {
        atomic_fetch_add(&f->n_failed, 1);
        return FAULT_FAIL;
    }
    if (take(&f->drop_next)) {
        atomic_fetch_add(&f->n_dropped, 1);
        return FAULT_DROP;
    }
    return FAULT_NONE;
}

int faults_after_store(faults *f)
{
    if (take(&f->store_then_fail) || chance(f, f->store_then_fail_rate)) {
        atomic_fetch_add(&f->n_store_then_failed, 1);
        return 1;
    }
    return 0;
}

const char *faults_fail_message(const faults *f, int stored)
{
    if (f->fail_message) return f->fail_message;
    return stored ? "lh-devserver: injected fault after the event was stored (--store-then-fail)"
                  : "lh-devserver: injected fault (--fail-next / --fail-rate)";
}

int faults_build_exhausted(faults *f)
{
    snprintf(exhausted_msg, sizeof exhausted_msg, "Quota exceeded. Retry after %dms.", f->retry_after_ms);

    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    d.seconds = f->retry_after_ms / 1000;
    d.nanos = (f->retry_after_ms % 1000) * 1000000;
    Google__Rpc__RetryInfo ri = GOOGLE__RPC__RETRY_INFO__INIT;
    ri.retry_delay = &d;
    uint8_t ri_bytes[64];
    if (google__rpc__retry_info__get_packed_size(&ri) > sizeof ri_bytes) return -1;
    size_t ri_len = google__rpc__retry_info__pack(&ri, ri_bytes);

    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)RETRY_INFO_TYPE;
    any.value.data = ri_bytes;
    any.value.len = ri_len;
    Google__Protobuf__Any *details[1] = { &any };
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    st.message = exhausted_msg;
    st.n_details = 1;
    st.details = details;
    if (google__rpc__status__get_packed_size(&st) > sizeof exhausted_details) return -1;
    exhausted_details_len = google__rpc__status__pack(&st, exhausted_details);
    return 0;
}

const char *faults_exhausted_message(void) { return exhausted_msg; }

const uint8_t *faults_exhausted_details(size_t *len)
{
    *len = exhausted_details_len;
    return exhausted_details;
}
