#!/bin/sh
# make demo: start a dev server on a free port, post a real event through the Lua client,
# print it as the server stored it, stop the server.
set -eu
cd "$(dirname "$0")/.."
out=$(mktemp)
./build/lh-devserver --port 0 --def demo-event >"$out" 2>&1 &
pid=$!
# EXIT alone is not enough: dash runs no EXIT trap when a signal ends the script.
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
trap 'exit 130' INT TERM
port=""
for _ in $(seq 1 200); do
  port=$(sed -n 's/^LISTENING .*:\([0-9]*\)$/\1/p' "$out")
  [ -n "$port" ] && break
  sleep 0.02
done
[ -n "$port" ] || { echo "dev server did not start:"; cat "$out"; exit 1; }
echo "dev server (pid $pid) listening on 127.0.0.1:$port"
eval "$(luarocks --lua-version=5.4 --tree ./lua_modules path)"
LHC_API_HOST=127.0.0.1 LHC_API_PORT=$port lua5.4 examples/post_event.lua demo-wf-run demo-event
