//! RISC-V glue for the QEMU test firmware: semihosting output and exit, panic and trap
//! handlers. The cases themselves are in `qemu-common`; the entry point is `tests/qemu.rs`.

#![no_std]

use core::fmt::{self, Write};
use core::panic::PanicInfo;

use riscv::register::{mcause, mepc, mtval};
use riscv_semihosting::{debug, hio};

/// Where output goes: the host's stdout through semihosting, or nowhere if that fails.
struct Out(Option<hio::HostStream>);

impl Out {
    fn open() -> Self {
        Self(hio::hstdout().ok())
    }
}

impl Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match &mut self.0 {
            Some(h) => h.write_str(s),
            None => Ok(()),
        }
    }
}

/// Leave QEMU: exit status 0 on success, 1 otherwise.
fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached if the debugger lets the program go on.
    loop {
        riscv::asm::wfi();
    }
}

/// How much of the stack to paint to measure the cases' peak use.
const STACK_PAINT: usize = 256 * 1024;

/// Run every case, print the results and leave QEMU with the outcome.
pub fn run_and_exit() -> ! {
    let mut out = Out::open();
    let sp: usize;
    // SAFETY: reads the stack pointer, nothing else.
    unsafe { core::arch::asm!("mv {0}, sp", out(reg) sp) };
    // SAFETY: the stack grows down from the top of the 16 MiB of RAM, above the code and a
    // few bytes of statics: the 256 KiB below the current stack pointer are free stack.
    let painted = unsafe { qemu_common::stack::paint(sp, STACK_PAINT) };
    let summary = qemu_common::run_cases(&mut out);
    let _ = writeln!(out, "{}", painted.peak());
    qemu_common::print_summary(&mut out, &summary);
    exit(summary.success())
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    qemu_common::report_panic(&mut Out::open(), info);
    exit(false)
}

/// Any exception (illegal instruction, misaligned or faulting access...): report and fail
/// rather than spin until the runner's timeout.
#[unsafe(export_name = "ExceptionHandler")]
fn exception_handler(_frame: &riscv_rt::TrapFrame) -> ! {
    let _ = writeln!(
        Out::open(),
        "exception: mcause {:#x}, mepc {:#x}, mtval {:#x}\n0 passed, 1 failed",
        mcause::read().bits(),
        mepc::read(),
        mtval::read(),
    );
    exit(false)
}

/// No interrupt is enabled; one arriving is a bug.
#[unsafe(export_name = "DefaultHandler")]
fn default_handler() -> ! {
    let _ = writeln!(
        Out::open(),
        "unexpected interrupt: mcause {:#x}\n0 passed, 1 failed",
        mcause::read().bits()
    );
    exit(false)
}
