#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on loopback for the tests and prints its URL.
# Installs PostgreSQL from Debian's packages if it is missing. Safe to run as root: the server
# runs as the `postgres` user, which PostgreSQL requires.
#
#   export RBAC_TEST_POSTGRES_URL=$(bash .ci/postgres.sh)
#
# Stop it with: bash .ci/postgres.sh stop
set -euo pipefail
PORT="${RBAC_PG_PORT:-54329}"
DATA="${RBAC_PG_DATA:-/tmp/rbac-pg-$PORT}"

find_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    done
    return 1
}

if ! BIN=$(find_bin); then
    echo "installing PostgreSQL from Debian packages" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BIN=$(find_bin)
fi
id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres

as_postgres() {
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

if [ "${1:-start}" = stop ]; then
    as_postgres "$BIN/pg_ctl -D '$DATA' -m fast stop" >&2 || true
    exit 0
fi

if ! as_postgres "$BIN/pg_ctl -D '$DATA' status" >/dev/null 2>&1; then
    rm -rf "$DATA"
    mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown postgres "$DATA"
    as_postgres "$BIN/initdb -D '$DATA' -U postgres --auth=trust -E UTF8 --no-sync" >/dev/null
    # Test-only settings: durability is not what these tests measure.
    as_postgres "$BIN/pg_ctl -D '$DATA' -l '$DATA/server.log' -w -t 60 \
        -o \"-c listen_addresses=127.0.0.1 -p $PORT -k '$DATA' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200\" start" >&2
fi
echo "postgres://postgres@127.0.0.1:$PORT/postgres"
