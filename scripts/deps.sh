#!/bin/sh
# The Debian packages the build, the demo and the tests need, in one list, used by
# `make demo`, `make test` and CI; installs only what is missing (scripts/deps-extra.sh).
set -eu
exec sh "$(dirname "$0")/deps-extra.sh" \
  build-essential pkg-config lua5.4 liblua5.4-dev libgrpc-dev libprotobuf-c-dev \
  libcurl4-openssl-dev libsqlite3-dev sqlite3 protobuf-c-compiler lua-busted luarocks lua-cjson procps locales \
  lua5.3 liblua5.3-dev lua5.1 liblua5.1-0-dev luajit2 libluajit2-5.1-dev openssl python3 python3-grpcio curl \
  lua-socket
