#!/usr/bin/env bash
# Service load benchmark (issue 3, item 7): the release signer with 10,000 keys and a
# 100,000-entry allowlist, fsync on, driven over gRPC on a Unix socket by the load generator
# on the same machine. Prints the closed-loop peak, then an open-loop run at half that rate
# (for p99), each beside the raw single-core k256 sign rate measured in the same run. RATES
# adds open-loop runs at those rates afterwards (latency against load).
#
#   KEYS=10000 DESTS=100000 CLIENTS=256 SECS=15 [RATES="500 1500 3000"] bash scripts/bench-service.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-10000}
DESTS=${DESTS:-100000}
CLIENTS=${CLIENTS:-256}
SECS=${SECS:-15}

# The load generator lives in its own package (tools/, tron-signer-tools).
cargo build --release --quiet -p tron-signer --bin tron-signer -p tron-signer-tools --bin tron-signer-load
bin=target/release
# On the project's disk (not a tmpfs), so fsync costs what it costs.
dir=$(mktemp -d "$PWD/target/bench-service.XXXXXX")
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT

echo "== preparing $KEYS keys and $DESTS destinations in $dir"
key=$("$bin/tron-signer-load" prepare --dir "$dir" --keys "$KEYS" --destinations "$DESTS")
TRON_SIGNER_BENCH_PASSPHRASE="bench passphrase (not secret)" \
    "$bin/tron-signer" serve --config "$dir/signer.toml" 2>"$dir/serve.log" &
pid=$!
for _ in $(seq 1 600); do
    [ -S "$dir/signer.sock" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/serve.log"; exit 1; }
    sleep 0.1
done
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
