//! [`EmbassyClock`]: alf's [`Clock`] over embassy-time.

use core::sync::atomic::{AtomicU32, Ordering};

use alf::{Clock, Instant};

/// alf's [`Clock`] over embassy-time, with an optional wall clock.
///
/// - [`now`](Clock::now) is [`embassy_time::Instant::now`] in milliseconds: monotonic, the
///   time since boot.
/// - [`sleep_until`](Clock::sleep_until) waits with [`embassy_time::Timer::at`], rounded up to
///   the next tick so that it never wakes early; dropping it cancels the timer.
/// - [`unix_time`](Clock::unix_time) is `None` until the wall time is known; give it with
///   [`with_unix_offset`](Self::with_unix_offset) or [`set_unix_time`](Self::set_unix_time)
///   (after SNTP, from an RTC...). alf only needs it for a shared
///   [`TokenStore`](alf::TokenStore) and for `Retry-After` dates.
///
/// The wall clock is kept as the Unix time of boot, in seconds, in an `AtomicU32` (load and
/// store only, so it works on targets without compare-and-swap such as `thumbv6m`): it is
/// good until the year 2106.
///
/// This crate never selects an embassy-time driver or tick rate: the firmware does.
///
/// ```
/// use alf_reqwless::EmbassyClock;
///
/// // In a static, shared by reference (`&EmbassyClock` is a `Clock` too).
/// static CLOCK: EmbassyClock = EmbassyClock::new();
/// // Later, when SNTP has answered: CLOCK.set_unix_time(unix_seconds);
/// ```
#[derive(Debug, Default)]
pub struct EmbassyClock {
    /// Unix time of `embassy_time::Instant` zero, in seconds; 0 while unknown.
    boot_unix: AtomicU32,
}

impl EmbassyClock {
    /// A clock without a wall clock ([`unix_time`](Clock::unix_time) is `None`).
    pub const fn new() -> Self {
        Self {
            boot_unix: AtomicU32::new(0),
        }
    }

    /// A clock whose wall clock is `boot_unix_secs` at `embassy_time::Instant` zero (boot).
    /// `0` and values beyond `u32::MAX` (year 2106) mean "unknown".
    pub const fn with_unix_offset(boot_unix_secs: u64) -> Self {
        let v = if boot_unix_secs > u32::MAX as u64 {
            0
        } else {
            boot_unix_secs as u32
        };
        Self {
            boot_unix: AtomicU32::new(v),
        }
    }

    /// Set the wall clock: the Unix time is `unix_now_secs` now.
    pub fn set_unix_time(&self, unix_now_secs: u64) {
        let boot = unix_now_secs.saturating_sub(embassy_time::Instant::now().as_secs());
        let v = u32::try_from(boot).unwrap_or(0);
        self.boot_unix.store(v, Ordering::Relaxed);
    }

    /// Forget the wall clock ([`unix_time`](Clock::unix_time) is `None` again).
    pub fn clear_unix_time(&self) {
        self.boot_unix.store(0, Ordering::Relaxed);
    }

    /// The Unix time of boot, in seconds, if known.
    pub fn unix_offset(&self) -> Option<u64> {
        match self.boot_unix.load(Ordering::Relaxed) {
            0 => None,
            v => Some(u64::from(v)),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for EmbassyClock {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "EmbassyClock {{ unix_offset: {} }}", self.unix_offset());
    }
}

/// The first embassy-time instant at or after `deadline` (whole ticks, rounded up), or
/// `Instant::MAX` when it is out of embassy-time's range.
fn embassy_deadline(deadline: Instant) -> embassy_time::Instant {
    let ticks = deadline
        .as_millis()
        .checked_mul(embassy_time::TICK_HZ)
        .map(|t| t.div_ceil(1000));
    ticks.map_or(
        embassy_time::Instant::MAX,
        embassy_time::Instant::from_ticks,
    )
}

impl Clock for EmbassyClock {
    fn now(&self) -> Instant {
        Instant::from_millis(embassy_time::Instant::now().as_millis())
    }

    async fn sleep_until(&self, deadline: Instant) {
        // The loop is a guard against a tick rate whose rounding makes `now()` lag the timer.
        while self.now() < deadline {
            embassy_time::Timer::at(embassy_deadline(deadline)).await;
        }
    }

    fn unix_time(&self) -> Option<u64> {
        self.unix_offset()
            .map(|boot| boot + embassy_time::Instant::now().as_secs())
    }
}
