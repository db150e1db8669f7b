//! The firmware: run alf's core test cases on a Cortex-M4F and exit QEMU with the result.

#![no_std]
#![no_main]

use cortex_m_rt::entry;

#[entry]
fn main() -> ! {
    qemu_thumbv7em::run_and_exit()
}
