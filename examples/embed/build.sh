#!/bin/sh
# Build the embedding example: examples/embed/build.sh [OUTPUT]  (default build/embed-host)
# Needs gcc (or $CC), pkg-config and liblua5.4-dev. The checkout's lua_modules tree (filled by
# `make build`) is baked in as the default module root; --root or $LH_LUA_ROOT override it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/build/embed-host}
mkdir -p "$(dirname "$out")"
${CC:-gcc} ${CFLAGS:--O2 -g} -Wall -Wextra -std=c11 -D_POSIX_C_SOURCE=200809L \
  -DLH_LUA_ROOT="\"$repo/lua_modules\"" \
  $(pkg-config --cflags lua5.4) -o "$out" "$here/host.c" $(pkg-config --libs lua5.4) -lpthread
echo "built $out"
