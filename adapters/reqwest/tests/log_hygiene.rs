//! Secret hygiene: with every log line captured at TRACE (alf's own, reqwest's through `log`,
//! hyper-util's and the others' `tracing` events forwarded to `log`), a representative set of
//! flows through the session client never logs the client secret, an issued access token, or
//! an `Authorization` value; nor do the `Debug` and `Display` of the errors those flows return,
//! of the clients, of the configuration and of leases.
//!
//! Everything runs in one test function: the logger is global to this test binary.

mod common;
mod support;

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alf_redis::RedisStore;
use alf_reqwest::{Client, Error};
use common::{Reply, Req, serve};
use support::{Server, free_port};

const SECRET: &str = "hygiene-S3cret-7d41c0";
const CLIENT_ID: &str = "hygiene-client";
/// A caller's own `Authorization` value, which the client refuses to overwrite.
const OWN_AUTHORIZATION: &str = "Bearer callers-own-0b7e5a";

/// Every log record, formatted as `LEVEL target: message`.
struct Capture {
    lines: Mutex<Vec<String>>,
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        self.lines.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture {
    lines: Mutex::new(Vec::new()),
};

/// A token endpoint issuing random tokens, and an API that accepts them.
#[derive(Default)]
struct Auth {
    /// `expires_in` of issued tokens, seconds.
    lifetime: AtomicU64,
    /// Canned answers for the next token requests.
    script: Mutex<VecDeque<Reply>>,
    /// Answer the next token requests 401 `invalid_client`, with an `error_description` that
    /// echoes the secret and the `Authorization` value received.
    echo_invalid_client: AtomicUsize,
    /// Every token issued.
    issued: Mutex<Vec<String>>,
    /// Every `Authorization` value received, on the token endpoint and the API.
    authorizations: Mutex<Vec<String>>,
    /// Reject the token of the next API request (one injected 401).
    revoke_next: AtomicBool,
    revoked: Mutex<Vec<String>>,
    token_requests: AtomicUsize,
    random: RandomState,
}

impl Auth {
    fn handle(&self, req: &Req) -> Reply {
        if let Some(a) = req.header("authorization") {
            self.authorizations.lock().unwrap().push(a.to_owned());
        }
        if req.path == "/token" {
            let n = self.token_requests.fetch_add(1, SeqCst);
            if self
                .echo_invalid_client
                .fetch_update(SeqCst, SeqCst, |k| k.checked_sub(1))
                .is_ok()
            {
                let got = req.header("authorization").unwrap_or("-");
                let body = format!(
                    r#"{{"error":"invalid_client","error_description":"secret {SECRET} rejected (Authorization: {got})"}}"#
                );
                return Reply::json(401, &body);
            }
            if let Some(reply) = self.script.lock().unwrap().pop_front() {
                return reply;
            }
            let token = format!(
                "at-{:016x}{:016x}",
                self.random.hash_one(n),
                self.random.hash_one(n + 1_000_000)
            );
            self.issued.lock().unwrap().push(token.clone());
            let body = format!(
                r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                self.lifetime.load(SeqCst)
            );
            return Reply::json(200, &body);
        }
        let token = req.bearer().unwrap_or_default().to_owned();
        if self.revoke_next.swap(false, SeqCst) {
            self.revoked.lock().unwrap().push(token.clone());
        }
        let known = self.issued.lock().unwrap().contains(&token);
        if !known || self.revoked.lock().unwrap().contains(&token) {
            return Reply::new(401).header("www-authenticate", r#"Bearer error="invalid_token""#);
        }
        Reply::new(200).body("ok")
    }
}

fn ms(n: u64) -> alf::Duration {
    alf::Duration::from_millis(n)
}

fn config(endpoint: &str) -> alf::Config {
    alf::Config::builder(endpoint, CLIENT_ID, SECRET)
        .scope("orders:read")
        .retry_policy(
            alf::RetryPolicy::DEFAULT
                .total(2)
                .backoff_factor(ms(20))
                .jitter(ms(0))
                .backoff_max(ms(200)),
        )
        .build()
        .unwrap()
}

/// The `Debug` and `Display` of everything worth checking.
#[derive(Default)]
struct Shown(Vec<String>);

impl Shown {
    fn error(&mut self, e: &Error) {
        self.0.push(format!("{e:?}"));
        self.0.push(format!("{e}"));
        let mut source = core::error::Error::source(e);
        while let Some(s) = source {
            self.0.push(format!("{s:?}"));
            self.0.push(format!("{s}"));
            source = s.source();
        }
    }
    fn debug(&mut self, v: &dyn core::fmt::Debug) {
        self.0.push(format!("{v:?}"));
    }
}

/// The lines that contain one of `forbidden`.
fn leaks<'a>(lines: &'a [String], forbidden: &[String]) -> Vec<(&'a str, String)> {
    let mut found = Vec::new();
    for line in lines {
        for f in forbidden {
            if line.contains(f.as_str()) {
                found.push((line.as_str(), f.clone()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_token_or_authorization_value_in_logs_errors_or_debug_output() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    let auth = Arc::new(Auth::default());
    auth.lifetime.store(3600, SeqCst);
    let handler = Arc::clone(&auth);
    let addr = serve(move |req| handler.handle(req)).await;
    let url = |path: &str| format!("http://{addr}{path}");
    let endpoint = url("/token");
    let mut shown = Shown::default();
    let ok = |r: Result<alf_reqwest::reqwest::Response, Error>| {
        let r = r.unwrap();
        assert_eq!(r.status(), 200);
    };

    // Fetch, then reuse.
    let client = Client::new(config(&endpoint));
    for _ in 0..3 {
        ok(client.get(url("/api/a")).send().await);
    }
    let lease = client.core().token().await.unwrap();
    shown.debug(&lease);
    shown.0.push(format!("{}", lease.token));
    shown.debug(&client);
    shown.debug(client.core().config());
    shown.debug(&config(&endpoint));
    shown.debug(&client.get(url("/api/a")));

    // A 401 from the API: the token is dropped and the request replayed with a new one.
    auth.revoke_next.store(true, SeqCst);
    ok(client.post(url("/api/b")).body("payload").send().await);

    // Refresh with a short lifetime.
    auth.lifetime.store(2, SeqCst);
    let short = Client::new(config(&endpoint));
    ok(short.get(url("/api/c")).send().await);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    ok(short.get(url("/api/c")).send().await);
    shown.debug(&short);
    auth.lifetime.store(3600, SeqCst);

    // The token endpoint answers 401 invalid_client and echoes the secret.
    auth.echo_invalid_client.store(1, SeqCst);
    let refused = Client::new(config(&endpoint));
    let e = refused.get(url("/api/d")).send().await.unwrap_err();
    assert!(
        matches!(
            e.token_error(),
            Some(alf::Error::TokenEndpoint(t)) if t.status == 401
        ),
        "{e:?}"
    );
    shown.error(&e);

    // 503s are retried, then the token is used; 503s past the retry budget are an error.
    auth.script.lock().unwrap().extend([
        Reply::new(503).header("retry-after", "0"),
        Reply::json(503, r#"{"error":"temporarily_unavailable"}"#),
    ]);
    let retried = Client::new(config(&endpoint));
    ok(retried.get(url("/api/e")).send().await);
    auth.script
        .lock()
        .unwrap()
        .extend((0..3).map(|_| Reply::new(503)));
    let unavailable = Client::new(config(&endpoint));
    let e = unavailable.get(url("/api/e")).send().await.unwrap_err();
    assert!(e.is_token(), "{e:?}");
    shown.error(&e);

    // A token endpoint nobody listens on; an API nobody listens on; a request of the
    // caller's own with an `Authorization` header.
    let dead = format!("http://127.0.0.1:{}/token", free_port());
    let e = Client::new(config(&dead))
        .get(url("/api/f"))
        .send()
        .await
        .unwrap_err();
    shown.error(&e);
    let e = client
        .get(format!("http://127.0.0.1:{}/api/g", free_port()))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Http(_)), "{e:?}");
    shown.error(&e);
    let e = client
        .get(url("/api/h"))
        .header("authorization", OWN_AUTHORIZATION)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Request(_)), "{e:?}");
    shown.error(&e);

    // Through a store: one client saves, another loads, a third refreshes in the background,
    // a fourth has a store that is down.
    let redis = Server::redis();
    let stored = |proactive: bool| {
        Client::builder(config(&endpoint))
            .store(RedisStore::new(&redis.redis_url()).unwrap())
            .proactive_refresh(proactive)
            .build()
            .unwrap()
    };
    let saving = stored(false);
    ok(saving.get(url("/api/i")).send().await);
    let before = auth.token_requests.load(SeqCst);
    let loading = stored(false);
    ok(loading.get(url("/api/i")).send().await);
    assert_eq!(
        auth.token_requests.load(SeqCst),
        before,
        "loaded from Redis"
    );
    auth.lifetime.store(2, SeqCst);
    loading.core().forget_token().await;
    let refreshing = stored(true);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    ok(refreshing.get(url("/api/j")).send().await);
    shown.debug(&refreshing);
    drop(refreshing);
    auth.lifetime.store(3600, SeqCst);
    let down = Client::builder(config(&endpoint))
        .store(
            RedisStore::new(&format!("redis://127.0.0.1:{}/", free_port()))
                .unwrap()
                .with_timeout(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    ok(down.get(url("/api/k")).send().await);
    shown.debug(&down);
    let lease = down.core().token().await.unwrap();
    shown.debug(&lease);

    // Let the background work finish writing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    log::set_max_level(log::LevelFilter::Off);
    let lines = CAPTURE.lines.lock().unwrap().clone();

    let mut forbidden = vec![SECRET.to_owned(), OWN_AUTHORIZATION.to_owned()];
    let issued = auth.issued.lock().unwrap().clone();
    let authorizations = auth.authorizations.lock().unwrap().clone();
    assert!(issued.len() >= 6, "{issued:?}");
    assert!(
        authorizations.iter().any(|a| a.starts_with("Basic ")),
        "{authorizations:?}"
    );
    assert!(authorizations.iter().any(|a| a.starts_with("Bearer ")));
    forbidden.extend(issued.iter().cloned());
    for a in &authorizations {
        forbidden.push(a.clone());
        // The credentials alone, without the scheme.
        if let Some((_, credentials)) = a.split_once(' ') {
            forbidden.push(credentials.to_owned());
        }
    }

    // The capture works and covers alf's own lines (the `log` feature) and reqwest's.
    assert!(!lines.is_empty());
    assert!(
        lines.iter().any(|l| l.contains(" alf")),
        "no line from alf: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("alf: using the token from the store")),
        "no store load: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("alf: token store")),
        "no store warning: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(" hyper_util")),
        "no line from hyper-util (tracing through log): {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(" reqwest")),
        "no line from reqwest: {lines:#?}"
    );
    // And the check finds a leak when there is one.
    let planted = [format!("INFO x: sent Bearer {}", issued[0])];
    assert!(!leaks(&planted, &forbidden).is_empty());

    let leaked = leaks(&lines, &forbidden);
    assert!(leaked.is_empty(), "secrets in log lines: {leaked:#?}");
    let leaked = leaks(&shown.0, &forbidden);
    assert!(
        leaked.is_empty(),
        "secrets in Debug/Display output: {leaked:#?}"
    );
    assert!(shown.0.len() > 20);
}
