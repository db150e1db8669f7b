//! [`ReqwestTransport`]: alf's [`Transport`] over a reqwest client that never follows
//! redirects.

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use alf::{Request, Response, Transport};
use embedded_io::ErrorKind;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

/// How long a token request may take, connecting and reading the body included, unless
/// [`TransportBuilder::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// alf's [`Transport`] over [`reqwest`]: sends the token request and reads the answer.
///
/// It follows the [`Transport`] contract to the letter:
/// - its reqwest client is built with [`redirect::Policy::none()`](reqwest::redirect::Policy::none):
///   a 3xx is handed back to alf as it is, so credentials never go to another URL;
/// - the `Authorization` value alf gives it is sent as a sensitive header (reqwest and hyper
///   keep it out of their logs and `Debug` output);
/// - the body is streamed into alf's receive buffer, and a body that does not fit ends the
///   request with an [`OutOfMemory`](ErrorKind::OutOfMemory) error as soon as it is known
///   (from `Content-Length`, or from the first chunk that overflows);
/// - every response header is shown to [`Response::observe_header`];
/// - every request has a timeout ([`DEFAULT_TIMEOUT`] unless set).
///
/// Cloning is cheap and shares reqwest's connection pool.
///
/// ```no_run
/// use alf_reqwest::ReqwestTransport;
/// use std::time::Duration;
///
/// let transport = ReqwestTransport::builder().timeout(Duration::from_secs(10)).build()?;
/// # Ok::<(), alf_reqwest::TransportError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    timeout: Duration,
}

impl ReqwestTransport {
    /// A transport with the default settings.
    ///
    /// # Panics
    /// When reqwest cannot build its client (the TLS backend failed to initialise), as
    /// `reqwest::Client::new` does. [`ReqwestTransport::builder`]`().build()` returns the error
    /// instead.
    pub fn new() -> Self {
        match Self::builder().build() {
            Ok(t) => t,
            Err(e) => panic!("alf-reqwest: cannot build the reqwest client: {e}"),
        }
    }

    /// Configure a transport.
    pub fn builder() -> TransportBuilder {
        TransportBuilder {
            timeout: DEFAULT_TIMEOUT,
            reqwest: None,
        }
    }

    /// The timeout applied to each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl Default for ReqwestTransport {
    /// Same as [`ReqwestTransport::new`], including its panic.
    fn default() -> Self {
        Self::new()
    }
}

/// Builder for [`ReqwestTransport`]; see [`ReqwestTransport::builder`].
#[derive(Debug)]
pub struct TransportBuilder {
    timeout: Duration,
    reqwest: Option<reqwest::ClientBuilder>,
}

impl TransportBuilder {
    /// How long one token request may take in all: connecting, sending, and reading the whole
    /// response. Default [`DEFAULT_TIMEOUT`]. A request that takes longer fails with a
    /// [`TimedOut`](ErrorKind::TimedOut) error, which alf's retry policy retries.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Start from this reqwest builder (for proxies, root certificates, a user agent...). Its
    /// redirect policy is replaced by [`Policy::none()`](reqwest::redirect::Policy::none) and
    /// its timeout by this builder's: alf's token requests never follow redirects.
    pub fn reqwest_builder(mut self, builder: reqwest::ClientBuilder) -> Self {
        self.reqwest = Some(builder);
        self
    }

    /// Build the transport.
    ///
    /// # Errors
    /// When reqwest cannot build its client (for example the TLS backend failed to initialise).
    pub fn build(self) -> Result<ReqwestTransport, TransportError> {
        let client = self
            .reqwest
            .unwrap_or_default()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .build()
            .map_err(|e| TransportError::from_reqwest("cannot build the reqwest client", e))?;
        Ok(ReqwestTransport {
            client,
            timeout: self.timeout,
        })
    }
}

impl Transport for ReqwestTransport {
    type Error = TransportError;

    async fn send<'b>(
        &mut self,
        request: &Request<'_>,
        rx: &'b mut [u8],
    ) -> Result<Response<'b>, TransportError> {
        let method = reqwest::Method::from_bytes(request.method.as_str().as_bytes())
            .map_err(|_| TransportError::new(ErrorKind::InvalidInput, "invalid method"))?;
        let mut headers = HeaderMap::with_capacity(request.headers.len() + 1);
        for (name, value) in request.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| TransportError::new(ErrorKind::InvalidInput, "invalid header name"))?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                TransportError::new(ErrorKind::InvalidInput, "invalid header value")
            })?;
            headers.append(name, value);
        }
        if let Some(authorization) = request.authorization {
            let mut value = HeaderValue::from_str(authorization).map_err(|_| {
                TransportError::new(ErrorKind::InvalidInput, "invalid Authorization value")
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut response = self
            .client
            .request(method, request.url)
            .headers(headers)
            .body(request.body.to_vec())
            .send()
            .await
            .map_err(|e| TransportError::from_reqwest("token request failed", e))?;

        if response
            .content_length()
            .is_some_and(|n| n > rx.len() as u64)
        {
            return Err(TransportError::body_too_large());
        }
        let mut len = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| TransportError::from_reqwest("reading the token response failed", e))?
        {
            let end = len + chunk.len();
            let Some(dst) = rx.get_mut(len..end) else {
                return Err(TransportError::body_too_large());
            };
            dst.copy_from_slice(&chunk);
            len = end;
        }
        let mut out = Response::new(response.status().as_u16(), &rx[..len]);
        for (name, value) in response.headers() {
            out.observe_header(name.as_str(), value.as_bytes());
        }
        Ok(out)
    }
}

/// Why a [`ReqwestTransport`] request failed.
///
/// Its [`kind`](embedded_io::Error::kind) drives alf's retries: timeouts are
/// [`TimedOut`](ErrorKind::TimedOut), failed connections
/// [`ConnectionRefused`](ErrorKind::ConnectionRefused), a connection or body cut short
/// [`ConnectionReset`](ErrorKind::ConnectionReset), an undecodable body
/// [`InvalidData`](ErrorKind::InvalidData), a request reqwest cannot build (bad URL, bad
/// header) [`InvalidInput`](ErrorKind::InvalidInput), a body larger than alf's receive buffer
/// [`OutOfMemory`](ErrorKind::OutOfMemory).
///
/// `Display` and `Debug` show what failed and reqwest's error without its URL; they never
/// show a header, a request body, a token or a secret.
#[derive(Clone)]
pub struct TransportError {
    kind: ErrorKind,
    what: &'static str,
    source: Option<Arc<reqwest::Error>>,
}

impl TransportError {
    fn new(kind: ErrorKind, what: &'static str) -> Self {
        Self {
            kind,
            what,
            source: None,
        }
    }

    fn body_too_large() -> Self {
        Self::new(
            ErrorKind::OutOfMemory,
            "the response body is larger than the receive buffer",
        )
    }

    /// Classify a reqwest error. The URL is removed from it: the error may end up in logs.
    pub(crate) fn from_reqwest(what: &'static str, e: reqwest::Error) -> Self {
        let kind = kind_of(&e);
        Self {
            kind,
            what,
            source: Some(Arc::new(e.without_url())),
        }
    }

    /// The reqwest error behind this one, if any (its URL removed).
    pub fn reqwest_error(&self) -> Option<&reqwest::Error> {
        self.source.as_deref()
    }
}

/// The `embedded_io` kind of a reqwest error; see [`TransportError`].
pub(crate) fn kind_of(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        ErrorKind::TimedOut
    } else if e.is_builder() {
        ErrorKind::InvalidInput
    } else if e.is_connect() {
        ErrorKind::ConnectionRefused
    } else if cut_short(e) {
        // reqwest reports a body read that failed as a decode error, even when the connection
        // was reset or closed mid-body: that is a transient failure, not bad data.
        ErrorKind::ConnectionReset
    } else if e.is_decode() || e.is_redirect() {
        ErrorKind::InvalidData
    } else if e.is_body() || e.is_request() {
        ErrorKind::ConnectionReset
    } else {
        ErrorKind::Other
    }
}

/// `true` when an I/O error behind `e` says the connection was reset, aborted or closed
/// before the response was complete.
fn cut_short(e: &reqwest::Error) -> bool {
    let mut source = core::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            return matches!(
                io.kind(),
                Io::ConnectionReset | Io::ConnectionAborted | Io::UnexpectedEof | Io::BrokenPipe
            );
        }
        source = s.source();
    }
    false
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportError")
            .field("kind", &self.kind)
            .field("what", &self.what)
            .field("source", &self.source)
            .finish()
    }
}

/// `Display` already shows reqwest's message, so [`source`](core::error::Error::source) goes
/// on from reqwest's own cause (use [`TransportError::reqwest_error`] for the reqwest error).
impl core::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        self.source.as_deref().and_then(core::error::Error::source)
    }
}

impl embedded_io::Error for TransportError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}
