/* baseline.c: the two C baselines for our binding, in one program. Sends pre-encoded
 * PutExternalEventRequest bytes (captured from a Lua process of the same round: bench/lua_bench.lua
 * writes what its tables encode to) through the gRPC C core API, with nothing else around it:
 *   - mode "seq" / "N": the transport floor. The reply bytes are copied out (as the binding does
 *     before decoding them) and not decoded. Paired with the binding's `reply = false`.
 *   - mode "seq:decode" / "N:decode": also decodes each reply into a protobuf-c ExternalEvent
 *     (code generated from proto/ at bench time, not the module's) and frees it. Paired with the
 *     binding returning the reply as Lua tables.
 *
 *   baseline TARGET ARG...     ARG: TAG=FILE (the request bytes of the modes that follow; TAG is
 *                              printed as payload=TAG) | seq[:decode] | N[:decode] (N calls in flight)
 *
 * "seq" is one call at a time on a pluck queue (what the binding's sync call does); a number N
 * keeps N calls outstanding on one "next" queue. Same channel, same registered method, same
 * `tenantid: default` metadata and 10 s deadline as the binding.
 *
 * Environment: BENCH_SECONDS (measured window, default 2), BENCH_WARMUP (seconds, default 0.5),
 * BENCH_SERVER_PID (to sample the server's CPU from /proc), BENCH_LABEL (printed as rep=).
 * Prints one "RESULT ..." line per mode (see bench/report.lua for the fields).
 * BENCH_CALLS=N instead makes each mode a fixed count, for bench/instructions.sh: N/10 calls of
 * warm-up, then N calls between two calls of remove() (callgrind --dump-before=remove cuts its
 * counts there), and prints "PART k client= payload= mode= calls=N": dump part k holds them.
 * Build: see bench/build_baseline.sh */
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
#include "external_event.pb-c.h"

#define METHOD "/littlehorse.LittleHorse/PutExternalEvent"
#define MAX_INFLIGHT 1024
#define MARKER_PATH "/nonexistent/lh-bench-marker"

static grpc_channel *channel;
static void *method;
static grpc_metadata md[1];
static const char *req_bytes;
static size_t req_len;
static long server_pid;
static int decode;
static char reply_buf[1 << 16];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* user + system CPU of this process, all threads (the same figure os.clock() gives Lua) */
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

/* Copies the reply bytes out (and decodes them in decode mode); 0 if they are not a reply. */
static int take_reply(grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return 0;
  grpc_slice s;
  size_t off = 0;
  while (grpc_byte_buffer_reader_next(&r, &s)) {
    size_t n = GRPC_SLICE_LENGTH(s);
    if (off + n <= sizeof reply_buf) memcpy(reply_buf + off, GRPC_SLICE_START_PTR(s), n);
    off += n;
    grpc_slice_unref(s);
  }
  grpc_byte_buffer_reader_destroy(&r);
  if (!decode) return 1;
  if (off > sizeof reply_buf) return 0;
  Littlehorse__ExternalEvent *ev = littlehorse__external_event__unpack(NULL, off, (const uint8_t *)reply_buf);
  if (!ev) return 0;
  int ok = ev->id != NULL && ev->content != NULL;
  littlehorse__external_event__free_unpacked(ev, NULL);
  return ok;
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
  int ok = sl->status == GRPC_STATUS_OK && sl->recv && take_reply(sl->recv);
  if (!ok && getenv("BENCH_VERBOSE")) {
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

/* The end of a measured window: elapsed time and the CPU readings taken there. */
typedef struct window {
  double secs, cpu, srv, busy;
} window;

static void window_end(window *w, double t0, double t) {
  w->secs = t - t0;
  w->cpu = cpu_self();
  w->srv = cpu_server();
  w->busy = cpu_machine();
}

/* Sequential calls for `seconds`, or exactly `count` calls if count > 0; st NULL: nothing
 * recorded (warm-up). A call's latency runs from its start to the end of finish_call (the reply
 * copied out, and decoded in decode mode). */
static void run_seq(double seconds, long count, stats *st, window *w) {
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  slot sl;
  double t0 = now(), deadline = t0 + seconds, t;
  long done = 0;
  do {
    start_call(&sl, cq);
    grpc_event ev = grpc_completion_queue_pluck(cq, &sl, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) { fprintf(stderr, "baseline: queue event %d\n", ev.type); exit(1); }
    int ok = finish_call(&sl) && ev.success;
    t = now();
    if (count > 0 && !ok) { fprintf(stderr, "baseline: a call failed\n"); exit(1); }
    if (st) {
      if (ok) record(st, t - sl.started);
      else st->errors++;
    }
    done++;
  } while (count > 0 ? done < count : t < deadline);
  if (w) window_end(w, t0, t);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {}
  grpc_completion_queue_destroy(cq);
}

/* n calls in flight for `seconds` (the window ends at the first completion past it; calls still
 * in flight then are drained, not counted), or until `count` calls are done if count > 0. */
static void run_inflight(int n, double seconds, long count, stats *st, window *w) {
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  slot *slots = calloc((size_t)n, sizeof *slots);
  double t0 = now(), deadline = t0 + seconds;
  long started = 0;
  for (int i = 0; i < n && (count == 0 || started < count); i++, started++) start_call(&slots[i], cq);
  long outstanding = started;
  int stopping = 0;
  while (outstanding > 0) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) { fprintf(stderr, "baseline: queue event %d\n", ev.type); exit(1); }
    slot *sl = ev.tag;
    int ok = finish_call(sl) && ev.success;
    double t = now();
    if (count > 0) {
      if (!ok) { fprintf(stderr, "baseline: a call failed\n"); exit(1); }
      stopping = started >= count;
    } else if (!stopping) {
      if (st) {
        if (ok) record(st, t - sl->started);
        else st->errors++;
      }
      if (t >= deadline) {
        stopping = 1;
        if (w) window_end(w, t0, t);
      }
    }
    if (stopping) outstanding--;
    else {
      start_call(sl, cq);
      started++;
    }
  }
  free(slots);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {}
  grpc_completion_queue_destroy(cq);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = malloc(1 << 20);
  *len = fread(buf, 1, 1 << 20, f);
  fclose(f);
  return buf;
}

static int markers; /* remove() calls so far: callgrind dump part k ends at the k-th */

static void marker(void) {
  remove(MARKER_PATH);
  markers++;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: baseline TARGET TAG=REQUEST_FILE MODE... [TAG=FILE MODE...]   "
                    "(MODE: seq | N calls in flight, optionally :decode)\n");
    return 2;
  }
  double seconds = env_num("BENCH_SECONDS", 2), warmup = env_num("BENCH_WARMUP", 0.5);
  long count = (long)env_num("BENCH_CALLS", 0);
  server_pid = (long)env_num("BENCH_SERVER_PID", 0);
  const char *label = getenv("BENCH_LABEL") ? getenv("BENCH_LABEL") : "1";

  grpc_init();
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  channel = grpc_channel_create(argv[1], creds, NULL);
  grpc_channel_credentials_release(creds);
  method = grpc_channel_register_call(channel, METHOD, NULL, NULL);
  md[0].key = grpc_slice_from_static_string("tenantid");
  md[0].value = grpc_slice_from_static_string("default");

  char tag[64] = "";
  int connected = 0;
  for (int a = 2; a < argc; a++) {
    const char *eq = strchr(argv[a], '=');
    if (eq) {
      if ((size_t)(eq - argv[a]) >= sizeof tag) { fprintf(stderr, "baseline: tag too long\n"); return 2; }
      memcpy(tag, argv[a], (size_t)(eq - argv[a]));
      tag[eq - argv[a]] = '\0';
      free((void *)req_bytes);
      req_bytes = read_file(eq + 1, &req_len);
      if (!req_bytes || req_len == 0) { fprintf(stderr, "baseline: cannot read %s\n", eq + 1); return 2; }
      continue;
    }
    if (!req_bytes) { fprintf(stderr, "baseline: TAG=REQUEST_FILE must come before the modes\n"); return 2; }
    char mode[32];
    snprintf(mode, sizeof mode, "%s", argv[a]);
    char *colon = strchr(mode, ':');
    decode = 0;
    if (colon) {
      if (strcmp(colon, ":decode") != 0) { fprintf(stderr, "baseline: bad mode %s\n", argv[a]); return 2; }
      *colon = '\0';
      decode = 1;
    }
    int seq = strcmp(mode, "seq") == 0;
    int n = seq ? 1 : atoi(mode);
    if (n < 1 || n > MAX_INFLIGHT) { fprintf(stderr, "baseline: bad mode %s\n", argv[a]); return 2; }
    const char *client = decode ? "c-decode" : "c";
    if (!connected) { /* connect, warm up */
      run_seq(count > 0 ? 0 : warmup, count > 0 ? 100 : 0, NULL, NULL);
      connected = 1;
    }
    if (count > 0) {
      long w = count / 10 > 0 ? count / 10 : 1;
      if (seq) run_seq(0, w, NULL, NULL);
      else run_inflight(n, 0, w, NULL, NULL);
      marker();
      if (seq) run_seq(0, count, NULL, NULL);
      else run_inflight(n, 0, count, NULL, NULL);
      marker();
      printf("PART %d client=%s payload=%s mode=%s inflight=%d calls=%ld\n", markers, client, tag,
             seq ? "seq" : "async", n, count);
      fflush(stdout);
      continue;
    }
    stats st = { 0 };
    window w = { 0 };
    if (seq) run_seq(warmup, 0, NULL, NULL);
    else run_inflight(n, warmup, 0, NULL, NULL);
    double cpu0 = cpu_self(), srv0 = cpu_server(), busy0 = cpu_machine();
    if (seq) run_seq(seconds, 0, &st, &w);
    else run_inflight(n, seconds, 0, &st, &w);
    qsort(st.lat, st.n, sizeof *st.lat, cmp_double);
    double p50 = st.n ? st.lat[(size_t)(0.50 * (double)(st.n - 1))] : 0;
    double p99 = st.n ? st.lat[(size_t)(0.99 * (double)(st.n - 1))] : 0;
    printf("RESULT client=%s payload=%s mode=%s inflight=%d rep=%s calls=%zu errors=%ld secs=%.6f cpu=%.6f "
           "srv_cpu=%.6f p50_us=%.1f p99_us=%.1f busy=%.2f\n",
           client, tag, seq ? "seq" : "async", n, label, st.n, st.errors, w.secs, w.cpu - cpu0,
           (srv0 >= 0 && w.srv >= 0) ? w.srv - srv0 : -1, p50 * 1e6, p99 * 1e6, w.busy - busy0);
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
