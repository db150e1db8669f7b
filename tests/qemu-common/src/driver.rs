//! The async driver (`alf::Client`) against `ScriptedTransport` and `MockClock`, run with
//! `embassy_futures::block_on`.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use alf::testing::{Expect, MockClock, MockError, ScriptedTransport};
use alf::{
    Client, Config, ConfigBuilder, Duration, Error, ErrorKind, Instant, MemoryStore, Method,
    OAuthErrorCode, RefreshPolicy, Request, RequestError, ResponseError, RetryPolicy, StateKind,
};
use embassy_futures::block_on;
use embassy_futures::join::join4;
use embedded_io::ErrorKind as IoKind;

use crate::{CaseResult, Failure};

const Q: usize = 8;
const EP: &str = "https://auth.example.com/token";
const API: &str = "https://api.example.com/v1";
/// base64("client:secret")
const BASIC: &str = "Basic Y2xpZW50OnNlY3JldA==";
const FORM: &str = "grant_type=client_credentials";
const T1: &[u8] = br#"{"access_token":"t1","token_type":"Bearer","expires_in":3600}"#;
const T2: &[u8] = br#"{"access_token":"t2","token_type":"Bearer","expires_in":3600}"#;
const INVALID_CLIENT: &[u8] = br#"{"error":"invalid_client","error_description":"unknown client"}"#;

type TestClient<'c> = Client<ScriptedTransport<Q>, &'c MockClock>;

/// Jitter off, so that every time is exact.
fn builder() -> ConfigBuilder<'static> {
    Config::builder(EP, "client", "secret")
        .refresh_policy(RefreshPolicy::DEFAULT.jitter(Duration::ZERO))
        .retry_policy(RetryPolicy::DEFAULT.jitter(Duration::ZERO))
}

/// The exact token request every case expects.
const fn token_request() -> Expect {
    Expect::post(EP).authorization(BASIC).body(FORM)
}

fn script(expectations: &[Expect]) -> ScriptedTransport<Q> {
    let mut t = ScriptedTransport::new();
    for e in expectations {
        t.expect(*e);
    }
    t
}

fn client<'c>(
    clock: &'c MockClock,
    builder: ConfigBuilder<'static>,
    expectations: &[Expect],
) -> Result<TestClient<'c>, Failure> {
    let config = ok!(builder.build());
    Ok(Client::new(config, script(expectations), clock))
}

/// Requests the transport received.
fn sent(c: &TestClient<'_>) -> usize {
    block_on(c.with_transport(|t| t.sent()))
}

/// Expectations the transport never saw.
fn remaining(c: &TestClient<'_>) -> usize {
    block_on(c.with_transport(|t| t.remaining()))
}

/// Poll a future once, with a waker that does nothing.
fn poll_once<F: Future>(fut: core::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

fn get() -> Request<'static> {
    Request::new(Method::Get, API)
}

pub(crate) fn driver_fetch_once_then_reuse() -> CaseResult {
    let clock = MockClock::new();
    let c = client(&clock, builder(), &[token_request().respond(200, T1)])?;
    ensure_eq!(c.state_kind(), StateKind::NoToken);
    let first = ok!(block_on(c.token()));
    ensure_eq!(first.token.secret(), "t1");
    ensure_eq!(c.state_kind(), StateKind::Valid);
    for _ in 0..3 {
        clock.advance(Duration::from_secs(1000));
        let again = ok!(block_on(c.token()));
        ensure_eq!(again.generation, first.generation);
        ensure_eq!(again.token.secret(), "t1");
    }
    let t = ok!(block_on(c.access_token()));
    ensure_eq!(t.header_value(), "Bearer t1");
    ensure_eq!(sent(&c), 1);
    ensure_eq!(remaining(&c), 0);
    ensure_eq!(clock.slept(), Duration::ZERO);
    Ok(())
}

pub(crate) fn driver_refresh_at_refresh_at() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[
            token_request().respond(200, T1),
            token_request().respond(200, T2),
        ],
    )?;
    let first = ok!(block_on(c.token()));
    // 3600 s lifetime, 60 s margin, no jitter.
    ensure_eq!(c.poll_at(), Some(Instant::from_secs(3540)));
    clock.set(Instant::from_millis(3_539_999));
    ensure_eq!(ok!(block_on(c.token())).generation, first.generation);
    ensure_eq!(sent(&c), 1);
    clock.set(Instant::from_secs(3540));
    let second = ok!(block_on(c.token()));
    ensure_eq!(second.token.secret(), "t2");
    ensure!(second.generation != first.generation);
    ensure_eq!(sent(&c), 2);
    ensure_eq!(c.poll_at(), Some(Instant::from_secs(3540 + 3540)));
    Ok(())
}

pub(crate) fn driver_retries_503_503_200_exact_sleep() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[
            token_request().respond(503, b""),
            token_request().respond(503, br#"{"error":"temporarily_unavailable"}"#),
            token_request().respond(200, T1),
        ],
    )?;
    let lease = ok!(block_on(c.token()));
    ensure_eq!(lease.token.secret(), "t1");
    ensure_eq!(sent(&c), 3);
    // 300 ms, then 600 ms.
    ensure_eq!(clock.slept(), Duration::from_millis(900));
    ensure_eq!(clock.sleeps(), 2);
    // The lifetime counts from when the successful attempt was sent (at 900 ms).
    ensure_eq!(
        c.poll_at(),
        Some(Instant::from_millis(900) + Duration::from_secs(3540))
    );

    // Four failures: the default policy gives up after 3 retries (300 + 600 + 1200 ms).
    let clock = MockClock::new();
    let fail = token_request().respond(503, b"");
    let c = client(&clock, builder(), &[fail, fail, fail, fail])?;
    let e = err!(block_on(c.token()));
    ensure_matches!(e, Error::TokenEndpoint(t) if t.status == 503);
    ensure_eq!(e.kind(), ErrorKind::Retryable);
    ensure_eq!(sent(&c), 4);
    ensure_eq!(clock.slept(), Duration::from_millis(2100));
    ensure_eq!(c.state_kind(), StateKind::NoToken);
    Ok(())
}

pub(crate) fn driver_retry_after_429_honoured() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[
            token_request().respond_with_headers(429, b"", &[("Retry-After", "5")]),
            token_request().respond(200, T1),
        ],
    )?;
    ensure_eq!(ok!(block_on(c.token())).token.secret(), "t1");
    ensure_eq!(clock.slept(), Duration::from_secs(5));
    ensure_eq!(sent(&c), 2);
    Ok(())
}

pub(crate) fn driver_retry_after_http_date_with_wall_clock() -> CaseResult {
    let clock = MockClock::new();
    // 7 s before RFC 9110's example date.
    clock.set_unix_time(Some(784_111_770));
    let c = client(
        &clock,
        builder(),
        &[
            token_request().respond_with_headers(
                503,
                b"",
                &[("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT")],
            ),
            token_request().respond(200, T1),
        ],
    )?;
    ensure_eq!(ok!(block_on(c.token())).token.secret(), "t1");
    ensure_eq!(clock.slept(), Duration::from_secs(7));
    Ok(())
}

pub(crate) fn driver_retry_after_beyond_cap_not_waited() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[token_request().respond_with_headers(503, b"", &[("Retry-After", "31")])],
    )?;
    let e = err!(block_on(c.token()));
    ensure_matches!(e, Error::TokenEndpoint(t) if t.status == 503 && t.retry_after_ms == Some(31_000));
    ensure_eq!(sent(&c), 1);
    ensure_eq!(clock.slept(), Duration::ZERO);
    Ok(())
}

pub(crate) fn driver_transport_errors_retry_by_kind() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[
            token_request().fail(IoKind::TimedOut),
            token_request().fail(IoKind::ConnectionReset),
            token_request().respond(200, T1),
        ],
    )?;
    ensure_eq!(ok!(block_on(c.token())).token.secret(), "t1");
    ensure_eq!(clock.slept(), Duration::from_millis(900));
    ensure_eq!(sent(&c), 3);

    // Not transient: not retried, and the transport's own error comes back.
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[token_request().fail(IoKind::InvalidInput)],
    )?;
    let e = err!(block_on(c.token()));
    ensure_eq!(e, Error::Transport(MockError(IoKind::InvalidInput)));
    ensure_eq!(sent(&c), 1);

    // A body larger than the receive buffer (4 KiB) is an error, never a truncated token.
    static BIG: [u8; 5000] = [b' '; 5000];
    let clock = MockClock::new();
    let c = client(&clock, builder(), &[token_request().respond(200, &BIG)])?;
    let e = err!(block_on(c.token()));
    ensure_eq!(e, Error::Transport(MockError(IoKind::OutOfMemory)));
    ensure_eq!(e.kind(), ErrorKind::Capacity);
    ensure_eq!(sent(&c), 1);
    Ok(())
}

pub(crate) fn driver_invalid_client_not_retried() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[token_request().respond(400, INVALID_CLIENT)],
    )?;
    let e = err!(block_on(c.token()));
    ensure_matches!(e, Error::TokenEndpoint(t)
        if t.status == 400 && t.code == Some(OAuthErrorCode::InvalidClient));
    ensure_eq!(e.kind(), ErrorKind::Credentials);
    ensure_eq!(sent(&c), 1);
    ensure_eq!(clock.slept(), Duration::ZERO);
    ensure_eq!(c.state_kind(), StateKind::NoToken);

    // A bare 401 from the token endpoint: credentials too, not retried.
    let clock = MockClock::new();
    let c = client(&clock, builder(), &[token_request().respond(401, b"")])?;
    ensure_eq!(err!(block_on(c.token())).kind(), ErrorKind::Credentials);
    ensure_eq!(sent(&c), 1);
    Ok(())
}

pub(crate) fn driver_zero_expires_in_is_an_error() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[token_request().respond(200, br#"{"access_token":"t","expires_in":0}"#)],
    )?;
    let e = err!(block_on(c.token()));
    ensure_eq!(e, Error::InvalidResponse(ResponseError::InvalidExpiresIn));
    ensure_eq!(sent(&c), 1);
    ensure_eq!(c.state_kind(), StateKind::NoToken);
    Ok(())
}

pub(crate) fn driver_stale_token_served_when_refresh_fails() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder().retry_policy(RetryPolicy::NONE),
        &[
            token_request().respond(200, T1),
            token_request().respond(503, b""),
            token_request().respond(200, T2),
        ],
    )?;
    let first = ok!(block_on(c.token()));
    clock.set(Instant::from_secs(3540));
    // The refresh fails: the old token, still valid, is served.
    let stale = ok!(block_on(c.token()));
    ensure_eq!(stale.generation, first.generation);
    ensure_eq!(sent(&c), 2);
    // Next refresh attempt after backoff_max (30 s), not on every call.
    ensure_eq!(c.poll_at(), Some(Instant::from_secs(3570)));
    clock.set(Instant::from_secs(3569));
    ensure_eq!(ok!(block_on(c.token())).generation, first.generation);
    ensure_eq!(sent(&c), 2);
    clock.set(Instant::from_secs(3570));
    ensure_eq!(ok!(block_on(c.token())).token.secret(), "t2");
    ensure_eq!(sent(&c), 3);
    Ok(())
}

pub(crate) fn driver_expired_token_never_served() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder().retry_policy(RetryPolicy::NONE),
        &[
            token_request().respond(200, br#"{"access_token":"short","expires_in":60}"#),
            token_request().respond(503, b""),
            token_request().respond(200, T2),
        ],
    )?;
    ensure_eq!(ok!(block_on(c.token())).token.secret(), "short");
    // Margin capped at half the lifetime: refresh from 30 s, expiry at 60 s.
    ensure_eq!(c.poll_at(), Some(Instant::from_secs(30)));
    clock.set(Instant::from_secs(60));
    let e = err!(block_on(c.token()));
    ensure_matches!(e, Error::TokenEndpoint(t) if t.status == 503);
    ensure_eq!(c.state_kind(), StateKind::NoToken);
    ensure_eq!(ok!(block_on(c.token())).token.secret(), "t2");
    ensure_eq!(sent(&c), 3);
    Ok(())
}

pub(crate) fn driver_401_replayed_exactly_once() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[
            token_request().respond(200, T1),
            Expect::get(API).bearer("t1").respond(401, b"expired"),
            token_request().respond(200, T2),
            Expect::get(API).bearer("t2").respond(200, b"hello"),
        ],
    )?;
    let mut rx = [0u8; 64];
    let r = ok!(block_on(c.send(&get(), &mut rx)));
    ensure_eq!((r.status, r.body), (200, &b"hello"[..]));
    ensure_eq!(sent(&c), 4);
    ensure_eq!(remaining(&c), 0);

    // A second 401 is returned as it is: no third try.
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[
            token_request().respond(200, T1),
            Expect::get(API).bearer("t1").respond(401, b"no"),
            token_request().respond(200, T2),
            Expect::get(API).bearer("t2").respond(401, b"still no"),
        ],
    )?;
    let r = ok!(block_on(c.send(&get(), &mut rx)));
    ensure_eq!((r.status, r.body), (401, &b"still no"[..]));
    ensure_eq!(sent(&c), 4);
    ensure_eq!(remaining(&c), 0);
    Ok(())
}

pub(crate) fn driver_401_insufficient_scope_not_replayed() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[
            token_request().respond(200, T1),
            Expect::get(API).bearer("t1").respond_with_headers(
                401,
                b"",
                &[("WWW-Authenticate", r#"Bearer error="insufficient_scope""#)],
            ),
        ],
    )?;
    let first = ok!(block_on(c.token()));
    let mut rx = [0u8; 16];
    ensure_eq!(ok!(block_on(c.send(&get(), &mut rx))).status, 401);
    ensure_eq!(sent(&c), 2);
    // The token was not dropped.
    ensure_eq!(ok!(block_on(c.token())).generation, first.generation);
    ensure_eq!(sent(&c), 2);
    Ok(())
}

pub(crate) fn driver_token_failure_sends_no_resource_request() -> CaseResult {
    // The script has no resource request: one would panic as unexpected.
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[token_request().respond(400, INVALID_CLIENT)],
    )?;
    let mut rx = [0u8; 16];
    let e = err!(block_on(c.send(&get(), &mut rx)));
    ensure_matches!(e, Error::TokenEndpoint(t) if t.code == Some(OAuthErrorCode::InvalidClient));
    ensure_eq!(sent(&c), 1);

    let clock = MockClock::new();
    let c = client(
        &clock,
        builder().retry_policy(RetryPolicy::NONE),
        &[token_request().fail(IoKind::ConnectionRefused)],
    )?;
    let e = err!(block_on(c.send(&get(), &mut rx)));
    ensure_eq!(e, Error::Transport(MockError(IoKind::ConnectionRefused)));
    ensure_eq!(sent(&c), 1);
    ensure_eq!(remaining(&c), 0);
    Ok(())
}

pub(crate) fn driver_refuses_caller_authorization_header() -> CaseResult {
    let clock = MockClock::new();
    let c = client(&clock, builder(), &[])?;
    let mut rx = [0u8; 16];
    let own = get().headers(&[("authorization", "Bearer mine")]);
    let e = err!(block_on(c.send(&own, &mut rx)));
    ensure_eq!(e, Error::Request(RequestError::AuthorizationHeaderPresent));
    let injected = get().headers(&[("X-Id", "1\r\nX-Evil: 1")]);
    let e = err!(block_on(c.send(&injected, &mut rx)));
    ensure_eq!(e, Error::Request(RequestError::InvalidHeader));
    ensure_eq!(sent(&c), 0);
    Ok(())
}

pub(crate) fn driver_invalidate_old_generation_keeps_new_token() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[
            token_request().respond(200, T1),
            token_request().respond(200, T2),
        ],
    )?;
    let g1 = ok!(block_on(c.token())).generation;
    c.invalidate(g1);
    ensure_eq!(c.state_kind(), StateKind::Expired);
    let second = ok!(block_on(c.token()));
    ensure_eq!(second.token.secret(), "t2");
    // A late rejection of the old token does not drop the new one.
    c.invalidate(g1);
    ensure_eq!(c.state_kind(), StateKind::Valid);
    ensure_eq!(ok!(block_on(c.token())).generation, second.generation);
    ensure_eq!(sent(&c), 2);
    Ok(())
}

pub(crate) fn driver_single_flight_join4() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[token_request().pending(3).respond(200, T1)],
    )?;
    let (a, b, d, e) = block_on(join4(c.token(), c.token(), c.token(), c.token()));
    let (a, b, d, e) = (ok!(a), ok!(b), ok!(d), ok!(e));
    ensure_eq!(sent(&c), 1);
    ensure_eq!(
        [b.generation, d.generation, e.generation],
        [a.generation; 3]
    );
    ensure!([&a, &b, &d, &e].iter().all(|l| l.token.secret() == "t1"));

    // Waiters share the failure of the fetch they waited for; they do not each retry.
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[token_request().pending(3).respond(400, INVALID_CLIENT)],
    )?;
    let results = block_on(join4(c.token(), c.token(), c.token(), c.token()));
    for r in [results.0, results.1, results.2, results.3] {
        ensure_matches!(r, Err(Error::TokenEndpoint(t)) if t.code == Some(OAuthErrorCode::InvalidClient));
    }
    ensure_eq!(sent(&c), 1);
    Ok(())
}

pub(crate) fn driver_cancelled_fetch_then_next_call_succeeds() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[token_request().hang(), token_request().respond(200, T1)],
    )?;
    {
        let fut = pin!(c.token());
        ensure!(poll_once(fut).is_pending(), "a hanging fetch completed");
        // Dropped here, mid-request.
    }
    ensure_eq!(c.state_kind(), StateKind::Fetching);
    let lease = ok!(block_on(c.token()));
    ensure_eq!(lease.token.secret(), "t1");
    ensure_eq!(sent(&c), 2);
    ensure_eq!(remaining(&c), 0);
    Ok(())
}

pub(crate) fn driver_refresh_in_flight_serves_old_token() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[
            token_request().respond(200, T1),
            token_request().pending(5).respond(200, T2),
        ],
    )?;
    let first = ok!(block_on(c.token()));
    clock.set(Instant::from_secs(3550));
    let mut refresher = pin!(c.token());
    ensure!(poll_once(refresher.as_mut()).is_pending());
    // While the refresh is in flight, others get the old token at once.
    for _ in 0..3 {
        ensure_eq!(ok!(block_on(c.token())).generation, first.generation);
    }
    let second = ok!(block_on(refresher));
    ensure_eq!(second.token.secret(), "t2");
    ensure_eq!(ok!(block_on(c.token())).generation, second.generation);
    ensure_eq!(sent(&c), 2);
    Ok(())
}

pub(crate) fn driver_cancelled_refresh_recovers() -> CaseResult {
    let clock = MockClock::new();
    let c = client(
        &clock,
        builder(),
        &[
            token_request().respond(200, T1),
            token_request().hang(),
            token_request().respond(200, T2),
        ],
    )?;
    let first = ok!(block_on(c.token()));
    clock.set(Instant::from_secs(3550));
    {
        let fut = pin!(c.token());
        ensure!(poll_once(fut).is_pending());
    }
    // The refresh was abandoned: the next caller takes it over at once, before expiry.
    let second = ok!(block_on(c.token()));
    ensure_eq!(second.token.secret(), "t2");
    ensure!(second.generation != first.generation);
    ensure_eq!(sent(&c), 3);
    Ok(())
}

pub(crate) fn driver_memory_store_shares_token() -> CaseResult {
    let clock = MockClock::new();
    clock.set_unix_time(Some(1_700_000_000));
    let mut store = MemoryStore::<256>::new();
    {
        let config = ok!(builder().build());
        let t = script(&[token_request().respond(200, T1)]);
        let c: Client<_, _, _> = Client::with_store(config, t, &clock, &mut store);
        ensure_eq!(ok!(block_on(c.token())).token.secret(), "t1");
        ensure_eq!(block_on(c.with_transport(|t| t.sent())), 1);
    }
    clock.advance(Duration::from_secs(10));
    {
        // A second client (a reboot, another task) finds the token in the store: no request.
        let config = ok!(builder().build());
        let c: Client<_, _, _> = Client::with_store(config, script(&[]), &clock, &mut store);
        ensure_eq!(ok!(block_on(c.token())).token.secret(), "t1");
        ensure_eq!(block_on(c.with_transport(|t| t.sent())), 0);
    }
    Ok(())
}
