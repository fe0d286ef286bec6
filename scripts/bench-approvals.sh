#!/usr/bin/env bash
# Approvals benchmark (issue 13): one release signer, Sign over gRPC on a Unix socket with fsync
# on, driven by the load generator on the same machine with USDT transfers that need no approval
# and transfers above 1 USDT that carry two Ed25519 approvals, alternating ROUNDS times in the
# same session. Every request (and its approvals) is built before its run starts. Each run
# prints throughput, latency and the server's CPU time per Sign; the approved runs also print
# the raw single-core Ed25519 verification rate measured in the same run. The summary compares
# the server's CPU per Sign with and without.
#
#   KEYS=100 DESTS=1000 CLIENTS=256 SECS=10 ROUNDS=2 bash scripts/bench-approvals.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-100}
DESTS=${DESTS:-1000}
CLIENTS=${CLIENTS:-256}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-2}
# Enough for SECS at this machine's rates (the runs end early, and say so, if they run out).
PLAIN=${PLAIN:-$((SECS * 16000))}
APPROVED=${APPROVED:-$((SECS * 9000))}
USDT=TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf

cargo build --release --quiet -p tron-signer --bin tron-signer -p tron-signer-tools --bin tron-signer-load
bin=target/release
. scripts/bench-lib.sh
# On the project's disk (not a tmpfs), so fsync costs what it costs.
dir=$(mktemp -d "$PWD/target/bench-approvals.XXXXXX")
cleanup() {
    kill "${pid:-}" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

echo "== preparing $KEYS keys, $DESTS destinations and 2 approvers in $dir"
key=$("$bin/tron-signer-load" prepare --dir "$dir" --keys "$KEYS" --destinations "$DESTS" --approvers 2)
start_signer "$dir/signer.toml" "$dir/serve.log" "$dir/signer.sock"
pid=$started

run() {
    "$bin/tron-signer-load" run --endpoint "unix:$dir/signer.sock" --key "$key" \
        --to-file "$dir/destinations.txt" --server-pid "$pid" --token "$USDT" "$@"
}
load() { run --clients "$CLIENTS" --connections 8 --seconds "$SECS" "$@"; }
# The rule holds: the approved runs' transfers are refused without their approvals.
check=$(run --amount 2000000 --prebuild 4 --run-id check --seconds 2 --clients 1 --raw-seconds 0.1)
grep -q 'approval_required' <<<"$check" || {
    echo "$check"; echo "a 2 USDT transfer without approvals was not refused approval_required"; exit 1; }
echo "== a 2 USDT transfer without approvals is refused approval_required"
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r: no approval needed (1 base unit), $PLAIN requests"
    load --amount 1 --prebuild "$PLAIN" --run-id "plain-$r" | tee "$dir/plain-$r.txt"
    echo "== round $r: two approvals attached (2 USDT), $APPROVED requests"
    load --amount 2000000 --prebuild "$APPROVED" --approvals-from "$dir" --run-id "approved-$r" \
        | tee "$dir/approved-$r.txt"
done

# The server's CPU per Sign and the throughput, averaged over the rounds.
cpu_plain=$(awk '/^server CPU/ {s += $3; n++} END {printf "%.1f", s / n}' "$dir"/plain-*.txt)
cpu_appr=$(awk '/^server CPU/ {s += $3; n++} END {printf "%.1f", s / n}' "$dir"/approved-*.txt)
tp_plain=$(awk '/^throughput/ {s += $2; n++} END {printf "%.0f", s / n}' "$dir"/plain-*.txt)
tp_appr=$(awk '/^throughput/ {s += $2; n++} END {printf "%.0f", s / n}' "$dir"/approved-*.txt)
verify=$(awk '/^raw ed25519/ {for (i = 1; i <= NF; i++) if ($i == "us") {s += $(i - 1); n++}} END {printf "%.1f", s / n}' "$dir"/approved-*.txt)
echo "== summary over $ROUNDS rounds"
echo "server CPU per Sign  $cpu_plain us without, $cpu_appr us with two approvals"
awk -v a="$cpu_plain" -v b="$cpu_appr" -v v="$verify" 'BEGIN {
    printf "added               %.1f us per Sign (%+.0f %%), %.2f x two raw Ed25519 verifications (%.1f us each)\n", b - a, 100 * (b - a) / a, (b - a) / (2 * v), v }'
awk -v a="$tp_plain" -v b="$tp_appr" 'BEGIN {
    printf "throughput          %d signs/s without, %d with (%.2f x)\n", a, b, b / a }'
