#!/usr/bin/env bash
# Runs every test: formatting and lints, unit, property, CLI, and the TronWeb/tronpy
# interop test (which installs its pinned libraries into target/interop-cache itself).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need python3 || missing+=(python3 python3-venv python3-pip)
need node || missing+=(nodejs npm)
# libfaketime: the clock-jump test moves the real signer's wall clock with it.
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing+=(faketime)
# SoftHSM2: the module and its softhsm2-util (package softhsm2; the module alone comes
# from libsofthsm2, so both are checked).
{ [ -e /usr/lib/softhsm/libsofthsm2.so ] && need softhsm2-util; } || missing+=(softhsm2)
# ssh-keygen: batch exporter signatures (and approvals) are made and checked with the real tool.
need ssh-keygen || missing+=(openssh-client)
# PostgreSQL: the shared-ledger tests (tests/ha_postgres.rs) start private clusters of their
# own with the server's binaries; Debian's default "main" cluster is not created or started.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/tron-signer-tests.conf
    missing+=(postgresql)
fi
# qemu-x86_64: the signature tests again on emulated CPUs without AVX-512 IFMA or AVX2 (below).
if [ "$(uname -m)" = x86_64 ]; then need qemu-x86_64 || missing+=(qemu-user); fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}" >&2
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >&2
fi

# promtool: the example alert rules are checked and unit-tested with it (tests/metrics.rs).
# Only the tool is taken from Debian's prometheus package (extracted, never installed, so no
# Prometheus server is started); a promtool on PATH is used as it is.
if need promtool; then
    export TRON_SIGNER_PROMTOOL="$(command -v promtool)"
else
    tools="$PWD/target/tools"
    if [ ! -x "$tools/usr/bin/promtool" ]; then
        echo "test.sh: extracting promtool from Debian's prometheus package" >&2
        mkdir -p "$tools/deb"
        (cd "$tools/deb" && rm -f prometheus_*.deb && { apt-get download prometheus >&2 2>/dev/null \
            || { apt-get update -qq && apt-get download prometheus >&2; }; })
        dpkg-deb -x "$tools"/deb/prometheus_*.deb "$tools"
    fi
    export TRON_SIGNER_PROMTOOL="$tools/usr/bin/promtool"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# --no-fail-fast: one failing test binary must not hide the others' results.
cargo test --workspace --locked --no-fail-fast
# The service suites once more with every signer's ledger in PostgreSQL (a private cluster
# per test, tests/common: on_postgres) instead of its data directory. The tests of the
# embedded file itself (disk full, fsync faults, unclean file, prune, bundles) are left out.
TRON_SIGNER_TEST_LEDGER=postgres cargo test -p tron-signer --locked --no-fail-fast \
    --test service --test callers --test approvals --test hostile_input --test governance \
    --test deposit_keys --test clock_jump --test skew_window --test connection_flood \
    --test metrics --test tls --test pkcs11_service --test batch --test e2e --test key_material \
    --test policy_cli --test service_interop
# The signer without its PKCS#11 backend (the `pkcs11` feature links cryptoki): it must build,
# lint clean and pass its own tests.
cargo clippy -p tron-signer --no-default-features --lib --locked -- -D warnings
cargo test -p tron-signer --no-default-features --lib --locked --no-fail-fast
# curve25519-dalek picks its Ed25519 backend when the program starts (.cargo/config.toml builds
# the AVX-512 IFMA one in): the SSH-signature and approval tests once more under qemu-x86_64 on
# a CPU with AVX2 but no IFMA, and on one with neither, each also checking it saw that CPU.
if [ "$(uname -m)" = x86_64 ]; then
    for cpu in Haswell:avx2 Nehalem:portable; do
        TRON_SIGNER_EXPECT_CPU=${cpu#*:} \
            CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="qemu-x86_64 -cpu ${cpu%%:*}" \
            cargo test -p tron-signer --lib --locked --no-fail-fast -- --include-ignored \
            sshsig:: approval:: 2> >(grep -v "TCG doesn't support requested feature" >&2)
    done
fi
# Fuzz smoke run: every cargo-fuzz target for a few seconds from its seeds (needs nightly;
# skipped with a message without it). Long runs and figures: docs/FUZZING.md.
scripts/fuzz-smoke.sh
