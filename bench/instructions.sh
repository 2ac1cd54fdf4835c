#!/bin/sh
# Instructions per call, counted by callgrind: a machine-independent view of where a call's
# CPU goes, for work on the binding's overhead (this VM's timings drift by 20-40% from one
# minute to the next; instruction counts do not). Counts the client process's user-space
# instructions only (not the kernel's), so the ratios here are not the throughput ratios of
# `make bench`; they say how much work each side does per call.
#   sh bench/instructions.sh            (needs `make build devserver`, valgrind; ~3 minutes)
# Each figure is the difference between two runs (N1 and N2 calls), divided by N2 - N1, so
# start-up (loading, connecting) cancels. The raw C client runs for a time, not a count: its
# two runs' call counts are read from its output. Prints one line per client, then the ratios,
# and writes build/bench/instructions.txt.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
B="$ROOT/build/bench"
mkdir -p "$B"
command -v valgrind >/dev/null || sh scripts/deps-extra.sh valgrind >&2
[ -x "$B/baseline" ] || gcc -O2 -Wall -o "$B/baseline" bench/baseline.c -lgrpc -lgpr
. bench/server.sh
start_server instructions
N1=${N1:-2000}
N2=${N2:-12000}

# lua_ir MODE CALLS: instructions of a Lua process making CALLS calls (retrying a process whose
# hash seed cannot give the reference bytes, exit 3, as run.sh does)
lua_ir() {
  while :; do
    rc=0
    out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null lua5.4 bench/lua_bench.lua count "$TARGET" "$B/request.bin" "$2" "$1" 2>&1) || rc=$?
    [ "$rc" -eq 3 ] && continue
    [ "$rc" -eq 0 ] || { echo "$out" >&2; exit 1; }
    echo "$out" | sed -n 's/.*Collected : //p'
    return
  done
}

# c_ir MODE SECONDS: "instructions calls" of the raw C client running MODE for SECONDS
c_ir() {
  out=$(BENCH_SECONDS=$2 BENCH_WARMUP=0.01 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$B/baseline" "$TARGET" "$B/request.bin" "$1" 2>&1)
  echo "$(echo "$out" | sed -n 's/.*Collected : //p') $(echo "$out" | sed -n 's/^RESULT .* calls=\([0-9]*\) .*/\1/p')"
}

per_call() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", (b - a) / n }'; }

RES="$B/instructions.txt"
: >"$RES"
for mode in 64 seq; do
  set -- $(c_ir "$mode" 2) ; c1=$1 k1=$2
  set -- $(c_ir "$mode" 8) ; c2=$1 k2=$2
  c=$(per_call "$c1" "$c2" $((k2 - k1)))
  l=$(per_call "$(lua_ir "$mode" "$N1")" "$(lua_ir "$mode" "$N2")" $((N2 - N1)))
  r=$(per_call "$(lua_ir "$mode:noreply" "$N1")" "$(lua_ir "$mode:noreply" "$N2")" $((N2 - N1)))
  {
    printf '%-44s %8s instructions/call\n' "raw gRPC C core, $mode" "$c"
    printf '%-44s %8s instructions/call  (%.2fx the C client'"'"'s)\n' "Lua 5.4 binding, $mode" "$l" "$(echo "$l $c" | awk '{print $1/$2}')"
    printf '%-44s %8s instructions/call  (%.2fx)\n' "Lua 5.4 binding, $mode, reply = false" "$r" "$(echo "$r $c" | awk '{print $1/$2}')"
  } | tee -a "$RES"
done
