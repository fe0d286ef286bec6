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
target="${CARGO_TARGET_DIR:-target}"
. scripts/bench-lib.sh
module=$pkcs11_module

# The signer and the load generator (its own package: tools/, tron-signer-tools).
cargo build --release -q -p tron-signer --bin tron-signer -p tron-signer-tools --bin tron-signer-load
bin="$target/release/tron-signer"
load="$target/release/tron-signer-load"

work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

make_bench_token "$work" "$bin"
key=$hsm_key
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

# The load generator, this user on the Unix socket (callers have been required since issue 12).
[[caller]]
name = "load generator"
unix_uid = $(id -u)
rpcs = ["Sign"]
all_keys = true

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
$(bench_token_config)
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
