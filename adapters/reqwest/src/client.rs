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
//! # Token stores
//! By default the token lives in the client's memory only ([`NoStore`]). With
//! [`Builder::store`] the core also keeps it in an [`alf::TokenStore`] (Redis with `alf-redis`,
//! Memcached with `alf-memcached`...), so that every process using the same store and the same
//! configuration reuses one token, and only one of them asks the token endpoint for it. A store
//! that fails or is down never fails a request: alf logs a warning and fetches the token itself.
//! [`TokioClock`] knows the wall time ([`SystemTime`](std::time::SystemTime)), which the core
//! needs to read and write stored expiry times.
//!
//! # Redirects
//! Resource requests use [`same_origin_redirects`]: redirects are followed only while they
//! stay on the origin (scheme, host and port) of the URL you asked for; the first redirect to
//! another origin is not followed and its 3xx response is returned to you. So the bearer token
//! never leaves the origin you chose. Token requests never follow redirects at all.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::Poll;
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use alf::{BearerError, Config, Lease, NoStore, TokenStore};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use reqwest::redirect::Policy;
use reqwest::{IntoUrl, Method, StatusCode, Url};
use serde::Serialize;

use crate::clock::TokioClock;
use crate::error::Error;
use crate::transport::{DEFAULT_TIMEOUT, ReqwestTransport, TransportError};

/// The core client this crate drives: alf's token engine over [`ReqwestTransport`] and
/// [`TokioClock`], with the token store `S` ([`NoStore`] by default) and the default capacities
/// (tokens up to 2 KiB, token responses up to 4 KiB).
pub type CoreClient<S = NoStore> = alf::Client<ReqwestTransport, TokioClock, S>;

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
/// `S` is the [token store](alf::TokenStore) ([`NoStore`] by default: the token lives in this
/// client only); set one with [`Builder::store`] to share the token with other processes.
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
pub struct Client<S = NoStore> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Client<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<S> {
    core: Arc<CoreClient<S>>,
    http: reqwest::Client,
    /// Applied to resource requests that set no timeout of their own.
    timeout: Option<Duration>,
    /// Dropped with the last clone of the client, which stops the refresh (it holds the core,
    /// not this struct, so it would otherwise run forever).
    refresher: Option<Refresher>,
    /// The `Authorization` value of the token last used, made once per token rather than once
    /// per request.
    bearer: BearerCache,
}

/// The `Authorization` header value of the last token, keyed by its generation (a generation
/// names one token of one core client, so a hit is always the right value). Cloning a
/// `HeaderValue` bumps a reference count; making one checks and copies the whole token and
/// allocates, about 1.4k instructions per request for a 600-byte token.
///
/// The cached value is a copy of the live token in reqwest's `Bytes`, not wiped when it is
/// replaced; every request made such a copy (and freed it unwiped) before this cache existed,
/// and reqwest's connection buffers hold more.
#[derive(Default)]
struct BearerCache(std::sync::Mutex<Option<(u32, HeaderValue)>>);

impl BearerCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u32, HeaderValue)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached value if it is that of token `generation`.
    fn get(&self, generation: u32) -> Option<HeaderValue> {
        match &*self.lock() {
            Some((cached, value)) if *cached == generation => Some(value.clone()),
            _ => None,
        }
    }

    fn value(&self, lease: &Lease) -> Result<HeaderValue, Error> {
        let mut cached = self.lock();
        if let Some((generation, value)) = &*cached
            && *generation == lease.generation
        {
            return Ok(value.clone());
        }
        let value = bearer_value(lease)?;
        *cached = Some((lease.generation, value.clone()));
        Ok(value)
    }
}

impl<S> fmt::Debug for Client<S> {
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
            store: NoStore,
        }
    }
}

impl<S: TokenStore + Send + 'static> Client<S> {
    /// Start a `GET` request.
    pub fn get<U: IntoUrl>(&self, url: U) -> RequestBuilder<S> {
        self.request(Method::GET, url)
    }
    /// Start a `POST` request.
    pub fn post<U: IntoUrl>(&self, url: U) -> RequestBuilder<S> {
        self.request(Method::POST, url)
    }
    /// Start a `PUT` request.
    pub fn put<U: IntoUrl>(&self, url: U) -> RequestBuilder<S> {
        self.request(Method::PUT, url)
    }
    /// Start a `PATCH` request.
    pub fn patch<U: IntoUrl>(&self, url: U) -> RequestBuilder<S> {
        self.request(Method::PATCH, url)
    }
    /// Start a `DELETE` request.
    pub fn delete<U: IntoUrl>(&self, url: U) -> RequestBuilder<S> {
        self.request(Method::DELETE, url)
    }
    /// Start a `HEAD` request.
    pub fn head<U: IntoUrl>(&self, url: U) -> RequestBuilder<S> {
        self.request(Method::HEAD, url)
    }

    /// Start a request with any method. An invalid URL is reported by
    /// [`send`](RequestBuilder::send).
    pub fn request<U: IntoUrl>(&self, method: Method, url: U) -> RequestBuilder<S> {
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
    /// [`forget_token`](alf::Client::forget_token),
    /// [`with_store_ref`](alf::Client::with_store_ref)...).
    pub fn core(&self) -> &CoreClient<S> {
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
        // Only when there is one to set: `timeout_mut` creates the request's extensions map,
        // which the replay copy below would then clone (two allocations per request for
        // nothing).
        if let Some(timeout) = self.inner.timeout
            && request.timeout().is_none()
        {
            *request.timeout_mut() = Some(timeout);
        }
        // A copy for the replay, made before the token goes in. `None` for a streaming body.
        let replay = request.try_clone();
        let core = &*self.inner.core;

        let generation = self.authorize(&mut request).await?;
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
        core.invalidate(generation);
        let Some(mut second) = replay else {
            return Ok(response);
        };
        drop(response);
        self.authorize(&mut second).await?;
        self.inner.http.execute(second).await.map_err(Error::http)
    }

    /// Put `Authorization: Bearer <token>` on `request`; returns the token's generation.
    ///
    /// The core is asked only for the generation of a valid token (fetched if needed, as
    /// `token()` would), which copies nothing; while it is the generation of the cached
    /// header value, that value is used. Only a new generation costs a `token()` call, whose
    /// copy of the token (a `Lease`, as large as the token capacity) is dropped, and so
    /// wiped, here rather than kept in the request's future while it is sent.
    async fn authorize(&self, request: &mut reqwest::Request) -> Result<u32, Error> {
        let core = &*self.inner.core;
        let generation = core.generation().await?;
        if let Some(value) = self.inner.bearer.get(generation) {
            request.headers_mut().insert(AUTHORIZATION, value);
            return Ok(generation);
        }
        let lease = core.token().await?;
        let value = self.inner.bearer.value(&lease)?;
        request.headers_mut().insert(AUTHORIZATION, value);
        Ok(lease.generation)
    }
}

/// `false` when the 401's Bearer challenge says a new token would not change the answer.
pub(crate) fn new_token_may_help(response: &reqwest::Response) -> bool {
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

#[cfg(feature = "middleware")]
pub(crate) fn set_bearer(request: &mut reqwest::Request, lease: &Lease) -> Result<(), Error> {
    request
        .headers_mut()
        .insert(AUTHORIZATION, bearer_value(lease)?);
    Ok(())
}

/// `Bearer <token>` as a sensitive header value.
fn bearer_value(lease: &Lease) -> Result<HeaderValue, Error> {
    // The core only hands out tokens that are valid header values; this cannot fail in
    // practice, but a failure is an error, not a panic.
    let mut value = HeaderValue::from_str(lease.token.header_value()).map_err(|_| {
        Error::Token(alf::Error::InvalidResponse(
            alf::ResponseError::InvalidAccessToken,
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Builder for [`Client`]; see [`Client::builder`]. `S` is the token store, set with
/// [`store`](Self::store).
pub struct Builder<S = NoStore> {
    config: Config,
    timeout: Option<Duration>,
    http: Option<reqwest::Client>,
    transport: Option<ReqwestTransport>,
    proactive_refresh: bool,
    store: S,
}

impl<S> fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The store is not shown: its Debug is its own business (a URL may hold a password).
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("timeout", &self.timeout)
            .field("proactive_refresh", &self.proactive_refresh)
            .finish_non_exhaustive()
    }
}

impl<S> Builder<S> {
    /// Keep the token in `store` too, so that other processes (and other clients) using the
    /// same store and the same configuration reuse it instead of fetching their own; for
    /// example `alf_redis::RedisStore` or `alf_memcached::MemcachedStore`.
    ///
    /// When the token is missing or due, one process takes a short lock in the store and
    /// fetches; the others wait briefly for its token (see
    /// [`StorePolicy`](alf::StorePolicy), set on the [`Config`]). A store that fails, times
    /// out or is down never fails a request: the client fetches the token itself.
    ///
    /// Give each client its own store value (stores such as `RedisStore` carry the identity
    /// of the fetch lock); they share the token through the server they talk to.
    ///
    /// ```no_run
    /// # async fn run(config: alf::Config, store: alf::MemoryStore) -> Result<(), alf_reqwest::Error> {
    /// let client = alf_reqwest::Client::builder(config).store(store).build()?;
    /// let response = client.get("https://api.example.com/orders").send().await?;
    /// # let _ = response;
    /// # Ok(())
    /// # }
    /// ```
    pub fn store<S2>(self, store: S2) -> Builder<S2> {
        Builder {
            config: self.config,
            timeout: self.timeout,
            http: self.http,
            transport: self.transport,
            proactive_refresh: self.proactive_refresh,
            store,
        }
    }

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
    ///
    /// # With a token store
    /// With the default [`NoStore`] the refresh is a task spawned on the runtime. With a
    /// [`store`](Self::store) it runs on a thread of its own (named `alf-refresh`), driven with
    /// [`Handle::block_on`](tokio::runtime::Handle::block_on) on the runtime `build` ran in:
    /// its I/O and timers are that runtime's, but its future need not be `Send`, which this
    /// crate cannot prove for an arbitrary store's `async fn`s (your concrete store's `send()`
    /// futures are still `Send` when its futures are). The thread also stops with the last
    /// clone of the client, and when the runtime shuts down.
    pub fn proactive_refresh(mut self, on: bool) -> Self {
        self.proactive_refresh = on;
        self
    }
}

impl<S: TokenStore + Send + 'static> Builder<S> {
    /// Build the client.
    ///
    /// # Errors
    /// [`Error::Token`] with a transport error, or [`Error::Http`], when reqwest cannot build
    /// a client (the TLS backend failed to initialise); [`Error::NoRuntime`] when proactive
    /// refresh is on and there is no current tokio runtime; [`Error::Thread`] when the refresh
    /// thread of a client with a store cannot be started.
    pub fn build(self) -> Result<Client<S>, Error> {
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
        let core = Arc::new(CoreClient::with_store(
            self.config,
            transport,
            TokioClock::new(),
            self.store,
        ));
        let refresher = if self.proactive_refresh {
            let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
            Some(Refresher::start(&core, runtime)?)
        } else {
            None
        };
        Ok(Client {
            inner: Arc::new(Inner {
                core,
                http,
                timeout,
                refresher,
                bearer: BearerCache::default(),
            }),
        })
    }
}

/// The background refresh of a [`Client`] (see [`Builder::proactive_refresh`]); dropping it
/// stops the refresh.
enum Refresher {
    /// A task on the runtime (the default store: its future is known to be `Send`).
    Task(tokio::task::AbortHandle),
    /// A thread driving the refresh with `Handle::block_on` (any other store).
    Thread {
        /// Dropped to stop the thread.
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        /// A task that does nothing and lives as long as the runtime, or until aborted here.
        watch: tokio::task::AbortHandle,
    },
}

impl Refresher {
    fn start<S: TokenStore + Send + 'static>(
        core: &Arc<CoreClient<S>>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, Error> {
        // Spawning `keep_fresh()` needs its future to be `Send`, which cannot be proven for a
        // generic store. For the default store it can: find out whether `S` is `NoStore`.
        let any: Arc<dyn Any + Send + Sync> = Arc::clone(core) as _;
        if let Ok(core) = any.downcast::<CoreClient<NoStore>>() {
            let task = runtime.spawn(async move { core.keep_fresh().await });
            return Ok(Self::Task(task.abort_handle()));
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // When the runtime shuts down it drops its tasks before it shuts down its timers: this
        // one's sender is then dropped, and the thread ends instead of sleeping on a timer of
        // a runtime that is gone (which would panic).
        let (alive, runtime_gone) = tokio::sync::oneshot::channel::<()>();
        let watch = runtime.spawn(async move {
            let _alive = alive;
            std::future::pending::<()>().await;
        });
        let core = Arc::clone(core);
        let spawned = std::thread::Builder::new()
            .name("alf-refresh".into())
            .spawn(move || {
                runtime.block_on(async move {
                    run_until_stopped(core.keep_fresh(), stopped, runtime_gone).await;
                    // `core` is dropped here, inside the runtime's context: if this was the last
                    // reference, the store closes its connections there.
                    drop(core);
                });
            });
        match spawned {
            Ok(_detached) => Ok(Self::Thread {
                stop: Some(stop),
                watch: watch.abort_handle(),
            }),
            Err(e) => {
                watch.abort();
                Err(Error::Thread(e))
            }
        }
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        match self {
            Self::Task(task) => task.abort(),
            Self::Thread { stop, watch } => {
                drop(stop.take());
                watch.abort();
            }
        }
    }
}

/// Run `work` until either receiver completes (a message or its sender dropped). The
/// receivers are polled first, so a stop that has been signalled wins over more work.
async fn run_until_stopped(
    work: impl Future<Output = ()>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    mut runtime_gone: tokio::sync::oneshot::Receiver<()>,
) {
    let mut work = core::pin::pin!(work);
    core::future::poll_fn(|cx| {
        if Pin::new(&mut stop).poll(cx).is_ready()
            || Pin::new(&mut runtime_gone).poll(cx).is_ready()
        {
            return Poll::Ready(());
        }
        work.as_mut().poll(cx)
    })
    .await;
}

/// A resource request being built; [`send`](Self::send) adds the token and sends it.
///
/// The methods mirror [`reqwest::RequestBuilder`]'s. There is no `bearer_auth` or `basic_auth`:
/// the `Authorization` header is alf's, and a request that sets one is refused.
pub struct RequestBuilder<S = NoStore> {
    client: Client<S>,
    inner: reqwest::RequestBuilder,
}

impl<S> fmt::Debug for RequestBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // reqwest's builder Debug shows headers, which may hold the caller's own secrets.
        f.debug_struct("RequestBuilder").finish_non_exhaustive()
    }
}

impl<S: TokenStore + Send + 'static> RequestBuilder<S> {
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
    /// The future is `Send` (it can be spawned on a multi-threaded tokio runtime) with the
    /// default store, and with any store whose own futures are `Send` (such as
    /// `alf_redis::RedisStore` and `alf_memcached::MemcachedStore`).
    pub async fn send(self) -> Result<reqwest::Response, Error> {
        let request = self.inner.build().map_err(Error::http)?;
        self.client.execute(request).await
    }
}
