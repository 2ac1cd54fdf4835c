# Sourced by scripts/test.sh: a representative subset of the specs with the Lua process that
# loads littlehorse.core running under valgrind's memcheck. TAP: build/tap/valgrind.tap.
#
# The module is the one `make build` installed (./lua_modules, -O2 -g: what ships). busted is
# started as `valgrind ... lua5.4 busted --ignore-lua`, so valgrind wraps the very process that
# loads the module (busted's own re-exec through its `lua` setting is skipped); processes the
# specs start (dev servers, peers) are not traced. Fails on any memcheck error: invalid reads
# or writes, use of uninitialised values, bad frees, and definite leaks (--leak-check=full
# --errors-for-leak-kinds=definite; suppressions for third-party statics in valgrind.supp).
#
# VALGRIND_SPECS overrides the subset (paths relative to the project root).
(
  set -u
  sh scripts/deps-extra.sh valgrind python3-grpcio

  out=$PWD/build/valgrind
  logs=$out/logs
  tap=build/tap/valgrind.tap
  rm -rf "$logs" && mkdir -p "$logs" "$out/bin"
  V=$PWD/lua_modules
  BUSTED=$(command -v busted)
  specs=${VALGRIND_SPECS:-"spec/wire_spec.lua spec/client_spec.lua spec/json_spec.lua spec/bad_input_spec.lua spec/bad_server_spec.lua spec/async_spec.lua"}
  present=""
  for s in $specs; do [ -f "$s" ] && present="$present $s"; done

  {
    echo '#!/bin/sh'
    echo "echo \$\$ >'$logs/main.pid'"
    echo "exec valgrind --tool=memcheck --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite \\"
    echo "  --show-leak-kinds=definite --num-callers=40 --suppressions='$PWD/valgrind.supp' \\"
    echo "  --child-silent-after-fork=yes --log-file='$logs/memcheck.%p.log' \\"
    echo "  lua5.4 '$BUSTED' --ignore-lua --cpath='$V/lib/lua/5.4/?.so' \\"
    echo "  --lpath='$V/share/lua/5.4/?.lua;$V/share/lua/5.4/?/init.lua;./spec/support/?.lua' \"\$@\""
  } >"$out/bin/busted"
  chmod +x "$out/bin/busted"

  PATH="$out/bin:$PATH"
  export PATH
  # shellcheck disable=SC2086
  run_busted valgrind $present

  # The busted process (the wrapper's pid, kept by the execs) must end its log with
  # "ERROR SUMMARY: 0 errors". Forked children are silent until they exec something untraced.
  main=$(cat "$logs/main.pid" 2>/dev/null || echo none)
  n=0
  bad=""
  for f in "$logs/memcheck.$main.log"; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    grep -q "ERROR SUMMARY: 0 errors" "$f" || bad="$bad $f"
  done
  if [ "$n" -eq 0 ]; then
    echo "not ok - valgrind: no memcheck log was written (valgrind did not run)" >>"$tap"
  elif [ -z "$bad" ]; then
    echo "ok - valgrind: memcheck clean (no invalid access, no definite leak) over$present" >>"$tap"
  else
    echo "not ok - valgrind: memcheck errors in:$bad" >>"$tap"
    for f in $bad; do
      echo "# --- $f"
      grep -E "ERROR SUMMARY|definitely lost|Invalid|uninitialised|at 0x|by 0x" "$f" | head -60 | sed 's/^/# /'
    done | tee -a "$tap"
  fi
)
