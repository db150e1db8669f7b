#!/usr/bin/env bash
# End to end on the host: alf-reqwless on embassy-net over a TAP device, against a real
# authorization server (Authlib), with nothing leaving the machine.
#
# A private network namespace holds only `lo` and `tap0` (10.42.0.1/24). Inside it run the
# Authlib server (tests/servers/authlib_server.py) on 10.42.0.1 with a 3 s token lifetime, and
# examples/embassy-tap, whose embassy-net stack is 10.42.0.2/24 on tap0. The example checks cold
# start (one token request for several tasks), token reuse, refresh before expiry and a 401
# replay, prints `N passed, N failed` and exits non-zero on any wrong outcome. This script then
# checks the server's own counters (`/_stats`) against what the example says it sent. The
# namespace is deleted on every exit path.
#
# Needs root (network namespaces, /dev/net/tun). Python: $ALF_PYTHON, else
# ~/.cache/alf-pyenv/bin/python with authlib and flask (tests/run.sh creates it).
#
#   bash tests/tap.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${ALF_PYTHON:-$HOME/.cache/alf-pyenv/bin/python}
LIFETIME=3
NS=alf-tap-$$
EXAMPLE=examples/embassy-tap

say() { printf 'tap.sh: %s\n' "$*"; }
die() { say "FAIL: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "needs root (network namespaces and /dev/net/tun)"
[[ -c /dev/net/tun ]] || die "/dev/net/tun is missing"
"$PYTHON" -c "import authlib, flask" 2>/dev/null \
    || die "$PYTHON lacks authlib and flask (tests/run.sh sets up the venv; or set ALF_PYTHON)"
if ! command -v ip >/dev/null 2>&1; then
    say "installing iproute2"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
fi

say "building $EXAMPLE"
(cd "$EXAMPLE" && timeout 900 cargo build -q)
BIN=$PWD/$EXAMPLE/target/debug/alf-embassy-tap

WORK=$(mktemp -d)
SERVER_PID=
EXAMPLE_PID=
SHOWN=
cleanup() {
    local rc=$? pid
    # Each PID is `ip netns exec`, which became `timeout`, which passes the signal on.
    for pid in $EXAMPLE_PID $SERVER_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    ip netns del "$NS" 2>/dev/null || true
    if ((rc != 0)) && [[ -z $SHOWN && -s $WORK/example.out ]]; then
        say "embassy-tap output:"
        cat "$WORK/example.out"
    fi
    if ((rc != 0)) && [[ -s $WORK/server.err ]]; then
        say "server log (tail):"
        grep -v '^10\.42\.0\.2 - - ' "$WORK/server.err" | tail -n 30 || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_ns() { ip netns exec "$NS" "$@"; }  # not for `&`: $! would be a subshell

say "network namespace $NS: lo and tap0 (10.42.0.1/24) only"
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns ip tuntap add name tap0 mode tap
ip -n "$NS" addr add 10.42.0.1/24 dev tap0
ip -n "$NS" link set tap0 up
links=$(ip -n "$NS" -o link show | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
[[ $links == "lo tap0 " ]] || die "the namespace holds unexpected links: $links"
routes=$(ip -n "$NS" -4 route show)
[[ $routes == "10.42.0.0/24 dev tap0 "* && $routes != *$'\n'* ]] \
    || die "the namespace has routes other than 10.42.0.0/24 on tap0: $routes"

say "Authlib server on 10.42.0.1 (token lifetime ${LIFETIME} s)"
: >"$WORK/server.out"  # exists before the background job opens it
ip netns exec "$NS" timeout 60 "$PYTHON" -u tests/servers/authlib_server.py \
    --host 10.42.0.1 --port 0 --lifetime "$LIFETIME" >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's/^ALF_AUTHLIB_READY \([0-9]*\)$/\1/p' "$WORK/server.out" || true)
    [[ -n $PORT ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited before it was ready"
    sleep 0.1
done
[[ -n $PORT ]] || die "the server was not ready within 10 s"
BASE=http://10.42.0.1:$PORT

say "embassy-tap: stack 10.42.0.2/24 on tap0, server $BASE"
# The configuration goes in the environment, not on a command line (where `ps` would show
# the secret); not even `bash -x` prints it. In the background, so that INT and TERM reach this
# script's trap at once.
{ xtrace=${-//[^x]/}; set +x; } 2>/dev/null
ALF_TAP=tap0 \
    ALF_TOKEN_URL="$BASE/oauth/token" \
    ALF_API_URL="$BASE/api/resource" \
    ALF_CLIENT_ID="alf basic:+%&=" \
    ALF_CLIENT_SECRET="p@ss: +%&=word" \
    ALF_SCOPE=read \
    ALF_LIFETIME="$LIFETIME" \
    RUST_LOG="${RUST_LOG:-warn}" \
    ip netns exec "$NS" timeout 40 "$BIN" >"$WORK/example.out" 2>&1 &
EXAMPLE_PID=$!
[[ -z $xtrace ]] || set -x
rc=0
wait "$EXAMPLE_PID" || rc=$?
EXAMPLE_PID=
cat "$WORK/example.out"
SHOWN=1
((rc == 0)) || die "embassy-tap exited with $rc"
grep -qE '^[1-9][0-9]* passed, 0 failed$' "$WORK/example.out" \
    || die "embassy-tap did not report all its checks passed"
expect=$(sed -n 's/^ALF_TAP_EXPECT //p' "$WORK/example.out")
[[ -n $expect ]] || die "embassy-tap printed no ALF_TAP_EXPECT line"

say "server counters (/_stats, read from inside the namespace)"
in_ns timeout 10 "$PYTHON" - "$BASE/_stats" $expect <<'EOF'
import json
import sys
import urllib.request

url, *expected = sys.argv[1:]
expected = {k: int(v) for k, v in (e.split("=", 1) for e in expected)}
with urllib.request.urlopen(url, timeout=5) as r:
    stats = json.load(r)
failed = 0


def check(ok, what):
    global failed
    failed += not ok
    print(("ok   " if ok else "FAIL ") + what)


for key in ("token_requests", "resource_requests", "resource_401", "token_errors"):
    check(stats[key] == expected[key], f"server {key} = {stats[key]} (client: {expected[key]})")
check(stats["resource_401"] == 1, "server answered exactly one 401")
# Cold start 1, 2 or 3 refreshes in two lifetimes and a half, the refresh the example waits
# for before revoking, 1 for the replay.
check(5 <= stats["token_requests"] <= 7, f"{stats['token_requests']} token requests, 5 to 7 expected")
check(stats["resource_requests"] >= 10 * stats["token_requests"], "tokens reused")
check(stats["last_form"].get("auth") == "basic", "client_secret_basic authentication")
sys.exit(1 if failed else 0)
EOF
say "passed"
