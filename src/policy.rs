//! Policies: when to refresh a token, and how to retry the token request.
//!
//! Both are `#[non_exhaustive]` structs with a `Default` and `const` builder methods, so new
//! knobs can be added without breaking anyone.

use crate::time::{Duration, Instant};

/// When a token is refreshed, and how `expires_in` is interpreted.
///
/// A token received with lifetime `L` (measured from when its request was *sent*) expires at
/// `sent_at + L` and is refreshed from `refresh_at = expires_at - margin - random(0..=jitter)`,
/// where `margin + jitter` is never more than half of `L`. Between `refresh_at` and
/// `expires_at` the old token is still served while a refresh runs, and if the refresh fails;
/// from `expires_at` on it is never sent.
///
/// `expires_in` outcomes:
/// - missing or `null`: lifetime [`default_lifetime`](Self::default_lifetime);
/// - a positive number, or a string of digits (some providers send `"3600"`): that many
///   seconds, fractions rounded down, at most [`max_lifetime`](Self::max_lifetime) (so an
///   absurd value like `1e30` means `max_lifetime`);
/// - zero, negative, a fraction below one, or any other value: the response is rejected with
///   [`ResponseError::InvalidExpiresIn`](crate::ResponseError::InvalidExpiresIn), since such a
///   token is already expired or its lifetime cannot be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct RefreshPolicy {
    /// Refresh this long before expiry. Default 60 s.
    pub margin: Duration,
    /// Refresh up to this much earlier still, at random, so fleets of devices that started
    /// together do not refresh in step. Default 10 s.
    pub jitter: Duration,
    /// Lifetime assumed when `expires_in` is missing. Default 1 hour.
    pub default_lifetime: Duration,
    /// Longest lifetime believed. Default 24 hours.
    pub max_lifetime: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl RefreshPolicy {
    /// The default policy (see the field docs).
    pub const DEFAULT: Self = Self {
        margin: Duration::from_secs(60),
        jitter: Duration::from_secs(10),
        default_lifetime: Duration::from_secs(3600),
        max_lifetime: Duration::from_secs(24 * 3600),
    };
    /// Set [`margin`](Self::margin).
    pub const fn margin(mut self, d: Duration) -> Self {
        self.margin = d;
        self
    }
    /// Set [`jitter`](Self::jitter).
    pub const fn jitter(mut self, d: Duration) -> Self {
        self.jitter = d;
        self
    }
    /// Set [`default_lifetime`](Self::default_lifetime).
    pub const fn default_lifetime(mut self, d: Duration) -> Self {
        self.default_lifetime = d;
        self
    }
    /// Set [`max_lifetime`](Self::max_lifetime).
    pub const fn max_lifetime(mut self, d: Duration) -> Self {
        self.max_lifetime = d;
        self
    }

    /// `(refresh_at, expires_at)` for a token whose request was sent at `sent_at`.
    pub fn schedule(
        &self,
        sent_at: Instant,
        lifetime: Duration,
        rng: &mut Rng,
    ) -> (Instant, Instant) {
        let lifetime = lifetime.min(self.max_lifetime);
        let expires_at = sent_at + lifetime;
        let half = Duration::from_millis(lifetime.as_millis() / 2);
        let margin = self.margin.min(half);
        let jitter = Duration::from_millis(rng.below(self.jitter.as_millis().saturating_add(1)));
        let early = margin.saturating_add(jitter).min(half);
        (expires_at.saturating_sub(early), expires_at)
    }
}

/// Statuses retried by default: 429 and the transient 5xx, as urllib3 users expect.
pub const DEFAULT_RETRY_STATUSES: &[u16] = &[429, 500, 502, 503, 504];

/// How the token request is retried, modelled on urllib3's `Retry`.
///
/// Retry `k` (1-based) waits `backoff_factor * 2^(k-1)`, capped at `backoff_max`, plus a random
/// `0..=jitter`. A `Retry-After` on a retried status is honoured when it is longer than that
/// wait; when it is longer than `backoff_max`, alf does not wait that long and returns the
/// error instead. Transport errors that may be transient (timeouts, refused or reset
/// connections) are retried; credential errors (`invalid_client`, `unauthorized_client`, any
/// 400/401/403) never are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt. Default 3 (so at most 4 requests per fetch).
    pub total: u8,
    /// HTTP statuses that are retried. Default [`DEFAULT_RETRY_STATUSES`].
    pub statuses: &'static [u16],
    /// Base of the exponential backoff. Default 300 ms.
    pub backoff_factor: Duration,
    /// Longest wait between attempts. Default 30 s. Also the cooldown after the token endpoint
    /// rejects the credentials: for that long, callers get the same error without a new token
    /// request (so an application loop cannot hammer the endpoint with a wrong secret).
    pub backoff_max: Duration,
    /// Random extra wait, `0..=jitter`. Default 100 ms.
    pub jitter: Duration,
    /// Retry transient transport errors. Default `true`.
    pub transport_errors: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl RetryPolicy {
    /// The default policy (see the field docs).
    pub const DEFAULT: Self = Self {
        total: 3,
        statuses: DEFAULT_RETRY_STATUSES,
        backoff_factor: Duration::from_millis(300),
        backoff_max: Duration::from_secs(30),
        jitter: Duration::from_millis(100),
        transport_errors: true,
    };
    /// Never retry.
    pub const NONE: Self = Self {
        total: 0,
        ..Self::DEFAULT
    };

    /// Set [`total`](Self::total).
    pub const fn total(mut self, n: u8) -> Self {
        self.total = n;
        self
    }
    /// Set [`statuses`](Self::statuses).
    pub const fn statuses(mut self, s: &'static [u16]) -> Self {
        self.statuses = s;
        self
    }
    /// Set [`backoff_factor`](Self::backoff_factor).
    pub const fn backoff_factor(mut self, d: Duration) -> Self {
        self.backoff_factor = d;
        self
    }
    /// Set [`backoff_max`](Self::backoff_max).
    pub const fn backoff_max(mut self, d: Duration) -> Self {
        self.backoff_max = d;
        self
    }
    /// Set [`jitter`](Self::jitter).
    pub const fn jitter(mut self, d: Duration) -> Self {
        self.jitter = d;
        self
    }
    /// Set [`transport_errors`](Self::transport_errors).
    pub const fn transport_errors(mut self, yes: bool) -> Self {
        self.transport_errors = yes;
        self
    }

    /// The wait before retry number `retry` (1-based), without `Retry-After`.
    pub fn backoff(&self, retry: u8, rng: &mut Rng) -> Duration {
        let exp = u32::from(retry.saturating_sub(1)).min(63);
        let base = self
            .backoff_factor
            .saturating_mul(1u64 << exp)
            .min(self.backoff_max);
        base.saturating_add(Duration::from_millis(
            rng.below(self.jitter.as_millis().saturating_add(1)),
        ))
    }

    /// The wait before retry number `retry`, given the server's `Retry-After` delay, or `None`
    /// when the server asks for more than [`backoff_max`](Self::backoff_max).
    pub fn wait(
        &self,
        retry: u8,
        retry_after: Option<Duration>,
        rng: &mut Rng,
    ) -> Option<Duration> {
        let backoff = self.backoff(retry, rng);
        match retry_after {
            Some(ra) if ra > self.backoff_max => None,
            Some(ra) if ra > backoff => Some(ra),
            _ => Some(backoff),
        }
    }
}

/// A small deterministic random source for jitter (SplitMix64). Not for cryptography.
///
/// Seed it differently on each device (a hardware RNG value, a MAC address, a serial number)
/// through [`ConfigBuilder::jitter_seed`](crate::ConfigBuilder::jitter_seed), or every device
/// of a fleet jitters alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    /// A generator with this seed.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A value in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_keeps_margin_within_half_the_lifetime() {
        let mut rng = Rng::new(1);
        let p = RefreshPolicy::DEFAULT.jitter(Duration::ZERO);
        let (r, e) = p.schedule(Instant::from_secs(10), Duration::from_secs(3600), &mut rng);
        assert_eq!(e, Instant::from_secs(3610));
        assert_eq!(r, Instant::from_secs(3550));
        // A 30 s token: margin 60 s is capped at 15 s.
        let (r, e) = p.schedule(Instant::ZERO, Duration::from_secs(30), &mut rng);
        assert_eq!((r, e), (Instant::from_secs(15), Instant::from_secs(30)));
        // Lifetimes are capped.
        let (_, e) = p.schedule(Instant::ZERO, Duration::MAX, &mut rng);
        assert_eq!(e, Instant::ZERO + p.max_lifetime);
        // Near the end of time nothing overflows.
        let (r, e) = p.schedule(Instant::MAX, Duration::from_secs(100), &mut rng);
        assert!(r <= e);
    }

    #[test]
    fn jitter_spreads_refreshes_but_stays_in_bounds() {
        let p = RefreshPolicy::DEFAULT
            .margin(Duration::from_secs(60))
            .jitter(Duration::from_secs(30));
        let mut seen = [false; 31];
        for seed in 0..200 {
            let mut rng = Rng::new(seed);
            let (r, e) = p.schedule(Instant::ZERO, Duration::from_secs(3600), &mut rng);
            let early = (e - r).as_secs();
            assert!((60..=90).contains(&early), "{early}");
            seen[(early - 60) as usize] = true;
        }
        assert!(
            seen.iter().filter(|s| **s).count() > 20,
            "jitter does not spread"
        );
    }

    #[test]
    fn backoff_is_exponential_and_capped() {
        let p = RetryPolicy::DEFAULT
            .jitter(Duration::ZERO)
            .backoff_max(Duration::from_secs(2));
        let mut rng = Rng::new(0);
        let waits: [u64; 5] =
            core::array::from_fn(|i| p.backoff(i as u8 + 1, &mut rng).as_millis());
        assert_eq!(waits, [300, 600, 1200, 2000, 2000]);
        assert_eq!(p.backoff(255, &mut rng), Duration::from_secs(2));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = RetryPolicy::DEFAULT
            .jitter(Duration::ZERO)
            .backoff_max(Duration::from_secs(10));
        let mut rng = Rng::new(0);
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(5)), &mut rng),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            p.wait(1, Some(Duration::ZERO), &mut rng),
            Some(Duration::from_millis(300))
        );
        assert_eq!(p.wait(1, Some(Duration::from_secs(11)), &mut rng), None);
    }
}
