#!/usr/bin/env bash
# The Python alf 0.7.1 (PyPI) against the Rust load server: the herd and rollover scenarios of
# the `herd` and `rollover` binaries, printing the same figures (issue 6, item 6).
#
#   bash benches/run-python.sh [--quick]
#
# Creates a venv in ${ALF_BENCH_VENV:-~/.cache/alf-bench-py} with alf==0.7.1 if needed, builds
# and starts `load-server --serve` on a free loopback port, runs python/herd.py and
# python/rollover.py against it, and stops it. Honours CARGO_TARGET_DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${ALF_BENCH_VENV:-$HOME/.cache/alf-bench-py}
quick=()
[[ ${1:-} == --quick ]] && quick=(--quick)

if ! "$venv/bin/python" -c 'import alf.client, importlib.metadata as m; assert m.version("alf") == "0.7.1"' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'alf==0.7.1'
fi

cargo build --quiet --release --manifest-path "$here/Cargo.toml" --bin load-server
server_bin=${CARGO_TARGET_DIR:-$here/target}/release/load-server

tmp=$(mktemp -d)
"$server_bin" --serve >"$tmp/out" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
    grep -q '^port=' "$tmp/out" 2>/dev/null && break
    sleep 0.05
done
port=$(sed -n 's/^port=//p' "$tmp/out")
[[ -n $port ]] || { echo "load-server did not start" >&2; exit 1; }
base=http://127.0.0.1:$port

cd "$here/python"
"$venv/bin/python" herd.py --base "$base" "${quick[@]}"
echo
"$venv/bin/python" rollover.py --base "$base" "${quick[@]}"
