//! The real reqwless client, over tokio sockets, against a real HTTP server on 127.0.0.1,
//! driven through `alf::Client` and directly through the transport.

mod common;

use std::time::{Duration as StdDuration, Instant as StdInstant};

use alf::http::{BearerError, Method, Request, RetryAfter};
use alf::{Client, Clock, Config, RetryPolicy, Transport};
use alf_reqwless::{EmbassyClock, Error, InvalidRequest, ReqwlessTransport};
use common::{LoopbackDns, Reply, Server, TokioTcp, response, token};
use embassy_time::Duration;
use embedded_io::{Error as _, ErrorKind};

type HostTransport<'a> = ReqwlessTransport<'a, TokioTcp, LoopbackDns>;

/// Percent-encoded (`s3cr3t%3A%2F%2B%20%C3%A9`) before base64, as RFC 6749 §2.3.1 asks.
const SECRET: &str = "s3cr3t:/+ é";
const BASIC: &str = "Basic bXktY2xpZW50OnMzY3IzdCUzQSUyRiUyQiUyMCVDMyVBOQ==";
const FORM: &str = "grant_type=client_credentials&scope=read%20write";

fn config(server: &Server) -> Config {
    Config::builder(&server.url("/token"), "my-client", SECRET)
        .scope("read write")
        .retry_policy(RetryPolicy::NONE)
        .build()
        .unwrap()
}

fn expected_token_request(server: &Server) -> String {
    format!(
        "POST /token HTTP/1.1\r\n\
         Host: {}\r\n\
         Content-Length: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Accept: application/json\r\n\
         Authorization: {BASIC}\r\n\
         Connection: close\r\n\
         \r\n\
         {FORM}",
        server.addr,
        FORM.len()
    )
}

fn expected_get(server: &Server, path: &str, token: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        server.addr
    )
}

#[tokio::test]
async fn token_fetched_with_exact_bytes_then_reused_for_requests() {
    let server = Server::start(vec![
        token("tok-1", 3600),
        response(200, &[], b"first"),
        response(200, &[], b"second"),
    ])
    .await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let client: Client<HostTransport<'_>, EmbassyClock> = Client::new(
        config(&server),
        ReqwlessTransport::new(&tcp, &dns),
        EmbassyClock::new(),
    );

    let t = client.access_token().await.unwrap();
    assert_eq!(t.secret(), "tok-1");
    assert_eq!(
        client.access_token().await.unwrap().secret(),
        "tok-1",
        "served from memory"
    );

    let mut rx = [0u8; 512];
    let url = server.url("/api/items?page=2");
    let r = client
        .send(&Request::new(Method::Get, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!((r.status, r.body), (200, &b"first"[..]));
    let r = client
        .send(&Request::new(Method::Get, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!((r.status, r.body), (200, &b"second"[..]));

    let seen = server.requests();
    assert_eq!(seen.len(), 3, "one token request for all of it: {seen:#?}");
    assert_eq!(seen[0], expected_token_request(&server));
    assert_eq!(seen[1], expected_get(&server, "/api/items?page=2", "tok-1"));
    assert_eq!(seen[2], seen[1]);
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let server = Server::start(vec![token("shared", 3600)]).await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let client: Client<HostTransport<'_>, EmbassyClock> = Client::new(
        config(&server),
        ReqwlessTransport::new(&tcp, &dns),
        EmbassyClock::new(),
    );
    let (a, b, c) = tokio::join!(
        client.access_token(),
        client.access_token(),
        client.access_token()
    );
    for t in [a, b, c] {
        assert_eq!(t.unwrap().secret(), "shared");
    }
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_401_is_replayed_once_with_a_new_token() {
    let server = Server::start(vec![
        token("old", 3600),
        response(
            401,
            &[("WWW-Authenticate", r#"Bearer error="invalid_token""#)],
            b"",
        ),
        token("new", 3600),
        response(200, &[], b"ok"),
    ])
    .await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let client: Client<HostTransport<'_>, EmbassyClock> = Client::new(
        config(&server),
        ReqwlessTransport::new(&tcp, &dns),
        EmbassyClock::new(),
    );
    let mut rx = [0u8; 256];
    let url = server.url("/api");
    let r = client
        .send(&Request::new(Method::Get, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!((r.status, r.body), (200, &b"ok"[..]));

    let seen = server.requests();
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert_eq!(seen[0], expected_token_request(&server));
    assert_eq!(seen[1], expected_get(&server, "/api", "old"));
    assert_eq!(seen[2], expected_token_request(&server));
    assert_eq!(seen[3], expected_get(&server, "/api", "new"));
}

#[tokio::test]
async fn token_response_larger_than_rx_is_a_typed_error() {
    let big = format!(
        r#"{{"access_token":"{}","token_type":"Bearer","expires_in":60}}"#,
        "a".repeat(600)
    );
    let server = Server::start(vec![response(200, &[], big.as_bytes())]).await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    // A 512-byte receive buffer for token responses.
    let client: Client<HostTransport<'_>, EmbassyClock, alf::NoStore, 2048, 512> = Client::new(
        config(&server),
        ReqwlessTransport::new(&tcp, &dns),
        EmbassyClock::new(),
    );
    let err = client.access_token().await.unwrap_err();
    assert!(
        matches!(err, alf::Error::Transport(Error::ResponseTooLarge)),
        "{err:?}"
    );
    assert_eq!(err.kind(), alf::ErrorKind::Capacity);
    assert_eq!(
        server.requests().len(),
        1,
        "a capacity error is not retried"
    );
}

#[tokio::test]
async fn bodies_larger_than_rx_fail_with_out_of_memory() {
    let body = vec![b'x'; 300];
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(b"12c\r\n");
    chunked.extend_from_slice(&body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut to_close = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    to_close.extend_from_slice(&body);
    let server = Server::start(vec![
        response(200, &[], &body),
        Reply::Send(chunked),
        Reply::Send(to_close),
        response(200, &[("X-Padding", &"p".repeat(300))], b""),
    ])
    .await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let mut transport: HostTransport<'_> = ReqwlessTransport::new(&tcp, &dns);
    let url = server.url("/big");
    for what in ["content-length", "chunked", "until close", "headers"] {
        let mut rx = [0u8; 200];
        let err = transport
            .send(&Request::new(Method::Get, &url), &mut rx)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ResponseTooLarge), "{what}: {err:?}");
        assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{what}");
    }
}

#[tokio::test]
async fn chunked_and_read_until_close_bodies() {
    let json = r#"{"access_token":"chunky","token_type":"bearer","expires_in":"3600"}"#;
    let (a, b) = json.split_at(20);
    let chunked = Reply::Pieces(vec![
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec(),
        format!("{:x}\r\n{a}\r\n", a.len()).into_bytes(),
        format!("{:x}\r\n{b}", b.len()).into_bytes(),
        b"\r\n0\r\n\r\n".to_vec(),
    ]);
    let until_close = Reply::Pieces(vec![
        b"HTTP/1.1 200 OK\r\n\r\nhello ".to_vec(),
        b"world".to_vec(),
    ]);
    let server = Server::start(vec![chunked, until_close]).await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let client: Client<HostTransport<'_>, EmbassyClock> = Client::new(
        config(&server),
        ReqwlessTransport::new(&tcp, &dns),
        EmbassyClock::new(),
    );
    assert_eq!(client.access_token().await.unwrap().secret(), "chunky");
    let mut rx = [0u8; 256];
    let url = server.url("/stream");
    let r = client
        .send(&Request::new(Method::Get, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!((r.status, r.body), (200, &b"hello world"[..]));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = Server::start(vec![Reply::Hang, Reply::Hang]).await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let timeout = Duration::from_millis(300);
    let mut transport: HostTransport<'_> = ReqwlessTransport::new(&tcp, &dns).with_timeout(timeout);
    assert_eq!(transport.timeout(), timeout);
    let url = server.url("/token");
    let mut rx = [0u8; 256];
    let started = StdInstant::now();
    let err = transport
        .send(&Request::new(Method::Post, &url), &mut rx)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(
        took >= StdDuration::from_millis(300) && took < StdDuration::from_secs(2),
        "{took:?}"
    );

    // Through the client: the same error, typed, within the timeout (no retries here).
    let client: Client<HostTransport<'_>, EmbassyClock> = Client::new(
        config(&server),
        ReqwlessTransport::new(&tcp, &dns).with_timeout(timeout),
        EmbassyClock::new(),
    );
    let started = StdInstant::now();
    let err = client.access_token().await.unwrap_err();
    assert!(
        matches!(err, alf::Error::Transport(Error::Timeout)),
        "{err:?}"
    );
    assert_eq!(err.kind(), alf::ErrorKind::Retryable);
    assert!(started.elapsed() < StdDuration::from_secs(2));
}

#[tokio::test]
async fn connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let mut transport: HostTransport<'_> = ReqwlessTransport::new(&tcp, &dns);
    let url = format!("http://127.0.0.1:{port}/token");
    let mut rx = [0u8; 64];
    let err = transport
        .send(&Request::new(Method::Post, &url), &mut rx)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
}

#[tokio::test]
async fn unknown_host_is_not_found_and_https_needs_tls() {
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let mut transport: HostTransport<'_> = ReqwlessTransport::new(&tcp, &dns);
    let mut rx = [0u8; 64];
    let req = Request::new(Method::Post, "http://auth.example.invalid/token");
    let err = transport.send(&req, &mut rx).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");

    // Refused before connecting: this server would record any request.
    let server = Server::start(vec![response(200, &[], b"")]).await;
    let url = format!("https://{}/token", server.addr);
    let err = transport
        .send(&Request::new(Method::Post, &url), &mut rx)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TlsNotConfigured), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let err = transport
        .send(&Request::new(Method::Post, "ftp://127.0.0.1/x"), &mut rx)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err:?}");
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn truncated_bodies_are_errors_not_hangs() {
    let cut_fixed = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part".to_vec();
    let cut_chunk =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nonly a part".to_vec();
    let cut_head = b"HTTP/1.1 200 OK\r\nContent-Le".to_vec();
    let server = Server::start(vec![
        Reply::Send(cut_fixed),
        Reply::Send(cut_chunk),
        Reply::Send(cut_head),
    ])
    .await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let mut transport: HostTransport<'_> =
        ReqwlessTransport::new(&tcp, &dns).with_timeout(Duration::from_secs(5));
    let url = server.url("/x");
    for what in ["content-length", "chunked", "headers"] {
        let mut rx = [0u8; 512];
        let started = StdInstant::now();
        let err = transport
            .send(&Request::new(Method::Get, &url), &mut rx)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Truncated), "{what}: {err:?}");
        assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{what}: {err:?}");
        assert!(
            started.elapsed() < StdDuration::from_secs(2),
            "{what}: noticed at once, not by the timeout"
        );
    }
}

#[tokio::test]
async fn head_interim_responses_and_framing_errors() {
    let mut many = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n".to_vec();
    for i in 0..40 {
        many.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let server = Server::start(vec![
        // A HEAD: the length describes a body that is not sent.
        Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec()),
        Reply::Pieces(vec![
            b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=1\r\nok\r\n".to_vec(),
            b"0\r\nX-Trailer: 1\r\n\r\n".to_vec(),
        ]),
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok".to_vec(),
        ),
        Reply::Send(many),
    ])
    .await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let mut transport: HostTransport<'_> = ReqwlessTransport::new(&tcp, &dns);
    let url = server.url("/r");
    let mut rx = [0u8; 1024];
    let r = transport
        .send(&Request::new(Method::Head, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!((r.status, r.body), (200, &b""[..]));
    let r = transport
        .send(&Request::new(Method::Get, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!((r.status, r.body), (200, &b"ok"[..]), "the 100 is skipped");
    let err = transport
        .send(&Request::new(Method::Get, &url), &mut rx)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err:?}");
    let err = transport
        .send(&Request::new(Method::Get, &url), &mut rx)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooManyResponseHeaders), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::OutOfMemory);
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let elsewhere = Server::start(vec![token("stolen", 60)]).await;
    let location = elsewhere.url("/token");
    let server = Server::start(vec![
        response(307, &[("Location", &location)], b""),
        response(302, &[("Location", &location)], b""),
    ])
    .await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let mut transport: HostTransport<'_> = ReqwlessTransport::new(&tcp, &dns);
    let url = server.url("/token");
    let mut rx = [0u8; 256];
    let r = transport
        .send(&Request::new(Method::Post, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!(r.status, 307);

    let client: Client<HostTransport<'_>, EmbassyClock> = Client::new(
        config(&server),
        ReqwlessTransport::new(&tcp, &dns),
        EmbassyClock::new(),
    );
    let err = client.access_token().await.unwrap_err();
    assert!(matches!(err, alf::Error::TokenEndpoint(_)), "{err:?}");
    assert_eq!(server.requests().len(), 2);
    assert!(
        elsewhere.requests().is_empty(),
        "credentials never went to the redirect target"
    );
}

#[tokio::test]
async fn response_headers_reach_alf() {
    let server = Server::start(vec![
        response(503, &[("Retry-After", "7")], b"busy"),
        response(
            401,
            &[(
                "www-authenticate",
                r#"Bearer realm="api", error="insufficient_scope""#,
            )],
            b"",
        ),
        response(204, &[], b""),
    ])
    .await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let mut transport: HostTransport<'_> = ReqwlessTransport::new(&tcp, &dns);
    let url = server.url("/h");
    let mut rx = [0u8; 256];
    let r = transport
        .send(&Request::new(Method::Get, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body, r.retry_after),
        (503, &b"busy"[..], Some(RetryAfter::Seconds(7)))
    );
    let r = transport
        .send(&Request::new(Method::Get, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.bearer_error),
        (401, Some(BearerError::InsufficientScope))
    );
    let r = transport
        .send(&Request::new(Method::Delete, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!((r.status, r.body), (204, &b""[..]));
}

#[tokio::test]
async fn request_headers_and_bodies_on_the_wire() {
    let server = Server::start(vec![response(201, &[], b"{}"), response(200, &[], b"")]).await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let mut transport: HostTransport<'_> = ReqwlessTransport::new(&tcp, &dns);
    let url = server.url("/things#fragment-is-never-sent");
    let headers = [("Content-Type", "application/json"), ("X-Request-Id", "42")];
    let mut rx = [0u8; 256];
    let mut req = Request::new(Method::Put, &url)
        .headers(&headers)
        .body(br#"{"a":1}"#);
    req.authorization = Some("Bearer abc");
    let r = transport.send(&req, &mut rx).await.unwrap();
    assert_eq!((r.status, r.body), (201, &b"{}"[..]));
    // An empty POST still says `Content-Length: 0`.
    transport
        .send(&Request::new(Method::Post, &server.url("/empty")), &mut rx)
        .await
        .unwrap();

    let seen = server.requests();
    assert_eq!(
        seen[0],
        format!(
            "PUT /things HTTP/1.1\r\nHost: {}\r\nContent-Length: 7\r\nContent-Type: application/json\r\n\
             X-Request-Id: 42\r\nAuthorization: Bearer abc\r\nConnection: close\r\n\r\n{{\"a\":1}}",
            server.addr
        )
    );
    assert_eq!(
        seen[1],
        format!(
            "POST /empty HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            server.addr
        )
    );
}

#[tokio::test]
async fn header_capacity() {
    let server = Server::start(vec![response(200, &[], b"")]).await;
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let url = server.url("/h");
    let headers = [("X-A", "1"), ("X-B", "2")];
    let mut rx = [0u8; 128];
    let mut req = Request::new(Method::Get, &url).headers(&headers);
    req.authorization = Some("Bearer t");
    // Two headers + Authorization + Connection: 4.
    let mut small = ReqwlessTransport::new(&tcp, &dns).with_header_capacity::<3>();
    let err = small.send(&req, &mut rx).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidRequest(InvalidRequest::TooManyHeaders)),
        "{err:?}"
    );
    let mut enough = small.with_header_capacity::<4>();
    assert_eq!(enough.send(&req, &mut rx).await.unwrap().status, 200);
}

#[tokio::test]
async fn invalid_requests_are_refused_before_connecting() {
    let (tcp, dns) = (TokioTcp, LoopbackDns);
    let mut transport: HostTransport<'_> = ReqwlessTransport::new(&tcp, &dns);
    let mut rx = [0u8; 64];
    let bad = [("X-Evil", "1\r\nHost: elsewhere")];
    let req = Request::new(Method::Get, "http://127.0.0.1:9/").headers(&bad);
    let err = transport.send(&req, &mut rx).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidRequest(InvalidRequest::Header)),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let req = Request::new(Method::Get, "http://user:pw@127.0.0.1:9/");
    let err = transport.send(&req, &mut rx).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidRequest(InvalidRequest::Url)),
        "{err:?}"
    );
    // Printing an error never shows the request's data.
    let mut req = Request::new(Method::Get, "http://127.0.0.1:9/?api_key=hunter2");
    req.authorization = Some("Bearer sekrit\n");
    let err = transport.send(&req, &mut rx).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("sekrit") && !shown.contains("hunter2"),
        "{shown}"
    );
}

#[tokio::test]
async fn embassy_clock() {
    let clock = EmbassyClock::new();
    assert_eq!(clock.unix_time(), None);
    let t0 = clock.now();
    let deadline = t0 + alf::Duration::from_millis(50);
    clock.sleep_until(deadline).await;
    assert!(clock.now() >= deadline, "never wakes early");
    clock.sleep_until(t0).await; // in the past: returns at once

    // Whole seconds: the reading moves on in milliseconds, with a resolution of one second.
    clock.set_unix_time(1_700_000_000);
    let unix = clock.unix_time().unwrap();
    assert!(
        (1_700_000_000_000..1_700_000_001_000).contains(&unix.as_millis()),
        "{unix:?}"
    );
    assert_eq!(unix.resolution(), alf::Duration::from_secs(1));
    let t = clock.now();
    clock.sleep_until(t + alf::Duration::from_millis(20)).await;
    let later = clock.unix_time().unwrap();
    assert!(
        later.as_millis() >= unix.as_millis() + 20,
        "{unix:?} {later:?}"
    );
    clock.clear_unix_time();
    assert_eq!(clock.unix_time(), None);

    // Milliseconds: a resolution of one millisecond.
    clock.set_unix_time_ms(1_700_000_000_123);
    let unix = clock.unix_time().unwrap();
    assert!(
        (1_700_000_000_123..1_700_000_000_623).contains(&unix.as_millis()),
        "{unix:?}"
    );
    assert_eq!(unix.resolution(), alf::Duration::from_millis(1));
    assert!(clock.unix_offset().unwrap() <= unix.as_secs());
    // Setting it again in whole seconds goes back to a resolution of one second.
    clock.set_unix_time(1_700_000_100);
    let unix = clock.unix_time().unwrap();
    assert_eq!(unix.resolution(), alf::Duration::from_secs(1));
    assert!(
        (1_700_000_100_000..1_700_000_101_000).contains(&unix.as_millis()),
        "{unix:?}"
    );

    let boot = EmbassyClock::with_unix_offset(1_600_000_000);
    assert_eq!(boot.unix_offset(), Some(1_600_000_000));
    let unix = boot.unix_time().unwrap();
    assert!(unix.as_secs() >= 1_600_000_000);
    assert_eq!(unix.resolution(), alf::Duration::from_secs(1));
    assert_eq!(EmbassyClock::with_unix_offset(u64::MAX).unix_time(), None);
    assert_eq!(EmbassyClock::with_unix_offset(0).unix_time(), None);
}
