//! Clocks: where alf gets the time, and how the driver waits.

use crate::time::Instant;

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
/// - [`unix_time`](Clock::unix_time) is the wall clock in seconds since 1970, or `None` when
///   the device does not know it (no RTC, no SNTP yet). It is only used to read and write
///   tokens in a shared [`TokenStore`](crate::TokenStore) and to decode `Retry-After` dates;
///   without it, a stored token counts as "expiry unknown" and is not used.
///
/// Implementations: `alf-reqwless` (embassy-time), `alf-reqwest` (tokio), and
/// [`testing::MockClock`](crate::testing::MockClock) for tests.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// The current monotonic time.
    fn now(&self) -> Instant;

    /// Wait until `deadline` has passed.
    async fn sleep_until(&self, deadline: Instant);

    /// Seconds since the Unix epoch, if the wall time is known.
    fn unix_time(&self) -> Option<u64> {
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
    fn unix_time(&self) -> Option<u64> {
        (**self).unix_time()
    }
}
