#!/usr/bin/env bash
# Hostile-network run (not in CI): teflon-server (token auth, sim cluster, audit log, default
# connection limits) under phases of hostile traffic from teflon-server/examples/hostile.rs:
# 20,000 silent connections, 4,000 trickled request heads, 4,000 idle unauthenticated
# keep-alives, 8 authenticated senders trickling bodies, 200 HTTP/2 connections pushing DATA,
# alerts with random sources, then random namespaces and pods, 12 concurrent /metrics
# scrapers, and the statuses of misfits (a 10,001-alert body, misrouted alerts). Throughout,
# one probe sends an authenticated alert every 10 ms on a kept-alive connection (as Falco's
# libcurl does) and another every 100 ms on a fresh connection; each phase prints their
# latencies and the server's peak RSS, file descriptors and CPU. The probes run in a process of
# their own; the attacker runs at nice 19, so that on a machine it shares with the server it
# stands for an attacker elsewhere (NICE=0 to run it at the server's priority).
# Usage: scripts/hostile.sh [PHASE_SECS] [PHASES]    (from the repository root)
#   HTTP2=1 scripts/hostile.sh …   runs the server with `http.http2: true`
set -euo pipefail
SECS=${1:-15}
PHASES=${2:-}
PORT=28100
H2=false; [ -n "${HTTP2:-}" ] && H2=true
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p teflon-server --bin teflon-server --example hostile
BIN=$CARGO_TARGET_DIR/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
TOKEN=hostile-token
printf '%s' "$TOKEN" > "$WORK/token"
cat > "$WORK/policies.yaml" <<'YAML'
version: 1
policies:
  - name: reap-shells
    match: {rules: ["Terminal shell in container"], priority: ">=Notice"}
    action: {type: delete, grace_period_secs: 0}
    guard: {min_available: "50%"}
  - name: log-the-rest
    match: {}
    action: {type: log}
YAML
cat > "$WORK/teflon.yaml" <<YAML
listen: 127.0.0.1:$PORT
policies: policies.yaml
cluster: {type: sim, recovery_secs: 15}
auth: {token_file: token}
audit_log: audit.jsonl
# Rotated, but nothing deleted: the run checks that every 202 has its record.
audit_max_files: 1000
http: {http2: $H2}
YAML
RUST_LOG=warn "$BIN/teflon-server" --config "$WORK/teflon.yaml" 2>"$WORK/server.log" & SERVER=$!
sleep 1
echo "# teflon-server pid $SERVER, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), fd limit $(ulimit -n), http2 $H2, attacker at nice ${NICE:-19}"
"$BIN/examples/hostile" probe "127.0.0.1:$PORT" "$TOKEN" "$WORK/phases" > "$WORK/probe.txt" & PROBE=$!
sleep 1
nice -n "${NICE:-19}" "$BIN/examples/hostile" attack "127.0.0.1:$PORT" "$TOKEN" "$SERVER" "$WORK/phases" "$SECS" ${PHASES:+"$PHASES"}
kill -INT $PROBE; wait $PROBE || true
cat "$WORK/probe.txt"
ACCEPTED=$(sed -n 's/^probe alerts accepted (202): //p' "$WORK/probe.txt")
kill -TERM $SERVER; wait $SERVER || true
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
AUDIT=("$WORK"/audit.jsonl "$WORK"/audit.jsonl.[0-9]*)
[ -e "${AUDIT[-1]}" ] || unset 'AUDIT[-1]'
echo "audit files: ${#AUDIT[@]}, lines after SIGTERM: $(cat "${AUDIT[@]}" | wc -l) (the probes' 202s: $ACCEPTED, plus the attack's accepted alerts)"
echo "audit lines that are not valid JSON: $(cat "${AUDIT[@]}" | python3 -c 'import json,sys
bad=0
for l in sys.stdin:
    try: json.loads(l)
    except Exception: bad+=1
print(bad)' 2>/dev/null || echo '?')"
[ -n "${KEEP:-}" ] && cp -r "$WORK" "$KEEP" && echo "kept in $KEEP"
grep -c "ERROR" "$WORK/server.log" | sed 's/^/server log ERROR lines: /' || true
