#!/bin/sh
# Build the rock for another Lua into build/lua/<name>/lua_modules:
#   sh scripts/build-lua.sh 5.3 | 5.1 | luajit
# The same sources, compiled against that Lua's headers (LuaJIT: Debian libluajit2-5.1-dev).
set -eu
cd "$(dirname "$0")/.."
name=$1
case "$name" in
  luajit) ver=5.1; extra="LUA_INCDIR=/usr/include/luajit-2.1" ;;
  5.1|5.3|5.4) ver=$name; extra="" ;;
  *) echo "usage: $0 5.1|5.3|5.4|luajit" >&2; exit 2 ;;
esac
tree=build/lua/$name/lua_modules
so=$tree/lib/lua/$ver/littlehorse/core.so
# Up to date? (nothing in src/, lua/ or the rockspec newer than the module: make test asks
# for the LuaJIT build twice, for the portable specs and for nginx)
if [ -f "$so" ] && [ -z "$(find src lua littlehorse-client-0.1.0-1.rockspec -newer "$so" -type f 2>/dev/null | head -1)" ]; then
  echo "up to date: $tree"
  exit 0
fi
mkdir -p build/lua/$name
# luarocks builds in the source dir (objects are removed afterwards).
luarocks --lua-version="$ver" --tree "$tree" make littlehorse-client-0.1.0-1.rockspec $extra \
  CFLAGS="-O2 -g -fPIC -Wall -Wextra -Wno-unused-parameter" >build/lua/$name/luarocks.log 2>&1 \
  || { cat build/lua/$name/luarocks.log; exit 1; }
rm -rf src/*.o src/gen/*.o src/gen/google/*/*.o littlehorse
echo "built $tree"
