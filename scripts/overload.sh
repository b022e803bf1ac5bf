#!/usr/bin/env bash
# Overload benchmark (not in CI): more alerts than the engine task can decide. Each request
# carries BATCH copies of a real Falco alert as JSON Lines, so HTTP is not the bottleneck and
# the bounded queue fills; the excess must get 429 (whole requests, never half), memory must
# stay bounded, and every accepted alert must reach the audit log. RSS is sampled every 100 ms.
# Usage: scripts/overload.sh [SECONDS] [CONNECTIONS] [BATCH] [QUEUE_CAPACITY]  (from the repo root)
set -euo pipefail
DUR=${1:-20}
CONNS=${2:-64}
BATCH=${3:-100}
QUEUE=${4:-10000}
PORT=28090 BUILD="--bin teflon-server"
# shellcheck source=scripts/bench-server.sh
source "$(dirname "$0")/bench-server.sh"
export TEFLON_BATCH=$BATCH
RUST_LOG=warn "$BIN/teflon-server" --config "$WORK/teflon.yaml" 2>"$WORK/server.log" & TEFLON=$!
sleep 1
( peak=0; while kill -0 $TEFLON 2>/dev/null; do
    r=$(awk '/VmRSS/{print $2}' /proc/$TEFLON/status 2>/dev/null || echo 0); [ "${r:-0}" -gt "$peak" ] && peak=$r
    echo "$peak" > "$WORK/peak"; echo "$r" >> "$WORK/rss"; sleep 0.1; done ) &
echo "# wrk -t2 -c$CONNS -d${DUR}s, $BATCH alerts per request ($(( $(tr -d '\n' < teflon-server/tests/fixtures/falco/01-terminal-shell-k8s-pod-syscall.json | wc -c) * BATCH / 1024 )) KiB), queue_capacity $QUEUE"
wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -s scripts/load.lua "http://127.0.0.1:28090/v1/alerts" > "$WORK/wrk.txt" 2>&1 || { echo "wrk failed:"; cat "$WORK/wrk.txt"; exit 1; }
R=$(grep RESULT "$WORK/wrk.txt") || { cat "$WORK/wrk.txt"; exit 1; }
REQ=$(echo "$R" | sed -n 's/.*requests=\([0-9]*\).*/\1/p'); REFUSED=$(echo "$R" | sed -n 's/.*errors_status=\([0-9]*\).*/\1/p')
ACC=$(( (REQ - REFUSED) * BATCH ))
sleep 0.5
kill -TERM $TEFLON; wait $TEFLON || true
[ -n "${SHOW_SERVER_LOG:-}" ] && tail -80 "$WORK/server.log"
AUDIT=$(wc -l < "$WORK/audit.jsonl")
echo "$R"
echo "requests: $REQ, 202: $((REQ - REFUSED)), 429: $REFUSED ($(awk -v r=$REFUSED -v q=$REQ 'BEGIN{printf "%.0f", 100*r/q}') % refused)"
echo "alerts offered: $((REQ * BATCH)) ($(awk -v a=$((REQ*BATCH)) -v d=$DUR 'BEGIN{printf "%.0f", a/d}')/s), accepted: $ACC ($(awk -v a=$ACC -v d=$DUR 'BEGIN{printf "%.0f", a/d}')/s), offered/accepted = $(awk -v o=$((REQ*BATCH)) -v a=$ACC 'BEGIN{printf "%.1f", o/a}')"
echo "audit lines after SIGTERM: $AUDIT (accepted: $ACC; the 202s of requests in flight when wrk stopped counting add a few)"
echo "peak RSS: $(awk '{printf "%.1f", $1/1024}' "$WORK/peak") MiB"
echo "RSS every second (MiB): $(awk 'NR % 10 == 0 {printf "%.0f ", $1/1024}' "$WORK/rss")"
