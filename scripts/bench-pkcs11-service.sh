#!/usr/bin/env bash
# Sign through gRPC with a SoftHSM2 key against raw C_Sign on the same token, same run
# (issue 4 item 7: target >= 0.8 x raw). Both sides use both cores: raw = 2 threads with
# their own sessions; service = the release `tron-signer serve` (session pool = 2 x cores)
# driven by `tron-signer-load` with many concurrent clients (the ledger fsyncs once per
# group commit, so concurrency is what fills each commit).
#
#   [SESSIONS=n] scripts/bench-pkcs11-service.sh [seconds] [clients]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
clients="${2:-192}"
module="${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
target="${CARGO_TARGET_DIR:-target}"
[ -e "$module" ] || { echo "missing $module: apt-get install softhsm2" >&2; exit 1; }

# The signer and the load generator (its own package: tools/, tron-signer-tools).
cargo build --release -q -p tron-signer --bin tron-signer -p tron-signer-tools --bin tron-signer-load
bin="$target/release/tron-signer"
load="$target/release/tron-signer-load"

work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

mkdir "$work/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$work" > "$work/softhsm2.conf"
export SOFTHSM2_CONF="$work/softhsm2.conf"
export BENCH_PKCS11_PIN=5678
softhsm2-util --init-token --free --label bench --so-pin 1234 --pin "$BENCH_PKCS11_PIN" >/dev/null
key="$("$bin" keys pkcs11 generate --module "$module" --token-label bench \
    --label bench-key --pin-env BENCH_PKCS11_PIN)"
dest=TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf

cat > "$work/policy.toml" <<POLICY
version = 1
name = "pkcs11 bench: huge limits"
network = "nile"

[global]
frozen = false
max_fee_limit = "50"
max_expiration = "10m"
clock_skew = "60s"
memo_allowed = false

[[key]]
address = "$key"
label = "bench"
assets = ["TRX"]
windows = [ { asset = "TRX", window = "1h", max = "1000000000" } ]
  [[key.destination]]
  address = "$dest"
  label = "sink"
  assets = ["TRX"]
  per_tx_max = { TRX = "1000" }
POLICY

cat > "$work/signer.toml" <<CONFIG
listen = "unix:$work/signer.sock"
data_dir = "$work/data"
policy = "$work/policy.toml"

[pkcs11]
module = "$module"
token_label = "bench"
keys = [{ label = "bench-key" }]
pin = { env = "BENCH_PKCS11_PIN" }
${SESSIONS:+sessions = $SESSIONS}
CONFIG

RUST_LOG=warn "$bin" serve --config "$work/signer.toml" 2> "$work/serve.log" &
server=$!
for _ in $(seq 100); do [ -S "$work/signer.sock" ] && break; sleep 0.1; done
[ -S "$work/signer.sock" ] || { cat "$work/serve.log" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
before="$(cpu_ticks "$server")"
echo "key $key, $(nproc) cores, $clients clients, ${seconds}s; $(softhsm2-util --version 2>/dev/null | head -1 || true)"
"$load" run --endpoint "unix:$work/signer.sock" --key "$key" --to "$dest" \
    --clients "$clients" --connections 4 --seconds "$seconds" --raw-seconds 5 \
    --raw-pkcs11-module "$module" --raw-pkcs11-token bench --raw-pkcs11-key bench-key \
    --raw-pkcs11-pin-env BENCH_PKCS11_PIN --raw-threads 2 --server-pid "$server" \
    --run-id "bench-$(date +%s)"
after="$(cpu_ticks "$server")"
hz="$(getconf CLK_TCK)"
echo "server CPU        $(( (after - before) / hz )) s over the load phase (of $(( 2 * seconds )) core-seconds; the load generator uses the rest)"
