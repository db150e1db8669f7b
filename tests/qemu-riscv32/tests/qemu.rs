//! The firmware: run alf's core test cases on a RISC-V 32 (riscv32imc) hart and exit QEMU with
//! the result.

#![no_std]
#![no_main]

#[riscv_rt::entry]
fn main() -> ! {
    qemu_riscv32::run_and_exit()
}
