//! The sans-IO state machine (`alf::machine`), driven by hand with explicit times.

use alf::machine::{Check, Context, Fetched, Fetching, NoToken, State, Valid};
use alf::response::{ParseError, TokenResponse};
use alf::{
    Duration, Error, ErrorKind, Instant, OAuthErrorCode, RefreshPolicy, Response, RetryPolicy,
    StateKind,
};

use crate::CaseResult;
use crate::wire::parse_n;

const N: usize = 64;

fn ctx() -> Context {
    Context::new(
        RefreshPolicy::DEFAULT.jitter(Duration::ZERO),
        RetryPolicy::DEFAULT.jitter(Duration::ZERO),
        7,
    )
}

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn token(body: &[u8]) -> Result<TokenResponse<N>, ParseError> {
    parse_n::<N>(200, body)
}

fn status(code: u16) -> ParseError {
    match parse_n::<N>(code, b"") {
        Err(e) => e,
        Ok(_) => Error::InvalidResponse(alf::ResponseError::NotJson),
    }
}

/// A valid token `m1`, sent at 10 s with a 120 s lifetime: refresh at 70 s, expiry at 130 s.
fn valid(ctx: &mut Context) -> Result<Valid<N>, crate::Failure> {
    let f: Fetching<N> = NoToken::new().fetch(secs(10));
    let resp = ok!(token(br#"{"access_token":"m1","expires_in":120}"#));
    match f.complete(ctx, secs(11), Ok(resp)) {
        Fetched::Valid(v) => Ok(v),
        other => fail!("expected a valid token, got {other:?}"),
    }
}

pub(crate) fn machine_fetch_valid_refresh_expire() -> CaseResult {
    let mut ctx = ctx();
    let f: Fetching<N> = NoToken::new().fetch(secs(10));
    ensure_eq!(
        (f.attempt(), f.sent_at(), f.retry_at()),
        (1, secs(10), None)
    );
    let state = State::Fetching(f);
    ensure_eq!((state.kind(), state.poll_at()), (StateKind::Fetching, None));
    ensure!(state.usable_token(secs(10)).is_none());

    let v = valid(&mut ctx)?;
    // Lifetime measured from when the request was sent (10 s), not when it arrived (11 s).
    ensure_eq!(v.token().expires_at(), secs(130));
    ensure_eq!(v.token().refresh_at(), secs(70));
    ensure_eq!(v.token().access_token().secret(), "m1");
    let g1 = v.token().generation();
    let state = State::Valid(v);
    ensure_eq!(
        (state.kind(), state.poll_at()),
        (StateKind::Valid, Some(secs(70)))
    );
    ensure!(state.usable_token(Instant::from_millis(129_999)).is_some());
    ensure!(
        state.usable_token(secs(130)).is_none(),
        "a token is served at its expiry"
    );
    let State::Valid(v) = state else {
        fail!("not valid")
    };

    let v = match v.check(Instant::from_millis(69_999)) {
        Check::Fresh(v) => v,
        other => fail!("at 69.999 s: {other:?}"),
    };
    let v = match v.check(secs(70)) {
        Check::RefreshDue(v) => v,
        other => fail!("at 70 s: {other:?}"),
    };
    let f = v.refresh(secs(70));
    ensure_eq!(f.stale(secs(100)).map(|t| t.generation()), Some(g1));
    ensure!(
        f.stale(secs(130)).is_none(),
        "stale token served at its expiry"
    );

    let resp = ok!(token(br#"{"access_token":"m2","expires_in":"120"}"#));
    let v2 = match f.complete(&mut ctx, secs(71), Ok(resp)) {
        Fetched::Valid(v) => v,
        other => fail!("refresh: {other:?}"),
    };
    let g2 = v2.token().generation();
    ensure!(g2 != g1);
    ensure_eq!(
        (v2.token().refresh_at(), v2.token().expires_at()),
        (secs(130), secs(190))
    );
    match v2.check(secs(190)) {
        Check::Expired(e) => {
            ensure_eq!(e.last_generation(), g2);
            let f: Fetching<N> = e.fetch(secs(200));
            ensure_eq!((f.attempt(), f.sent_at()), (1, secs(200)));
            ensure!(f.stale(secs(200)).is_none());
        }
        other => fail!("at 190 s: {other:?}"),
    }
    Ok(())
}

pub(crate) fn machine_retry_then_give_up_keeps_stale() -> CaseResult {
    let mut ctx = ctx();
    let v = valid(&mut ctx)?;
    let g1 = v.token().generation();
    let mut f = v.refresh(secs(70));
    // Default policy: 3 retries after 300, 600, 1200 ms (no jitter here).
    let mut now = Instant::from_millis(70_500);
    for (attempt, wait_ms) in [(1u8, 300u64), (2, 600), (3, 1200)] {
        ensure_eq!(f.attempt(), attempt);
        f = match f.complete(&mut ctx, now, Err(status(503))) {
            Fetched::Retry {
                fetching,
                at,
                error,
            } => {
                ensure_eq!(at, now + Duration::from_millis(wait_ms));
                ensure_eq!(fetching.retry_at(), Some(at));
                ensure_matches!(error, Error::TokenEndpoint(e) if e.status == 503);
                let waiting = State::Fetching(fetching);
                ensure_eq!(waiting.poll_at(), Some(at));
                // The old token is still served while waiting.
                ensure_eq!(waiting.usable_token(at).map(|t| t.generation()), Some(g1));
                let State::Fetching(fetching) = waiting else {
                    fail!("not fetching")
                };
                let f = fetching.retry(at);
                ensure_eq!((f.sent_at(), f.retry_at()), (at, None));
                now = at + Duration::from_millis(100);
                f
            }
            other => fail!("attempt {attempt}: {other:?}"),
        };
    }
    ensure_eq!(f.attempt(), 4);
    match f.complete(&mut ctx, secs(73), Err(status(503))) {
        Fetched::Failed { state, error } => {
            ensure_eq!(error.kind(), ErrorKind::Retryable);
            // Back to the old token, refreshed again only after `backoff_max` (30 s).
            ensure_eq!(state.kind(), StateKind::Valid);
            ensure_eq!(state.poll_at(), Some(secs(103)));
            ensure_eq!(
                state.usable_token(secs(129)).map(|t| t.generation()),
                Some(g1)
            );
            ensure!(state.usable_token(secs(130)).is_none());
        }
        other => fail!("after 4 attempts: {other:?}"),
    }
    // The same failure after the old token expired leaves no token.
    let v = valid(&mut ctx)?;
    let f = v.refresh(secs(70)).retry(secs(70));
    let policy_none = &mut Context::new(RefreshPolicy::DEFAULT, RetryPolicy::NONE, 1);
    match f.complete(policy_none, secs(131), Err(status(503))) {
        Fetched::Failed { state, .. } => ensure_eq!(state.kind(), StateKind::Expired),
        other => fail!("after expiry: {other:?}"),
    }
    Ok(())
}

pub(crate) fn machine_non_retryable_errors_give_up() -> CaseResult {
    let mut ctx = ctx();
    let start = |ctx: &mut Context, now: Instant, result| {
        let f: Fetching<N> = NoToken::new().fetch(Instant::ZERO);
        f.complete(ctx, now, result)
    };
    // Credentials.
    let e = parse_n::<N>(400, br#"{"error":"invalid_client"}"#).map(|_| ());
    let e = err!(e);
    match start(&mut ctx, secs(1), Err(e)) {
        Fetched::Failed { state, error } => {
            ensure_eq!(state.kind(), StateKind::NoToken);
            ensure_matches!(error, Error::TokenEndpoint(t) if t.code == Some(OAuthErrorCode::InvalidClient));
            ensure_eq!(error.kind(), ErrorKind::Credentials);
        }
        other => fail!("invalid_client: {other:?}"),
    }
    // Transport errors: retried by kind.
    let timed_out = start(
        &mut ctx,
        secs(1),
        Err(Error::Transport(embedded_io::ErrorKind::TimedOut)),
    );
    ensure_matches!(timed_out, Fetched::Retry { .. });
    let bad_data = start(
        &mut ctx,
        secs(1),
        Err(Error::Transport(embedded_io::ErrorKind::InvalidData)),
    );
    ensure_matches!(bad_data, Fetched::Failed { .. });
    // Retry-After longer than backoff_max (30 s): give up now rather than wait.
    let mut r = Response::new(503, b"");
    r.observe_header("Retry-After", b"31");
    let mut scratch = [0u8; 64];
    let e = err!(alf::response::parse_token_response::<N>(
        &r,
        &mut scratch,
        "",
        None
    ));
    ensure_matches!(start(&mut ctx, secs(1), Err(e)), Fetched::Failed { .. });
    // Retry-After within the cap and longer than the backoff: honoured.
    r.observe_header("Retry-After", b"2");
    let e = err!(alf::response::parse_token_response::<N>(
        &r,
        &mut scratch,
        "",
        None
    ));
    ensure_matches!(start(&mut ctx, secs(1), Err(e)), Fetched::Retry { at, .. } if *at == secs(3));
    // A token whose whole lifetime passed in flight (sent at 0, 1 s lifetime, arrived at 2 s).
    let resp = ok!(token(br#"{"access_token":"late","expires_in":1}"#));
    match start(&mut ctx, secs(2), Ok(resp)) {
        Fetched::Failed { error, .. } => {
            ensure_eq!(
                error,
                Error::InvalidResponse(alf::ResponseError::InvalidExpiresIn)
            );
        }
        other => fail!("late token: {other:?}"),
    }
    Ok(())
}

pub(crate) fn machine_invalidate_only_that_generation() -> CaseResult {
    let mut ctx = ctx();
    let v = valid(&mut ctx)?;
    let g1 = v.token().generation();
    // Another generation: kept.
    let v = match v.invalidate(g1.wrapping_add(1)) {
        Err(v) => v,
        Ok(e) => fail!("dropped on another generation: {e:?}"),
    };
    match v.invalidate(g1) {
        Ok(e) => ensure_eq!(e.last_generation(), g1),
        Err(v) => fail!("kept after its own generation was rejected: {v:?}"),
    }
    // During a refresh, only the stale token with that generation is dropped.
    let f = valid(&mut ctx)?.refresh(secs(70));
    let g = match f.stale(secs(70)) {
        Some(t) => t.generation(),
        None => fail!("no stale token"),
    };
    ensure!(g != g1, "generations repeat");
    let (f, dropped) = f.reject_stale(g.wrapping_add(1));
    ensure!(!dropped && f.stale(secs(70)).is_some());
    let (f, dropped) = f.reject_stale(g);
    ensure!(dropped && f.stale(secs(70)).is_none());
    // Adopting a token from elsewhere: scheduled like a fetched one; no time left, no token.
    let t = ok!(token(br#"{"access_token":"stored"}"#)).token;
    ensure!(Valid::adopt(&mut ctx, t.clone(), secs(5), Duration::ZERO).is_none());
    let Some(v) = Valid::adopt(&mut ctx, t, secs(5), Duration::from_secs(600)) else {
        fail!("adopt failed")
    };
    ensure_eq!(
        (v.token().refresh_at(), v.token().expires_at()),
        (secs(545), secs(605))
    );
    Ok(())
}
