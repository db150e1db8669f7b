//! The firmware: run alf's core test cases on a Cortex-M0 (thumbv6m) target and exit QEMU with the result.

#![no_std]
#![no_main]

use cortex_m_rt::entry;

#[entry]
fn main() -> ! {
    qemu_thumbv6m::run_and_exit()
}
