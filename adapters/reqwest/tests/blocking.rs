//! The blocking client (feature `blocking`) against the loopback token endpoint and API of
//! `common`, served by a runtime of the test's own on other threads: the test thread itself is
//! outside any runtime, as in a program that uses the blocking client.

mod common;

use std::sync::atomic::Ordering::SeqCst;

use alf_reqwest::Error;
use alf_reqwest::blocking::Client;
use common::{Fixture, Reply};

/// A fixture served by a multi-threaded runtime, which must outlive the test.
fn fixture(lifetime_s: u64) -> (tokio::runtime::Runtime, Fixture) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fixture = rt.block_on(Fixture::start(lifetime_s));
    (rt, fixture)
}

fn client(f: &Fixture) -> Client {
    Client::builder(f.config().build().unwrap())
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap()
}

#[test]
fn get_fetches_a_token_once_and_reuses_it() {
    let (_rt, f) = fixture(3600);
    let client = client(&f);
    for _ in 0..3 {
        let response = client.get(f.url("/api/things")).send().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().unwrap(), "GET /api/things ");
    }
    assert_eq!(f.state.token_requests(), 1);
    assert_eq!(f.state.api_tokens(), ["tok-1", "tok-1", "tok-1"]);
}

#[test]
fn clones_on_many_threads_share_one_token() {
    let (_rt, f) = fixture(3600);
    let client = client(&f);
    let url = f.url("/api/x");
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (client, url) = (client.clone(), url.clone());
            s.spawn(move || {
                let response = client.get(url).send().unwrap();
                assert_eq!(response.status(), 200);
            });
        }
    });
    assert_eq!(f.state.token_requests(), 1);
    assert_eq!(f.state.api_requests(), 8);
}

#[test]
fn a_401_is_replayed_once_with_a_new_token() {
    let (_rt, f) = fixture(3600);
    let client = client(&f);
    assert_eq!(client.access_token().unwrap().secret(), "tok-1");
    f.state.revoke_next.store(true, SeqCst);
    let response = client
        .post(f.url("/api/orders"))
        .body("order=1")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "POST /api/orders order=1");
    assert_eq!(f.state.token_requests(), 2);
    assert_eq!(f.state.api_tokens(), ["tok-1", "tok-2"]);
}

#[test]
fn a_token_endpoint_error_is_returned_and_the_request_never_sent() {
    let (_rt, f) = fixture(3600);
    f.state.script(Reply::json(
        401,
        r#"{"error":"invalid_client","error_description":"bad secret"}"#,
    ));
    let client = client(&f);
    let err = client.get(f.url("/api/things")).send().unwrap_err();
    match err.token_error() {
        Some(alf::Error::TokenEndpoint(e)) => {
            assert_eq!(e.status, 401);
            assert_eq!(e.code, Some(alf::OAuthErrorCode::InvalidClient));
        }
        other => panic!("expected a token endpoint error, got {other:?}"),
    }
    assert_eq!(f.state.api_requests(), 0);
}

#[test]
fn inside_a_runtime_calls_fail_with_a_typed_error_and_dropping_is_fine() {
    let (rt, f) = fixture(3600);
    let client = client(&f);
    let url = f.url("/api/things");
    rt.block_on(async move {
        // Would block the runtime's thread (tokio would panic): a typed error instead.
        let err = client.get(url).send().unwrap_err();
        assert!(matches!(err, Error::BlockingInRuntime), "{err:?}");
        assert!(matches!(
            client.access_token().unwrap_err(),
            Error::BlockingInRuntime
        ));
        // The last clone dropped inside a runtime: its runtime is shut down without blocking.
        drop(client);
    });
    assert_eq!(f.state.api_requests(), 0);
}

#[test]
fn proactive_refresh_runs_on_the_clients_runtime() {
    // Tokens of 2 s are refreshed at 1 s by the background task, with no request in between.
    let (_rt, f) = fixture(2);
    let client = Client::builder(f.config().build().unwrap())
        .proactive_refresh(true)
        .build()
        .unwrap();
    assert_eq!(client.access_token().unwrap().secret(), "tok-1");
    // The refresh is the background task's: reading the token never fetches one (it is
    // served while due, and during the refresh), so tok-2 can only come from that task.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client.access_token().unwrap().secret() == "tok-1" {
        assert!(
            std::time::Instant::now() < deadline,
            "no background refresh"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(f.state.token_requests() >= 2);
    assert_eq!(f.state.api_requests(), 0);
}
