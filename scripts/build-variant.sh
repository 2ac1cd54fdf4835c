#!/bin/sh
# build-variant.sh VARIANT: build littlehorse.core (and install the pure-Lua modules) into
# build/VARIANT/lua_modules, laid out like the luarocks tree of `make build`, so a busted run
# picks it up with
#   --cpath=build/VARIANT/lua_modules/lib/lua/5.4/?.so
#   --lpath=build/VARIANT/lua_modules/share/lua/5.4/?.lua;...
# Sources, include dirs and libraries are read from the rockspec (so a file the rockspec
# gains is built here too); objects go to build/VARIANT/obj, never into src/, so this can run
# next to `make build`. Rebuilds only when a source, header or the rockspec is newer.
#
# Variants:
#   asan    -O1 -g, AddressSanitizer + UndefinedBehaviorSanitizer, no recovery from UB
#           (load with LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)")
#   debug   -O0 -g (for valgrind / gdb: exact line numbers)
#   release -O2 -g (what `make build` makes)
#
# LH_RUNTIME=luajit (or 5.3, 5.1) builds against that Lua's headers instead, into
# build/VARIANT-RUNTIME/lua_modules (lib/lua/5.1 for LuaJIT).
set -eu
cd "$(dirname "$0")/.."
variant=${1:?usage: build-variant.sh asan|debug|release}
CC=${CC:-gcc}
LUA_VERSION=${LUA_VERSION:-5.4}
RUNTIME=${LH_RUNTIME:-5.4}
case "$RUNTIME" in
  luajit) MODVER=5.1; LUAPKG=luajit ;;
  5.1|5.3|5.4) MODVER=$RUNTIME; LUAPKG=lua$RUNTIME ;;
  *) echo "build-variant.sh: unknown LH_RUNTIME '$RUNTIME' (5.4, 5.3, 5.1, luajit)" >&2; exit 2 ;;
esac
ROCKSPEC=$(ls littlehorse-client-*.rockspec | head -1)
WARN="-Wall -Wextra -Wno-unused-parameter"
case "$variant" in
  asan)    VFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
           VLDFLAGS="-fsanitize=address,undefined" ;;
  debug)   VFLAGS="-O0 -g -fno-omit-frame-pointer"; VLDFLAGS="" ;;
  release) VFLAGS="-O2 -g"; VLDFLAGS="" ;;
  *) echo "build-variant.sh: unknown variant '$variant' (asan, debug, release)" >&2; exit 2 ;;
esac

out=build/$variant
[ "$RUNTIME" = 5.4 ] || out=build/$variant-$RUNTIME
tree=$out/lua_modules
so=$tree/lib/lua/$MODVER/littlehorse/core.so
stamp=$out/flags

# The rockspec as shell lines: "src FILE", "inc DIR", "lib NAME", "lua MODULE FILE".
spec=$(lua$LUA_VERSION - "$ROCKSPEC" <<'EOF'
local env = {}
local chunk = assert(loadfile(arg[1], "t", env))
chunk()
for name, m in pairs(env.build.modules) do
  if type(m) == "string" then
    print("lua " .. name .. " " .. m)
  elseif name == "littlehorse.core" then
    for _, s in ipairs(m.sources) do print("src " .. s) end
    for _, d in ipairs(m.incdirs or {}) do
      if not d:find("%$") then print("inc " .. d) end -- $(GRPC_INCDIR): system paths
    end
    for _, l in ipairs(m.libraries or {}) do print("lib " .. l) end
  end
end
EOF
)
srcs=$(echo "$spec" | sed -n 's/^src //p')
incs=$(echo "$spec" | sed -n 's/^inc /-I/p' | tr '\n' ' ')
libs=$(echo "$spec" | sed -n 's/^lib /-l/p' | tr '\n' ' ')
LUAINC=$(pkg-config --cflags $LUAPKG 2>/dev/null || echo "-I/usr/include/lua$MODVER")
flags="$CC $VFLAGS -fPIC $WARN $LUAINC $incs"

# The pure-Lua modules: always copied (cheap), as luarocks lays them out (a module whose
# file is .../init.lua becomes <module>/init.lua).
echo "$spec" | sed -n 's/^lua //p' | while read -r mod file; do
  dest=$tree/share/lua/$MODVER/$(echo "$mod" | tr '.' '/')
  case "$file" in */init.lua) dest=$dest/init.lua ;; *) dest=$dest.lua ;; esac
  mkdir -p "$(dirname "$dest")"
  cp "$file" "$dest"
done

# Up to date? (same flags, and no C source, header or rockspec newer than the .so)
if [ -f "$so" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$flags" ] \
   && [ -z "$(find src "$ROCKSPEC" -newer "$so" \( -name '*.c' -o -name '*.h' -o -name '*.rockspec' \) 2>/dev/null | head -1)" ]; then
  exit 0
fi

echo "build-variant: $variant ($VFLAGS)"
rm -rf "$out/obj"
mkdir -p "$out/obj" "$(dirname "$so")"
# Compile on every core; objects named after their path (src/gen/x.pb-c.c -> src_gen_x.pb-c.o).
echo "$srcs" | while read -r s; do echo "$s $out/obj/$(echo "$s" | tr '/' '_' | sed 's/\.c$/.o/')"; done \
  | xargs -P "$(nproc)" -n 2 sh -c "$flags -c \"\$0\" -o \"\$1\" || exit 255" 2>"$out/compile.log" \
  || { cat "$out/compile.log"; exit 1; }
# shellcheck disable=SC2046
$CC -shared $VLDFLAGS -o "$so.tmp" $(ls "$out"/obj/*.o) -Wl,-rpath,/usr/lib/x86_64-linux-gnu $libs
mv "$so.tmp" "$so"
echo "$flags" >"$stamp"
