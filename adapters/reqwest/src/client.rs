//! [`Client`]: a session that adds `Authorization: Bearer` to reqwest requests, the Rust
//! counterpart of the Python alf `Client` (a `requests.Session`).
//!
//! # How a request goes
//! 1. The request is built by reqwest. If it already has an `Authorization` header it is
//!    refused ([`Error::Request`]): alf never overwrites a header you set.
//! 2. A token is taken from the core [`alf::Client`]: the cached one, or a new one from the
//!    token endpoint (one fetch for all concurrent callers, retried per the
//!    [`RetryPolicy`](alf::RetryPolicy)). If none can be had, [`Error::Token`] is returned and
//!    the request is **never sent**.
//! 3. The request is sent with `Authorization: Bearer <token>` (a sensitive header).
//! 4. On a 401 the token is invalidated (only if it is still the one that was rejected, so many
//!    concurrent 401s cost one fetch), a token is taken again, and the request is sent once
//!    more; that second response is returned as it is, whatever its status. The replay happens
//!    only when the body can be copied ([`reqwest::Request::try_clone`]); a streaming body is
//!    not replayed and the 401 is returned. A 401 whose `WWW-Authenticate` Bearer challenge
//!    says `insufficient_scope` or `invalid_request` is returned at once: a new token with the
//!    same scope would get the same answer.
//!
//! # Redirects
//! Resource requests use [`same_origin_redirects`]: redirects are followed only while they
//! stay on the origin (scheme, host and port) of the URL you asked for; the first redirect to
//! another origin is not followed and its 3xx response is returned to you. So the bearer token
//! never leaves the origin you chose. Token requests never follow redirects at all.

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use alf::{BearerError, Config, Lease};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use reqwest::redirect::Policy;
use reqwest::{IntoUrl, Method, StatusCode, Url};
use serde::Serialize;

use crate::clock::TokioClock;
use crate::error::Error;
use crate::transport::{DEFAULT_TIMEOUT, ReqwestTransport, TransportError};

/// The core client this crate drives: alf's token engine over [`ReqwestTransport`] and
/// [`TokioClock`], with the default capacities (tokens up to 2 KiB, token responses up to
/// 4 KiB).
pub type CoreClient = alf::Client<ReqwestTransport, TokioClock>;

/// Most redirects [`same_origin_redirects`] follows in one request.
pub const MAX_REDIRECTS: usize = 10;

/// A redirect policy that never carries a request (and so its bearer token) to another origin.
///
/// Redirects are followed while the target has the same scheme, host and port as the URL of
/// the original request, up to [`MAX_REDIRECTS`]. A redirect to another origin, or one past
/// the limit, is not followed: its 3xx response is what the request returns.
///
/// [`Client`] uses it for resource requests. Use it in your own reqwest client when you hand
/// one to [`Builder::reqwest_client`].
pub fn same_origin_redirects() -> Policy {
    Policy::custom(|attempt| {
        let stays = attempt
            .previous()
            .first()
            .is_some_and(|first| same_origin(first, attempt.url()));
        if stays && attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// An HTTP client that gets OAuth 2.0 tokens by itself: the Rust counterpart of the Python alf
/// `Client`.
///
/// Build one from an [`alf::Config`], then use it like a [`reqwest::Client`]:
/// [`get`](Self::get), [`post`](Self::post)... return a [`RequestBuilder`] whose
/// [`send`](RequestBuilder::send) adds the token, and replays the request once on a 401. See
/// the [module docs](crate::client) for exactly what `send` does.
///
/// Cloning is cheap (an [`Arc`]): all clones share one token cache, one connection pool and
/// one background refresh task. The task (see [`Builder::proactive_refresh`]) stops when the
/// last clone is dropped.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = alf::Config::builder("https://auth.example.com/token", "my-client", "my-secret")
///     .scope("orders:read")
///     .build()?;
/// let client = alf_reqwest::Client::new(config);
/// let orders = client.get("https://api.example.com/orders").send().await?;
/// println!("{}", orders.status());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    core: Arc<CoreClient>,
    http: reqwest::Client,
    /// Applied to resource requests that set no timeout of their own.
    timeout: Option<Duration>,
    refresher: Option<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last clone of the client is gone: stop the refresh task (it holds the core, not
        // this struct, so it would otherwise run forever).
        if let Some(task) = &self.refresher {
            task.abort();
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("core", &self.inner.core)
            .field("timeout", &self.inner.timeout)
            .field("proactive_refresh", &self.inner.refresher.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with the default settings: 30 s timeouts, resource redirects limited to the
    /// same origin, no proactive refresh.
    ///
    /// # Panics
    /// When reqwest cannot build its clients (the TLS backend failed to initialise), as
    /// `reqwest::Client::new` does. [`Client::builder`]`(config).build()` returns the error
    /// instead.
    pub fn new(config: Config) -> Self {
        match Self::builder(config).build() {
            Ok(c) => c,
            Err(e) => panic!("alf-reqwest: cannot build the client: {e}"),
        }
    }

    /// Configure a client.
    pub fn builder(config: Config) -> Builder {
        Builder {
            config,
            timeout: None,
            http: None,
            transport: None,
            proactive_refresh: false,
        }
    }

    /// Start a `GET` request.
    pub fn get<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::GET, url)
    }
    /// Start a `POST` request.
    pub fn post<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::POST, url)
    }
    /// Start a `PUT` request.
    pub fn put<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::PUT, url)
    }
    /// Start a `PATCH` request.
    pub fn patch<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::PATCH, url)
    }
    /// Start a `DELETE` request.
    pub fn delete<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }
    /// Start a `HEAD` request.
    pub fn head<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    /// Start a request with any method. An invalid URL is reported by
    /// [`send`](RequestBuilder::send).
    pub fn request<U: IntoUrl>(&self, method: Method, url: U) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            inner: self.inner.http.request(method, url),
        }
    }

    /// A valid access token, fetched if needed (for a request alf does not send for you).
    ///
    /// # Security
    /// The token is a live credential: never log it.
    pub async fn access_token(&self) -> Result<alf::AccessToken, Error> {
        Ok(self.inner.core.access_token().await?)
    }

    /// The core token engine (state, [`invalidate`](alf::Client::invalidate),
    /// [`forget_token`](alf::Client::forget_token)...).
    pub fn core(&self) -> &CoreClient {
        &self.inner.core
    }

    /// The reqwest client used for resource requests.
    pub fn reqwest_client(&self) -> &reqwest::Client {
        &self.inner.http
    }

    async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response, Error> {
        let mut request = request;
        if request.headers().contains_key(AUTHORIZATION) {
            return Err(Error::Request(
                alf::RequestError::AuthorizationHeaderPresent,
            ));
        }
        if request.timeout().is_none() {
            *request.timeout_mut() = self.inner.timeout;
        }
        // A copy for the replay, made before the token goes in. `None` for a streaming body.
        let replay = request.try_clone();
        let core = &*self.inner.core;

        let lease = core.token().await?;
        set_bearer(&mut request, &lease)?;
        let response = self
            .inner
            .http
            .execute(request)
            .await
            .map_err(Error::http)?;
        if response.status() != StatusCode::UNAUTHORIZED || !new_token_may_help(&response) {
            return Ok(response);
        }
        // The token was rejected: drop it (unless someone already replaced it), so that the
        // next token() fetches a new one; concurrent rejections of the same token cost one
        // fetch.
        core.invalidate(lease.generation);
        drop(lease);
        let Some(mut second) = replay else {
            return Ok(response);
        };
        drop(response);
        let lease = core.token().await?;
        set_bearer(&mut second, &lease)?;
        self.inner.http.execute(second).await.map_err(Error::http)
    }
}

/// `false` when the 401's Bearer challenge says a new token would not change the answer.
fn new_token_may_help(response: &reqwest::Response) -> bool {
    !response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .any(|v| {
            let challenge = v.to_str().ok().and_then(BearerError::from_challenge);
            matches!(
                challenge,
                Some(BearerError::InsufficientScope | BearerError::InvalidRequest)
            )
        })
}

fn set_bearer(request: &mut reqwest::Request, lease: &Lease) -> Result<(), Error> {
    // The core only hands out tokens that are valid header values; this cannot fail in
    // practice, but a failure is an error, not a panic.
    let mut value = HeaderValue::from_str(lease.token.header_value()).map_err(|_| {
        Error::Token(alf::Error::InvalidResponse(
            alf::ResponseError::InvalidAccessToken,
        ))
    })?;
    value.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

/// Builder for [`Client`]; see [`Client::builder`].
pub struct Builder {
    config: Config,
    timeout: Option<Duration>,
    http: Option<reqwest::Client>,
    transport: Option<ReqwestTransport>,
    proactive_refresh: bool,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("timeout", &self.timeout)
            .field("proactive_refresh", &self.proactive_refresh)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Timeout for token requests and for resource requests (each request in all:
    /// connecting, sending, reading the body). Default 30 s. A resource request can set its
    /// own with [`RequestBuilder::timeout`].
    ///
    /// With [`reqwest_client`](Self::reqwest_client), it applies to resource requests only when
    /// set here; otherwise that client's own timeout applies.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Send resource requests with this reqwest client (proxies, certificates, cookies,
    /// default headers...). Token requests always use a client of their own that never
    /// follows redirects (see [`token_transport`](Self::token_transport)).
    ///
    /// # Security
    /// Its redirect policy is yours: build it with
    /// `.redirect(alf_reqwest::same_origin_redirects())` (or `Policy::none()`) so that the
    /// bearer token is never carried to another origin. reqwest's default policy does remove
    /// `Authorization` on a redirect to another host or port, but follows it. Do not give it
    /// a default `Authorization` header.
    pub fn reqwest_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Send token requests with this transport instead of one built from
    /// [`timeout`](Self::timeout).
    pub fn token_transport(mut self, transport: ReqwestTransport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Keep the token fresh in the background (default `false`).
    ///
    /// A tokio task fetches a token right away, then refreshes it at its refresh time
    /// (`refresh_at`, before expiry; see [`RefreshPolicy`](alf::RefreshPolicy)), so requests
    /// never wait for the token endpoint in steady state. After a failed fetch it tries again
    /// after the retry policy's `backoff_max`. The task stops when the last clone of the
    /// [`Client`] is dropped. [`build`](Self::build) must then run inside a tokio runtime.
    pub fn proactive_refresh(mut self, on: bool) -> Self {
        self.proactive_refresh = on;
        self
    }

    /// Build the client.
    ///
    /// # Errors
    /// [`Error::Token`] with a transport error, or [`Error::Http`], when reqwest cannot build
    /// a client (the TLS backend failed to initialise); [`Error::NoRuntime`] when proactive
    /// refresh is on and there is no current tokio runtime.
    pub fn build(self) -> Result<Client, Error> {
        let transport = match self.transport {
            Some(t) => t,
            None => ReqwestTransport::builder()
                .timeout(self.timeout.unwrap_or(DEFAULT_TIMEOUT))
                .build()
                .map_err(|e: TransportError| Error::Token(alf::Error::Transport(e)))?,
        };
        let (http, timeout) = match self.http {
            Some(http) => (http, self.timeout),
            None => {
                let http = reqwest::Client::builder()
                    .redirect(same_origin_redirects())
                    .build()
                    .map_err(Error::http)?;
                (http, Some(self.timeout.unwrap_or(DEFAULT_TIMEOUT)))
            }
        };
        let core = Arc::new(CoreClient::new(self.config, transport, TokioClock::new()));
        let refresher = if self.proactive_refresh {
            let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
            let core = Arc::clone(&core);
            let task = runtime.spawn(async move { core.keep_fresh().await });
            Some(task.abort_handle())
        } else {
            None
        };
        Ok(Client {
            inner: Arc::new(Inner {
                core,
                http,
                timeout,
                refresher,
            }),
        })
    }
}

/// A resource request being built; [`send`](Self::send) adds the token and sends it.
///
/// The methods mirror [`reqwest::RequestBuilder`]'s. There is no `bearer_auth` or `basic_auth`:
/// the `Authorization` header is alf's, and a request that sets one is refused.
pub struct RequestBuilder {
    client: Client,
    inner: reqwest::RequestBuilder,
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // reqwest's builder Debug shows headers, which may hold the caller's own secrets.
        f.debug_struct("RequestBuilder").finish_non_exhaustive()
    }
}

impl RequestBuilder {
    fn map(self, f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Self {
        Self {
            client: self.client,
            inner: f(self.inner),
        }
    }

    /// Add a header. An `Authorization` header makes [`send`](Self::send) fail with
    /// [`alf::RequestError::AuthorizationHeaderPresent`].
    pub fn header<K, V>(self, key: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.map(|b| b.header(key, value))
    }

    /// Add headers (merged with those already set).
    pub fn headers(self, headers: HeaderMap) -> Self {
        self.map(|b| b.headers(headers))
    }

    /// Append query parameters to the URL (serialised with `serde_urlencoded`).
    pub fn query<T: Serialize + ?Sized>(self, query: &T) -> Self {
        self.map(|b| b.query(query))
    }

    /// Set the body. A body made from bytes or a string is replayed after a 401; a streaming
    /// body ([`reqwest::Body::wrap`], or `wrap_stream` with reqwest's `stream` feature) is
    /// not.
    pub fn body<T: Into<reqwest::Body>>(self, body: T) -> Self {
        self.map(|b| b.body(body))
    }

    /// Send a form (`application/x-www-form-urlencoded`) body.
    pub fn form<T: Serialize + ?Sized>(self, form: &T) -> Self {
        self.map(|b| b.form(form))
    }

    /// Send a JSON body (`application/json`).
    #[cfg(feature = "json")]
    pub fn json<T: Serialize + ?Sized>(self, json: &T) -> Self {
        self.map(|b| b.json(json))
    }

    /// Timeout for this request (each attempt: the first send and the replay after a 401 get
    /// this much each), instead of the client's.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.map(|b| b.timeout(timeout))
    }

    /// Add the token and send; see the [module docs](crate::client) for the whole story.
    ///
    /// Returns the response whatever its status (after at most one replay on a 401).
    ///
    /// # Errors
    /// - [`Error::Token`]: no token could be had; the request was not sent.
    /// - [`Error::Request`]: the request already had an `Authorization` header; not sent.
    /// - [`Error::Http`]: reqwest could not build or send the request.
    ///
    /// The future is `Send`: it can be spawned on a multi-threaded tokio runtime.
    pub async fn send(self) -> Result<reqwest::Response, Error> {
        let request = self.inner.build().map_err(Error::http)?;
        self.client.execute(request).await
    }
}
