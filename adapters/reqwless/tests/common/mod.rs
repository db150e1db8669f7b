//! Host glue for the tests: an `embedded-nal-async` TCP stack and resolver over tokio, and a
//! scripted HTTP/1.1 server on 127.0.0.1 that records the exact bytes of every request.
#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use embedded_io_adapters::tokio_1::FromTokio;
use embedded_nal_async::{AddrType, Dns, TcpConnect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `TcpConnect` over tokio: one `TcpStream` per connection.
#[derive(Debug, Default)]
pub struct TokioTcp;

impl TcpConnect for TokioTcp {
    type Error = std::io::Error;
    type Connection<'a> = FromTokio<TcpStream>;

    async fn connect<'a>(
        &'a self,
        remote: SocketAddr,
    ) -> Result<Self::Connection<'a>, Self::Error> {
        TcpStream::connect(remote).await.map(FromTokio::new)
    }
}

/// A resolver that knows IP literals and `localhost`, and fails for every other name (the
/// tests never leave the machine).
#[derive(Debug, Default)]
pub struct LoopbackDns;

#[derive(Debug)]
pub struct NoSuchHost;

impl Dns for LoopbackDns {
    type Error = NoSuchHost;

    async fn get_host_by_name(&self, host: &str, _: AddrType) -> Result<IpAddr, NoSuchHost> {
        if host == "localhost" {
            return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        host.parse().map_err(|_| NoSuchHost)
    }

    async fn get_host_by_address(&self, _: IpAddr, _: &mut [u8]) -> Result<usize, NoSuchHost> {
        Err(NoSuchHost)
    }
}

/// What the server does with one connection, after reading the whole request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Write these bytes, then close.
    Send(Vec<u8>),
    /// Write these pieces one by one with a pause between them, then close.
    Pieces(Vec<Vec<u8>>),
    /// Never answer; keep the connection open.
    Hang,
}

/// A complete response with `Content-Length`.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len()).into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Reply::Send(out)
}

/// A 200 token response with `Content-Length`.
pub fn token(access_token: &str, expires_in: u32) -> Reply {
    let body = format!(
        r#"{{"access_token":"{access_token}","token_type":"Bearer","expires_in":{expires_in}}}"#
    );
    response(
        200,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Server {
    /// Serve `replies` in order, one connection each.
    pub async fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            for reply in replies {
                let (mut stream, _) = listener.accept().await.unwrap();
                let request = read_request(&mut stream).await;
                log.lock().unwrap().push(request);
                match reply {
                    Reply::Send(bytes) => {
                        let _ = stream.write_all(&bytes).await;
                    }
                    Reply::Pieces(pieces) => {
                        for p in pieces {
                            if stream.write_all(&p).await.is_err() {
                                break;
                            }
                            let _ = stream.flush().await;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    Reply::Hang => {
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            drop(stream);
                        });
                    }
                }
            }
        });
        Self { addr, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests received so far, as text.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }
}

/// Read one request: the head, then `Content-Length` bytes of body.
async fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            return buf;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf
}
