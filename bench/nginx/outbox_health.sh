#!/bin/sh
# The outbox row of the nginx benchmarks: GET /health p99 (wrk, one kept-alive connection) in
# examples/nginx/outbox.conf (two workers, the outbox started in init_worker) while another wrk
# keeps BENCH_OB_CONNS webhooks in flight (POST /webhook: each answered once durable) and
# LittleHorse is down (BENCH_OB_SERVER=down: killed, so every delivery attempt fails at once and
# is retried; =hung: SIGSTOPped, so delivery calls wait for their 5 s deadline). Each round
# measures a same-run control first or last (order alternating): /health p99 with no load at
# all. Prints NGINX lines (bench/report.lua):
#   NGINX kind=ob-health rep=N WRK-fields      /health under webhook load, LittleHorse down
#   NGINX kind=ob-control rep=N WRK-fields     /health, no load, same nginx
#   NGINX kind=ob-load rep=N WRK-fields        the webhook load of that round
# Pinning as bench/nginx/run.sh (its BENCH_PIN, BENCH_NGINX_RT): nginx on CPU 0 (both workers
# and their threads), the wrk processes on CPU 1.
# Started by bench/nginx/run.sh; by hand: sh scripts/build-lua.sh luajit && make devserver &&
# sh bench/nginx/outbox_health.sh
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
B="$ROOT/build/bench/nginx-outbox"
LJ=${BENCH_LUAJIT_TREE:-$ROOT/build/lua/luajit/lua_modules}
DEVSERVER=${BENCH_DEVSERVER:-$ROOT/build/lh-devserver}
REPS=${BENCH_OB_REPS:-3}
SECS=${BENCH_NGINX_SECONDS:-2}
CONNS=${BENCH_OB_CONNS:-20}
MODE=${BENCH_OB_SERVER:-down}
WRK_LUA="$ROOT/bench/nginx/wrk.lua"
say() { echo "bench nginx outbox: $*" >&2; }
rm -rf "$B" && mkdir -p "$B/ob" && chmod 777 "$B/ob"

NGINX_PIN="" CLIENT_PIN=""
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then NGINX_PIN="taskset -c 0"; CLIENT_PIN="taskset -c 1"; fi
if [ "${BENCH_NGINX_RT:-0}" = 1 ]; then NGINX_PIN="chrt -f 40 $NGINX_PIN"; CLIENT_PIN="chrt -f 40 $CLIENT_PIN"; fi

SRV_PID="" NGINX_PID="" LOAD_PID=""
cleanup() {
  [ -z "$LOAD_PID" ] || kill -TERM "$LOAD_PID" 2>/dev/null || true
  [ -z "$NGINX_PID" ] || kill -QUIT "$NGINX_PID" 2>/dev/null || true
  if [ -n "$SRV_PID" ]; then kill -CONT "$SRV_PID" 2>/dev/null || true; kill -TERM "$SRV_PID" 2>/dev/null || true; fi
  for p in $NGINX_PID $SRV_PID; do
    n=0
    while kill -0 "$p" 2>/dev/null && [ "$n" -lt 500 ]; do sleep 0.02; n=$((n + 1)); done
    kill -KILL "$p" 2>/dev/null || true
  done
  NGINX_PID="" SRV_PID="" LOAD_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The dev server (persistent store, so that nothing is lost when it is killed).
"$DEVSERVER" --port 0 --threads 1 --def webhook-event --store "$B/store" >"$B/server.out" 2>&1 &
SRV_PID=$!
SRV_TARGET="" n=0
while [ -z "$SRV_TARGET" ]; do
  n=$((n + 1))
  [ "$n" -lt 500 ] || { cat "$B/server.out" >&2; say "dev server did not start"; exit 1; }
  sleep 0.01
  SRV_TARGET=$(sed -n 's/^LISTENING //p' "$B/server.out")
done

P="$B/nginx"
mkdir -p "$P/conf" "$P/logs"
PORT=$(free_port)
lua5.4 bench/nginx/conf.lua examples/nginx/outbox.conf "$P/conf/nginx.conf" PORT="$PORT" LH_TARGET="$SRV_TARGET" \
  WAKE_DIR="$P/wake" OUTBOX="$B/ob/webhooks.db" LUA_PATH="$LJ/share/lua/5.1/?.lua;$LJ/share/lua/5.1/?/init.lua" \
  LUA_CPATH="$LJ/lib/lua/5.1/?.so"
$NGINX_PIN nginx -p "$P/" -c conf/nginx.conf -e logs/error.log 2>"$P/logs/stderr.log" ||
  { cat "$P/logs/stderr.log" "$P/logs/error.log" >&2; exit 1; }
n=0
until [ -s "$P/logs/nginx.pid" ] && /usr/bin/python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null; do
  n=$((n + 1))
  [ "$n" -lt 250 ] || { cat "$P/logs/error.log" >&2; say "nginx did not start"; exit 1; }
  sleep 0.02
done
NGINX_PID=$(cat "$P/logs/nginx.pid")

BODY="$B/body.json"
env "LUA_PATH=$LJ/share/lua/5.1/?.lua;$LJ/share/lua/5.1/?/init.lua;;" "LUA_CPATH=$LJ/lib/lua/5.1/?.so;;" luajit -e '
  package.path = "bench/?.lua;" .. package.path
  io.write(require("littlehorse").json_encode(require("common").real_content()))' >"$BODY"

wrk_health() {
  $CLIENT_PIN wrk -t1 -c1 -d"$1"s -s "$WRK_LUA" "http://127.0.0.1:$PORT/health" >"$B/health.out" 2>&1 ||
    { cat "$B/health.out" >&2; exit 1; }
  sed -n 's/^WRK //p' "$B/health.out"
}
metric() {
  /usr/bin/python3 -c "import urllib.request as u, sys
for l in u.urlopen('http://127.0.0.1:$PORT/metrics', timeout=10).read().decode().splitlines():
  if l.startswith('littlehorse_outbox_$1 '): print(l.split()[1])"
}

# Warm-up with LittleHorse up: both workers post and deliver (wake sockets, channels connected).
BENCH_BODY=$BODY $CLIENT_PIN wrk -t1 -c4 -d1s -s "$WRK_LUA" "http://127.0.0.1:$PORT/webhook?wf=bench-ob" >"$B/warm.out" 2>&1 ||
  { cat "$B/warm.out" >&2; exit 1; }
n=0
until [ "$(metric pending)" = 0 ]; do
  n=$((n + 1)); [ "$n" -lt 500 ] || { say "warm-up records not delivered"; exit 1; }; sleep 0.02
done
if [ "$MODE" = hung ]; then kill -STOP "$SRV_PID"; else kill -TERM "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=""; fi
echo "NGINX kind=ob-meta server=$MODE conns=$CONNS secs=$SECS sched_fifo=${BENCH_NGINX_RT:-0} body_bytes=$(wc -c <"$BODY")"
say "LittleHorse $MODE: $REPS rounds of /health alone and with $CONNS webhooks in flight, ${SECS} s each"
for rep in $(seq 1 "$REPS"); do
  for k in 0 1; do
    if [ $(( (rep + k) % 2 )) = 1 ]; then
      echo "NGINX kind=ob-control rep=$rep $(wrk_health "$SECS")"
    else
      BENCH_BODY=$BODY $CLIENT_PIN wrk -t1 -c"$CONNS" -d"$((SECS + 2))"s -s "$WRK_LUA" \
        "http://127.0.0.1:$PORT/webhook?wf=bench-ob" >"$B/load.out" 2>&1 &
      LOAD_PID=$!
      sleep 1
      echo "NGINX kind=ob-health rep=$rep $(wrk_health "$SECS")"
      wait "$LOAD_PID" || { cat "$B/load.out" >&2; exit 1; }
      LOAD_PID=""
      echo "NGINX kind=ob-load rep=$rep $(sed -n 's/^WRK //p' "$B/load.out")"
    fi
  done
done
echo "NGINX kind=ob-stats pending=$(metric pending) retries=$(metric retries_total) accepted=$(metric accepted_total)"
if grep -E '\[(error|alert|crit|emerg)\]' "$P/logs/error.log" >&2; then echo "NGINX kind=ob-log alerts=1"; fi
