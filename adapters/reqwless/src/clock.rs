//! [`EmbassyClock`]: alf's [`Clock`] over embassy-time.

use core::sync::atomic::{AtomicU32, Ordering, fence};

use alf::{Clock, Instant, UnixTime};

/// alf's [`Clock`] over embassy-time, with an optional wall clock.
///
/// - [`now`](Clock::now) is [`embassy_time::Instant::now`] in milliseconds: monotonic, the
///   time since boot.
/// - [`sleep_until`](Clock::sleep_until) waits with [`embassy_time::Timer::at`], rounded up to
///   the next tick so that it never wakes early; dropping it cancels the timer.
/// - [`unix_time`](Clock::unix_time) is `None` until the wall time is known; give it with
///   [`with_unix_offset`](Self::with_unix_offset), [`set_unix_time`](Self::set_unix_time)
///   (whole seconds: from an RTC, SNTP...) or [`set_unix_time_ms`](Self::set_unix_time_ms)
///   (milliseconds). alf only needs it for a shared [`TokenStore`](alf::TokenStore) and for
///   `Retry-After` dates.
///
/// The wall clock is kept as the Unix time of boot in milliseconds, and carried forward on
/// embassy-time's milliseconds: a reading is in milliseconds, with the resolution of the time
/// it was given (one second for [`set_unix_time`](Self::set_unix_time) and
/// [`with_unix_offset`](Self::with_unix_offset), one millisecond for
/// [`set_unix_time_ms`](Self::set_unix_time_ms)), so that alf counts a stored token's
/// lifetime conservatively (see [`UnixTime`]).
///
/// It lives in two `AtomicU32` (load and store only, so it works on targets without
/// compare-and-swap such as `thumbv6m`), good until the year 2106. A reading taken while the
/// wall clock is being set sees the old or the new time, never a mix of both; set it from one
/// task at a time.
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
    /// Unix time of `embassy_time::Instant` zero, whole seconds (rounded down); 0 while
    /// unknown, or while it is being set.
    boot_unix: AtomicU32,
    /// The milliseconds past `boot_unix` (0..1000), plus [`MS_RESOLUTION`] when the wall time
    /// was given in milliseconds.
    boot_unix_frac: AtomicU32,
}

/// Set in `boot_unix_frac` when the wall time was given to the millisecond.
const MS_RESOLUTION: u32 = 1 << 31;

impl EmbassyClock {
    /// A clock without a wall clock ([`unix_time`](Clock::unix_time) is `None`).
    pub const fn new() -> Self {
        Self {
            boot_unix: AtomicU32::new(0),
            boot_unix_frac: AtomicU32::new(0),
        }
    }

    /// A clock whose wall clock is `boot_unix_secs` at `embassy_time::Instant` zero (boot),
    /// read with a resolution of one second. `0` and values beyond `u32::MAX` (year 2106)
    /// mean "unknown".
    pub const fn with_unix_offset(boot_unix_secs: u64) -> Self {
        let v = if boot_unix_secs > u32::MAX as u64 {
            0
        } else {
            boot_unix_secs as u32
        };
        Self {
            boot_unix: AtomicU32::new(v),
            boot_unix_frac: AtomicU32::new(0),
        }
    }

    /// Set the wall clock: the Unix time is `unix_now_secs` whole seconds now (it may be
    /// anywhere in that second: readings then have a resolution of one second).
    pub fn set_unix_time(&self, unix_now_secs: u64) {
        self.set_boot_ms(
            unix_now_secs
                .saturating_mul(1000)
                .checked_sub(embassy_time::Instant::now().as_millis()),
            false,
        );
    }

    /// Set the wall clock to the millisecond: the Unix time is `unix_now_ms` milliseconds
    /// now (readings then have a resolution of one millisecond).
    pub fn set_unix_time_ms(&self, unix_now_ms: u64) {
        self.set_boot_ms(
            unix_now_ms.checked_sub(embassy_time::Instant::now().as_millis()),
            true,
        );
    }

    /// Forget the wall clock ([`unix_time`](Clock::unix_time) is `None` again).
    pub fn clear_unix_time(&self) {
        self.boot_unix.store(0, Ordering::Relaxed);
    }

    /// The Unix time of boot, in whole seconds (rounded down), if known.
    pub fn unix_offset(&self) -> Option<u64> {
        self.boot().map(|(ms, _)| ms / 1000)
    }

    /// Store the Unix time of boot: `boot_unix` is 0 ("unknown") while the fraction changes,
    /// and is written last, so that a reader never mixes two settings (see [`Self::boot`]).
    fn set_boot_ms(&self, boot_ms: Option<u64>, ms_resolution: bool) {
        let secs = boot_ms
            .and_then(|ms| u32::try_from(ms / 1000).ok())
            .unwrap_or(0);
        self.boot_unix.store(0, Ordering::Relaxed);
        if secs == 0 {
            return;
        }
        fence(Ordering::Release);
        let ms = boot_ms.unwrap_or(0);
        // `ms % 1000` < 1000 fits, and leaves the top bit for the flag.
        let frac = (ms % 1000) as u32 | if ms_resolution { MS_RESOLUTION } else { 0 };
        self.boot_unix_frac.store(frac, Ordering::Relaxed);
        self.boot_unix.store(secs, Ordering::Release);
    }

    /// The Unix time of boot in milliseconds, and whether it is good to the millisecond. Reads
    /// `boot_unix` on both sides of the fraction (a sequence lock whose count is `boot_unix`
    /// itself): if it changed, or is 0 (unknown, or being set), it tries again or gives up.
    fn boot(&self) -> Option<(u64, bool)> {
        for _ in 0..4 {
            let secs = self.boot_unix.load(Ordering::Acquire);
            if secs == 0 {
                return None;
            }
            let frac = self.boot_unix_frac.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.boot_unix.load(Ordering::Relaxed) == secs {
                let ms = u64::from(secs) * 1000 + u64::from(frac & !MS_RESOLUTION);
                return Some((ms, frac & MS_RESOLUTION != 0));
            }
        }
        None
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

    fn unix_time(&self) -> Option<UnixTime> {
        let (boot_ms, ms_resolution) = self.boot()?;
        let now =
            UnixTime::from_millis(boot_ms.saturating_add(embassy_time::Instant::now().as_millis()));
        Some(if ms_resolution {
            now
        } else {
            now.with_resolution(alf::Duration::from_secs(1))
        })
    }
}
