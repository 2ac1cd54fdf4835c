#!/bin/sh
# Install the Debian packages the build, the demo and the tests need, if any are missing.
# One list, used by `make demo`, `make test` and CI.
set -eu
PACKAGES="build-essential pkg-config lua5.4 liblua5.4-dev libgrpc-dev libprotobuf-c-dev
  protobuf-c-compiler lua-busted luarocks lua-cjson procps locales"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
