//! A fault-injecting HTTP/1.1 server on loopback, over raw tokio TCP, playing the token
//! endpoint (`POST /token`) and a protected API (`/api/...`) at once.
//!
//! By default it behaves: `/token` issues `tok-1`, `tok-2`... (`expires_in` 3600) and `/api`
//! answers 200 to a token it issued and has not revoked, 401 otherwise. Scripted [`Action`]s
//! replace that for the next requests to a path, at the byte level: any status, raw bytes,
//! a reset (RST) before or in the middle of a response, a connection that stays silent, a
//! trickle of bytes. Every request is recorded ([`Seen`]: method, path, `Authorization`,
//! body, arrival time) before its action runs, so tests check exactly what the server saw.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the whole request had been read.
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn authorization(&self) -> Option<&str> {
        self.header("authorization")
    }
    /// The bearer token, or `"-"` when there is none.
    pub fn bearer(&self) -> &str {
        self.authorization()
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("-")
    }
}

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// A well-formed response with `Content-Length`; the connection stays open for more.
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Write these bytes, then close the connection normally (FIN).
    Raw(Vec<u8>),
    /// Write these bytes (maybe none), then reset the connection (RST).
    RawThenReset(Vec<u8>),
    /// Write these bytes (maybe none), then keep the connection open and silent forever.
    RawThenHang(Vec<u8>),
    /// Write these bytes one at a time, `every` apart, then close.
    Trickle { bytes: Vec<u8>, every: Duration },
    /// Wait, then do the other action.
    Delayed(Duration, Box<Self>),
    /// Answer as the server does by default.
    Default,
}

impl Action {
    pub fn status(status: u16) -> Self {
        Self::Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
    pub fn json(status: u16, body: &str) -> Self {
        Self::status(status)
            .header("content-type", "application/json")
            .body(body)
    }
    /// A 200 token response with this JSON body.
    pub fn token(body: &str) -> Self {
        Self::json(200, body)
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Self::Reply { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        if let Self::Reply { body, .. } = &mut self {
            *body = bytes.into();
        }
        self
    }
    /// Never answer (the request is read and recorded first).
    pub fn hang() -> Self {
        Self::RawThenHang(Vec::new())
    }
    /// Do this after `d`.
    pub fn after(self, d: Duration) -> Self {
        Self::Delayed(d, Box::new(self))
    }
    /// Reset the connection without answering.
    pub fn reset() -> Self {
        Self::RawThenReset(Vec::new())
    }
}

/// The head of a response, as raw bytes: status line and headers, blank line included.
pub fn head(status: u16, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// `body` in chunked transfer encoding, in chunks of `size`, with (`complete`) or without
/// the final zero-length chunk.
pub fn chunked(body: &[u8], size: usize, complete: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    if complete {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Whatever",
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for `t`.
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {month} {year} {h:02}:{m:02}:{s:02} GMT")
}

#[derive(Default)]
struct State {
    log: Mutex<Vec<Seen>>,
    /// Scripted actions: `(path prefix, action)`, used once each, first match first.
    script: Mutex<VecDeque<(String, Action)>>,
    /// Actions for every request to a path prefix, after the script.
    always: Mutex<Vec<(String, Action)>>,
    /// Tokens issued and not revoked.
    valid: Mutex<Vec<String>>,
    issued: AtomicUsize,
    /// Connections accepted.
    connections: AtomicUsize,
    /// Actions whose bytes have all been written.
    written: AtomicUsize,
    /// `expires_in` of the tokens issued by default.
    lifetime: AtomicUsize,
}

/// The server; it stops with the test's tokio runtime.
#[derive(Clone)]
pub struct FaultServer {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl FaultServer {
    /// Start on 127.0.0.1, on a free port.
    pub async fn start() -> Self {
        alf_test_hygiene::init();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        state.lifetime.store(3600, SeqCst);
        let server = Self { addr, state };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                s.state.connections.fetch_add(1, SeqCst);
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.connection(stream).await;
                });
            }
        });
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answer the next request whose path starts with `path` with `action`.
    pub fn then(&self, path: &str, action: Action) -> &Self {
        self.state
            .script
            .lock()
            .unwrap()
            .push_back((path.into(), action));
        self
    }

    /// Answer every request whose path starts with `path` with `action` (after the script).
    pub fn always(&self, path: &str, action: Action) -> &Self {
        self.state
            .always
            .lock()
            .unwrap()
            .push((path.into(), action));
        self
    }

    /// `expires_in` of the tokens issued by default.
    pub fn set_lifetime(&self, secs: usize) {
        self.state.lifetime.store(secs, SeqCst);
    }

    /// The API stops accepting every token issued so far.
    pub fn revoke_all(&self) {
        self.state.valid.lock().unwrap().clear();
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Seen> {
        self.state.log.lock().unwrap().clone()
    }

    /// Requests so far whose path starts with `path`.
    pub fn requests(&self, path: &str) -> Vec<Seen> {
        self.log()
            .into_iter()
            .filter(|r| r.path.starts_with(path))
            .collect()
    }

    pub fn count(&self, path: &str) -> usize {
        self.requests(path).len()
    }

    /// Token requests so far.
    pub fn tokens(&self) -> usize {
        self.count("/token")
    }

    /// The bearer tokens of the API requests, in order (`"-"` for none).
    pub fn api_tokens(&self) -> Vec<String> {
        self.requests("/api")
            .iter()
            .map(|r| r.bearer().to_owned())
            .collect()
    }

    /// Requests that carried an `Authorization` header.
    pub fn with_authorization(&self) -> usize {
        self.log()
            .iter()
            .filter(|r| r.authorization().is_some())
            .count()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(SeqCst)
    }

    /// Wait (polling, without a deadline of its own: the test's hang guard is the limit)
    /// until at least `n` requests to `path` were received.
    pub async fn wait_for(&self, path: &str, n: usize) {
        while self.count(path) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Wait until the bytes of at least `n` actions have all been written.
    pub async fn wait_written(&self, n: usize) {
        while self.state.written.load(SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn action_for(&self, req: &Seen) -> Action {
        {
            let mut script = self.state.script.lock().unwrap();
            if let Some(i) = script.iter().position(|(p, _)| req.path.starts_with(p))
                && let Some((_, a)) = script.remove(i)
            {
                return a;
            }
        }
        let always = self.state.always.lock().unwrap();
        always
            .iter()
            .find(|(p, _)| req.path.starts_with(p))
            .map_or(Action::Default, |(_, a)| a.clone())
    }

    fn default_action(&self, req: &Seen) -> Action {
        if req.path.starts_with("/token") {
            let n = self.state.issued.fetch_add(1, SeqCst) + 1;
            let token = format!("tok-{n}");
            self.state.valid.lock().unwrap().push(token.clone());
            let lifetime = self.state.lifetime.load(SeqCst);
            return Action::token(&format!(
                r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{lifetime}}}"#
            ));
        }
        if req.path.starts_with("/api") {
            let token = req.bearer();
            if self.state.valid.lock().unwrap().iter().any(|t| t == token) {
                return Action::status(200).body(format!("{} {}", req.method, req.path));
            }
            return Action::status(401)
                .header("www-authenticate", r#"Bearer error="invalid_token""#);
        }
        Action::status(404)
    }

    async fn connection(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut stream = BufReader::new(stream);
        loop {
            let Some(req) = read_request(&mut stream).await? else {
                return Ok(());
            };
            self.state.log.lock().unwrap().push(req.clone());
            // Secret hygiene (tests/hygiene): what went over the wire must never be logged.
            alf_test_hygiene::observe_request(req.authorization(), &req.body);
            let mut action = self.action_for(&req);
            while let Action::Delayed(d, next) = action {
                tokio::time::sleep(d).await;
                action = *next;
            }
            if matches!(action, Action::Default) {
                action = self.default_action(&req);
            }
            match &action {
                Action::Reply { body: bytes, .. }
                | Action::Raw(bytes)
                | Action::RawThenReset(bytes)
                | Action::RawThenHang(bytes)
                | Action::Trickle { bytes, .. } => alf_test_hygiene::observe_response(bytes),
                Action::Delayed(..) | Action::Default => {}
            }
            match action {
                Action::Reply {
                    status,
                    headers,
                    body,
                } => {
                    let mut h: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    let len = body.len().to_string();
                    if !headers
                        .iter()
                        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    {
                        h.push(("content-length", &len));
                    }
                    let mut bytes = head(status, &h);
                    if req.method != "HEAD" {
                        bytes.extend_from_slice(&body);
                    }
                    // One write: small segments in a row would wait for delayed ACKs.
                    stream.get_mut().write_all(&bytes).await?;
                    stream.get_mut().flush().await?;
                    self.state.written.fetch_add(1, SeqCst);
                }
                Action::Raw(bytes) => {
                    stream.get_mut().write_all(&bytes).await?;
                    stream.get_mut().flush().await?;
                    self.state.written.fetch_add(1, SeqCst);
                    stream.get_mut().shutdown().await?;
                    return Ok(());
                }
                Action::RawThenReset(bytes) => {
                    let mut stream = stream.into_inner();
                    stream.write_all(&bytes).await?;
                    stream.flush().await?;
                    self.state.written.fetch_add(1, SeqCst);
                    // Dropping a socket with a zero linger sends RST instead of FIN.
                    stream.set_zero_linger()?;
                    drop(stream);
                    return Ok(());
                }
                Action::RawThenHang(bytes) => {
                    stream.get_mut().write_all(&bytes).await?;
                    stream.get_mut().flush().await?;
                    self.state.written.fetch_add(1, SeqCst);
                    std::future::pending::<()>().await;
                }
                Action::Trickle { bytes, every } => {
                    for b in bytes {
                        stream.get_mut().write_all(&[b]).await?;
                        stream.get_mut().flush().await?;
                        tokio::time::sleep(every).await;
                    }
                    self.state.written.fetch_add(1, SeqCst);
                    stream.get_mut().shutdown().await?;
                    return Ok(());
                }
                Action::Delayed(..) | Action::Default => unreachable!("replaced above"),
            }
        }
    }
}

/// The next request, parsed by the tests' loopback server (`common`), stamped when it was
/// read in full.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Seen>> {
    let Some(req) = crate::common::read_request(r).await? else {
        return Ok(None);
    };
    Ok(Some(Seen {
        method: req.method,
        path: req.path,
        headers: req.headers,
        body: req.body,
        at: Instant::now(),
    }))
}

/// A TCP server that accepts connections, reads whatever comes and never answers: a store (or
/// anything) that is up but hopelessly slow.
pub async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A TCP server that answers every read with `reply` (garbage for whatever protocol the client
/// speaks), and counts the connections it accepted.
pub async fn babbling_server(reply: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// A loopback port that refuses connections (bound, then closed).
pub fn refused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Send one command to the Redis at `addr` in RESP and return its raw reply (one read).
pub async fn redis_raw(addr: &str, args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&out).await.unwrap();
    read_until_quiet(&mut stream, |b| {
        // A simple reply ends with CRLF; a bulk string with its data and CRLF.
        if b.first() == Some(&b'$') {
            let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
                return false;
            };
            let n: i64 = std::str::from_utf8(&b[1..eol]).unwrap().parse().unwrap();
            n < 0 || b.len() >= eol + 2 + n as usize + 2
        } else {
            b.ends_with(b"\r\n")
        }
    })
    .await
}

/// The value of a Redis `GET` (`None` for nil).
pub async fn redis_get(addr: &str, key: &str) -> Option<Vec<u8>> {
    let raw = redis_raw(addr, &[b"GET", key.as_bytes()]).await;
    assert_eq!(raw.first(), Some(&b'$'), "not a bulk string reply");
    let eol = raw.windows(2).position(|w| w == b"\r\n").unwrap();
    let n: i64 = std::str::from_utf8(&raw[1..eol]).unwrap().parse().unwrap();
    (n >= 0).then(|| raw[eol + 2..eol + 2 + n as usize].to_vec())
}

/// Send one memcached text command (with its data block, if any) and return the reply.
pub async fn memcached_raw(addr: &str, command: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(command).await.unwrap();
    read_until_quiet(&mut stream, |b| {
        b.ends_with(b"END\r\n")
            || b.ends_with(b"STORED\r\n")
            || b.ends_with(b"DELETED\r\n")
            || b.ends_with(b"NOT_FOUND\r\n")
            || b.ends_with(b"ERROR\r\n")
    })
    .await
}

/// `set key 0 3600 <value>` in memcached.
pub async fn memcached_set(addr: &str, key: &str, value: &[u8]) {
    let mut cmd = format!("set {key} 0 3600 {}\r\n", value.len()).into_bytes();
    cmd.extend_from_slice(value);
    cmd.extend_from_slice(b"\r\n");
    let reply = memcached_raw(addr, &cmd).await;
    assert_eq!(reply, b"STORED\r\n");
}

/// The value of a memcached `get` (`None` when missing).
pub async fn memcached_get(addr: &str, key: &str) -> Option<Vec<u8>> {
    let reply = memcached_raw(addr, format!("get {key}\r\n").as_bytes()).await;
    if reply == b"END\r\n" {
        return None;
    }
    let eol = reply.windows(2).position(|w| w == b"\r\n").unwrap();
    let header = std::str::from_utf8(&reply[..eol]).unwrap();
    let n: usize = header.rsplit(' ').next().unwrap().parse().unwrap();
    Some(reply[eol + 2..eol + 2 + n].to_vec())
}

async fn read_until_quiet(stream: &mut TcpStream, complete: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !complete(&got) {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    got
}
