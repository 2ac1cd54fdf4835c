# Sourced by scripts/test.sh: the specs again with the garbage collector running all the
# time (spec/support/gc_hook.lua, loaded with busted --helper), to flush out C code that
# keeps a pointer into a Lua object it no longer anchors, and __gc metamethods that free what
# is still in use. TAPs: build/tap/gc-incremental.tap, build/tap/gc-generational.tap.
#
#   gc-incremental   every spec; pause 0 (a new cycle starts as soon as one ends), a
#                    collector step at every allocation, in Lua and inside the module, and a
#                    full collection every million VM instructions (clients, call handles and
#                    replies collected at arbitrary points between calls)
#   gc-generational  the specs that convert the most (client, bad input, wire, JSON, async):
#                    minor collections after every 1% of growth, a major one at 10%
#
# A wrong value or a crash fails the specs themselves; the module built as `make build`
# builds it (./lua_modules). GC_SPECS_GENERATIONAL overrides the second subset.
(
  set -u
  LH_GC_MODE=incremental
  LH_GC_HOOK=1000000
  export LH_GC_MODE LH_GC_HOOK
  run_busted gc-incremental --helper=spec/support/gc_hook.lua

  gen=""
  for s in ${GC_SPECS_GENERATIONAL:-spec/client_spec.lua spec/bad_input_spec.lua spec/wire_spec.lua spec/json_spec.lua spec/async_spec.lua}; do
    [ -f "$s" ] && gen="$gen $s"
  done
  LH_GC_MODE=generational
  LH_GC_HOOK=0
  export LH_GC_MODE
  # shellcheck disable=SC2086
  run_busted gc-generational --helper=spec/support/gc_hook.lua $gen
)
