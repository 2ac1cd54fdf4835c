# Sourced by scripts/test.sh: the specs again with the garbage collector running all the
# time (spec/support/gc_hook.lua, loaded with busted --helper), to flush out C code that
# keeps a pointer into a Lua object it no longer anchors, and __gc metamethods that free what
# is still in use. TAPs: build/tap/gc-incremental.tap, build/tap/gc-generational.tap,
# build/tap/gc-torture.tap, build/tap/gc-luajit.tap.
#
#   gc-incremental   every spec; the incremental collector at ten times its usual speed, a
#                    collector step every 100 000 VM instructions and a full collection every
#                    million (clients, call handles and replies collected at arbitrary points
#                    between calls)
#   gc-generational  the specs that convert the most (client, bad input, wire, JSON, async):
#                    minor collections after every 1% of growth, a major one at 10%
#   gc-torture       the conversion specs under spec/support/gc_torture_host.c, a Lua 5.4
#                    interpreter whose allocator makes every Lua object allocation inside a
#                    call of the module (spec/support/gc_torture.lua) a full collection
#                    first, and overwrites freed memory with junk: a pointer kept into a string
#                    the caller's code dropped reads junk at once. Emergency collections run no
#                    finalizers, so the #finalizer specs are left out here (the other runs
#                    have them). GC_SPECS_TORTURE overrides the subset.
#   gc-luajit        the conversion and async specs under LuaJIT (its build from
#                    scripts/build-lua.sh): step multiplier 1000, a full collection every
#                    million VM instructions (interpreted: the hook needs the JIT off).
#                    Without the #finalizer cases: with the JIT off, the hook's collections
#                    run their finalizer from Lua code before it can run inside the call it
#                    must hit (the lua-luajit and asan-luajit runs have them).
#                    GC_SPECS_LUAJIT overrides the subset.
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

  lj=""
  for s in ${GC_SPECS_LUAJIT:-spec/client_spec.lua spec/mapping_spec.lua spec/bad_input_spec.lua spec/wire_spec.lua spec/json_spec.lua spec/nul_strings_spec.lua spec/lifetime_spec.lua spec/event_writer_spec.lua spec/event_reader_spec.lua spec/async_spec.lua}; do
    [ -f "$s" ] && lj="$lj $s"
  done
  if sh scripts/build-lua.sh luajit >/dev/null; then
    tree=build/lua/luajit/lua_modules
    # shellcheck disable=SC2086
    ( LH_GC_MODE=incremental LH_GC_HOOK=1000000 LH_SPEC_TREE=$tree
      LUA_PATH="$tree/share/lua/5.1/?.lua;$tree/share/lua/5.1/?/init.lua;;" LUA_CPATH="$tree/lib/lua/5.1/?.so;;"
      export LH_GC_MODE LH_GC_HOOK LH_SPEC_TREE LUA_PATH LUA_CPATH
      run_busted gc-luajit --run=runtime --lua=luajit --exclude-tags=subtype,finalizer --helper=spec/support/gc_hook.lua $lj )
  else
    echo "not ok - gc-luajit: the LuaJIT build failed (scripts/build-lua.sh luajit)" >build/tap/gc-luajit.tap
  fi

  torture=""
  for s in ${GC_SPECS_TORTURE:-spec/lifetime_spec.lua spec/nul_strings_spec.lua spec/mapping_spec.lua spec/bad_input_spec.lua spec/wire_spec.lua spec/client_spec.lua spec/async_spec.lua spec/json_spec.lua}; do
    [ -f "$s" ] && torture="$torture $s"
  done
  mkdir -p build/gc-torture
  if gcc -O2 -g -Wall -Wextra $(pkg-config --cflags lua5.4) -o build/gc-torture/lua \
       spec/support/gc_torture_host.c $(pkg-config --libs lua5.4) 2>build/gc-torture/build.log; then
    # the host runs busted itself (--ignore-lua: no re-exec through busted's `lua` setting)
    mkdir -p build/gc-torture/bin
    printf '%s\n' '#!/bin/sh' "exec '$PWD/build/gc-torture/lua' '$(command -v busted)' --ignore-lua \"\$@\"" \
      >build/gc-torture/bin/busted
    chmod +x build/gc-torture/bin/busted
    # shellcheck disable=SC2086
    PATH="$PWD/build/gc-torture/bin:$PATH" run_busted gc-torture --helper=spec/support/gc_torture.lua \
      --exclude-tags=finalizer $torture
  else
    cat build/gc-torture/build.log
    echo "not ok - gc-torture: the host does not build (spec/support/gc_torture_host.c)" >build/tap/gc-torture.tap
  fi
)
