//! Cortex-M glue for the QEMU test firmware: semihosting output and exit, panic and fault
//! handlers. The cases themselves are in `qemu-common`; the entry point is `tests/qemu.rs`.

#![no_std]

use core::fmt::{self, Write};
use core::panic::PanicInfo;

use cortex_m_rt::{ExceptionFrame, exception};
use cortex_m_semihosting::{debug, hio};

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
        cortex_m::asm::wfi();
    }
}

/// How much of the stack to paint to measure the cases' peak use.
const STACK_PAINT: usize = 256 * 1024;

/// Run every case, print the results and leave QEMU with the outcome.
pub fn run_and_exit() -> ! {
    let mut out = Out::open();
    let sp = cortex_m::register::msp::read() as usize;
    // SAFETY: the stack grows down from the top of the 4 MiB RAM, whose bottom holds only a
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

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    let _ = writeln!(Out::open(), "HardFault: {frame:?}\n0 passed, 1 failed");
    exit(false)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    let _ = writeln!(
        Out::open(),
        "unexpected exception {irqn}\n0 passed, 1 failed"
    );
    exit(false)
}
