# Shared by scripts/test and bench/run.sh (sourced, not run). Expects $WORK (a
# private temp dir, removed by the caller) and a `log` function.
#
# start_postgres exports DATABASE_URL: the caller's own if set, else the server
# on 127.0.0.1:5432 if it answers as user postgres, else a throwaway cluster
# under $WORK (stop it with stop_postgres). WHARF_TEST_PRIVATE_PG=1 forces the
# throwaway cluster, as on a fresh machine.

PG_DATA=""
PG_CTL=""
PG_AS=()

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait until a TCP port accepts connections (at most ~20 s).
wait_port() {
    local port=$1 name=$2
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    log "$name did not start on port $port; its log:"
    cat "$WORK/$name.log" >&2 || true
    return 1
}

find_pg_bin() {
    local name=$1
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return
    fi
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [[ -n "$dir" && -x "$dir/$name" ]] && echo "$dir/$name"
}

start_postgres() {
    if [[ -n "${DATABASE_URL:-}" ]]; then
        log "PostgreSQL: using DATABASE_URL"
        return
    fi
    local url="postgres://postgres@127.0.0.1:5432/postgres"
    # WHARF_TEST_PRIVATE_PG=1 forces the throwaway cluster (what a fresh machine gets).
    if [[ -z "${WHARF_TEST_PRIVATE_PG:-}" ]] && command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432 -U postgres -t 2 &&
        { ! command -v psql >/dev/null 2>&1 || psql "$url" -qAtc 'select 1' >/dev/null 2>&1; }; then
        log "PostgreSQL: using the server on 127.0.0.1:5432"
        export DATABASE_URL="$url"
        return
    fi
    local initdb
    initdb=$(find_pg_bin initdb) || true
    PG_CTL=$(find_pg_bin pg_ctl) || true
    if [[ -z "$initdb" || -z "$PG_CTL" ]]; then
        log "no PostgreSQL: set DATABASE_URL, run a server on 127.0.0.1:5432, or install postgresql"
        exit 1
    fi
    local dir="$WORK/pg" port
    port=$(free_port)
    mkdir -p "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        # initdb refuses to run as root.
        local user=postgres
        id -u postgres >/dev/null 2>&1 || user=nobody
        chown "$user" "$dir"
        chmod 755 "$WORK"
        PG_AS=(runuser -u "$user" --)
    fi
    log "PostgreSQL: starting a private cluster on port $port"
    "${PG_AS[@]}" "$initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    PG_DATA="$dir/data"
    "${PG_AS[@]}" "$PG_CTL" -D "$PG_DATA" -l "$dir/pg.log" -w -o \
        "-k $dir -c listen_addresses=127.0.0.1 -p $port -c fsync=off -c max_connections=300" \
        start >/dev/null || { cat "$dir/pg.log" >&2; exit 1; }
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}


stop_postgres() {
    if [[ -n "$PG_DATA" ]]; then
        "${PG_AS[@]}" "$PG_CTL" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
        PG_DATA=""
    fi
}
