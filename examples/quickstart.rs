//! alf in two minutes: `cargo run --example quickstart`.
//!
//! With no configuration it starts a small authorization server and a protected API on
//! 127.0.0.1 (demo code in this file, not part of alf), then shows, line by line, what alf
//! does: one token fetch shared by concurrent requests, the token reused, refreshed before it
//! expires, and a request rejected with 401 replayed once with a new token.
//!
//! To call a real API instead, set:
//! ```text
//! ALF_TOKEN_ENDPOINT=https://auth.example.com/oauth2/token
//! ALF_CLIENT_ID=...  ALF_CLIENT_SECRET=...  ALF_URL=https://api.example.com/things
//! ALF_SCOPE="read write"   (optional)
//! ```
//! Tokens are never printed: only a fingerprint (first 4 characters and the length).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use alf_reqwest::Client;

#[tokio::main]
async fn main() -> ExitCode {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let real = (
        env("ALF_TOKEN_ENDPOINT"),
        env("ALF_CLIENT_ID"),
        env("ALF_CLIENT_SECRET"),
        env("ALF_URL"),
    );
    let result = match real {
        (Some(endpoint), Some(id), Some(secret), Some(url)) => {
            real_api(&endpoint, &id, &secret, env("ALF_SCOPE"), &url).await
        }
        (None, None, None, None) => demo().await,
        _ => Err(
            "set all of ALF_TOKEN_ENDPOINT, ALF_CLIENT_ID, ALF_CLIENT_SECRET and ALF_URL, \
                  or none of them for the built-in demo"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            // alf's core error does not chain its transport error as `source()`: start from
            // the transport error's causes by hand.
            let transport =
                e.downcast_ref::<alf_reqwest::Error>()
                    .and_then(|e| match e.token_error() {
                        Some(alf::Error::Transport(t)) => Some(t),
                        _ => None,
                    });
            let mut cause = match transport {
                Some(t) => std::error::Error::source(t),
                None => e.source(),
            };
            while let Some(c) = cause {
                eprintln!("  caused by: {c}");
                cause = c.source();
            }
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// "1 request", "2 requests".
fn n(count: usize, what: &str) -> String {
    format!("{count} {what}{}", if count == 1 { "" } else { "s" })
}

/// A token's fingerprint: enough to tell tokens apart, useless to an attacker.
fn fingerprint(token: &str) -> String {
    // A hash, not a prefix: no part of a real token is ever printed.
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    token.hash(&mut h);
    format!("#{:04x} ({} chars)", h.finish() & 0xffff, token.len())
}

/// Call a real API twice with a real token endpoint.
async fn real_api(
    endpoint: &str,
    id: &str,
    secret: &str,
    scope: Option<String>,
    url: &str,
) -> Result {
    let mut config = alf::Config::builder(endpoint, id, secret);
    if let Some(scope) = &scope {
        config = config.scope(scope);
    }
    let client = Client::new(config.build()?);
    println!("alf quickstart: calling {url} with tokens from {endpoint}");
    for i in 1..=2 {
        let started = Instant::now();
        let response = client.get(url).send().await?;
        let lease = client.core().token().await?;
        println!(
            "request {i}: {} in {:?}, token {} (generation {}{})",
            response.status(),
            started.elapsed(),
            fingerprint(lease.token.secret()),
            lease.generation,
            if i > 1 { ", reused" } else { "" },
        );
    }
    Ok(())
}

/// The built-in demo: a local authorization server and API, and a client using them.
async fn demo() -> Result {
    const LIFETIME_S: u64 = 3;
    let server = demo_server::start(LIFETIME_S).await?;
    let base = format!("http://{}", server.addr);
    println!("alf quickstart: demo mode (set ALF_TOKEN_ENDPOINT, ALF_CLIENT_ID, ALF_CLIENT_SECRET");
    println!("and ALF_URL to call a real API instead)");
    println!("demo authorization server and API on {base}; tokens live {LIFETIME_S} s\n");

    let token_endpoint = format!("{base}/token");
    let config = alf::Config::builder(&token_endpoint, "demo-client", "demo-secret")
        .scope("demo:read")
        .build()?;
    let client = Client::new(config);
    let start = Instant::now();
    let t = || format!("[{:>5.2}s]", start.elapsed().as_secs_f64());
    let counts = || {
        let (tokens, api, rejected) = server.counts();
        format!(
            "token endpoint: {}, API: {} ({rejected} answered 401)",
            n(tokens, "request"),
            n(api, "request")
        )
    };
    let token_fp = |c: &Client| {
        let c = c.clone();
        async move {
            let lease = c.core().token().await?;
            Ok::<_, alf_reqwest::Error>((fingerprint(lease.token.secret()), lease.generation))
        }
    };

    // 1. Cold start: ten tasks at once, one token request.
    let tasks: Vec<_> = (0..10)
        .map(|i| tokio::spawn(client.get(format!("{base}/api/items/{i}")).send()))
        .collect();
    for task in tasks {
        let response = task.await??;
        if response.status() != 200 {
            return Err(format!("unexpected status {}", response.status()).into());
        }
    }
    let (fp, generation) = token_fp(&client).await?;
    println!(
        "{} 10 concurrent GETs -> 200; token fetched once: {fp} (generation {generation})",
        t()
    );
    println!("         {}", counts());

    // 2. Reuse.
    for _ in 0..3 {
        let response = client.get(format!("{base}/api/items")).send().await?;
        let (fp, generation) = token_fp(&client).await?;
        println!(
            "{} GET /api/items -> {}; token reused: {fp} (generation {generation})",
            t(),
            response.status()
        );
    }
    println!("         {}", counts());

    // 3. Refresh before expiry: the token is due at half its life (1.5 s), expires at 3 s.
    println!(
        "{} waiting 1.7 s: the token is due for refresh after 1.5 s and expires after 3 s",
        t()
    );
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let response = client.get(format!("{base}/api/items")).send().await?;
    let (fp, generation) = token_fp(&client).await?;
    println!(
        "{} GET /api/items -> {}; token refreshed before expiry: {fp} (generation {generation})",
        t(),
        response.status()
    );
    println!("         {}", counts());

    // 4. One injected 401: the API revokes the token of the next request.
    server.revoke_next();
    println!(
        "{} the API will now reject the current token once (revoked)",
        t()
    );
    let response = client
        .post(format!("{base}/api/items"))
        .body("{\"name\":\"alf\"}")
        .send()
        .await?;
    let (fp, generation) = token_fp(&client).await?;
    println!(
        "{} POST /api/items -> 401, replayed once with a new token -> {}: {fp} (generation {generation})",
        t(),
        response.status()
    );
    println!("         {}", counts());

    let (tokens, api, rejected) = server.counts();
    println!(
        "\nsummary: {} needed {}; {rejected} was rejected with 401 and replayed;",
        n(api, "API request"),
        n(tokens, "token request")
    );
    println!("         no request ever carried an expired token.");
    if server.expired_seen() != 0 || tokens != 3 || rejected != 1 {
        return Err("the demo did not go as expected".into());
    }
    Ok(())
}

/// A tiny authorization server and protected API for the demo: HTTP/1.1 over tokio, with
/// `Content-Length` bodies only. Demo code, not a server to deploy.
mod demo_server {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    /// `Basic base64("demo-client:demo-secret")`.
    const DEMO_CREDENTIALS: &str = "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=";

    pub(crate) struct Server {
        pub(crate) addr: SocketAddr,
        state: Arc<State>,
    }

    struct State {
        lifetime: Duration,
        tokens: Mutex<HashMap<String, Instant>>,
        token_requests: AtomicUsize,
        api_requests: AtomicUsize,
        rejected: AtomicUsize,
        expired_seen: AtomicUsize,
        revoke_next: AtomicBool,
        seed: AtomicU64,
    }

    impl Server {
        /// (token requests, API requests, API requests answered 401)
        pub(crate) fn counts(&self) -> (usize, usize, usize) {
            let s = &self.state;
            (
                s.token_requests.load(SeqCst),
                s.api_requests.load(SeqCst),
                s.rejected.load(SeqCst),
            )
        }
        pub(crate) fn revoke_next(&self) {
            self.state.revoke_next.store(true, SeqCst);
        }
        pub(crate) fn expired_seen(&self) -> usize {
            self.state.expired_seen.load(SeqCst)
        }
    }

    pub(crate) async fn start(lifetime_s: u64) -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let state = Arc::new(State {
            lifetime: Duration::from_secs(lifetime_s),
            tokens: Mutex::new(HashMap::new()),
            token_requests: AtomicUsize::new(0),
            api_requests: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
            expired_seen: AtomicUsize::new(0),
            revoke_next: AtomicBool::new(false),
            seed: AtomicU64::new(nanos | 1),
        });
        let s = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    let _ = serve(stream, &s).await;
                });
            }
        });
        Ok(Server { addr, state })
    }

    async fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        loop {
            let mut line = String::new();
            if read.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_owned(),
                parts.next().unwrap_or("").to_owned(),
            );
            let mut authorization = String::new();
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                if read.read_line(&mut h).await? == 0 {
                    return Ok(());
                }
                let Some((name, value)) = h.trim_end().split_once(':') else {
                    break;
                };
                match name.to_ascii_lowercase().as_str() {
                    "authorization" => authorization = value.trim().to_owned(),
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            read.read_exact(&mut body).await?;
            let (status, extra, reply) = handle(state, &method, &path, &authorization);
            let head = format!(
                "HTTP/1.1 {status} {}\r\n{extra}content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                if status == 200 { "OK" } else { "Error" },
                reply.len()
            );
            // One write: a head and a body in two small segments would wait for a delayed ACK.
            write.write_all(format!("{head}{reply}").as_bytes()).await?;
        }
    }

    fn handle(
        s: &State,
        method: &str,
        path: &str,
        authorization: &str,
    ) -> (u16, &'static str, String) {
        if method == "POST" && path == "/token" {
            s.token_requests.fetch_add(1, SeqCst);
            if authorization != DEMO_CREDENTIALS {
                let body = r#"{"error":"invalid_client"}"#.to_owned();
                return (401, "www-authenticate: Basic\r\n", body);
            }
            let token = new_token(&s.seed);
            s.tokens
                .lock()
                .unwrap()
                .insert(token.clone(), Instant::now() + s.lifetime);
            let body = format!(
                r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                s.lifetime.as_secs()
            );
            return (200, "cache-control: no-store\r\n", body);
        }
        if path.starts_with("/api/") {
            s.api_requests.fetch_add(1, SeqCst);
            let token = authorization.strip_prefix("Bearer ").unwrap_or("");
            let mut tokens = s.tokens.lock().unwrap();
            let valid = match tokens.get(token) {
                Some(expires) if Instant::now() >= *expires => {
                    s.expired_seen.fetch_add(1, SeqCst);
                    false
                }
                Some(_) => true,
                None => false,
            };
            let revoke = valid && s.revoke_next.swap(false, SeqCst);
            if revoke {
                tokens.remove(token);
            }
            if !valid || revoke {
                s.rejected.fetch_add(1, SeqCst);
                let challenge = "www-authenticate: Bearer error=\"invalid_token\"\r\n";
                return (401, challenge, r#"{"error":"invalid_token"}"#.to_owned());
            }
            return (200, "", format!(r#"{{"ok":true,"path":"{path}"}}"#));
        }
        (404, "", "{}".to_owned())
    }

    /// 32 hex digits from a xorshift generator: a demo token, not a secure one.
    fn new_token(seed: &AtomicU64) -> String {
        let mut x = seed.load(SeqCst);
        let mut out = String::new();
        for _ in 0..2 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push_str(&format!("{x:016x}"));
        }
        seed.store(x, SeqCst);
        out
    }
}
