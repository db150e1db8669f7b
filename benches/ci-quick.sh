#!/usr/bin/env bash
# CI-sized load runs: builds the load binaries (release) and runs soak, herd and fleet with
# --quick (a few seconds each). Exits non-zero when a build or a run fails. fleet needs
# redis-server on PATH (or $ALF_REDIS_SERVER). Honours CARGO_TARGET_DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cargo build --release --manifest-path "$here/Cargo.toml" --bins
bin=${CARGO_TARGET_DIR:-$here/target}/release
for run in soak herd fleet; do
    echo "--- $run --quick"
    "$bin/$run" --quick
done
