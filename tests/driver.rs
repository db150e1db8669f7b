//! Integration tests of the async driver, [`alf::Client`], through its public API only.
//!
//! One test per transition of the token life and per rule of the design (design.md §2): the
//! token request on the wire, reuse, refresh times, stale-while-revalidate, retries and
//! `Retry-After`, typed errors, `send` and its single 401 replay, invalidation, bad token
//! responses, token stores, `keep_fresh`, and redaction of secrets in formatting.
//!
//! Time is virtual: [`MockClock`] jumps to the deadline of every sleep, and [`StepClock`]
//! (below) only moves when a test moves it.

use core::future::poll_fn;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::Poll;

use alf::testing::{Expect, MockClock, MockError, ScriptedTransport};
use alf::{
    CapacityError, Client, ClientAuth, Clock, Config, ConfigBuilder, Duration, Error, ErrorKind,
    Instant, MemoryStore, Method, NoStore, OAuthErrorCode, RefreshPolicy, Request, RequestError,
    ResponseError, RetryPolicy, StateKind, StorePolicy, StoredToken, TokenStore, Transport,
};
use base64ct::Encoding;
use embassy_futures::block_on;
use embassy_futures::select::{Either, select};
use embassy_futures::yield_now;
use embedded_io::ErrorKind as IoKind;

const TOKEN_URL: &str = "https://auth.example.com/oauth2/token";
const API: &str = "https://api.example.com/v1/things";

const T1: &[u8] = br#"{"access_token":"t1","token_type":"Bearer","expires_in":100}"#;
const T2: &[u8] = br#"{"access_token":"t2","token_type":"bearer","expires_in":100}"#;
const T3: &[u8] = br#"{"access_token":"t3","expires_in":100}"#;
const INVALID_CLIENT: &[u8] =
    br#"{"error":"invalid_client","error_description":"unknown client","error_uri":"https://auth.example.com/doc"}"#;

/// A refresh policy without jitter, so that refresh times are exact.
const NO_JITTER: RefreshPolicy = RefreshPolicy::DEFAULT.jitter(Duration::ZERO);

type Scripted = ScriptedTransport<16>;
type TestClient<'c> = Client<Scripted, &'c MockClock>;
type Failure = Error<MockError>;

fn builder() -> ConfigBuilder<'static> {
    // Under tests/run.sh every log line of this test binary is captured (at TRACE) and checked
    // for the client secret.
    alf_test_hygiene::secret("s3cret");
    alf_test_hygiene::init();
    Config::builder(TOKEN_URL, "client", "s3cret")
        .refresh_policy(NO_JITTER)
        .retry_policy(RetryPolicy::DEFAULT.jitter(Duration::ZERO))
}

fn config() -> Config {
    builder().build().unwrap()
}

fn config_with_retry(retry: RetryPolicy) -> Config {
    builder()
        .retry_policy(retry.jitter(Duration::ZERO))
        .build()
        .unwrap()
}

fn script<const Q: usize>(expects: &[Expect]) -> ScriptedTransport<Q> {
    let mut t = ScriptedTransport::new();
    for e in expects {
        t.expect(*e);
    }
    t
}

fn token(body: &'static [u8]) -> Expect {
    Expect::post(TOKEN_URL).respond(200, body)
}

fn status(code: u16) -> Expect {
    Expect::post(TOKEN_URL).respond(code, b"")
}

fn client<'c>(config: Config, clock: &'c MockClock, expects: &[Expect]) -> TestClient<'c> {
    Client::new(config, script(expects), clock)
}

fn with_store<C: Clock, S: TokenStore>(
    config: Config,
    transport: Scripted,
    clock: C,
    store: S,
) -> Client<Scripted, C, S> {
    Client::with_store(config, transport, clock, store)
}

fn sent<C: Clock, S: TokenStore, const N: usize, const RX: usize>(
    c: &Client<Scripted, C, S, N, RX>,
) -> usize {
    block_on(c.with_transport(|t| t.sent()))
}

fn done<C: Clock, S: TokenStore, const N: usize, const RX: usize>(
    c: &Client<Scripted, C, S, N, RX>,
) {
    block_on(c.with_transport(|t| t.done()));
}

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn token_of<C: Clock, S: TokenStore, const N: usize, const RX: usize>(
    c: &Client<Scripted, C, S, N, RX>,
) -> String {
    block_on(c.access_token())
        .expect("a token")
        .secret()
        .to_owned()
}

fn endpoint_error(e: &Failure) -> &alf::TokenEndpointError {
    match e {
        Error::TokenEndpoint(e) => e,
        other => panic!("expected a token endpoint error, got {other:?}"),
    }
}

/// A request as a transport saw it, copied out.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// Records every request, then lets the scripted transport answer it.
struct Recorder {
    inner: Scripted,
    seen: Vec<Seen>,
}

impl Recorder {
    fn new(expects: &[Expect]) -> Self {
        Self {
            inner: script(expects),
            seen: Vec::new(),
        }
    }
}

impl Transport for Recorder {
    type Error = MockError;
    async fn send<'b>(
        &mut self,
        request: &Request<'_>,
        rx: &'b mut [u8],
    ) -> Result<alf::Response<'b>, MockError> {
        self.seen.push(Seen {
            method: request.method,
            url: request.url.to_owned(),
            headers: request
                .headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            authorization: request.authorization.map(str::to_owned),
            body: request.body.to_vec(),
        });
        self.inner.send(request, rx).await
    }
}

/// A transport whose every request takes `latency` on the clock before it is answered.
struct Slow<'c> {
    inner: Scripted,
    clock: &'c MockClock,
    latency: Duration,
}

impl Transport for Slow<'_> {
    type Error = MockError;
    async fn send<'b>(
        &mut self,
        request: &Request<'_>,
        rx: &'b mut [u8],
    ) -> Result<alf::Response<'b>, MockError> {
        self.clock.advance(self.latency);
        self.inner.send(request, rx).await
    }
}

/// A clock that moves only when the test sets it: `sleep_until` stays pending until then.
struct StepClock {
    ms: AtomicU64,
}

impl StepClock {
    fn new() -> Self {
        Self {
            ms: AtomicU64::new(0),
        }
    }
    fn set(&self, t: Instant) {
        self.ms.store(t.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for StepClock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.ms.load(Ordering::SeqCst))
    }
    async fn sleep_until(&self, deadline: Instant) {
        poll_fn(|cx| {
            if self.now() >= deadline {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }
}

async fn settle(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if done() {
            return true;
        }
        yield_now().await;
    }
    done()
}

// ---------------------------------------------------------------------------------------------
// The token request and reuse
// ---------------------------------------------------------------------------------------------

#[test]
fn first_call_posts_the_exact_token_request_with_basic_auth() {
    let config = Config::builder(TOKEN_URL, "my client", "p@ss:w rd+")
        .scope("read write")
        .param("audience", "https://api.example.com")
        .param("resource", "urn:a")
        .param("resource", "urn:b")
        .refresh_policy(NO_JITTER)
        .build()
        .unwrap();
    let clock = MockClock::new();
    let client: Client<_, _> = Client::new(config, Recorder::new(&[token(T1)]), &clock);

    let lease = block_on(client.token()).unwrap();
    assert_eq!(lease.token.secret(), "t1");
    assert_eq!(lease.token.header_value(), "Bearer t1");

    let seen = block_on(client.with_transport(|t| t.seen.clone()));
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, Method::Post);
    assert_eq!(r.url, TOKEN_URL);
    // RFC 6749 §2.3.1: id and secret are form-encoded (space as %20) before base64.
    let expected = format!(
        "Basic {}",
        base64ct::Base64::encode_string(b"my%20client:p%40ss%3Aw%20rd%2B")
    );
    assert_eq!(r.authorization.as_deref(), Some(expected.as_str()));
    let header = |name: &str| {
        let found: Vec<&str> = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        found
    };
    assert_eq!(
        header("content-type"),
        ["application/x-www-form-urlencoded"]
    );
    assert_eq!(header("accept"), ["application/json"]);
    assert!(
        header("authorization").is_empty(),
        "credentials travel only in `authorization`"
    );
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        "grant_type=client_credentials&scope=read%20write&audience=https%3A%2F%2Fapi.example.com\
         &resource=urn%3Aa&resource=urn%3Ab"
    );
}

#[test]
fn client_secret_post_sends_credentials_in_the_body_and_no_authorization() {
    let config = Config::builder(TOKEN_URL, "my client", "p@ss:w rd+")
        .client_auth(ClientAuth::Post)
        .scope("read")
        .build()
        .unwrap();
    let clock = MockClock::new();
    let client = client(
        config,
        &clock,
        &[Expect::post(TOKEN_URL)
            .no_authorization()
            .body("grant_type=client_credentials&scope=read&client_id=my%20client&client_secret=p%40ss%3Aw%20rd%2B")
            .respond(200, T1)],
    );
    assert_eq!(token_of(&client), "t1");
    done(&client);
}

#[test]
fn second_call_within_the_lifetime_reuses_the_token() {
    let clock = MockClock::new();
    let client = client(config(), &clock, &[token(T1)]);
    let first = block_on(client.token()).unwrap();
    clock.advance(Duration::from_secs(30));
    let second = block_on(client.token()).unwrap();
    assert_eq!(second.token.secret(), "t1");
    assert_eq!(second.generation, first.generation);
    assert_eq!(sent(&client), 1);
    assert_eq!(client.state_kind(), StateKind::Valid);
}

// ---------------------------------------------------------------------------------------------
// Token life
// ---------------------------------------------------------------------------------------------

#[test]
fn refresh_is_due_at_half_the_lifetime_when_the_margin_is_larger() {
    // expires_in = 100 s, margin 60 s capped at 50 s, no jitter: refresh from t = 50 s.
    let clock = MockClock::new();
    let client = client(config(), &clock, &[token(T1), token(T2)]);
    assert_eq!(token_of(&client), "t1");
    assert_eq!(client.poll_at(), Some(secs(50)));
    clock.set(secs(49));
    assert_eq!(token_of(&client), "t1");
    assert_eq!(sent(&client), 1);
    clock.set(secs(51));
    assert_eq!(token_of(&client), "t2");
    assert_eq!(sent(&client), 2);
    done(&client);
}

#[test]
fn expiry_is_measured_from_when_the_request_was_sent() {
    // Each token request takes 10 s. Measured from the send time the token is due at 50 s;
    // measured from its arrival it would be due at 60 s.
    let clock = MockClock::new();
    let transport = Slow {
        inner: script(&[token(T1), token(T2)]),
        clock: &clock,
        latency: Duration::from_secs(10),
    };
    let client: Client<_, _> = Client::new(config(), transport, &clock);
    assert_eq!(block_on(client.access_token()).unwrap().secret(), "t1");
    assert_eq!(clock.now(), secs(10));
    assert_eq!(client.poll_at(), Some(secs(50)));
    clock.set(secs(49));
    assert_eq!(block_on(client.access_token()).unwrap().secret(), "t1");
    clock.set(secs(51));
    assert_eq!(block_on(client.access_token()).unwrap().secret(), "t2");
    assert_eq!(block_on(client.with_transport(|t| t.inner.sent())), 2);
    // The new token was sent at 51 s: due at 101 s.
    assert_eq!(client.poll_at(), Some(secs(101)));
}

#[test]
fn failed_refresh_before_expiry_serves_the_old_token_without_error() {
    let clock = MockClock::new();
    let client = client(
        config_with_retry(RetryPolicy::NONE),
        &clock,
        &[token(T1), status(503)],
    );
    let first = block_on(client.token()).unwrap();
    clock.set(secs(60));
    let during = block_on(client.token()).expect("the old token, not the refresh error");
    assert_eq!(during.token.secret(), "t1");
    assert_eq!(during.generation, first.generation);
    assert_eq!(sent(&client), 2);
    assert_eq!(client.state_kind(), StateKind::Valid);
}

#[test]
fn failed_refresh_is_tried_again_after_backoff_max_not_on_every_call() {
    let clock = MockClock::new();
    let retry = RetryPolicy::NONE.backoff_max(Duration::from_secs(20));
    let client = client(
        config_with_retry(retry),
        &clock,
        &[token(T1), status(503), token(T2)],
    );
    assert_eq!(token_of(&client), "t1");
    clock.set(secs(60));
    assert_eq!(token_of(&client), "t1");
    clock.set(secs(79));
    assert_eq!(token_of(&client), "t1");
    assert_eq!(sent(&client), 2, "no new attempt before 60 s + backoff_max");
    clock.set(secs(80));
    assert_eq!(token_of(&client), "t2");
    done(&client);
}

#[test]
fn after_expiry_a_failed_fetch_returns_the_error_and_never_sends_the_old_token() {
    let clock = MockClock::new();
    let client = client(
        config_with_retry(RetryPolicy::NONE),
        &clock,
        &[
            token(T1),
            status(503),
            status(503),
            token(T2),
            Expect::get(API).bearer("t2").respond(200, b"ok"),
        ],
    );
    assert_eq!(token_of(&client), "t1");
    clock.set(secs(60));
    assert_eq!(token_of(&client), "t1");
    // At expires_at exactly the old token is gone. Had it been used, the request below would
    // reach the transport as a GET where the script expects the token POST.
    clock.set(secs(100));
    let mut rx = [0u8; 64];
    let err = block_on(client.send(&Request::new(Method::Get, API), &mut rx)).unwrap_err();
    assert_eq!(endpoint_error(&err).status, 503);
    assert_eq!(err.kind(), ErrorKind::Retryable);
    assert_eq!(sent(&client), 3, "the resource request was not sent");
    assert!(matches!(
        client.state_kind(),
        StateKind::NoToken | StateKind::Expired
    ));
    let response = block_on(client.send(&Request::new(Method::Get, API), &mut rx)).unwrap();
    assert_eq!(response.body, b"ok");
    done(&client);
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

#[test]
fn retries_after_503_with_exact_exponential_backoff() {
    let clock = MockClock::new();
    let client = client(config(), &clock, &[status(503), status(503), token(T1)]);
    assert_eq!(token_of(&client), "t1");
    assert_eq!(sent(&client), 3);
    assert_eq!(clock.slept(), Duration::from_millis(300 + 600));
    assert_eq!(clock.sleeps(), 2);
}

#[test]
fn retry_after_seconds_on_429_is_honoured() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[
            Expect::post(TOKEN_URL).respond_with_headers(429, b"", &[("Retry-After", "2")]),
            token(T1),
        ],
    );
    assert_eq!(token_of(&client), "t1");
    assert_eq!(clock.slept(), Duration::from_secs(2));
    assert_eq!(sent(&client), 2);
}

#[test]
fn retry_after_above_backoff_max_returns_the_error_without_waiting() {
    let clock = MockClock::new();
    // backoff_max is 30 s by default.
    let client = client(
        config(),
        &clock,
        &[Expect::post(TOKEN_URL).respond_with_headers(429, b"", &[("Retry-After", "31")])],
    );
    let err = block_on(client.token()).unwrap_err();
    let e = endpoint_error(&err);
    assert_eq!(e.status, 429);
    assert_eq!(e.retry_after_ms, Some(31_000));
    assert_eq!(err.kind(), ErrorKind::Retryable);
    assert_eq!(clock.slept(), Duration::ZERO);
    assert_eq!(sent(&client), 1);
    assert_eq!(client.state_kind(), StateKind::NoToken);
}

#[test]
fn retry_after_http_date_is_honoured_with_a_wall_clock() {
    let clock = MockClock::new();
    // RFC 9110's example date is 784111777 Unix seconds; the wall clock is 5 s before it.
    clock.set_unix_time(Some(784_111_772));
    let client = client(
        config(),
        &clock,
        &[
            Expect::post(TOKEN_URL).respond_with_headers(
                503,
                b"",
                &[("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT")],
            ),
            token(T1),
        ],
    );
    assert_eq!(token_of(&client), "t1");
    assert_eq!(clock.slept(), Duration::from_secs(5));
}

#[test]
fn retry_after_http_date_without_a_wall_clock_falls_back_to_backoff() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[
            Expect::post(TOKEN_URL).respond_with_headers(
                503,
                b"",
                &[("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT")],
            ),
            token(T1),
        ],
    );
    assert_eq!(token_of(&client), "t1");
    assert_eq!(clock.slept(), Duration::from_millis(300));
}

#[test]
fn transport_timeouts_and_refused_connections_are_retried() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[
            Expect::post(TOKEN_URL).fail(IoKind::TimedOut),
            Expect::post(TOKEN_URL).fail(IoKind::ConnectionRefused),
            token(T1),
        ],
    );
    assert_eq!(token_of(&client), "t1");
    assert_eq!(sent(&client), 3);
    assert_eq!(clock.slept(), Duration::from_millis(900));
}

#[test]
fn invalid_input_transport_error_is_not_retried() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[Expect::post(TOKEN_URL).fail(IoKind::InvalidInput)],
    );
    let err = block_on(client.token()).unwrap_err();
    assert_eq!(err, Error::Transport(MockError(IoKind::InvalidInput)));
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(sent(&client), 1);
    assert_eq!(clock.sleeps(), 0);
}

/// A policy that lists the credential statuses too: they must still not be retried.
const RETRY_EVERYTHING: RetryPolicy =
    RetryPolicy::DEFAULT.statuses(&[400, 401, 403, 429, 500, 502, 503, 504]);

#[test]
fn invalid_client_400_is_never_retried() {
    let clock = MockClock::new();
    let client = client(
        config_with_retry(RETRY_EVERYTHING),
        &clock,
        &[Expect::post(TOKEN_URL).respond(400, INVALID_CLIENT)],
    );
    let err = block_on(client.token()).unwrap_err();
    assert_eq!(
        endpoint_error(&err).code,
        Some(OAuthErrorCode::InvalidClient)
    );
    assert_eq!(sent(&client), 1);
    assert_eq!(clock.sleeps(), 0);
}

#[test]
fn status_401_from_the_token_endpoint_is_never_retried() {
    let clock = MockClock::new();
    let client = client(config_with_retry(RETRY_EVERYTHING), &clock, &[status(401)]);
    let err = block_on(client.token()).unwrap_err();
    assert_eq!(endpoint_error(&err).status, 401);
    assert_eq!(err.kind(), ErrorKind::Credentials);
    assert_eq!(sent(&client), 1);
    assert_eq!(clock.sleeps(), 0);
}

#[test]
fn gives_up_after_total_plus_one_attempts_with_the_last_error() {
    let clock = MockClock::new();
    let client = client(
        config_with_retry(RetryPolicy::DEFAULT.total(2)),
        &clock,
        &[
            status(503),
            status(502),
            Expect::post(TOKEN_URL).respond(500, br#"{"error":"temporarily_unavailable"}"#),
        ],
    );
    let err = block_on(client.token()).unwrap_err();
    let e = endpoint_error(&err);
    assert_eq!((e.status, e.code), (500, Some(OAuthErrorCode::Unknown)));
    assert_eq!(sent(&client), 3);
    assert_eq!(clock.slept(), Duration::from_millis(300 + 600));
    assert_eq!(client.state_kind(), StateKind::NoToken);
}

#[test]
fn retry_policy_none_makes_exactly_one_attempt() {
    let clock = MockClock::new();
    let client = client(
        config_with_retry(RetryPolicy::NONE),
        &clock,
        &[Expect::post(TOKEN_URL).fail(IoKind::TimedOut)],
    );
    assert_eq!(
        block_on(client.token()).unwrap_err(),
        Error::Transport(MockError(IoKind::TimedOut))
    );
    assert_eq!(sent(&client), 1);
}

#[test]
fn after_a_failed_fetch_the_next_call_fetches_again() {
    let clock = MockClock::new();
    let client = client(
        config_with_retry(RetryPolicy::NONE),
        &clock,
        &[status(503), token(T1)],
    );
    assert!(block_on(client.token()).is_err());
    assert_eq!(token_of(&client), "t1");
    assert_eq!(sent(&client), 2);
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn token_endpoint_error_reaches_the_caller_with_status_code_and_texts() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[Expect::post(TOKEN_URL).respond(400, INVALID_CLIENT)],
    );
    let err = block_on(client.token()).unwrap_err();
    let e = endpoint_error(&err);
    assert_eq!(e.status, 400);
    assert_eq!(e.code, Some(OAuthErrorCode::InvalidClient));
    assert_eq!(e.description.as_deref(), Some("unknown client"));
    assert_eq!(e.uri.as_deref(), Some("https://auth.example.com/doc"));
    assert_eq!(e.retry_after_ms, None);
    assert_eq!(err.kind(), ErrorKind::Credentials);
}

#[test]
fn error_kind_classifies_every_class_of_failure() {
    let cases: &[(Expect, ErrorKind)] = &[
        (
            Expect::post(TOKEN_URL).respond(400, INVALID_CLIENT),
            ErrorKind::Credentials,
        ),
        (
            Expect::post(TOKEN_URL).respond(400, br#"{"error":"unauthorized_client"}"#),
            ErrorKind::Credentials,
        ),
        (status(503), ErrorKind::Retryable),
        (
            Expect::post(TOKEN_URL).fail(IoKind::ConnectionReset),
            ErrorKind::Retryable,
        ),
        (
            Expect::post(TOKEN_URL).respond(200, b"<html>hello</html>"),
            ErrorKind::Protocol,
        ),
        (
            Expect::post(TOKEN_URL).respond(200, br#"{"access_token":"t","token_type":"mac"}"#),
            ErrorKind::Protocol,
        ),
        (
            Expect::post(TOKEN_URL).respond(400, br#"{"error":"invalid_scope"}"#),
            ErrorKind::Config,
        ),
        (
            Expect::post(TOKEN_URL).fail(IoKind::OutOfMemory),
            ErrorKind::Capacity,
        ),
    ];
    for (expect, kind) in cases {
        let clock = MockClock::new();
        let client = client(config_with_retry(RetryPolicy::NONE), &clock, &[*expect]);
        let err = block_on(client.token()).unwrap_err();
        assert_eq!(err.kind(), *kind, "{err:?}");
    }
    // A token longer than the client's capacity.
    let clock = MockClock::new();
    let small: Client<Scripted, _, NoStore, 16, 512> = Client::new(
        config(),
        script(&[token(br#"{"access_token":"0123456789"}"#)]),
        &clock,
    );
    let err = block_on(small.token()).unwrap_err();
    assert_eq!(err, Error::Capacity(CapacityError::AccessToken));
    assert_eq!(err.kind(), ErrorKind::Capacity);
    // A refused resource request.
    let client = client(config(), &clock, &[]);
    let err = block_on(client.send(
        &Request::new(Method::Get, API).headers(&[("Authorization", "x")]),
        &mut [0; 8],
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

// ---------------------------------------------------------------------------------------------
// Resource requests
// ---------------------------------------------------------------------------------------------

#[test]
fn send_adds_the_bearer_token_and_keeps_the_request_as_is() {
    let clock = MockClock::new();
    let transport = Recorder::new(&[
        token(T1),
        Expect::request(Method::Put, API)
            .bearer("t1")
            .respond(201, b"created"),
    ]);
    let client: Client<_, _> = Client::new(config(), transport, &clock);
    let headers = [("Content-Type", "application/json"), ("X-Trace", "abc")];
    let request = Request::new(Method::Put, API)
        .headers(&headers)
        .body(br#"{"n":1}"#);
    let mut rx = [0u8; 64];
    let response = block_on(client.send(&request, &mut rx)).unwrap();
    assert_eq!((response.status, response.body), (201, &b"created"[..]));
    let seen = block_on(client.with_transport(|t| t.seen.clone()));
    let r = &seen[1];
    assert_eq!((r.method, r.url.as_str()), (Method::Put, API));
    assert_eq!(r.authorization.as_deref(), Some("Bearer t1"));
    let expected = [("Content-Type", "application/json"), ("X-Trace", "abc")]
        .map(|(n, v)| (n.to_owned(), v.to_owned()));
    assert_eq!(r.headers, expected);
    assert_eq!(r.body, br#"{"n":1}"#);
}

#[test]
fn send_on_401_refetches_and_replays_once_with_the_new_token() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[
            token(T1),
            Expect::get(API).bearer("t1").respond(401, b"expired"),
            token(T2),
            Expect::get(API).bearer("t2").respond(200, b"ok"),
        ],
    );
    let mut rx = [0u8; 64];
    let response = block_on(client.send(&Request::new(Method::Get, API), &mut rx)).unwrap();
    assert_eq!((response.status, response.body), (200, &b"ok"[..]));
    assert_eq!(sent(&client), 4);
    assert_eq!(token_of(&client), "t2");
    done(&client);
}

#[test]
fn send_returns_a_second_401_as_is_without_another_replay() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[
            token(T1),
            Expect::get(API).bearer("t1").respond(401, b"no"),
            token(T2),
            Expect::get(API).bearer("t2").respond_with_headers(
                401,
                b"still no",
                &[("WWW-Authenticate", r#"Bearer error="invalid_token""#)],
            ),
        ],
    );
    let mut rx = [0u8; 64];
    let response = block_on(client.send(&Request::new(Method::Get, API), &mut rx)).unwrap();
    assert_eq!((response.status, response.body), (401, &b"still no"[..]));
    assert_eq!(response.bearer_error, Some(alf::BearerError::InvalidToken));
    assert_eq!(sent(&client), 4);
    done(&client);
}

#[test]
fn send_does_not_replay_a_401_for_insufficient_scope() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[
            token(T1),
            Expect::get(API).bearer("t1").respond_with_headers(
                401,
                b"scope",
                &[(
                    "WWW-Authenticate",
                    r#"Bearer realm="api", error="insufficient_scope""#,
                )],
            ),
        ],
    );
    let mut rx = [0u8; 64];
    let response = block_on(client.send(&Request::new(Method::Get, API), &mut rx)).unwrap();
    assert_eq!(response.status, 401);
    assert_eq!(sent(&client), 2);
    // The token was not dropped either.
    assert_eq!(client.state_kind(), StateKind::Valid);
    assert_eq!(token_of(&client), "t1");
    assert_eq!(sent(&client), 2);
}

#[test]
fn send_does_not_replay_403_or_500() {
    for code in [403, 500] {
        let clock = MockClock::new();
        let client = client(
            config(),
            &clock,
            &[token(T1), Expect::get(API).bearer("t1").respond(code, b"x")],
        );
        let mut rx = [0u8; 64];
        let response = block_on(client.send(&Request::new(Method::Get, API), &mut rx)).unwrap();
        assert_eq!(response.status, code);
        assert_eq!(sent(&client), 2);
        assert_eq!(client.state_kind(), StateKind::Valid);
    }
}

#[test]
fn send_never_sends_the_request_when_the_token_endpoint_fails() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[Expect::post(TOKEN_URL).respond(400, INVALID_CLIENT)],
    );
    let mut rx = [0u8; 64];
    let err = block_on(client.send(&Request::new(Method::Get, API), &mut rx)).unwrap_err();
    assert_eq!(
        endpoint_error(&err).code,
        Some(OAuthErrorCode::InvalidClient)
    );
    assert_eq!(sent(&client), 1);
    done(&client);
}

#[test]
fn send_refuses_a_request_that_has_its_own_authorization() {
    let clock = MockClock::new();
    let client = client(config(), &clock, &[]);
    let mut rx = [0u8; 64];
    let own_header = [("authorization", "Bearer mine")];
    let requests = [
        Request::new(Method::Get, API).headers(&[("Authorization", "Bearer mine")]),
        Request::new(Method::Get, API).headers(&own_header),
        Request {
            authorization: Some("Bearer mine"),
            ..Request::new(Method::Get, API)
        },
    ];
    for request in &requests {
        let err = block_on(client.send(request, &mut rx)).unwrap_err();
        assert_eq!(
            err,
            Error::Request(RequestError::AuthorizationHeaderPresent)
        );
    }
    assert_eq!(
        sent(&client),
        0,
        "neither a token nor the request was fetched or sent"
    );
    assert_eq!(client.state_kind(), StateKind::NoToken);
}

#[test]
fn send_refuses_header_values_with_cr_or_lf() {
    let clock = MockClock::new();
    let client = client(config(), &clock, &[]);
    let mut rx = [0u8; 64];
    let requests = [
        Request::new(Method::Get, API).headers(&[("X-Note", "a\r\nX-Evil: 1")]),
        Request::new(Method::Get, API).headers(&[("X-Note", "a\nb")]),
        Request::new(Method::Get, API).headers(&[("X Bad", "v")]),
        Request::new(Method::Get, "https://api.example.com/\r\nX-Evil: 1"),
    ];
    for request in &requests {
        let err = block_on(client.send(request, &mut rx)).unwrap_err();
        assert_eq!(
            err,
            Error::Request(RequestError::InvalidHeader),
            "{request:?}"
        );
    }
    assert_eq!(sent(&client), 0);
}

#[test]
fn resource_body_larger_than_rx_is_a_capacity_error() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[
            token(T1),
            Expect::get(API).bearer("t1").respond(200, b"0123456789"),
        ],
    );
    let mut rx = [0u8; 4];
    let err = block_on(client.send(&Request::new(Method::Get, API), &mut rx)).unwrap_err();
    assert_eq!(err, Error::Transport(MockError(IoKind::OutOfMemory)));
    assert_eq!(err.kind(), ErrorKind::Capacity);
    // The token is fine and kept.
    assert_eq!(client.state_kind(), StateKind::Valid);
}

#[test]
fn invalidate_with_an_old_generation_keeps_the_newer_token() {
    let clock = MockClock::new();
    let client = client(config(), &clock, &[token(T1), token(T2), token(T3)]);
    let old = block_on(client.token()).unwrap();
    client.invalidate(old.generation);
    assert_eq!(client.state_kind(), StateKind::Expired);
    let new = block_on(client.token()).unwrap();
    assert_eq!(new.token.secret(), "t2");
    assert_ne!(new.generation, old.generation);
    // A late rejection of the old token does not drop the new one.
    client.invalidate(old.generation);
    assert_eq!(client.state_kind(), StateKind::Valid);
    assert_eq!(token_of(&client), "t2");
    assert_eq!(sent(&client), 2);
    // Rejecting the current one does.
    client.invalidate(new.generation);
    assert_eq!(token_of(&client), "t3");
    done(&client);
}

// ---------------------------------------------------------------------------------------------
// Bad token responses
// ---------------------------------------------------------------------------------------------

#[test]
fn token_with_cr_lf_is_rejected_and_the_next_call_fetches_again() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[
            token(br#"{"access_token":"abc\r\nX-Evil: 1","expires_in":100}"#),
            token(T1),
        ],
    );
    let err = block_on(client.token()).unwrap_err();
    assert_eq!(
        err,
        Error::InvalidResponse(ResponseError::InvalidAccessToken)
    );
    assert_eq!(client.state_kind(), StateKind::NoToken);
    assert_eq!(token_of(&client), "t1");
    assert_eq!(sent(&client), 2);
}

#[test]
fn token_longer_than_the_capacity_is_a_capacity_error_and_one_that_fits_works() {
    // N = 32 holds `Bearer ` and 25 bytes of token.
    let clock = MockClock::new();
    let client: Client<Scripted, _, NoStore, 32, 512> = Client::new(
        config(),
        script(&[
            token(br#"{"access_token":"abcdefghijklmnopqrstuvwxyz","expires_in":100}"#),
            token(br#"{"access_token":"abcdefghijklmnopqrstuvwxy","expires_in":100}"#),
        ]),
        &clock,
    );
    let err = block_on(client.token()).unwrap_err();
    assert_eq!(err, Error::Capacity(CapacityError::AccessToken));
    assert_eq!(client.state_kind(), StateKind::NoToken);
    assert_eq!(token_of(&client), "abcdefghijklmnopqrstuvwxy");
    assert_eq!(sent(&client), 2);
}

#[test]
fn success_status_with_an_error_body_is_a_token_endpoint_error() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[
            Expect::post(TOKEN_URL).respond(
                200,
                br#"{"error":"invalid_scope","error_description":"no such scope"}"#,
            ),
            token(T1),
        ],
    );
    let err = block_on(client.token()).unwrap_err();
    let e = endpoint_error(&err);
    assert_eq!(
        (e.status, e.code),
        (200, Some(OAuthErrorCode::InvalidScope))
    );
    assert_eq!(e.description.as_deref(), Some("no such scope"));
    assert_eq!(client.state_kind(), StateKind::NoToken);
    assert_eq!(sent(&client), 1);
    assert_eq!(token_of(&client), "t1");
}

#[test]
fn non_json_response_is_a_protocol_error_and_the_next_call_fetches_again() {
    let clock = MockClock::new();
    let client = client(
        config(),
        &clock,
        &[
            Expect::post(TOKEN_URL).respond(200, b"<html>login</html>"),
            token(T1),
        ],
    );
    let err = block_on(client.token()).unwrap_err();
    assert_eq!(err, Error::InvalidResponse(ResponseError::NotJson));
    assert_eq!(client.state_kind(), StateKind::NoToken);
    assert_eq!(token_of(&client), "t1");
}

// ---------------------------------------------------------------------------------------------
// Token stores
// ---------------------------------------------------------------------------------------------

const UNIX: u64 = 1_700_000_000;

/// Unix seconds as the milliseconds a [`StoredToken`] carries.
const fn ms(unix_secs: u64) -> u64 {
    unix_secs * 1000
}

fn stored(store: &mut impl TokenStore, key: &str) -> Option<(String, u64)> {
    let mut buf = [0u8; 256];
    block_on(store.load(key, &mut buf))
        .ok()
        .flatten()
        .map(|t| (t.access_token.to_owned(), t.expires_at_unix_ms))
}

fn save(store: &mut impl TokenStore, key: &str, token: &str, expires_at_unix_ms: u64) {
    block_on(store.save(
        key,
        StoredToken {
            access_token: token,
            expires_at_unix_ms,
        },
    ))
    .unwrap();
}

#[test]
fn store_receives_a_new_token_with_its_unix_expiry() {
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let mut store = MemoryStore::<256>::new();
    let key = config().store_key();
    {
        let client = with_store(config(), script::<16>(&[token(T1)]), &clock, &mut store);
        assert_eq!(block_on(client.access_token()).unwrap().secret(), "t1");
    }
    assert_eq!(
        stored(&mut store, &key),
        Some(("t1".to_owned(), ms(UNIX + 100)))
    );
}

#[test]
fn second_client_adopts_the_stored_token_without_a_request() {
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let mut store = MemoryStore::<256>::new();
    {
        let first = with_store(config(), script::<16>(&[token(T1)]), &clock, &mut store);
        block_on(first.token()).unwrap();
    }
    clock.advance(Duration::from_secs(10));
    let second = with_store(config(), script::<16>(&[]), &clock, &mut store);
    assert_eq!(token_of(&second), "t1");
    assert_eq!(sent(&second), 0);
    assert_eq!(second.state_kind(), StateKind::Valid);
}

#[test]
fn store_of_another_client_configuration_is_not_used() {
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let mut store = MemoryStore::<256>::new();
    {
        let first = with_store(config(), script::<16>(&[token(T1)]), &clock, &mut store);
        block_on(first.token()).unwrap();
    }
    let other = builder().scope("admin").build().unwrap();
    let second = with_store(other, script::<16>(&[token(T2)]), &clock, &mut store);
    assert_eq!(token_of(&second), "t2");
}

/// Counts the calls made to a store.
#[derive(Default)]
struct Counting<S> {
    inner: S,
    calls: Vec<&'static str>,
}

impl<S: TokenStore> TokenStore for Counting<S> {
    type Error = S::Error;
    async fn load<'b>(
        &mut self,
        key: &str,
        buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, S::Error> {
        self.calls.push("load");
        self.inner.load(key, buf).await
    }
    async fn save(&mut self, key: &str, token: StoredToken<'_>) -> Result<(), S::Error> {
        self.calls.push("save");
        self.inner.save(key, token).await
    }
    async fn clear(&mut self, key: &str) -> Result<(), S::Error> {
        self.calls.push("clear");
        self.inner.clear(key).await
    }
    async fn try_lock(&mut self, key: &str, ttl: Duration) -> Result<bool, S::Error> {
        self.calls.push("try_lock");
        self.inner.try_lock(key, ttl).await
    }
    async fn unlock(&mut self, key: &str) -> Result<(), S::Error> {
        self.calls.push("unlock");
        self.inner.unlock(key).await
    }
}

#[test]
fn without_a_wall_clock_the_store_is_neither_read_nor_written() {
    let clock = MockClock::new();
    let key = config().store_key();
    let mut store = Counting::<MemoryStore<256>>::default();
    save(&mut store.inner, &key, "from-store", u64::MAX / 2);
    let client = with_store(config(), script::<16>(&[token(T1)]), &clock, &mut store);
    assert_eq!(token_of(&client), "t1");
    assert_eq!(sent(&client), 1);
    drop(client);
    assert!(store.calls.is_empty(), "{:?}", store.calls);
    assert_eq!(stored(&mut store.inner, &key).unwrap().0, "from-store");
}

#[test]
fn store_calls_load_then_lock_then_save_then_unlock() {
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let mut store = Counting::<MemoryStore<256>>::default();
    let client = with_store(config(), script::<16>(&[token(T1)]), &clock, &mut store);
    assert_eq!(token_of(&client), "t1");
    drop(client);
    // The lock is taken before the fetch, and the token is saved before the lock is released,
    // so that the processes polling the store find it.
    let at = |call: &str| store.calls.iter().position(|c| *c == call).unwrap();
    assert!(
        at("load") < at("try_lock") && at("try_lock") < at("save") && at("save") < at("unlock"),
        "{:?}",
        store.calls
    );
    assert_eq!(store.calls.iter().filter(|c| **c == "unlock").count(), 1);
    assert_eq!(store.calls.last(), Some(&"unlock"));
}

/// A store that another process fills between this client's first look and its lock.
struct FilledWhileLocking {
    loads: u32,
    unlocks: u32,
    saves: u32,
}

impl TokenStore for FilledWhileLocking {
    type Error = core::convert::Infallible;
    async fn load<'b>(
        &mut self,
        _: &str,
        buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error> {
        self.loads += 1;
        if self.loads < 2 {
            return Ok(None);
        }
        buf[..5].copy_from_slice(b"other");
        Ok(Some(StoredToken {
            access_token: core::str::from_utf8(&buf[..5]).unwrap(),
            expires_at_unix_ms: ms(UNIX + 3600),
        }))
    }
    async fn save(&mut self, _: &str, _: StoredToken<'_>) -> Result<(), Self::Error> {
        self.saves += 1;
        Ok(())
    }
    async fn clear(&mut self, _: &str) -> Result<(), Self::Error> {
        Ok(())
    }
    async fn try_lock(&mut self, _: &str, _: Duration) -> Result<bool, Self::Error> {
        Ok(true)
    }
    async fn unlock(&mut self, _: &str) -> Result<(), Self::Error> {
        self.unlocks += 1;
        Ok(())
    }
}

#[test]
fn token_saved_by_another_process_before_the_lock_is_used_and_the_lock_released() {
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let mut store = FilledWhileLocking {
        loads: 0,
        unlocks: 0,
        saves: 0,
    };
    let client = with_store(config(), script::<16>(&[]), &clock, &mut store);
    assert_eq!(token_of(&client), "other");
    assert_eq!(sent(&client), 0);
    drop(client);
    assert_eq!((store.unlocks, store.saves), (1, 0));
}

#[test]
fn garbage_in_the_store_is_ignored_and_a_token_is_fetched() {
    for garbage in ["bad token", "bad\r\ntoken", ""] {
        let clock = MockClock::new();
        clock.set_unix_time(Some(UNIX));
        let key = config().store_key();
        let mut store = MemoryStore::<256>::new();
        save(&mut store, &key, garbage, ms(UNIX + 3600));
        let client = with_store(config(), script::<16>(&[token(T1)]), &clock, &mut store);
        assert_eq!(token_of(&client), "t1", "{garbage:?}");
        assert_eq!(sent(&client), 1);
        drop(client);
        assert_eq!(stored(&mut store, &key).unwrap().0, "t1");
    }
}

#[test]
fn expired_token_in_the_store_is_ignored_and_a_token_is_fetched() {
    // Expired, or expiring within the second the wall clock reads (UNIX.999 at the latest).
    for expires_at_unix_ms in [0, ms(UNIX - 1), ms(UNIX), ms(UNIX) + 999] {
        let clock = MockClock::new();
        clock.set_unix_time(Some(UNIX));
        let key = config().store_key();
        let mut store = MemoryStore::<256>::new();
        save(&mut store, &key, "old", expires_at_unix_ms);
        let client = with_store(config(), script::<16>(&[token(T1)]), &clock, &mut store);
        assert_eq!(
            token_of(&client),
            "t1",
            "expires_at_unix_ms {expires_at_unix_ms}"
        );
        assert_eq!(sent(&client), 1);
    }
}

#[test]
fn token_rejected_with_401_is_not_loaded_back_from_the_store() {
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let key = config().store_key();
    let mut store = MemoryStore::<256>::new();
    let client = with_store(
        config(),
        script::<16>(&[
            token(T1),
            Expect::get(API).bearer("t1").respond(401, b""),
            token(T2),
            Expect::get(API).bearer("t2").respond(200, b"ok"),
        ]),
        &clock,
        &mut store,
    );
    let mut rx = [0u8; 64];
    let response = block_on(client.send(&Request::new(Method::Get, API), &mut rx)).unwrap();
    assert_eq!(response.status, 200);
    done(&client);
    drop(client);
    assert_eq!(stored(&mut store, &key).unwrap().0, "t2");
}

#[test]
fn refresh_with_a_store_fetches_a_new_token_instead_of_reloading_the_old_one() {
    // The store holds the client's own token, which is due: loading it back is no refresh.
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let key = config().store_key();
    let mut store = MemoryStore::<256>::new();
    let client = with_store(
        config(),
        script::<16>(&[token(T1), token(T2)]),
        &clock,
        &mut store,
    );
    assert_eq!(token_of(&client), "t1");
    clock.set(secs(51));
    assert_eq!(token_of(&client), "t2");
    assert_eq!(sent(&client), 2);
    done(&client);
    drop(client);
    assert_eq!(
        stored(&mut store, &key),
        Some(("t2".to_owned(), ms(UNIX + 51 + 100)))
    );
}

/// A store shared by two clients of one program (as Redis is shared by processes).
#[derive(Clone, Default)]
struct Shared(std::rc::Rc<std::cell::RefCell<MemoryStore<256>>>);

impl TokenStore for Shared {
    type Error = alf::store::MemoryStoreError;
    async fn load<'b>(
        &mut self,
        key: &str,
        buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error> {
        // MemoryStore never awaits, so the borrow never spans a suspension.
        block_on(self.0.borrow_mut().load(key, buf))
    }
    async fn save(&mut self, key: &str, token: StoredToken<'_>) -> Result<(), Self::Error> {
        block_on(self.0.borrow_mut().save(key, token))
    }
    async fn clear(&mut self, key: &str) -> Result<(), Self::Error> {
        block_on(self.0.borrow_mut().clear(key))
    }
}

#[test]
fn refresh_adopts_a_newer_token_saved_by_another_client() {
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let store = Shared::default();
    let a = with_store(
        config(),
        script::<16>(&[token(T1), token(T2)]),
        &clock,
        store.clone(),
    );
    assert_eq!(token_of(&a), "t1");
    clock.set(secs(1));
    let b = with_store(config(), script::<16>(&[]), &clock, store.clone());
    assert_eq!(token_of(&b), "t1");
    clock.set(secs(51));
    assert_eq!(token_of(&a), "t2");
    clock.set(secs(55));
    assert_eq!(token_of(&b), "t2");
    assert_eq!(sent(&b), 0);
}

/// A store that is down.
struct Broken;

impl TokenStore for Broken {
    type Error = &'static str;
    async fn load<'b>(
        &mut self,
        _: &str,
        _: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error> {
        Err("down")
    }
    async fn save(&mut self, _: &str, _: StoredToken<'_>) -> Result<(), Self::Error> {
        Err("down")
    }
    async fn clear(&mut self, _: &str) -> Result<(), Self::Error> {
        Err("down")
    }
    async fn try_lock(&mut self, _: &str, _: Duration) -> Result<bool, Self::Error> {
        Err("down")
    }
    async fn unlock(&mut self, _: &str) -> Result<(), Self::Error> {
        Err("down")
    }
}

#[test]
fn store_that_fails_every_call_never_fails_a_request() {
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let client = with_store(
        config(),
        script::<16>(&[
            token(T1),
            Expect::get(API).bearer("t1").respond(200, b"ok"),
            token(T2),
        ]),
        &clock,
        Broken,
    );
    let mut rx = [0u8; 16];
    assert_eq!(
        block_on(client.send(&Request::new(Method::Get, API), &mut rx))
            .unwrap()
            .body,
        b"ok"
    );
    assert_eq!(token_of(&client), "t1");
    block_on(client.forget_token());
    assert_eq!(token_of(&client), "t2");
    done(&client);
}

/// A store whose fetch lock is held by another process, which saves its token on the
/// `arrives_on`-th load (never when `None`).
struct LockedElsewhere {
    loads: u32,
    arrives_on: Option<u32>,
    saved: Vec<String>,
    unlocks: u32,
}

impl LockedElsewhere {
    fn new(arrives_on: Option<u32>) -> Self {
        Self {
            loads: 0,
            arrives_on,
            saved: Vec::new(),
            unlocks: 0,
        }
    }
}

impl TokenStore for LockedElsewhere {
    type Error = core::convert::Infallible;
    async fn load<'b>(
        &mut self,
        _: &str,
        buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error> {
        self.loads += 1;
        if self.arrives_on.is_some_and(|n| self.loads >= n) {
            let t = b"from-other-process";
            buf[..t.len()].copy_from_slice(t);
            let access_token = core::str::from_utf8(&buf[..t.len()]).unwrap();
            return Ok(Some(StoredToken {
                access_token,
                expires_at_unix_ms: ms(UNIX + 3600),
            }));
        }
        Ok(None)
    }
    async fn save(&mut self, _: &str, token: StoredToken<'_>) -> Result<(), Self::Error> {
        self.saved.push(token.access_token.to_owned());
        Ok(())
    }
    async fn clear(&mut self, _: &str) -> Result<(), Self::Error> {
        Ok(())
    }
    async fn try_lock(&mut self, _: &str, _: Duration) -> Result<bool, Self::Error> {
        Ok(false)
    }
    async fn unlock(&mut self, _: &str) -> Result<(), Self::Error> {
        self.unlocks += 1;
        Ok(())
    }
}

#[test]
fn lock_held_by_another_process_adopts_its_token_without_fetching() {
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let mut store = LockedElsewhere::new(Some(3));
    let client = with_store(config(), script::<16>(&[]), &clock, &mut store);
    assert_eq!(token_of(&client), "from-other-process");
    assert_eq!(sent(&client), 0);
    // Two polls, 50 ms apart (StorePolicy::DEFAULT.poll_interval).
    assert_eq!(clock.slept(), Duration::from_millis(100));
    drop(client);
    assert_eq!(
        store.unlocks, 0,
        "a lock this client does not hold is not released"
    );
    assert!(store.saved.is_empty());
}

#[test]
fn lock_held_by_another_process_fetches_itself_after_store_policy_wait() {
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let mut store = LockedElsewhere::new(None);
    let config = builder()
        .store_policy(StorePolicy::DEFAULT.wait(Duration::from_millis(500)))
        .build()
        .unwrap();
    let client = with_store(config, script::<16>(&[token(T1)]), &clock, &mut store);
    assert_eq!(token_of(&client), "t1");
    assert_eq!(clock.slept(), Duration::from_millis(500));
    assert_eq!(sent(&client), 1);
    drop(client);
    assert!(store.loads > 1, "the store was polled");
    assert_eq!(store.saved, ["t1"]);
}

// ---------------------------------------------------------------------------------------------
// keep_fresh
// ---------------------------------------------------------------------------------------------

#[test]
fn keep_fresh_refreshes_at_refresh_at_without_any_request() {
    let clock = StepClock::new();
    let client: Client<Scripted, _> =
        Client::new(config(), script(&[token(T1), token(T2)]), &clock);
    let check = async {
        // keep_fresh gets the first token by itself.
        assert!(settle(|| client.state_kind() == StateKind::Valid).await);
        assert_eq!(client.with_transport(|t| t.sent()).await, 1);
        clock.set(secs(49));
        for _ in 0..100 {
            yield_now().await;
        }
        assert_eq!(client.with_transport(|t| t.sent()).await, 1, "not due yet");
        clock.set(secs(50));
        let mut refreshed = false;
        for _ in 0..1000 {
            if client.with_transport(|t| t.sent()).await == 2
                && client.state_kind() == StateKind::Valid
            {
                refreshed = true;
                break;
            }
            yield_now().await;
        }
        assert!(refreshed, "keep_fresh did not refresh at refresh_at");
        assert_eq!(client.poll_at(), Some(secs(100)));
        // Callers now get the new token without waiting and without a request.
        assert_eq!(client.access_token().await.unwrap().secret(), "t2");
        assert_eq!(client.with_transport(|t| t.sent()).await, 2);
    };
    match block_on(select(client.keep_fresh(), check)) {
        Either::First(()) => panic!("keep_fresh returned"),
        Either::Second(()) => {}
    }
    done(&client);
}

// ---------------------------------------------------------------------------------------------
// forget_token
// ---------------------------------------------------------------------------------------------

#[test]
fn forget_token_drops_it_here_and_in_the_store() {
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let key = config().store_key();
    let mut store = MemoryStore::<256>::new();
    let client = with_store(
        config(),
        script::<16>(&[token(T1), token(T2)]),
        &clock,
        &mut store,
    );
    assert_eq!(token_of(&client), "t1");
    block_on(client.forget_token());
    assert_eq!(client.state_kind(), StateKind::NoToken);
    assert_eq!(block_on(client.with_store_ref(|s| stored(s, &key))), None);
    assert_eq!(token_of(&client), "t2");
}

// ---------------------------------------------------------------------------------------------
// Secrets never show in formatting
// ---------------------------------------------------------------------------------------------

#[test]
fn formatting_never_shows_the_secret_or_the_token() {
    const SECRET: &str = "Sup3rS3cretValue";
    const TOKEN: &str = "tok-VERY-SECRET-123";
    let config = Config::builder(TOKEN_URL, "client", SECRET)
        .build()
        .unwrap();
    let basic = config.authorization().unwrap().to_owned();
    let basic_b64 = basic.trim_start_matches("Basic ").to_owned();
    let post = Config::builder(TOKEN_URL, "client", SECRET)
        .client_auth(ClientAuth::Post)
        .build()
        .unwrap();
    let clock = MockClock::new();
    let client = client(
        config.clone(),
        &clock,
        &[
            token(br#"{"access_token":"tok-VERY-SECRET-123","expires_in":100}"#),
            Expect::post(TOKEN_URL).respond(
                400,
                br#"{"error":"invalid_client","error_description":"bad secret Sup3rS3cretValue"}"#,
            ),
        ],
    );
    let lease = block_on(client.token()).unwrap();
    assert_eq!(lease.token.secret(), TOKEN);
    client.invalidate(lease.generation);
    let err = block_on(client.token()).unwrap_err();
    assert_eq!(
        endpoint_error(&err).code,
        Some(OAuthErrorCode::InvalidClient)
    );
    let stored = StoredToken {
        access_token: TOKEN,
        expires_at_unix_ms: 1,
    };

    let texts = [
        format!("{config:?}"),
        format!("{post:?}"),
        format!("{:?}", Config::builder(TOKEN_URL, "client", SECRET)),
        format!("{client:?}"),
        format!("{lease:?}"),
        format!("{:?} {}", lease.token, lease.token),
        format!("{err:?}"),
        format!("{err}"),
        format!("{stored:?}"),
    ];
    for text in &texts {
        for needle in [
            SECRET,
            TOKEN,
            basic.as_str(),
            basic_b64.as_str(),
            post.form_body(),
        ] {
            assert!(!text.contains(needle), "{text:?} shows a secret");
        }
    }
    assert!(texts[4].contains("redacted"));
}

#[test]
fn manual_mock_clock_lets_keep_fresh_refresh_exactly_at_refresh_at() {
    let clock = MockClock::manual();
    let c = client(
        builder()
            .refresh_policy(RefreshPolicy::DEFAULT.jitter(alf::Duration::ZERO))
            .build()
            .unwrap(),
        &clock,
        &[
            token(br#"{"access_token":"first","expires_in":3600}"#),
            token(br#"{"access_token":"second","expires_in":3600}"#),
        ],
    );
    block_on(async {
        let background = c.keep_fresh();
        let test = async {
            // The first fetch happens at once (no token yet).
            while c.with_transport(|t| t.sent()).await < 1 {
                yield_now().await;
            }
            // Nothing happens until the clock reaches refresh_at = 3600 - 60 s.
            clock.set(secs(3539));
            for _ in 0..50 {
                yield_now().await;
            }
            assert_eq!(
                c.with_transport(|t| t.sent()).await,
                1,
                "refreshed before refresh_at"
            );
            clock.set(secs(3540));
            while c.with_transport(|t| t.sent()).await < 2 {
                yield_now().await;
            }
            assert_eq!(c.access_token().await.unwrap().secret(), "second");
        };
        match select(background, test).await {
            Either::First(()) => panic!("keep_fresh returned"),
            Either::Second(()) => {}
        }
    });
    assert_eq!(
        clock.slept(),
        alf::Duration::ZERO,
        "a manual clock never jumps by itself"
    );
}

#[test]
fn a_stored_token_is_adopted_with_its_refresh_scheduled_from_what_is_left() {
    // T1 lives 100 s, and the default 60 s margin is more than half of that. A second client
    // 50 s later finds 50 s left (49 s counted: this wall clock reads whole seconds, and the
    // time left is counted from the end of the second it reads): it adopts
    // the token and schedules its refresh with the margin capped at half of that, 24.5 s,
    // like for a fetched token. (A margin check against the whole 60 s refused every stored
    // token of 120 s or less: a fleet never shared short-lived tokens.)
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let mut store = MemoryStore::<256>::new();
    {
        let first = with_store(config(), script::<16>(&[token(T1)]), &clock, &mut store);
        block_on(first.token()).unwrap();
    }
    clock.advance(Duration::from_secs(50));
    let second = with_store(config(), script::<16>(&[]), &clock, &mut store);
    assert_eq!(token_of(&second), "t1");
    assert_eq!(sent(&second), 0);
    assert_eq!(
        second.poll_at(),
        Some(secs(50) + Duration::from_millis(49_000 - 24_500))
    );
    drop(second);
    // At UNIX + 100 it has expired: a new token is fetched.
    clock.advance(Duration::from_secs(50));
    let third = with_store(config(), script::<16>(&[token(T2)]), &clock, &mut store);
    assert_eq!(token_of(&third), "t2");
    assert_eq!(sent(&third), 1);
}

/// A configuration whose refresh is due at the expiry itself: `poll_at` is then the expiry.
/// A first client (refreshing at expiry) fetches `body` and saves it in `store`, then goes away.
fn fetch_and_store(clock: &MockClock, store: &mut MemoryStore<256>, body: &'static [u8]) {
    let first = with_store(
        config_refreshing_at_expiry(),
        script::<16>(&[token(body)]),
        clock,
        store,
    );
    block_on(first.token()).unwrap();
}

fn config_refreshing_at_expiry() -> Config {
    builder()
        .refresh_policy(NO_JITTER.margin(Duration::ZERO))
        .build()
        .unwrap()
}

#[test]
fn with_a_seconds_wall_clock_a_loaded_token_never_outlives_its_stored_expiry() {
    // The wall clock counts whole seconds: it says UNIX + 10 for anything from UNIX + 10.000
    // to UNIX + 10.999. The token stored with expiry UNIX + 100 is counted from UNIX + 11, the
    // end of that second, so wherever the load falls in it the deadline is before the real
    // expiry (100 s on this monotonic clock, where the wall time is UNIX + 100), by 1 ms when
    // the load falls on the second's last millisecond. Counting from UNIX + 10 kept it up to a
    // second too long, and servers answered 401.
    for load_at_ms in [10_000, 10_001, 10_500, 10_999] {
        let clock = MockClock::new();
        clock.set_unix_time(Some(UNIX));
        let mut store = MemoryStore::<256>::new();
        fetch_and_store(&clock, &mut store, T1);
        clock.set(Instant::from_millis(load_at_ms));
        let second = with_store(
            config_refreshing_at_expiry(),
            script::<16>(&[token(T2)]),
            &clock,
            &mut store,
        );
        assert_eq!(token_of(&second), "t1", "load at {load_at_ms} ms");
        assert_eq!(sent(&second), 0);
        let expires_at = second.poll_at().unwrap();
        assert_eq!(
            expires_at,
            Instant::from_millis(load_at_ms + ms(UNIX + 100) - ms(UNIX + 11)),
            "load at {load_at_ms} ms"
        );
        assert!(expires_at < secs(100), "load at {load_at_ms} ms");
        // Just before its deadline it is still served; at its real expiry it never is (in
        // between, it may be loaded again with the few milliseconds the clock allows it).
        clock.set(Instant::from_millis(expires_at.as_millis() - 1));
        assert_eq!(token_of(&second), "t1");
        assert_eq!(sent(&second), 0);
        clock.set(secs(100));
        assert_eq!(
            token_of(&second),
            "t2",
            "t1 must not be served at its expiry"
        );
        assert_eq!(sent(&second), 1);
    }
}

#[test]
fn with_a_seconds_wall_clock_the_saved_expiry_is_never_later_than_the_real_one() {
    // The token is fetched at UNIX + 0.700 (by the wall time that moves with this clock), but a
    // seconds clock reads UNIX: the saved expiry is UNIX + 100, 0.7 s before the real one,
    // never after it.
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    clock.set(Instant::from_millis(700));
    let key = config().store_key();
    let mut store = MemoryStore::<256>::new();
    {
        let client = with_store(config(), script::<16>(&[token(T1)]), &clock, &mut store);
        assert_eq!(token_of(&client), "t1");
    }
    assert_eq!(
        stored(&mut store, &key),
        Some(("t1".to_owned(), ms(UNIX + 100)))
    );
}

const T1_5S: &[u8] = br#"{"access_token":"t1","token_type":"Bearer","expires_in":5}"#;

#[test]
fn with_a_millisecond_wall_clock_a_stored_token_keeps_its_whole_lifetime() {
    // What a fleet sharing 5 s tokens needs: with a millisecond wall clock the expiry is saved
    // to the millisecond, and another client loading it right away adopts it with all of its
    // 5 s but the millisecond the wall clock's reading may lag (a whole-second store lost up
    // to 2 s of them: 3 s counted out of 5).
    let wall = ms(UNIX) + 700;
    for load_at_ms in [0, 1, 1_500, 4_000] {
        let clock = MockClock::new();
        clock.set_unix_time_ms(Some(wall));
        let key = config().store_key();
        let mut store = MemoryStore::<256>::new();
        fetch_and_store(&clock, &mut store, T1_5S);
        assert_eq!(
            stored(&mut store, &key),
            Some(("t1".to_owned(), wall + 5_000))
        );
        clock.set(Instant::from_millis(load_at_ms));
        let second = with_store(
            config_refreshing_at_expiry(),
            script::<16>(&[token(T2)]),
            &clock,
            &mut store,
        );
        assert_eq!(token_of(&second), "t1", "load at {load_at_ms} ms");
        assert_eq!(sent(&second), 0);
        // Its deadline is 1 ms before the real expiry: the reading may lag the real time by
        // up to a millisecond.
        assert_eq!(second.poll_at(), Some(Instant::from_millis(4_999)));
        clock.set(Instant::from_millis(4_998));
        assert_eq!(token_of(&second), "t1");
        clock.set(Instant::from_millis(4_999));
        assert_eq!(token_of(&second), "t2");
    }
    // With the default refresh policy, the refresh is scheduled from the whole 5 s left: at
    // half of it, as for a token fetched by this client.
    let clock = MockClock::new();
    clock.set_unix_time_ms(Some(wall));
    let mut store = MemoryStore::<256>::new();
    {
        let first = with_store(config(), script::<16>(&[token(T1_5S)]), &clock, &mut store);
        block_on(first.token()).unwrap();
        assert_eq!(first.poll_at(), Some(Instant::from_millis(2_500)));
    }
    let second = with_store(config(), script::<16>(&[]), &clock, &mut store);
    assert_eq!(token_of(&second), "t1");
    assert_eq!(second.poll_at(), Some(Instant::from_millis(2_500)));
}

#[test]
fn after_a_401_another_token_in_the_store_is_adopted_without_a_fetch() {
    // The client's token t1 is rejected; meanwhile another process saved t2. The next call
    // takes t2 from the store (t1, still stored by another process, would not be taken).
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let key = config().store_key();
    let mut store = MemoryStore::<256>::new();
    let client = with_store(
        config(),
        script::<16>(&[
            token(T1),
            Expect::get(API).bearer("t1").respond(401, b""),
            Expect::get(API).bearer("t2").respond(200, b"ok"),
        ]),
        &clock,
        &mut store,
    );
    block_on(client.token()).unwrap();
    block_on(client.with_store_ref(|s| save(s, &key, "t2", ms(UNIX + 100))));
    let mut rx = [0u8; 64];
    let response = block_on(client.send(&Request::new(Method::Get, API), &mut rx)).unwrap();
    assert_eq!(response.status, 200);
    done(&client);
}

#[test]
fn after_a_401_the_rejected_token_in_the_store_is_skipped_and_the_lock_still_taken() {
    // A 401 seen by a whole fleet must cost one token request: the client that was rejected
    // goes through the store's fetch lock as usual, only refusing to adopt the rejected token.
    let clock = MockClock::new();
    clock.set_unix_time(Some(UNIX));
    let key = config().store_key();
    let mut store = Counting::<MemoryStore<256>>::default();
    let client = with_store(
        config(),
        script::<16>(&[
            token(T1),
            Expect::get(API).bearer("t1").respond(401, b""),
            token(T2),
            Expect::get(API).bearer("t2").respond(200, b"ok"),
        ]),
        &clock,
        &mut store,
    );
    block_on(client.token()).unwrap();
    block_on(client.with_store_ref(|s| s.calls.clear()));
    let mut rx = [0u8; 64];
    let response = block_on(client.send(&Request::new(Method::Get, API), &mut rx)).unwrap();
    assert_eq!(response.status, 200);
    done(&client);
    let calls = block_on(client.with_store_ref(|s| s.calls.clone()));
    assert_eq!(calls, ["load", "try_lock", "load", "save", "unlock"]);
    drop(client);
    assert_eq!(stored(&mut store.inner, &key).unwrap().0, "t2");
}

#[test]
fn while_keep_fresh_runs_callers_use_the_due_token_and_leave_the_refresh_to_it() {
    let clock = MockClock::new();
    let client = client(config(), &clock, &[token(T1), token(T2)]);
    assert_eq!(token_of(&client), "t1");
    clock.set(secs(50));
    {
        // keep_fresh registered (polled once: it sleeps, as the clock is not advanced for it).
        let mut refresher = core::pin::pin!(client.keep_fresh());
        let waker = core::task::Waker::noop();
        let mut cx = core::task::Context::from_waker(waker);
        let _ = core::future::Future::poll(refresher.as_mut(), &mut cx);
        // Due, but a refresher runs: the still-valid t1, no request, no waiting.
        assert_eq!(token_of(&client), "t1");
        assert_eq!(sent(&client), 1);
        assert_eq!(client.state_kind(), StateKind::Valid);
    }
    // keep_fresh dropped: callers refresh on demand again.
    assert_eq!(token_of(&client), "t2");
    assert_eq!(sent(&client), 2);
    done(&client);
}

// ---------------------------------------------------------------------------------------------
// generation(): the token's generation without a copy of the token
// ---------------------------------------------------------------------------------------------

#[test]
fn generation_fetches_like_token_and_matches_its_generation() {
    let clock = MockClock::new();
    let client = client(config(), &clock, &[token(T1)]);
    assert_eq!(client.state_kind(), StateKind::NoToken);
    let generation = block_on(client.generation()).unwrap();
    assert_eq!(sent(&client), 1, "generation() fetched the token");
    assert_eq!(client.state_kind(), StateKind::Valid);
    let lease = block_on(client.token()).unwrap();
    assert_eq!(lease.generation, generation);
    assert_eq!(lease.token.secret(), "t1");
    // Reused while fresh: no request.
    clock.set(secs(49));
    assert_eq!(block_on(client.generation()).unwrap(), generation);
    assert_eq!(sent(&client), 1);
    done(&client);
}

#[test]
fn generation_changes_after_a_refresh() {
    let clock = MockClock::new();
    let client = client(config(), &clock, &[token(T1), token(T2)]);
    let first = block_on(client.generation()).unwrap();
    // Due at 50 s (see refresh_is_due_at_half_the_lifetime_when_the_margin_is_larger).
    clock.set(secs(51));
    let second = block_on(client.generation()).unwrap();
    assert_ne!(second, first);
    assert_eq!(sent(&client), 2, "generation() refreshed the due token");
    let lease = block_on(client.token()).unwrap();
    assert_eq!((lease.token.secret(), lease.generation), ("t2", second));
    done(&client);
}

#[test]
fn generation_changes_after_invalidate_and_a_late_invalidate_keeps_it() {
    let clock = MockClock::new();
    let client = client(config(), &clock, &[token(T1), token(T2)]);
    let old = block_on(client.generation()).unwrap();
    client.invalidate(old);
    assert_eq!(client.state_kind(), StateKind::Expired);
    let new = block_on(client.generation()).unwrap();
    assert_ne!(new, old);
    assert_eq!(token_of(&client), "t2");
    client.invalidate(old);
    assert_eq!(block_on(client.generation()).unwrap(), new);
    assert_eq!(sent(&client), 2);
    done(&client);
}

#[test]
fn generation_returns_the_errors_of_token() {
    let clock = MockClock::new();
    let client = client(
        config_with_retry(RETRY_EVERYTHING),
        &clock,
        &[Expect::post(TOKEN_URL).respond(400, INVALID_CLIENT)],
    );
    let err = block_on(client.generation()).unwrap_err();
    assert_eq!(
        endpoint_error(&err).code,
        Some(OAuthErrorCode::InvalidClient)
    );
    assert_eq!(err.kind(), ErrorKind::Credentials);
    assert_eq!(sent(&client), 1);
    // The credentials cooldown is shared with token(): the same error, no second request.
    let again = block_on(client.token()).unwrap_err();
    assert_eq!(again, err);
    assert_eq!(sent(&client), 1);
}

#[test]
fn generation_never_names_an_expired_token() {
    let clock = MockClock::new();
    let client = client(
        config_with_retry(RetryPolicy::NONE),
        &clock,
        &[token(T1), status(503), status(503), token(T2)],
    );
    let first = block_on(client.generation()).unwrap();
    // A failed refresh before expiry: the old token is still valid and its generation is
    // returned (stale-while-revalidate, as with token()).
    clock.set(secs(60));
    assert_eq!(block_on(client.generation()).unwrap(), first);
    assert_eq!(sent(&client), 2);
    // At expiry exactly the old token is gone: a failed fetch is an error, not its generation.
    clock.set(secs(100));
    let err = block_on(client.generation()).unwrap_err();
    assert_eq!(endpoint_error(&err).status, 503);
    assert_eq!(sent(&client), 3);
    // The next fetch succeeds: a new generation.
    let next = block_on(client.generation()).unwrap();
    assert_ne!(next, first);
    assert_eq!(token_of(&client), "t2");
    done(&client);
}
