#!/usr/bin/env bash
# Replication against `skopeo sync`: the same 50 images (about 1 GiB, 40 % of
# it in base layers shared by groups of images) copied from Wharf to a fresh
# Debian docker-registry, once by `skopeo sync` and once by a Wharf push-based
# replication policy, back to back in each round. Also checks that Wharf sent
# no layer twice (bytes it copied = the set's unique bytes). See
# docs/benchmarks.md. Not part of scripts/test.
#
# Environment:
#   DATABASE_URL      PostgreSQL for Wharf (a fresh database is created on it);
#                     default: 127.0.0.1:5432 if it answers, else a private cluster
#   BENCH_DIR         where the registries' data go (default: a temp dir; ~4 GiB)
#   BENCH_ROUNDS      rounds, median reported (default 2)
#   BENCH_IMAGES      images in the set (default 50)
#   BENCH_SKIP_BUILD=1  use the existing target/release/wharf
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ROUNDS=${BENCH_ROUNDS:-2}
IMAGES=${BENCH_IMAGES:-50}
CLIENT=(python3 "$ROOT/bench/registry_client.py")
ADMIN_PASSWORD=Bench-admin-1

WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/wharf-bench-repl.XXXXXX")
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

for tool in docker-registry skopeo curl python3 psql; do
    command -v "$tool" >/dev/null || { log "$tool is required (.ci/run installs it)"; exit 1; }
done

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    log "cargo build --release"
    cargo build --release -p wharf-gateway --bin wharf
fi
WHARF_BIN="$ROOT/target/release/wharf"

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.2f}")' "$@"; }

wait_ready() {
    local url=$1 name=$2
    for _ in $(seq 600); do
        curl -sS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    log "$name not ready; log:"
    tail -n 40 "$WORK/$name.log" >&2
    exit 1
}

# A fresh, empty docker-registry; prints its port. Its PID goes to PIDS.
start_reference() {
    local name=$1 port
    port=$(free_port)
    cat >"$WORK/$name.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/$name
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
    docker-registry serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    wait_ready "http://127.0.0.1:$port/v2/" "$name"
    echo "$port"
}

# --- Wharf with the image set ---------------------------------------------------
start_postgres
BENCH_DB="wharf_bench_repl_$(date +%s)_$$"
psql "$DATABASE_URL" -qc "CREATE DATABASE $BENCH_DB" >/dev/null
WHARF_DB_URL=$(python3 - "$DATABASE_URL" "$BENCH_DB" <<'EOF'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(u._replace(path="/" + sys.argv[2])))
EOF
)
WHARF_PORT=$(free_port)
WHARF_URL="http://127.0.0.1:$WHARF_PORT"
env -u WHARF_DATABASE_URL DATABASE_URL="$WHARF_DB_URL" WHARF_LOG_LEVEL=warn \
    WHARF_ADMIN_PASSWORD="$ADMIN_PASSWORD" WHARF_AUTH_TOKEN_LIFETIME_SECS=86400 \
    "$WHARF_BIN" serve --listen "127.0.0.1:$WHARF_PORT" --data-dir "$WORK/wharf" >"$WORK/wharf.log" 2>&1 &
PIDS+=($!)
wait_ready "$WHARF_URL/api/v2.0/ping" wharf

api() {
    local method=$1 path=$2
    shift 2
    curl -fsS -u "admin:$ADMIN_PASSWORD" -X "$method" -H 'Content-Type: application/json' \
        "$WHARF_URL/api/v2.0$path" "$@"
}
# The id at the end of the Location header of a 201.
api_create() {
    api POST "$1" -d "$2" -D - -o /dev/null | tr -d '\r' |
        awk 'tolower($1) == "location:" { n = split($2, p, "/"); print p[n] }'
}

api POST /projects -d '{"project_name": "bench", "metadata": {"public": "false"}}' >/dev/null
scopes=()
for i in $(seq 0 $((IMAGES - 1))); do
    scopes+=(--data-urlencode "scope=repository:bench/img$(printf %02d "$i"):pull,push")
done
TOKEN=$(curl -fsS -G -u "admin:$ADMIN_PASSWORD" "$WHARF_URL/service/token" \
    --data-urlencode service=wharf-registry "${scopes[@]}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
log "pushing $IMAGES images into Wharf"
SEED=$(REGISTRY_AUTHORIZATION="Bearer $TOKEN" "${CLIENT[@]}" seed-images "$WHARF_URL" bench/img --images "$IMAGES")
read -r LOGICAL UNIQUE < <(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["logical_bytes"], d["unique_bytes"])' "$SEED")
log "set: $(python3 -c "print(f'{$LOGICAL / 2**20:.0f} MiB logical, {$UNIQUE / 2**20:.0f} MiB unique')")"

# skopeo sync's source list: every repository of the set, tag v1.
{
    echo "127.0.0.1:$WHARF_PORT:"
    echo "  tls-verify: false"
    echo "  credentials: {username: admin, password: $ADMIN_PASSWORD}"
    echo "  images:"
    for i in $(seq 0 $((IMAGES - 1))); do echo "    bench/img$(printf %02d "$i"): [v1]"; done
} >"$WORK/sync.yaml"

run_skopeo() {
    local port
    port=$(start_reference "skopeo-dest-$1")
    sync
    local t0 t1
    t0=$(now)
    skopeo sync --src yaml --dest docker --dest-tls-verify=false --retry-times 0 \
        "$WORK/sync.yaml" "127.0.0.1:$port/mirror" >"$WORK/skopeo-$1.log" 2>&1 ||
        { tail -n 20 "$WORK/skopeo-$1.log" >&2; exit 1; }
    t1=$(now)
    elapsed "$t0" "$t1"
}

run_wharf() {
    local port registry policy execution status t0 t1
    port=$(start_reference "wharf-dest-$1")
    registry=$(api_create /registries "{\"name\": \"dest-$1\", \"type\": \"docker-registry\", \
        \"url\": \"http://127.0.0.1:$port\", \"insecure\": true}")
    policy=$(api_create /replication/policies "{\"name\": \"bench-$1\", \"enabled\": true, \
        \"override\": true, \"dest_registry\": {\"id\": $registry}, \"dest_namespace\": \"mirror\", \
        \"dest_namespace_replace_count\": 0, \"filters\": [{\"type\": \"name\", \"value\": \"bench/**\"}], \
        \"trigger\": {\"type\": \"manual\"}}")
    sync
    t0=$(now)
    execution=$(api_create /replication/executions "{\"policy_id\": $policy}")
    while :; do
        status=$(api GET "/replication/executions/$execution" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')
        case $status in
        Succeed) break ;;
        Failed | Stopped)
            log "execution $execution: $status"
            api GET "/replication/executions/$execution/tasks" >&2
            exit 1
            ;;
        esac
        sleep 0.2
    done
    t1=$(now)
    COPIED=$(psql "$WHARF_DB_URL" -tAc "SELECT coalesce(sum(bytes_copied), 0) FROM replication_tasks WHERE execution_id = $execution")
    echo "$(elapsed "$t0" "$t1") $COPIED"
}

declare -a SKOPEO_S WHARF_S
COPIED_ALL=()
for round in $(seq "$ROUNDS"); do
    order=(skopeo wharf)
    ((round % 2 == 0)) && order=(wharf skopeo)
    for who in "${order[@]}"; do
        log "round $round/$ROUNDS: $who"
        if [[ $who == skopeo ]]; then
            SKOPEO_S+=("$(run_skopeo "$round")")
        else
            read -r secs copied < <(run_wharf "$round")
            WHARF_S+=("$secs")
            COPIED_ALL+=("$copied")
        fi
    done
done

SKOPEO_MED=$(median "${SKOPEO_S[@]}")
WHARF_MED=$(median "${WHARF_S[@]}")
RATIO=$(python3 -c "print(f'{$WHARF_MED / $SKOPEO_MED:.2f}')")
echo
echo "Replication of $IMAGES images ($(python3 -c "print(f'{$LOGICAL / 2**20:.0f}')") MiB, $(python3 -c "print(f'{$UNIQUE / 2**20:.0f}')") MiB unique) to a fresh docker-registry, $ROUNDS rounds"
echo "  skopeo sync:        ${SKOPEO_S[*]} s (median $SKOPEO_MED s)"
echo "  Wharf replication:  ${WHARF_S[*]} s (median $WHARF_MED s)"
echo "  Wharf / skopeo:     $RATIO (target <= 1.5)"
for copied in "${COPIED_ALL[@]}"; do
    # Layers are everything but the small configs and manifests, which the
    # task counter does not include; a layer sent twice adds >= 8 MiB.
    echo "  Wharf bytes copied: $copied of $UNIQUE unique ($(python3 -c "print('no layer sent twice' if $copied <= $UNIQUE else 'SOME LAYER SENT TWICE')"))"
done
