#!/usr/bin/env bash
# Garbage collection at scale: a registry of 10 000 artifacts and 50 000
# blobs, half of them unreferenced, collected by `wharf gc` on filesystem
# storage; reports wall time and peak RSS (see docs/benchmarks.md, section
# "Garbage collection"). Not part of scripts/test.
#
# The registry is written directly (rows with COPY, blob files with Python)
# rather than pushed, so preparing it takes seconds:
#   - 100 repositories; artifact i is a tagged manifest in repository i % 100
#     referencing its own config and one of 5 000 shared layers;
#   - referenced blobs: 10 000 manifests + 10 000 configs + 5 000 layers;
#   - unreferenced blobs: 20 000 still linked to a repository (left by
#     deleted artifacts) and 5 000 linked nowhere;
#   - 1 000 orphaned files with no row at all (a crash's leftovers);
#   - everything recorded a day ago, so the 2 h grace period does not apply.
# Blobs are 512 B to 2 KiB of random bytes named by their real SHA-256.
#
# Environment:
#   DATABASE_URL          PostgreSQL server (a fresh database is created on it);
#                         default: 127.0.0.1:5432 if it answers, else a private cluster
#   BENCH_DIR             where the data goes (default: a temp dir; ~250 MiB)
#   BENCH_ARTIFACTS       artifacts (default 10000); blobs scale with it (x5)
#   BENCH_SKIP_BUILD=1    use the existing target/release/wharf
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ARTIFACTS=${BENCH_ARTIFACTS:-10000}

WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/wharf-bench-gc.XXXXXX")
BENCH_DB=""
log() { printf 'bench-gc: %s\n' "$*" >&2; }
# shellcheck source=scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"

cleanup() {
    local status=$?
    if [[ -n "$BENCH_DB" ]]; then
        psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    stop_postgres
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in python3 psql /usr/bin/time; do
    command -v "$tool" >/dev/null || { log "$tool is required"; exit 1; }
done

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    log "building target/release/wharf"
    cargo build --release -p wharf-gateway --bin wharf >&2
fi
WHARF=$ROOT/target/release/wharf

start_postgres
ADMIN_URL=$DATABASE_URL
BENCH_DB="wharf_bench_gc_$$"
DB_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$ADMIN_URL" "$BENCH_DB")
DATA=$WORK/data
export WHARF_LOG_LEVEL=warn
count() { psql "$DB_URL" -qAtc "$1"; }
files() { find "$DATA/storage/blobs" -type f | wc -l; }

# A fresh database and storage holding the registry described above.
prepare() {
psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null
psql "$ADMIN_URL" -qc "CREATE DATABASE $BENCH_DB" >/dev/null
rm -rf "$DATA"
mkdir -p "$DATA/storage"
DATABASE_URL=$DB_URL "$WHARF" migrate --data-dir "$DATA"
log "writing $((ARTIFACTS * 5)) blobs and $ARTIFACTS artifacts"
started=$(date +%s.%N)
python3 - "$DATA/storage" "$WORK" "$ARTIFACTS" <<'PY'
import csv, hashlib, json, os, sys, time

storage, work, artifacts = sys.argv[1], sys.argv[2], int(sys.argv[3])
repos, shared = 100, artifacts // 2
day_ago = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(time.time() - 86400))
old = time.time() - 86400
rows = {name: open(os.path.join(work, name + ".csv"), "w", newline="")
        for name in ["repositories", "blobs", "links", "manifests", "refs", "tags"]}
out = {name: csv.writer(f) for name, f in rows.items()}
links = set()

def blob(content):
    digest = hashlib.sha256(content).hexdigest()
    shard = os.path.join(storage, "blobs", "sha256", digest[:2])
    os.makedirs(shard, exist_ok=True)
    path = os.path.join(shard, digest)
    with open(path, "wb") as f:
        f.write(content)
    os.utime(path, (old, old))
    return "sha256:" + digest

def record(digest, size):
    out["blobs"].writerow([digest, size, day_ago])

def link(repo, digest):
    if (repo, digest) not in links:
        links.add((repo, digest))
        out["links"].writerow([repo, digest, day_ago])

def random_blob(i):
    return os.urandom(512 + i % 1537)

for r in range(1, repos + 1):
    out["repositories"].writerow([r, f"bench/repo-{r:03}", "bench"])
layers = []
for i in range(shared):
    content = random_blob(i)
    d = blob(content)
    record(d, len(content))
    layers.append((d, len(content)))
for i in range(artifacts):
    repo = i % repos + 1
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": i}).encode()
    config_digest = blob(config)
    record(config_digest, len(config))
    layer, layer_size = layers[i % shared]
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer, "size": layer_size}],
    }).encode()
    manifest_digest = blob(manifest)
    record(manifest_digest, len(manifest))
    for d in (config_digest, layer, manifest_digest):
        link(repo, d)
    out["manifests"].writerow([i + 1, repo, manifest_digest,
                               "application/vnd.oci.image.manifest.v1+json",
                               len(manifest), config_digest, "\\x" + manifest.hex(), day_ago])
    out["refs"].writerow([i + 1, config_digest, "blob"])
    out["refs"].writerow([i + 1, layer, "blob"])
    out["tags"].writerow([repo, f"v{i}", i + 1])
# Unreferenced: left by deleted artifacts (still linked), and linked nowhere.
garbage = artifacts * 5 - (artifacts * 2 + shared)
for i in range(garbage):
    content = random_blob(i + 7)
    d = blob(content)
    record(d, len(content))
    if i < garbage * 4 // 5:
        link(i % repos + 1, d)
# Orphans: bytes with no row.
for i in range(artifacts // 10):
    blob(random_blob(i + 11))
for f in rows.values():
    f.close()
PY
psql "$DB_URL" -q -o /dev/null -v ON_ERROR_STOP=1 <<SQL
\copy repositories (id, name, project) FROM '$WORK/repositories.csv' WITH (FORMAT csv)
\copy blobs (digest, size, created_at) FROM '$WORK/blobs.csv' WITH (FORMAT csv)
\copy repository_blobs (repository_id, digest, created_at) FROM '$WORK/links.csv' WITH (FORMAT csv)
\copy manifests (id, repository_id, digest, media_type, size, config_digest, content, created_at) FROM '$WORK/manifests.csv' WITH (FORMAT csv)
\copy manifest_references (manifest_id, digest, kind) FROM '$WORK/refs.csv' WITH (FORMAT csv)
\copy tags (repository_id, name, manifest_id) FROM '$WORK/tags.csv' WITH (FORMAT csv)
SELECT setval('repositories_id_seq', (SELECT max(id) FROM repositories));
SELECT setval('manifests_id_seq', (SELECT max(id) FROM manifests));
ANALYZE;
SQL
log "prepared in $(python3 -c "import time; print(f'{time.time() - $started:.1f}')") s"
log "before: $(count 'SELECT count(*) FROM manifests') artifacts, $(count 'SELECT count(*) FROM blobs') blobs, $(files) files"

}

RESULTS=$WORK/results.md
{
    echo "| run | wall time (s) | peak RSS (MiB) | blobs deleted | freed (MiB) | orphans removed |"
    echo "|---|---:|---:|---:|---:|---:|"
} >"$RESULTS"

# One `wharf gc`: its wall time and peak RSS from /usr/bin/time, its report.
measure() {
    local name=$1
    shift
    sync
    DATABASE_URL=$DB_URL /usr/bin/time -v -o "$WORK/time.txt" \
        "$WHARF" gc --data-dir "$DATA" --json "$@" >"$WORK/report.json" 2>"$WORK/gc.log" ||
        { cat "$WORK/gc.log" >&2; exit 1; }
    python3 - "$name" "$WORK/time.txt" "$WORK/report.json" >>"$RESULTS" <<'PY'
import json, re, sys
name, timing, report = sys.argv[1], open(sys.argv[2]).read(), json.load(open(sys.argv[3]))
wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", timing)
seconds = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing).group(1)) / 1024
print(f"| {name} | {seconds:.2f} | {rss:.1f} | {report['blobs_deleted']} | "
      f"{report['bytes_freed'] / 2**20:.1f} | {report['orphans_deleted']} |")
PY
    tail -n1 "$RESULTS" >&2
}

prepare
measure "dry run" --dry-run
measure "collection, 1 worker"
after_blobs=$(count 'SELECT count(*) FROM blobs')
after_files=$(files)
log "after: $(count 'SELECT count(*) FROM manifests') artifacts, $after_blobs blobs, $after_files files"
expected=$((ARTIFACTS * 5 / 2))
[[ "$after_blobs" -eq "$expected" && "$after_files" -eq "$expected" ]] ||
    { log "expected $expected blobs and files to remain"; exit 1; }
measure "second collection (nothing to do)" --workers 5
prepare
measure "collection, 5 workers" --workers 5
[[ "$(count 'SELECT count(*) FROM blobs')" -eq "$expected" && "$(files)" -eq "$expected" ]] ||
    { log "expected $expected blobs and files to remain"; exit 1; }

echo
cat "$RESULTS"
cp "$RESULTS" "$ROOT/target/bench-gc-results.md"
