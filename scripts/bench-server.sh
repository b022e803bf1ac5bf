# Sourced by scripts/load.sh and scripts/overload.sh: the common setup of a teflon-server under
# load. Needs PORT and QUEUE; builds the release binaries named in BUILD, and leaves BIN (their
# directory), WORK (a temporary directory with token, policies.yaml and teflon.yaml; removed on
# exit) and TEFLON_TOKEN.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)"; exit 1; }
# shellcheck disable=SC2086 # BUILD is a list of cargo arguments
cargo build --release -q -p teflon-server $BUILD
BIN=$CARGO_TARGET_DIR/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export TEFLON_TOKEN=bench-token
printf '%s' "$TEFLON_TOKEN" > "$WORK/token"
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
queue_capacity: $QUEUE
max_body_bytes: 8388608
# Rotation off: the runs check that every 202 has its line, and compare with earlier runs.
audit_max_bytes: 0
YAML
