#!/usr/bin/env bash
# alf's whole test suite, set-up included.
#
# Runs on a fresh machine that has only the Rust toolchain (rustup + cargo): it installs what is
# missing (Rust targets and components; Debian packages for the real servers the tests start, for
# QEMU and for network namespaces; Python packages for the real authorization server), then runs
# formatting and lint checks, the cross builds of the no_std core, the documentation build, every
# test, the core's test cases as firmware under QEMU, and alf-reqwless on embassy-net over a TAP
# device in a private network namespace (needs root).
#
#   bash tests/run.sh            # everything
#   ALF_SKIP_SETUP=1 bash tests/run.sh   # skip installs (machine already set up)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
CORE_TARGETS=(thumbv7em-none-eabihf thumbv6m-none-eabi riscv32imc-unknown-none-elf)
ALF_PYENV=${ALF_PYENV:-$HOME/.cache/alf-pyenv}

if [[ -z "${ALF_SKIP_SETUP:-}" ]]; then
    step "set-up: Rust targets and components"
    rustup target add "${CORE_TARGETS[@]}" >/dev/null
    rustup component add clippy rustfmt >/dev/null

    step "set-up: system packages"
    missing=()
    for pair in redis-server:redis-server memcached:memcached qemu-system-arm:qemu-system-arm qemu-system-riscv32:qemu-system-misc ip:iproute2; do
        bin=${pair%%:*}; pkg=${pair##*:}
        command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "all present"
    fi

    step "set-up: Python venv with Authlib + Flask (the real authorization server of the interop tests)"
    if ! "$ALF_PYENV/bin/python" -c "import authlib, flask" >/dev/null 2>&1; then
        python3 -m venv "$ALF_PYENV"
        "$ALF_PYENV/bin/pip" install -q --disable-pip-version-check "authlib==1.*" "flask==3.*"
    fi
    echo "python: $ALF_PYENV/bin/python"
fi
export ALF_PYTHON="$ALF_PYENV/bin/python"

step "format"
cargo fmt --all --check

step "clippy: core, one feature set at a time (defmt and log are exclusive)"
for features in "" "log" "defmt" "testing" "testing,log" "critical-section"; do
    echo "-- alf [${features:-no features}]"
    cargo clippy -q -p alf --lib --no-default-features --features "$features" -- -D warnings
done
cargo clippy -q -p alf --all-targets --features testing,log -- -D warnings
cargo clippy -q -p alf --lib --target thumbv7em-none-eabihf --features defmt -- -D warnings

step "clippy: adapters"
cargo clippy -q --workspace --exclude alf --all-targets -- -D warnings
cargo clippy -q -p alf-reqwest --all-targets --features middleware,redis,memcached,blocking -- -D warnings

step "cross builds of the no_std core"
for target in "${CORE_TARGETS[@]}"; do
    for features in "" "defmt" "testing" "critical-section"; do
        echo "-- alf for $target [${features:-no features}]"
        cargo build -q -p alf --target "$target" --no-default-features --features "$features"
    done
done

step "cross builds of the device crates (alf-reqwless, alf-flash)"
for target in "${CORE_TARGETS[@]}"; do
    for features in "" "defmt"; do
        echo "-- alf-reqwless, alf-flash for $target [${features:-no features}]"
        cargo build -q -p alf-reqwless -p alf-flash --target "$target" --features "$features"
    done
done
echo "-- alf-reqwless for thumbv7em-none-eabihf [tls]"
cargo build -q -p alf-reqwless --target thumbv7em-none-eabihf --features tls

step "docs (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps -p alf --features testing

step "tests (every log record of the host test processes captured at TRACE)"
# The loopback servers of the host tests record every client secret, access token and
# Authorization value they see (tests/hygiene); alf-log-scan then fails if any captured log line
# of any test process holds one of them.
capture_dir=$(mktemp -d "${TMPDIR:-/tmp}/alf-log-capture.XXXXXX")
export ALF_LOG_CAPTURE=$capture_dir
cargo test --workspace --features alf/testing,alf/log
cargo test -q -p alf-reqwest --features middleware,redis,memcached,blocking --test middleware --test blocking
unset ALF_LOG_CAPTURE

step "secret hygiene: no secret, token or Authorization value in any captured log line"
cargo run -q -p alf-test-hygiene --bin alf-log-scan -- "$capture_dir" 8

step "core tests as firmware under QEMU (Cortex-M4F, Cortex-M0, RISC-V 32)"
bash tests/qemu.sh

step "alf-reqwless on embassy-net over TAP, against Authlib, in a private network namespace"
bash tests/tap.sh

step "firmware examples: format and clippy (standalone crates, not in the workspace)"
for example in examples/embassy-firmware examples/embassy-picow; do
    echo "-- $example"
    (cd "$example" && cargo fmt --check && cargo clippy -q --release --locked -- -D warnings)
done
(cd examples/embassy-firmware && cargo clippy -q --release --locked --features defmt --target-dir target/defmt -- -D warnings)
(cd examples/embassy-firmware && cargo clippy -q --release --locked --features dhcp-dns --target-dir target/dhcp-dns -- -D warnings)

step "firmware code size: examples/embassy-firmware against the budget, Wi-Fi boards for information"
bash examples/size-report.sh

step "benchmarks crate (benches/, outside the workspace): format, clippy, CI-sized load runs"
cargo fmt --manifest-path benches/Cargo.toml --check
cargo clippy -q --manifest-path benches/Cargo.toml --all-targets -- -D warnings
bash benches/ci-quick.sh

step "fuzzing: every cargo-fuzz target for 15 s on stable (fails on any crash)"
bash fuzz/run.sh 15
