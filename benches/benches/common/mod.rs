//! Shared by the benches in this folder: a keep-alive HTTP/1.1 loopback server that is both a
//! token endpoint and a resource API, and the clients that talk to it.
//!
//! The server answers `POST /token` with a token response and every other request with `200`
//! and a two-byte body, on connections kept alive for as long as the client wants.

#![allow(dead_code)] // each bench uses its own subset

use std::net::SocketAddr;
use std::sync::mpsc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The access token the server hands out: 600 bytes, about the size of a small JWT.
pub const TOKEN: &str = concat!(
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.",
    "eyJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJzdWIiOiJiZW5jaC1jbGllbnQiLCJhdWQiOiJhcGkiLC",
    "JleHAiOjQxMDI0NDQ4MDAsImlhdCI6MTcwMDAwMDAwMCwic2NvcGUiOiJvcmRlcnM6cmVhZCBvcmRlcnM6d3JpdGUi",
    "LCJqdGkiOiIwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YW",
    "JjZGVmIn0.",
    "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dX",
    "JlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25h",
    "dHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZS1zaW",
    "duYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVy",
);

/// The token response body (a day's lifetime: no refresh during a bench).
pub fn token_body() -> String {
    format!(r#"{{"access_token":"{TOKEN}","token_type":"Bearer","expires_in":86400}}"#)
}

/// The body of every resource response.
pub const RESOURCE_BODY: &[u8] = b"ok";

/// A loopback server running on a thread of its own (with its own single-threaded runtime),
/// so that its work never runs on the thread being measured.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
}

impl Server {
    /// Start the server on a free port of 127.0.0.1; it runs until the process exits.
    pub fn start() -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    tx.send(listener.local_addr().expect("addr"))
                        .expect("send addr");
                    serve(listener).await;
                });
            })
            .expect("server thread");
        Self {
            addr: rx.recv().expect("server address"),
        }
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn resource_url(&self) -> String {
        format!("http://{}/v1/orders/42", self.addr)
    }
}

/// Accept connections for ever.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream));
    }
}

async fn connection(mut stream: TcpStream) {
    let token = token_body();
    let token_response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: no-store\r\ncontent-length: {}\r\n\r\n{token}",
        token.len()
    );
    let resource_response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\nok",
        RESOURCE_BODY.len()
    );
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = [0u8; 8192];
    loop {
        // Answer every complete request in the buffer.
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = &buf[..end + 4];
            let body_len = content_length(head);
            if buf.len() < end + 4 + body_len {
                break;
            }
            let reply = if head.starts_with(b"POST /token ") {
                &token_response
            } else {
                &resource_response
            };
            if stream.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
            buf.drain(..end + 4 + body_len);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> usize {
    let text = String::from_utf8_lossy(head);
    text.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// The configuration every bench client uses.
pub fn config(server: &Server) -> alf::Config {
    alf::Config::builder(&server.token_url(), "bench-client", "bench-secret")
        .scope("orders:read")
        .build()
        .expect("config")
}

/// `Authorization: Bearer <TOKEN>`, built once, as a plain reqwest user would keep it.
pub fn bearer_header() -> reqwest::header::HeaderValue {
    let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("value");
    v.set_sensitive(true);
    v
}

/// One GET with plain reqwest and a fixed `Authorization` header; reads the whole body.
pub async fn raw_get(
    client: &reqwest::Client,
    url: &str,
    auth: &reqwest::header::HeaderValue,
) -> usize {
    let response = client
        .get(url)
        .header(reqwest::header::AUTHORIZATION, auth.clone())
        .send()
        .await
        .expect("raw send");
    assert!(response.status().is_success());
    response.bytes().await.expect("raw body").len()
}

/// The same GET through alf-reqwest (token from its cache); reads the whole body.
pub async fn alf_get(client: &alf_reqwest::Client, url: &str) -> usize {
    let response = client.get(url).send().await.expect("alf send");
    assert!(response.status().is_success());
    response.bytes().await.expect("alf body").len()
}

/// The plain reqwest client both sides use (same pool settings, no timeout, reqwest's
/// default redirect policy).
pub fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("reqwest client")
}

/// Plain reqwest configured as `alf_reqwest::Client::new` configures its own: a 30 s timeout
/// and the same-origin redirect policy; the baseline for `alf_default`.
pub fn reqwest_client_like_alf_defaults() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(alf_reqwest::DEFAULT_TIMEOUT)
        .redirect(alf_reqwest::same_origin_redirects())
        .build()
        .expect("reqwest client")
}

/// alf-reqwest over its own copy of `reqwest_client()`: the difference to plain reqwest is
/// alf's work only.
pub fn alf_same_reqwest(server: &Server) -> alf_reqwest::Client {
    alf_reqwest::Client::builder(config(server))
        .reqwest_client(reqwest_client())
        .build()
        .expect("alf client")
}

/// alf-reqwest with its defaults (30 s timeout on every request, same-origin redirects).
pub fn alf_default(server: &Server) -> alf_reqwest::Client {
    alf_reqwest::Client::new(config(server))
}
