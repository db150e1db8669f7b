//! An embassy-time driver on the Cortex-M SysTick timer.
//!
//! SysTick interrupts at the tick rate (1 kHz, embassy-time's `tick-hz-1_000`); the exception
//! counts ticks in a 64-bit counter and, when the earliest timer is due, wakes the due tasks
//! through embassy's timer queue (`embassy-time-queue-utils`, integrated into the executor's
//! tasks, so it needs no capacity of its own).
//!
//! A periodic tick is the simplest driver that works on any Cortex-M; a low-power product
//! would rather program a chip RTC or timer for the next alarm only (tickless).

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::{Driver, TICK_HZ};
use embassy_time_queue_utils::Queue;

/// The core clock SysTick counts: 25 MHz on QEMU's `mps2-an386`. Set your chip's.
pub const CORE_CLOCK_HZ: u32 = 25_000_000;

const RELOAD: u32 = {
    let reload = CORE_CLOCK_HZ as u64 / TICK_HZ - 1;
    // SysTick's reload register has 24 bits.
    assert!(reload > 0 && reload < 1 << 24);
    reload as u32
};

struct SysTickDriver {
    /// Ticks since `start`.
    ticks: Mutex<Cell<u64>>,
    /// The tick at which the earliest timer is due (`u64::MAX`: none).
    alarm: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    alarm: Mutex::new(Cell::new(u64::MAX)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

/// Start ticking. Time stands still (at 0) until this is called.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow_ref_mut(cs);
            if queue.schedule_wake(at, waker) {
                // Wakes what is already due and returns the next deadline.
                let now = self.ticks.borrow(cs).get();
                self.alarm.borrow(cs).set(queue.next_expiration(now));
            }
        });
    }
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let ticks = DRIVER.ticks.borrow(cs);
        let now = ticks.get() + 1;
        ticks.set(now);
        let alarm = DRIVER.alarm.borrow(cs);
        if now >= alarm.get() {
            alarm.set(DRIVER.queue.borrow_ref_mut(cs).next_expiration(now));
        }
    });
}
