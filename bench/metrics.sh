#!/usr/bin/env bash
# What Prometheus metrics cost: manifest GET throughput of one release `wharf`
# with metrics on and with metrics off (WHARF_METRICS_ENABLED=false), same
# database and data directory, alternating, and Debian's docker-registry in
# the same run as the reference. Prints requests/s medians and ratios; see
# docs/monitoring.md. Not part of scripts/test.
#
# Environment: DATABASE_URL (as bench/run.sh), BENCH_ROUNDS (default 5),
# BENCH_SKIP_BUILD=1 to use the existing target/release/wharf.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROUNDS=${BENCH_ROUNDS:-5}
ACCEPT="application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json"
CLIENT=(python3 "$ROOT/bench/registry_client.py")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wharf-bench-metrics.XXXXXX")
PIDS=()
BENCH_DB=""

log() { printf 'bench: %s\n' "$*" >&2; }
# shellcheck source=scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"

cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n "$BENCH_DB" ]]; then
        psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    stop_postgres
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in docker-registry wrk curl python3 psql; do
    command -v "$tool" >/dev/null || { log "$tool is required (.ci/run installs it)"; exit 1; }
done
if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    log "cargo build --release"
    cargo build --release -p wharf-gateway --bin wharf
fi

start_postgres
BENCH_DB="wharf_bench_metrics_$(date +%s)_$$"
psql "$DATABASE_URL" -qc "CREATE DATABASE $BENCH_DB" >/dev/null
DB_URL=$(python3 - "$DATABASE_URL" "$BENCH_DB" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(u._replace(path="/" + sys.argv[2])))
PY
)

wait_ready() {
    for _ in $(seq 600); do
        curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    log "not ready: $1"
    exit 1
}

PORT=$(free_port)
WHARF_PID=""
start_wharf() {
    env -u WHARF_DATABASE_URL DATABASE_URL="$DB_URL" WHARF_LOG_LEVEL=warn \
        WHARF_ADMIN_PASSWORD=Bench-admin-1 WHARF_AUTH_TOKEN_LIFETIME_SECS=86400 \
        WHARF_METRICS_ENABLED="$1" \
        "$ROOT/target/release/wharf" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/wharf" \
        >>"$WORK/wharf.log" 2>&1 &
    WHARF_PID=$!
    PIDS+=("$WHARF_PID")
    wait_ready "http://127.0.0.1:$PORT/api/v2.0/ping"
}
stop_wharf() { kill "$WHARF_PID"; wait "$WHARF_PID" 2>/dev/null || true; }

REF_PORT=$(free_port)
cat >"$WORK/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/reference}}
http: {addr: 127.0.0.1:$REF_PORT}
YML
docker-registry serve "$WORK/registry.yml" >"$WORK/reference.log" 2>&1 &
PIDS+=($!)
wait_ready "http://127.0.0.1:$REF_PORT/v2/"

REPO=library/bench
start_wharf true
TOKEN=$(curl -fsS -u "admin:Bench-admin-1" \
    "http://127.0.0.1:$PORT/service/token?service=wharf-registry&scope=repository:$REPO:pull,push" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
export REGISTRY_AUTHORIZATION="Bearer $TOKEN"
"${CLIENT[@]}" small-image "http://127.0.0.1:$PORT" "$REPO" small
"${CLIENT[@]}" small-image "http://127.0.0.1:$REF_PORT" "$REPO" small
stop_wharf

rps() {
    wrk -c32 -t2 -d10s -H "Accept: $ACCEPT" -H "Authorization: $REGISTRY_AUTHORIZATION" \
        "$1/v2/$REPO/manifests/small" | awk '/^Requests\/sec:/ { print $2 }'
}
declare -A S
for round in $(seq "$ROUNDS"); do
    order=(true false)
    ((round % 2 == 0)) && order=(false true)
    for enabled in "${order[@]}"; do
        start_wharf "$enabled"
        # Warm the route's label set and the connection pool first.
        rps "http://127.0.0.1:$PORT" >/dev/null
        r=$(rps "http://127.0.0.1:$PORT")
        log "round $round: metrics $enabled: $r req/s"
        S[$enabled]="${S[$enabled]:-} $r"
        stop_wharf
    done
    r=$(rps "http://127.0.0.1:$REF_PORT")
    log "round $round: reference: $r req/s"
    S[reference]="${S[reference]:-} $r"
done

python3 - "${S[true]}" "${S[false]}" "${S[reference]}" <<'PY'
import statistics, sys
on, off, ref = (statistics.median(float(x) for x in a.split()) for a in sys.argv[1:])
print(f"manifest GET, wrk -c32 -t2 -d10s, median of {len(sys.argv[1].split())} rounds")
print(f"  metrics on : {on:9.0f} req/s  ({on / ref:.2f}x docker-registry)")
print(f"  metrics off: {off:9.0f} req/s  ({off / ref:.2f}x docker-registry)")
print(f"  reference  : {ref:9.0f} req/s")
print(f"  metrics cost: {100 * (1 - on / off):.1f}% of throughput")
PY
