//! The token state machine, sans-IO: `NoToken → Fetching → Valid → Expired`.
//!
//! Each state is its own type, and a transition consumes the old state and returns the new one,
//! so a state's operations exist only where they make sense (only a [`Valid`] token can be
//! read; only a [`Fetching`] state takes a response). A transition that fails hands back a
//! usable state, never nothing. [`State`] holds whichever state is current at run time, as
//! rp-hal's `Dyn*` pins do for typestate pins.
//!
//! Time is an argument: the machine never reads a clock, never sleeps and never does I/O. It
//! says when it next needs attention through [`State::poll_at`]. The async
//! [`Client`](crate::Client) drives it; anyone can drive it by hand, as the tests do.
//!
//! ```text
//!            fetch             complete: token               check: refresh due
//!  NoToken ─────────▶ Fetching ──────────────────▶ Valid ─────────────────────▶ Fetching (stale
//!     ▲                 │  ▲ retry after backoff    │  ▲                         token kept)
//!     └── give up ──────┘  └────────────┘          │  └ refresh fails: stale token served
//!                                                   ▼     until expiry
//!                                  check: expired / invalidate (401)
//!                                               Expired ──fetch──▶ Fetching
//! ```

use crate::error::{Error, ErrorKind, ResponseError};
use crate::policy::{RefreshPolicy, RetryPolicy, Rng};
use crate::response::{ParseError, TokenResponse};
use crate::secret::AccessToken;
use crate::time::{Duration, Instant};

/// A token the machine holds, with its schedule.
///
/// Invariant: `refresh_at <= expires_at`. It is never handed out at or after `expires_at`.
#[derive(Debug, Clone)]
pub struct Token<const N: usize> {
    value: AccessToken<N>,
    generation: u32,
    refresh_at: Instant,
    expires_at: Instant,
}

impl<const N: usize> Token<N> {
    /// The access token.
    pub fn access_token(&self) -> &AccessToken<N> {
        &self.value
    }
    /// A number that identifies this token among all tokens this machine has held, used to
    /// invalidate exactly the token a server rejected.
    pub fn generation(&self) -> u32 {
        self.generation
    }
    /// From when a refresh is due.
    pub fn refresh_at(&self) -> Instant {
        self.refresh_at
    }
    /// From when the token is never sent.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }
}

/// No token, and none being fetched.
#[derive(Debug)]
pub struct NoToken(());

/// A token request is in flight, or the machine is waiting to retry one.
#[derive(Debug)]
pub struct Fetching<const N: usize> {
    /// Attempts made so far, the one in flight included.
    attempt: u8,
    /// When the attempt in flight was sent: expiry is measured from here.
    sent_at: Instant,
    /// `Some` while waiting to retry.
    retry_at: Option<Instant>,
    /// The previous token during a refresh, served until it expires.
    stale: Option<Token<N>>,
}

/// A token is held and may be used.
#[derive(Debug)]
pub struct Valid<const N: usize> {
    token: Token<N>,
}

/// The token expired or was rejected; it has been wiped.
#[derive(Debug)]
pub struct Expired {
    last_generation: u32,
}

/// The machine's current state, whichever it is.
#[derive(Debug)]
pub enum State<const N: usize> {
    /// See [`NoToken`].
    NoToken(NoToken),
    /// See [`Fetching`].
    Fetching(Fetching<N>),
    /// See [`Valid`].
    Valid(Valid<N>),
    /// See [`Expired`].
    Expired(Expired),
}

/// The name of a [`State`], for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StateKind {
    /// [`State::NoToken`]
    NoToken,
    /// [`State::Fetching`]
    Fetching,
    /// [`State::Valid`]
    Valid,
    /// [`State::Expired`]
    Expired,
}

/// What the machine needs to decide: policies, a random source for jitter, and the generation
/// counter. One per client.
#[derive(Debug, Clone)]
pub struct Context {
    /// When to refresh.
    pub refresh: RefreshPolicy,
    /// How to retry.
    pub retry: RetryPolicy,
    /// Jitter source.
    pub rng: Rng,
    next_generation: u32,
}

impl Context {
    /// A context with these policies and jitter seed.
    pub const fn new(refresh: RefreshPolicy, retry: RetryPolicy, seed: u64) -> Self {
        Self {
            refresh,
            retry,
            rng: Rng::new(seed),
            next_generation: 1,
        }
    }

    fn token<const N: usize>(
        &mut self,
        value: AccessToken<N>,
        refresh_at: Instant,
        expires_at: Instant,
    ) -> Token<N> {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        Token {
            value,
            generation,
            refresh_at,
            expires_at,
        }
    }
}

impl NoToken {
    /// The initial state.
    pub const fn new() -> Self {
        Self(())
    }
    /// Start fetching: the first attempt is sent at `now`.
    pub fn fetch<const N: usize>(self, now: Instant) -> Fetching<N> {
        Fetching::first(now, None)
    }
}

impl Default for NoToken {
    fn default() -> Self {
        Self::new()
    }
}

impl Expired {
    /// Start fetching a new token: the first attempt is sent at `now`.
    pub fn fetch<const N: usize>(self, now: Instant) -> Fetching<N> {
        Fetching::first(now, None)
    }
    /// The generation of the token that expired.
    pub fn last_generation(&self) -> u32 {
        self.last_generation
    }
}

/// The outcome of [`Valid::check`].
#[derive(Debug)]
pub enum Check<const N: usize> {
    /// Before `refresh_at`: use the token.
    Fresh(Valid<N>),
    /// Between `refresh_at` and `expires_at`: the token may be used, and a refresh is due.
    RefreshDue(Valid<N>),
    /// At or after `expires_at`: the token is gone.
    Expired(Expired),
}

impl<const N: usize> Valid<N> {
    /// The token.
    pub fn token(&self) -> &Token<N> {
        &self.token
    }

    /// `true` when [`check`](Self::check) at `now` would say [`Check::Fresh`]: before the
    /// refresh time (and so before the expiry). Looks without a transition, so the token is
    /// neither moved nor copied; use `check` to act on the answer.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.token.refresh_at && now < self.token.expires_at
    }

    /// Where the token stands at `now`.
    pub fn check(self, now: Instant) -> Check<N> {
        if now >= self.token.expires_at {
            Check::Expired(Expired {
                last_generation: self.token.generation,
            })
        } else if now >= self.token.refresh_at {
            Check::RefreshDue(self)
        } else {
            Check::Fresh(self)
        }
    }

    /// Start a refresh at `now`, keeping this token to serve until it expires.
    pub fn refresh(self, now: Instant) -> Fetching<N> {
        Fetching::first(now, Some(self.token))
    }

    /// A server rejected token `generation` (a 401). If it is this token, drop it; if this is a
    /// newer token (someone else already replaced the rejected one), keep it.
    pub fn invalidate(self, generation: u32) -> Result<Expired, Self> {
        if self.token.generation == generation {
            Ok(Expired {
                last_generation: generation,
            })
        } else {
            Err(self)
        }
    }

    /// Adopt a token from a [`TokenStore`](crate::TokenStore) or any other source.
    pub fn adopt(
        ctx: &mut Context,
        value: AccessToken<N>,
        now: Instant,
        remaining: Duration,
    ) -> Option<Self> {
        let (refresh_at, expires_at) = ctx.refresh.schedule(now, remaining, &mut ctx.rng);
        (expires_at > now).then(|| Self {
            token: ctx.token(value, refresh_at, expires_at),
        })
    }
}

/// The outcome of [`Fetching::complete`].
#[derive(Debug)]
pub enum Fetched<const N: usize> {
    /// A new token.
    Valid(Valid<N>),
    /// The attempt failed and will be retried: call [`Fetching::retry`] at `at`.
    Retry {
        /// The machine, waiting.
        fetching: Fetching<N>,
        /// When to retry.
        at: Instant,
        /// Why the attempt failed.
        error: ParseError,
    },
    /// The fetch failed for good. `state` is [`State::Valid`] when a previous token is still
    /// good (stale-while-revalidate); the caller may use it.
    Failed {
        /// The state to continue from.
        state: State<N>,
        /// Why.
        error: ParseError,
    },
}

impl<const N: usize> Fetching<N> {
    fn first(now: Instant, stale: Option<Token<N>>) -> Self {
        Self {
            attempt: 1,
            sent_at: now,
            retry_at: None,
            stale,
        }
    }

    /// Attempts made, the current one included.
    pub fn attempt(&self) -> u8 {
        self.attempt
    }
    /// When the current attempt was sent.
    pub fn sent_at(&self) -> Instant {
        self.sent_at
    }
    /// When the next attempt is due, while waiting to retry.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }
    /// The previous token, still usable before its expiry, during a refresh.
    pub fn stale(&self, now: Instant) -> Option<&Token<N>> {
        self.stale.as_ref().filter(|t| now < t.expires_at)
    }

    /// The previous token, `generation`, was rejected by a server: stop serving it. Returns
    /// whether it was dropped.
    pub fn reject_stale(mut self, generation: u32) -> (Self, bool) {
        let dropped = self
            .stale
            .as_ref()
            .is_some_and(|t| t.generation == generation);
        if dropped {
            self.stale = None;
        }
        (self, dropped)
    }

    /// Send the next attempt at `now` (after waiting for [`retry_at`](Self::retry_at)).
    pub fn retry(mut self, now: Instant) -> Self {
        if self.retry_at.take().is_some() {
            self.attempt = self.attempt.saturating_add(1);
        }
        self.sent_at = now;
        self
    }

    /// The attempt in flight is over: `result` is the parsed response, or the error the
    /// transport or the parser reported. `now` is when the response arrived.
    pub fn complete(
        self,
        ctx: &mut Context,
        now: Instant,
        result: Result<TokenResponse<N>, ParseError>,
    ) -> Fetched<N> {
        let error = match result {
            Ok(resp) => {
                let lifetime = resp.lifetime(ctx.refresh.default_lifetime);
                let (refresh_at, expires_at) =
                    ctx.refresh.schedule(self.sent_at, lifetime, &mut ctx.rng);
                if expires_at > now {
                    return Fetched::Valid(Valid {
                        token: ctx.token(resp.token, refresh_at, expires_at),
                    });
                }
                // The token's whole life passed while it was on its way.
                Error::InvalidResponse(ResponseError::InvalidExpiresIn)
            }
            Err(e) => e,
        };
        if self.attempt <= ctx.retry.total && retryable(&ctx.retry, &error) {
            let retry_after = match &error {
                Error::TokenEndpoint(e) => e.retry_after_ms.map(Duration::from_millis),
                _ => None,
            };
            if let Some(wait) = ctx.retry.wait(self.attempt, retry_after, &mut ctx.rng) {
                let at = now + wait;
                return Fetched::Retry {
                    fetching: Self {
                        retry_at: Some(at),
                        ..self
                    },
                    at,
                    error,
                };
            }
        }
        Fetched::Failed {
            state: self.give_up(ctx, now),
            error,
        }
    }

    /// Stop fetching at `now` (the fetch failed for good, or its caller went away): back to the
    /// previous token if it is still good, else to no token.
    pub fn give_up(self, ctx: &Context, now: Instant) -> State<N> {
        match self.stale {
            Some(mut t) if now < t.expires_at => {
                // Try again after a pause, not on every request.
                t.refresh_at = (now + ctx.retry.backoff_max).min(t.expires_at);
                State::Valid(Valid { token: t })
            }
            Some(t) => State::Expired(Expired {
                last_generation: t.generation,
            }),
            None => State::NoToken(NoToken::new()),
        }
    }
}

/// Whether an error is worth another attempt under `policy`.
fn retryable(policy: &RetryPolicy, error: &ParseError) -> bool {
    match error {
        Error::TokenEndpoint(e) => {
            e.kind() != ErrorKind::Credentials && policy.statuses.contains(&e.status)
        }
        Error::Transport(_) | Error::SharedTransport(_) => {
            policy.transport_errors && error.kind() == ErrorKind::Retryable
        }
        _ => false,
    }
}

impl<const N: usize> Default for State<N> {
    fn default() -> Self {
        Self::NoToken(NoToken::new())
    }
}

impl<const N: usize> State<N> {
    /// Which state this is.
    pub fn kind(&self) -> StateKind {
        match self {
            Self::NoToken(_) => StateKind::NoToken,
            Self::Fetching(_) => StateKind::Fetching,
            Self::Valid(_) => StateKind::Valid,
            Self::Expired(_) => StateKind::Expired,
        }
    }

    /// When the machine next needs attention without any request: the refresh time of a
    /// valid token, the retry time of a waiting fetch. `None` when nothing is scheduled (no
    /// token, or an attempt in flight).
    pub fn poll_at(&self) -> Option<Instant> {
        match self {
            Self::Valid(v) => Some(v.token.refresh_at),
            Self::Fetching(f) => f.retry_at,
            Self::NoToken(_) | Self::Expired(_) => None,
        }
    }

    /// The token that may be sent at `now`: a valid one before its expiry, or the stale one
    /// during a refresh. Never a token at or after its expiry.
    pub fn usable_token(&self, now: Instant) -> Option<&Token<N>> {
        match self {
            Self::Valid(v) if now < v.token.expires_at => Some(&v.token),
            Self::Fetching(f) => f.stale(now),
            _ => None,
        }
    }

    /// The token if the state is [`Valid`] and the token is fresh at `now` (see
    /// [`Valid::is_fresh`]): usable, with no refresh due. A look by reference, no transition.
    pub fn fresh_token(&self, now: Instant) -> Option<&Token<N>> {
        match self {
            Self::Valid(v) if v.is_fresh(now) => Some(&v.token),
            _ => None,
        }
    }

    /// Move the state out, leaving `NoToken` in its place (to run a transition).
    pub fn take(&mut self) -> Self {
        core::mem::take(self)
    }
}
