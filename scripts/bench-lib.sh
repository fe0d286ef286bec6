# Shared by the service benchmarks (sourced; start_signer needs $bin set to the release binaries' directory).

# Starts `tron-signer serve --config $1` with the bench keystore's passphrase, its stderr to
# $2, and waits for it to open the Unix socket $3; sets $started to its process id. Exits the
# benchmark, with the signer's log, if it stops or does not open the socket within a minute.
start_signer() {
    local config=$1 log=$2 sock=$3
    TRON_SIGNER_BENCH_PASSPHRASE="bench passphrase (not secret)" \
        "$bin/tron-signer" serve --config "$config" 2>"$log" &
    started=$!
    for _ in $(seq 1 600); do
        [ -S "$sock" ] && return 0
        kill -0 "$started" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    echo "the signer ($config) did not open $sock within a minute" >&2
    exit 1
}

# The SoftHSM2 module the PKCS#11 benchmarks load.
pkcs11_module=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

# Makes the SoftHSM2 token "bench" (user PIN $BENCH_PKCS11_PIN) in directory $1, exports
# SOFTHSM2_CONF for it, generates the key "bench-key" there with the tron-signer binary $2 and
# sets $hsm_key to its address.
make_bench_token() {
    local dir=$1 signer=$2
    [ -e "$pkcs11_module" ] || {
        echo "missing $pkcs11_module: apt-get install softhsm2" >&2
        exit 1
    }
    mkdir -p "$dir/tokens"
    printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
        "$dir" >"$dir/softhsm2.conf"
    export SOFTHSM2_CONF="$dir/softhsm2.conf" BENCH_PKCS11_PIN=5678
    softhsm2-util --init-token --free --label bench --so-pin 1234 --pin "$BENCH_PKCS11_PIN" >/dev/null
    hsm_key=$("$signer" keys pkcs11 generate --module "$pkcs11_module" --token-label bench \
        --label bench-key --pin-env BENCH_PKCS11_PIN)
}

# Prints the [pkcs11] section of a signer config that signs with make_bench_token's key.
bench_token_config() {
    printf '[pkcs11]\nmodule = "%s"\ntoken_label = "bench"\nkeys = [{ label = "bench-key" }]\npin = { env = "BENCH_PKCS11_PIN" }\n' \
        "$pkcs11_module"
}
