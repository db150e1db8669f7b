//! The fault matrix (issue 5): one test per fault, against a fault-injecting server on
//! loopback (`faults/server.rs`) that plays the token endpoint and the API, real Redis and
//! Memcached processes (`support`), and fake stores that are slow or speak garbage.
//!
//! Every fault is a row of `tests/FAULTS.md` (at the repository root) with the outcome alf
//! promises; [`matrix_table_lists_every_fault_test`] fails when the table and this file
//! disagree. Each test checks that nothing panics, that nothing hangs (a hang guard wraps
//! every test), the exact result the caller gets, and exactly what the server saw.

mod common;
#[path = "faults/server.rs"]
mod server;
mod support;

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, SystemTime};

use alf::{ResponseError, StateKind, StoredToken, TokenStore};
use alf_memcached::MemcachedStore;
use alf_redis::RedisStore;
use alf_reqwest::{Client, Error, ReqwestTransport, TransportError};
use embedded_io::ErrorKind as Kind;
use server::{
    Action, FaultServer, babbling_server, chunked, head, http_date, memcached_get, memcached_set,
    redis_get, redis_raw, refused_port, silent_server,
};
use support::Server;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Every test runs under this guard: a fault that makes alf hang fails the test instead.
async fn guard<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), test)
        .await
        .expect("hang: the test did not finish within its 20 s guard")
}

fn ms(n: u64) -> alf::Duration {
    alf::Duration::from_millis(n)
}

/// Fast retries (20 ms, 40 ms, 80 ms; no jitter), so that tests stay short.
fn fast_retry() -> alf::RetryPolicy {
    alf::RetryPolicy::DEFAULT
        .backoff_factor(ms(20))
        .jitter(ms(0))
        .backoff_max(ms(2000))
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The configuration of a client of `fx`: fast retries, no refresh jitter.
fn config(fx: &FaultServer) -> alf::ConfigBuilder<'static> {
    alf::Config::builder(leak(fx.url("/token")), "client", "secret")
        .retry_policy(fast_retry())
        .refresh_policy(alf::RefreshPolicy::DEFAULT.jitter(ms(0)))
}

/// A session client with short timeouts (500 ms per request).
fn client_with(config: alf::Config) -> Client {
    Client::builder(config)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn client(fx: &FaultServer) -> Client {
    client_with(config(fx).build().unwrap())
}

/// A client that never retries the token request.
fn client_no_retry(fx: &FaultServer) -> Client {
    client_with(
        config(fx)
            .retry_policy(alf::RetryPolicy::NONE)
            .build()
            .unwrap(),
    )
}

/// What the server saw so far respects the rules that hold whatever the fault: the client
/// credentials (Basic) only ever go to the token endpoint, bearer tokens only to the API.
fn assert_credentials_in_place(fx: &FaultServer) {
    for r in fx.log() {
        let auth = r.authorization().unwrap_or("");
        if r.path.starts_with("/token") {
            // base64("client:secret"); a failure does not print what was sent.
            assert!(
                auth == "Basic Y2xpZW50OnNlY3JldA==",
                "a token request without the client credentials"
            );
        } else {
            assert!(
                auth.is_empty() || auth.starts_with("Bearer "),
                "client credentials sent to {}",
                r.path
            );
        }
    }
}

/// `GET /api/..`, which must succeed with 200.
async fn get_ok<S: TokenStore + Send + 'static>(client: &Client<S>, fx: &FaultServer) {
    let r = client.get(fx.url("/api/a")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_credentials_in_place(fx);
}

/// `GET /api/..`, which must fail for want of a token, without the API seeing anything new.
async fn no_token(client: &Client, fx: &FaultServer) -> Error {
    let api = fx.count("/api");
    let err = client.get(fx.url("/api/a")).send().await.unwrap_err();
    assert!(err.is_token(), "{err:?}");
    assert_eq!(fx.count("/api"), api, "no token, no request");
    assert_credentials_in_place(fx);
    err
}

/// The kind of the transport error behind `err`.
fn transport_kind(err: &Error) -> Kind {
    match err {
        Error::Token(alf::Error::Transport(e)) => embedded_io::Error::kind(e),
        other => panic!("not a transport error: {other:?}"),
    }
}

fn endpoint_error(err: &Error) -> &alf::TokenEndpointError {
    match err {
        Error::Token(alf::Error::TokenEndpoint(e)) => e,
        other => panic!("not a token endpoint error: {other:?}"),
    }
}

fn response_error(err: &Error) -> ResponseError {
    match err {
        Error::Token(alf::Error::InvalidResponse(e)) => *e,
        other => panic!("not an invalid response: {other:?}"),
    }
}

/// A token response that is not accepted: the caller gets `expected`, the token endpoint was
/// asked exactly once (not retried), the API never; then the next call works.
async fn rejected_token_response(body: &str, expected: ResponseError) {
    let fx = FaultServer::start().await;
    fx.then("/token", Action::token(body));
    let client = client(&fx);
    let err = no_token(&client, &fx).await;
    assert_eq!(response_error(&err), expected, "{body}");
    assert_eq!(fx.tokens(), 1, "not retried: {body}");
    get_ok(&client, &fx).await;
    assert_eq!(fx.tokens(), 2);
    assert_eq!(fx.api_tokens(), ["tok-1"]);
}

/// A token response that is accepted: its token goes to the API, one token request.
async fn accepted_token_response(body: &str, token: &str) -> (FaultServer, Client) {
    let fx = FaultServer::start().await;
    fx.then("/token", Action::token(body));
    fx.always("/api", Action::status(200));
    let client = client(&fx);
    get_ok(&client, &fx).await;
    assert_eq!(fx.tokens(), 1);
    assert_eq!(fx.api_tokens(), [token]);
    (fx, client)
}

/// Assert that the client's token is due for refresh in `secs` seconds (from now, within the
/// few seconds the test took): so its lifetime was understood as expected.
fn assert_refresh_in(client: &Client, secs: u64) {
    use alf::Clock;
    let core = client.core();
    let at = core.poll_at().expect("a valid token has a refresh time");
    let left = at
        .as_millis()
        .saturating_sub(core.clock().now().as_millis());
    assert!(
        left <= secs * 1000 && left + 5000 >= secs * 1000,
        "refresh in {left} ms, expected about {secs} s"
    );
}

/// A transport fault on the token request: without retries the caller gets `kind`, with
/// retries the next attempt works.
async fn transport_fault(fault: Action, kind: Kind) {
    let fx = FaultServer::start().await;
    fx.then("/token", fault.clone());
    let client = client_no_retry(&fx);
    let err = no_token(&client, &fx).await;
    assert_eq!(transport_kind(&err), kind, "{err:?}");
    assert_eq!(fx.tokens(), 1);
    // The same fault once more, with retries: the retry gets the token.
    fx.then("/token", fault);
    let client = self::client(&fx);
    get_ok(&client, &fx).await;
    assert_eq!(fx.tokens(), 3, "one failed attempt, one retry");
    assert_eq!(fx.api_tokens(), ["tok-1"]);
}

fn token_body(token: &str) -> String {
    format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#)
}

// ---------------------------------------------------------------------------------------------
// Token endpoint: statuses
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_500_once() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::status(500));
        get_ok(&client(&fx), &fx).await;
        assert_eq!(fx.tokens(), 2);
        assert_eq!(fx.api_tokens(), ["tok-1"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_502_twice() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::status(502));
        fx.then(
            "/token",
            Action::status(502).body("<html>bad gateway</html>"),
        );
        get_ok(&client(&fx), &fx).await;
        assert_eq!(fx.tokens(), 3);
        assert_eq!(fx.api_tokens(), ["tok-1"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_503_forever() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.always("/token", Action::status(503));
        let client = client(&fx);
        let err = no_token(&client, &fx).await;
        assert_eq!(endpoint_error(&err).status, 503);
        assert_eq!(err.token_error().unwrap().kind(), alf::ErrorKind::Retryable);
        assert_eq!(fx.tokens(), 4, "the first attempt and 3 retries");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_504_without_retries() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::status(504));
        let client = client_no_retry(&fx);
        let err = no_token(&client, &fx).await;
        assert_eq!(endpoint_error(&err).status, 504);
        assert_eq!(fx.tokens(), 1);
        // Not a credentials error: no cooldown, the next call asks again.
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_429_retry_after_seconds() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::status(429).header("retry-after", "1"));
        get_ok(&client(&fx), &fx).await;
        let t = fx.requests("/token");
        assert_eq!(t.len(), 2);
        let gap = t[1].at - t[0].at;
        assert!(
            gap >= Duration::from_secs(1),
            "Retry-After ignored: {gap:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_503_retry_after_http_date() {
    guard(async {
        let fx = FaultServer::start().await;
        let date = http_date(SystemTime::now() + Duration::from_secs(2));
        fx.then("/token", Action::status(503).header("retry-after", &date));
        get_ok(&client(&fx), &fx).await;
        let t = fx.requests("/token");
        assert_eq!(t.len(), 2);
        // The date is 1 to 2 whole seconds ahead of the client's wall clock.
        let gap = t[1].at - t[0].at;
        assert!(
            gap >= Duration::from_secs(1),
            "Retry-After ignored: {gap:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_retry_after_beyond_backoff_max() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::status(503).header("retry-after", "3600"));
        let client = client(&fx);
        let err = no_token(&client, &fx).await;
        let e = endpoint_error(&err);
        assert_eq!((e.status, e.retry_after_ms), (503, Some(3_600_000)));
        assert_eq!(fx.tokens(), 1, "no wait of an hour, no retry");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_400_invalid_client_cooldown() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.always(
            "/token",
            Action::json(
                400,
                r#"{"error":"invalid_client","error_description":"no"}"#,
            ),
        );
        let client = client(&fx);
        for _ in 0..3 {
            let err = no_token(&client, &fx).await;
            let e = endpoint_error(&err);
            assert_eq!(
                (e.status, e.code),
                (400, Some(alf::OAuthErrorCode::InvalidClient))
            );
            assert_eq!(
                err.token_error().unwrap().kind(),
                alf::ErrorKind::Credentials
            );
        }
        assert_eq!(fx.tokens(), 1, "never retried, then the cooldown answers");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_200_with_error_body() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::token(r#"{"error":"invalid_scope"}"#));
        let client = client(&fx);
        let err = no_token(&client, &fx).await;
        let e = endpoint_error(&err);
        assert_eq!(
            (e.status, e.code),
            (200, Some(alf::OAuthErrorCode::InvalidScope))
        );
        assert_eq!(fx.tokens(), 1, "not retried");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Token endpoint: the connection
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_connection_refused() {
    guard(async {
        let api = FaultServer::start().await;
        let endpoint = leak(format!("http://127.0.0.1:{}/token", refused_port()));
        let config = alf::Config::builder(endpoint, "client", "secret")
            .retry_policy(fast_retry())
            .build()
            .unwrap();
        let client = client_with(config);
        let started = std::time::Instant::now();
        let err = no_token(&client, &api).await;
        // Retried: the backoffs of 3 retries (20 + 40 + 80 ms) were waited for.
        assert!(
            started.elapsed() >= Duration::from_millis(140),
            "not retried"
        );
        assert_eq!(transport_kind(&err), Kind::ConnectionRefused);
        assert_eq!(err.token_error().unwrap().kind(), alf::ErrorKind::Retryable);
        assert!(api.log().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_reset_before_response() {
    guard(transport_fault(Action::reset(), Kind::ConnectionReset)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_closed_before_response() {
    guard(transport_fault(
        Action::Raw(Vec::new()),
        Kind::ConnectionReset,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_reset_after_headers() {
    let head = head(
        200,
        &[
            ("content-type", "application/json"),
            ("content-length", "66"),
        ],
    );
    guard(transport_fault(
        Action::RawThenReset(head),
        Kind::ConnectionReset,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_reset_mid_body() {
    let body = token_body("tok-x");
    let len = body.len().to_string();
    let mut bytes = head(
        200,
        &[
            ("content-type", "application/json"),
            ("content-length", &len),
        ],
    );
    bytes.extend_from_slice(&body.as_bytes()[..body.len() / 2]);
    guard(transport_fault(
        Action::RawThenReset(bytes),
        Kind::ConnectionReset,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_closed_mid_body() {
    let body = token_body("tok-x");
    let len = body.len().to_string();
    let mut bytes = head(
        200,
        &[
            ("content-type", "application/json"),
            ("content-length", &len),
        ],
    );
    bytes.extend_from_slice(&body.as_bytes()[..body.len() / 2]);
    guard(transport_fault(Action::Raw(bytes), Kind::ConnectionReset)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_chunked_cut_short() {
    let mut bytes = head(200, &[("transfer-encoding", "chunked")]);
    bytes.extend_from_slice(&chunked(token_body("tok-x").as_bytes(), 16, false));
    guard(transport_fault(Action::Raw(bytes), Kind::ConnectionReset)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_chunked_invalid_size() {
    let mut bytes = head(200, &[("transfer-encoding", "chunked")]);
    bytes.extend_from_slice(b"zz\r\n{}\r\n0\r\n\r\n");
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::Raw(bytes));
        let client = client(&fx);
        let err = no_token(&client, &fx).await;
        // Bad data, not a network failure: a protocol error, not retried.
        assert_eq!(transport_kind(&err), Kind::InvalidData, "{err:?}");
        assert_eq!(err.token_error().unwrap().kind(), alf::ErrorKind::Protocol);
        assert_eq!(fx.tokens(), 1);
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_garbage_status_line() {
    guard(transport_fault(
        Action::Raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()),
        Kind::ConnectionReset,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_never_answers() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::hang());
        let client = client_no_retry(&fx);
        let err = no_token(&client, &fx).await;
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(transport_kind(&err), Kind::TimedOut);
        assert_eq!(fx.tokens(), 1);
        // Not stuck: the next call asks again and gets a token.
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_hangs_under_proactive_refresh() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::hang());
        // The background refresh starts fetching at once; a request comes meanwhile.
        let client = Client::builder(config(&fx).build().unwrap())
            .timeout(Duration::from_millis(500))
            .proactive_refresh(true)
            .build()
            .unwrap();
        get_ok(&client, &fx).await;
        // One fetch for both: the hung attempt timed out, the retry got the token.
        assert_eq!(fx.tokens(), 2);
        assert_eq!(fx.api_tokens(), ["tok-1"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_headers_then_silence() {
    guard(async {
        let fx = FaultServer::start().await;
        let head = head(
            200,
            &[
                ("content-type", "application/json"),
                ("content-length", "66"),
            ],
        );
        fx.then("/token", Action::RawThenHang(head));
        let client = client_no_retry(&fx);
        let err = no_token(&client, &fx).await;
        assert_eq!(transport_kind(&err), Kind::TimedOut);
        assert_eq!(fx.tokens(), 1);
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 2);
    })
    .await;
}

/// A whole token response, as raw bytes.
fn raw_token_response(token: &str) -> Vec<u8> {
    let body = token_body(token);
    let len = body.len().to_string();
    let mut bytes = head(
        200,
        &[
            ("content-type", "application/json"),
            ("content-length", &len),
        ],
    );
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_slow_trickle_within_timeout() {
    guard(async {
        let fx = FaultServer::start().await;
        let bytes = raw_token_response("tok-trickled");
        fx.then(
            "/token",
            Action::Trickle {
                bytes,
                every: Duration::from_millis(2),
            },
        );
        fx.always("/api", Action::status(200));
        let client = Client::builder(config(&fx).build().unwrap())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 1);
        assert_eq!(fx.api_tokens(), ["tok-trickled"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_slow_trickle_beyond_timeout() {
    guard(async {
        let fx = FaultServer::start().await;
        let bytes = raw_token_response("tok-trickled");
        fx.then(
            "/token",
            Action::Trickle {
                bytes,
                every: Duration::from_millis(50),
            },
        );
        let client = client_no_retry(&fx);
        let err = no_token(&client, &fx).await;
        assert_eq!(transport_kind(&err), Kind::TimedOut);
        assert_eq!(fx.tokens(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_body_larger_than_buffer() {
    guard(async {
        let fx = FaultServer::start().await;
        let big = format!(r#"{{"access_token":"t","pad":"{}"}}"#, "x".repeat(5000));
        fx.then("/token", Action::token(&big));
        let client = client(&fx);
        let err = no_token(&client, &fx).await;
        assert_eq!(transport_kind(&err), Kind::OutOfMemory);
        assert_eq!(err.token_error().unwrap().kind(), alf::ErrorKind::Capacity);
        assert_eq!(fx.tokens(), 1, "not retried");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_body_exactly_the_buffer() {
    guard(async {
        // 4096 bytes, the whole receive buffer, no escapes: accepted.
        let fx = FaultServer::start().await;
        let head = r#"{"access_token":"tok-full","expires_in":60,"pad":""#;
        let pad = "p".repeat(4096 - head.len() - 2);
        let body = format!(r#"{head}{pad}"}}"#);
        assert_eq!(body.len(), 4096);
        fx.then("/token", Action::token(&body));
        fx.always("/api", Action::status(200));
        get_ok(&client_no_retry(&fx), &fx).await;
        assert_eq!(fx.api_tokens(), ["tok-full"]);
        // The same with an escaped token (`a\/b`): still room to unescape it.
        let escaped = r#"{"access_token":"a\/b","expires_in":60,"pad":""#;
        let body = format!(r#"{escaped}{}"}}"#, "p".repeat(4096 - escaped.len() - 2));
        assert_eq!(body.len(), 4096);
        fx.then("/token", Action::token(&body));
        get_ok(&client_no_retry(&fx), &fx).await;
        assert_eq!(fx.api_tokens(), ["tok-full", "a/b"]);
        // One byte more does not fit.
        let body = format!(r#"{head}p{pad}"}}"#);
        fx.then("/token", Action::token(&body));
        let client = client_no_retry(&fx);
        let err = no_token(&client, &fx).await;
        assert_eq!(transport_kind(&err), Kind::OutOfMemory);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_body_larger_than_buffer_undeclared() {
    guard(async {
        let fx = FaultServer::start().await;
        let big = format!(r#"{{"access_token":"t","pad":"{}"}}"#, "x".repeat(5000));
        let mut bytes = head(200, &[("content-type", "application/json")]);
        bytes.extend_from_slice(big.as_bytes());
        // No length at all: the body ends when the connection does.
        fx.then("/token", Action::Raw(bytes));
        let client = client(&fx);
        let err = no_token(&client, &fx).await;
        assert_eq!(transport_kind(&err), Kind::OutOfMemory);
        assert_eq!(fx.tokens(), 1, "not retried");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_redirect_to_another_origin() {
    guard(async {
        let fx = FaultServer::start().await;
        let other = FaultServer::start().await;
        fx.then(
            "/token",
            Action::status(307).header("location", &other.url("/token")),
        );
        let client = client(&fx);
        let err = no_token(&client, &fx).await;
        assert_eq!(endpoint_error(&err).status, 307);
        assert_eq!(fx.tokens(), 1, "not retried");
        assert!(
            other.log().is_empty(),
            "redirect followed: credentials sent elsewhere"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_redirect_same_origin() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::status(302).header("location", "/token2"));
        let client = client(&fx);
        let err = no_token(&client, &fx).await;
        assert_eq!(endpoint_error(&err).status, 302);
        assert_eq!(fx.count("/token2"), 0, "redirect followed");
        assert_eq!(fx.tokens(), 1);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Token endpoint: the response body
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_wrong_content_type() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then(
            "/token",
            Action::status(200)
                .header("content-type", "text/html; charset=utf-8")
                .body(token_body("tok-html-typed")),
        );
        fx.always("/api", Action::status(200));
        get_ok(&client(&fx), &fx).await;
        assert_eq!(fx.api_tokens(), ["tok-html-typed"]);
        assert_eq!(fx.tokens(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_missing_content_type() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then(
            "/token",
            Action::status(200).body(token_body("tok-untyped")),
        );
        fx.always("/api", Action::status(200));
        get_ok(&client(&fx), &fx).await;
        assert_eq!(fx.api_tokens(), ["tok-untyped"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_html_body() {
    guard(rejected_token_response(
        "<html><body>Service temporarily unavailable</body></html>",
        ResponseError::NotJson,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_json_not_an_object() {
    guard(async {
        for body in [r#"["tok"]"#, r#""tok""#, "42", "null", "true"] {
            rejected_token_response(body, ResponseError::NotJson).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_truncated_json() {
    guard(rejected_token_response(
        r#"{"access_token":"tok","expires_in":36"#,
        ResponseError::NotJson,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_empty_body() {
    guard(rejected_token_response("", ResponseError::NotJson)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_expires_in_missing_or_null() {
    guard(async {
        for body in [
            r#"{"access_token":"t"}"#,
            r#"{"access_token":"t","expires_in":null}"#,
        ] {
            let fx = FaultServer::start().await;
            fx.then("/token", Action::token(body));
            fx.always("/api", Action::status(200));
            let config = config(&fx)
                .refresh_policy(
                    alf::RefreshPolicy::DEFAULT
                        .jitter(ms(0))
                        .default_lifetime(alf::Duration::from_secs(1000)),
                )
                .build()
                .unwrap();
            let client = client_with(config);
            get_ok(&client, &fx).await;
            // default_lifetime 1000 s, refreshed 60 s early.
            assert_refresh_in(&client, 940);
            assert_eq!(fx.api_tokens(), ["t"]);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_expires_in_string() {
    guard(async {
        let (_fx, client) =
            accepted_token_response(r#"{"access_token":"t","expires_in":"600"}"#, "t").await;
        assert_refresh_in(&client, 540);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_expires_in_fraction() {
    guard(async {
        let (_fx, client) =
            accepted_token_response(r#"{"access_token":"t","expires_in":120.9}"#, "t").await;
        // 120 s (rounded down), refreshed at half its lifetime.
        assert_refresh_in(&client, 60);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_expires_in_huge() {
    guard(async {
        for huge in [
            "1e400",
            "99999999999999999999999999999999999999",
            r#""99999999999999999999999""#,
        ] {
            let body = format!(r#"{{"access_token":"t","expires_in":{huge}}}"#);
            let (_fx, client) = accepted_token_response(&body, "t").await;
            // Capped at max_lifetime (24 h), refreshed 60 s early.
            assert_refresh_in(&client, 24 * 3600 - 60);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_expires_in_zero_or_negative() {
    guard(async {
        for e in ["0", "-1", "-3600", r#""0""#, "0.5"] {
            let body = format!(r#"{{"access_token":"t","expires_in":{e}}}"#);
            rejected_token_response(&body, ResponseError::InvalidExpiresIn).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_expires_in_not_a_number() {
    guard(async {
        for e in [r#""soon""#, "true", r#"{"s":1}"#, "[3600]", r#""3600.5""#] {
            let body = format!(r#"{{"access_token":"t","expires_in":{e}}}"#);
            rejected_token_response(&body, ResponseError::InvalidExpiresIn).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_type_any_case_or_missing() {
    guard(async {
        for tt in [r#","token_type":"bearer""#, r#","token_type":"BEARER""#, ""] {
            let body = format!(r#"{{"access_token":"t","expires_in":60{tt}}}"#);
            accepted_token_response(&body, "t").await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_type_unsupported() {
    guard(async {
        for tt in [r#""mac""#, r#""DPoP""#, r#""""#, "5", r#""Bearer ""#] {
            let body = format!(r#"{{"access_token":"t","token_type":{tt}}}"#);
            rejected_token_response(&body, ResponseError::UnsupportedTokenType).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_with_cr_lf() {
    guard(async {
        for t in [r"a\r\nX-Injected: 1", r"a\nb", r"a\rb", r"a\u000d\u000ab"] {
            let body = format!(r#"{{"access_token":"{t}"}}"#);
            rejected_token_response(&body, ResponseError::InvalidAccessToken).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_with_spaces_or_controls() {
    guard(async {
        for t in ["a b", " ab", "ab ", r"a\tb", r"a\u0000b"] {
            let body = format!(r#"{{"access_token":"{t}"}}"#);
            rejected_token_response(&body, ResponseError::InvalidAccessToken).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_non_ascii() {
    guard(async {
        for t in ["t\u{f6}k", r"t\u00f6k", "\u{1F600}"] {
            let body = format!(r#"{{"access_token":"{t}"}}"#);
            rejected_token_response(&body, ResponseError::InvalidAccessToken).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_missing_empty_or_not_a_string() {
    guard(async {
        rejected_token_response(r#"{"access_token":""}"#, ResponseError::InvalidAccessToken).await;
        for body in [
            r#"{"token_type":"Bearer"}"#,
            r#"{"access_token":null}"#,
            r#"{"access_token":123}"#,
            r#"{"access_token":["a"]}"#,
        ] {
            rejected_token_response(body, ResponseError::MissingAccessToken).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_over_capacity() {
    guard(async {
        // The default capacity is 2048 bytes with `Bearer `: tokens up to 2041 bytes.
        let fx = FaultServer::start().await;
        let over = "o".repeat(2042);
        fx.then(
            "/token",
            Action::token(&format!(r#"{{"access_token":"{over}"}}"#)),
        );
        let client = client(&fx);
        let err = no_token(&client, &fx).await;
        assert!(
            matches!(
                err,
                Error::Token(alf::Error::Capacity(alf::CapacityError::AccessToken))
            ),
            "{err:?}"
        );
        assert_eq!(fx.tokens(), 1, "not retried");
        // One that just fits is used.
        let fits = "f".repeat(2041);
        fx.then(
            "/token",
            Action::token(&format!(r#"{{"access_token":"{fits}"}}"#)),
        );
        fx.always("/api", Action::status(200));
        get_ok(&client, &fx).await;
        assert_eq!(fx.api_tokens(), [fits]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_escaped() {
    guard(async {
        accepted_token_response(r#"{"access_token":"a\/b\u002dc","expires_in":60}"#, "a/b-c").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_expired_in_transit() {
    guard(async {
        let fx = FaultServer::start().await;
        // expires_in 1, delivered after 1.1 s: dead on arrival.
        fx.then(
            "/token",
            Action::token(r#"{"access_token":"tok-late","expires_in":1}"#)
                .after(Duration::from_millis(1100)),
        );
        let client = patient_client(&fx);
        let err = no_token(&client, &fx).await;
        assert_eq!(response_error(&err), ResponseError::InvalidExpiresIn);
        assert_eq!(fx.tokens(), 1, "not retried");
        get_ok(&client, &fx).await;
        assert_eq!(fx.api_tokens(), ["tok-1"], "the dead token was never sent");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_retry_after_garbage() {
    guard(async {
        let fx = FaultServer::start().await;
        for junk in [
            "soon",
            "-5",
            "1.5",
            "Fri, 31 Dec 99999 23:59:59 GMT",
            "Fri, 31 Dec 1999 23:59:59 UTC",
        ] {
            fx.then("/token", Action::status(503).header("retry-after", junk));
        }
        let client = client_with(
            config(&fx)
                .retry_policy(fast_retry().total(5))
                .build()
                .unwrap(),
        );
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 6, "each junk value ignored, each 503 retried");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_huge_headers() {
    let huge = "h".repeat(512 * 1024);
    let action = Action::token(&token_body("tok-never")).header("x-junk", &huge);
    // reqwest reports a head it cannot parse as a failed request.
    guard(transport_fault(action, Kind::ConnectionReset)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_interim_100_continue() {
    guard(async {
        let fx = FaultServer::start().await;
        let mut bytes = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
        bytes.extend_from_slice(&raw_token_response("tok-after-100"));
        fx.then("/token", Action::Raw(bytes));
        fx.always("/api", Action::status(200));
        get_ok(&client_no_retry(&fx), &fx).await;
        assert_eq!(fx.api_tokens(), ["tok-after-100"]);
        assert_eq!(fx.tokens(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_keepalive_closed_while_idle() {
    guard(async {
        let fx = FaultServer::start().await;
        // A keep-alive response, then the server closes the connection while it is idle.
        fx.then("/token", Action::Raw(raw_token_response("tok-first")));
        fx.then("/api", Action::status(401));
        let client = client(&fx);
        // The 401 makes the client fetch again. Its pooled connection is closed: reqwest
        // notices, or (when the close races the reuse) the attempt fails as a
        // `ConnectionReset` that never reaches the server, and is retried.
        get_ok(&client, &fx).await;
        assert_eq!(fx.api_tokens(), ["tok-first", "tok-1"]);
        assert_eq!(fx.tokens(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_duplicate_fields() {
    guard(rejected_token_response(
        r#"{"access_token":"a","access_token":"b"}"#,
        ResponseError::NotJson,
    ))
    .await;
}

// ---------------------------------------------------------------------------------------------
// Resource server
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_401_once() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then(
            "/api",
            Action::status(401).header("www-authenticate", r#"Bearer error="invalid_token""#),
        );
        let client = client(&fx);
        let r = client
            .post(fx.url("/api/a"))
            .body("payload")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-2"]);
        let api = fx.requests("/api");
        assert!(
            api.iter().all(|r| r.body == b"payload"),
            "same body replayed"
        );
        assert_eq!(fx.tokens(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_401_forever() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.always("/api", Action::status(401));
        let client = client(&fx);
        for call in 1..=2 {
            let r = client.get(fx.url("/api/a")).send().await.unwrap();
            assert_eq!(r.status(), 401);
            assert_eq!(fx.count("/api"), 2 * call, "exactly one replay per call");
        }
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-2", "tok-2", "tok-3"]);
        assert_eq!(fx.tokens(), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_401_to_concurrent_requests() {
    guard(async {
        let fx = FaultServer::start().await;
        let client = client(&fx);
        get_ok(&client, &fx).await;
        fx.revoke_all();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let c = client.clone();
                let url = fx.url(&format!("/api/c/{i}"));
                tokio::spawn(async move { c.get(url).send().await.unwrap().status() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        assert_eq!(fx.tokens(), 2, "one fetch for all the 401s");
        let tokens = fx.api_tokens();
        let replays = tokens.iter().filter(|t| *t == "tok-2").count();
        let rejected = tokens.iter().skip(1).filter(|t| *t == "tok-1").count();
        assert_eq!(replays, 20);
        assert!(rejected <= 20, "at most one 401 per request: {tokens:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_401_to_concurrent_requests_token_endpoint_down() {
    guard(async {
        let fx = FaultServer::start().await;
        let client = client(&fx);
        get_ok(&client, &fx).await;
        fx.revoke_all();
        fx.always(
            "/token",
            Action::status(503).after(Duration::from_millis(200)),
        );
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let c = client.clone();
                let url = fx.url(&format!("/api/c/{i}"));
                tokio::spawn(async move { c.get(url).send().await })
            })
            .collect();
        for t in tasks {
            let err = t.await.unwrap().unwrap_err();
            assert_eq!(endpoint_error(&err).status, 503, "{err:?}");
        }
        // The 401s share fetches and their failure; no replay goes out without a token.
        // Callers that start after the first 401 find no token and send nothing.
        assert!(fx.api_tokens().iter().all(|t| t == "tok-1"));
        assert!(
            (2..=11).contains(&fx.count("/api")),
            "at most one 401 each, no replay"
        );
        let fetches = (fx.tokens() - 1) / 4;
        assert!(
            (fx.tokens() - 1) % 4 == 0 && (1..=2).contains(&fetches),
            "{} token requests: whole fetches of 4 attempts, shared",
            fx.tokens() - 1
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_403() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/api", Action::status(403));
        let client = client(&fx);
        let r = client.get(fx.url("/api/a")).send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(fx.count("/api"), 1, "not replayed");
        get_ok(&client, &fx).await;
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1"], "token kept");
        assert_eq!(fx.tokens(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_500() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/api", Action::status(500));
        let client = client(&fx);
        let r = client.get(fx.url("/api/a")).send().await.unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(fx.count("/api"), 1, "not replayed");
        get_ok(&client, &fx).await;
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1"], "token kept");
        assert_eq!(fx.tokens(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_401_insufficient_scope() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then(
            "/api",
            Action::status(401).header(
                "www-authenticate",
                r#"Bearer error="insufficient_scope", scope="x""#,
            ),
        );
        let client = client(&fx);
        let r = client.get(fx.url("/api/a")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(fx.count("/api"), 1, "not replayed");
        get_ok(&client, &fx).await;
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1"], "token kept");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_redirect_to_another_origin() {
    guard(async {
        let fx = FaultServer::start().await;
        let other = FaultServer::start().await;
        fx.then(
            "/api",
            Action::status(302).header("location", &other.url("/api/stolen")),
        );
        let client = client(&fx);
        let r = client.get(fx.url("/api/a")).send().await.unwrap();
        assert_eq!(r.status(), 302, "returned, not followed");
        assert_eq!(
            other.with_authorization(),
            0,
            "the token went to another origin"
        );
        assert_eq!(other.log().len(), 0, "the redirect was followed");
        assert_eq!(fx.api_tokens(), ["tok-1"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_redirect_307_post_to_another_origin() {
    guard(async {
        let fx = FaultServer::start().await;
        let other = FaultServer::start().await;
        fx.then(
            "/api",
            Action::status(307).header("location", &other.url("/api/stolen")),
        );
        let client = client(&fx);
        let r = client
            .post(fx.url("/api/a"))
            .body("data")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 307);
        assert_eq!(
            other.with_authorization(),
            0,
            "the token went to another origin"
        );
        assert_eq!(other.log().len(), 0, "the redirect was followed");
        assert_eq!(fx.count("/api"), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_redirect_to_another_host_name() {
    guard(async {
        let fx = FaultServer::start().await;
        // The same server under another name is another origin.
        let elsewhere = format!("http://localhost:{}/api/landing", fx.addr.port());
        fx.then("/api", Action::status(302).header("location", &elsewhere));
        let client = client(&fx);
        let r = client.get(fx.url("/api/a")).send().await.unwrap();
        assert_eq!(r.status(), 302);
        assert_eq!(fx.count("/api/landing"), 0, "redirect followed");
        assert_eq!(fx.count("/api"), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_401_streaming_body() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/api", Action::status(401));
        let client = client(&fx);
        let body = reqwest::Body::wrap(String::from("streamed"));
        let r = client
            .post(fx.url("/api/up"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "not replayed");
        assert_eq!(fx.count("/api"), 1);
        assert_eq!(fx.requests("/api")[0].body, b"streamed");
        // The rejected token was dropped all the same.
        get_ok(&client, &fx).await;
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-2"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_reset() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/api", Action::reset());
        let client = client(&fx);
        let err = client.get(fx.url("/api/a")).send().await.unwrap_err();
        assert!(matches!(err, Error::Http(_)), "{err:?}");
        assert_eq!(fx.count("/api"), 1, "not replayed");
        get_ok(&client, &fx).await;
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1"], "token kept");
        assert_eq!(fx.tokens(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_never_answers() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/api", Action::hang());
        let client = client(&fx);
        let err = client.get(fx.url("/api/a")).send().await.unwrap_err();
        assert!(matches!(err, Error::Http(_)) && err.is_timeout(), "{err:?}");
        assert_eq!(fx.count("/api"), 1);
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 1, "token kept");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_401_then_token_endpoint_down() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/api", Action::status(401));
        fx.then("/token", Action::Default);
        fx.then("/token", Action::status(503));
        let client = client_no_retry(&fx);
        let err = client.get(fx.url("/api/a")).send().await.unwrap_err();
        assert_eq!(endpoint_error(&err).status, 503);
        assert_eq!(
            fx.count("/api"),
            1,
            "the replay is not sent without a token"
        );
        assert_eq!(fx.tokens(), 2);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Token stores
// ---------------------------------------------------------------------------------------------

fn redis_client(fx: &FaultServer, url: &str) -> Client<RedisStore> {
    Client::builder(config(fx).build().unwrap())
        .timeout(Duration::from_millis(500))
        .store(
            RedisStore::new(url)
                .unwrap()
                .with_timeout(Duration::from_millis(100)),
        )
        .build()
        .unwrap()
}

fn memcached_client(fx: &FaultServer, addr: &str) -> Client<MemcachedStore> {
    Client::builder(config(fx).build().unwrap())
        .timeout(Duration::from_millis(500))
        .store(MemcachedStore::new(addr).with_timeout(Duration::from_millis(100)))
        .build()
        .unwrap()
}

fn store_key(fx: &FaultServer) -> String {
    config(fx).build().unwrap().store_key().as_str().to_owned()
}

/// A stored value (the format shared by the stores) for `token`, valid for an hour.
fn stored_value(token: &str) -> Vec<u8> {
    let unix_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("v2\nBearer\n{}\n{token}", unix_ms + 3_600_000).into_bytes()
}

fn holds(value: Option<Vec<u8>>, token: &str) -> bool {
    value.is_some_and(|v| {
        v.starts_with(b"v2\nBearer\n") && v.ends_with(format!("\n{token}").as_bytes())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_redis_down_at_start() {
    guard(async {
        let fx = FaultServer::start().await;
        let url = format!("redis://127.0.0.1:{}/", refused_port());
        let (a, b) = (redis_client(&fx, &url), redis_client(&fx, &url));
        for _ in 0..3 {
            get_ok(&a, &fx).await;
        }
        get_ok(&b, &fx).await;
        assert_eq!(fx.tokens(), 2, "one fetch per client, then reuse");
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1", "tok-1", "tok-2"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_redis_dies_mid_run() {
    guard(async {
        let fx = FaultServer::start().await;
        let redis = Server::redis();
        let url = redis.redis_url();
        let a = redis_client(&fx, &url);
        get_ok(&a, &fx).await;
        assert!(holds(
            redis_get(&redis.addr(), &store_key(&fx)).await,
            "tok-1"
        ));
        drop(redis); // SIGKILL
        // A keeps its token in memory; after a 401 it fetches a new one without the store.
        fx.revoke_all();
        get_ok(&a, &fx).await;
        // A new client cannot read the store: it fetches its own.
        let b = redis_client(&fx, &url);
        get_ok(&b, &fx).await;
        assert_eq!(fx.tokens(), 3);
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1", "tok-2", "tok-3"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_redis_silent() {
    guard(async {
        let fx = FaultServer::start().await;
        let silent = silent_server().await;
        let client = redis_client(&fx, &format!("redis://{silent}/"));
        get_ok(&client, &fx).await;
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 1);
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_redis_speaks_garbage() {
    guard(async {
        let fx = FaultServer::start().await;
        let (addr, accepted) = babbling_server(b"HTTP/1.1 400 Bad Request\r\n\r\n\x00\xff").await;
        let client = redis_client(&fx, &format!("redis://{addr}/"));
        get_ok(&client, &fx).await;
        assert!(accepted.load(SeqCst) >= 1, "the store was tried");
        assert_eq!(fx.tokens(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_redis_garbage_value() {
    guard(async {
        let fx = FaultServer::start().await;
        let redis = Server::redis();
        let key = store_key(&fx);
        for garbage in [
            &b"\xff\xfe garbage"[..],
            b"v1\nBearer\nsoon\ntok-x",
            b"v1\nBearer\n99999999999\nbad token",
        ] {
            redis_raw(&redis.addr(), &[b"SET", key.as_bytes(), garbage]).await;
            let client = redis_client(&fx, &redis.redis_url());
            get_ok(&client, &fx).await;
        }
        assert_eq!(fx.tokens(), 3, "garbage is never used");
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-2", "tok-3"]);
        assert!(
            holds(redis_get(&redis.addr(), &key).await, "tok-3"),
            "overwritten"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_redis_wrong_type() {
    guard(async {
        let fx = FaultServer::start().await;
        let redis = Server::redis();
        let key = store_key(&fx);
        redis_raw(
            &redis.addr(),
            &[b"RPUSH", key.as_bytes(), b"not", b"a", b"string"],
        )
        .await;
        let client = redis_client(&fx, &redis.redis_url());
        get_ok(&client, &fx).await;
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 1);
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_redis_another_clients_token() {
    guard(async {
        let fx = FaultServer::start().await;
        let redis = Server::redis();
        let key = store_key(&fx);
        redis_raw(
            &redis.addr(),
            &[b"SET", key.as_bytes(), &stored_value("someone-elses")],
        )
        .await;
        let client = redis_client(&fx, &redis.redis_url());
        get_ok(&client, &fx).await;
        // Used once (it looks valid), rejected by the API, replaced; never used again.
        assert_eq!(fx.api_tokens(), ["someone-elses", "tok-1"]);
        assert_eq!(fx.tokens(), 1);
        assert!(
            holds(redis_get(&redis.addr(), &key).await, "tok-1"),
            "replaced in the store"
        );
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_memcached_down_at_start() {
    guard(async {
        let fx = FaultServer::start().await;
        let addr = format!("127.0.0.1:{}", refused_port());
        let client = memcached_client(&fx, &addr);
        get_ok(&client, &fx).await;
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_memcached_dies_mid_run() {
    guard(async {
        let fx = FaultServer::start().await;
        let memcached = Server::memcached();
        let addr = memcached.addr();
        let a = memcached_client(&fx, &addr);
        get_ok(&a, &fx).await;
        assert!(holds(memcached_get(&addr, &store_key(&fx)).await, "tok-1"));
        drop(memcached); // SIGKILL
        fx.revoke_all();
        get_ok(&a, &fx).await;
        let b = memcached_client(&fx, &addr);
        get_ok(&b, &fx).await;
        assert_eq!(fx.tokens(), 3);
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1", "tok-2", "tok-3"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_memcached_silent() {
    guard(async {
        let fx = FaultServer::start().await;
        let silent = silent_server().await;
        let client = memcached_client(&fx, &silent.to_string());
        get_ok(&client, &fx).await;
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_memcached_garbage_value() {
    guard(async {
        let fx = FaultServer::start().await;
        let memcached = Server::memcached();
        let key = store_key(&fx);
        memcached_set(&memcached.addr(), &key, b"\x00\x01 not a token").await;
        let client = memcached_client(&fx, &memcached.addr());
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 1);
        assert_eq!(fx.api_tokens(), ["tok-1"]);
        assert!(
            holds(memcached_get(&memcached.addr(), &key).await, "tok-1"),
            "overwritten"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_memcached_another_clients_token() {
    guard(async {
        let fx = FaultServer::start().await;
        let memcached = Server::memcached();
        let key = store_key(&fx);
        memcached_set(&memcached.addr(), &key, &stored_value("someone-elses")).await;
        let client = memcached_client(&fx, &memcached.addr());
        get_ok(&client, &fx).await;
        assert_eq!(fx.api_tokens(), ["someone-elses", "tok-1"]);
        assert_eq!(fx.tokens(), 1);
        assert!(holds(memcached_get(&memcached.addr(), &key).await, "tok-1"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_redis_lock_holder_died() {
    guard(async {
        let fx = FaultServer::start().await;
        let redis = Server::redis();
        let lock = format!("{}:lock", store_key(&fx));
        // A process took the fetch lock and died: the lock stays for its 10 s TTL.
        redis_raw(
            &redis.addr(),
            &[b"SET", lock.as_bytes(), b"dead-process", b"PX", b"10000"],
        )
        .await;
        let config = config(&fx)
            .store_policy(
                alf::StorePolicy::DEFAULT
                    .wait(ms(300))
                    .poll_interval(ms(20)),
            )
            .build()
            .unwrap();
        let client = Client::builder(config)
            .timeout(Duration::from_millis(500))
            .store(RedisStore::new(&redis.redis_url()).unwrap())
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        get_ok(&client, &fx).await;
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "did not wait for the holder"
        );
        assert_eq!(fx.tokens(), 1, "then fetched itself");
        assert!(
            holds(redis_get(&redis.addr(), &store_key(&fx)).await, "tok-1"),
            "and saved it"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_memcached_speaks_garbage() {
    guard(async {
        let fx = FaultServer::start().await;
        let (addr, accepted) = babbling_server(b"VALUE x 0 999999999\r\n\xff\r\nEND\r\n").await;
        let client = memcached_client(&fx, &addr.to_string());
        get_ok(&client, &fx).await;
        get_ok(&client, &fx).await;
        assert!(accepted.load(SeqCst) >= 1, "the store was tried");
        assert_eq!(fx.tokens(), 1);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Clocks (the core client over reqwest, with a clock the test moves)
// ---------------------------------------------------------------------------------------------

/// A clock the test sets: monotonic milliseconds, and a wall clock that may be absent or jump.
/// Sleeping moves it to the deadline at once (virtual time).
#[derive(Debug)]
struct TestClock {
    ms: AtomicU64,
    /// Unix seconds at monotonic zero, if the wall time is known.
    wall_at_zero: Mutex<Option<i64>>,
}

impl TestClock {
    fn new(unix: Option<u64>) -> Self {
        Self {
            ms: AtomicU64::new(0),
            wall_at_zero: Mutex::new(unix.map(|u| u as i64)),
        }
    }
    fn set_ms(&self, ms: u64) {
        self.ms.store(ms, SeqCst);
    }
    fn advance_secs(&self, s: u64) {
        self.ms.fetch_add(s * 1000, SeqCst);
    }
    /// Move the wall clock by `secs` (negative: back), leaving the monotonic clock alone.
    fn jump_wall(&self, secs: i64) {
        let mut w = self.wall_at_zero.lock().unwrap();
        *w = w.map(|u| u + secs);
    }
}

impl alf::Clock for TestClock {
    fn now(&self) -> alf::Instant {
        alf::Instant::from_millis(self.ms.load(SeqCst))
    }
    async fn sleep_until(&self, deadline: alf::Instant) {
        self.ms.fetch_max(deadline.as_millis(), SeqCst);
        tokio::task::yield_now().await;
    }
    /// A wall clock in whole seconds (an RTC's).
    fn unix_time(&self) -> Option<alf::UnixTime> {
        let w = (*self.wall_at_zero.lock().unwrap())?;
        u64::try_from(w + (self.ms.load(SeqCst) / 1000) as i64)
            .ok()
            .map(alf::UnixTime::from_secs)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

type CoreClient<'c, S> = alf::Client<ReqwestTransport, &'c TestClock, S>;

fn core_client<'c, S: TokenStore>(
    fx: &FaultServer,
    clock: &'c TestClock,
    store: S,
) -> CoreClient<'c, S> {
    let transport = ReqwestTransport::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    alf::Client::with_store(config(fx).build().unwrap(), transport, clock, store)
}

/// `GET /api/a` through a core client; the status.
async fn core_get<S: TokenStore>(client: &CoreClient<'_, S>, fx: &FaultServer) -> u16 {
    let url = fx.url("/api/a");
    let mut rx = [0u8; 512];
    let r: Result<alf::Response<'_>, alf::Error<TransportError>> = client
        .send(&alf::Request::new(alf::Method::Get, &url), &mut rx)
        .await;
    r.unwrap().status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_clock_wall_jumps_back() {
    guard(async {
        let fx = FaultServer::start().await;
        let clock = TestClock::new(Some(unix_now()));
        let mut store = alf::MemoryStore::<2048>::new();
        let client = core_client(&fx, &clock, &mut store);
        assert_eq!(core_get(&client, &fx).await, 200);
        let refresh_at = client.poll_at();
        clock.jump_wall(-86_400);
        clock.advance_secs(60);
        assert_eq!(core_get(&client, &fx).await, 200);
        assert_eq!(fx.tokens(), 1, "the token lives on the monotonic clock");
        assert_eq!(
            client.poll_at(),
            refresh_at,
            "its refresh time did not move"
        );
        // Refreshed on time, by the monotonic clock.
        clock.set_ms(refresh_at.unwrap().as_millis());
        assert_eq!(core_get(&client, &fx).await, 200);
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1", "tok-2"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_clock_wall_jumps_forward() {
    guard(async {
        let fx = FaultServer::start().await;
        let clock = TestClock::new(Some(unix_now()));
        let mut store = alf::MemoryStore::<2048>::new();
        {
            let a = core_client(&fx, &clock, &mut store);
            assert_eq!(core_get(&a, &fx).await, 200);
            clock.jump_wall(2 * 3600);
            assert_eq!(core_get(&a, &fx).await, 200);
            assert_eq!(fx.tokens(), 1, "in memory, the token is still good");
        }
        // Another client, whose wall clock says the stored token expired: not adopted.
        let b = core_client(&fx, &clock, &mut store);
        assert_eq!(core_get(&b, &fx).await, 200);
        assert_eq!(fx.tokens(), 2);
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1", "tok-2"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_clock_wall_behind_adopts_an_expired_token() {
    guard(async {
        let fx = FaultServer::start().await;
        let mut store = alf::MemoryStore::<2048>::new();
        let a_clock = TestClock::new(Some(unix_now()));
        {
            let a = core_client(&fx, &a_clock, &mut store);
            assert_eq!(core_get(&a, &fx).await, 200);
        }
        // Much later: tok-1 has expired at the server, but B's wall clock is two hours behind,
        // so the stored token looks good to B.
        fx.revoke_all();
        let b_clock = TestClock::new(Some(unix_now() - 2 * 3600));
        let b = core_client(&fx, &b_clock, &mut store);
        assert_eq!(core_get(&b, &fx).await, 200, "one replay with a new token");
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1", "tok-2"]);
        assert_eq!(fx.tokens(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_clock_monotonic_jumps_forward() {
    guard(async {
        let fx = FaultServer::start().await;
        let clock = TestClock::new(None);
        let client = core_client(&fx, &clock, alf::NoStore);
        assert_eq!(core_get(&client, &fx).await, 200);
        // Suspend and resume: the token expired meanwhile.
        clock.advance_secs(2 * 3600);
        assert_eq!(core_get(&client, &fx).await, 200);
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-2"], "never sent expired");
        assert_eq!(fx.tokens(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_clock_monotonic_jumps_back() {
    guard(async {
        let fx = FaultServer::start().await;
        let clock = TestClock::new(None);
        clock.set_ms(100_000);
        let client = core_client(&fx, &clock, alf::NoStore);
        assert_eq!(core_get(&client, &fx).await, 200);
        let refresh_at = client.poll_at().unwrap();
        assert_eq!(refresh_at.as_millis(), 100_000 + 3540 * 1000);
        // A broken clock goes back (to zero): no panic, no fetch, the token is still served.
        clock.set_ms(0);
        assert_eq!(core_get(&client, &fx).await, 200);
        assert_eq!(fx.tokens(), 1);
        assert_eq!(client.state_kind(), StateKind::Valid);
        // Refreshed when the clock reaches the refresh time again.
        clock.set_ms(refresh_at.as_millis());
        assert_eq!(core_get(&client, &fx).await, 200);
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1", "tok-2"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_token_down_during_refresh() {
    guard(async {
        let fx = FaultServer::start().await;
        let clock = TestClock::new(None);
        let client = core_client(&fx, &clock, alf::NoStore);
        assert_eq!(core_get(&client, &fx).await, 200);
        // The refresh is due (at 3540 s of 3600 s) and the token endpoint is down.
        fx.always("/token", Action::status(503));
        clock.set_ms(3_550_000);
        assert_eq!(core_get(&client, &fx).await, 200, "the old token is served");
        assert_eq!(fx.tokens(), 1 + 4, "one refresh: 4 attempts");
        // Past its expiry the old token is never sent: the caller gets the error.
        clock.set_ms(3_600_000);
        let url = fx.url("/api/a");
        let mut rx = [0u8; 512];
        let err = client
            .send(&alf::Request::new(alf::Method::Get, &url), &mut rx)
            .await
            .unwrap_err();
        assert!(
            matches!(err, alf::Error::TokenEndpoint(ref e) if e.status == 503),
            "{err:?}"
        );
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1"]);
        assert_eq!(fx.tokens(), 1 + 4 + 4);
    })
    .await;
}

/// A store that counts what alf asks of it.
#[derive(Debug, Default)]
struct CountingStore {
    inner: alf::MemoryStore<2048>,
    ops: usize,
}

impl TokenStore for CountingStore {
    type Error = alf::store::MemoryStoreError;
    async fn load<'b>(
        &mut self,
        key: &str,
        buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error> {
        self.ops += 1;
        self.inner.load(key, buf).await
    }
    async fn save(&mut self, key: &str, token: StoredToken<'_>) -> Result<(), Self::Error> {
        self.ops += 1;
        self.inner.save(key, token).await
    }
    async fn clear(&mut self, key: &str) -> Result<(), Self::Error> {
        self.ops += 1;
        self.inner.clear(key).await
    }
    async fn try_lock(&mut self, _key: &str, _ttl: alf::Duration) -> Result<bool, Self::Error> {
        self.ops += 1;
        Ok(true)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_clock_no_wall_time_store() {
    guard(async {
        let fx = FaultServer::start().await;
        let clock = TestClock::new(None);
        let mut store = CountingStore::default();
        {
            let client = core_client(&fx, &clock, &mut store);
            assert_eq!(core_get(&client, &fx).await, 200);
            assert_eq!(core_get(&client, &fx).await, 200);
        }
        assert_eq!(store.ops, 0, "no wall time, no store");
        assert_eq!(fx.tokens(), 1);
        // Control: with wall time, the same client does use the store.
        let clock = TestClock::new(Some(unix_now()));
        let client = core_client(&fx, &clock, &mut store);
        assert_eq!(core_get(&client, &fx).await, 200);
        drop(client);
        assert!(store.ops > 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_clock_no_wall_time_retry_after_date() {
    guard(async {
        let fx = FaultServer::start().await;
        let date = http_date(SystemTime::now() + Duration::from_secs(3600));
        fx.then("/token", Action::status(503).header("retry-after", &date));
        // Without wall time the date means nothing: the policy's backoff applies.
        let clock = TestClock::new(None);
        let client = core_client(&fx, &clock, alf::NoStore);
        assert_eq!(core_get(&client, &fx).await, 200);
        assert_eq!(fx.tokens(), 2);
        // With wall time the date is an hour away, beyond backoff_max: the fetch ends.
        fx.then("/token", Action::status(503).header("retry-after", &date));
        let clock = TestClock::new(Some(unix_now()));
        let client = core_client(&fx, &clock, alf::NoStore);
        let url = fx.url("/api/a");
        let mut rx = [0u8; 512];
        let err = client
            .send(&alf::Request::new(alf::Method::Get, &url), &mut rx)
            .await
            .unwrap_err();
        assert!(
            matches!(err, alf::Error::TokenEndpoint(ref e) if e.status == 503),
            "{err:?}"
        );
        assert_eq!(fx.tokens(), 3);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Cancellation: a caller dropped at each await point of a fetch, then the next call works
// ---------------------------------------------------------------------------------------------

/// A client whose requests wait long (10 s), so that only the test drops them.
fn patient_client(fx: &FaultServer) -> Client {
    Client::builder(config(fx).build().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Spawn a `GET /api/a`.
fn spawn_get(client: &Client, fx: &FaultServer) -> tokio::task::JoinHandle<Result<u16, Error>> {
    let c = client.clone();
    let url = fx.url("/api/a");
    tokio::spawn(async move { c.get(url).send().await.map(|r| r.status().as_u16()) })
}

/// Drop the caller (abort its task) and check that it was still waiting.
async fn drop_caller(task: tokio::task::JoinHandle<Result<u16, Error>>) {
    task.abort();
    let e = task.await.expect_err("the caller had already finished");
    assert!(e.is_cancelled());
}

/// After a caller was dropped mid-fetch: the fetch is abandoned (not stuck), and the next call
/// fetches and succeeds.
async fn next_call_recovers(client: &Client, fx: &FaultServer, tokens_before: usize) {
    assert_eq!(client.core().state_kind(), StateKind::Fetching);
    assert_eq!(
        client.core().poll_at(),
        Some(alf::Instant::ZERO),
        "abandoned fetch is due now"
    );
    get_ok(client, fx).await;
    assert_eq!(fx.tokens(), tokens_before + 1);
    assert_eq!(client.core().state_kind(), StateKind::Valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cancel_after_accept() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::hang());
        let client = patient_client(&fx);
        let task = spawn_get(&client, &fx);
        fx.wait_for("/token", 1).await;
        drop_caller(task).await;
        next_call_recovers(&client, &fx, 1).await;
        assert_eq!(fx.api_tokens(), ["tok-1"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cancel_after_headers() {
    guard(async {
        let fx = FaultServer::start().await;
        let head = head(
            200,
            &[
                ("content-type", "application/json"),
                ("content-length", "66"),
            ],
        );
        fx.then("/token", Action::RawThenHang(head));
        let client = patient_client(&fx);
        let task = spawn_get(&client, &fx);
        fx.wait_written(1).await;
        tokio::time::sleep(Duration::from_millis(50)).await; // let the client read them
        drop_caller(task).await;
        next_call_recovers(&client, &fx, 1).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cancel_mid_body() {
    guard(async {
        let fx = FaultServer::start().await;
        let body = token_body("tok-never");
        let len = body.len().to_string();
        let mut bytes = head(
            200,
            &[
                ("content-type", "application/json"),
                ("content-length", &len),
            ],
        );
        bytes.extend_from_slice(&body.as_bytes()[..body.len() / 2]);
        fx.then("/token", Action::RawThenHang(bytes));
        let client = patient_client(&fx);
        let task = spawn_get(&client, &fx);
        fx.wait_written(1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop_caller(task).await;
        next_call_recovers(&client, &fx, 1).await;
        assert_eq!(fx.api_tokens(), ["tok-1"], "the half token was never used");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cancel_during_backoff() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::status(503));
        let config = config(&fx)
            .retry_policy(
                fast_retry()
                    .backoff_factor(alf::Duration::from_secs(1))
                    .backoff_max(alf::Duration::from_secs(5)),
            )
            .build()
            .unwrap();
        let client = Client::builder(config).build().unwrap();
        let task = spawn_get(&client, &fx);
        // The caller sleeps once the machine has a retry time.
        while client.core().poll_at().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop_caller(task).await;
        assert_eq!(fx.tokens(), 1);
        assert_eq!(client.core().state_kind(), StateKind::Fetching);
        // The next caller takes over, still honouring the backoff.
        get_ok(&client, &fx).await;
        let t = fx.requests("/token");
        assert_eq!(t.len(), 2);
        assert!(
            t[1].at - t[0].at >= Duration::from_secs(1),
            "backoff skipped"
        );
        assert_eq!(client.core().state_kind(), StateKind::Valid);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cancel_while_queued() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::hang());
        let client = patient_client(&fx);
        let fetching = spawn_get(&client, &fx);
        fx.wait_for("/token", 1).await;
        let queued = spawn_get(&client, &fx);
        tokio::time::sleep(Duration::from_millis(50)).await; // let it queue
        drop_caller(queued).await;
        assert_eq!(fx.tokens(), 1, "the queued caller did not fetch");
        drop_caller(fetching).await;
        next_call_recovers(&client, &fx, 1).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cancel_fetching_caller_with_a_waiter() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/token", Action::hang());
        let client = patient_client(&fx);
        let fetching = spawn_get(&client, &fx);
        fx.wait_for("/token", 1).await;
        let waiting = spawn_get(&client, &fx);
        tokio::time::sleep(Duration::from_millis(50)).await; // let it queue
        drop_caller(fetching).await;
        // The waiting caller takes the abandoned fetch over and gets a token.
        assert_eq!(waiting.await.unwrap().unwrap(), 200);
        assert_eq!(fx.tokens(), 2);
        assert_eq!(fx.api_tokens(), ["tok-1"]);
        assert_eq!(client.core().state_kind(), StateKind::Valid);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cancel_during_resource_request() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/api", Action::hang());
        let client = patient_client(&fx);
        let task = spawn_get(&client, &fx);
        fx.wait_for("/api", 1).await;
        drop_caller(task).await;
        assert_eq!(client.core().state_kind(), StateKind::Valid);
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 1, "the token is kept");
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-1"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cancel_during_replay_fetch() {
    guard(async {
        let fx = FaultServer::start().await;
        fx.then("/api", Action::status(401));
        fx.then("/token", Action::Default);
        fx.then("/token", Action::hang());
        let client = patient_client(&fx);
        let task = spawn_get(&client, &fx);
        fx.wait_for("/token", 2).await;
        drop_caller(task).await;
        next_call_recovers(&client, &fx, 2).await;
        assert_eq!(fx.api_tokens(), ["tok-1", "tok-2"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cancel_during_store_operation() {
    guard(async {
        let fx = FaultServer::start().await;
        let silent = silent_server().await;
        let client = Client::builder(config(&fx).build().unwrap())
            .store(
                RedisStore::new(&format!("redis://{silent}/"))
                    .unwrap()
                    .with_timeout(Duration::from_millis(800)),
            )
            .build()
            .unwrap();
        let c = client.clone();
        let url = fx.url("/api/a");
        let task =
            tokio::spawn(async move { c.get(url).send().await.map(|r| r.status().as_u16()) });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(fx.tokens(), 0, "still waiting for the store");
        drop_caller(task).await;
        assert_eq!(
            client.core().poll_at(),
            Some(alf::Instant::ZERO),
            "abandoned fetch"
        );
        // The next call waits out the store's timeouts, fetches, and goes through.
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 1);
        assert_eq!(client.core().state_kind(), StateKind::Valid);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cancel_while_waiting_for_store_lock() {
    guard(async {
        let fx = FaultServer::start().await;
        let redis = Server::redis();
        let lock = format!("{}:lock", store_key(&fx));
        redis_raw(
            &redis.addr(),
            &[b"SET", lock.as_bytes(), b"other-process", b"PX", b"10000"],
        )
        .await;
        let config = config(&fx)
            .store_policy(alf::StorePolicy::DEFAULT.wait(alf::Duration::from_secs(5)))
            .build()
            .unwrap();
        let client = Client::builder(config)
            .store(RedisStore::new(&redis.redis_url()).unwrap())
            .build()
            .unwrap();
        let c = client.clone();
        let url = fx.url("/api/a");
        let task =
            tokio::spawn(async move { c.get(url).send().await.map(|r| r.status().as_u16()) });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            fx.tokens(),
            0,
            "still waiting for the other process's token"
        );
        task.abort();
        assert!(
            task.await
                .expect_err("the caller had already finished")
                .is_cancelled()
        );
        assert_eq!(
            client.core().poll_at(),
            Some(alf::Instant::ZERO),
            "abandoned fetch"
        );
        // The other process goes away without a token; the next call takes the lock and fetches.
        redis_raw(&redis.addr(), &[b"DEL", lock.as_bytes()]).await;
        get_ok(&client, &fx).await;
        assert_eq!(fx.tokens(), 1);
        assert_eq!(redis_get(&redis.addr(), &lock).await, None, "lock released");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// `tests/FAULTS.md` lists exactly the `fault_*` tests of this file, one row each, at least
/// 40, and each name is a test.
#[test]
fn matrix_table_lists_every_fault_test() {
    let table = include_str!("../../../tests/FAULTS.md");
    let source = include_str!("faults.rs");
    let lines: Vec<&str> = source.lines().collect();

    // The tests of this file: `fn fault_*` right after a test attribute.
    let mut tests = std::collections::BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let l = line.trim_start();
        let Some(rest) = l
            .strip_prefix("async fn fault_")
            .or_else(|| l.strip_prefix("fn fault_"))
        else {
            continue;
        };
        let name = format!("fault_{}", rest.split('(').next().unwrap());
        let attribute = if i > 0 { lines[i - 1].trim_start() } else { "" };
        assert!(
            attribute.starts_with("#[tokio::test") || attribute == "#[test]",
            "{name} is not a test"
        );
        assert!(tests.insert(name.clone()), "{name} defined twice");
    }

    // The rows: | id | area | fault | outcome | `test` |
    let mut rows = std::collections::BTreeSet::new();
    let mut ids = std::collections::BTreeSet::new();
    let mut faults = std::collections::BTreeSet::new();
    for line in table.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            || cells[0] == "#"
        {
            continue; // header and separator
        }
        assert_eq!(cells.len(), 5, "a row has 5 cells: {line}");
        let name = cells[4].trim_matches('`');
        assert!(
            name.starts_with("fault_") && cells[4] == format!("`{name}`"),
            "the last cell names one fault_ test: {line}"
        );
        assert!(
            !cells[2].is_empty() && !cells[3].is_empty(),
            "fault and outcome: {line}"
        );
        assert!(ids.insert(cells[0]), "row id {} twice", cells[0]);
        assert!(
            faults.insert((cells[1], cells[2])),
            "fault listed twice: {line}"
        );
        assert!(
            rows.insert(name.to_owned()),
            "{name} is the test of two rows"
        );
        assert!(
            tests.contains(name),
            "the table names {name}, which faults.rs does not define"
        );
    }
    let missing: Vec<_> = tests.difference(&rows).collect();
    assert!(
        missing.is_empty(),
        "tests missing from tests/FAULTS.md: {missing:?}"
    );
    assert!(rows.len() >= 40, "only {} faults in the matrix", rows.len());
}
