#!/bin/sh
# The nginx rows of `make bench`: Debian's nginx + lua module with examples/nginx/nginx.conf and
# the LuaJIT build of the rock, against the dev server. Prints NGINX lines (bench/report.lua).
#   1. Overhead of the nginx path, fast dev server, one connection: wrk's p50 of POST /event (one
#      post per request; the realistic webhook body) minus its p50 of GET /health, against a plain
#      LuaJIT process running the handler's code (bench/nginx/plain.lua) one call after the other.
#      BENCH_NGINX_REPS rounds, order rotated; each figure BENCH_NGINX_SECONDS.
#   2. /health p99 (wrk, one connection) while another wrk keeps 200 POST /event in flight against
#      a dev server answering after 200 ms; BENCH_NGINX_SLOW_REPS rounds.
#   3. Durable webhooks accepted per second: examples/nginx/outbox.conf with LittleHorse down,
#      wrk keeping BENCH_NGINX_OUTBOX_CONNS (64) POST /webhook in flight (202 once the record is
#      fsync'd), against two baselines of the same round: the same nginx answering GET /health
#      with as many connections, and one LuaJIT process doing the handler's work (decode, post
#      into an outbox file) with as many posts outstanding (bench/nginx/outbox_plain.lua);
#      BENCH_NGINX_REPS rounds, order rotated; nginx and the plain process on CPU 0, wrk on CPU 1.
#   4. /health p99 in examples/nginx/outbox.conf with webhooks in flight and LittleHorse down,
#      against a no-load control: bench/nginx/outbox_health.sh (its own nginx and logs).
# nginx is pinned to CPU 0, the dev server to CPU 1; the clients to CPU 0 in 1 (as in the Lua
# rows) and to CPU 1 in 2, where they would otherwise take CPU from the worker they measure
# (BENCH_PIN=0: unpinned). BENCH_NGINX_RT=1 (root): every process of these rows, nginx and its
# threads included, runs under SCHED_FIFO (chrt -f 40), so that other work on a shared machine
# cannot preempt them: what is left is the nginx path's own latency, not the neighbours'.
# Started by bench/run.sh (which sets BENCH_LUAJIT_TREE and BENCH_DEVSERVER to its snapshot);
# by hand: sh scripts/build-lua.sh luajit && sh bench/nginx/run.sh
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
B="$ROOT/build/bench/nginx"
LJ=${BENCH_LUAJIT_TREE:-$ROOT/build/lua/luajit/lua_modules}
DEVSERVER=${BENCH_DEVSERVER:-$ROOT/build/lh-devserver}
REPS=${BENCH_NGINX_REPS:-5}
SLOW_REPS=${BENCH_NGINX_SLOW_REPS:-3}
SECS=${BENCH_NGINX_SECONDS:-2}
OB_CONNS=${BENCH_NGINX_OUTBOX_CONNS:-64}
WRK_LUA="$ROOT/bench/nginx/wrk.lua"
say() { echo "bench nginx: $*" >&2; }
rm -rf "$B" && mkdir -p "$B"

SERVER_PIN="" CLIENT_PIN=""
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then SERVER_PIN="taskset -c 1"; CLIENT_PIN="taskset -c 0"; fi
if [ "${BENCH_NGINX_RT:-0}" = 1 ]; then SERVER_PIN="chrt -f 40 $SERVER_PIN"; CLIENT_PIN="chrt -f 40 $CLIENT_PIN"; fi
LUAJIT_ENV="LUA_PATH=$LJ/share/lua/5.1/?.lua;$LJ/share/lua/5.1/?/init.lua;;"
LUAJIT_CENV="LUA_CPATH=$LJ/lib/lua/5.1/?.so;;"

SRV_PIDS="" NGINX_PIDS=""
cleanup() {
  for p in $NGINX_PIDS; do kill -QUIT "$p" 2>/dev/null || true; done
  for p in $SRV_PIDS; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $NGINX_PIDS $SRV_PIDS; do
    n=0
    while kill -0 "$p" 2>/dev/null && [ "$n" -lt 500 ]; do sleep 0.02; n=$((n + 1)); done
    kill -KILL "$p" 2>/dev/null || true
  done
  NGINX_PIDS="" SRV_PIDS=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM # dash runs no EXIT trap when a signal ends the script

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_devserver NAME ARGS... -> SRV_TARGET
start_devserver() {
  name=$1
  shift
  out="$B/$name.server.out"
  $SERVER_PIN "$DEVSERVER" --port 0 --threads 1 --def nginx-event "$@" >"$out" 2>&1 &
  SRV_PIDS="$SRV_PIDS $!"
  SRV_TARGET=""
  n=0
  while [ -z "$SRV_TARGET" ]; do
    n=$((n + 1))
    [ "$n" -lt 500 ] || { cat "$out" >&2; say "dev server did not start"; exit 1; }
    sleep 0.01
    SRV_TARGET=$(sed -n 's/^LISTENING //p' "$out")
  done
}

# start_nginx NAME LH_TARGET [TEMPLATE [NAME=VALUE...]] -> PORT (the master's pid is in
# NGINX_PIDS); TEMPLATE defaults to examples/nginx/nginx.conf
start_nginx() {
  P="$B/$1"
  sn_target=$2
  sn_template=${3:-examples/nginx/nginx.conf}
  shift 2
  [ $# -eq 0 ] || shift
  mkdir -p "$P/conf" "$P/logs" # the worker makes its private wake directory $P/wake (0700)
  PORT=$(free_port)
  lua5.4 bench/nginx/conf.lua "$sn_template" "$P/conf/nginx.conf" PORT="$PORT" LH_TARGET="$sn_target" \
    WAKE_DIR="$P/wake" LUA_PATH="$LJ/share/lua/5.1/?.lua;$LJ/share/lua/5.1/?/init.lua" \
    LUA_CPATH="$LJ/lib/lua/5.1/?.so" "$@"
  $CLIENT_PIN nginx -p "$P/" -c conf/nginx.conf -e logs/error.log 2>"$P/logs/stderr.log" ||
    { cat "$P/logs/stderr.log" "$P/logs/error.log" >&2; exit 1; }
  n=0
  until [ -s "$P/logs/nginx.pid" ] && /usr/bin/python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null; do
    n=$((n + 1))
    [ "$n" -lt 250 ] || { cat "$P/logs/error.log" >&2; say "nginx did not start"; exit 1; }
    sleep 0.02
  done
  NGINX_PIDS="$NGINX_PIDS $(cat "$P/logs/nginx.pid")"
}

# wrk_run SECONDS CONNECTIONS PATH [BODY] -> prints its WRK line's fields (pinned with $WRK_PIN)
WRK_PIN=$CLIENT_PIN
wrk_run() {
  BENCH_BODY=${4:-} $WRK_PIN wrk -t1 -c"$2" -d"$1"s -s "$WRK_LUA" "http://127.0.0.1:$PORT$3" >"$B/wrk.out" 2>&1 ||
    { cat "$B/wrk.out" >&2; exit 1; }
  sed -n 's/^WRK //p' "$B/wrk.out"
}

# The body: the realistic payload of bench/common.lua as JSON text.
BODY="$B/body.json"
env "$LUAJIT_ENV" "$LUAJIT_CENV" luajit -e 'package.path = "bench/?.lua;" .. package.path
  local lh = require "littlehorse"; io.write(lh.json_encode(require("common").real_content()))' >"$BODY"

# ---- 1. overhead of the nginx path, fast server, one connection -------------------------
say "nginx + fast dev server: $REPS rounds of /health, /event and a plain LuaJIT process, ${SECS} s each"
start_devserver fast
start_nginx fast "$SRV_TARGET"
wrk_run 1 1 "/event?wf=bench-nginx" "$BODY" >/dev/null # the worker's client connects
echo "NGINX kind=meta sched_fifo=${BENCH_NGINX_RT:-0} body_bytes=$(wc -c <"$BODY") nginx=$(nginx -v 2>&1 | sed 's/.*\///') wrk=$(wrk -v 2>&1 | sed -n 's/^wrk \([^ ]*\).*/\1/p' | head -1)"
for rep in $(seq 1 "$REPS"); do
  for k in 0 1 2; do
    case $(( (rep - 1 + k) % 3 )) in
    0) echo "NGINX kind=health rep=$rep $(wrk_run "$SECS" 1 /health)" ;;
    1) echo "NGINX kind=event rep=$rep $(wrk_run "$SECS" 1 "/event?wf=bench-nginx" "$BODY")" ;;
    2) out=$(BENCH_SECONDS=$SECS env "$LUAJIT_ENV" "$LUAJIT_CENV" $CLIENT_PIN luajit bench/nginx/plain.lua "$SRV_TARGET" "$BODY")
       echo "NGINX kind=plain rep=$rep $(echo "$out" | sed -n 's/^PLAIN //p')" ;;
    esac
  done
done
cleanup

# ---- 2. /health while 200 posts wait on a slow server ------------------------------------
say "nginx + dev server answering after 200 ms: $SLOW_REPS rounds of /health with 200 posts in flight"
start_devserver slow --delay-ms 200
start_nginx slow "$SRV_TARGET"
# Here nginx has CPU 0 to itself: both wrk processes run on CPU 1, with the (mostly idle) server.
WRK_PIN=$SERVER_PIN
wrk_run 1 1 "/event?wf=bench-nginx" "$BODY" >/dev/null
for rep in $(seq 1 "$SLOW_REPS"); do
  BENCH_BODY=$BODY $WRK_PIN wrk -t1 -c200 -d"$((SECS + 2))"s -s "$WRK_LUA" \
    "http://127.0.0.1:$PORT/event?wf=bench-nginx-slow" >"$B/load.out" 2>&1 &
  load=$!
  sleep 1 # 200 posts in flight after the first 200 ms
  echo "NGINX kind=slow-health rep=$rep $(wrk_run "$SECS" 1 /health)"
  wait "$load" || { cat "$B/load.out" >&2; exit 1; }
  echo "NGINX kind=slow-load rep=$rep $(sed -n 's/^WRK //p' "$B/load.out")"
done
cleanup

# ---- 3. durable webhooks accepted per second, LittleHorse down ------------------------------
# examples/nginx/outbox.conf (2 workers, one outbox file on disk, fsync on) with LH_TARGET a
# port nothing listens on: delivery's calls fail at once and back off, so what is measured is
# acceptance, each webhook answered 202 only once its record is committed and fsync'd.
say "nginx outbox, LittleHorse down: $REPS rounds of POST /webhook, /health and a plain LuaJIT process, $OB_CONNS in flight, ${SECS} s each"
OBF="$B/outbox-files"
mkdir -p "$OBF"
start_nginx outbox "127.0.0.1:$(free_port)" examples/nginx/outbox.conf OUTBOX="$OBF/webhooks.db"
WRK_PIN=$SERVER_PIN # wrk on CPU 1; nginx, its workers' writer threads and the plain process on CPU 0
answered=$(wrk_run 1 "$OB_CONNS" "/webhook?wf=bench-nginx" "$BODY" | sed -n 's/^requests=\([0-9]*\).*/\1/p')
for rep in $(seq 1 "$REPS"); do
  for k in 0 1 2; do
    case $(( (rep - 1 + k) % 3 )) in
    0) line=$(wrk_run "$SECS" "$OB_CONNS" "/webhook?wf=bench-nginx" "$BODY")
       answered=$((answered + $(echo "$line" | sed -n 's/^requests=\([0-9]*\).*/\1/p')))
       echo "NGINX kind=outbox-webhook rep=$rep $line" ;;
    1) echo "NGINX kind=outbox-health rep=$rep $(wrk_run "$SECS" "$OB_CONNS" /health)" ;;
    2) rm -f "$OBF/plain.db" "$OBF/plain.db-wal" "$OBF/plain.db-shm"
       out=$(BENCH_SECONDS=$SECS env "$LUAJIT_ENV" "$LUAJIT_CENV" $CLIENT_PIN luajit bench/nginx/outbox_plain.lua \
             "$OBF/plain.db" "$BODY" "$OB_CONNS")
       echo "NGINX kind=outbox-plain rep=$rep $(echo "$out" | sed -n 's/^OBPLAIN //p')" ;;
    esac
  done
done
# every 202 is a stored record: the outbox's accepted count is at least the answers wrk counted
# (a request wrk gave up on at the end of a run may be stored without being answered)
accepted=$(/usr/bin/python3 -c "import urllib.request as u, re
t = u.urlopen('http://127.0.0.1:$PORT/metrics', timeout=10).read().decode()
print(re.search(r'^littlehorse_outbox_accepted_total (\S+)', t, re.M).group(1).split('.')[0])")
echo "NGINX kind=outbox-check accepted=$accepted answered=$answered conns=$OB_CONNS"
# ---- 4. /health in the outbox example, webhooks in flight, LittleHorse down ---------------
# Everything started above stops first: section 3's nginx would go on retrying its backlog on
# the CPU this row measures.
cleanup
sh bench/nginx/outbox_health.sh || echo "NGINX kind=ob-failed rc=$?"

# [error] too: a refused wake directory (one) silently turns the wait into ngx.sleep polling
if grep -E '\[(error|alert|crit|emerg)\]' "$B"/*/logs/error.log >&2; then echo "NGINX kind=log alerts=1"; fi
