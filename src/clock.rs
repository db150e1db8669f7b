//! Clocks: where alf gets the time, and how the driver waits.

use core::fmt;

use crate::time::{Duration, Instant};

/// A monotonic clock, plus an optional wall clock.
///
/// # Contract
/// - [`now`](Clock::now) never goes backwards and never fails. alf measures token lifetimes
///   and backoff on it; a clock that jumps back makes tokens live longer than the server
///   said, a clock that jumps forward only makes alf refresh early.
/// - [`sleep_until`](Clock::sleep_until) completes at or after `deadline`, never before
///   (returning immediately for a deadline in the past). It is cancel-safe: dropping the future
///   has no effect. alf only sleeps between token request attempts (backoff); the state
///   machine itself never sleeps and reports its deadlines through
///   [`State::poll_at`](crate::State::poll_at).
/// - [`unix_time`](Clock::unix_time) is the wall clock as a [`UnixTime`] (milliseconds since
///   1970 and the reading's resolution), or `None` when the device does not know it (no RTC,
///   no SNTP yet). It is only used to read and write tokens in a shared
///   [`TokenStore`](crate::TokenStore) and to decode `Retry-After` dates; without it, a stored
///   token counts as "expiry unknown" and is not used. A reading must not be later than the
///   real time, nor earlier than the real time minus its resolution: a clock that only knows
///   whole seconds returns [`UnixTime::from_secs`], and alf then counts a stored token's
///   lifetime from the end of that second, so it never outlives its expiry.
///
/// Implementations: `alf-reqwless` (embassy-time), `alf-reqwest` (tokio), and
/// [`testing::MockClock`](crate::testing::MockClock) for tests.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// The current monotonic time.
    fn now(&self) -> Instant;

    /// Wait until `deadline` has passed.
    async fn sleep_until(&self, deadline: Instant);

    /// The wall time (since the Unix epoch, with its resolution), if it is known.
    fn unix_time(&self) -> Option<UnixTime> {
        None
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }
    async fn sleep_until(&self, deadline: Instant) {
        (**self).sleep_until(deadline).await;
    }
    fn unix_time(&self) -> Option<UnixTime> {
        (**self).unix_time()
    }
}

/// A reading of the wall clock: milliseconds since the Unix epoch (1970-01-01 00:00:00 UTC),
/// and the resolution of the reading.
///
/// The real time is somewhere in `[as_millis(), as_millis() + resolution)`: a clock that
/// counts whole seconds (an RTC, a seconds-only SNTP client) reads `12` for any time from
/// `12.000` to `12.999` s. alf uses both ends, so that rounding never makes a token live
/// longer than its server said:
/// - saving a token to a [`TokenStore`](crate::TokenStore), its expiry is computed from
///   [`as_millis`](Self::as_millis) (the earliest time the reading stands for), so the stored
///   expiry is never later than the real one;
/// - loading a token, its time left is counted from the end of that interval
///   ([`latest_millis`](Self::latest_millis) + 1), so a loaded token never outlives its
///   expiry.
///
/// With a millisecond clock a shared token loses one millisecond of its lifetime when it is
/// loaded; with a seconds clock, up to a second.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnixTime {
    millis: u64,
    /// At least 1.
    resolution_ms: u64,
}

impl UnixTime {
    /// `ms` milliseconds since the Unix epoch, read from a clock with millisecond resolution.
    pub const fn from_millis(ms: u64) -> Self {
        Self {
            millis: ms,
            resolution_ms: 1,
        }
    }

    /// `s` whole seconds since the Unix epoch (saturating), read from a clock that only counts
    /// seconds: the resolution is one second.
    pub const fn from_secs(s: u64) -> Self {
        Self {
            millis: s.saturating_mul(1000),
            resolution_ms: 1000,
        }
    }

    /// The same reading with another resolution (at least 1 ms; zero counts as 1 ms): for a
    /// clock whose readings are in milliseconds but only good to `resolution`, such as a
    /// seconds wall clock carried forward on a millisecond monotonic clock.
    pub const fn with_resolution(self, resolution: Duration) -> Self {
        let r = resolution.as_millis();
        Self {
            millis: self.millis,
            resolution_ms: if r == 0 { 1 } else { r },
        }
    }

    /// Milliseconds since the Unix epoch: the earliest time this reading stands for.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub const fn as_secs(self) -> u64 {
        self.millis / 1000
    }

    /// The resolution of the reading: 1 ms for [`from_millis`](Self::from_millis), 1 s for
    /// [`from_secs`](Self::from_secs).
    pub const fn resolution(self) -> Duration {
        Duration::from_millis(self.resolution_ms)
    }

    /// The latest millisecond this reading stands for: `as_millis() + resolution - 1`
    /// (saturating). alf counts a loaded token's time left from the end of it (one
    /// millisecond later).
    pub const fn latest_millis(self) -> u64 {
        self.millis.saturating_add(self.resolution_ms - 1)
    }
}

impl fmt::Debug for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixTime")
            .field("millis", &self.millis)
            .field("resolution_ms", &self.resolution_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_and_their_ranges() {
        let ms = UnixTime::from_millis(1_700_000_000_123);
        assert_eq!(ms.as_millis(), 1_700_000_000_123);
        assert_eq!(ms.as_secs(), 1_700_000_000);
        assert_eq!(ms.resolution(), Duration::from_millis(1));
        assert_eq!(ms.latest_millis(), 1_700_000_000_123);

        let s = UnixTime::from_secs(1_700_000_000);
        assert_eq!(s.as_millis(), 1_700_000_000_000);
        assert_eq!(s.as_secs(), 1_700_000_000);
        assert_eq!(s.resolution(), Duration::from_secs(1));
        assert_eq!(s.latest_millis(), 1_700_000_000_999);

        let r = UnixTime::from_millis(5_500).with_resolution(Duration::from_secs(1));
        assert_eq!((r.as_millis(), r.latest_millis()), (5_500, 6_499));
        let zero = UnixTime::from_millis(7).with_resolution(Duration::ZERO);
        assert_eq!(zero.resolution(), Duration::from_millis(1));
        assert_eq!(zero.latest_millis(), 7);
    }

    #[test]
    fn extremes_saturate() {
        assert_eq!(UnixTime::from_secs(u64::MAX).as_millis(), u64::MAX);
        assert_eq!(UnixTime::from_secs(u64::MAX).latest_millis(), u64::MAX);
        assert_eq!(
            UnixTime::from_millis(u64::MAX - 1).latest_millis(),
            u64::MAX - 1
        );
        assert_eq!(
            UnixTime::from_millis(u64::MAX - 1)
                .with_resolution(Duration::from_secs(1))
                .latest_millis(),
            u64::MAX
        );
    }
}
