//! The session client against a real HTTP server on loopback.

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use alf_reqwest::{Client, Error};
use common::{Fixture, Reply, serve};

fn ms(n: u64) -> alf::Duration {
    alf::Duration::from_millis(n)
}

/// Retries fast, so that tests stay short.
fn fast_retry() -> alf::RetryPolicy {
    alf::RetryPolicy::DEFAULT
        .backoff_factor(ms(20))
        .jitter(ms(0))
        .backoff_max(ms(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_fetched_once_and_reused_across_requests_and_clones() {
    let fx = Fixture::start(3600).await;
    let client = Client::new(fx.config().build().unwrap());
    for i in 0..10 {
        let r = client
            .get(fx.url(&format!("/api/items/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let clone = client.clone();
    for _ in 0..10 {
        assert_eq!(
            clone.get(fx.url("/api/x")).send().await.unwrap().status(),
            200
        );
        assert_eq!(
            clone
                .clone()
                .post(fx.url("/api/y"))
                .body("b")
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(fx.state.token_requests(), 1);
    assert_eq!(fx.state.api_requests(), 30);
    assert!(fx.state.api_tokens().iter().all(|t| t == "tok-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_request_is_exactly_rfc_6749() {
    let fx = Fixture::start(3600).await;
    let endpoint = fx.url("/token");
    let config = alf::Config::builder(&endpoint, "my client", "s3cr:t+/")
        .scope("read write")
        .param("audience", "https://api.example.com")
        .build()
        .unwrap();
    let client = Client::new(config);
    client.get(fx.url("/api/a")).send().await.unwrap();
    let log = fx.state.token_log.lock().unwrap().clone();
    assert_eq!(log.len(), 1);
    let t = &log[0];
    assert_eq!(t.method, "POST");
    assert_eq!(t.path, "/token");
    assert_eq!(
        t.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(t.header("accept"), Some("application/json"));
    // base64("my%20client:s3cr%3At%2B%2F"): id and secret percent-encoded before Basic.
    assert_eq!(
        t.header("authorization"),
        Some("Basic bXklMjBjbGllbnQ6czNjciUzQXQlMkIlMkY=")
    );
    assert_eq!(
        t.body_str(),
        "grant_type=client_credentials&scope=read%20write&audience=https%3A%2F%2Fapi.example.com"
    );
    assert_eq!(
        t.header("content-length"),
        Some(t.body.len().to_string().as_str())
    );
    // And the resource request got exactly the bearer token.
    let api = fx.state.api_log.lock().unwrap().clone();
    assert_eq!(api[0].header("authorization"), Some("Bearer tok-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_puts_the_credentials_in_the_body() {
    let fx = Fixture::start(3600).await;
    let config = fx
        .config()
        .client_auth(alf::ClientAuth::Post)
        .build()
        .unwrap();
    Client::new(config)
        .get(fx.url("/api/a"))
        .send()
        .await
        .unwrap();
    let t = fx.state.token_log.lock().unwrap()[0].clone();
    assert_eq!(t.header("authorization"), None);
    assert_eq!(
        t.body_str(),
        "grant_type=client_credentials&client_id=client&client_secret=secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_before_expiry_and_never_sent_expired() {
    // expires_in 2 s: refresh due after 1 s (the margin is capped at half the lifetime).
    let fx = Fixture::start(2).await;
    let client = Client::new(fx.config().build().unwrap());
    let get = || client.get(fx.url("/api/r")).send();
    assert_eq!(get().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(fx.state.token_requests(), 1, "still fresh: reused");
    tokio::time::sleep(Duration::from_millis(1000)).await; // ~1.3 s: refresh due, not expired
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(fx.state.token_requests(), 2, "refreshed before expiry");
    tokio::time::sleep(Duration::from_millis(2100)).await; // tok-2 has expired
    assert_eq!(get().await.unwrap().status(), 200);
    assert_eq!(fx.state.token_requests(), 3);
    assert_eq!(fx.state.api_tokens(), ["tok-1", "tok-1", "tok-2", "tok-3"]);
    assert_eq!(fx.state.expired_seen.load(SeqCst), 0);
    assert_eq!(fx.state.api_401.load(SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_is_replayed_once_with_a_new_token_and_the_same_body() {
    let fx = Fixture::start(3600).await;
    let client = Client::new(fx.config().build().unwrap());
    fx.state.revoke_next.store(true, SeqCst);
    let r = client
        .put(fx.url("/api/things/1"))
        .header("content-type", "application/json")
        .body(r#"{"name": "alf"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        r#"PUT /api/things/1 {"name": "alf"}"#
    );
    assert_eq!(fx.state.token_requests(), 2);
    assert_eq!(fx.state.api_tokens(), ["tok-1", "tok-2"]);
    let api = fx.state.api_log.lock().unwrap().clone();
    assert_eq!(api[0].body, api[1].body);
    assert_eq!(api[1].header("content-type"), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_forever_is_replayed_exactly_once_then_returned() {
    let fx = Fixture::start(3600).await;
    fx.state.reject_all.store(true, SeqCst);
    let client = Client::new(fx.config().build().unwrap());
    let r = client.get(fx.url("/api/no")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(fx.state.api_requests(), 2);
    assert_eq!(fx.state.token_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_scope_is_not_replayed() {
    let addr = serve(|req| {
        if req.path == "/token" {
            Reply::json(200, r#"{"access_token":"t","expires_in":3600}"#)
        } else {
            Reply::new(401).header("www-authenticate", r#"Bearer error="insufficient_scope""#)
        }
    })
    .await;
    let endpoint = format!("http://{addr}/token");
    let client = Client::new(alf::Config::builder(&endpoint, "c", "s").build().unwrap());
    let r = client
        .get(format!("http://{addr}/api"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The token was not dropped: the next request reuses it.
    client
        .get(format!("http://{addr}/api"))
        .send()
        .await
        .unwrap();
    assert_eq!(client.core().state_kind(), alf::StateKind::Valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_body_is_not_replayed_but_the_token_is_dropped() {
    let fx = Fixture::start(3600).await;
    let client = Client::new(fx.config().build().unwrap());
    fx.state.revoke_next.store(true, SeqCst);
    let body = reqwest::Body::wrap(String::from("streamed"));
    let r = client
        .post(fx.url("/api/upload"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(fx.state.api_requests(), 1);
    assert_eq!(fx.state.api_log.lock().unwrap()[0].body_str(), "streamed");
    // The rejected token is gone: the next request gets a new one and succeeds.
    assert_eq!(
        client.get(fx.url("/api/a")).send().await.unwrap().status(),
        200
    );
    assert_eq!(fx.state.api_tokens(), ["tok-1", "tok-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_401s_cause_one_token_fetch() {
    let fx = Fixture::start(3600).await;
    let client = Client::new(fx.config().build().unwrap());
    client.get(fx.url("/api/warm")).send().await.unwrap();
    fx.state.revoked.lock().unwrap().push("tok-1".into());
    fx.state.token_delay_ms.store(100, SeqCst);
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
    assert_eq!(fx.state.token_requests(), 2, "one fetch for all the 401s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tasks_at_cold_start_share_one_token_request() {
    let fx = Fixture::start(3600).await;
    fx.state.token_delay_ms.store(200, SeqCst);
    let client = Client::new(fx.config().build().unwrap());
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let c = client.clone();
            let url = fx.url(&format!("/api/cold/{i}"));
            tokio::spawn(async move { c.get(url).send().await.unwrap().status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(fx.state.token_requests(), 1);
    assert_eq!(fx.state.api_requests(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_client_is_a_typed_error_and_the_api_is_never_called() {
    let fx = Fixture::start(3600).await;
    fx.state.script(
        Reply::json(
            401,
            r#"{"error":"invalid_client","error_description":"unknown client"}"#,
        )
        .header("www-authenticate", "Basic"),
    );
    let client = Client::builder(fx.config().retry_policy(fast_retry()).build().unwrap())
        .build()
        .unwrap();
    let err = client.get(fx.url("/api/a")).send().await.unwrap_err();
    let Error::Token(alf::Error::TokenEndpoint(e)) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.status, 401);
    assert_eq!(e.code, Some(alf::OAuthErrorCode::InvalidClient));
    assert_eq!(e.description.as_deref(), Some("unknown client"));
    assert!(err.is_token());
    assert_eq!(
        fx.state.token_requests(),
        1,
        "credential errors are not retried"
    );
    assert_eq!(fx.state.api_requests(), 0, "no token, no request");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("secret\"") && !shown.contains("Basic "),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_then_the_token_is_used() {
    let fx = Fixture::start(3600).await;
    fx.state.script(Reply::new(503));
    let client = Client::new(fx.config().retry_policy(fast_retry()).build().unwrap());
    let r = client.get(fx.url("/api/a")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(fx.state.token_requests(), 2);
    assert_eq!(fx.state.api_tokens(), ["tok-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_the_token_endpoint_is_not_followed() {
    let fx = Fixture::start(3600).await;
    fx.state
        .script(Reply::new(302).header("location", "/elsewhere"));
    let client = Client::new(fx.config().retry_policy(fast_retry()).build().unwrap());
    let err = client.get(fx.url("/api/a")).send().await.unwrap_err();
    let Error::Token(alf::Error::TokenEndpoint(e)) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.status, 302);
    assert_eq!(fx.state.token_requests(), 1);
    assert!(
        fx.state.other_log.lock().unwrap().is_empty(),
        "redirect followed"
    );
    assert_eq!(fx.state.api_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_response_larger_than_the_buffer_is_a_typed_error() {
    let fx = Fixture::start(3600).await;
    let big = format!(r#"{{"access_token":"t","pad":"{}"}}"#, "x".repeat(5000));
    fx.state.script(Reply::json(200, &big));
    fx.state.script(Reply::json(200, &big).chunked());
    let client = Client::new(fx.config().retry_policy(fast_retry()).build().unwrap());
    for _ in 0..2 {
        let err = client.get(fx.url("/api/a")).send().await.unwrap_err();
        let Error::Token(alf::Error::Transport(e)) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            embedded_io::Error::kind(e),
            embedded_io::ErrorKind::OutOfMemory
        );
    }
    assert_eq!(fx.state.token_requests(), 2, "not retried");
    assert_eq!(fx.state.api_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_header_of_your_own_is_refused_not_overwritten() {
    let fx = Fixture::start(3600).await;
    let client = Client::new(fx.config().build().unwrap());
    let err = client
        .get(fx.url("/api/a"))
        .header("Authorization", "Bearer mine")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Request(alf::RequestError::AuthorizationHeaderPresent)
        ),
        "{err:?}"
    );
    assert_eq!(fx.state.token_requests(), 0);
    assert_eq!(fx.state.api_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_origin_is_not_followed() {
    let other = Fixture::start(3600).await; // another port: another origin
    let target = other.url("/api/stolen");
    let addr = serve(move |req| match req.path.as_str() {
        "/token" => Reply::json(200, r#"{"access_token":"t-1","expires_in":3600}"#),
        "/away" => Reply::new(302).header("location", &target),
        _ => Reply::new(404),
    })
    .await;
    let endpoint = format!("http://{addr}/token");
    let client = Client::new(alf::Config::builder(&endpoint, "c", "s").build().unwrap());
    let r = client
        .get(format!("http://{addr}/away"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the redirect is handed back");
    assert_eq!(r.headers()["location"], other.url("/api/stolen").as_str());
    assert_eq!(
        other.state.api_requests(),
        0,
        "the other origin saw nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_origin_redirects_are_followed_with_the_token() {
    let addr = serve(|req| match req.path.as_str() {
        "/token" => Reply::json(200, r#"{"access_token":"t-1","expires_in":3600}"#),
        "/old" => Reply::new(307).header("location", "/new"),
        "/new" if req.bearer() == Some("t-1") => Reply::new(200).body("moved here"),
        _ => Reply::new(401),
    })
    .await;
    let endpoint = format!("http://{addr}/token");
    let client = Client::new(alf::Config::builder(&endpoint, "c", "s").build().unwrap());
    let r = client
        .get(format!("http://{addr}/old"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "moved here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_futures_can_be_spawned() {
    fn assert_send<T: Send + 'static>(t: T) -> T {
        t
    }
    let fx = Fixture::start(3600).await;
    let client = Client::new(fx.config().build().unwrap());
    let fut = assert_send(client.get(fx.url("/api/spawned")).send());
    let r = tokio::spawn(fut).await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let c = client.clone();
    let token = tokio::spawn(async move { c.access_token().await.map(|t| t.secret().len()) });
    assert_eq!(token.await.unwrap().unwrap(), "tok-1".len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proactive_refresh_fetches_ahead_and_stops_with_the_last_clone() {
    let fx = Fixture::start(1).await;
    let client = Client::builder(fx.config().build().unwrap())
        .proactive_refresh(true)
        .build()
        .unwrap();
    let clone = client.clone();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        fx.state.token_requests(),
        1,
        "fetched at start, before any request"
    );
    // Refreshes every ~0.5 s without any request.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let n = fx.state.token_requests();
    assert!((2..=4).contains(&n), "{n} token requests");
    // Requests never wait for the token endpoint and never see an expired token.
    assert_eq!(
        clone.get(fx.url("/api/a")).send().await.unwrap().status(),
        200
    );
    drop(client);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        fx.state.token_requests() > n,
        "one clone left: still refreshing"
    );
    drop(clone);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after_drop = fx.state.token_requests();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        fx.state.token_requests(),
        after_drop,
        "the task stopped with the last clone"
    );
    assert_eq!(fx.state.expired_seen.load(SeqCst), 0);
}

#[test]
fn proactive_refresh_outside_a_runtime_is_an_error() {
    let config = alf::Config::builder("http://127.0.0.1:9/token", "c", "s")
        .build()
        .unwrap();
    let err = Client::builder(config)
        .proactive_refresh(true)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::NoRuntime), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_refused_connections_are_typed() {
    // A token endpoint that answers too late.
    let fx = Fixture::start(3600).await;
    fx.state.token_delay_ms.store(2000, SeqCst);
    let config = fx
        .config()
        .retry_policy(alf::RetryPolicy::NONE)
        .build()
        .unwrap();
    let client = Client::builder(config)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = client.get(fx.url("/api/a")).send().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert!(err.is_timeout(), "{err:?}");
    let Error::Token(alf::Error::Transport(e)) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        embedded_io::Error::kind(e),
        embedded_io::ErrorKind::TimedOut
    );

    // Nobody listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}/token");
    let config = alf::Config::builder(&endpoint, "c", "s")
        .retry_policy(alf::RetryPolicy::NONE)
        .build()
        .unwrap();
    let err = Client::new(config)
        .get(fx.url("/api/a"))
        .send()
        .await
        .unwrap_err();
    let Error::Token(alf::Error::Transport(e)) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        embedded_io::Error::kind(e),
        embedded_io::ErrorKind::ConnectionRefused
    );
    assert_eq!(fx.state.api_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_request_failures_are_http_errors() {
    let fx = Fixture::start(3600).await;
    let client = Client::new(fx.config().build().unwrap());
    let err = client.get("not a url").send().await.unwrap_err();
    assert!(
        matches!(err, Error::Http(ref e) if e.is_builder()),
        "{err:?}"
    );
    assert_eq!(fx.state.token_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_form_and_json_bodies() {
    let fx = Fixture::start(3600).await;
    let client = Client::new(fx.config().build().unwrap());
    let r = client
        .get(fx.url("/api/q"))
        .query(&[("a", "1 2"), ("b", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "GET /api/q?a=1+2&b=x ");
    let r = client
        .post(fx.url("/api/f"))
        .form(&[("k", "v&w")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "POST /api/f k=v%26w");
    let log = fx.state.api_log.lock().unwrap().clone();
    assert_eq!(
        log[1].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    #[cfg(feature = "json")]
    {
        #[derive(serde::Serialize)]
        struct Item<'a> {
            name: &'a str,
            n: u32,
        }
        let r = client
            .patch(fx.url("/api/j"))
            .json(&Item { name: "alf", n: 7 })
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.text().await.unwrap(),
            r#"PATCH /api/j {"name":"alf","n":7}"#
        );
        let log = fx.state.api_log.lock().unwrap().clone();
        assert_eq!(log[2].header("content-type"), Some("application/json"));
    }
    for method in ["DELETE", "HEAD"] {
        let b = if method == "DELETE" {
            client.delete(fx.url("/api/d"))
        } else {
            client.head(fx.url("/api/d"))
        };
        assert_eq!(b.send().await.unwrap().status(), 200);
    }
    assert_eq!(fx.state.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_and_display_never_show_secrets_or_tokens() {
    let fx = Fixture::start(3600).await;
    let endpoint = fx.url("/token");
    let config = alf::Config::builder(&endpoint, "client", "hunter2-secret")
        .build()
        .unwrap();
    let client = Client::new(config);
    client.get(fx.url("/api/a")).send().await.unwrap();
    let token = client.access_token().await.unwrap();
    let builder = client.get(fx.url("/api/a")).header("x-api-key", "key-123");
    let shown = format!("{client:?} {token:?} {token} {builder:?}");
    for secret in ["hunter2-secret", "tok-1", "key-123", "Basic "] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}
