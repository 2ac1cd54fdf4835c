# Sourced by bench/profile.sh and bench/instructions.sh (bench/run.sh has its own, pinned and
# restarted per client): the Lua paths and one dev server for the script's life.
#   start_server NAME  -> SRV (its pid) and TARGET (host:port); stopped on exit.
# (bench/run.sh sets BENCH_LUA_READY and BENCH_DEVSERVER: its snapshot of the build)
[ -n "${BENCH_LUA_READY:-}" ] || eval "$(luarocks --lua-version=5.4 --tree "$ROOT/lua_modules" path)"

start_server() {
  OUT="$B/$1.server.out"
  rm -f "$OUT"
  "${BENCH_DEVSERVER:-$ROOT/build/lh-devserver}" --port 0 --threads 1 --def bench-event >"$OUT" 2>&1 &
  SRV=$!
  trap 'kill -TERM $SRV 2>/dev/null || true; wait $SRV 2>/dev/null || true' EXIT
  trap 'exit 130' INT TERM # dash runs no EXIT trap when a signal ends the script
  TARGET=""
  while [ -z "$TARGET" ]; do
    kill -0 "$SRV" 2>/dev/null || { cat "$OUT" >&2; echo "dev server did not start" >&2; exit 1; }
    sleep 0.01
    TARGET=$(sed -n 's/^LISTENING //p' "$OUT")
  done
}
