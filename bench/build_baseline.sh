#!/bin/sh
# Builds build/bench/baseline (bench/baseline.c) with protobuf-c code generated from proto/ into
# build/bench/gen: the decoding baseline uses its own generated code, not the module's src/gen.
#   sh bench/build_baseline.sh        (needs gcc, libgrpc-dev, protobuf-c-compiler, libprotobuf-c-dev)
set -eu
cd "$(dirname "$0")/.."
B=build/bench
rm -rf "$B/gen" && mkdir -p "$B/gen"
(cd proto && protoc-c -I. --c_out="../$B/gen" $(find . -name '*.proto' | sed 's|^\./||' | sort))
gcc -O2 -Wall -I"$B/gen" -o "$B/baseline" bench/baseline.c $(find "$B/gen" -name '*.pb-c.c' | sort) \
  -lgrpc -lgpr -lprotobuf-c
