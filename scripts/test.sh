#!/bin/sh
# Run every spec under Lua 5.4 and print the totals as the last line: "N passed, N failed".
# The specs start and stop their own dev servers (spec/support/devserver.lua).
set -u
cd "$(dirname "$0")/.."
mkdir -p build
TAP=build/busted.tap
# A decimal-comma locale for the JSON codec's locale-independence spec, made privately.
if [ ! -d build/locale/de_DE.UTF-8 ] && [ -d /usr/share/i18n/locales ]; then
  mkdir -p build/locale && localedef -i de_DE -f UTF-8 build/locale/de_DE.UTF-8 2>/dev/null || true
fi
export LOCPATH="$PWD/build/locale"
busted -o TAP "$@" 2>&1 | tee "$TAP"
rc=$?
# tee hides busted's status; recompute it from the TAP stream.
passed=$(grep '^ok ' "$TAP" | grep -vc '# SKIP' | tr -d ' ')
skipped=$(grep '^ok ' "$TAP" | grep -c '# SKIP' | tr -d ' ')
failed=$(grep -c '^not ok ' "$TAP" | tr -d ' ')
grep -q '^1\.\.' "$TAP" || failed=$((failed + 1))  # busted died before the plan line
echo "$passed passed, $failed failed, $skipped skipped" > build/test-totals.txt
cat build/test-totals.txt
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
