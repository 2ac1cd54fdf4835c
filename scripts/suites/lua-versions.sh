# Sourced by scripts/test.sh: the portable specs under Lua 5.3, 5.1 and LuaJIT, each against
# a build of the same sources made with that Lua's headers (scripts/build-lua.sh).
for name in 5.3 5.1 luajit; do
  case $name in luajit) interp=luajit; ver=5.1 ;; *) interp=lua$name; ver=$name ;; esac
  if ! sh scripts/build-lua.sh "$name" >/dev/null; then
    echo "not ok - build for Lua $name failed" >"build/tap/lua-$name.tap"
    continue
  fi
  tree=build/lua/$name/lua_modules
  ( export LUA_PATH="$tree/share/lua/$ver/?.lua;$tree/share/lua/$ver/?/init.lua;;"
    export LUA_CPATH="$tree/lib/lua/$ver/?.so;;"
    run_busted "lua-$name" --run=portable --lua="$interp" )
done
