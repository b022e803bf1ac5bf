#!/usr/bin/env bash
# Load benchmark (not in CI): teflon-server (auth token, sim cluster, audit log) and a bare warp
# server answering 202, driven one after the other by wrk with the same Falco alert, in ROUNDS
# alternating pairs (bare, teflon, bare, teflon, …): on a shared machine the throughput of
# consecutive runs moves by ±20 %, so the ratio reported is the median of the pairs' ratios.
# Usage: scripts/load.sh [SECONDS] [CONNECTIONS] [THREADS] [ROUNDS]     (from the repository root)
set -euo pipefail
DUR=${1:-10}
CONNS=${2:-64}
THREADS=${3:-2}
ROUNDS=${4:-1}
PORT=28080 QUEUE=10000 BUILD="--bin teflon-server --example bare_warp"
# shellcheck source=scripts/bench-server.sh
source "$(dirname "$0")/bench-server.sh"

rss() { awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$1/status; }
hwm() { awk '/VmHWM/{printf "%.1f", $2/1024}' /proc/$1/status; }
run() { # name port pid
  wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency -s scripts/load.lua "http://127.0.0.1:$2/v1/alerts" > "$WORK/$1.txt"
  local r; r=$(grep RESULT "$WORK/$1.txt")
  echo "$1 $r rss_mib=$(rss $3) peak_rss_mib=$(hwm $3)"
}

RUST_LOG=warn "$BIN/teflon-server" --config "$WORK/teflon.yaml" 2>"$WORK/server.log" & TEFLON=$!
"$BIN/examples/bare_warp" 127.0.0.1:28081 & BARE=$!
sleep 1
echo "# wrk -t$THREADS -c$CONNS -d${DUR}s --latency -s scripts/load.lua, alert: $(wc -c < teflon-server/tests/fixtures/falco/01-terminal-shell-k8s-pod-syscall.json) bytes, $ROUNDS round(s)"
ACCEPTED=0; REFUSED=0; RATIOS=()
for ((i = 1; i <= ROUNDS; i++)); do
  B=$(run bare-warp 28081 $BARE); echo "round $i $B"
  T=$(run teflon 28080 $TEFLON); echo "round $i $T"
  REQ=$(echo "$T" | sed -n 's/.*requests=\([0-9]*\).*/\1/p'); NON2XX=$(echo "$T" | sed -n 's/.*errors_status=\([0-9]*\).*/\1/p')
  ACCEPTED=$((ACCEPTED + REQ - NON2XX)); REFUSED=$((REFUSED + NON2XX))
  BR=$(echo "$B" | sed -n 's/.*req_per_sec=\([0-9]*\).*/\1/p'); TR=$(echo "$T" | sed -n 's/.*req_per_sec=\([0-9]*\).*/\1/p')
  RATIOS+=("$(awk -v t="$TR" -v b="$BR" 'BEGIN{printf "%.3f", t/b}')")
done
kill -TERM $TEFLON; wait $TEFLON || true
echo "teflon: $ACCEPTED accepted (202), $REFUSED refused; audit lines after SIGTERM: $(wc -l < "$WORK/audit.jsonl")"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{r[NR]=$1} END{m = NR % 2 ? r[(NR+1)/2] : (r[NR/2]+r[NR/2+1])/2; printf "ratio teflon/bare: median %.2f (min %.2f, max %.2f, %d rounds)\n", m, r[1], r[NR], NR}'
