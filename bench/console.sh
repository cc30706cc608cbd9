#!/usr/bin/env bash
# Console render times: every main page of the web console for a project with
# 1,000 repositories and 10,000 artifacts, p50 and p99 over one keep-alive
# connection (wrk -c1, so the figure is one request's full server time, not
# queueing). Appends a table to docs/benchmarks.md. Not part of scripts/test.
#
# The artifacts are written straight into PostgreSQL (real image manifests,
# each with its digest and tag, as a push would leave them), because pushing
# 10,000 of them through /v2 would take most of an hour and measure pushes.
#
# Environment:
#   DATABASE_URL   PostgreSQL server (a fresh database is created and dropped);
#                  default postgres://postgres@127.0.0.1:5432/postgres
#   WHARF_BIN      the binary to measure (default target/debug/wharf; a
#                  release build is faster still)
#   BENCH_SECONDS  seconds per page (default 10)
#   BENCH_NO_DOCS=1  print the table only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

bin=${WHARF_BIN:-$root/target/debug/wharf}
admin_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
seconds=${BENCH_SECONDS:-10}
db="wharf_console_bench_$$"
work=$(mktemp -d)
pid=""
log() { printf 'bench/console: %s\n' "$*" >&2; }
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

psql -q "$admin_url" -c "CREATE DATABASE $db" >/dev/null
db_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$admin_url" "$db")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
password='Console-bench-1'
env -u WHARF_CONFIG DATABASE_URL="$db_url" WHARF_LISTEN="127.0.0.1:$port" \
    WHARF_ADMIN_PASSWORD="$password" WHARF_LOG_LEVEL=warn \
    "$bin" serve --data-dir "$work/data" >"$work/wharf.log" 2>&1 &
pid=$!
for _ in $(seq 1 150); do
    curl -sf "$base/api/v2.0/ping" >/dev/null && break
    sleep 0.2
done

curl -sf -u "admin:$password" -H 'Content-Type: application/json' \
    -d '{"project_name": "bench", "metadata": {"public": "false"}}' "$base/api/v2.0/projects"
log "seeding 1,000 repositories with 10 artifacts each"
psql -q "$db_url" -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO repositories (name, project, created_at, updated_at)
SELECT format('bench/app-%s', lpad(r::text, 4, '0')), 'bench',
       now() - make_interval(hours => r), now() - make_interval(hours => r)
  FROM generate_series(1, 1000) AS r;
-- One image manifest per (repository, k): its own config and layer digests.
CREATE TEMP TABLE seeded AS
SELECT repo.id AS repository_id, k,
       convert_to(json_build_object(
         'schemaVersion', 2,
         'mediaType', 'application/vnd.oci.image.manifest.v1+json',
         'config', json_build_object('mediaType', 'application/vnd.oci.image.config.v1+json',
                     'digest', 'sha256:' || encode(sha256(convert_to(repo.name || k || 'c', 'UTF8')), 'hex'),
                     'size', 1500),
         'layers', json_build_array(json_build_object(
                     'mediaType', 'application/vnd.oci.image.layer.v1.tar+gzip',
                     'digest', 'sha256:' || encode(sha256(convert_to(repo.name || k || 'l', 'UTF8')), 'hex'),
                     'size', 3000000 + k * 1000))
       )::text, 'UTF8') AS content
  FROM repositories repo, generate_series(1, 10) AS k
 WHERE repo.project = 'bench';
ALTER TABLE seeded ADD COLUMN digest TEXT;
UPDATE seeded SET digest = 'sha256:' || encode(sha256(content), 'hex');
INSERT INTO blobs (digest, size) SELECT digest, length(content) FROM seeded;
INSERT INTO manifests (repository_id, digest, media_type, size, content, created_at)
SELECT repository_id, digest, 'application/vnd.oci.image.manifest.v1+json', length(content), content,
       now() - make_interval(mins => k)
  FROM seeded;
INSERT INTO tags (repository_id, name, manifest_id)
SELECT m.repository_id, 'v' || s.k, m.id
  FROM seeded s JOIN manifests m ON m.repository_id = s.repository_id AND m.digest = s.digest;
ANALYZE;
SQL
artifacts=$(psql -Atq "$db_url" -c "SELECT count(*) FROM manifests")
log "$artifacts artifacts"

# A console session, as a browser gets it.
sid=$(curl -s -o /dev/null -D - -d "username=admin&password=$password" "$base/login" |
    sed -n 's/^set-cookie: sid=\([^;]*\).*/\1/Ip' | head -1)
[ -n "$sid" ] || { log "sign-in failed"; exit 1; }
digest=$(psql -Atq "$db_url" -c "SELECT m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.name = 'bench/app-0500' LIMIT 1")

pages=(
    "Projects list|/projects"
    "Repositories (page 1 of 67)|/projects/bench/repositories"
    "Repositories, filtered|/projects/bench/repositories?q=app-05"
    "Repositories (page 60)|/projects/bench/repositories?page=60"
    "Repository: 10 artifacts|/projects/bench/repositories/app-0500"
    "Artifact|/projects/bench/repositories/app-0500/-/artifacts/$digest"
    "Members|/projects/bench/members"
    "Robot accounts|/projects/bench/robots"
    "Project logs|/projects/bench/logs"
    "Admin: users|/admin/users"
    "Admin: audit log|/admin/logs"
)
table="| Page | p50 | p99 | requests |
|---|---:|---:|---:|"
for entry in "${pages[@]}"; do
    name=${entry%%|*}
    path=${entry#*|}
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: sid=$sid" "$base$path")
    [ "$status" = 200 ] || { log "$path answered $status"; exit 1; }
    out=$(wrk -t1 -c1 -d"${seconds}s" --latency -H "Cookie: sid=$sid" "$base$path")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    count=$(awk '/requests in/ {print $1}' <<<"$out")
    log "$name: p50 $p50, p99 $p99 ($count requests)"
    table+="
| $name | $p50 | $p99 | $count |"
done

build=$(case "$bin" in */release/*) echo release ;; *) echo "debug (unoptimised)" ;; esac)
report="
## Web console render times

\`bench/console.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores, a $build build of
\`wharf\`, PostgreSQL on the same machine. One project with 1,000 repositories
and $artifacts artifacts (each tagged), signed in as the administrator; each page
requested over one keep-alive connection for ${seconds} s (\`wrk -t1 -c1\`), so a
latency is one request's whole server time: session lookup, the service
queries, rendering. Target: under 50 ms at p99.

$table
"
printf '%s\n' "$report"
if [ "${BENCH_NO_DOCS:-}" != 1 ]; then
    printf '%s' "$report" >>docs/benchmarks.md
    log "appended to docs/benchmarks.md"
fi
