#!/usr/bin/env bash
# What durability costs (not in CI): teflon-server with its ingest journal and the same server
# without it (examples/no_journal.rs), driven by wrk with the same Falco alert as
# scripts/load.sh, in ROUNDS alternating pairs (without, with). Reports requests/s, latency,
# server CPU per request (/proc/PID/stat), and the median with/without ratio.
# STATE_DIR puts the journal elsewhere (e.g. /dev/shm: the same work without the device flush).
# Usage: scripts/journal-cost.sh [SECONDS] [CONNECTIONS] [ROUNDS]     (from the repository root)
set -euo pipefail
DUR=${1:-8}
CONNS=${2:-64}
ROUNDS=${3:-4}
PORT=28080 QUEUE=10000 BUILD="--bin teflon-server --example no_journal"
# shellcheck source=scripts/bench-server.sh
source "$(dirname "$0")/bench-server.sh"

mkdir -p "$WORK/without"
cp "$WORK/token" "$WORK/policies.yaml" "$WORK/without/"
sed "s/127.0.0.1:$PORT/127.0.0.1:$((PORT + 1))/" "$WORK/teflon.yaml" > "$WORK/without/teflon.yaml"
[ -n "${STATE_DIR:-}" ] && echo "state_dir: $STATE_DIR" >> "$WORK/teflon.yaml"

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # clock ticks
run() { # name port pid
  local c0 c1 r req
  c0=$(cpu "$3")
  wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -s scripts/load.lua "http://127.0.0.1:$2/v1/alerts" > "$WORK/$1.txt"
  c1=$(cpu "$3")
  r=$(grep RESULT "$WORK/$1.txt")
  req=$(echo "$r" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')
  echo "$1 $r cpu_us_per_req=$(awk -v c="$((c1 - c0))" -v t="$(getconf CLK_TCK)" -v n="$req" 'BEGIN{printf "%.1f", c / t * 1e6 / n}')"
}

RUST_LOG=warn "$BIN/teflon-server" --config "$WORK/teflon.yaml" 2>"$WORK/with.log" & WITH=$!
RUST_LOG=warn "$BIN/examples/no_journal" --config "$WORK/without/teflon.yaml" 2>"$WORK/without.log" & WITHOUT=$!
sleep 1
echo "# wrk -t2 -c$CONNS -d${DUR}s --latency -s scripts/load.lua, journal in ${STATE_DIR:-the work directory ($(df --output=fstype "$WORK" | tail -1))}, $ROUNDS round(s)"
RATIOS=()
for ((i = 1; i <= ROUNDS; i++)); do
  A=$(run without $((PORT + 1)) $WITHOUT); echo "round $i $A"
  B=$(run with $PORT $WITH); echo "round $i $B"
  RATIOS+=("$(awk -v a="$(echo "$A" | sed -n 's/.*req_per_sec=\([0-9]*\).*/\1/p')" -v b="$(echo "$B" | sed -n 's/.*req_per_sec=\([0-9]*\).*/\1/p')" 'BEGIN{printf "%.3f", b/a}')")
done
kill -TERM $WITH; wait $WITH || true
ls -la "${STATE_DIR:-$WORK}/journal" | head -5
echo "with the journal: audit lines after SIGTERM: $(wc -l < "$WORK/audit.jsonl"), journal files left: $(find "${STATE_DIR:-$WORK}/journal" -type f | wc -l)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{r[NR]=$1} END{m = NR % 2 ? r[(NR+1)/2] : (r[NR/2]+r[NR/2+1])/2; printf "ratio with/without journal: median %.2f (min %.2f, max %.2f, %d rounds)\n", m, r[1], r[NR], NR}'
