#!/bin/sh
# make test: every spec under Lua 5.4, then the extra suites in scripts/suites/*.sh (each
# runs busted again in another configuration: sanitizers, valgrind, aggressive GC, other
# Lua versions, integration hosts). Every busted run writes TAP to build/tap/<name>.tap; the
# last line printed is the sum over all of them: "N passed, N failed, N skipped".
# The specs start and stop their own servers (spec/support/devserver.lua).
set -u
cd "$(dirname "$0")/.."
mkdir -p build
rm -rf build/tap && mkdir -p build/tap
rm -f build/test-totals.txt

# A decimal-comma locale for the JSON codec's locale-independence spec, made privately.
if [ ! -d build/locale/de_DE.UTF-8 ] && [ -d /usr/share/i18n/locales ]; then
  mkdir -p build/locale && localedef -i de_DE -f UTF-8 build/locale/de_DE.UTF-8 2>/dev/null || true
fi
export LOCPATH="$PWD/build/locale"

# run_busted NAME [busted args...]: one busted run, its TAP kept as build/tap/NAME.tap.
# A run that dies before printing its plan line counts as one failure.
run_busted() {
  name=$1; shift
  echo "== busted: $name"
  busted -o TAP "$@" >"build/tap/$name.tap" 2>&1
  grep -E '^(not ok|# )' "build/tap/$name.tap" | head -50
  grep -q '^1\.\.' "build/tap/$name.tap" || { echo "busted run '$name' did not finish:"; tail -20 "build/tap/$name.tap"; echo "not ok - busted run $name did not finish" >>"build/tap/$name.tap"; }
  echo "   $(grep -c '^ok ' "build/tap/$name.tap") ok, $(grep -c '^not ok ' "build/tap/$name.tap") not ok"
}

run_busted main "$@"
for suite in scripts/suites/*.sh; do
  [ -f "$suite" ] || continue
  echo "== suite: $suite"
  . "$suite"
done

# Safety net: the specs stop what they start, even when they fail; a crashed run may not.
# Stop any server process still running from this checkout, and say so.
for pid in $(pgrep -f 'lh-devserver|token_server\.py|bad_peer\.py|conformance/server\.js|conformance/client\.js|nginx: master process nginx -p /tmp/lh-nginx' 2>/dev/null); do
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null || true)
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  case "$cwd|$cmd" in
    "$PWD|"*|*"nginx -p /tmp/lh-nginx"*) kill -TERM "$pid" 2>/dev/null && echo "test.sh: stopped a leftover process $pid: $cmd" ;;
  esac
done

passed=$(cat build/tap/*.tap | grep '^ok ' | grep -vc '# SKIP' | tr -d ' ')
skipped=$(cat build/tap/*.tap | grep '^ok ' | grep -c '# SKIP' | tr -d ' ')
failed=$(cat build/tap/*.tap | grep -c '^not ok ' | tr -d ' ')
echo "$passed passed, $failed failed, $skipped skipped" > build/test-totals.txt
cat build/test-totals.txt
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
