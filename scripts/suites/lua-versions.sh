# Sourced by scripts/test.sh: the whole spec suite again under Lua 5.3, Lua 5.1 and LuaJIT, each
# against a build of the same sources made with that Lua's headers (scripts/build-lua.sh). TAPs:
# build/tap/lua-5.3.tap, lua-5.1.tap, lua-luajit.tap.
#
# Every spec runs under every runtime; each asserts its runtime's own behaviour where runtimes
# differ (spec/support/runtime.lua). Left out only: specs tagged for a feature a runtime lacks,
#   #subtype   Lua's integer subtype (5.3+): the 5.1 and LuaJIT runs leave these out; their
#              integer and double rule is asserted by the untagged specs (rt.int, rt.integral)
# Prints per runtime how many specs ran and passed, and adds a TAP line that fails when a
# runtime ran less than RUNTIME_MIN_PERCENT (90) percent of the Lua 5.4 count (build/tap/main.tap).
(
  set -u
  main_ran=$(grep -c '^ok \|^not ok ' build/tap/main.tap 2>/dev/null || echo 0)
  min_percent=${RUNTIME_MIN_PERCENT:-90}
  summary="
   lua-5.4: $main_ran specs ran, $(grep '^ok ' build/tap/main.tap 2>/dev/null | grep -vc '# SKIP') passed (the main run)"
  for name in 5.3 5.1 luajit; do
    case $name in
      luajit) interp=luajit; ver=5.1; exclude=subtype ;;
      5.1) interp=lua5.1; ver=5.1; exclude=subtype ;;
      *) interp=lua$name; ver=$name; exclude="" ;;
    esac
    tap=build/tap/lua-$name.tap
    if ! sh scripts/build-lua.sh "$name" >/dev/null; then
      echo "not ok - build for Lua $name failed" >"$tap"
      continue
    fi
    tree=build/lua/$name/lua_modules
    started=$(date +%s)
    ( export LUA_PATH="$tree/share/lua/$ver/?.lua;$tree/share/lua/$ver/?/init.lua;;"
      export LUA_CPATH="$tree/lib/lua/$ver/?.so;;"
      export LH_SPEC_TREE="$tree"
      run_busted "lua-$name" --run=runtime --lua="$interp" ${exclude:+--exclude-tags="$exclude"} )
    ran=$(grep -c '^ok \|^not ok ' "$tap")
    passed=$(grep '^ok ' "$tap" | grep -vc '# SKIP')
    line="lua-$name: $ran specs ran, $passed passed (Lua 5.4: $main_ran) in $(( $(date +%s) - started ))s"
    echo "   $line"
    summary="$summary
   $line"
    if [ "$main_ran" -gt 0 ] && [ $((ran * 100)) -ge $((main_ran * min_percent)) ]; then
      echo "ok - lua-$name ran $ran specs, at least $min_percent% of the $main_ran that Lua 5.4 ran" >>"$tap"
    else
      echo "not ok - lua-$name ran $ran specs, less than $min_percent% of the $main_ran that Lua 5.4 ran" >>"$tap"
    fi
  done
  echo "== specs per runtime:$summary"
)
