#!/usr/bin/env bash
# Mutual TLS against plaintext (issue 12's benchmark): the release signer with the service
# benchmark's setup (10,000 keys, a 100,000-entry allowlist, fsync on) on TCP loopback, once in
# plaintext (insecure_plaintext) and once over mutual TLS 1.3 with client certificates, ROUNDS
# times alternately, each a closed loop of CLIENTS clients over 8 connections for SECS seconds.
# Prints each peak and the mean TLS/plaintext ratio (target: TLS costs at most 10 %).
#
#   KEYS=10000 DESTS=100000 CLIENTS=256 SECS=15 ROUNDS=2 bash scripts/bench-tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-10000}
DESTS=${DESTS:-100000}
CLIENTS=${CLIENTS:-256}
SECS=${SECS:-15}
ROUNDS=${ROUNDS:-2}

cargo build --release --quiet -p tron-signer --bin tron-signer -p tron-signer-tools --bin tron-signer-load
bin=$PWD/target/release
dir=$(mktemp -d "$PWD/target/bench-tls.XXXXXX")
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

echo "== preparing $KEYS keys and $DESTS destinations in $dir (port $port)"
key=$("$bin/tron-signer-load" prepare --dir "$dir" --keys "$KEYS" --destinations "$DESTS" --tls-port "$port")

# One closed-loop run against the signer started with config $1; prints its throughput.
one() {
    local mode=$1 round=$2
    TRON_SIGNER_BENCH_PASSPHRASE="bench passphrase (not secret)" \
        "$bin/tron-signer" serve --config "$dir/signer-$mode.toml" 2>"$dir/serve-$mode-$round.log" &
    pid=$!
    local tls_args=()
    [ "$mode" = tls ] && tls_args=(--tls-ca "$dir/ca.pem" --tls-cert "$dir/client.pem" --tls-key "$dir/client.key")
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || { cat "$dir/serve-$mode-$round.log" >&2; exit 1; }
        grep -q "serving gRPC" "$dir/serve-$mode-$round.log" && break
        sleep 0.1
    done
    "$bin/tron-signer-load" run --endpoint "127.0.0.1:$port" --key "$key" \
        --to-file "$dir/destinations.txt" --server-pid "$pid" "${tls_args[@]}" \
        --clients "$CLIENTS" --connections 8 --seconds "$SECS" --run-id "$mode-$round" >"$dir/$mode-$round.txt"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    awk '/^throughput/ {print $2}' "$dir/$mode-$round.txt"
    sed -n 's/^ratio */ratio /p; s/^latency p99 */p99 /p' "$dir/$mode-$round.txt" >&2
}

plain_sum=0; tls_sum=0
for round in $(seq 1 "$ROUNDS"); do
    p=$(one plain "$round"); echo "round $round plaintext: $p signs/s"
    t=$(one tls "$round"); echo "round $round mutual TLS: $t signs/s"
    plain_sum=$((plain_sum + p)); tls_sum=$((tls_sum + t))
done
python3 -c "p=$plain_sum/$ROUNDS; t=$tls_sum/$ROUNDS; print(f'mean plaintext {p:.0f}/s, mutual TLS {t:.0f}/s, TLS/plaintext {t/p:.3f} (cost {100*(1-t/p):.1f} %)')"
