#!/usr/bin/env bash
# Run alf's core test cases (tests/qemu-common) as firmware under QEMU on three CPUs:
#   qemu-thumbv7em  Cortex-M4F   thumbv7em-none-eabihf        qemu-system-arm -machine mps2-an386
#   qemu-thumbv6m   Cortex-M0    thumbv6m-none-eabi           qemu-system-arm -machine mps2-an385
#   qemu-riscv32    RISC-V 32    riscv32imc-unknown-none-elf  qemu-system-riscv32 -machine virt
# Each is a standalone crate whose `cargo test` builds the firmware and boots it in QEMU through
# the runner in its .cargo/config.toml. Prints every firmware's output, the flash/RAM of the
# Cortex-M4F firmware, and a closing `N passed, N failed` over all three; exits non-zero if any
# firmware failed, did not build, or hung (the runner's `timeout 60`).
#
# Usage: tests/qemu.sh [crate...]      (default: all three)
# Needs: qemu-system-arm and qemu-system-riscv32 (Debian: qemu-system-arm, qemu-system-misc;
# installed here when missing and running as root), the three rustup targets (added when
# missing), and optionally llvm-tools for the size report.

set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if (($#)); then crates=("$@"); else crates=(qemu-thumbv7em qemu-thumbv6m qemu-riscv32); fi

# --- prerequisites -------------------------------------------------------------------------
if ! command -v qemu-system-arm >/dev/null || ! command -v qemu-system-riscv32 >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "=== installing QEMU"
        apt-get update -qq && apt-get install -y -qq --no-install-recommends \
            qemu-system-arm qemu-system-misc >/dev/null || { echo "QEMU install failed"; exit 1; }
    else
        echo "qemu-system-arm and qemu-system-riscv32 are needed (Debian: qemu-system-arm qemu-system-misc)"
        exit 1
    fi
fi
if command -v rustup >/dev/null; then
    installed="$(rustup target list --installed)"
    for t in thumbv7em-none-eabihf thumbv6m-none-eabi riscv32imc-unknown-none-elf; do
        grep -qx "$t" <<<"$installed" || rustup target add "$t"
    done
fi

# --- build and run -------------------------------------------------------------------------
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
passed=0
failed=0
broken=()
for crate in "${crates[@]}"; do
    echo "=== $crate: cargo test"
    (cd "$here/$crate" && cargo test --color never) 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)"
    if [[ -n $summary ]]; then
        read -r p _ f _ <<<"$summary"
        passed=$((passed + p))
        failed=$((failed + f))
    fi
    if ((status != 0)); then
        broken+=("$crate")
        # A firmware that did not build, hung or crashed before its summary counts as a failure.
        [[ -z $summary || $summary == *" 0 failed" ]] && failed=$((failed + 1))
        echo "=== $crate: FAILED (exit status $status)"
    else
        echo "=== $crate: $summary"
    fi
done

# --- size of the Cortex-M4F test firmware (report only) ------------------------------------
if [[ " ${crates[*]} " == *" qemu-thumbv7em "* ]]; then
    size="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size"
    elf="$(cd "$here/qemu-thumbv7em" && cargo test --no-run --color never 2>&1 |
        sed -n 's/^ *Executable tests\/qemu.rs (\(.*\))$/\1/p')"
    if [[ -x $size && -n $elf ]]; then
        echo "=== size of the thumbv7em test firmware (opt-level s, debug info not counted)"
        (cd "$here/qemu-thumbv7em" && "$size" "$elf") | tee "$log"
        read -r text data bss _ < <(tail -n 1 "$log")
        echo "flash (text + data): $((text + data)) bytes; static RAM (data + bss): $((data + bss)) bytes"
    else
        echo "=== size report skipped (rustup component add llvm-tools)"
    fi
fi

if ((${#broken[@]})); then
    echo "QEMU firmware that failed: ${broken[*]}"
fi
echo "$passed passed, $failed failed"
((${#broken[@]} == 0 && failed == 0))
