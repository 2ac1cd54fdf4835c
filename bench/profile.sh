#!/bin/sh
# Where a Lua client's time goes: perf profile of bench/lua_bench.lua against a fresh dev server.
#   sh bench/profile.sh [MODE [SECONDS]]     MODE as lua_bench.lua's: PAYLOAD:HOW[:noreply], e.g.
#                                            small:seq (default), real:64, realtext:64:noreply
# Needs `make build devserver` first and perf (Debian linux-perf). Writes build/bench/perf.MODE.data
# and prints: CPU by thread and library, then the inclusive share of our C functions.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
B="$ROOT/build/bench"
MODE=${1:-small:seq}
SECS=${2:-4}
mkdir -p "$B"
. bench/server.sh
start_server profile
DATA="$B/perf.$MODE.data"
BENCH_SECONDS=$SECS perf record -q -F 1500 --call-graph dwarf,16384 -o "$DATA" \
  lua5.4 bench/lua_bench.lua run "$TARGET" "$MODE"
echo "== CPU by thread"
perf report -i "$DATA" --no-children --sort pid -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -6
echo "== CPU by library"
perf report -i "$DATA" --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -10
echo "== inclusive share of our functions (src/*.c) and what they call"
perf report -i "$DATA" --children --sort sym -g none 2>/dev/null | grep -v '^$' |
  grep -E ' (do_call|do_call_async|handle_[a-z]+|client_poll|engine_thread|lh_[a-z_]+|push_[a-z_]+|grpc_call_start_batch|grpc_completion_queue_(pluck|next)|lua_createtable|protobuf_c_message_(un)?pack|_int_malloc|_int_free)$' |
  head -30
