#!/usr/bin/env bash
# CI-sized load runs: builds the load binaries (release) and runs soak, herd and fleet with
# --quick (a few seconds each). Exits non-zero when a build or a run fails. fleet needs
# redis-server on PATH (or $ALF_REDIS_SERVER). Honours CARGO_TARGET_DIR (default
# benches/target). Prints the time of each step and the total.
#
# Bounds: soak: 0 failed calls; herd: 1 token request per cold-start, expiry and revoked-token
# herd, at most max(3, tasks/10) for the all-401 herd, no failed call; fleet (2 lifetimes of
# 5 s, 8 processes): 0 failed calls, fewer token requests with the store than without, and at
# most lifetimes + 1 = 3 shared token requests ($ALF_CI_FLEET_MAX_SHARED to change it; the
# store keeps the expiry in Unix milliseconds, so each shared 5 s token lasts its 5 s: one
# request per lifetime, plus one when a renewal falls just before the deadline).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$here/target}
export CARGO_TARGET_DIR=$target
bin=$target/release
fleet_max_shared=${ALF_CI_FLEET_MAX_SHARED:-3}

ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf '%d.%01d s' $(($1 / 1000)) $(($1 % 1000 / 100)); }
start=$(ms)
step() {
    local name=$1
    shift
    local t0
    t0=$(ms)
    echo "--- $name (CARGO_TARGET_DIR=$target)"
    "$@"
    echo "--- $name: $(secs $(($(ms) - t0)))"
}

step build cargo build --release --manifest-path "$here/Cargo.toml" --bins
step "soak --quick" "$bin/soak" --quick
step "herd --quick" "$bin/herd" --quick
step "fleet --quick" "$bin/fleet" --quick --max-shared "$fleet_max_shared"
echo "--- ci-quick: all passed in $(secs $(($(ms) - start)))"
