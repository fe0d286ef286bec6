#!/usr/bin/env bash
# Approvals benchmark (issue 13): one release signer, Sign over gRPC on a Unix socket with fsync
# on, driven by the load generator on the same machine with USDT transfers that need no approval
# and transfers above 1 USDT that carry two Ed25519 approvals, alternating ROUNDS times in the
# same session. Every request (and its approvals) is built before its run starts. Each run
# prints throughput, latency and the server's CPU time per Sign; the approved runs also print
# the raw single-core Ed25519 verification rate measured in the same run. The summary compares
# the server's CPU per Sign with and without, twice: at each kind's peak (closed loop), and at
# one offered rate for both (open loop at RATE/s, below either peak), where the two runs batch
# fsyncs and wake-ups alike and the difference is what the approvals themselves cost.
#
# BACKEND=pkcs11 signs with a key in a SoftHSM2 token (made in the run's directory) instead of
# the keystore: the Sign then also costs the HSM's ECDSA, as it does where custody keys live.
#
#   KEYS=100 DESTS=1000 CLIENTS=256 SECS=10 ROUNDS=2 [RATE=2500] [BIN=DIR] [BACKEND=keystore|pkcs11] \
#       bash scripts/bench-approvals.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-100}
DESTS=${DESTS:-1000}
CLIENTS=${CLIENTS:-256}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-2}
BACKEND=${BACKEND:-keystore}
case $BACKEND in
    # Below the approved peak with room to spare on this 2-core machine (the open-loop
    # generator costs more CPU per request than the closed loop); enough requests for SECS at
    # this machine's rates (the runs end early, and say so, if they run out).
    keystore) rate=2500 plain=16000 approved=9000 ;;
    pkcs11) rate=1000 plain=4000 approved=4000 ;;
    *) echo "BACKEND is keystore or pkcs11, not $BACKEND" >&2; exit 1 ;;
esac
RATE=${RATE:-$rate}
PLAIN=${PLAIN:-$((SECS * plain))}
APPROVED=${APPROVED:-$((SECS * approved))}
USDT=TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf

# BIN=DIR runs the tron-signer and tron-signer-load found there instead (a before/after run).
if [ -n "${BIN:-}" ]; then
    bin=$BIN
else
    cargo build --release --quiet -p tron-signer --bin tron-signer -p tron-signer-tools --bin tron-signer-load
    bin=target/release
fi
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
if [ "$BACKEND" = pkcs11 ]; then
    make_bench_token "$dir" "$bin/tron-signer"
    # The policy's one [[key]] becomes the token's key; everything else stays as prepared.
    sed -i "s/^address = \"$key\"\$/address = \"$hsm_key\"/" "$dir/policy.toml"
    grep -q "^address = \"$hsm_key\"\$" "$dir/policy.toml" || {
        echo "the bench policy does not name $key as prepare wrote it" >&2; exit 1; }
    key=$hsm_key
    { printf 'listen = "unix:signer.sock"\ndata_dir = "data"\npolicy = "policy.toml"\n'
      bench_token_config; } >"$dir/signer.toml"
    echo "== signing with $key in a SoftHSM2 token ($(softhsm2-util --version 2>/dev/null || echo '?'))"
fi
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
rated() { run --clients "$CLIENTS" --connections 8 --seconds "$SECS" --rate "$RATE" "$@"; }
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r: no approval needed (1 base unit), $PLAIN requests"
    load --amount 1 --prebuild "$PLAIN" --run-id "plain-$r" | tee "$dir/peak-plain-$r.txt"
    echo "== round $r: two approvals attached (2 USDT), $APPROVED requests"
    load --amount 2000000 --prebuild "$APPROVED" --approvals-from "$dir" --run-id "approved-$r" \
        | tee "$dir/peak-approved-$r.txt"
done
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r: open loop at $RATE/s, no approval needed"
    rated --amount 1 --prebuild $((SECS * RATE + 100)) --run-id "rate-plain-$r" \
        | tee "$dir/rate-plain-$r.txt"
    echo "== round $r: open loop at $RATE/s, two approvals attached"
    rated --amount 2000000 --prebuild $((SECS * RATE + 100)) --approvals-from "$dir" \
        --run-id "rate-approved-$r" | tee "$dir/rate-approved-$r.txt"
done

# The mean of field $2 of the lines starting with $1 in the files $3...
mean() {
    local what=$1 field=$2
    shift 2
    awk -v w="$what" -v f="$field" 'index($0, w) == 1 {s += $f; n++} END {printf "%.1f", s / n}' "$@"
}
# The server's CPU per Sign and the throughput of the runs named $2-plain-* and $2-approved-*,
# averaged over the rounds, under the heading $1.
summary() {
    local heading=$1 kind=$2
    local cpu_plain cpu_appr tp_plain tp_appr verify
    cpu_plain=$(mean "server CPU" 3 "$dir/$kind"-plain-*.txt)
    cpu_appr=$(mean "server CPU" 3 "$dir/$kind"-approved-*.txt)
    tp_plain=$(mean throughput 2 "$dir/$kind"-plain-*.txt)
    tp_appr=$(mean throughput 2 "$dir/$kind"-approved-*.txt)
    verify=$(awk '/^raw ed25519/ {for (i = 1; i <= NF; i++) if ($i == "us") {s += $(i - 1); n++}} END {printf "%.1f", s / n}' "$dir/$kind"-approved-*.txt)
    echo "== summary over $ROUNDS rounds, $heading"
    echo "server CPU per Sign  $cpu_plain us without, $cpu_appr us with two approvals"
    awk -v a="$cpu_plain" -v b="$cpu_appr" -v v="$verify" 'BEGIN {
        printf "added               %.1f us per Sign (%+.0f %%), %.2f x two raw Ed25519 verifications (%.1f us each, %.0f %% of the Sign without)\n", b - a, 100 * (b - a) / a, (b - a) / (2 * v), v, 100 * 2 * v / a }'
    awk -v a="$tp_plain" -v b="$tp_appr" 'BEGIN {
        printf "throughput          %d signs/s without, %d with (%.2f x)\n", a, b, b / a }'
}
summary "each at its peak (closed loop, $CLIENTS clients)" peak
summary "both offered $RATE/s (open loop)" rate
