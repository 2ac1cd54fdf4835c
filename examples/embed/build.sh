#!/bin/sh
# Build the embedding examples: examples/embed/build.sh [HOST [FRAME_LOOP]]
#   HOST        host.c: scripts in one or several threads (default build/embed-host)
#   FRAME_LOOP  frame_loop.c: async posts from a frame loop (default: embed-frame-loop beside HOST)
# Needs gcc (or $CC), pkg-config and liblua5.4-dev. The checkout's lua_modules tree (filled by
# `make build`) is baked in as the default module root; --root or $LH_LUA_ROOT override it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/build/embed-host}
loop=${2:-$(dirname "$out")/embed-frame-loop}

# build SOURCE OUTPUT [LIBS...]
build() {
  src=$1 dest=$2
  shift 2
  mkdir -p "$(dirname "$dest")"
  ${CC:-gcc} ${CFLAGS:--O2 -g} -Wall -Wextra -std=c11 -D_POSIX_C_SOURCE=200809L \
    -DLH_LUA_ROOT="\"$repo/lua_modules\"" \
    $(pkg-config --cflags lua5.4) -o "$dest" "$here/$src" $(pkg-config --libs lua5.4) "$@"
  echo "built $dest"
}
build host.c "$out" -lpthread
build frame_loop.c "$loop"
