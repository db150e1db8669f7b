//! The token state machine (`alf::machine`), driven by hand with fuzzed policies and event
//! sequences, as `tests/properties.rs` drives it with proptest. After every event:
//! - no token is usable at or after its `expires_at`;
//! - every token held has `refresh_at <= expires_at` and a generation never seen before;
//! - a retry is scheduled at or after now (and after any `Retry-After`), never for a
//!   credential error, never beyond the retry budget;
//! - a fetch that failed for good never leaves the machine `Fetching`, and keeps serving the
//!   previous token while it is still good.

#![no_main]

use alf::http::Response;
use alf::machine::{Check, Context, Fetched, Fetching, NoToken, State, StateKind, Valid};
use alf::response::{ParseError, TokenResponse, parse_token_response};
use alf::{Duration, Error, ErrorKind, Instant, OAuthErrorCode, RefreshPolicy, RetryPolicy};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

const N: usize = 64;

/// A span of time: mostly small, sometimes reaching the end of time.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Span {
    Millis(u16),
    Secs(u16),
    Hours(u8),
    Raw(u64),
    NearMax(u16),
}

impl Span {
    fn millis(self) -> u64 {
        match self {
            Self::Millis(ms) => u64::from(ms),
            Self::Secs(s) => u64::from(s) * 1000,
            Self::Hours(h) => u64::from(h) * 3_600_000,
            Self::Raw(r) => r,
            Self::NearMax(d) => u64::MAX - u64::from(d),
        }
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Outcome {
    Token { expires_in: Option<u64> },
    Timeout,
    Refused,
    Reset,
    NotJson,
    Status { which: u8, retry_after: Option<u64> },
}

const STATUSES: &[(u16, &str)] = &[
    (503, "<html>down</html>"),
    (500, r#"{"error":"server_error"}"#),
    (429, r#"{"error":"slow_down"}"#),
    (400, r#"{"error":"invalid_client"}"#),
    (
        401,
        r#"{"error":"invalid_client","error_description":"bad"}"#,
    ),
    (400, r#"{"error":"invalid_request"}"#),
    (401, ""),
    (403, "forbidden"),
    (200, r#"{"error":"invalid_client"}"#),
    (200, r#"{"error":"unauthorized_client"}"#),
    (503, r#"{"error":"invalid_client"}"#),
    (502, r#"{"error":"temporarily_unavailable"}"#),
];

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Event {
    Advance(Span),
    Fetch,
    Retry,
    Complete(Outcome),
    Check,
    Invalidate { right: bool },
    GiveUp,
    Adopt(Span),
}

const RETRY_STATUSES: [&[u16]; 4] = [
    alf::policy::DEFAULT_RETRY_STATUSES,
    &[],
    &[400, 401, 403, 429, 500, 503],
    &[200, 400, 401, 503],
];

#[derive(Debug, Arbitrary)]
struct Input {
    margin: Span,
    jitter: Span,
    default_lifetime: Span,
    max_lifetime: Span,
    total: u8,
    statuses: u8,
    backoff_factor: Span,
    backoff_max: Span,
    retry_jitter: Span,
    transport_errors: bool,
    seed: u64,
    start: Span,
    events: Vec<Event>,
}

fn token_response(expires_in: Option<u64>) -> TokenResponse<N> {
    let body = match expires_in {
        Some(n) => format!(r#"{{"access_token":"tok","token_type":"Bearer","expires_in":{n}}}"#),
        None => r#"{"access_token":"tok"}"#.to_string(),
    };
    parse_token_response::<N>(
        &Response::new(200, body.as_bytes()),
        &mut [0; 64],
        "s3cret",
        None,
    )
    .expect("a good token response")
}

fn result_of(outcome: Outcome) -> Result<TokenResponse<N>, ParseError> {
    use embedded_io::ErrorKind as K;
    match outcome {
        // `expires_in: 0` is refused by the parser; the machine sees positive lifetimes.
        Outcome::Token { expires_in } => Ok(token_response(expires_in.map(|n| n.max(1)))),
        Outcome::Timeout => Err(Error::Transport(K::TimedOut)),
        Outcome::Refused => Err(Error::Transport(K::ConnectionRefused)),
        Outcome::Reset => Err(Error::Transport(K::ConnectionReset)),
        Outcome::NotJson => {
            parse_token_response::<N>(&Response::new(200, b"<html>"), &mut [0; 64], "s3cret", None)
        }
        Outcome::Status { which, retry_after } => {
            let (status, body) = STATUSES[usize::from(which) % STATUSES.len()];
            let mut r = Response::new(status, body.as_bytes());
            if let Some(s) = retry_after {
                r.observe_header("Retry-After", s.to_string().as_bytes());
            }
            let e = parse_token_response::<N>(&r, &mut [0; 64], "s3cret", None);
            assert!(matches!(e, Err(Error::TokenEndpoint(_))), "{e:?}");
            e
        }
    }
}

fn is_credential_error(e: &ParseError) -> bool {
    match e {
        Error::TokenEndpoint(e) => {
            matches!(e.status, 400 | 401 | 403)
                || matches!(
                    e.code,
                    Some(OAuthErrorCode::InvalidClient | OAuthErrorCode::UnauthorizedClient)
                )
        }
        _ => false,
    }
}

struct Machine {
    ctx: Context,
    state: State<N>,
    now: Instant,
    max_attempts: u8,
    last_generation: u32,
}

impl Machine {
    fn invariants(&self) {
        let now = self.now;
        if let Some(t) = self.state.usable_token(now) {
            assert!(
                t.expires_at() > now,
                "usable token expired: {t:?} at {now:?}"
            );
        }
        match &self.state {
            State::Valid(v) => {
                let t = v.token();
                assert!(t.refresh_at() <= t.expires_at(), "{t:?}");
                assert_ne!(t.generation(), 0);
                assert_eq!(self.state.poll_at(), Some(t.refresh_at()));
            }
            State::Fetching(f) => {
                if let Some(t) = f.stale(now) {
                    assert!(t.refresh_at() <= t.expires_at(), "{t:?}");
                    assert!(t.expires_at() > now);
                }
                assert!(
                    f.attempt() >= 1 && f.attempt() <= self.max_attempts,
                    "attempt {}",
                    f.attempt()
                );
                assert_eq!(self.state.poll_at(), f.retry_at());
            }
            State::NoToken(_) | State::Expired(_) => {
                assert_eq!(self.state.poll_at(), None);
                assert!(self.state.usable_token(now).is_none());
            }
        }
    }

    fn new_token(&mut self, t: &alf::machine::Token<N>) {
        assert!(t.generation() > self.last_generation, "generation reused");
        self.last_generation = t.generation();
        assert_eq!(t.access_token().secret(), "tok");
    }

    fn step(&mut self, event: Event) {
        let now = self.now;
        self.state = match (self.state.take(), event) {
            (s, Event::Advance(span)) => {
                self.now = now + Duration::from_millis(span.millis());
                s
            }
            (State::NoToken(n), Event::Fetch) => State::Fetching(n.fetch(now)),
            (State::Expired(e), Event::Fetch) => State::Fetching(e.fetch(now)),
            (State::Valid(v), Event::Fetch) => {
                let t = v.token().clone();
                let f = v.refresh(now);
                assert_eq!((f.attempt(), f.sent_at()), (1, now));
                let want = (now < t.expires_at()).then_some(t.generation());
                assert_eq!(f.stale(now).map(|t| t.generation()), want);
                State::Fetching(f)
            }
            (State::Fetching(f), Event::Retry) => {
                let waiting = f.retry_at().is_some();
                let before = f.attempt();
                let f = f.retry(now);
                let want = if waiting {
                    before.saturating_add(1)
                } else {
                    before
                };
                assert_eq!(f.attempt(), want);
                assert_eq!((f.sent_at(), f.retry_at()), (now, None));
                State::Fetching(f)
            }
            (State::Fetching(f), Event::Complete(o)) => self.complete(f, o),
            (State::NoToken(n), Event::Complete(o)) => self.complete(n.fetch(now), o),
            (State::Expired(e), Event::Complete(o)) => self.complete(e.fetch(now), o),
            (State::Valid(v), Event::Complete(o)) => self.complete(v.refresh(now), o),
            (State::Valid(v), Event::Check) => {
                let t = v.token().clone();
                match v.check(now) {
                    Check::Fresh(v) => {
                        assert!(now < t.refresh_at());
                        State::Valid(v)
                    }
                    Check::RefreshDue(v) => {
                        assert!(t.refresh_at() <= now && now < t.expires_at());
                        State::Valid(v)
                    }
                    Check::Expired(e) => {
                        assert!(now >= t.expires_at());
                        assert_eq!(e.last_generation(), t.generation());
                        State::Expired(e)
                    }
                }
            }
            (State::Valid(v), Event::Invalidate { right }) => {
                let g = v.token().generation();
                let target = if right { g } else { g.wrapping_add(1) };
                match v.invalidate(target) {
                    Ok(e) => {
                        assert!(right);
                        assert_eq!(e.last_generation(), g);
                        State::Expired(e)
                    }
                    Err(v) => {
                        assert!(!right);
                        State::Valid(v)
                    }
                }
            }
            (State::Fetching(f), Event::Invalidate { right }) => {
                let stale = f.stale(Instant::ZERO).map(|t| t.generation());
                let target = match (stale, right) {
                    (Some(g), true) => g,
                    (Some(g), false) => g.wrapping_add(1),
                    (None, _) => self.last_generation,
                };
                let (f, dropped) = f.reject_stale(target);
                assert_eq!(dropped, stale == Some(target));
                if dropped {
                    assert!(f.stale(Instant::ZERO).is_none());
                }
                State::Fetching(f)
            }
            (State::Fetching(f), Event::GiveUp) => {
                let stale = f.stale(now).map(|t| t.generation());
                let s = f.give_up(&self.ctx, now);
                assert_ne!(s.kind(), StateKind::Fetching);
                assert_eq!(s.usable_token(now).map(|t| t.generation()), stale);
                s
            }
            (s @ (State::NoToken(_) | State::Expired(_)), Event::Adopt(span)) => {
                let value = token_response(Some(1)).token;
                let remaining = Duration::from_millis(span.millis());
                match Valid::adopt(&mut self.ctx, value, now, remaining) {
                    Some(v) => {
                        assert!(v.token().expires_at() > now);
                        assert!(v.token().expires_at() <= now + remaining);
                        let t = v.token().clone();
                        self.new_token(&t);
                        State::Valid(v)
                    }
                    None => {
                        assert!(remaining == Duration::ZERO || now == Instant::MAX);
                        s
                    }
                }
            }
            (s, _) => s,
        };
        self.invariants();
    }

    fn complete(&mut self, f: Fetching<N>, outcome: Outcome) -> State<N> {
        let now = self.now;
        let (attempt, sent_at) = (f.attempt(), f.sent_at());
        let stale = f.stale(now).map(|t| t.generation());
        let result = result_of(outcome);
        match f.complete(&mut self.ctx, now, result) {
            Fetched::Valid(v) => {
                let t = v.token().clone();
                let Outcome::Token { expires_in } = outcome else {
                    panic!("a token from {outcome:?}");
                };
                let policy = self.ctx.refresh;
                let lifetime = expires_in
                    .map(|n| n.max(1))
                    .map_or(policy.default_lifetime, Duration::from_secs)
                    .min(policy.max_lifetime);
                assert!(t.expires_at() > now);
                // Expiry is measured from when the request was sent.
                assert_eq!(t.expires_at(), sent_at + lifetime);
                let half = Duration::from_millis(lifetime.as_millis() / 2);
                let early = t.expires_at() - t.refresh_at();
                assert!(early >= policy.margin.min(half), "{early:?} early");
                assert!(early <= policy.margin.saturating_add(policy.jitter).min(half));
                self.new_token(&t);
                State::Valid(v)
            }
            Fetched::Retry {
                fetching,
                at,
                error,
            } => {
                assert!(at >= now, "retry at {at:?} before now {now:?}");
                assert_eq!(fetching.retry_at(), Some(at));
                assert_eq!(fetching.attempt(), attempt);
                assert!(attempt <= self.ctx.retry.total, "retry beyond the budget");
                assert!(
                    !is_credential_error(&error),
                    "credential error retried: {error:?}"
                );
                assert_eq!(error.kind(), ErrorKind::Retryable);
                if let Error::TokenEndpoint(e) = &error {
                    assert!(self.ctx.retry.statuses.contains(&e.status));
                    if let Some(ms) = e.retry_after_ms {
                        assert!(at >= now + Duration::from_millis(ms));
                    }
                } else {
                    assert!(self.ctx.retry.transport_errors);
                }
                assert_eq!(fetching.stale(now).map(|t| t.generation()), stale);
                State::Fetching(fetching)
            }
            Fetched::Failed { state, error } => {
                assert_ne!(state.kind(), StateKind::Fetching, "failed into Fetching");
                let _ = format!("{error:?} {error}");
                // Stale-while-revalidate: the old token is kept while it is good.
                assert_eq!(state.usable_token(now).map(|t| t.generation()), stale);
                state
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let lifetime = |s: Span| Duration::from_millis(s.millis().max(1));
    let refresh = RefreshPolicy::DEFAULT
        .margin(Duration::from_millis(input.margin.millis()))
        .jitter(Duration::from_millis(input.jitter.millis()))
        .default_lifetime(lifetime(input.default_lifetime))
        .max_lifetime(lifetime(input.max_lifetime));
    let retry = RetryPolicy::DEFAULT
        .total(input.total % 8)
        .statuses(RETRY_STATUSES[usize::from(input.statuses) % RETRY_STATUSES.len()])
        .backoff_factor(Duration::from_millis(input.backoff_factor.millis()))
        .backoff_max(Duration::from_millis(input.backoff_max.millis()))
        .jitter(Duration::from_millis(input.retry_jitter.millis()))
        .transport_errors(input.transport_errors);
    let mut m = Machine {
        ctx: Context::new(refresh, retry, input.seed),
        state: State::NoToken(NoToken::new()),
        now: Instant::from_millis(input.start.millis()),
        max_attempts: retry.total.saturating_add(1),
        last_generation: 0,
    };
    m.invariants();
    for event in input.events.into_iter().take(256) {
        m.step(event);
    }
});
