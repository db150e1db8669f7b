//! A small HTTP/1.1 server on loopback for the tests, playing the token endpoint and a
//! protected API. Hand-written over tokio so that the tests need no server framework.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("<binary>")
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// Send the body with `Transfer-Encoding: chunked` (no `Content-Length`).
    pub chunked: bool,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            chunked: false,
        }
    }
    pub fn json(status: u16, body: &str) -> Self {
        Self::new(status)
            .header("content-type", "application/json")
            .body(body)
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
}

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// Serve `handler` on 127.0.0.1 on a free port, in the current tokio runtime (the server stops
/// with the runtime, at the end of the test).
pub async fn serve(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> SocketAddr {
    alf_test_hygiene::init();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler: Handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let _ = connection(stream, handler).await;
            });
        }
    });
    addr
}

async fn connection(stream: TcpStream, handler: Handler) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let Some(req) = read_request(&mut read).await? else {
            return Ok(());
        };
        alf_test_hygiene::observe_request(req.header("authorization"), &req.body);
        let reply = handler(&req);
        alf_test_hygiene::observe_response(&reply.body);
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
        for (n, v) in &reply.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        // Everything in one write: small segments in a row would wait for delayed ACKs.
        let mut bytes;
        if reply.chunked {
            out.push_str("transfer-encoding: chunked\r\n\r\n");
            bytes = out.into_bytes();
            for chunk in reply.body.chunks(512) {
                bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                bytes.extend_from_slice(chunk);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.push_str(&format!("content-length: {}\r\n\r\n", reply.body.len()));
            bytes = out.into_bytes();
            if req.method != "HEAD" {
                bytes.extend_from_slice(&reply.body);
            }
        }
        write.write_all(&bytes).await?;
        write.flush().await?;
    }
}

pub async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Req>> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut req = Req {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).await?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).await?;
            if n == 0 {
                break;
            }
            req.body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        req.body = vec![0; n];
        r.read_exact(&mut req.body).await?;
    }
    Ok(Some(req))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// An authorization server (`POST /token`) and a protected API (`/api/...`) on one port,
/// with counters and knobs.
pub struct Fixture {
    pub addr: SocketAddr,
    pub state: Arc<State>,
}

#[derive(Default)]
pub struct State {
    /// `expires_in` of issued tokens, seconds.
    pub lifetime: AtomicU64,
    /// Delay before answering a token request, ms.
    pub token_delay_ms: AtomicU64,
    /// Canned answers for the next token requests, before issuing normally.
    pub token_script: Mutex<VecDeque<Reply>>,
    /// Every request to /token.
    pub token_log: Mutex<Vec<Req>>,
    /// Every request to /api/...
    pub api_log: Mutex<Vec<Req>>,
    /// Answer 401 to every API request.
    pub reject_all: AtomicBool,
    /// Issued tokens and when they expire (server time).
    pub issued: Mutex<HashMap<String, Instant>>,
    /// Tokens the API rejects with 401 (revoked).
    pub revoked: Mutex<Vec<String>>,
    /// Revoke the token of the next API request (one injected 401).
    pub revoke_next: AtomicBool,
    /// API requests that carried an expired token.
    pub expired_seen: AtomicUsize,
    /// API requests answered 401.
    pub api_401: AtomicUsize,
    /// Requests to any other path (for example a redirect target).
    pub other_log: Mutex<Vec<Req>>,
    issued_count: AtomicUsize,
}

impl State {
    pub fn token_requests(&self) -> usize {
        self.token_log.lock().unwrap().len()
    }
    pub fn api_requests(&self) -> usize {
        self.api_log.lock().unwrap().len()
    }
    pub fn script(&self, reply: Reply) {
        self.token_script.lock().unwrap().push_back(reply);
    }
    /// The tokens API requests carried, in order.
    pub fn api_tokens(&self) -> Vec<String> {
        self.api_log
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.bearer().unwrap_or("-").to_string())
            .collect()
    }
}

impl Fixture {
    /// Start a fixture issuing tokens that live `lifetime_s` seconds.
    pub async fn start(lifetime_s: u64) -> Self {
        let state = Arc::new(State::default());
        state.lifetime.store(lifetime_s, SeqCst);
        let s = Arc::clone(&state);
        let addr = serve(move |req| handle(&s, req)).await;
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn config(&self) -> alf::ConfigBuilder<'static> {
        let endpoint: &'static str = Box::leak(self.url("/token").into_boxed_str());
        alf::Config::builder(endpoint, "client", "secret")
    }
}

fn handle(s: &State, req: &Req) -> Reply {
    if req.path == "/token" {
        s.token_log.lock().unwrap().push(req.clone());
        let delay = Duration::from_millis(s.token_delay_ms.load(SeqCst));
        if let Some(reply) = s.token_script.lock().unwrap().pop_front() {
            return reply;
        }
        let n = s.issued_count.fetch_add(1, SeqCst) + 1;
        let token = format!("tok-{n}");
        let lifetime = s.lifetime.load(SeqCst);
        s.issued.lock().unwrap().insert(
            token.clone(),
            Instant::now() + Duration::from_secs(lifetime),
        );
        let body = format!(
            r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{lifetime}}}"#
        );
        return Reply::json(200, &body).delay(delay);
    }
    if req.path.starts_with("/api") {
        s.api_log.lock().unwrap().push(req.clone());
        let token = req.bearer().unwrap_or_default().to_string();
        let expires = s.issued.lock().unwrap().get(&token).copied();
        let expired = expires.is_some_and(|at| Instant::now() >= at);
        if expired {
            s.expired_seen.fetch_add(1, SeqCst);
        }
        if s.revoke_next.swap(false, SeqCst) {
            s.revoked.lock().unwrap().push(token.clone());
        }
        let revoked = s.revoked.lock().unwrap().contains(&token);
        if expires.is_none() || expired || revoked || s.reject_all.load(SeqCst) {
            s.api_401.fetch_add(1, SeqCst);
            return Reply::new(401).header("www-authenticate", r#"Bearer error="invalid_token""#);
        }
        return Reply::new(200).body(format!("{} {} {}", req.method, req.path, req.body_str()));
    }
    s.other_log.lock().unwrap().push(req.clone());
    Reply::new(404)
}
