#!/usr/bin/env bash
# Smoke run of every cargo-fuzz target in fuzz/ (docs/FUZZING.md): each runs FUZZ_SECONDS
# (default 15) from a temporary copy of its committed seeds (fuzz/seeds/<target>), so the
# seeds are never modified; any crash fails the script. Without a nightly toolchain it
# prints why it is skipped and succeeds. Called at the end of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz-smoke: skipped: no nightly toolchain (cargo +nightly does not run)"
    exit 0
fi

tools="$PWD/target/tools"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
    echo "fuzz-smoke: installing cargo-fuzz into target/tools" >&2
    cargo install cargo-fuzz --locked --root "$tools" >&2
fi
export PATH="$tools/bin:$PATH"

secs="${FUZZ_SECONDS:-15}"
target_dir="$PWD/target/fuzz"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo +nightly fuzz build --target-dir "$target_dir"
targets=$(cargo +nightly fuzz list)
for t in $targets; do
    mkdir -p "$work/$t"
    if [ -d "fuzz/seeds/$t" ]; then
        cp fuzz/seeds/"$t"/* "$work/$t"/
    fi
    echo "fuzz-smoke: $t for ${secs}s" >&2
    if ! cargo +nightly fuzz run --target-dir "$target_dir" "$t" "$work/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$work/$t.log" 2>&1; then
        tail -n 60 "$work/$t.log" >&2
        echo "fuzz-smoke: $t FAILED (crash input under fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    grep -E '^stat::number_of_executed_units|^Done ' "$work/$t.log" | sed "s/^/fuzz-smoke: $t: /" >&2 || true
done
echo "fuzz-smoke: all $(echo $targets | wc -w) targets ran ${secs}s each without a crash"
