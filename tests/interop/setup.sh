#!/usr/bin/env bash
# Installs the pinned reference libraries for the interop test:
#   tronpy  (requirements.txt)              -> $INTEROP_CACHE/venv
#   TronWeb (package.json + package-lock)   -> $INTEROP_CACHE/node/node_modules
# Idempotent: each half is skipped when its stamp matches the pinned inputs.
# Install logs go to stderr; stdout is only the two KEY=path lines at the end.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${INTEROP_CACHE:-$root/target/interop-cache}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"

# Tests in one binary run in parallel and may all call this script: one installer at a time.
exec 9>"$cache/.setup.lock"
flock 9

fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- tronpy ---------------------------------------------------------------
venv="$cache/venv"
py_want="$(fingerprint "$here/requirements.txt")-$(python3 -c 'import sys; print(sys.version.split()[0])')"
if [[ "$(cat "$venv/.interop-stamp" 2>/dev/null)" != "$py_want" ]]; then
    echo "setup: installing tronpy into $venv" >&2
    rm -rf "$venv"
    if python3 -m venv "$venv" >&2 2>/dev/null; then
        "$venv/bin/python" -m pip install -q --disable-pip-version-check \
            -r "$here/requirements.txt" >&2
    else
        # Debian without python3-venv has no ensurepip: make a bare venv and
        # let the system pip (>= 22.3) install into it.
        rm -rf "$venv"
        python3 -m venv --without-pip "$venv" >&2
        python3 -m pip --python "$venv/bin/python" install -q --disable-pip-version-check \
            -r "$here/requirements.txt" >&2
    fi
    "$venv/bin/python" -c 'import tronpy.proto' # protobuf extra present
    echo "$py_want" > "$venv/.interop-stamp"
fi

# --- TronWeb --------------------------------------------------------------
node_dir="$cache/node"
js_want="$(fingerprint "$here/package.json" "$here/package-lock.json")-$(node --version)"
if [[ "$(cat "$node_dir/.interop-stamp" 2>/dev/null)" != "$js_want" ]]; then
    echo "setup: installing tronweb into $node_dir/node_modules" >&2
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
    (cd "$node_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
    node -e 'require(require.resolve("tronweb", { paths: [process.argv[1]] }))' "$node_dir"
    echo "$js_want" > "$node_dir/.interop-stamp"
fi

echo "INTEROP_PYTHON=$venv/bin/python"
echo "INTEROP_NODE_MODULES=$node_dir/node_modules"
