//! Interoperability with a real, independently written authorization server: Authlib (PyPI)
//! with Flask, started on loopback by each test (`tests/servers/authlib_server.py`).
//!
//! The Python interpreter comes from `ALF_PYTHON` (set by `tests/run.sh`, which installs
//! Authlib and Flask in a venv), else `~/.cache/alf-pyenv/bin/python`, else `python3`. A
//! missing Authlib fails the tests: these are the tests that prove alf works with a server
//! it was not written against.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alf::{ClientAuth, Config, ErrorKind, OAuthErrorCode};
use alf_reqwest::{Client, Error};
use serde::Deserialize;

/// The clients the server knows (see the script): ids and secrets with `: + % & = space`.
const BASIC_ID: &str = "alf basic:+%&=";
const BASIC_SECRET: &str = "p@ss: +%&=word";
const POST_ID: &str = "alf-post";
const POST_SECRET: &str = "post secret+%&=:";

struct Authlib {
    child: Child,
    port: u16,
}

impl Drop for Authlib {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ALF_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/alf-pyenv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

impl Authlib {
    fn start(lifetime_secs: u32) -> Self {
        // This server is Python: its tokens are not observed, the secrets the tests use are.
        for secret in [BASIC_SECRET, POST_SECRET, "wrong secret"] {
            alf_test_hygiene::secret(secret);
        }
        alf_test_hygiene::init();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/servers/authlib_server.py");
        let py = python();
        let mut child = Command::new(&py)
            .arg(&script)
            .args(["--port", "0", "--lifetime", &lifetime_secs.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); run tests/run.sh to install Authlib",
                    py.display()
                )
            });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(port) = line
            .strip_prefix("ALF_AUTHLIB_READY ")
            .and_then(|p| p.trim().parse().ok())
        else {
            let _ = child.kill();
            panic!(
                "the Authlib server did not start with {} (is Authlib installed? run tests/run.sh): {line:?}",
                py.display()
            );
        };
        Self { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn stats(&self) -> Stats {
        reqwest::get(self.url("/_stats"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn revoke_all(&self) {
        reqwest::Client::new()
            .post(self.url("/_revoke_all"))
            .send()
            .await
            .unwrap();
    }
}

#[derive(Debug, Deserialize)]
struct Stats {
    token_requests: u32,
    token_errors: u32,
    resource_requests: u32,
    resource_401: u32,
    last_form: LastForm,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LastForm {
    grant_type: Option<String>,
    scope: Option<String>,
    audience: Vec<String>,
    resource: Vec<String>,
    content_type: Option<String>,
    auth: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Resource {
    client_id: String,
    scope: String,
    body: String,
}

fn no_retry() -> alf::RetryPolicy {
    alf::RetryPolicy::NONE
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_with_reserved_characters_scope_audience_and_resources() {
    let server = Authlib::start(3600);
    let endpoint = server.url("/oauth/token");
    let config = Config::builder(&endpoint, BASIC_ID, BASIC_SECRET)
        .scope("read write")
        .param("audience", "https://api.example.com")
        .param("resource", "urn:alf:a")
        .param("resource", "urn:alf:b")
        .retry_policy(no_retry())
        .build()
        .unwrap();
    let client = Client::new(config);
    for i in 0..5 {
        let r = client
            .post(server.url("/api/resource"))
            .body(format!("n={i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Resource = r.json().await.unwrap();
        assert_eq!(body.client_id, BASIC_ID);
        assert_eq!(body.scope, "read write");
        assert_eq!(body.body, format!("n={i}"));
    }
    let stats = server.stats().await;
    assert_eq!(stats.token_requests, 1, "one token for five requests");
    assert_eq!(stats.resource_requests, 5);
    let form = stats.last_form;
    assert_eq!(form.grant_type.as_deref(), Some("client_credentials"));
    assert_eq!(form.scope.as_deref(), Some("read write"));
    assert_eq!(form.audience, ["https://api.example.com"]);
    assert_eq!(form.resource, ["urn:alf:a", "urn:alf:b"]);
    assert_eq!(
        form.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(form.auth.as_deref(), Some("basic"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_with_reserved_characters() {
    let server = Authlib::start(3600);
    let endpoint = server.url("/oauth/token");
    let config = Config::builder(&endpoint, POST_ID, POST_SECRET)
        .client_auth(ClientAuth::Post)
        .scope("read")
        .build()
        .unwrap();
    let client = Client::new(config);
    let r = client
        .get(server.url("/api/resource"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Resource = r.json().await.unwrap();
    assert_eq!(
        (body.client_id.as_str(), body.scope.as_str()),
        (POST_ID, "read")
    );
    let stats = server.stats().await;
    assert_eq!(stats.last_form.auth.as_deref(), Some("post"));
    assert_eq!(stats.token_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_a_typed_invalid_client_error_and_no_resource_request() {
    let server = Authlib::start(3600);
    let endpoint = server.url("/oauth/token");
    for (auth, id) in [(ClientAuth::Basic, BASIC_ID), (ClientAuth::Post, POST_ID)] {
        let config = Config::builder(&endpoint, id, "wrong secret")
            .client_auth(auth)
            .build()
            .unwrap();
        let client = Client::new(config);
        let err = client
            .get(server.url("/api/resource"))
            .send()
            .await
            .unwrap_err();
        let Error::Token(alf::Error::TokenEndpoint(e)) = &err else {
            panic!("expected a token endpoint error, got {err:?}");
        };
        assert_eq!(e.status, 401);
        assert_eq!(e.code, Some(OAuthErrorCode::InvalidClient));
        assert_eq!(e.kind(), ErrorKind::Credentials);
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("wrong secret"),
            "the secret leaked into an error: {shown}"
        );
    }
    let stats = server.stats().await;
    assert_eq!(
        stats.resource_requests, 0,
        "no resource request without a token"
    );
    assert_eq!(stats.token_requests, 2, "credential errors are not retried");
    assert_eq!(stats.token_errors, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lifetime_is_refreshed_before_expiry_and_never_sent_expired() {
    // 2 s tokens: alf refreshes from 1 s (its margin is capped at half the lifetime).
    let server = Authlib::start(2);
    let endpoint = server.url("/oauth/token");
    let config = Config::builder(&endpoint, BASIC_ID, BASIC_SECRET)
        .build()
        .unwrap();
    let client = Client::new(config);
    let mut generations = Vec::new();
    for _ in 0..8 {
        let r = client
            .get(server.url("/api/resource"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        generations.push(client.core().token().await.unwrap().generation);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let stats = server.stats().await;
    assert_eq!(stats.resource_401, 0, "an expired token was sent");
    // 8 requests over ~3.2 s with 2 s tokens refreshed after 1 s: between 2 and 5 tokens.
    assert!(
        (2..=5).contains(&stats.token_requests),
        "{} token requests",
        stats.token_requests
    );
    generations.dedup();
    assert_eq!(generations.len() as u32, stats.token_requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_gets_401_invalid_token_and_one_replay_with_a_new_token() {
    let server = Authlib::start(3600);
    let endpoint = server.url("/oauth/token");
    let config = Config::builder(&endpoint, BASIC_ID, BASIC_SECRET)
        .build()
        .unwrap();
    let client = Client::new(config);
    assert_eq!(
        client
            .get(server.url("/api/resource"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    server.revoke_all().await;
    let r = client
        .get(server.url("/api/resource"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the request was replayed with a new token");
    let stats = server.stats().await;
    assert_eq!(stats.resource_401, 1);
    assert_eq!(stats.resource_requests, 3);
    assert_eq!(stats.token_requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_start_makes_one_token_request() {
    let server = Authlib::start(3600);
    let endpoint = server.url("/oauth/token");
    let client = Client::new(
        Config::builder(&endpoint, BASIC_ID, BASIC_SECRET)
            .build()
            .unwrap(),
    );
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            let url = server.url("/api/resource");
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    assert_eq!(server.stats().await.token_requests, 1);
}
