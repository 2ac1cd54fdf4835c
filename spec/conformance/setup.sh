#!/bin/sh
# Make the conformance peer runnable: Node.js + npm (Debian packages if missing), then
# `npm ci` from the committed package-lock.json when node_modules is missing or stale.
# Run by spec/conformance_spec.lua before it starts the peer; idempotent and quiet when
# there is nothing to do. Output goes to build/conformance-setup.log.
set -eu
cd "$(dirname "$0")"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "conformance: installing nodejs npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# npm ci writes node_modules/.package-lock.json; when it matches the lockfile, the tree is current.
if [ ! -f node_modules/.package-lock.json ] || [ ! -d node_modules/littlehorse-client ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "conformance: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
