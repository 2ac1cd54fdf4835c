#!/bin/sh
# post_from_shell.sh: post one ExternalEvent per input line with lh-put-event; safe to rerun.
#
#   examples/post_from_shell.sh EVENT_DEF [FILE]
#
# Each line of FILE (or standard input) is  WF_RUN_ID,CONTENT  where CONTENT is JSON
# ({"approved":true}, 42, "text", ...; it may contain commas). Blank lines and lines starting
# with '#' are skipped. For example, to approve a batch of orders:
#
#   printf '%s\n' 'order-1,{"approved":true}' 'order-2,{"approved":false}' |
#     examples/post_from_shell.sh order-approved
#
# Exactly once, even when rerun: every line gets a fixed guid derived from EVENT_DEF and the
# line itself, so a second run (after a crash, or of the same file tomorrow) finds the events
# already stored and lh-put-event reports them as duplicates, with exit status 0.
#
# What lh-put-event's exit status means here:
#   0  stored (or already stored: a duplicate)            -> next line
#   3  rejected by the server (unknown event def, ...)    -> reported, not retried, next line
#   4  server unreachable after lh-put-event's own retries -> the line is retried in a later
#      round (up to $ROUNDS rounds, $ROUND_PAUSE seconds apart) with the SAME guid
#   2  usage error (a bad line, e.g. invalid JSON)        -> reported, next line
#   1  anything else                                       -> reported, next line
#
# Environment: LHC_API_HOST, LHC_API_PORT, LHC_TENANT_ID (as every LittleHorse client);
# LH_PUT_EVENT (the CLI; default lh-put-event on PATH, else this checkout's bin/);
# ROUNDS (default 3), ROUND_PAUSE (default 5), RETRIES and TIMEOUT (passed to lh-put-event).
#
# Exit status: 0 all stored; 4 some lines could still not be delivered (rerun later: safe);
# 3 some lines were rejected or failed otherwise (and none is undelivered); 2 usage.
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//' >&2
  exit 2
fi
def=$1
input=${2:--}

if [ -z "${LH_PUT_EVENT:-}" ]; then
  if command -v lh-put-event >/dev/null 2>&1; then
    LH_PUT_EVENT=lh-put-event
  else
    LH_PUT_EVENT="$(cd "$(dirname "$0")/.." && pwd)/bin/lh-put-event"
  fi
fi
rounds=${ROUNDS:-3}
pause=${ROUND_PAUSE:-5}

work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
if [ "$input" = "-" ]; then cat >"$work/pending"; else cat -- "$input" >"$work/pending" || exit 2; fi

stored=0 duplicates=0 rejected=0 failed=0
round=1
while :; do
  : >"$work/retry"
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in '' | '#'*) continue ;; esac
    case $line in
      *,*) ;;
      *) echo "skipped (no comma): $line" >&2; failed=$((failed + 1)); continue ;;
    esac
    wf_run_id=${line%%,*}
    content=${line#*,}
    # A guid fixed by the line: the same line always posts with the same guid.
    guid=$(printf '%s\n%s' "$def" "$line" | sha256sum | cut -c1-32)

    out=$("$LH_PUT_EVENT" --wf-run-id "$wf_run_id" --event "$def" --json "$content" \
            --guid "$guid" --retries "${RETRIES:-2}" --timeout "${TIMEOUT:-5}" </dev/null 2>"$work/err")
    status=$?
    case $status in
      0)
        case $out in
          *'"duplicate":true'*) duplicates=$((duplicates + 1)); echo "already stored: $wf_run_id (guid $guid)" ;;
          *) stored=$((stored + 1)); echo "stored: $wf_run_id (guid $guid)" ;;
        esac ;;
      3)
        rejected=$((rejected + 1))
        echo "rejected: $wf_run_id: $(head -n1 "$work/err")" >&2 ;;
      4)
        printf '%s\n' "$line" >>"$work/retry" ;;
      *)
        failed=$((failed + 1))
        echo "failed (exit $status): $wf_run_id: $(head -n1 "$work/err")" >&2 ;;
    esac
  done <"$work/pending"

  [ -s "$work/retry" ] || break
  if [ "$round" -ge "$rounds" ]; then
    echo "undelivered after $rounds rounds (rerun later; it is safe):" >&2
    sed 's/^/  /' "$work/retry" >&2
    break
  fi
  echo "server unavailable for $(wc -l <"$work/retry") line(s); retrying in ${pause}s (round $((round + 1)) of $rounds)" >&2
  sleep "$pause"
  mv "$work/retry" "$work/pending"
  round=$((round + 1))
done

undelivered=0
[ -s "$work/retry" ] && undelivered=$(wc -l <"$work/retry" | tr -d ' ')
echo "summary: $stored stored, $duplicates already stored, $rejected rejected, $failed failed, $undelivered undelivered"
[ "$undelivered" -gt 0 ] && exit 4
[ $((rejected + failed)) -gt 0 ] && exit 3
exit 0
