#!/usr/bin/env bash
# A private PostgreSQL cluster for benchmarks and trials by hand (the tests start their own,
# testkit/src/postgres.rs): initdb in DIR, the server on a Unix socket in DIR only (no TCP),
# fsync on. Run as root, the server runs as the `postgres` user Debian's package creates.
#
#   bash scripts/pg-cluster.sh start DIR [DB]   # prints the connection string of DB (`ledger`)
#   bash scripts/pg-cluster.sh stop DIR
#
# DIR must be short (the socket path must fit in 107 bytes), e.g. /tmp/tspg-bench.
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?a directory}
db=${3:-ledger}
bin=${TRON_SIGNER_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$bin/initdb" ] || { echo "no PostgreSQL server (apt-get install postgresql)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_pg "$bin/initdb" -U postgres -A trust -E UTF8 --no-locale -D "$dir/data" >/dev/null
    fi
    if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_pg "$bin/pg_ctl" -w -t 60 -D "$dir/data" -l "$dir/server.log" \
            -o "-c listen_addresses='' -k $dir -c max_connections=200 -c fsync=on" start >/dev/null
    fi
    "$bin/psql" -X -q -h "$dir" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
        || "$bin/createdb" -h "$dir" -U postgres "$db"
    echo "host=$dir user=postgres dbname=$db"
    ;;
stop)
    as_pg "$bin/pg_ctl" -w -m fast -D "$dir/data" stop >/dev/null
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
