#!/usr/bin/env bash
# Service load benchmark (issue 3, item 7): the release signer with 10,000 keys and a
# 100,000-entry allowlist, fsync on, driven over gRPC on a Unix socket by the load generator
# on the same machine. Prints the closed-loop peak, then an open-loop run at half that rate
# (for p99), each beside the raw single-core k256 sign rate measured in the same run. RATES
# adds open-loop runs at those rates afterwards (latency against load).
#
# Then (PG=1, the default, when a PostgreSQL server is installed) the same closed loop with the
# ledger in a private PostgreSQL cluster (scripts/pg-cluster.sh): one signer, then two signers
# on one database at once, each driven by its own load generator with half the clients.
#
#   KEYS=10000 DESTS=100000 CLIENTS=256 SECS=15 [RATES="500 1500 3000"] [PG=0] bash scripts/bench-service.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-10000}
DESTS=${DESTS:-100000}
CLIENTS=${CLIENTS:-256}
SECS=${SECS:-15}

# The load generator lives in its own package (tools/, tron-signer-tools).
cargo build --release --quiet -p tron-signer --bin tron-signer -p tron-signer-tools --bin tron-signer-load
bin=target/release
. scripts/bench-lib.sh
# On the project's disk (not a tmpfs), so fsync costs what it costs.
dir=$(mktemp -d "$PWD/target/bench-service.XXXXXX")
pgdir=/tmp/tspg-bench-$$
cleanup() {
    kill "${pid:-}" ${pids:-} 2>/dev/null || true
    [ -d "$pgdir" ] && bash scripts/pg-cluster.sh stop "$pgdir" 2>/dev/null || true
    rm -rf "$dir" "$pgdir"
}
trap cleanup EXIT

echo "== preparing $KEYS keys and $DESTS destinations in $dir"
key=$("$bin/tron-signer-load" prepare --dir "$dir" --keys "$KEYS" --destinations "$DESTS")
start_signer "$dir/signer.toml" "$dir/serve.log" "$dir/signer.sock"
pid=$started
grep -E 'keystore unlocked|policy in force' "$dir/serve.log" | sed 's/\x1b\[[0-9;]*m//g' || true

run() {
    "$bin/tron-signer-load" run --endpoint "unix:$dir/signer.sock" --key "$key" \
        --to-file "$dir/destinations.txt" --server-pid "$pid" "$@"
}
echo "== closed loop, $CLIENTS clients, ${SECS}s"
run --clients "$CLIENTS" --connections 8 --seconds "$SECS" --run-id peak | tee "$dir/peak.txt"
peak=$(awk '/^throughput/ {print $2}' "$dir/peak.txt")
half=$(( peak / 2 ))
echo "== open loop at half the peak: ${half}/s, ${SECS}s"
run --rate "$half" --connections 8 --seconds "$SECS" --run-id half
for rate in ${RATES:-}; do
    echo "== open loop at ${rate}/s, ${SECS}s"
    run --rate "$rate" --connections 8 --seconds "$SECS" --run-id "rate-$rate"
done

[ "${PG:-1}" = 1 ] || exit 0
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || [ -n "${TRON_SIGNER_PG_BIN:-}" ] \
    || { echo "== no PostgreSQL server installed: PostgreSQL runs skipped"; exit 0; }
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
export TRON_SIGNER_BENCH_PG_URL

# Starts a signer named $1 on database $2 and waits for its socket; sets $spid.
serve_pg() {
    local name=$1 db=$2
    TRON_SIGNER_BENCH_PG_URL=$(bash scripts/pg-cluster.sh start "$pgdir" "$db")
    sed -e "s|^listen = .*|listen = \"unix:$name.sock\"|" -e "s|^data_dir = .*|data_dir = \"data-$name\"|" \
        "$dir/signer.toml" >"$dir/signer-$name.toml"
    printf '[ledger]\npostgres = { url = { env = "TRON_SIGNER_BENCH_PG_URL" }, pool_size = 16 }\n' \
        >>"$dir/signer-$name.toml"
    start_signer "$dir/signer-$name.toml" "$dir/serve-$name.log" "$dir/$name.sock"
    spid=$started
}
run_on() {
    local name=$1 spid=$2; shift 2
    "$bin/tron-signer-load" run --endpoint "unix:$dir/$name.sock" --key "$key" \
        --to-file "$dir/destinations.txt" --server-pid "$spid" "$@"
}

echo "== PostgreSQL ledger, one signer: closed loop, $CLIENTS clients, ${SECS}s"
serve_pg pg1 ledger1; pids=$spid
run_on pg1 "$spid" --clients "$CLIENTS" --connections 8 --seconds "$SECS" --run-id pg1 | tee "$dir/pg1.txt"
kill $pids; wait $pids 2>/dev/null || true; pids=

echo "== PostgreSQL ledger, two signers on one database: closed loop, $((CLIENTS / 2)) clients each, ${SECS}s"
# B pays 2 sun where A pays 1, so the two generators never build the same transaction.
serve_pg pg2a ledger2; a=$spid
serve_pg pg2b ledger2; b=$spid
pids="$a $b"
run_on pg2a "$a" --clients $((CLIENTS / 2)) --connections 4 --seconds "$SECS" --run-id pg2a >"$dir/pg2a.txt" &
la=$!
run_on pg2b "$b" --clients $((CLIENTS / 2)) --connections 4 --seconds "$SECS" --run-id pg2b --amount 2 >"$dir/pg2b.txt" &
lb=$!
wait $la $lb
echo "-- signer A"; cat "$dir/pg2a.txt"
echo "-- signer B"; cat "$dir/pg2b.txt"
total=$(awk '/^throughput/ {s += $2} END {print s}' "$dir/pg2a.txt" "$dir/pg2b.txt")
echo "two signers together: ${total}/s"
TRON_SIGNER_BENCH_PG_URL=$(bash scripts/pg-cluster.sh start "$pgdir" ledger2)
"$bin/tron-signer" audit verify --postgres-url-env TRON_SIGNER_BENCH_PG_URL
