# Shared by the service benchmarks (sourced, with $bin set to the release binaries' directory).

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
