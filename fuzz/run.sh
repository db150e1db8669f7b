#!/usr/bin/env bash
# Fuzz every target of alf's cargo-fuzz crate for a bounded time, on stable Rust.
#
#   bash fuzz/run.sh [SECONDS]     # seconds per target, default 20
#
# Installs cargo-fuzz if it is missing. Builds without sanitizers (`-s none`: sanitizers need
# nightly; panics and failed assertions are what these targets look for). Each target starts
# from the seeds in fuzz/corpus/<target>/ and keeps what it finds in fuzz/target/work/<target>/
# (not committed), so the committed corpus stays the hand-written seeds plus crash regressions.
# Prints the executions per target; fails if any target crashed (the input is written to
# fuzz/artifacts/<target>/: minimise it with `cargo fuzz tmin -s none <target> <file>` and add
# it to the corpus once fixed, where tests/json_corpus.rs replays it on every `cargo test`).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

failed=()
for t in $(cargo fuzz list); do
    work=target/work/$t
    log=target/work/$t.log
    mkdir -p "$work" "corpus/$t"
    if cargo fuzz run "$t" -s none "$work" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    elif grep -q 'failed to build fuzz script' "$log"; then
        status="BUILD FAILED"
        failed+=("$t")
    else
        status=CRASH
        failed+=("$t")
    fi
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -n 1 || true)
    if [[ -z "$execs" ]]; then
        execs=$(grep -oE '^Done [0-9]+ runs' "$log" | awk '{print $2}' | tail -n 1 || true)
    fi
    printf '%-22s %12s executions in %ss  %s\n' "$t" "${execs:-?}" "$secs" "$status"
    if [[ $status != ok ]]; then
        grep -E 'panicked at|^[a-z].*(assert|token|secret)|SUMMARY|Test unit written|error(\[|:)' "$log" | head -n 8 || true
        echo "   full log: fuzz/$log"
    fi
done

if ((${#failed[@]})); then
    echo "fuzzing failed (crash or build error) in: ${failed[*]}"
    exit 1
fi
echo "no crashes"
