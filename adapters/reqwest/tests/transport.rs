//! `ReqwestTransport` and `TokioClock` against their contracts in the core.

mod common;

use std::time::Duration;

use alf::{Clock, Method, Request, Transport};
use alf_reqwest::{ReqwestTransport, TokioClock};
use common::{Reply, serve};
use embedded_io::{Error as _, ErrorKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_exactly_what_it_is_given_and_reads_everything_back() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    let addr = serve(move |req| {
        log.lock().unwrap().push(req.clone());
        Reply::json(429, r#"{"error":"slow_down"}"#)
            .header("retry-after", "7")
            .header("www-authenticate", r#"Bearer error="invalid_token""#)
    })
    .await;
    let url = format!("http://{addr}/token?x=1");
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", "application/json"),
    ];
    let request = Request {
        authorization: Some("Basic Yzpz"),
        ..Request::new(Method::Post, &url)
            .headers(&headers)
            .body(b"grant_type=client_credentials")
    };
    let mut t = ReqwestTransport::new();
    let mut rx = [0u8; 64];
    let r = t.send(&request, &mut rx).await.unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.body, br#"{"error":"slow_down"}"#);
    assert_eq!(r.retry_after, Some(alf::RetryAfter::Seconds(7)));
    assert_eq!(r.bearer_error, Some(alf::BearerError::InvalidToken));
    let req = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/token?x=1")
    );
    assert_eq!(req.header("authorization"), Some("Basic Yzpz"));
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(req.header("content-length"), Some("29"));
    assert_eq!(req.body_str(), "grant_type=client_credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_follows_redirects() {
    let addr = serve(|req| match req.path.as_str() {
        "/token" => Reply::new(307).header("location", "/stolen").body("moved"),
        _ => panic!("redirect followed to {}", req.path),
    })
    .await;
    let url = format!("http://{addr}/token");
    let mut rx = [0u8; 16];
    let r = ReqwestTransport::new()
        .send(&Request::new(Method::Post, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!((r.status, r.body), (307, &b"moved"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_fit_is_out_of_memory_never_truncated() {
    let addr = serve(|req| {
        let n: usize = req.path[1..].split('/').next().unwrap().parse().unwrap();
        let reply = Reply::new(200).body(vec![b'a'; n]);
        if req.path.ends_with("/chunked") {
            reply.chunked()
        } else {
            reply
        }
    })
    .await;
    let mut t = ReqwestTransport::new();
    let mut rx = [0u8; 1000];
    for (n, chunked, fits) in [
        (1000, false, true),
        (1001, false, false),
        (1000, true, true),
        (1001, true, false),
        (0, true, true),
    ] {
        let url = format!("http://{addr}/{n}{}", if chunked { "/chunked" } else { "" });
        match t.send(&Request::new(Method::Get, &url), &mut rx).await {
            Ok(r) => assert!(fits && r.body.len() == n, "{n} {chunked}"),
            Err(e) => {
                assert!(!fits, "{n} {chunked}: {e}");
                assert_eq!(e.kind(), ErrorKind::OutOfMemory);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_meaningful_kinds_and_show_no_secrets() {
    let addr = serve(|_| Reply::new(200).delay(Duration::from_secs(3))).await;
    let url = format!("http://{addr}/slow");
    let mut t = ReqwestTransport::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let request = Request {
        authorization: Some("Basic c2VjcmV0LXZhbHVl"),
        ..Request::new(Method::Post, &url)
    };
    let mut rx = [0u8; 16];
    let e = t.send(&request, &mut rx).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains("c2VjcmV0") && !shown.contains("/slow"),
        "{shown}"
    );

    let e = t
        .send(&Request::new(Method::Get, "not a url"), &mut rx)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let bad = [("x-bad", "a\r\nInjected: 1")];
    let e = t
        .send(&Request::new(Method::Get, &url).headers(&bad), &mut rx)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/token");
    let e = t
        .send(&Request::new(Method::Post, &url), &mut rx)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn tokio_clock_is_monotonic_and_never_wakes_early() {
    let clock = TokioClock::new();
    let a = clock.now();
    let deadline = a + alf::Duration::from_millis(30);
    clock.sleep_until(deadline).await;
    let b = clock.now();
    assert!(b >= deadline, "{b:?} < {deadline:?}");
    // A deadline in the past returns at once; "never" does not overflow.
    clock.sleep_until(alf::Instant::ZERO).await;
    let never = tokio::time::timeout(
        Duration::from_millis(10),
        clock.sleep_until(alf::Instant::MAX),
    )
    .await;
    assert!(never.is_err());
    let unix = clock.unix_time().unwrap();
    assert!(unix.as_secs() > 1_700_000_000, "{unix:?}");
    assert_eq!(unix.resolution(), alf::Duration::from_millis(1));
    let system_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    // Milliseconds, never ahead of the system clock read just after.
    assert!(u128::from(unix.as_millis()) <= system_ms);
    assert!(system_ms - u128::from(unix.as_millis()) < 1000);
}

#[tokio::test(start_paused = true)]
async fn tokio_clock_follows_paused_time() {
    let clock = TokioClock::new();
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(clock.now().as_millis(), 3_600_000);
}
