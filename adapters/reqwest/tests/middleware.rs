//! `AlfMiddleware` in a reqwest-middleware stack, against a real HTTP server on loopback.

mod common;
#[cfg(all(feature = "redis", feature = "memcached"))]
mod support;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};

use alf_reqwest::middleware::BoxFuture;
use alf_reqwest::{Client, Error};
use common::{Fixture, Reply};
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};

/// What a [`Recorder`] saw: one entry per request that went through it, with the
/// `Authorization` header it had (if any) and the status that came back (0 for an error).
#[derive(Debug, Clone, Default)]
struct Seen(Arc<Mutex<Vec<Call>>>);

/// The `Authorization` header a request had, and the status of its response.
type Call = (Option<String>, u16);

impl Seen {
    fn calls(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn all(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }
}

/// A test middleware that records what goes through it and passes everything on.
struct Recorder(Seen);

impl Middleware for Recorder {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> BoxFuture<'async_trait, reqwest_middleware::Result<Response>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let auth = req
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string());
            let result = next.run(req, extensions).await;
            let status = result.as_ref().map_or(0, |r| r.status().as_u16());
            self.0.0.lock().unwrap().push((auth, status));
            result
        })
    }
}

/// `outer` → alf → `inner` → reqwest.
fn stack(alf: &Client) -> (ClientWithMiddleware, Seen, Seen) {
    let (outer, inner) = (Seen::default(), Seen::default());
    let http = reqwest::Client::builder()
        .redirect(alf_reqwest::same_origin_redirects())
        .build()
        .unwrap();
    let http = ClientBuilder::new(http)
        .with(Recorder(outer.clone()))
        .with(alf.middleware())
        .with(Recorder(inner.clone()))
        .build();
    (http, outer, inner)
}

fn bearer(t: &str) -> Option<String> {
    Some(format!("Bearer {t}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_fetched_once_and_reused_and_shared_with_the_client() {
    let fx = Fixture::start(3600).await;
    let alf = Client::new(fx.config().build().unwrap());
    let (http, outer, inner) = stack(&alf);
    for i in 0..5 {
        let r = http
            .get(fx.url(&format!("/api/items/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // A second middleware and the client itself share the cache.
    let other = ClientBuilder::new(reqwest::Client::new())
        .with(alf_reqwest::AlfMiddleware::new(&alf))
        .build();
    assert_eq!(
        other.get(fx.url("/api/x")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        alf.get(fx.url("/api/y")).send().await.unwrap().status(),
        200
    );

    assert_eq!(fx.state.token_requests(), 1);
    assert_eq!(fx.state.api_requests(), 7);
    assert!(fx.state.api_tokens().iter().all(|t| t == "tok-1"));
    // The middleware before alf sees requests without the header, the one after with it.
    assert_eq!(outer.all(), vec![(None, 200); 5]);
    assert_eq!(inner.all(), vec![(bearer("tok-1"), 200); 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_is_replayed_once_through_the_rest_of_the_stack_with_a_new_token() {
    let fx = Fixture::start(3600).await;
    let alf = Client::new(fx.config().build().unwrap());
    let (http, outer, inner) = stack(&alf);
    http.get(fx.url("/api/warm")).send().await.unwrap();
    fx.state.revoke_next.store(true, SeqCst);
    let r = http
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
    assert_eq!(fx.state.api_tokens(), ["tok-1", "tok-1", "tok-2"]);
    let api = fx.state.api_log.lock().unwrap().clone();
    assert_eq!(api[1].body, api[2].body);
    assert_eq!(api[2].header("content-type"), Some("application/json"));
    // One call from outside; the replay went through the inner middleware again.
    assert_eq!(outer.all(), [(None, 200), (None, 200)]);
    assert_eq!(
        inner.all(),
        [
            (bearer("tok-1"), 200),
            (bearer("tok-1"), 401),
            (bearer("tok-2"), 200)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_forever_is_replayed_exactly_once_then_returned() {
    let fx = Fixture::start(3600).await;
    fx.state.reject_all.store(true, SeqCst);
    let alf = Client::new(fx.config().build().unwrap());
    let (http, outer, inner) = stack(&alf);
    let r = http.get(fx.url("/api/no")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(fx.state.api_requests(), 2);
    assert_eq!(fx.state.token_requests(), 2);
    assert_eq!(outer.calls(), 1);
    assert_eq!(inner.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_client_is_a_middleware_error_that_downcasts_and_nothing_is_sent() {
    let fx = Fixture::start(3600).await;
    fx.state.script(
        Reply::json(
            401,
            r#"{"error":"invalid_client","error_description":"unknown client"}"#,
        )
        .header("www-authenticate", "Basic"),
    );
    let alf = Client::new(fx.config().build().unwrap());
    let (http, outer, inner) = stack(&alf);
    let err = http.get(fx.url("/api/a")).send().await.unwrap_err();
    assert!(err.is_middleware());
    let reqwest_middleware::Error::Middleware(e) = &err else {
        panic!("{err:?}")
    };
    let Some(Error::Token(alf::Error::TokenEndpoint(t))) = e.downcast_ref::<Error>() else {
        panic!("{e:?}")
    };
    assert_eq!(t.status, 401);
    assert_eq!(t.code, Some(alf::OAuthErrorCode::InvalidClient));
    assert_eq!(t.description.as_deref(), Some("unknown client"));
    assert!(e.downcast_ref::<Error>().unwrap().is_token());
    assert_eq!(fx.state.token_requests(), 1);
    assert_eq!(fx.state.api_requests(), 0, "no token, no request");
    assert_eq!(outer.all(), [(None, 0)]);
    assert_eq!(inner.calls(), 0, "the rest of the stack did not run");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("secret\"") && !shown.contains("Basic "),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_header_of_your_own_is_refused() {
    let fx = Fixture::start(3600).await;
    let alf = Client::new(fx.config().build().unwrap());
    let (http, _outer, inner) = stack(&alf);
    let err = http
        .get(fx.url("/api/a"))
        .header("authorization", "Bearer mine")
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(e) = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(
            e.downcast_ref::<Error>(),
            Some(Error::Request(
                alf::RequestError::AuthorizationHeaderPresent
            ))
        ),
        "{e:?}"
    );
    assert_eq!(fx.state.token_requests(), 0);
    assert_eq!(fx.state.api_requests(), 0);
    assert_eq!(inner.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_body_is_not_replayed_but_the_token_is_dropped() {
    let fx = Fixture::start(3600).await;
    let alf = Client::new(fx.config().build().unwrap());
    let (http, _outer, inner) = stack(&alf);
    fx.state.revoke_next.store(true, SeqCst);
    let body = reqwest::Body::wrap(String::from("streamed"));
    let r = http
        .post(fx.url("/api/upload"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(fx.state.api_requests(), 1);
    assert_eq!(fx.state.api_log.lock().unwrap()[0].body_str(), "streamed");
    assert_eq!(inner.all(), [(bearer("tok-1"), 401)]);
    // The rejected token is gone: the next request gets a new one and succeeds.
    assert_eq!(
        http.get(fx.url("/api/a")).send().await.unwrap().status(),
        200
    );
    assert_eq!(fx.state.api_tokens(), ["tok-1", "tok-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_scope_is_not_replayed() {
    let addr = common::serve(|req| {
        if req.path == "/token" {
            Reply::json(200, r#"{"access_token":"t","expires_in":3600}"#)
        } else {
            Reply::new(401).header("www-authenticate", r#"Bearer error="insufficient_scope""#)
        }
    })
    .await;
    let endpoint = format!("http://{addr}/token");
    let alf = Client::new(alf::Config::builder(&endpoint, "c", "s").build().unwrap());
    let (http, _outer, inner) = stack(&alf);
    let r = http.get(format!("http://{addr}/api")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(inner.calls(), 1);
    assert_eq!(alf.core().state_kind(), alf::StateKind::Valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_store_client_works_as_middleware_and_futures_are_send() {
    let fx = Fixture::start(3600).await;
    let alf = Client::builder(fx.config().build().unwrap())
        .store(alf::MemoryStore::<2048>::new())
        .build()
        .unwrap();
    let http = ClientBuilder::new(reqwest::Client::new())
        .with(alf.middleware())
        .build();
    let url = fx.url("/api/a");
    let status = tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(fx.state.token_requests(), 1);
}

/// Two services (two `alf_reqwest::Client`s with their middleware stacks) sharing one Redis
/// and one Memcached make one token request each store, not one per service.
#[cfg(all(feature = "redis", feature = "memcached"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_shares_the_token_through_redis_and_memcached() {
    use alf_memcached::MemcachedStore;
    use alf_redis::RedisStore;
    use support::Server;

    let redis = Server::redis();
    let fx = Fixture::start(3600).await;
    let redis_client = || {
        Client::builder(fx.config().build().unwrap())
            .store(RedisStore::new(&redis.redis_url()).unwrap())
            .build()
            .unwrap()
    };
    for client in [redis_client(), redis_client()] {
        let http = ClientBuilder::new(reqwest::Client::new())
            .with(client.middleware())
            .build();
        assert_eq!(
            http.get(fx.url("/api/r")).send().await.unwrap().status(),
            200
        );
    }
    assert_eq!(fx.state.token_requests(), 1);

    let memcached = Server::memcached();
    let fx = Fixture::start(3600).await;
    let memcached_client = || {
        Client::builder(fx.config().build().unwrap())
            .store(MemcachedStore::new(memcached.addr()))
            .build()
            .unwrap()
    };
    for client in [memcached_client(), memcached_client()] {
        let http = ClientBuilder::new(reqwest::Client::new())
            .with(client.middleware())
            .build();
        assert_eq!(
            http.get(fx.url("/api/m")).send().await.unwrap().status(),
            200
        );
    }
    assert_eq!(fx.state.token_requests(), 1);
}
