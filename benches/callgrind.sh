#!/usr/bin/env bash
# Instructions per request under callgrind: alf-reqwest vs plain reqwest (issue 6, item 1;
# goal: alf / reqwest <= 1.05), and the core's cost of one token fetch and one token-response
# parse (item 8).
#
#   bash benches/callgrind.sh            # everything
#   bash benches/callgrind.sh requests   # only alf-reqwest vs reqwest
#   bash benches/callgrind.sh core       # only token / fetch / parse
#
# Each mode of the `callgrind_requests` bench binary (benches/benches/callgrind_requests.rs)
# runs twice under `valgrind --tool=callgrind`, with a small and a large count; the difference
# in instructions divided by the difference in counts is the cost of one operation, with
# start-up, warm-up (connections, first token) and exit cancelled out. The loopback server
# runs in a child process that valgrind does not trace, so only the client's instructions
# count. Set KEEP=dir to keep the callgrind.out files (for callgrind_annotate).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
what=${1:-all}
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 1; }

# Build the bench binary (bench profile: release with line tables) and find it.
bin=$(cd "$here" && cargo bench --no-run --bench callgrind_requests 2>&1 \
    | sed -n 's/.*Executable .*(\(.*callgrind_requests-[^)]*\)).*/\1/p' | tail -n1)
[ -x "$bin" ] || { echo "callgrind.sh: cannot find the callgrind_requests binary" >&2; exit 1; }

out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$out"' EXIT

# instructions MODE COUNT: total instructions (Ir) of one run.
instructions() {
    local file="$out/callgrind.$1.$2.out"
    valgrind --tool=callgrind --callgrind-out-file="$file" "$bin" "$1" "$2" \
        >"$out/$1.$2.stdout" 2>"$out/$1.$2.stderr" || {
        echo "callgrind.sh: $1 $2 failed:" >&2
        cat "$out/$1.$2.stderr" >&2
        exit 1
    }
    sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$file" | head -n1
}

# per_op MODE SMALL LARGE: instructions per operation.
per_op() {
    local a b
    a=$(instructions "$1" "$2")
    b=$(instructions "$1" "$3")
    echo $(( (b - a) / ($3 - $2) ))
}

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
echo "rustc:   $(rustc -V)"
echo "valgrind: $(valgrind --version)"

if [ "$what" = all ] || [ "$what" = requests ]; then
    small=${REQ_SMALL:-100}
    large=${REQ_LARGE:-1100}
    echo
    echo "GET over keep-alive loopback HTTP/1.1, token cached ($small and $large requests):"
    raw=$(per_op reqwest "$small" "$large")
    alf=$(per_op alf "$small" "$large")
    rawt=$(per_op reqwest-timeout "$small" "$large")
    dflt=$(per_op alf-default "$small" "$large")
    awk -v raw="$raw" -v alf="$alf" -v rawt="$rawt" -v dflt="$dflt" 'BEGIN {
        printf "  %-34s %9d instructions/request\n", "reqwest", raw
        printf "  %-34s %9d instructions/request   ratio %.3f   (+%d)\n", "alf_reqwest (same reqwest client)", alf, alf / raw, alf - raw
        printf "  %-34s %9d instructions/request\n", "reqwest, 30 s timeout + redirects", rawt
        printf "  %-34s %9d instructions/request   ratio %.3f   (+%d) to the line above\n", "alf_reqwest::Client::new", dflt, dflt / rawt, dflt - rawt
        printf "  goal: alf_reqwest / reqwest <= 1.05: %s\n", (alf / raw <= 1.05) ? "met" : "MISSED"
    }'
fi

if [ "$what" = all ] || [ "$what" = core ]; then
    small=${CORE_SMALL:-1000}
    large=${CORE_LARGE:-11000}
    echo
    echo "core, alf::testing (ScriptedTransport + MockClock), ${small} and ${large} operations:"
    printf "  %-44s %9d instructions\n" "token() with a valid cached token" "$(per_op token "$small" "$large")"
    printf "  %-44s %9d instructions\n" "generation() with a valid cached token" "$(per_op generation "$small" "$large")"
    printf "  %-44s %9d instructions\n" "token fetch (request, parse, adopt)" "$(per_op fetch "$small" "$large")"
    printf "  %-44s %9d instructions\n" "parse_token_response" "$(per_op parse "$small" "$large")"
fi
