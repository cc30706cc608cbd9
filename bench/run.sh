#!/usr/bin/env bash
# Wharf against Debian's docker-registry (CNCF distribution 2.8), side by side
# on this machine, both with filesystem storage, measured by the same clients.
# See docs/benchmarks.md. Not part of scripts/test.
#
# Environment:
#   DATABASE_URL    PostgreSQL server for Wharf (a fresh database is created on
#                   it); default: 127.0.0.1:5432 if it answers, else a private cluster
#   BENCH_DIR       where blobs and both registries' data go (default: a temp dir;
#                   needs ~8 GiB at the defaults)
#   BENCH_BLOB_MIB  size of the big blob (default 512)
#   BENCH_REPS      rounds of the push/pull measurements, median reported (default 3)
#   BENCH_SKIP_BUILD=1  use the existing target/release/wharf
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

BLOB_MIB=${BENCH_BLOB_MIB:-512}
CHUNK=$((8 << 20))
HEAD_COUNT=2000
ACCEPT="application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json"
CLIENT=(python3 "$ROOT/bench/registry_client.py")

WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/wharf-bench.XXXXXX")
PIDS=()
BENCH_DB=""
RESULTS="$WORK/results.txt"

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

for tool in docker-registry wrk curl openssl python3 psql; do
    command -v "$tool" >/dev/null || { log "$tool is required (.ci/run installs it)"; exit 1; }
done

# --- physical limits ------------------------------------------------------------
mb_per_s() { python3 -c "print(f'{$1 / $2 / 1e6:.1f}')"; }
now() { date +%s.%N; }
elapsed() { python3 -c "print($2 - $1)"; }

log "writing ${BLOB_MIB} MiB test blobs"
head -c "$((BLOB_MIB << 20))" /dev/urandom >"$WORK/blob"
SIZE=$((BLOB_MIB << 20))

t0=$(now)
openssl dgst -sha256 -r "$WORK/blob" >/dev/null
t1=$(now)
SHA_MBS=$(mb_per_s "$SIZE" "$(elapsed "$t0" "$t1")")

t0=$(now)
dd if=/dev/zero of="$WORK/dd-test" bs=8M count=$((BLOB_MIB / 8)) oflag=direct conv=fsync status=none
t1=$(now)
DISK_MBS=$(mb_per_s "$SIZE" "$(elapsed "$t0" "$t1")")
rm -f "$WORK/dd-test"

# --- servers --------------------------------------------------------------------
if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    log "cargo build --release"
    cargo build --release -p wharf-gateway --bin wharf
fi
WHARF_BIN="$ROOT/target/release/wharf"

start_postgres
BENCH_DB="wharf_bench_$(date +%s)_$$"
psql "$DATABASE_URL" -qc "CREATE DATABASE $BENCH_DB" >/dev/null
WHARF_DB_URL=$(python3 - "$DATABASE_URL" "$BENCH_DB" <<'EOF'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(u._replace(path="/" + sys.argv[2])))
EOF
)

WHARF_PORT=$(free_port)
mkdir -p "$WORK/wharf"
BENCH_ADMIN_PASSWORD=Bench-admin-1
# Tokens outlive the whole run, so one token serves every measurement.
env -u WHARF_DATABASE_URL DATABASE_URL="$WHARF_DB_URL" WHARF_LOG_LEVEL=warn \
    WHARF_ADMIN_PASSWORD="$BENCH_ADMIN_PASSWORD" WHARF_AUTH_TOKEN_LIFETIME_SECS=86400 \
    "$WHARF_BIN" serve --listen "127.0.0.1:$WHARF_PORT" --data-dir "$WORK/wharf" >"$WORK/wharf.log" 2>&1 &
WHARF_PID=$!
PIDS+=("$WHARF_PID")

REF_PORT=$(free_port)
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/reference
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REF_PORT
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/reference.log" 2>&1 &
REF_PID=$!
PIDS+=("$REF_PID")

wait_ready() {
    local url=$1 name=$2
    for _ in $(seq 600); do
        curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    log "$name not ready; log:"
    tail -n 40 "$WORK/$name.log" >&2
    exit 1
}
wait_ready "http://127.0.0.1:$WHARF_PORT/api/v2.0/ping" wharf
wait_ready "http://127.0.0.1:$REF_PORT/v2/" reference
sleep 1

rss_mib() { awk -v f="$2" '$1 == f":" { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
declare -A R
R[wharf_rss_idle]=$(rss_mib "$WHARF_PID" VmRSS)
R[reference_rss_idle]=$(rss_mib "$REF_PID" VmRSS)

# --- measurements -----------------------------------------------------------------
REPS=${BENCH_REPS:-3}
REPO=library/bench
WHARF_URL="http://127.0.0.1:$WHARF_PORT"
REF_URL="http://127.0.0.1:$REF_PORT"
# Wharf denies by default: every request carries a bearer token for the bench
# repository, as docker's would. The reference registry runs open and ignores it.
TOKEN=$(curl -fsS -u "admin:$BENCH_ADMIN_PASSWORD" \
    "$WHARF_URL/service/token?service=wharf-registry&scope=repository:$REPO:pull,push" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
export REGISTRY_AUTHORIZATION="Bearer $TOKEN"
AUTH_HEADER="Authorization: $REGISTRY_AUTHORIZATION"

# New content for the big blob (its first 32 bytes), so no push is ever of a
# blob the registry already holds. Prints the new digest.
fresh_blob() {
    head -c 32 /dev/urandom | dd of="$WORK/blob" bs=32 count=1 conv=notrunc status=none
    echo "sha256:$(openssl dgst -sha256 -r "$WORK/blob" | cut -d' ' -f1)"
}

# Flush earlier writes so one push does not pay for the last one's dirty pages.
settle() { sync; sleep 1; }

median() { python3 -c 'import statistics, sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

declare -A SAMPLES HEAD_DIGEST
sample() { SAMPLES[$1]="${SAMPLES[$1]:-} $2"; }

# Each repetition measures both registries back to back, alternating who goes
# first, so drift on the machine hits both alike.
for rep in $(seq "$REPS"); do
    order=(wharf reference)
    ((rep % 2 == 0)) && order=(reference wharf)
    for name in "${order[@]}"; do
        base=$WHARF_URL
        [[ $name == reference ]] && base=$REF_URL
        log "round $rep/$REPS, $name: ${BLOB_MIB} MiB pushes (monolithic, 8 MiB chunks), pull"
        digest=$(fresh_blob)
        settle
        sample "${name}_push_mono" "$("${CLIENT[@]}" push-blob "$base" "$REPO" "$WORK/blob" "$digest")"
        HEAD_DIGEST[$name]=$digest
        secs=$(curl -fsS -o /dev/null --max-time 600 -w '%{time_total}' -H "$AUTH_HEADER" "$base/v2/$REPO/blobs/$digest")
        sample "${name}_pull" "$(mb_per_s "$SIZE" "$secs")"
        digest=$(fresh_blob)
        settle
        sample "${name}_push_chunked" "$("${CLIENT[@]}" push-blob --chunk "$CHUNK" "$base" "$REPO" "$WORK/blob" "$digest")"
        log "round $rep/$REPS, $name: image of 20 x 5 MiB layers"
        settle
        sample "${name}_image" "$("${CLIENT[@]}" push-image "$base" "$REPO" "image20-$rep")"
    done
done
for key in "${!SAMPLES[@]}"; do
    # shellcheck disable=SC2086 # the samples are space-separated numbers
    R[$key]=$(median ${SAMPLES[$key]})
done

for name in wharf reference; do
    base=$WHARF_URL
    [[ $name == reference ]] && base=$REF_URL
    "${CLIENT[@]}" small-image "$base" "$REPO" small
    log "$name: manifest GET, wrk -c32 -t2 -d10s"
    R[${name}_manifest_rps]=$(wrk -c32 -t2 -d10s -H "Accept: $ACCEPT" -H "$AUTH_HEADER" "$base/v2/$REPO/manifests/small" |
        awk '/^Requests\/sec:/ { print $2 }')
    log "$name: $HEAD_COUNT sequential blob HEADs"
    lat=$("${CLIENT[@]}" head-latency --count "$HEAD_COUNT" "$base" "$REPO" "${HEAD_DIGEST[$name]}")
    R[${name}_head_p50]=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['p50'])" "$lat")
    R[${name}_head_p99]=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['p99'])" "$lat")
done

R[wharf_rss_after]=$(rss_mib "$WHARF_PID" VmRSS)
R[reference_rss_after]=$(rss_mib "$REF_PID" VmRSS)
R[wharf_rss_peak]=$(rss_mib "$WHARF_PID" VmHWM)
R[reference_rss_peak]=$(rss_mib "$REF_PID" VmHWM)

# --- report -----------------------------------------------------------------------
{
    echo "push ${BLOB_MIB} MiB blob, monolithic (MB/s, median of $REPS)|higher|push_mono"
    echo "push ${BLOB_MIB} MiB blob, 8 MiB chunks (MB/s, median of $REPS)|higher|push_chunked"
    echo "pull ${BLOB_MIB} MiB blob (MB/s, median of $REPS)|higher|pull"
    echo "push image 20 x 5 MiB, 4 parallel (s, median of $REPS)|lower|image"
    echo "manifest GET, 32 connections (req/s)|higher|manifest_rps"
    echo "blob HEAD p50, sequential (ms)|lower|head_p50"
    echo "blob HEAD p99, sequential (ms)|lower|head_p99"
    echo "RSS idle (MiB)|lower|rss_idle"
    echo "RSS after the run (MiB)|lower|rss_after"
    echo "peak RSS, VmHWM (MiB)|lower|rss_peak"
} >"$WORK/rows"

{
    echo
    echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2/1048576 }' /proc/meminfo), $(uname -r)"
    echo "Physical limits of a push: SHA-256 (openssl, one core) ${SHA_MBS} MB/s; fsync'd write (dd oflag=direct) ${DISK_MBS} MB/s"
    echo
    echo "| measurement | Wharf | docker-registry 2.8 | Wharf / reference | better |"
    echo "|---|---:|---:|---:|---|"
    while IFS='|' read -r label better key; do
        w=${R[wharf_$key]:-} r=${R[reference_$key]:-}
        ratio=$(python3 -c "import sys
try: print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')
except Exception: print('n/a')" "$w" "$r")
        echo "| $label | ${w:-n/a} | ${r:-n/a} | $ratio | $better |"
    done <"$WORK/rows"
} | tee "$RESULTS"
cp "$RESULTS" "$ROOT/target/bench-results.md" 2>/dev/null || true
