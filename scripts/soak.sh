#!/bin/sh
# make soak: SOAK_SECONDS (default 3600) of mixed calls (sync, with retries, gets, defs, async
# batches with cancels and dropped handles, misuse, client churn, calls to a dead port, forced
# collections) from one Lua process against a dev server that fails 10% of PutExternalEvent
# replies (--fail-rate 0.1, UNAVAILABLE). The process's RSS and open file descriptors are
# sampled every SOAK_INTERVAL (10) seconds and printed; the last line is "soak: PASS" when
# both stayed flat after warm-up (see scripts/soak.lua for the rule), else "soak: FAIL".
#   SOAK_SECONDS=120 SOAK_INTERVAL=5 make soak     a quick run
#   SOAK_FAIL_RATE=0.3 SOAK_FAIL_CODE=DEADLINE_EXCEEDED make soak
set -eu
cd "$(dirname "$0")/.."
: "${SOAK_SECONDS:=3600}" "${SOAK_INTERVAL:=10}" "${SOAK_FAIL_RATE:=0.1}" "${SOAK_FAIL_CODE:=UNAVAILABLE}"
export SOAK_SECONDS SOAK_INTERVAL
DEF=soak-event
out=$(mktemp)
./build/lh-devserver --port 0 --def "$DEF" --fail-rate "$SOAK_FAIL_RATE" --fail-code "$SOAK_FAIL_CODE" >"$out" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
trap 'exit 130' INT TERM # (the EXIT trap then stops the server; a signal alone would not end the script)
port=""
for _ in $(seq 1 500); do
  port=$(sed -n 's/^LISTENING .*:\([0-9]*\)$/\1/p' "$out")
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.02
done
[ -n "$port" ] || { echo "soak: the dev server did not start:"; cat "$out"; exit 1; }
# A port with nothing listening (bound and closed at once) for the "dead server" calls.
dead=$(lua5.4 -e 'local s = require("socket") local t = assert(s.bind("127.0.0.1", 0)) local _, p = t:getsockname() t:close() print(p)' 2>/dev/null || echo 1)
echo "soak: ${SOAK_SECONDS}s against the dev server on port $port (pid $pid, fail rate $SOAK_FAIL_RATE $SOAK_FAIL_CODE), samples every ${SOAK_INTERVAL}s"
V=./lua_modules
LUA_PATH="$V/share/lua/5.4/?.lua;$V/share/lua/5.4/?/init.lua;;" LUA_CPATH="$V/lib/lua/5.4/?.so;;" \
  lua5.4 scripts/soak.lua "$port" "$DEF" "$dead"
