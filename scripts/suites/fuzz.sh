# Sourced by scripts/test.sh after the main busted run: a short libFuzzer run of each target
# (scripts/fuzz.sh short: about 20 s each, plus the sanitizer build). Not a busted run, so it
# writes its own TAP lines to build/tap/fuzz.tap: one per target, from build/fuzz/status.
# The saved crashers in fuzz/regressions/ are replayed by spec/fuzz_regressions_spec.lua in
# the main run; `make fuzz` runs the long version.
echo "== fuzz (short): reply decoding (ExternalEvent, then every other reply) and JSON parsing"
sh scripts/fuzz.sh short
fuzz_rc=$?
if [ -s build/fuzz/status ]; then
  cat build/fuzz/status >build/tap/fuzz.tap
else
  echo "not ok - fuzz did not run (exit $fuzz_rc; see build/fuzz/build.log)" >build/tap/fuzz.tap
fi
if [ $fuzz_rc -ne 0 ] && ! grep -q '^not ok' build/tap/fuzz.tap; then
  echo "not ok - fuzz exited with status $fuzz_rc" >>build/tap/fuzz.tap
fi
cat build/tap/fuzz.tap
