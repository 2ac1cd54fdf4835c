#!/bin/sh
# make bench: our Lua binding side by side with the raw gRPC C core, the official JS SDK and
# Python grpcio, all in one run, against the dev server on loopback, all sending the same
# PutExternalEvent bytes. Prints one table with the ratios and PASS/FAIL per target, and writes
# it to build/bench/results.txt (raw per-run lines: build/bench/raw.txt).
#
# Method: each client process warms up, then measures each concurrency level for BENCH_SECONDS
# after a BENCH_WARMUP at that level. The clients run one after the other in a round (C, Lua,
# JS, Python), each against a fresh dev server (--threads 1); BENCH_REPS rounds; the table shows
# the median of the rounds. The client and the server each get one of the two cores: the server
# is pinned to CPU 1 and the client to CPU 0 (all their threads). Unpinned, the scheduler puts
# them sometimes on one core and sometimes on two, and on this VM a wake-up across cores costs
# ~100 us, so sequential figures jumped between ~5k and ~20k calls/s from one run to the next.
# Then: RSS of a Lua process over BENCH_RSS_CALLS calls, and a valgrind run of BENCH_LEAK_CALLS.
#
# Knobs (environment): BENCH_SECONDS=2 BENCH_WARMUP=0.5 BENCH_REPS=7 BENCH_RSS_CALLS=1000000
#   BENCH_LEAK_CALLS=10000 BENCH_PIN=1 (0: let the scheduler place the client and the server)
#   BENCH_SKIP="rss leak js py convert" (skip parts; for quick iterations)
#   BENCH_NICE=-5 (run the clients and the dev server under `nice -n N`, e.g. on a shared machine)
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
B="$ROOT/build/bench"
mkdir -p "$B"

BENCH_SECONDS=${BENCH_SECONDS:-2}
BENCH_WARMUP=${BENCH_WARMUP:-0.5}
BENCH_REPS=${BENCH_REPS:-7}
BENCH_RSS_CALLS=${BENCH_RSS_CALLS:-1000000}
BENCH_LEAK_CALLS=${BENCH_LEAK_CALLS:-10000}
BENCH_PIN=${BENCH_PIN:-1}
BENCH_SKIP=${BENCH_SKIP:-}
BENCH_CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
export BENCH_SECONDS BENCH_WARMUP BENCH_CLK_TCK

skip() { case " $BENCH_SKIP " in *" $1 "*) return 0 ;; esac; return 1; }
say() { echo "bench: $*" >&2; }

# ---- set-up: Debian packages (only what is missing), baseline, stubs, npm ----------------
apt_install() { sh scripts/deps-extra.sh "$@" >&2; }
apt_install gcc libgrpc-dev python3 python3-grpcio python3-grpc-tools valgrind util-linux procps
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then apt_install nodejs npm; fi

# A snapshot of what `make build devserver` just made, so that a rebuild in the work tree
# while the benchmark runs cannot mix two builds in one table.
SNAP="$B/snapshot"
rm -rf "$SNAP" && mkdir -p "$SNAP/lib" "$SNAP/share"
cp -R "$ROOT/lua_modules/lib/lua/5.4/." "$SNAP/lib/"
cp -R "$ROOT/lua_modules/share/lua/5.4/." "$SNAP/share/"
cp "$ROOT/build/lh-devserver" "$SNAP/lh-devserver"
eval "$(luarocks --lua-version=5.4 --tree "$ROOT/lua_modules" path)"
LUA_PATH="$SNAP/share/?.lua;$SNAP/share/?/init.lua;$LUA_PATH"
LUA_CPATH="$SNAP/lib/?.so;$LUA_CPATH"
export LUA_PATH LUA_CPATH
LUA=lua5.4
$LUA -e 'require "littlehorse"' || { say "the built module does not load: run 'make build' first"; exit 1; }
PY=/usr/bin/python3

say "building build/bench/baseline"
gcc -O2 -Wall -o "$B/baseline" bench/baseline.c -lgrpc -lgpr

say "generating Python stubs from proto/ into build/bench/py"
rm -rf "$B/py" && mkdir -p "$B/py"
(cd proto && $PY -m grpc_tools.protoc -I. --python_out="$B/py" --grpc_python_out="$B/py" \
  service.proto object_id.proto type_definition.proto external_event.proto common_enums.proto)

say "npm ci in bench/js (littlehorse-client 0.14.0)"
(cd bench/js && npm ci --no-audit --no-fund --loglevel=error >"$B/npm.log" 2>&1) || { cat "$B/npm.log"; exit 1; }

# A Lua process exits 3 when its hash seed orders the request's JSON keys differently from the
# reference bytes (see bench/common.lua); a new process gets a new seed.
lua_retry() {
  lr_i=0
  while :; do
    lr_i=$((lr_i + 1))
    lr_rc=0
    $CLIENT_PIN "$@" || lr_rc=$?
    [ "$lr_rc" -eq 3 ] && [ "$lr_i" -lt 60 ] && continue
    return "$lr_rc"
  done
}
# a client command: "lua_retry ..." (a shell function) or a program, pinned if BENCH_PIN=1
client_cmd() {
  if [ "$1" = lua_retry ]; then shift; lua_retry "$@"; else $CLIENT_PIN "$@"; fi
}

SRV_PID=""
SERVER_PIN=""
CLIENT_PIN=""
if [ "$BENCH_PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then SERVER_PIN="taskset -c 1"; CLIENT_PIN="taskset -c 0"; fi
if [ -n "${BENCH_NICE:-}" ]; then SERVER_PIN="nice -n $BENCH_NICE $SERVER_PIN"; CLIENT_PIN="nice -n $BENCH_NICE $CLIENT_PIN"; fi

REQ="$B/request.bin"
lua_retry $LUA bench/gen_request.lua "$REQ" >"$B/request.txt"
say "$(cat "$B/request.txt")"

# ---- dev server -------------------------------------------------------------------------

stop_server() {
  if [ -n "$SRV_PID" ]; then
    kill -TERM "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    rm -f "$SRV_OUT"
    SRV_PID=""
  fi
}
trap 'stop_server' EXIT
trap 'stop_server; exit 130' INT TERM

SRV_N=0
start_server() {
  SRV_N=$((SRV_N + 1))
  SRV_OUT="$B/server.$SRV_N.out"
  rm -f "$SRV_OUT"
  $SERVER_PIN "$SNAP/lh-devserver" --port 0 --threads 1 --def bench-event >"$SRV_OUT" 2>&1 &
  SRV_PID=$!
  TARGET=""
  n=0
  while [ -z "$TARGET" ]; do
    n=$((n + 1))
    if [ "$n" -gt 500 ] || ! kill -0 "$SRV_PID" 2>/dev/null; then
      say "dev server did not start:"; cat "$SRV_OUT" >&2 2>/dev/null; exit 1
    fi
    sleep 0.01
    TARGET=$(sed -n 's/^LISTENING \(.*:[0-9][0-9]*\)$/\1/p' "$SRV_OUT" 2>/dev/null | head -1)
  done
  export BENCH_SERVER_PID="$SRV_PID"
}

# CPU seconds used by all processes on the machine (busy time from /proc/stat)
busy_cpu() { awk -v t="$BENCH_CLK_TCK" '/^cpu /{print ($2+$3+$4+$7+$8+$9)/t; exit}' /proc/stat; }
proc_cpu() { awk -v t="$BENCH_CLK_TCK" '{sub(/^.*\) /,""); print ($12+$13)/t}' "/proc/$1/stat" 2>/dev/null || echo 0; }
now_s() { awk '{print $1; exit}' /proc/uptime; }

RAW="$B/raw.txt"
: >"$RAW"
rm -f "$B/convert.txt"
{
  echo "META date=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$BENCH_SECONDS warmup=$BENCH_WARMUP reps=$BENCH_REPS pin=$BENCH_PIN nice=${BENCH_NICE:-0} nproc=$(nproc) loadavg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
  echo "META request_bytes=$(wc -c <"$REQ") versions=$($LUA -e 'local c=require"littlehorse.core"; print(table.concat({c.versions()}, "/"))')"
  echo "META node=$(node --version) py_grpcio=$($PY -c 'import grpc; print(grpc.__version__)') gcc=$(gcc -dumpversion)"
} >>"$RAW"

# One client process against a fresh server: run_client NAME REP COMMAND... (@TARGET@ = its address)
run_client() {
  name=$1 rep=$2
  shift 2
  start_server
  for a do
    shift
    [ "$a" = @TARGET@ ] && a=$TARGET
    set -- "$@" "$a"
  done
  b0=$(busy_cpu) w0=$(now_s)
  out="$B/out.$name.$rep"
  rc=0
  BENCH_LABEL=$rep
  export BENCH_LABEL
  client_cmd "$@" >"$out" 2>"$out.err" || rc=$?
  srv=$(proc_cpu "$SRV_PID")
  b1=$(busy_cpu) w1=$(now_s)
  stop_server
  cat "$out" >>"$RAW"
  if [ "$rc" -ne 0 ]; then
    say "$name (round $rep) failed with exit $rc:"; cat "$out.err" >&2
    echo "FAILED client=$name rep=$rep rc=$rc" >>"$RAW"
    return 0
  fi
  cl=$(sed -n 's/^PROC client=[a-z]* cpu=//p' "$out" | head -1)
  echo "NOISE client=$name rep=$rep wall=$(echo "$w1 $w0" | awk '{print $1-$2}') busy=$(echo "$b1 $b0" | awk '{print $1-$2}') client_cpu=${cl:-0} server_cpu=$srv" >>"$RAW"
  say "  $name: $(grep -c '^RESULT' "$out") results"
}

# One client of a round: run_round_client REP INDEX (0 C, 1 Lua, 2 JS, 3 Python)
run_round_client() {
  case $2 in
  0) run_client c "$1" "$B/baseline" @TARGET@ "$REQ" seq 1 8 64 ;;
  1) run_client lua "$1" lua_retry $LUA bench/lua_bench.lua run @TARGET@ "$REQ" seq 1 8 64 seq+ seq:noreply 64:noreply ;;
  2) skip js || run_client js "$1" node bench/js/bench.js @TARGET@ "$REQ" seq 8 64 ;;
  3) skip py || run_client py "$1" $PY bench/py_bench.py "$B/py" @TARGET@ "$REQ" seq 8 64 ;;
  esac
}

# Each round starts with a different client (C, Lua, JS, Python, then Lua, JS, Python, C, ...)
# so that no client always runs first, or always right after another.
for rep in $(seq 1 "$BENCH_REPS"); do
  say "round $rep of $BENCH_REPS ($BENCH_SECONDS s per figure)"
  for k in 0 1 2 3; do run_round_client "$rep" $(( (rep - 1 + k) % 4 )); done
done

# ---- memory: RSS over many calls, then valgrind ------------------------------------------
if ! skip rss; then
  say "RSS: $BENCH_RSS_CALLS calls in one Lua process"
  start_server
  lua_retry $LUA bench/lua_bench.lua rss "$TARGET" "$REQ" "$BENCH_RSS_CALLS" >>"$RAW" \
    || echo "FAILED client=rss rc=$?" >>"$RAW"
  stop_server
fi

if ! skip leak; then
  say "valgrind: $BENCH_LEAK_CALLS calls"
  start_server
  rc=0
  valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9 \
    --suppressions=valgrind.supp --log-file="$B/valgrind.log" \
    $LUA bench/lua_bench.lua leak "$TARGET" "$REQ" "$BENCH_LEAK_CALLS" >"$B/leak.out" 2>&1 || rc=$?
  stop_server
  cat "$B/leak.out" >>"$RAW"
  awk -v rc="$rc" '
    /definitely lost:/ { gsub(",", "", $4); def = $4 }
    /indirectly lost:/ { gsub(",", "", $4); ind = $4 }
    /possibly lost:/   { gsub(",", "", $4); pos = $4 }
    /ERROR SUMMARY:/   { err = $4 }
    END { printf "VALGRIND rc=%s definite=%d indirect=%d possible=%d errors=%d\n", rc, def, ind, pos, err }
  ' "$B/valgrind.log" >>"$RAW"
fi

# ---- conversion alone (bench/convert.lua) ------------------------------------------------
if ! skip convert; then
  say "conversion: bench/convert.lua"
  $LUA bench/convert.lua >"$B/convert.txt" 2>&1 || echo "(bench/convert.lua failed: exit $?)" >>"$B/convert.txt"
fi

$LUA bench/report.lua "$RAW" "$B/convert.txt" "$B/results.txt"
