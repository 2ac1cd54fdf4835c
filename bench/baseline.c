/* baseline.c: the ceiling for our binding. Sends the same pre-encoded PutExternalEventRequest
 * bytes (build/bench/request.bin, made by bench/gen_request.lua with our encoder) through the
 * gRPC C core API, with nothing else around it: no Lua, no protobuf decoding of the reply (the
 * reply bytes are copied out, as the binding does before decoding them).
 *
 *   baseline TARGET REQUEST_FILE MODE...      MODE: seq | N (calls in flight, completion queue "next")
 *
 * "seq" is one call at a time on a pluck queue (what the binding's sync call does); a number N
 * keeps N calls outstanding on one "next" queue. Same channel, same registered method, same
 * `tenantid: default` metadata and 10 s deadline as the binding.
 *
 * Environment: BENCH_SECONDS (measured window, default 2), BENCH_WARMUP (seconds, default 0.5),
 * BENCH_SERVER_PID (to sample the server's CPU from /proc), BENCH_LABEL (printed as rep=).
 * Prints one "RESULT ..." line per mode (see bench/report.lua for the fields).
 * Build: gcc -O2 -o build/bench/baseline bench/baseline.c -lgrpc -lgpr */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#define METHOD "/littlehorse.LittleHorse/PutExternalEvent"
#define MAX_INFLIGHT 1024

static grpc_channel *channel;
static void *method;
static grpc_metadata md[1];
static const char *req_bytes;
static size_t req_len;
static long server_pid;
static char reply_buf[1 << 16];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_self(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of the server process (all threads), seconds; -1 if unknown */
static double cpu_server(void) {
  if (server_pid <= 0) return -1;
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%ld/stat", server_pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  /* after ") " come fields 3.. ; utime is field 14, stime 15 */
  unsigned long long ut = 0, st = 0;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds all processes on the machine have used (busy time in /proc/stat) */
static double cpu_machine(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return -1;
  unsigned long long u = 0, n = 0, sy = 0, idle = 0, io = 0, irq = 0, sirq = 0, st = 0;
  int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &u, &n, &sy, &idle, &io, &irq, &sirq, &st);
  fclose(f);
  if (got < 7) return -1;
  return (double)(u + n + sy + irq + sirq + st) / (double)sysconf(_SC_CLK_TCK);
}

static double env_num(const char *name, double dflt) {
  const char *s = getenv(name);
  return s && *s ? atof(s) : dflt;
}

/* One call's state. */
typedef struct slot {
  grpc_call *call;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array initial_md, trailing_md;
  grpc_status_code status;
  grpc_slice details;
  double started;
} slot;

static void copy_reply(grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return;
  grpc_slice s;
  size_t off = 0;
  while (grpc_byte_buffer_reader_next(&r, &s)) {
    size_t n = GRPC_SLICE_LENGTH(s);
    if (off + n <= sizeof reply_buf) memcpy(reply_buf + off, GRPC_SLICE_START_PTR(s), n);
    off += n;
    grpc_slice_unref(s);
  }
  grpc_byte_buffer_reader_destroy(&r);
}

static void start_call(slot *sl, grpc_completion_queue *cq) {
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(10, GPR_TIMESPAN));
  sl->call = grpc_channel_create_registered_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, deadline, NULL);
  grpc_slice s = grpc_slice_from_copied_buffer(req_bytes, req_len);
  sl->send = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  sl->recv = NULL;
  grpc_metadata_array_init(&sl->initial_md);
  grpc_metadata_array_init(&sl->trailing_md);
  sl->status = GRPC_STATUS_UNKNOWN;
  sl->details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = 1;
  ops[0].data.send_initial_metadata.metadata = md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = sl->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &sl->initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &sl->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &sl->trailing_md;
  ops[5].data.recv_status_on_client.status = &sl->status;
  ops[5].data.recv_status_on_client.status_details = &sl->details;
  sl->started = now();
  if (grpc_call_start_batch(sl->call, ops, 6, sl, NULL) != GRPC_CALL_OK) {
    fprintf(stderr, "baseline: grpc_call_start_batch failed\n");
    exit(1);
  }
}

/* Finishes a completed call; returns 1 if it succeeded with a reply. */
static int finish_call(slot *sl) {
  int ok = sl->status == GRPC_STATUS_OK && sl->recv;
  if (ok) copy_reply(sl->recv);
  else if (getenv("BENCH_VERBOSE")) {
    fprintf(stderr, "baseline: status %d: %.*s\n", (int)sl->status, (int)GRPC_SLICE_LENGTH(sl->details),
            (const char *)GRPC_SLICE_START_PTR(sl->details));
  }
  if (sl->recv) grpc_byte_buffer_destroy(sl->recv);
  grpc_byte_buffer_destroy(sl->send);
  grpc_slice_unref(sl->details);
  grpc_metadata_array_destroy(&sl->initial_md);
  grpc_metadata_array_destroy(&sl->trailing_md);
  grpc_call_unref(sl->call);
  sl->call = NULL;
  return ok;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct stats {
  double *lat;
  size_t n, cap;
  long errors;
} stats;

static void record(stats *st, double l) {
  if (st->n == st->cap) {
    st->cap = st->cap ? st->cap * 2 : 65536;
    st->lat = realloc(st->lat, st->cap * sizeof *st->lat);
    if (!st->lat) { fprintf(stderr, "baseline: out of memory\n"); exit(1); }
  }
  st->lat[st->n++] = l;
}

/* Runs `seconds` of calls; if st is NULL nothing is recorded (warm-up). Returns elapsed time. */
static double run_seq(double seconds, stats *st) {
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  slot sl;
  double t0 = now(), deadline = t0 + seconds, t;
  do {
    start_call(&sl, cq);
    grpc_event ev = grpc_completion_queue_pluck(cq, &sl, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    t = now();
    if (ev.type != GRPC_OP_COMPLETE) { fprintf(stderr, "baseline: queue event %d\n", ev.type); exit(1); }
    int ok = finish_call(&sl) && ev.success;
    if (st) {
      if (ok) record(st, t - sl.started);
      else st->errors++;
    }
  } while (t < deadline);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {}
  grpc_completion_queue_destroy(cq);
  return t - t0;
}

static double busy_end;

static double run_inflight(int n, double seconds, stats *st, double *cpu_end, double *srv_end) {
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  slot *slots = calloc((size_t)n, sizeof *slots);
  double t0 = now(), deadline = t0 + seconds, t_end = 0;
  for (int i = 0; i < n; i++) start_call(&slots[i], cq);
  int outstanding = n, stopping = 0;
  while (outstanding > 0) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) { fprintf(stderr, "baseline: queue event %d\n", ev.type); exit(1); }
    slot *sl = ev.tag;
    double t = now();
    int ok = finish_call(sl) && ev.success;
    if (!stopping) {
      if (st) {
        if (ok) record(st, t - sl->started);
        else st->errors++;
      }
      if (t >= deadline) {
        stopping = 1;
        t_end = t;
        if (cpu_end) *cpu_end = cpu_self();
        if (srv_end) *srv_end = cpu_server();
        busy_end = cpu_machine();
      }
    }
    if (stopping) outstanding--;
    else start_call(sl, cq);
  }
  free(slots);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {}
  grpc_completion_queue_destroy(cq);
  return t_end - t0;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = malloc(1 << 20);
  *len = fread(buf, 1, 1 << 20, f);
  fclose(f);
  return buf;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: baseline TARGET REQUEST_FILE MODE...   (MODE: seq | calls in flight)\n");
    return 2;
  }
  req_bytes = read_file(argv[2], &req_len);
  if (!req_bytes || req_len == 0) { fprintf(stderr, "baseline: cannot read %s\n", argv[2]); return 2; }
  double seconds = env_num("BENCH_SECONDS", 2), warmup = env_num("BENCH_WARMUP", 0.5);
  server_pid = (long)env_num("BENCH_SERVER_PID", 0);
  const char *label = getenv("BENCH_LABEL") ? getenv("BENCH_LABEL") : "1";

  grpc_init();
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  channel = grpc_channel_create(argv[1], creds, NULL);
  grpc_channel_credentials_release(creds);
  method = grpc_channel_register_call(channel, METHOD, NULL, NULL);
  md[0].key = grpc_slice_from_static_string("tenantid");
  md[0].value = grpc_slice_from_static_string("default");

  run_seq(warmup, NULL); /* connect, warm up */
  for (int a = 3; a < argc; a++) {
    int seq = strcmp(argv[a], "seq") == 0;
    int n = seq ? 1 : atoi(argv[a]);
    if (n < 1 || n > MAX_INFLIGHT) { fprintf(stderr, "baseline: bad mode %s\n", argv[a]); return 2; }
    stats st = { 0 };
    if (seq) run_seq(warmup, NULL);
    else run_inflight(n, warmup, NULL, NULL, NULL);
    double cpu0 = cpu_self(), srv0 = cpu_server(), busy0 = cpu_machine(), cpu1 = 0, srv1 = 0, secs;
    if (seq) {
      secs = run_seq(seconds, &st);
      cpu1 = cpu_self();
      srv1 = cpu_server();
      busy_end = cpu_machine();
    } else {
      secs = run_inflight(n, seconds, &st, &cpu1, &srv1);
    }
    qsort(st.lat, st.n, sizeof *st.lat, cmp_double);
    double p50 = st.n ? st.lat[(size_t)(0.50 * (double)(st.n - 1))] : 0;
    double p99 = st.n ? st.lat[(size_t)(0.99 * (double)(st.n - 1))] : 0;
    printf("RESULT client=c mode=%s inflight=%d rep=%s calls=%zu errors=%ld secs=%.6f cpu=%.6f srv_cpu=%.6f "
           "p50_us=%.1f p99_us=%.1f busy=%.2f\n",
           seq ? "seq" : "async", n, label, st.n, st.errors, secs, cpu1 - cpu0,
           (srv0 >= 0 && srv1 >= 0) ? srv1 - srv0 : -1, p50 * 1e6, p99 * 1e6, busy_end - busy0);
    fflush(stdout);
    free(st.lat);
  }

  printf("PROC client=c cpu=%.3f\n", cpu_self());
  grpc_slice_unref(md[0].value);
  grpc_channel_destroy(channel);
  grpc_shutdown();
  free((void *)req_bytes);
  return 0;
}
