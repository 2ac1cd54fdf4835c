#!/bin/sh
# make bench: our binding (Lua 5.4 and LuaJIT) side by side with two C baselines on the gRPC C
# core (one that only copies the reply bytes out, one that also decodes them with protobuf-c),
# the official JS SDK and Python grpcio, all in one run, against the dev server on loopback; then
# instructions per call (callgrind), nginx, RSS, valgrind and conversion. Prints one table with
# the ratios, their spread and PASS/FAIL per target, and writes it to build/bench/results.txt
# (raw lines: build/bench/raw.txt). See bench/README.md.
#
# Timing method: a round runs each client process once (C, Lua 5.4, LuaJIT, JS, Python), each
# against a fresh dev server (--threads 1), starting with a different client each round;
# BENCH_REPS rounds; each figure is measured for BENCH_SECONDS after BENCH_WARMUP at that level.
# Ratios are the median of the per-round ratios, printed with their min-max. The server is
# pinned to CPU 1 and the client to CPU 0: unpinned, the scheduler puts them sometimes on one
# core and sometimes on two, and on this VM a wake-up across cores costs ~100 us.
#
# Same bytes: a Lua process's tables encode their JSON keys in an order that depends on its
# string hash seed (random per process), so each round starts its Lua 5.4 and LuaJIT processes
# first: each writes the request bytes its tables encode to, then waits for its turn
# (lua_bench.lua run @GO); the C clients of the round send exactly those bytes, and JS and
# Python the Lua 5.4 process's small request.
#
# Knobs (environment): BENCH_SECONDS=1 BENCH_WARMUP=0.3 BENCH_REPS=5 BENCH_RSS_CALLS=500000
#   BENCH_LEAK_CALLS=10000 BENCH_CALLS=5000 (callgrind, per mode) BENCH_PIN=1 (0: unpinned)
#   BENCH_NGINX_REPS=5 BENCH_NGINX_SLOW_REPS=3 BENCH_NGINX_SECONDS=2 BENCH_NGINX_OUTBOX_CONNS=64
#   BENCH_NGINX_RT=1 (SCHED_FIFO)
#   BENCH_OB_REPS=3 BENCH_OB_CONNS=20 BENCH_OB_SERVER=down|hung (bench/nginx/outbox_health.sh)
#   BENCH_SKIP="luajit js py instructions nginx rss leak convert outbox" (skip parts)
#   BENCH_NICE=-5 (run the clients and the dev server under `nice -n N`)
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
B="$ROOT/build/bench"
mkdir -p "$B"

BENCH_SECONDS=${BENCH_SECONDS:-1}
BENCH_WARMUP=${BENCH_WARMUP:-0.3}
BENCH_REPS=${BENCH_REPS:-5}
BENCH_RSS_CALLS=${BENCH_RSS_CALLS:-500000}
BENCH_LEAK_CALLS=${BENCH_LEAK_CALLS:-10000}
BENCH_PIN=${BENCH_PIN:-1}
BENCH_SKIP=${BENCH_SKIP:-}
BENCH_CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
export BENCH_SECONDS BENCH_WARMUP BENCH_CLK_TCK BENCH_PIN

skip() { case " $BENCH_SKIP " in *" $1 "*) return 0 ;; esac; return 1; }
say() { echo "bench: $*" >&2; }
T_START=$(date +%s)

# ---- set-up: Debian packages (only what is missing), builds, stubs, npm -------------------
apt_install() { sh scripts/deps-extra.sh "$@" >&2; }
apt_install gcc libgrpc-dev protobuf-c-compiler libprotobuf-c-dev python3 python3-grpcio python3-grpc-tools \
  valgrind util-linux procps luajit2 libluajit2-5.1-dev
skip nginx || apt_install nginx libnginx-mod-http-lua wrk
if ! skip js && { ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; }; then apt_install nodejs npm; fi
skip luajit && skip nginx || sh scripts/build-lua.sh luajit >&2

# A snapshot of what `make build devserver` (and the LuaJIT build) just made, so that a rebuild
# in the work tree while the benchmark runs cannot mix two builds in one table.
SNAP="$B/snapshot"
rm -rf "$SNAP" && mkdir -p "$SNAP/lib" "$SNAP/share" "$SNAP/luajit"
cp -R "$ROOT/lua_modules/lib/lua/5.4/." "$SNAP/lib/"
cp -R "$ROOT/lua_modules/share/lua/5.4/." "$SNAP/share/"
cp "$ROOT/build/lh-devserver" "$SNAP/lh-devserver"
[ ! -d build/lua/luajit/lua_modules ] || cp -R build/lua/luajit/lua_modules/. "$SNAP/luajit/"
eval "$(luarocks --lua-version=5.4 --tree "$ROOT/lua_modules" path)"
LUA_PATH="$SNAP/share/?.lua;$SNAP/share/?/init.lua;$LUA_PATH"
LUA_CPATH="$SNAP/lib/?.so;$LUA_CPATH"
export LUA_PATH LUA_CPATH
# bench/server.sh (instructions) and bench/nginx/run.sh use these too
BENCH_LUA_READY=1 BENCH_DEVSERVER="$SNAP/lh-devserver" BENCH_LUAJIT_TREE="$SNAP/luajit"
export BENCH_LUA_READY BENCH_DEVSERVER BENCH_LUAJIT_TREE
LUA=lua5.4
LJ="$SNAP/luajit"
LJ_LUA_PATH="$LJ/share/lua/5.1/?.lua;$LJ/share/lua/5.1/?/init.lua;;"
LJ_LUA_CPATH="$LJ/lib/lua/5.1/?.so;;"
$LUA -e 'require "littlehorse"' || { say "the built module does not load: run 'make build' first"; exit 1; }
PY=/usr/bin/python3

say "building build/bench/baseline"
sh bench/build_baseline.sh

if ! skip py; then
  say "generating Python stubs from proto/ into build/bench/py"
  rm -rf "$B/py" && mkdir -p "$B/py"
  (cd proto && $PY -m grpc_tools.protoc -I. --python_out="$B/py" --grpc_python_out="$B/py" \
    service.proto object_id.proto type_definition.proto external_event.proto common_enums.proto)
fi

if ! skip js; then
  say "npm ci in bench/js (littlehorse-client 0.14.0)"
  (cd bench/js && npm ci --no-audit --no-fund --loglevel=error >"$B/npm.log" 2>&1) || { cat "$B/npm.log"; exit 1; }
fi

SRV_PID=""
SERVER_PIN=""
CLIENT_PIN=""
if [ "$BENCH_PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then SERVER_PIN="taskset -c 1"; CLIENT_PIN="taskset -c 0"; fi
if [ -n "${BENCH_NICE:-}" ]; then SERVER_PIN="nice -n $BENCH_NICE $SERVER_PIN"; CLIENT_PIN="nice -n $BENCH_NICE $CLIENT_PIN"; fi

# ---- dev server -------------------------------------------------------------------------

WAITING="" # the pids of Lua processes waiting for their turn
stop_server() {
  if [ -n "$SRV_PID" ]; then
    kill -TERM "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    rm -f "$SRV_OUT"
    SRV_PID=""
  fi
}
stop_all() {
  stop_server
  for p in $WAITING; do kill -TERM "$p" 2>/dev/null || true; done
}
trap 'stop_all' EXIT
trap 'stop_all; exit 130' INT TERM

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
{
  echo "META date=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$BENCH_SECONDS warmup=$BENCH_WARMUP reps=$BENCH_REPS pin=$BENCH_PIN nice=${BENCH_NICE:-0} nproc=$(nproc) loadavg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
  echo "META versions=$($LUA -e 'local c=require"littlehorse.core"; print(table.concat({c.versions()}, "/"))') luajit=$(luajit -v 2>/dev/null | cut -d' ' -f2) gcc=$(gcc -dumpversion)"
  skip js || echo "META node=$(node --version)"
  skip py || echo "META py_grpcio=$($PY -c 'import grpc; print(grpc.__version__)')"
} >>"$RAW"

# Lua 5.4 modes: the seq ones first (the first async call starts the client's completion
# thread, which slows later sync calls: "seq+" measures that).
LUA_MODES="small:seq small:seq:noreply real:seq real:seq:noreply realtext:seq realtext:seq:noreply small:seq+
  small:8 small:64 small:64:noreply real:64 real:64:noreply realtext:64 realtext:64:noreply"
LUAJIT_MODES="small:seq real:seq real:seq:noreply realtext:seq small:64 real:64 real:64:noreply realtext:64"

# launch_waiting NAME ROUND_DIR COMMAND... : a Lua client of this round, started now; it writes its
# request bytes into ROUND_DIR/NAME/ and waits for ROUND_DIR/NAME.go (run_waiting).
launch_waiting() {
  lw_name=$1 lw_dir=$2
  shift 2
  mkdir -p "$lw_dir/$lw_name"
  BENCH_CAPTURE="$lw_dir/$lw_name" BENCH_LABEL=$rep $CLIENT_PIN "$@" >"$B/out.$lw_name.$rep" 2>"$B/out.$lw_name.$rep.err" &
  eval "PID_$lw_name=$!"
  WAITING="$WAITING $!"
}
# wait_ready NAME ROUND_DIR: until its request bytes are written
wait_ready() {
  pid=$(eval echo "\$PID_$1")
  while [ ! -e "$2/$1/ready" ]; do
    kill -0 "$pid" 2>/dev/null || { say "$1 (round $rep) exited before writing its request:"; cat "$B/out.$1.$rep.err" >&2; exit 1; }
    sleep 0.01
  done
}

# One client process against a fresh server, its figures into RAW. run_client NAME COMMAND...
# (@TARGET@ = the server's address), or run_client NAME @WAITING ROUND_DIR (a launch_waiting one).
run_client() {
  name=$1
  shift
  start_server
  out="$B/out.$name.$rep"
  b0=$(busy_cpu) w0=$(now_s)
  rc=0
  if [ "$1" = @WAITING ]; then
    pid=$(eval echo "\$PID_$name")
    echo "$TARGET $SRV_PID" >"$2/$name.go.tmp"
    mv "$2/$name.go.tmp" "$2/$name.go"
    wait "$pid" || rc=$?
  else
    for a do
      shift
      [ "$a" = @TARGET@ ] && a=$TARGET
      set -- "$@" "$a"
    done
    BENCH_LABEL=$rep $CLIENT_PIN "$@" >"$out" 2>"$out.err" || rc=$?
  fi
  srv=$(proc_cpu "$SRV_PID")
  b1=$(busy_cpu) w1=$(now_s)
  stop_server
  cat "$out" >>"$RAW"
  if [ "$rc" -ne 0 ]; then
    say "$name (round $rep) failed with exit $rc:"; cat "$out.err" >&2
    echo "FAILED client=$name rep=$rep rc=$rc" >>"$RAW"
    return 0
  fi
  cl=$(sed -n 's/^PROC client=[a-z0-9-]* cpu=//p' "$out" | head -1)
  echo "NOISE client=$name rep=$rep wall=$(echo "$w1 $w0" | awk '{print $1-$2}') busy=$(echo "$b1 $b0" | awk '{print $1-$2}') client_cpu=${cl:-0} server_cpu=$srv" >>"$RAW"
  say "  $name: $(grep -c '^RESULT' "$out") results"
}

# One client of a round: run_round_client INDEX (0 C, 1 Lua 5.4, 2 LuaJIT, 3 JS, 4 Python)
run_round_client() {
  case $1 in
  0) set -- small="$RD/lua/small.bin" seq 8 64 seq:decode 64:decode real="$RD/lua/real.bin" seq 64 seq:decode 64:decode
     skip luajit || set -- "$@" small-jit="$RD/luajit/small.bin" seq 64 real-jit="$RD/luajit/real.bin" seq 64 seq:decode 64:decode
     run_client c "$B/baseline" @TARGET@ "$@" ;;
  1) run_client lua @WAITING "$RD" ;;
  2) skip luajit || run_client luajit @WAITING "$RD" ;;
  3) skip js || run_client js node bench/js/bench.js @TARGET@ "$RD/lua/small.bin" seq 8 64 ;;
  4) skip py || run_client py $PY bench/py_bench.py "$B/py" @TARGET@ "$RD/lua/small.bin" seq 8 64 ;;
  esac
}

# Each round starts with a different client (C, Lua, LuaJIT, JS, Python, then Lua, LuaJIT, ...)
# so that no client always runs first, or always right after another.
for rep in $(seq 1 "$BENCH_REPS"); do
  say "round $rep of $BENCH_REPS ($BENCH_SECONDS s per figure)"
  RD="$B/round.$rep"
  rm -rf "$RD" && mkdir -p "$RD"
  WAITING=""
  launch_waiting lua "$RD" $LUA bench/lua_bench.lua run "@$RD/lua.go" $LUA_MODES
  skip luajit || launch_waiting luajit "$RD" env "LUA_PATH=$LJ_LUA_PATH" "LUA_CPATH=$LJ_LUA_CPATH" luajit bench/lua_bench.lua run "@$RD/luajit.go" $LUAJIT_MODES
  wait_ready lua "$RD"
  skip luajit || wait_ready luajit "$RD"
  for k in 0 1 2 3 4; do run_round_client $(( (rep - 1 + k) % 5 )); done
  WAITING=""
done
echo "META request_bytes=small:$(wc -c <"$B/round.1/lua/small.bin"),real:$(wc -c <"$B/round.1/lua/real.bin")" >>"$RAW"

# ---- instructions per call (callgrind), the gates at 64 in flight -------------------------
if ! skip instructions; then
  say "instructions per call: callgrind, 64 in flight"
  if BENCH_REPORT=0 sh bench/instructions.sh 64 >&2; then cat "$B/instructions.raw" >>"$RAW"
  else echo "FAILED client=instructions rc=$?" >>"$RAW"; fi
fi

# ---- nginx -------------------------------------------------------------------------------
if ! skip nginx; then
  say "nginx: bench/nginx/run.sh"
  sh bench/nginx/run.sh >>"$RAW" || echo "FAILED client=nginx rc=$?" >>"$RAW"
fi

# ---- memory: RSS over many calls, then valgrind ------------------------------------------
if ! skip rss; then
  say "RSS: $BENCH_RSS_CALLS calls in one Lua process"
  start_server
  $CLIENT_PIN $LUA bench/lua_bench.lua rss "$TARGET" "$BENCH_RSS_CALLS" >>"$RAW" || echo "FAILED client=rss rc=$?" >>"$RAW"
  stop_server
fi

if ! skip leak; then
  say "valgrind: $BENCH_LEAK_CALLS calls"
  start_server
  rc=0
  valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9 \
    --suppressions=valgrind.supp --log-file="$B/valgrind.log" \
    $LUA bench/lua_bench.lua leak "$TARGET" "$BENCH_LEAK_CALLS" >"$B/leak.out" 2>&1 || rc=$?
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
  { $LUA bench/convert.lua 2>&1 || echo "bench/convert.lua failed: exit $?"; } | sed 's/^/CONVERT /' >>"$RAW"
fi

# ---- the outbox: durable posts accepted, delivery against direct async posting ----------
if ! skip outbox; then
  say "outbox: bench/outbox_bench.lua"
  mkdir -p "$B/outbox"
  $CLIENT_PIN $LUA bench/outbox_bench.lua "$SNAP/lh-devserver" "$B/outbox" "$BENCH_SECONDS" "$BENCH_REPS" >"$B/outbox.txt" \
    || echo "FAILED client=outbox rc=$?" >>"$RAW"
  grep '^OUTBOX ' "$B/outbox.txt" >>"$RAW" || true
  say "outbox: bench/outbox_admin_bench.lua"
  $CLIENT_PIN $LUA bench/outbox_admin_bench.lua "$SNAP/lh-devserver" "$B/outbox" "$BENCH_REPS" >>"$B/outbox.txt" \
    || echo "FAILED client=outbox_admin rc=$?" >>"$RAW"
  grep '^OUTBOX_ADMIN ' "$B/outbox.txt" >>"$RAW" || true
fi

echo "META bench_minutes=$(( ($(date +%s) - T_START + 30) / 60 ))" >>"$RAW"
$LUA bench/report.lua "$RAW" "$B/results.txt"
# the outbox's own table (bench/outbox_bench.lua computes its ratios and spread)
if [ -s "$B/outbox.txt" ]; then
  echo
  grep -v '^OUTBOX' "$B/outbox.txt"
  { echo; grep -v '^OUTBOX' "$B/outbox.txt"; } >>"$B/results.txt"
fi
