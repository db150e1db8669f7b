//! Just enough of a host for end-to-end tests: a real clock on Tokio, a plain-HTTP transport,
//! and a loopback token endpoint that counts token requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alf::testing::MockError;
use alf::{Clock, Instant, Request, Response, Transport, UnixTime};
use embedded_io::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Tokio's clock, with the system's wall time.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.origin.elapsed().as_millis()).unwrap())
    }
    async fn sleep_until(&self, deadline: Instant) {
        tokio::time::sleep_until(self.origin + Duration::from_millis(deadline.as_millis())).await;
    }
    fn unix_time(&self) -> Option<UnixTime> {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        Some(UnixTime::from_millis(
            u64::try_from(since_epoch.as_millis()).ok()?,
        ))
    }
}

/// HTTP/1.1 over plain TCP, one connection per request (`Connection: close`), `http://` only.
#[derive(Debug, Default)]
pub struct HttpTransport {
    pub sent: usize,
}

impl Transport for HttpTransport {
    type Error = MockError;

    async fn send<'b>(
        &mut self,
        request: &Request<'_>,
        rx: &'b mut [u8],
    ) -> Result<Response<'b>, MockError> {
        self.sent += 1;
        let rest = request
            .url
            .strip_prefix("http://")
            .ok_or(MockError(ErrorKind::InvalidInput))?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        let mut stream = TcpStream::connect(authority)
            .await
            .map_err(|e| MockError(e.kind().into()))?;
        let mut head = format!(
            "{} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n",
            request.method.as_str()
        );
        for (name, value) in request.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(auth) = request.authorization {
            head.push_str(&format!("Authorization: {auth}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", request.body.len()));
        let io = |e: std::io::Error| MockError(e.kind().into());
        stream.write_all(head.as_bytes()).await.map_err(io)?;
        stream.write_all(request.body).await.map_err(io)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(io)?;
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or(MockError(ErrorKind::InvalidData))?;
        let head = std::str::from_utf8(&response[..split])
            .map_err(|_| MockError(ErrorKind::InvalidData))?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(MockError(ErrorKind::InvalidData))?;
        let body = &response[split + 4..];
        let dst = rx
            .get_mut(..body.len())
            .ok_or(MockError(ErrorKind::OutOfMemory))?;
        dst.copy_from_slice(body);
        let mut r = Response::new(status, dst);
        for line in head.lines().skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                r.observe_header(name.trim(), value.trim().as_bytes());
            }
        }
        Ok(r)
    }
}

/// A token endpoint on 127.0.0.1 that answers every `POST` with
/// `{"access_token":"token-<n>","expires_in":3600}` after `delay`, `n` counting from 1.
#[derive(Debug, Clone)]
pub struct TokenServer {
    pub url: String,
    count: Arc<AtomicUsize>,
}

impl TokenServer {
    /// Start it on the current Tokio runtime.
    pub async fn start(delay: Duration) -> Self {
        alf_test_hygiene::init();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let _ = serve(conn, &counter, delay).await;
                });
            }
        });
        Self { url, count }
    }

    /// Token requests received so far.
    pub fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

async fn serve(mut conn: TcpStream, counter: &AtomicUsize, delay: Duration) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    // Read the head, then Content-Length bytes of body.
    let (head_end, content_length) = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..n]);
        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..i]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, len);
        }
    };
    while request.len() < head_end + content_length {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let authorization = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_owned())
    });
    alf_test_hygiene::observe_request(authorization.as_deref(), &request[head_end..]);
    let body = if request.starts_with(b"POST ") {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(delay).await;
        format!(r#"{{"access_token":"token-{n}","token_type":"Bearer","expires_in":3600}}"#)
    } else {
        String::from(r#"{"error":"invalid_request"}"#)
    };
    alf_test_hygiene::observe_response(body.as_bytes());
    let status = if request.starts_with(b"POST ") {
        "200 OK"
    } else {
        "405 Method Not Allowed"
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes()).await?;
    conn.shutdown().await
}
