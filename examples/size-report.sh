#!/usr/bin/env bash
# Code and data size of alf on firmware, and the project's size budget.
#
# Builds the firmware examples (release profile: opt-level "z", LTO, one codegen unit) and
# prints what `llvm-size` says:
#
#   1. examples/embassy-firmware, Cortex-M4F (thumbv7em-none-eabihf): embassy executor, a SysTick
#      time driver, embassy-net (DHCP, DNS, TCP) over a driver without a wire, reqwless, alf's
#      Client with its default capacities, one API call in a loop. Without logging (the budget
#      build), then with defmt (for information).
#   2. alf-parse-only, from the same crate: the core alone, building a `Config` and parsing a
#      token response with `alf::response::parse_token_response`.
#   3. examples/embassy-picow, a Raspberry Pi Pico W over Wi-Fi (for information).
#   4. examples/embassy-esp32c3, an ESP32-C3 over Wi-Fi (for information), when alf's manifest
#      lets it build (see examples/embassy-esp32c3/README.md).
#
# Flash is text + data, RAM is data + bss (llvm-size's Berkeley format; the call stack is not
# in it). 1 KB = 1024 bytes.
#
# The budget (1): flash <= 52 KB and RAM excluding the user's buffers <= 14 KB, each with a
# 10 % tolerance. The RAM budget is met and enforced: the script fails when it is exceeded by
# more than 10 %. The flash budget is not met yet (see examples/SIZE-LOG.md for where the
# bytes go): the script fails when flash grows past FLASH_CEILING (today's size plus a small
# margin, so that regressions are caught), and against the budget itself only with
# ALF_ENFORCE_SIZE_BUDGET=1. The user's buffers are those whose size the
# application chooses, all named in examples/embassy-firmware/src/main.rs:
#   - TCP_STATE: the TCP socket buffers (`TcpClientState<SOCKETS, TX, RX>`), size from llvm-nm;
#   - API_RX: the buffer `send()` reads the API response into, size from llvm-nm;
#   - the client's `RX` buffer for token responses, inside CLIENT: alf's DEFAULT_RX_CAPACITY,
#     read from src/client.rs (the firmware uses alf's defaults).
# The client's other state (configuration, token of DEFAULT_TOKEN_CAPACITY bytes, locks) counts
# against the budget, as do the task futures, embassy-net's sockets and the stub driver's frame
# buffer.
#
#   bash examples/size-report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

KB=1024
FLASH_BUDGET=$((52 * KB))
RAM_BUDGET=$((14 * KB))
# Until the flash budget is met: the most flash the firmware may take (63.1 KB measured, see
# examples/SIZE-LOG.md). Lower it as the firmware shrinks.
FLASH_CEILING=$((66 * KB))
PARSE_GOAL=$((12 * KB))
TOLERANCE_PCT=10

rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi riscv32imc-unknown-none-elf >/dev/null
rustup component add llvm-tools >/dev/null
TOOLS="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
SIZE="$TOOLS/llvm-size"
NM="$TOOLS/llvm-nm"
OBJDUMP="$TOOLS/llvm-objdump"

kb() { awk -v b="$1" 'BEGIN { printf "%.1f KB", b / 1024 }'; }
# text, data and bss of an ELF (llvm-size, Berkeley format).
berkeley() { "$SIZE" -B "$1" | awk 'NR == 2 { print $1, $2, $3 }'; }
# Total size of the symbols whose demangled name contains $2.
symbol_size() { "$NM" -S -C --radix=d "$1" | awk -v n="$2" 'index($4, n) { s += $2 } END { print s + 0 }'; }
# A `pub const NAME: usize = N;` of alf's core.
core_const() { sed -n "s/^pub const $1: usize = \([0-9_]*\);.*/\1/p" "$ROOT/src/client.rs" | tr -d _; }
verdict() { # value budget -> "ok" / "over budget" / "over the tolerance"
    local value=$1 budget=$2
    if ((value <= budget)); then echo "within budget"
    elif ((value * 100 <= budget * (100 + TOLERANCE_PCT))); then echo "OVER budget, within ${TOLERANCE_PCT} % tolerance"
    else echo "OVER budget by more than ${TOLERANCE_PCT} %"; fi
}

failed=0

echo "== examples/embassy-firmware (thumbv7em-none-eabihf, no logging)"
FW="$ROOT/examples/embassy-firmware"
(cd "$FW" && cargo build -q --release --locked)
ELF="$FW/target/thumbv7em-none-eabihf/release/alf-embassy-firmware"
"$SIZE" -B "$ELF"
read -r text data bss <<<"$(berkeley "$ELF")"
flash=$((text + data))
ram=$((data + bss))
tcp_state=$(symbol_size "$ELF" "alf_embassy_firmware::TCP_STATE::")
api_rx=$(symbol_size "$ELF" "alf_embassy_firmware::API_RX::")
client=$(symbol_size "$ELF" "alf_embassy_firmware::CLIENT::")
alf_rx=$(core_const DEFAULT_RX_CAPACITY)
token_cap=$(core_const DEFAULT_TOKEN_CAPACITY)
user=$((tcp_state + api_rx + alf_rx))
ram_core=$((ram - user))
printf '  flash (text+data)                 %7d  (%s)\n' "$flash" "$(kb "$flash")"
printf '  RAM (data+bss)                    %7d  (%s)\n' "$ram" "$(kb "$ram")"
printf '  alf client static (CLIENT)        %7d  (token capacity %d, token-response RX %d, config, locks)\n' \
    "$client" "$token_cap" "$alf_rx"
printf '  user buffers                      %7d  (TCP_STATE %d + API_RX %d + client RX %d)\n' \
    "$user" "$tcp_state" "$api_rx" "$alf_rx"
printf '  RAM excluding user buffers        %7d  (%s)\n' "$ram_core" "$(kb "$ram_core")"
echo "  largest RAM symbols:"
"$NM" -S -C --size-sort --radix=d "$ELF" | awk '$3 ~ /^[bBdD]$/ && $2 >= 256 { printf "    %7d  %s\n", $2, $4 }' \
    | sed 's/::h[0-9a-f]\{16\}$//' | sort -rn
f_verdict=$(verdict "$flash" "$FLASH_BUDGET")
r_verdict=$(verdict "$ram_core" "$RAM_BUDGET")
printf '  budget: flash %s <= %s: %s\n' "$(kb "$flash")" "$(kb "$FLASH_BUDGET")" "$f_verdict"
printf '  budget: RAM excluding user buffers %s <= %s: %s\n' "$(kb "$ram_core")" "$(kb "$RAM_BUDGET")" "$r_verdict"
printf '  flash ceiling until the budget is met: %s <= %s: %s\n' "$(kb "$flash")" "$(kb "$FLASH_CEILING")" \
    "$( ((flash <= FLASH_CEILING)) && echo ok || echo EXCEEDED)"
if ((flash * 100 > FLASH_BUDGET * (100 + TOLERANCE_PCT))); then
    failed=1
fi
# Enforced on every run: the RAM budget, and the flash ceiling.
hard_failed=0
if ((ram_core * 100 > RAM_BUDGET * (100 + TOLERANCE_PCT))); then
    echo "  RAM budget exceeded by more than ${TOLERANCE_PCT} %"
    hard_failed=1
fi
if ((flash > FLASH_CEILING)); then
    echo "  flash grew past the ceiling"
    hard_failed=1
fi

echo
echo "== alf-parse-only (thumbv7em-none-eabihf): Config + parse_token_response, nothing else"
PARSE="$FW/target/thumbv7em-none-eabihf/release/alf-parse-only"
"$SIZE" -B "$PARSE"
read -r text data bss <<<"$(berkeley "$PARSE")"
parse_flash=$((text + data))
printf '  flash (text+data) %s (goal <= %s: %s; 1.1 KB of it is the vector table and reset code)\n' \
    "$(kb "$parse_flash")" "$(kb "$PARSE_GOAL")" "$(verdict "$parse_flash" "$PARSE_GOAL")"

echo
echo "== examples/embassy-firmware with --features defmt (defmt-rtt, panic-probe), for information"
(cd "$FW" && cargo build -q --release --locked --features defmt --target-dir target/defmt)
"$SIZE" -B "$FW/target/defmt/thumbv7em-none-eabihf/release/alf-embassy-firmware"

echo
echo "== examples/embassy-picow (thumbv6m-none-eabi, Raspberry Pi Pico W), for information"
PICO="$ROOT/examples/embassy-picow"
(cd "$PICO" && cargo build -q --release --locked)
PICO_ELF="$PICO/target/thumbv6m-none-eabi/release/alf-embassy-picow"
"$SIZE" -B "$PICO_ELF"
read -r text data bss <<<"$(berkeley "$PICO_ELF")"
printf '  flash %s (of which the CYW43439 firmware and CLM blobs: 226.6 KB), RAM %s\n' \
    "$(kb $((text + data)))" "$(kb $((data + bss)))"

echo
echo "== examples/embassy-esp32c3 (riscv32imc-unknown-none-elf, ESP32-C3), for information"
ESP="$ROOT/examples/embassy-esp32c3"
# esp-hal turns on portable-atomic's `unsafe-assume-single-core` for the ESP32-C3, which
# portable-atomic refuses together with `critical-section`: build only when nothing turns that on.
atomics=$(cd "$ESP" && cargo tree -q --locked -e features -i portable-atomic)
if grep -q 'portable-atomic feature "critical-section"' <<<"$atomics"; then
    echo "  skipped: a dependency (alf) turns on portable-atomic's critical-section feature, which"
    echo "  cannot be combined with esp-hal's unsafe-assume-single-core (see its README.md)"
else
    (cd "$ESP" && cargo build -q --release --locked)
    ESP_ELF="$ESP/target/riscv32imc-unknown-none-elf/release/alf-embassy-esp32c3"
    # Flash image: the sections with contents (llvm-objdump types TEXT and DATA); RAM: DRAM
    # data and bss (heap included), IRAM code; the stack and the address-space placeholders
    # (*_dummy) are left out.
    flash=0 dram=0 iram=0
    while read -r _ name size vma type; do
        case "$type" in TEXT | DATA | BSS) ;; *) continue ;; esac
        size=$((16#$size))
        [[ $type != BSS ]] && flash=$((flash + size))
        [[ $type == TEXT && $vma == 403* ]] && iram=$((iram + size))
        if [[ $type != TEXT && $vma == 3fc* && $name != *dummy && $name != .stack ]]; then
            dram=$((dram + size))
        fi
    done < <("$OBJDUMP" -h "$ESP_ELF" | awk 'NF == 5 && $1 ~ /^[0-9]+$/')
    printf '  flash image %s, DRAM data+bss (heap included) %s, IRAM code %s\n' \
        "$(kb "$flash")" "$(kb "$dram")" "$(kb "$iram")"
fi

echo
if ((hard_failed)); then
    echo "size budget: FAILED (RAM budget or flash ceiling, examples/embassy-firmware, see above)"
    exit 1
fi
if ((failed)); then
    # The flash budget is the project's goal, not yet met: report it loudly, and fail only
    # when asked (ALF_ENFORCE_SIZE_BUDGET=1); the ceiling above catches regressions meanwhile.
    echo "size budget: RAM met; flash NOT MET (examples/embassy-firmware, see above and examples/SIZE-LOG.md)"
    if [[ "${ALF_ENFORCE_SIZE_BUDGET:-0}" == 1 ]]; then exit 1; fi
    exit 0
fi
echo "size budget: met"
