#!/usr/bin/env bash
# Crash harness (issue 17, item 2): the release signer under concurrent Sign load, SIGKILLed
# at random moments and restarted KILLS times, then checked: `audit verify` passes, every
# signature a client received is in the ledger and the audit export, no window was exceeded
# over the whole run, no payout id was signed as two transactions. Exit 1 on any violation.
# The seed is printed; SEED repeats a run. CI runs a 5-kill version (tools/tests/crash.rs).
#
#   KILLS=50 CLIENTS=8 [SEED=123] [WINDOW_SCALE=20] bash scripts/crash-harness.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${KILLS:-50}
CLIENTS=${CLIENTS:-8}

cargo build --release --locked --quiet -p tron-signer --bin tron-signer \
    -p tron-signer-tools --bin tron-signer-crash
bin=${CARGO_TARGET_DIR:-target}/release
# On the project's disk (not a tmpfs), so fsync costs what it costs; kept on failure.
mkdir -p target
dir=$(mktemp -d "$PWD/target/crash-harness.XXXXXX")
echo "== run directory $dir (keystore, policy, serve.log, audit-export.jsonl)"
"$bin/tron-signer-crash" --signer "$bin/tron-signer" --dir "$dir/run" \
    --kills "$KILLS" --clients "$CLIENTS" --window-scale "${WINDOW_SCALE:-1}" ${SEED:+--seed "$SEED"}
rm -rf "$dir"
