//! [`ReqwlessTransport`]: alf's [`Transport`] over reqwless's HTTP client.
//!
//! Each [`send`](Transport::send) opens a new connection (TCP, then TLS for `https://`),
//! writes one request, reads the whole response into the caller's buffer and closes the
//! connection. There is no connection reuse: a token request happens once per token lifetime,
//! and a fresh connection per request is what makes cancellation safe (a dropped `send` drops
//! its connection, and nothing half-read is left for the next call).

use alf::Transport;
use alf::http::{Method, Request, Response, is_valid_header_name, is_valid_header_value};
use embassy_time::Duration;
#[cfg(not(feature = "tls"))]
use embedded_io::ErrorKind;
use embedded_io_async::Write;
use embedded_nal_async::{Dns, TcpConnect};
use reqwless::client::HttpClient;
#[cfg(not(feature = "tls"))]
use reqwless::client::HttpConnection;

use crate::error::{Error, InvalidRequest};

/// The timeout [`ReqwlessTransport::new`] starts with: 30 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The header capacity [`ReqwlessTransport`] starts with.
pub const DEFAULT_HEADER_CAPACITY: usize = 16;

/// alf's [`Transport`] over reqwless, for embassy-net (or any `embedded-nal-async` stack).
///
/// - `T`: the TCP stack (embassy-net's `TcpClient`), `D`: the resolver (embassy-net's
///   `DnsSocket`). Both are borrowed for `'a`, like reqwless's own `HttpClient`.
/// - `H`: how many headers a request may carry, `Authorization` and `Connection` included
///   (default 16; see [`with_header_capacity`](Self::with_header_capacity)).
///
/// What it sends: the request line, `Host` (with the port, as in the URL), `Content-Length`
/// for `POST`/`PUT`/`PATCH` and for any request with a body, the request's headers,
/// `Authorization` exactly as alf gives it (never reqwless's `basic_auth`, which neither
/// percent-encodes nor accepts long credentials), and `Connection: close` unless the request
/// sets `Connection` itself.
///
/// What it does not do: follow redirects (a 3xx comes back as it is), reuse connections, or
/// log URLs, headers or bodies.
///
/// How it reads the response: itself (reqwless only resolves, connects and runs TLS), with
/// httparse for the status line, the headers and the chunk-size lines. The receive buffer `rx`
/// first holds the response headers, then the whole body, moved to its start: size it for the
/// larger of the two (a chunked body also needs room for the framing that follows its last
/// byte: a few bytes, more with chunk extensions or trailers). A response that does not fit
/// fails with [`Error::ResponseTooLarge`] (kind `OutOfMemory`), as soon as a `Content-Length`
/// or a chunk size says so. `Content-Length`, chunked (extensions ignored, trailers
/// discarded) and read-until-close bodies are supported; responses to `HEAD` and 204 and 304
/// responses have none; interim 1xx responses are skipped. At most 32 response headers
/// ([`Error::TooManyResponseHeaders`]). A peer that closes the connection before the end of
/// the head or of the body fails the request with [`Error::Truncated`] at once.
pub struct ReqwlessTransport<'a, T, D, const H: usize = DEFAULT_HEADER_CAPACITY> {
    tcp: &'a T,
    dns: &'a D,
    timeout: Duration,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::Tls<'a>>,
}

impl<T, D, const H: usize> core::fmt::Debug for ReqwlessTransport<'_, T, D, H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut s = f.debug_struct("ReqwlessTransport");
        s.field("timeout_ms", &self.timeout.as_millis());
        #[cfg(feature = "tls")]
        s.field("tls", &self.tls);
        s.finish_non_exhaustive()
    }
}

impl<'a, T, D> ReqwlessTransport<'a, T, D>
where
    T: TcpConnect,
    D: Dns,
{
    /// A transport that connects through `tcp` and resolves names through `dns`, with a
    /// timeout of [`DEFAULT_TIMEOUT`] (30 s) per request and room for
    /// [`DEFAULT_HEADER_CAPACITY`] (16) headers per request.
    ///
    /// Without TLS (the `tls` feature and `with_tls`), `https://` URLs fail
    /// with [`Error::TlsNotConfigured`] before anything is sent.
    pub fn new(tcp: &'a T, dns: &'a D) -> Self {
        Self {
            tcp,
            dns,
            timeout: DEFAULT_TIMEOUT,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl<'a, T, D, const H: usize> ReqwlessTransport<'a, T, D, H>
where
    T: TcpConnect,
    D: Dns,
{
    /// Room for `H2` headers per request instead of `H`, `Authorization` and `Connection`
    /// included. The headers are gathered on the stack during a request: `H2` pairs of
    /// `&str` (16 bytes each on a 32-bit target).
    #[must_use]
    pub fn with_header_capacity<const H2: usize>(self) -> ReqwlessTransport<'a, T, D, H2> {
        ReqwlessTransport {
            tcp: self.tcp,
            dns: self.dns,
            timeout: self.timeout,
            #[cfg(feature = "tls")]
            tls: self.tls,
        }
    }

    /// Set the timeout of each request: name resolution, connection, TLS handshake, request
    /// and response together. A request that takes longer fails with [`Error::Timeout`]
    /// (kind `TimedOut`, which alf retries according to its retry policy).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The timeout of each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Use TLS for `https://` URLs. **Read the crate's TLS section first**: what is and is not
    /// verified depends on the [`Tls`](crate::Tls) you build.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn with_tls<'t: 'a>(mut self, tls: crate::tls::Tls<'t>) -> Self {
        self.tls = Some(tls.shorten());
        self
    }

    async fn exchange<'b>(
        &mut self,
        request: &Request<'_>,
        rx: &'b mut [u8],
    ) -> Result<Response<'b>, Error> {
        let target = Target::parse(request.url)?;
        let close = check_headers::<H>(request)?;
        // Checked here, before connecting: reqwless connects first, and with its TLS feature
        // on but no TLS configuration it sends an `https://` request in clear text.
        #[cfg(feature = "tls")]
        let has_tls = self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let has_tls = false;
        if target.https && !has_tls {
            return Err(Error::TlsNotConfigured);
        }
        #[cfg(feature = "tls")]
        let mut client = match &mut self.tls {
            Some(tls) => HttpClient::new_with_tls(self.tcp, self.dns, tls.config()),
            None => HttpClient::new(self.tcp, self.dns),
        };
        #[cfg(not(feature = "tls"))]
        let mut client = HttpClient::new(self.tcp, self.dns);

        // reqwless only resolves and connects (and TLS). The request is written here, in one
        // loop over its pieces, rather than through reqwless's request builder: one copy of the
        // code for requests with and without a body, and none of the builder's Basic-auth and
        // chunked-body code or its `core::fmt` use, which alf never needs (10.6 KB of flash on
        // a Cortex-M). The response is read here too (`crate::response`, with httparse), not by
        // reqwless's `Response` and body readers: less code, and no reqwless 0.14 chunked reader
        // spinning on a connection closed mid-chunk. See examples/SIZE-LOG.md.
        let conn = client
            .request(method(request.method), target.url)
            .await?
            .conn;
        // Without TLS, reqwless connects only `Plain` connections: use the TCP connection
        // directly rather than through reqwless's enum (and its buffered-write variant).
        #[cfg(not(feature = "tls"))]
        let HttpConnection::Plain(mut conn) = conn else {
            return Err(reqwless::Error::Network(ErrorKind::Unsupported).into());
        };
        #[cfg(feature = "tls")]
        let mut conn = conn;
        let mut len = [0u8; 20];
        let len = sends_body(request).then(|| decimal(request.body.len(), &mut len));
        let mut i = 0;
        while let Some(piece) = request_piece(request, &target, len, close, i) {
            conn.write_all(piece).await.map_err(network)?;
            i += 1;
        }
        conn.flush().await.map_err(network)?;
        crate::response::read(&mut conn, request.method == Method::Head, rx).await
    }
}

impl<T, D, const H: usize> Transport for ReqwlessTransport<'_, T, D, H>
where
    T: TcpConnect,
    D: Dns,
{
    type Error = Error;

    async fn send<'b>(
        &mut self,
        request: &Request<'_>,
        rx: &'b mut [u8],
    ) -> Result<Response<'b>, Error> {
        let method = request.method.as_str();
        let result =
            match embassy_time::with_timeout(self.timeout, self.exchange(request, rx)).await {
                Ok(result) => result,
                Err(embassy_time::TimeoutError) => Err(Error::Timeout),
            };
        match &result {
            Ok(r) => trace!("alf-reqwless: {} answered {}", method, r.status),
            Err(e) => debug!("alf-reqwless: {} failed: {:?}", method, e),
        }
        result
    }
}

fn network(e: impl embedded_io::Error) -> reqwless::Error {
    reqwless::Error::Network(e.kind())
}

/// `POST`, `PUT` and `PATCH` always send `Content-Length` (0 for an empty body); other
/// methods only when they have a body (RFC 9110 §8.6).
fn sends_body(request: &Request<'_>) -> bool {
    matches!(request.method, Method::Post | Method::Put | Method::Patch) || !request.body.is_empty()
}

fn method(m: Method) -> reqwless::request::Method {
    use reqwless::request::Method as R;
    match m {
        Method::Get => R::GET,
        Method::Post => R::POST,
        Method::Put => R::PUT,
        Method::Patch => R::PATCH,
        Method::Delete => R::DELETE,
        Method::Head => R::HEAD,
        Method::Options => R::OPTIONS,
    }
}

/// Check the request's headers: valid, none that this transport sets itself, and room for
/// them, `Authorization` and `Connection: close` within `H`. Returns whether to add
/// `Connection: close` (unless the request sets `Connection` itself).
fn check_headers<const H: usize>(request: &Request<'_>) -> Result<bool, InvalidRequest> {
    let mut connection = false;
    for &(name, value) in request.headers {
        if !is_valid_header_name(name) || !is_valid_header_value(value) {
            return Err(InvalidRequest::Header);
        }
        let reserved = ["host", "content-length", "transfer-encoding"]
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r))
            || (request.authorization.is_some() && name.eq_ignore_ascii_case("authorization"));
        if reserved {
            return Err(InvalidRequest::ReservedHeader);
        }
        connection |= name.eq_ignore_ascii_case("connection");
    }
    if let Some(authorization) = request.authorization
        && !is_valid_header_value(authorization)
    {
        return Err(InvalidRequest::Header);
    }
    let count = request.headers.len()
        + usize::from(request.authorization.is_some())
        + usize::from(!connection);
    if count > H {
        return Err(InvalidRequest::TooManyHeaders);
    }
    Ok(!connection)
}

/// `n` in decimal, in `buf`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &str {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    core::str::from_utf8(&buf[start..]).unwrap_or("0")
}

/// The `i`-th piece of the request on the wire, `None` after the last: the request line,
/// `Host` (with the port, as in the URL), `Content-Length` when `len` is given, the request's
/// headers, `Authorization`, `Connection: close` when `close`, the empty line, the body.
fn request_piece<'r>(
    request: &Request<'r>,
    target: &Target<'r>,
    len: Option<&'r str>,
    close: bool,
    mut i: usize,
) -> Option<&'r [u8]> {
    // nourl's (and so reqwless's) path: from the first `/` after the authority, or `/`.
    let path = match target.url.split_once("://") {
        Some((_, rest)) => rest.get(target.authority.len()..).unwrap_or(""),
        None => "",
    };
    let path = if path.is_empty() { "/" } else { path };
    let piece: &str = 'piece: {
        let head = [
            request.method.as_str(),
            " ",
            path,
            " HTTP/1.1\r\nHost: ",
            target.authority,
            "\r\n",
        ];
        if let Some(p) = head.get(i) {
            break 'piece p;
        }
        i -= head.len();
        if let Some(len) = len {
            if let Some(p) = ["Content-Length: ", len, "\r\n"].get(i) {
                break 'piece p;
            }
            i -= 3;
        }
        if let Some(&(name, value)) = request.headers.get(i / 4)
            && let Some(p) = [name, ": ", value, "\r\n"].get(i % 4)
        {
            break 'piece p;
        }
        i -= request.headers.len() * 4;
        if let Some(authorization) = request.authorization {
            if let Some(p) = ["Authorization: ", authorization, "\r\n"].get(i) {
                break 'piece p;
            }
            i -= 3;
        }
        if close {
            if i == 0 {
                break 'piece "Connection: close\r\n";
            }
            i -= 1;
        }
        match i {
            0 => break 'piece "\r\n",
            1 if !request.body.is_empty() => return Some(request.body),
            _ => return None,
        }
    };
    Some(piece.as_bytes())
}

/// The parts of a URL this transport needs, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target<'u> {
    /// The URL without its fragment (a fragment is never sent).
    url: &'u str,
    /// `host[:port]` as written in the URL: the `Host` header's value.
    authority: &'u str,
    /// The scheme is `https`.
    https: bool,
}

impl<'u> Target<'u> {
    fn parse(url: &'u str) -> Result<Self, InvalidRequest> {
        // Visible ASCII only: the URL goes into the request line as it is.
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidRequest::Url);
        }
        let url = url.split_once('#').map_or(url, |(before, _)| before);
        let (scheme, rest) = url.split_once("://").ok_or(InvalidRequest::Url)?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..end];
        // reqwless takes everything up to the first `/` as host and port, so a query right
        // after the authority (`http://host?x`) would become part of the host.
        if authority.is_empty() || authority.contains('@') || rest[end..].starts_with('?') {
            return Err(InvalidRequest::Url);
        }
        Ok(Self {
            url,
            authority,
            https: scheme.eq_ignore_ascii_case("https"),
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:8080/token?x=1#frag").unwrap();
        assert_eq!(t.url, "http://127.0.0.1:8080/token?x=1");
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert!(!t.https);
        let t = Target::parse("HTTPS://auth.example.com").unwrap();
        assert_eq!(t.authority, "auth.example.com");
        assert!(t.https);
        let t = Target::parse("http://[::1]:80/a").unwrap();
        assert_eq!(t.authority, "[::1]:80");
        for bad in [
            "",
            "auth.example.com/token",
            "http:///token",
            "http://user:pass@host/token",
            "http://host?x=1",
            "http://host/to ken",
            "http://host/token\r\nX: y",
            "http://hôst/",
        ] {
            assert_eq!(Target::parse(bad), Err(InvalidRequest::Url), "{bad}");
        }
    }

    fn head<const H: usize>(r: &Request<'_>) -> Result<std::string::String, InvalidRequest> {
        let close = check_headers::<H>(r)?;
        let target = Target::parse(r.url)?;
        let mut len = [0u8; 20];
        let len = sends_body(r).then(|| decimal(r.body.len(), &mut len));
        let mut out = std::vec::Vec::new();
        let mut i = 0;
        while let Some(p) = request_piece(r, &target, len, close, i) {
            out.extend_from_slice(p);
            i += 1;
        }
        Ok(std::string::String::from_utf8(out).unwrap())
    }

    #[test]
    fn request_on_the_wire() {
        let hs = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept", "application/json"),
        ];
        let mut r = Request::new(Method::Post, "http://h:8080/t?x=1#f")
            .headers(&hs)
            .body(b"a=b");
        r.authorization = Some("Basic YTpi");
        assert_eq!(
            head::<16>(&r).unwrap(),
            "POST /t?x=1 HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 3\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n\
             Authorization: Basic YTpi\r\nConnection: close\r\n\r\na=b"
        );
        assert_eq!(head::<3>(&r), Err(InvalidRequest::TooManyHeaders));
        assert!(head::<4>(&r).is_ok());

        let keep = [("connection", "keep-alive")];
        assert_eq!(
            head::<1>(&Request::new(Method::Get, "http://h").headers(&keep)).unwrap(),
            "GET / HTTP/1.1\r\nHost: h\r\nconnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            head::<1>(&Request::new(Method::Post, "https://h/")).unwrap(),
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let mut big = [0u8; 20];
        assert_eq!(
            decimal(usize::MAX, &mut big),
            std::format!("{}", usize::MAX)
        );
        assert_eq!(decimal(0, &mut big), "0");
        assert_eq!(decimal(1234, &mut big), "1234");

        for bad in [
            [("Host", "evil")],
            [("Content-Length", "5")],
            [("transfer-encoding", "chunked")],
        ] {
            let r = Request::new(Method::Get, "http://h/").headers(&bad);
            assert_eq!(check_headers::<4>(&r), Err(InvalidRequest::ReservedHeader));
        }
        let twice = [("Authorization", "Bearer x")];
        let mut r = Request::new(Method::Get, "http://h/").headers(&twice);
        assert!(
            check_headers::<4>(&r).is_ok(),
            "an Authorization header alone is the caller's choice"
        );
        r.authorization = Some("Bearer y");
        assert_eq!(check_headers::<4>(&r), Err(InvalidRequest::ReservedHeader));

        let injected = [("X-A", "1\r\nX-B: 2")];
        let r = Request::new(Method::Get, "http://h/").headers(&injected);
        assert_eq!(check_headers::<4>(&r), Err(InvalidRequest::Header));
        let mut r = Request::new(Method::Get, "http://h/");
        r.authorization = Some("Bearer a\r\nX: y");
        assert_eq!(check_headers::<4>(&r), Err(InvalidRequest::Header));
    }

    #[test]
    fn content_length_rules() {
        assert!(sends_body(&Request::new(Method::Post, "http://h/")));
        assert!(sends_body(&Request::new(Method::Put, "http://h/")));
        assert!(!sends_body(&Request::new(Method::Get, "http://h/")));
        assert!(!sends_body(&Request::new(Method::Delete, "http://h/")));
        assert!(sends_body(
            &Request::new(Method::Delete, "http://h/").body(b"x")
        ));
    }
}
