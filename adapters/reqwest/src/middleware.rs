//! [`AlfMiddleware`]: alf as a [`reqwest_middleware::Middleware`], for an existing
//! [`ClientWithMiddleware`](reqwest_middleware::ClientWithMiddleware) stack (retries,
//! tracing...). Needs the `middleware` feature.
//!
//! # What it does with each request
//! Exactly what [`RequestBuilder::send`](crate::RequestBuilder::send) does (see the
//! [`client` module docs](crate::client)), with the rest of the stack in place of reqwest:
//! 1. A request that already has an `Authorization` header is refused: the error is
//!    [`reqwest_middleware::Error::Middleware`] carrying [`Error::Request`]
//!    ([`alf::RequestError::AuthorizationHeaderPresent`]); nothing is sent.
//! 2. A token is taken from the [`Client`]'s core (its cache, shared with the client and
//!    every other middleware made from it). If none can be had, the error is
//!    [`reqwest_middleware::Error::Middleware`] carrying [`Error::Token`], and the request is
//!    **not sent** (the rest of the stack does not run).
//! 3. `Authorization: Bearer <token>` is set (a sensitive header) and the rest of the stack
//!    runs ([`Next::run`]).
//! 4. On a 401 (unless its `WWW-Authenticate` Bearer challenge says `insufficient_scope` or
//!    `invalid_request`) that token is invalidated and, if the request could be copied
//!    ([`reqwest::Request::try_clone`], done before the first send; not for a streaming body),
//!    the rest of the stack runs once more with a new token. That second response is
//!    returned as it is, whatever its status.
//!
//! Errors from the rest of the stack (reqwest's, other middlewares') are returned unchanged.
//!
//! ## Getting alf's error back
//! ```no_run
//! # async fn run(http: reqwest_middleware::ClientWithMiddleware) {
//! match http.get("https://api.example.com/orders").send().await {
//!     Ok(response) => println!("{}", response.status()),
//!     Err(reqwest_middleware::Error::Middleware(e)) => {
//!         match e.downcast_ref::<alf_reqwest::Error>() {
//!             Some(alf_reqwest::Error::Token(alf::Error::TokenEndpoint(e))) => {
//!                 eprintln!("no token, request not sent: {e}");
//!             }
//!             _ => eprintln!("{e}"),
//!         }
//!     }
//!     Err(e) => eprintln!("{e}"),
//! }
//! # }
//! ```
//!
//! # Order in the stack
//! reqwest-middleware runs middlewares in the order they were added: the first
//! [`ClientBuilder::with`](reqwest_middleware::ClientBuilder::with) is the outermost (it sees
//! the request first and the response last), the last one is the closest to reqwest.
//!
//! - **alf after (inside) the retry middleware** — recommended:
//!   `.with(RetryTransientMiddleware::new_with_policy(..)).with(client.middleware())`. Every
//!   attempt of the retry middleware goes through alf, so each one carries a valid token
//!   (the cached one, or a new one if it came due during the backoff), and alf's 401 replay
//!   is part of each attempt. No token error is retried by the retry middleware (it sees a
//!   [`reqwest_middleware::Error::Middleware`], which reqwest-retry's default strategy treats
//!   as fatal); the token fetch has its own retries ([`alf::RetryPolicy`]).
//! - **alf before (outside) the retry middleware**: `.with(client.middleware()).with(retry)`.
//!   alf takes one token and the retry middleware resends the same request, with the same
//!   header, on every attempt: after a long backoff that token may have expired. A 401 still
//!   reaches alf once the retries are over, which then replays the whole retry sequence once
//!   with a new token.
//!
//! A tracing middleware added before alf records the request without the `Authorization`
//! header (it is set later); added after alf it sees it, as a sensitive header.
//!
//! # Redirects
//! The stack sends with your [`reqwest::Client`]: build it with
//! `.redirect(`[`same_origin_redirects`](crate::same_origin_redirects)`())` so that the token
//! never follows a redirect to another origin. The [`Client`]'s own timeout is not applied to
//! requests going through the middleware: set one on that reqwest client or on the request.

use core::fmt;
use core::future::Future;
use core::pin::Pin;

use alf::{Lease, MemoryStore, NoStore, TokenStore};
use http::Extensions;
use reqwest::header::AUTHORIZATION;
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};

use crate::client::{Client, CoreClient, new_token_may_help, set_bearer};
use crate::error::Error;
use crate::transport::TransportError;

/// A boxed, `Send` future, as [`reqwest_middleware`] needs them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// alf as a [`reqwest_middleware::Middleware`]: adds `Authorization: Bearer` to the requests
/// of a [`ClientWithMiddleware`](reqwest_middleware::ClientWithMiddleware) and replays a
/// request once on a 401. See the [module docs](crate::middleware) for what it does and where
/// to put it relative to a retry middleware.
///
/// Made from a [`Client`] ([`Client::middleware`] or [`AlfMiddleware::new`]), whose token
/// cache, token store and background refresh it shares: the client and all its middlewares
/// fetch one token between them. Cloning is cheap.
///
/// ```no_run
/// # async fn run(config: alf::Config) -> Result<(), Box<dyn std::error::Error>> {
/// let alf = alf_reqwest::Client::new(config);
/// let http = reqwest::Client::builder()
///     .redirect(alf_reqwest::same_origin_redirects())
///     .build()?;
/// let http = reqwest_middleware::ClientBuilder::new(http)
///     // .with(RetryTransientMiddleware::new_with_policy(..)) here: retries get fresh tokens.
///     .with(alf.middleware())
///     .build();
/// let orders = http.get("https://api.example.com/orders").send().await?;
/// println!("{}", orders.status());
/// # Ok(())
/// # }
/// ```
pub struct AlfMiddleware<S = NoStore> {
    client: Client<S>,
}

impl<S> Clone for AlfMiddleware<S> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
        }
    }
}

impl<S> fmt::Debug for AlfMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlfMiddleware")
            .field("client", &self.client)
            .finish()
    }
}

impl<S> AlfMiddleware<S> {
    /// A middleware sharing `client`'s token cache (the client is an [`Arc`](std::sync::Arc);
    /// this clones it).
    pub fn new(client: &Client<S>) -> Self {
        Self {
            client: client.clone(),
        }
    }

    /// The client this middleware takes its tokens from.
    pub fn client(&self) -> &Client<S> {
        &self.client
    }
}

impl<S> Client<S> {
    /// alf as a [`reqwest_middleware::Middleware`] sharing this client's token cache; see
    /// [`AlfMiddleware`]. Needs the `middleware` feature.
    pub fn middleware(&self) -> AlfMiddleware<S> {
        AlfMiddleware::new(self)
    }
}

/// A [token store](TokenStore) [`AlfMiddleware`] can use.
///
/// reqwest-middleware needs `Send` futures, and whether the core's
/// [`token`](alf::Client::token) future is `Send` depends on the store's own `async fn`s,
/// which generic code cannot see. An implementation for a concrete store proves it: its body
/// is `Box::pin(core.token())`. Implemented for [`NoStore`] and [`MemoryStore`], and with
/// the `redis` / `memcached` features for `alf_redis::RedisStore` and
/// `alf_memcached::MemcachedStore`; implement it for your own store type the same way:
///
/// ```
/// # use alf_reqwest::middleware::{BoxFuture, MiddlewareStore};
/// # use alf_reqwest::{CoreClient, TransportError};
/// # struct MyStore(alf::MemoryStore);
/// # impl alf::TokenStore for MyStore {
/// #     type Error = alf::store::MemoryStoreError;
/// #     async fn load<'b>(&mut self, k: &str, b: &'b mut [u8]) -> Result<Option<alf::StoredToken<'b>>, Self::Error> { self.0.load(k, b).await }
/// #     async fn save(&mut self, k: &str, t: alf::StoredToken<'_>) -> Result<(), Self::Error> { self.0.save(k, t).await }
/// #     async fn clear(&mut self, k: &str) -> Result<(), Self::Error> { self.0.clear(k).await }
/// # }
/// impl MiddlewareStore for MyStore {
///     fn token(core: &CoreClient<Self>) -> BoxFuture<'_, Result<alf::Lease, alf::Error<TransportError>>> {
///         Box::pin(core.token())
///     }
/// }
/// ```
pub trait MiddlewareStore: TokenStore + Send + Sync + Sized + 'static {
    /// `core.token()`, boxed; see the trait docs.
    fn token(core: &CoreClient<Self>) -> BoxFuture<'_, Result<Lease, alf::Error<TransportError>>>;
}

impl MiddlewareStore for NoStore {
    fn token(core: &CoreClient<Self>) -> BoxFuture<'_, Result<Lease, alf::Error<TransportError>>> {
        Box::pin(core.token())
    }
}

impl<const N: usize> MiddlewareStore for MemoryStore<N> {
    fn token(core: &CoreClient<Self>) -> BoxFuture<'_, Result<Lease, alf::Error<TransportError>>> {
        Box::pin(core.token())
    }
}

#[cfg(feature = "redis")]
impl MiddlewareStore for alf_redis::RedisStore {
    fn token(core: &CoreClient<Self>) -> BoxFuture<'_, Result<Lease, alf::Error<TransportError>>> {
        Box::pin(core.token())
    }
}

#[cfg(feature = "memcached")]
impl MiddlewareStore for alf_memcached::MemcachedStore {
    fn token(core: &CoreClient<Self>) -> BoxFuture<'_, Result<Lease, alf::Error<TransportError>>> {
        Box::pin(core.token())
    }
}

fn refuse(e: Error) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(e)
}

impl<S: MiddlewareStore> AlfMiddleware<S> {
    async fn run(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if request.headers().contains_key(AUTHORIZATION) {
            return Err(refuse(Error::Request(
                alf::RequestError::AuthorizationHeaderPresent,
            )));
        }
        // A copy for the replay, made before the token goes in. `None` for a streaming body.
        let replay = request.try_clone();
        let core = self.client.core();

        let lease = S::token(core).await.map_err(|e| refuse(Error::Token(e)))?;
        set_bearer(&mut request, &lease).map_err(refuse)?;
        let response = next.clone().run(request, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED || !new_token_may_help(&response) {
            return Ok(response);
        }
        core.invalidate(lease.generation);
        drop(lease);
        let Some(mut second) = replay else {
            return Ok(response);
        };
        drop(response);
        let lease = S::token(core).await.map_err(|e| refuse(Error::Token(e)))?;
        set_bearer(&mut second, &lease).map_err(refuse)?;
        drop(lease);
        next.run(second, extensions).await
    }
}

impl<S: MiddlewareStore> Middleware for AlfMiddleware<S> {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> BoxFuture<'async_trait, reqwest_middleware::Result<Response>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.run(req, extensions, next))
    }
}
