//! [`TokioClock`]: alf's [`Clock`] on tokio's monotonic clock.

use std::time::{Duration, SystemTime};

use alf::{Clock, Instant, UnixTime};

/// The farthest a sleep reaches, so that `Instant::MAX` ("never") does not overflow tokio's
/// instant: about 30 years.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 86_400);

/// alf's [`Clock`] for tokio.
///
/// - [`now`](Clock::now) counts milliseconds since the clock was created, on
///   [`tokio::time::Instant`] (monotonic; it also follows tokio's paused test time).
/// - [`sleep_until`](Clock::sleep_until) sleeps with [`tokio::time::sleep_until`]: it needs a
///   tokio runtime with the time driver enabled, and is cancel-safe.
/// - [`unix_time`](Clock::unix_time) reads [`SystemTime`] in milliseconds (rounded down,
///   [`UnixTime::from_millis`]); it is `None` only if the system clock is set before 1970.
///
/// Copying is free; copies share the same origin.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }

    /// The tokio instant that is alf's [`Instant::ZERO`] on this clock.
    pub fn origin(&self) -> tokio::time::Instant {
        self.origin
    }

    /// The tokio instant for an alf instant of this clock (saturating far in the future).
    pub fn to_tokio(&self, instant: Instant) -> tokio::time::Instant {
        let ms = Duration::from_millis(instant.as_millis()).min(FAR_FUTURE);
        self.origin + ms
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        let ms = self.origin.elapsed().as_millis();
        Instant::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    async fn sleep_until(&self, deadline: Instant) {
        // `now()` rounds down to whole milliseconds, so waking at `origin + deadline` means
        // `now() >= deadline` afterwards: never early.
        tokio::time::sleep_until(self.to_tokio(deadline)).await;
    }

    fn unix_time(&self) -> Option<UnixTime> {
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?;
        Some(UnixTime::from_millis(
            u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
        ))
    }
}
