#!/bin/sh
# Run a command while every core is kept busy by CPU hogs (busy CI): the specs must not depend
# on the machine being idle.
#   sh scripts/with-load.sh COMMAND [ARGS...]     e.g. sh scripts/with-load.sh busted --run=nginx
#   make test-load                                the whole `make test` this way
# LH_LOAD_HOGS sets how many hogs (default: one per online core). The hogs are plain
# `sh -c 'while :; do :; done'` processes started here and stopped here, by PID, however the
# command ends (Ctrl-C included). Exit status: the command's.
set -u
hogs=${LH_LOAD_HOGS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
pids=""
stop_hogs() {
  [ -n "$pids" ] && kill -TERM $pids 2>/dev/null
  for p in $pids; do wait "$p" 2>/dev/null; done
  pids=""
}
trap stop_hogs EXIT
trap 'stop_hogs; exit 130' INT TERM HUP # (dash runs no EXIT trap when a signal ends it)
i=0
while [ "$i" -lt "$hogs" ]; do
  sh -c 'while :; do :; done' &
  pids="$pids $!"
  i=$((i + 1))
done
echo "with-load: $hogs CPU hogs running (pids$pids) while: $*"
"$@"
rc=$?
stop_hogs
echo "with-load: hogs stopped; the command exited $rc"
exit $rc
