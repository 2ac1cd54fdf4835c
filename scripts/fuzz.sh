#!/bin/sh
# Fuzz littlehorse.core with libFuzzer (clang 14, -fsanitize=fuzzer,address,undefined).
#   sh scripts/fuzz.sh short [seconds]   each target for 20 s (part of `make test`)
#   sh scripts/fuzz.sh long  [seconds]   each target for 10 min (`make fuzz`)
#   sh scripts/fuzz.sh build             build only
# Targets (fuzz/harness.c, properties in fuzz/checks.lua):
#   reply  core.decode_external_event: ExternalEvent bytes -> Lua table (+ re-encode checks)
#   json   core.json_decode, and decode -> encode -> decode stability
#   replies core.decode_reply: the other replies (correlated events, defs, lists, id lists)
# The module's sources and libraries (the rockspec's lists) are compiled with the sanitizers into
# build/fuzz/ and linked with liblua5.4. Seeds come from fuzz/make_corpus.lua; the corpus
# grows in build/fuzz/corpus/<target>. First the saved crashers in fuzz/regressions/<target>/
# are replayed. A crash (sanitizer report, broken property, timeout, OOM) fails the run, and
# the crashing input is copied to fuzz/regressions/<target>/ so that it becomes a regression
# case (spec/fuzz_regressions_spec.lua replays that directory in every busted run).
# One status line per target goes to build/fuzz/status (read by scripts/suites/fuzz.sh).
set -u
cd "$(dirname "$0")/.."
MODE=${1:-short}
case "$MODE" in
  short) SECS=${2:-20} ;;
  long) SECS=${2:-600} ;;
  build) SECS=0 ;;
  *) echo "usage: sh scripts/fuzz.sh short|long|build [seconds]" >&2; exit 2 ;;
esac
OUT=build/fuzz
mkdir -p "$OUT"
: >"$OUT/status"

# clang and its sanitizer runtimes (libclang-rt-14-dev holds libFuzzer), Lua headers.
sh scripts/deps-extra.sh clang libclang-rt-14-dev liblua5.4-dev lua5.4
CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null || CC=clang-14

fail() { echo "not ok - $1" >>"$OUT/status"; echo "fuzz: FAILED: $1"; }

# ---- build
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-g -O1 $SAN -I/usr/include/lua5.4 -Isrc -Isrc/gen"
SRCS=$(lua5.4 - littlehorse-client-0.1.0-1.rockspec <<'LUA'
local env = {}
assert(loadfile(arg[1], "t", env))()
local m = env.build.modules["littlehorse.core"]
for _, s in ipairs(m.sources) do print(s) end
for _, l in ipairs(m.libraries or {}) do print("-l" .. l) end
LUA
) || { fail "fuzz build: cannot read the rockspec's source list"; exit 1; }
LIBS="-llua5.4 $(echo "$SRCS" | grep '^-l' | tr '\n' ' ') -lm"
SRCS=$(echo "$SRCS" | grep -v '^-l')
mkdir -p "$OUT/obj"
: >"$OUT/build.log"
build_ok=1
OBJS=""
for src in $SRCS; do
  obj="$OUT/obj/$(echo "$src" | tr '/' '_' | sed 's/\.c$/.o/')"
  OBJS="$OBJS $obj"
  # rebuild when the source or any header under src/ is newer than the object
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find src -name '*.h' -newer "$obj" | head -1)" ]; then
    $CC $CFLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$obj" 2>>"$OUT/build.log" || { build_ok=0; echo "fuzz: cannot compile $src (see $OUT/build.log)"; }
  fi
done
for t in reply json replies; do
  case $t in reply) n=1 ;; json) n=2 ;; replies) n=3 ;; esac
  [ "$build_ok" = 1 ] || break
  $CC $CFLAGS -fsanitize=fuzzer -DLH_FUZZ_TARGET=$n -DLH_FUZZ_CHECKS="\"$PWD/fuzz/checks.lua\"" \
    fuzz/harness.c $OBJS $LIBS -o "$OUT/fuzz_$t" 2>>"$OUT/build.log" || { build_ok=0; echo "fuzz: cannot link fuzz_$t (see $OUT/build.log)"; }
done
if [ "$build_ok" != 1 ]; then
  tail -20 "$OUT/build.log"
  fail "fuzz build failed"
  exit 1
fi
[ "$MODE" = build ] && { echo "fuzz: built $OUT/fuzz_reply $OUT/fuzz_json $OUT/fuzz_replies"; exit 0; }

# ---- seeds (needs the module built into ./lua_modules: `make build`)
rm -rf "$OUT/seed" && mkdir -p "$OUT/seed/reply" "$OUT/seed/json" "$OUT/seed/replies"
LUA_PATH="./lua_modules/share/lua/5.4/?.lua;./lua_modules/share/lua/5.4/?/init.lua;;" \
LUA_CPATH="./lua_modules/lib/lua/5.4/?.so;;" \
  lua5.4 fuzz/make_corpus.lua "$OUT/seed/reply" "$OUT/seed/json" "$OUT/seed/replies" || { fail "fuzz seed corpus (run make build first)"; exit 1; }

# ---- replay saved crashers, then fuzz
status=0
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
for t in reply json replies; do
  bin="$OUT/fuzz_$t"
  reg="fuzz/regressions/$t"
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg" 2>/dev/null)" ]; then
    if ! "$bin" -runs=1 "$reg"/* >"$OUT/$t-regressions.log" 2>&1; then
      fail "fuzz $t: a saved crasher in $reg crashes again (see $OUT/$t-regressions.log)"
      status=1
      continue
    fi
  fi
  dict=""
  [ "$t" = json ] && dict="-dict=fuzz/json.dict"
  art="$OUT/artifacts/$t"
  rm -rf "$art" && mkdir -p "$art" "$OUT/corpus/$t"
  echo "fuzz: $t for ${SECS}s"
  "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$art/" $dict "$OUT/corpus/$t" "$OUT/seed/$t" >"$OUT/$t.log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$t.log" | grep -o '[0-9]*$')
  if [ $rc -ne 0 ] || [ -n "$(ls -A "$art")" ]; then
    mkdir -p "$reg"
    for f in "$art"/*; do
      [ -f "$f" ] || continue
      cp "$f" "$reg/$(basename "$f")"
      echo "fuzz: saved $reg/$(basename "$f")"
    done
    grep -m1 -E 'ERROR: |runtime error|property violated|deadly signal' "$OUT/$t.log"
    fail "fuzz $t crashed after ${runs:-?} runs (input saved in $reg; log $OUT/$t.log)"
    status=1
  else
    echo "ok - fuzz $t ${SECS}s clean (${runs:-?} runs)" >>"$OUT/status"
    echo "fuzz: $t clean, ${runs:-?} runs in ${SECS}s"
  fi
done
exit $status
