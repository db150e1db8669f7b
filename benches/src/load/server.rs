//! A loopback HTTP/1.1 server for the load binaries: a token endpoint and a protected API.
//!
//! - `POST /token`: client_secret_basic (the `Authorization: Basic` header must match the
//!   configured id and secret, else 401 `invalid_client`), answers
//!   `{"access_token":"…","token_type":"Bearer","expires_in":L}` after an optional delay.
//! - `GET /api`: 200 `ok` when the bearer token is one this server issued and has not expired
//!   (measured from when its token request arrived), else 401 `invalid_token`. A configurable
//!   share of requests is answered 401 at random. A request that carries an
//!   `x-alf-bench-id` header is injected a 401 at most once per id: its replay (same id) is
//!   never injected, so a client that replays once after a 401 must always succeed.
//! - `GET /stats`: the counters as JSON, and the token requests' arrival and end times.
//! - `POST /admin?lifetime=S&token_delay_ms=MS&unauthorized_ppm=N&reset=1&revoke=1`: change
//!   the knobs; `reset=1` zeroes the counters and forgets the token log (tokens stay valid);
//!   `revoke=1` revokes every token issued so far.
//!
//! Hand-written on tokio and `httparse`: keep-alive, `Content-Length` bodies only (no chunked
//! request bodies: alf, reqwest and Python `requests` send none here), `TCP_NODELAY`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Rng, base64, unix_micros};

/// The client id the server accepts.
pub const CLIENT_ID: &str = "alf-bench";
/// The client secret the server accepts.
pub const CLIENT_SECRET: &str = "bench-secret";
/// Request header naming a logical request, for the once-per-id 401 injection.
pub const ID_HEADER: &str = "x-alf-bench-id";

/// The server's knobs at start; all can be changed later (see [`ServerState`]).
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// `expires_in` of issued tokens, in seconds (alf takes whole seconds: 1 is the least).
    pub lifetime_secs: u64,
    /// Delay before the token endpoint answers.
    pub token_delay: Duration,
    /// Share of API requests answered 401 at random, in parts per million.
    pub unauthorized_ppm: u32,
    /// Port to bind on 127.0.0.1 (0: any free port).
    pub port: u16,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            lifetime_secs: 1,
            token_delay: Duration::ZERO,
            unauthorized_ppm: 0,
            port: 0,
        }
    }
}

/// Counters and knobs, shared by the server's connections (all atomics, `Relaxed`).
#[derive(Debug)]
pub struct ServerState {
    /// Token requests answered 200.
    pub token_requests: AtomicU64,
    /// Token requests refused (bad or missing client credentials, wrong method).
    pub token_refused: AtomicU64,
    /// API requests, all outcomes.
    pub api_requests: AtomicU64,
    /// API requests answered 200.
    pub api_ok: AtomicU64,
    /// API requests answered 401 because of the random injection.
    pub api_injected_401: AtomicU64,
    /// API requests answered 401 because the token was missing, unknown or expired.
    pub api_bad_token: AtomicU64,
    /// `expires_in` of new tokens, seconds.
    pub lifetime_secs: AtomicU64,
    /// Token endpoint delay, microseconds.
    pub token_delay_us: AtomicU64,
    /// Random 401 share, parts per million.
    pub unauthorized_ppm: AtomicU32,
    /// Tokens numbered up to this one are revoked (rejected with 401 from now on).
    revoked_upto: AtomicU64,
    /// Per-server random part of every token, so tokens of another run are unknown here.
    salt: u64,
    /// Expiry of token number `n` (index `n - 1`).
    tokens: Mutex<Vec<Instant>>,
    /// `(arrival, end)` of each answered token request, Unix microseconds.
    token_log: Mutex<Vec<(u64, u64)>>,
    /// Ids whose first attempt was injected a 401 and whose replay has not come yet.
    injected_ids: Mutex<HashSet<u64>>,
    /// Seeds for the per-connection random generators.
    seeds: AtomicU64,
}

impl ServerState {
    fn new(config: &ServerConfig) -> Self {
        let salt = unix_micros() ^ u64::from(std::process::id()).rotate_left(32);
        Self {
            token_requests: AtomicU64::new(0),
            token_refused: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            api_ok: AtomicU64::new(0),
            api_injected_401: AtomicU64::new(0),
            api_bad_token: AtomicU64::new(0),
            lifetime_secs: AtomicU64::new(config.lifetime_secs),
            token_delay_us: AtomicU64::new(config.token_delay.as_micros() as u64),
            unauthorized_ppm: AtomicU32::new(config.unauthorized_ppm),
            revoked_upto: AtomicU64::new(0),
            salt: Rng::new(salt).next_u64() & 0xffff_ffff,
            tokens: Mutex::new(Vec::new()),
            token_log: Mutex::new(Vec::new()),
            injected_ids: Mutex::new(HashSet::new()),
            seeds: AtomicU64::new(salt),
        }
    }

    /// Token requests answered 200 so far.
    pub fn token_count(&self) -> u64 {
        self.token_requests.load(Relaxed)
    }

    /// A copy of the token log: `(arrival, end)` of each answered token request, Unix µs.
    pub fn token_log(&self) -> Vec<(u64, u64)> {
        self.token_log.lock().unwrap().clone()
    }

    /// Zero the counters and forget the token log (issued tokens stay valid).
    pub fn reset(&self) {
        for c in [
            &self.token_requests,
            &self.token_refused,
            &self.api_requests,
            &self.api_ok,
            &self.api_injected_401,
            &self.api_bad_token,
        ] {
            c.store(0, Relaxed);
        }
        self.token_log.lock().unwrap().clear();
        self.injected_ids.lock().unwrap().clear();
    }

    /// Set `expires_in` of new tokens.
    pub fn set_lifetime_secs(&self, secs: u64) {
        self.lifetime_secs.store(secs, Relaxed);
    }

    /// Set the token endpoint delay.
    pub fn set_token_delay(&self, d: Duration) {
        self.token_delay_us.store(d.as_micros() as u64, Relaxed);
    }

    /// Set the random 401 share, parts per million (1_000_000: every API request).
    pub fn set_unauthorized_ppm(&self, ppm: u32) {
        self.unauthorized_ppm.store(ppm, Relaxed);
    }

    /// Revoke every token issued so far: API requests carrying one get 401 from now on.
    pub fn revoke_all(&self) {
        let issued = self.tokens.lock().unwrap().len() as u64;
        self.revoked_upto.store(issued, Relaxed);
    }

    /// The counters as a JSON object (with the token log).
    pub fn stats_json(&self) -> String {
        let log = self.token_log();
        let mut s = format!(
            "{{\"token_requests\":{},\"token_refused\":{},\"api_requests\":{},\"api_ok\":{},\
             \"api_injected_401\":{},\"api_bad_token\":{},\"lifetime_secs\":{},\
             \"token_delay_us\":{},\"unauthorized_ppm\":{},\"token_log_unix_us\":[",
            self.token_requests.load(Relaxed),
            self.token_refused.load(Relaxed),
            self.api_requests.load(Relaxed),
            self.api_ok.load(Relaxed),
            self.api_injected_401.load(Relaxed),
            self.api_bad_token.load(Relaxed),
            self.lifetime_secs.load(Relaxed),
            self.token_delay_us.load(Relaxed),
            self.unauthorized_ppm.load(Relaxed),
        );
        for (i, (a, b)) in log.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!("[{a},{b}]"));
        }
        s.push_str("]}");
        s
    }

    fn issue(&self, arrived: Instant) -> String {
        let lifetime = Duration::from_secs(self.lifetime_secs.load(Relaxed));
        let mut tokens = self.tokens.lock().unwrap();
        tokens.push(arrived + lifetime);
        format!("alfbench-{}-{:08x}", tokens.len(), self.salt)
    }

    fn token_is_valid(&self, authorization: Option<&[u8]>) -> bool {
        let Some(token) = authorization.and_then(|a| a.strip_prefix(b"Bearer ")) else {
            return false;
        };
        let Ok(token) = std::str::from_utf8(token) else {
            return false;
        };
        let Some((n, salt)) = token
            .strip_prefix("alfbench-")
            .and_then(|t| t.split_once('-'))
        else {
            return false;
        };
        let (Ok(n), Ok(salt)) = (n.parse::<usize>(), u64::from_str_radix(salt, 16)) else {
            return false;
        };
        if salt != self.salt || n == 0 || n as u64 <= self.revoked_upto.load(Relaxed) {
            return false;
        }
        let expiry = self.tokens.lock().unwrap().get(n - 1).copied();
        expiry.is_some_and(|e| Instant::now() < e)
    }

    /// Whether this API request gets a random 401.
    fn inject(&self, rng: &mut Rng, id: Option<u64>) -> bool {
        let ppm = self.unauthorized_ppm.load(Relaxed);
        if ppm == 0 {
            return false;
        }
        match id {
            Some(id) => {
                let mut ids = self.injected_ids.lock().unwrap();
                if ids.remove(&id) {
                    return false; // the replay of an injected request
                }
                let hit = rng.below(1_000_000) < u64::from(ppm);
                if hit {
                    ids.insert(id);
                }
                hit
            }
            None => rng.below(1_000_000) < u64::from(ppm),
        }
    }
}

/// A running server; it stops when its runtime shuts down, or on [`stop`](Self::stop).
#[derive(Debug)]
pub struct LoadServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Counters and knobs.
    pub state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl LoadServer {
    /// Bind on 127.0.0.1 and serve on the current tokio runtime.
    pub async fn start(config: ServerConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ServerState::new(&config));
        let st = Arc::clone(&state);
        let expected = format!(
            "Basic {}",
            base64(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes())
        );
        let expected: Arc<[u8]> = Arc::from(expected.into_bytes());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // EMFILE and friends: back off a little rather than spin.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let st = Arc::clone(&st);
                let expected = Arc::clone(&expected);
                tokio::spawn(async move {
                    let _ = serve_connection(stream, &st, &expected).await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stop accepting connections (open ones end with their runtime).
    pub fn stop(&self) {
        self.task.abort();
    }
}

struct Parsed {
    method_post: bool,
    path: String,
    query: String,
    authorization: Option<Vec<u8>>,
    id: Option<u64>,
    close: bool,
    head_len: usize,
    body_len: usize,
}

fn parse(buf: &[u8]) -> Result<Option<Parsed>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut parsed = Parsed {
        method_post: req.method == Some("POST"),
        path: path.to_owned(),
        query: query.to_owned(),
        authorization: None,
        id: None,
        close: req.version == Some(0),
        head_len,
        body_len: 0,
    };
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            parsed.body_len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(())?;
        } else if h.name.eq_ignore_ascii_case("authorization") {
            parsed.authorization = Some(h.value.to_vec());
        } else if h.name.eq_ignore_ascii_case(ID_HEADER) {
            parsed.id = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.parse().ok());
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value.to_ascii_lowercase();
            if v == b"close" {
                parsed.close = true;
            } else if v == b"keep-alive" {
                parsed.close = false;
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(()); // not needed here
        }
    }
    Ok(Some(parsed))
}

async fn serve_connection(
    mut stream: TcpStream,
    state: &ServerState,
    expected_basic: &[u8],
) -> std::io::Result<()> {
    let mut rng = Rng::new(state.seeds.fetch_add(0x9e37_79b9_7f4a_7c15, Relaxed));
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(512);
    loop {
        // Read until a whole request (head and body) is in `buf`.
        let parsed = loop {
            if !buf.is_empty() {
                match parse(&buf) {
                    Ok(Some(p)) if buf.len() >= p.head_len + p.body_len => break p,
                    Ok(_) => {}
                    Err(()) => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        return Ok(());
                    }
                }
            }
            if buf.len() > 1 << 20 {
                return Ok(());
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        let arrived = Instant::now();
        out.clear();
        match (parsed.method_post, parsed.path.as_str()) {
            (true, "/token") => {
                if parsed.authorization.as_deref() != Some(expected_basic) {
                    state.token_refused.fetch_add(1, Relaxed);
                    respond(
                        &mut out,
                        "401 Unauthorized",
                        "application/json",
                        Some("Basic realm=\"alf-bench\""),
                        br#"{"error":"invalid_client"}"#,
                    );
                } else {
                    let arrived_unix = unix_micros();
                    let delay = state.token_delay_us.load(Relaxed);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_micros(delay)).await;
                    }
                    let token = state.issue(arrived);
                    let body = format!(
                        r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                        state.lifetime_secs.load(Relaxed)
                    );
                    state.token_requests.fetch_add(1, Relaxed);
                    state
                        .token_log
                        .lock()
                        .unwrap()
                        .push((arrived_unix, unix_micros()));
                    respond(
                        &mut out,
                        "200 OK",
                        "application/json",
                        None,
                        body.as_bytes(),
                    );
                }
            }
            (false, "/api") => {
                state.api_requests.fetch_add(1, Relaxed);
                if !state.token_is_valid(parsed.authorization.as_deref()) {
                    state.api_bad_token.fetch_add(1, Relaxed);
                    respond(
                        &mut out,
                        "401 Unauthorized",
                        "text/plain",
                        Some("Bearer error=\"invalid_token\""),
                        b"bad token",
                    );
                } else if state.inject(&mut rng, parsed.id) {
                    state.api_injected_401.fetch_add(1, Relaxed);
                    respond(
                        &mut out,
                        "401 Unauthorized",
                        "text/plain",
                        Some("Bearer error=\"invalid_token\""),
                        b"injected",
                    );
                } else {
                    state.api_ok.fetch_add(1, Relaxed);
                    respond(&mut out, "200 OK", "text/plain", None, b"ok");
                }
            }
            (false, "/stats") => {
                let body = state.stats_json();
                respond(
                    &mut out,
                    "200 OK",
                    "application/json",
                    None,
                    body.as_bytes(),
                );
            }
            (true, "/admin") => {
                admin(state, &parsed.query);
                respond(&mut out, "200 OK", "text/plain", None, b"ok");
            }
            _ => respond(&mut out, "404 Not Found", "text/plain", None, b"not found"),
        }
        buf.drain(..parsed.head_len + parsed.body_len);
        stream.write_all(&out).await?;
        if parsed.close {
            return Ok(());
        }
    }
}

fn admin(state: &ServerState, query: &str) {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let n: u64 = v.parse().unwrap_or(0);
        match k {
            "lifetime" => state.set_lifetime_secs(n),
            "token_delay_ms" => state.set_token_delay(Duration::from_millis(n)),
            "unauthorized_ppm" => state.set_unauthorized_ppm(n as u32),
            "reset" if n != 0 => state.reset(),
            "revoke" if n != 0 => state.revoke_all(),
            _ => {}
        }
    }
}

fn respond(out: &mut Vec<u8>, status: &str, ctype: &str, www: Option<&str>, body: &[u8]) {
    use std::io::Write;
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(w) = www {
        let _ = write!(out, "www-authenticate: {w}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Run a server in this process until killed: what `--serve` does. Prints `port=<port>` on
/// stdout (then flushes) once it listens.
pub fn serve_forever(config: ServerConfig) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = LoadServer::start(config).await?;
        println!("port={}", server.addr.port());
        use std::io::Write;
        std::io::stdout().flush()?;
        std::future::pending::<()>().await;
        Ok(())
    })
}
