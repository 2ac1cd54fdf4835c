#!/bin/sh
# Instructions per call, counted by callgrind: the noise-free gate for work on the binding's
# overhead (this VM's timings drift by 20-40% from one minute to the next; instruction counts
# do not). Counts the client process's user-space instructions, all its threads, not the
# kernel's, so the ratios here are not the throughput ratios of `make bench`; they say how much
# work each side does per call.
#   sh bench/instructions.sh [HOW...]     HOW: 64 (N in flight) | seq; default "64 seq"
#                                         (needs `make build devserver`, valgrind; ~2 minutes)
# One Lua 5.4 process makes, for each payload (small, real, realtext) and reply kind (tables,
# reply = false), BENCH_CALLS/10 calls of warm-up and then BENCH_CALLS calls (default 5000)
# between two calls of os.remove(), where callgrind (--dump-before=remove) cuts its counts, so
# start-up and warm-up are not counted. Then the C baselines send the very bytes that process
# encoded (written by it with BENCH_CAPTURE), with and without decoding the reply, the same way.
# Prints the table with the gates (bench/report.lua) and writes build/bench/instructions.txt;
# raw lines: build/bench/instructions.raw (bench/run.sh, with BENCH_REPORT=0, appends them to its
# own raw file and prints them in its table).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
B="$ROOT/build/bench"
mkdir -p "$B"
command -v valgrind >/dev/null || sh scripts/deps-extra.sh valgrind >&2
sh bench/build_baseline.sh
. bench/server.sh
start_server instructions
HOWS=${*:-64 seq}
BENCH_CALLS=${BENCH_CALLS:-5000}
export BENCH_CALLS
CG="$B/callgrind"
CAP="$B/instructions.capture"
rm -rf "$CG" "$CAP" && mkdir -p "$CG" "$CAP"

lua_modes="" c_modes=""
for how in $HOWS; do
  for p in small real realtext; do lua_modes="$lua_modes $p:$how $p:$how:noreply"; done
  c_modes="$c_modes $how $how:decode"
done

# parts NAME: turns the PART lines of $CG/NAME.txt into INSTR lines with callgrind's totals
parts() {
  sed -n 's/^PART //p' "$CG/$1.txt" | while read -r k rest; do
    ir=$(sed -n 's/^totals: //p' "$CG/$1.out.$k")
    [ -n "$ir" ] || { echo "instructions: no callgrind part $k for $1" >&2; exit 1; }
    echo "INSTR $rest instr=$ir"
  done
}

callgrind() {
  name=$1
  shift
  valgrind --tool=callgrind --dump-before=remove --callgrind-out-file="$CG/$name.out" "$@" \
    >"$CG/$name.txt" 2>"$CG/$name.err" || { cat "$CG/$name.err" "$CG/$name.txt" >&2; exit 1; }
}

echo "instructions: Lua 5.4 ($BENCH_CALLS calls per mode:$lua_modes)" >&2
BENCH_CAPTURE=$CAP callgrind lua lua5.4 bench/lua_bench.lua count "$TARGET" $lua_modes
echo "instructions: C baselines, the same bytes" >&2
callgrind c "$B/baseline" "$TARGET" small="$CAP/small.bin" $c_modes real="$CAP/real.bin" $c_modes
echo "instructions: a lower bound, the replies' tables made by a table constructor" >&2
callgrind floor lua5.4 bench/reply_floor.lua "$TARGET"

# lua_fns: for the Lua parts that make reply tables, what Lua itself spent (inclusive) in
# lua_pushlstring (making strings) and lua_next (walking tables): INSTRFN lines
lua_fns() {
  sed -n 's/^PART //p' "$CG/lua.txt" | grep ' client=lua ' | while read -r k rest; do
    callgrind_annotate --inclusive=yes "$CG/lua.out.$k" 2>/dev/null | grep -v '=>' |
      sed -n 's/^ *\([0-9,]*\) .*:\(lua_pushlstring\|lua_next\) .*/\2 \1/p' | tr -d , |
      while read -r fn ir; do echo "INSTRFN $rest fn=$fn instr=$ir"; done
  done
}

RAW="$B/instructions.raw"
{
  echo "META instructions calls=$BENCH_CALLS request_bytes=small:$(wc -c <"$CAP/small.bin"),real:$(wc -c <"$CAP/real.bin")"
  parts lua
  parts c
  parts floor
  lua_fns
} >"$RAW"
[ "${BENCH_REPORT:-1}" = 0 ] || lua5.4 bench/report.lua "$RAW" "$B/instructions.txt"
