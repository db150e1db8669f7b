//! A blocking [`Client`] for programs without an async runtime (feature `blocking`): the
//! closest thing to the Python alf's `requests.Session`.
//!
//! It is a thin layer over the async [`crate::Client`]: each call runs the async call on a
//! small tokio runtime that the client owns (one worker thread, named `alf-blocking`, which
//! also runs reqwest's connection tasks and, with
//! [`proactive_refresh`](Builder::proactive_refresh), the refresh task) and blocks the calling
//! thread until it ends. Everything the async client promises holds: one token for all
//! clones and threads, one fetch for concurrent callers, early refresh, the 401 replay, and
//! no request sent without a token.
//!
//! ```no_run
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = alf::Config::builder("https://auth.example.com/token", "my-client", "my-secret")
//!     .scope("orders:read")
//!     .build()?;
//! let client = alf_reqwest::blocking::Client::new(config)?;
//! let orders = client.get("https://api.example.com/orders").send()?;
//! println!("{} {}", orders.status(), orders.text()?);
//! # Ok(())
//! # }
//! ```
//!
//! # Inside an async runtime
//! Blocking a runtime's thread would stall every task on it (and tokio panics when asked to).
//! So a blocking call made from inside a tokio runtime returns [`Error::BlockingInRuntime`]
//! instead; use the async [`crate::Client`] there. Dropping a blocking client is fine
//! anywhere: its runtime is shut down without waiting.

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use alf::{Config, NoStore, TokenStore};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{IntoUrl, Method, StatusCode, Url};
use serde::Serialize;

use crate::error::Error;

/// The client's runtime, shut down without blocking when the last clone goes (a plain
/// `Runtime` panics when dropped inside another runtime).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn new() -> Result<Self, Error> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("alf-blocking")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(Error::Thread)
    }

    /// Run `future` to completion on this runtime, from a thread outside any runtime.
    fn block_on<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::BlockingInRuntime);
        }
        match &self.0 {
            Some(rt) => Ok(rt.block_on(future)),
            // Only `drop` takes the runtime out.
            None => Err(Error::NoRuntime),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A blocking OAuth 2.0 client credentials session: adds `Authorization: Bearer` to every
/// request, fetching and renewing the token as needed. `Clone` is cheap; clones share the
/// token and the runtime, and may be used from many threads.
pub struct Client<S = NoStore> {
    inner: crate::Client<S>,
    rt: Arc<Runtime>,
}

impl<S> Clone for Client<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            rt: Arc::clone(&self.rt),
        }
    }
}

impl<S> fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Client")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with the default settings (see [`crate::Client::new`]).
    ///
    /// # Errors
    /// [`Error::Thread`] when the runtime's thread cannot be started; the errors of
    /// [`crate::Builder::build`].
    pub fn new(config: Config) -> Result<Self, Error> {
        Self::builder(config).build()
    }

    /// Configure a client.
    pub fn builder(config: Config) -> Builder {
        Builder {
            inner: crate::Client::builder(config),
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

    /// Start a request with any method.
    pub fn request<U: IntoUrl>(&self, method: Method, url: U) -> RequestBuilder<S> {
        RequestBuilder {
            inner: self.inner.request(method, url),
            rt: Arc::clone(&self.rt),
        }
    }

    /// A valid access token, fetched if needed (for a request alf does not send for you).
    ///
    /// # Security
    /// The token is a live credential: never log it.
    ///
    /// # Errors
    /// [`Error::Token`] when no token could be had; [`Error::BlockingInRuntime`].
    pub fn access_token(&self) -> Result<alf::AccessToken, Error> {
        self.rt.block_on(self.inner.access_token())?
    }

    /// The async client this one drives (for its [`core`](crate::Client::core) token engine).
    pub fn async_client(&self) -> &crate::Client<S> {
        &self.inner
    }
}

/// Configures a blocking [`Client`]; the settings are those of [`crate::Builder`].
pub struct Builder<S = NoStore> {
    inner: crate::Builder<S>,
}

impl<S> fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Builder")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S> Builder<S> {
    /// Keep the token in `store` too; see [`crate::Builder::store`].
    pub fn store<S2>(self, store: S2) -> Builder<S2> {
        Builder {
            inner: self.inner.store(store),
        }
    }

    /// Timeout of every request; see [`crate::Builder::timeout`].
    pub fn timeout(self, timeout: Duration) -> Self {
        Self {
            inner: self.inner.timeout(timeout),
        }
    }

    /// The reqwest client for resource requests; see [`crate::Builder::reqwest_client`].
    pub fn reqwest_client(self, client: reqwest::Client) -> Self {
        Self {
            inner: self.inner.reqwest_client(client),
        }
    }

    /// Refresh the token in the background, on the client's runtime; see
    /// [`crate::Builder::proactive_refresh`].
    pub fn proactive_refresh(self, on: bool) -> Self {
        Self {
            inner: self.inner.proactive_refresh(on),
        }
    }
}

impl<S: TokenStore + Send + 'static> Builder<S> {
    /// Start the client's runtime and build the client on it.
    ///
    /// # Errors
    /// [`Error::Thread`] when the runtime's thread cannot be started; otherwise those of
    /// [`crate::Builder::build`].
    pub fn build(self) -> Result<Client<S>, Error> {
        let rt = Runtime::new()?;
        let inner = {
            let Some(runtime) = &rt.0 else {
                return Err(Error::NoRuntime);
            };
            // Inside the runtime, so that the refresh task (if any) is spawned on it.
            let _entered = runtime.enter();
            self.inner.build()?
        };
        Ok(Client {
            inner,
            rt: Arc::new(rt),
        })
    }
}

/// A request being built; [`send`](Self::send) blocks until the response head is in.
pub struct RequestBuilder<S = NoStore> {
    inner: crate::RequestBuilder<S>,
    rt: Arc<Runtime>,
}

impl<S> fmt::Debug for RequestBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::RequestBuilder")
            .finish_non_exhaustive()
    }
}

impl<S: TokenStore + Send + 'static> RequestBuilder<S> {
    fn map(self, f: impl FnOnce(crate::RequestBuilder<S>) -> crate::RequestBuilder<S>) -> Self {
        Self {
            inner: f(self.inner),
            rt: self.rt,
        }
    }

    /// Add a header; see [`crate::RequestBuilder::header`].
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

    /// Append query parameters to the URL.
    pub fn query<T: Serialize + ?Sized>(self, query: &T) -> Self {
        self.map(|b| b.query(query))
    }

    /// Set the body; see [`crate::RequestBuilder::body`].
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

    /// Timeout for this request; see [`crate::RequestBuilder::timeout`].
    pub fn timeout(self, timeout: Duration) -> Self {
        self.map(|b| b.timeout(timeout))
    }

    /// Add the token and send, blocking until the response head is in; see
    /// [`crate::RequestBuilder::send`].
    ///
    /// # Errors
    /// Those of [`crate::RequestBuilder::send`] ([`Error::Token`]: no token could be had and
    /// the request was not sent), and [`Error::BlockingInRuntime`].
    pub fn send(self) -> Result<Response, Error> {
        let response = self.rt.block_on(self.inner.send())??;
        Ok(Response {
            inner: response,
            rt: self.rt,
        })
    }
}

/// A response; reading its body blocks.
pub struct Response {
    inner: reqwest::Response,
    rt: Arc<Runtime>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Response")
            .field("status", &self.inner.status())
            .finish_non_exhaustive()
    }
}

impl Response {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The final URL (after same-origin redirects).
    pub fn url(&self) -> &Url {
        self.inner.url()
    }

    /// The `Content-Length`, when the server sent one.
    pub fn content_length(&self) -> Option<u64> {
        self.inner.content_length()
    }

    /// `Err` with the status for a 4xx or 5xx, as
    /// [`reqwest::Response::error_for_status`].
    ///
    /// # Errors
    /// [`Error::Http`] holding the status.
    pub fn error_for_status(self) -> Result<Self, Error> {
        let rt = self.rt;
        match self.inner.error_for_status() {
            Ok(inner) => Ok(Self { inner, rt }),
            Err(e) => Err(Error::http(e)),
        }
    }

    /// The whole body as text (decoded per the `Content-Type` charset, UTF-8 by default).
    ///
    /// # Errors
    /// [`Error::Http`] when reading the body fails; [`Error::BlockingInRuntime`].
    pub fn text(self) -> Result<String, Error> {
        self.rt.block_on(self.inner.text())?.map_err(Error::http)
    }

    /// The whole body as bytes.
    ///
    /// # Errors
    /// [`Error::Http`] when reading the body fails; [`Error::BlockingInRuntime`].
    pub fn bytes(self) -> Result<Vec<u8>, Error> {
        self.rt
            .block_on(self.inner.bytes())?
            .map(|b| b.to_vec())
            .map_err(Error::http)
    }

    /// The body parsed as JSON.
    ///
    /// # Errors
    /// [`Error::Http`] when reading or parsing the body fails; [`Error::BlockingInRuntime`].
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        self.rt.block_on(self.inner.json())?.map_err(Error::http)
    }
}
