//! The async driver: one [`Client`] shared by every task that needs a token.
//!
//! It is a short loop around the [state machine](crate::machine): read the state, and when a
//! token is needed, take the I/O lock, send the token request through the [`Transport`], hand
//! the response to the machine, wait (on the [`Clock`]) when the machine says to retry.
//!
//! # Concurrency
//! `Client` is used through `&Client` from any number of tasks (embassy tasks, tokio tasks).
//! - A valid token is served from a short critical section, without waiting on anything.
//! - Fetching holds the I/O lock, a fair async mutex. Callers that need a token while a fetch
//!   runs queue on it; when they get it the token is there, so **one fetch serves them all**,
//!   and if that fetch failed they **share its failure** (they do not each retry).
//! - During a refresh (after `refresh_at`, before `expires_at`) other callers get the old token
//!   at once instead of waiting.
//!
//! # Cancellation
//! Any call may be dropped at any `.await`. The state is written before each await (the
//! machine is `Fetching` while a request is in flight) and the I/O lock is released on drop,
//! so the next caller finds a `Fetching` state with no one fetching and simply starts the
//! request again. A client is never stuck.

use heapless::String;

use crate::clock::{Clock, UnixTime};
use crate::config::Config;
use crate::error::{CapacityError, Error, RequestError, ResponseError};
use crate::http::{
    BearerError, Method, Request, Response, is_valid_header_name, is_valid_header_value,
};
use crate::machine::{Check, Context, Fetched, State, StateKind, Valid};
use crate::request::TOKEN_REQUEST_HEADERS;
use crate::response::{ParseError, is_valid_token, parse_token_response};
use crate::secret::AccessToken;
use crate::store::{NoStore, StoredToken, TokenStore};
use crate::time::{Duration, Instant};
use crate::transport::Transport;

/// Default token capacity, in bytes, `Bearer ` prefix included.
pub const DEFAULT_TOKEN_CAPACITY: usize = 2048;
/// Default size of the client's receive buffer for token responses.
pub const DEFAULT_RX_CAPACITY: usize = 4096;

/// A token handed out by the client, with the generation that identifies it.
///
/// Pass the generation to [`Client::invalidate`] when a server rejects the token.
#[derive(Debug, Clone)]
pub struct Lease<const N: usize = DEFAULT_TOKEN_CAPACITY> {
    /// The token (formatting prints `[redacted]`).
    pub token: AccessToken<N>,
    /// Which token this is.
    pub generation: u32,
}

struct Shared<const N: usize> {
    state: State<N>,
    ctx: Context,
    /// Fetches that have ended, successfully or not.
    completed: u32,
    /// How the last fetch failed, for the callers that waited on it.
    last_error: Option<Error<embedded_io::ErrorKind>>,
    /// Fingerprint of the last token a server rejected: the store may still hold it, so it is
    /// not loaded back (a different token in the store is; and the store's fetch lock is still
    /// taken, so that a 401 seen by a whole fleet costs one token request).
    rejected: Option<u64>,
    /// Running [`Client::keep_fresh`] loops. While one runs, callers leave due refreshes to it
    /// and keep using the valid token, so that no request waits for a renewal.
    refreshers: u32,
    /// After the token endpoint rejected the credentials: no new token request before this.
    cooldown_until: Option<Instant>,
    /// Callers fetching or queued to fetch (counted by [`Counted`]). A `Fetching` state with none is
    /// abandoned: its caller was dropped.
    pending: u32,
}

/// Counts a caller in one of [`Shared`]'s counters for as long as it lives, drop included: a
/// caller dropped at any `.await` stops counting at once (so an abandoned fetch, or a
/// `keep_fresh` loop that is gone, is seen at once).
struct Counted<'a, const N: usize> {
    shared: &'a maitake_sync::blocking::Mutex<Shared<N>>,
    counter: fn(&mut Shared<N>) -> &mut u32,
}

impl<'a, const N: usize> Counted<'a, N> {
    /// Count from now on.
    fn new(
        shared: &'a maitake_sync::blocking::Mutex<Shared<N>>,
        counter: fn(&mut Shared<N>) -> &mut u32,
    ) -> Self {
        shared.with_lock(|s| *counter(s) += 1);
        Self::already(shared, counter)
    }

    /// Take over a count the caller made in its own critical section.
    fn already(
        shared: &'a maitake_sync::blocking::Mutex<Shared<N>>,
        counter: fn(&mut Shared<N>) -> &mut u32,
    ) -> Self {
        Self { shared, counter }
    }
}

impl<const N: usize> Drop for Counted<'_, N> {
    fn drop(&mut self) {
        let counter = self.counter;
        self.shared.with_lock(|s| *counter(s) -= 1);
    }
}

/// Callers fetching or queued to fetch.
fn pending<const N: usize>(s: &mut Shared<N>) -> &mut u32 {
    &mut s.pending
}

/// Running [`Client::keep_fresh`] loops.
fn refreshers<const N: usize>(s: &mut Shared<N>) -> &mut u32 {
    &mut s.refreshers
}

/// A 64-bit FNV-1a hash of a token, to recognise a rejected token in the store without
/// keeping a copy of it.
fn fingerprint<const N: usize>(t: &crate::machine::Token<N>) -> u64 {
    fingerprint_bytes(t.access_token().secret().as_bytes())
}

fn fingerprint_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

struct Io<T, S, const RX: usize> {
    transport: T,
    store: S,
    key: Option<String<64>>,
    /// Token responses and stored tokens are read here; wiped after each use and on drop.
    rx: [u8; RX],
}

impl<T, S, const RX: usize> Drop for Io<T, S, RX> {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.rx[..]);
    }
}

/// An OAuth 2.0 client credentials client.
///
/// - `T`: the [`Transport`]; `C`: the [`Clock`]; `S`: the [`TokenStore`] ([`NoStore`] by
///   default);
/// - `N`: token capacity in bytes, `Bearer ` prefix included (default 2048);
/// - `RX`: the receive buffer for token responses (default 4096). It must hold the whole
///   response body (and, with transports that read headers into it, such as reqwless, the
///   response headers too), plus room to unescape the longest string that contains escapes.
///
/// Every request made through one `Client` (token requests and [`send`](Self::send)) uses its
/// one transport in turn, behind a fair lock: requests from many tasks run one at a time, so
/// one socket is enough on a device. A valid token is handed out without taking that lock.
/// Give the client a second transport for resource requests
/// ([`with_resource_transport`](Self::with_resource_transport)) so that they never wait behind a
/// token refresh.
///
/// The client owns `RX + N` bytes and a little more; put it in a `static` (with
/// `static_cell`) on a device, or in an `Arc` on a host.
pub struct Client<
    T,
    C,
    S = NoStore,
    const N: usize = DEFAULT_TOKEN_CAPACITY,
    const RX: usize = DEFAULT_RX_CAPACITY,
> {
    config: Config,
    clock: C,
    shared: maitake_sync::blocking::Mutex<Shared<N>>,
    io: maitake_sync::Mutex<Io<T, S, RX>>,
    /// A second transport for resource requests, so that they never wait behind a token fetch.
    resource: Option<maitake_sync::Mutex<T>>,
}

impl<T, C, S, const N: usize, const RX: usize> Client<T, C, S, N, RX> {
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The state the token machine is in.
    pub fn state_kind(&self) -> StateKind {
        self.shared.with_lock(|s| s.state.kind())
    }

    /// When the client next has work to do without a request (see [`State::poll_at`]): the
    /// refresh time of a valid token, the retry time of a fetch, or `Instant::ZERO` ("now")
    /// for a fetch that its caller abandoned. `None` when there is no token, or a fetch is
    /// running.
    pub fn poll_at(&self) -> Option<Instant> {
        self.shared.with_lock(|s| match &s.state {
            State::Fetching(f) if s.pending == 0 => Some(f.retry_at().unwrap_or(Instant::ZERO)),
            state => state.poll_at(),
        })
    }
}

impl<T, C, S, const N: usize, const RX: usize> core::fmt::Debug for Client<T, C, S, N, RX> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("state", &self.state_kind())
            .finish_non_exhaustive()
    }
}

/// What a caller holding the I/O lock does next. No variant carries the token: copies of it
/// (2 KiB by default) would be held across `.await`s and make every future that much larger.
enum Decision {
    /// A usable token is there.
    Use,
    Failed(Error<embedded_io::ErrorKind>),
    Fetch {
        attempt: u8,
        refreshing: bool,
    },
}

enum AttemptOutcome {
    /// A new token is there.
    Done,
    Retry,
    Failed {
        /// The old token is still usable (a failed refresh).
        stale: bool,
        error: ParseError,
    },
}

fn lease<const N: usize>(t: &crate::machine::Token<N>) -> Lease<N> {
    Lease {
        token: t.access_token().clone(),
        generation: t.generation(),
    }
}

impl<const N: usize> Shared<N> {
    /// Without waiting: `true` when there is a token to use now, `false` when the caller must
    /// take the I/O lock. Claims a due refresh, so that others keep using the old token
    /// meanwhile.
    fn fast_path(&mut self, now: Instant) -> bool {
        // The common case, a fresh token, is looked at in place: moving the state out and back
        // copies the whole token (the state is as large as the token capacity) twice.
        if self.state.fresh_token(now).is_some() {
            return true;
        }
        match self.state.take() {
            State::Valid(v) => match v.check(now) {
                Check::Fresh(v) => {
                    self.state = State::Valid(v);
                    true
                }
                // A background refresher will renew it: use the token, still valid, meanwhile.
                // (Once it expires, callers fetch themselves, as without a refresher.)
                Check::RefreshDue(v) if self.refreshers > 0 => {
                    self.state = State::Valid(v);
                    true
                }
                Check::RefreshDue(v) => {
                    // Claim the refresh: others use the old token meanwhile. This caller goes
                    // on to refresh; it gets the new token, or the old one if the refresh fails.
                    self.state = State::Fetching(v.refresh(now));
                    false
                }
                Check::Expired(e) => {
                    self.state = State::Expired(e);
                    false
                }
            },
            // A refresh in progress: serve the old token meanwhile. If no one is fetching any
            // more (the caller that claimed it was dropped), take over instead.
            State::Fetching(f) if self.pending > 0 => {
                let stale = f.stale(now).is_some();
                self.state = State::Fetching(f);
                stale
            }
            other => {
                self.state = other;
                false
            }
        }
    }

    /// Holding the I/O lock: use the token someone else fetched, share their failure, or
    /// fetch. On `Fetch` the state is `Fetching`.
    fn decide(&mut self, now: Instant, seen: u32) -> Decision {
        let state = match self.state.take() {
            State::Valid(v) => match v.check(now) {
                Check::Fresh(v) => {
                    self.state = State::Valid(v);
                    return Decision::Use;
                }
                Check::RefreshDue(v) => State::Valid(v),
                Check::Expired(e) => State::Expired(e),
            },
            other => other,
        };
        // Share the last failure rather than try again when the fetch we queued behind failed,
        // or when the credentials were rejected moments ago (asking again would only hammer
        // the token endpoint until the cooldown ends).
        let share = self.completed != seen || self.cooldown_until.is_some_and(|u| now < u);
        if let (true, Some(e)) = (share, &self.last_error) {
            let decision = match state.usable_token(now) {
                Some(_) => Decision::Use,
                None => Decision::Failed(e.clone()),
            };
            self.state = state;
            return decision;
        }
        let fetching = match state {
            State::NoToken(n) => n.fetch(now),
            State::Expired(e) => e.fetch(now),
            State::Valid(v) => v.refresh(now),
            // Claimed by a caller's fast path, or left behind by a caller that was dropped (we
            // hold the I/O lock, so no one else is fetching): carry on from where it stands,
            // waiting for its retry time if it has one.
            State::Fetching(f) => f,
        };
        let attempt = fetching.attempt();
        let refreshing = fetching.stale(now).is_some();
        self.state = State::Fetching(fetching);
        Decision::Fetch {
            attempt,
            refreshing,
        }
    }

    /// Record the end of an attempt.
    fn complete(
        &mut self,
        now: Instant,
        result: Result<crate::response::TokenResponse<N>, ParseError>,
    ) -> AttemptOutcome {
        let State::Fetching(f) = self.state.take() else {
            // Not reachable through `Client` (the state is `Fetching` while the I/O lock is
            // held), but a state machine does not panic: adopt a good token anyway.
            let default_lifetime = self.ctx.refresh.default_lifetime;
            return match result {
                Ok(r) => {
                    let lifetime = r.lifetime(default_lifetime);
                    match Valid::adopt(&mut self.ctx, r.token, now, lifetime) {
                        Some(v) => self.valid(v),
                        None => AttemptOutcome::Failed {
                            stale: false,
                            error: Error::InvalidResponse(ResponseError::InvalidExpiresIn),
                        },
                    }
                }
                Err(error) => AttemptOutcome::Failed {
                    stale: false,
                    error,
                },
            };
        };
        match f.complete(&mut self.ctx, now, result) {
            Fetched::Valid(v) => self.valid(v),
            Fetched::Retry {
                fetching, error, ..
            } => {
                debug!("alf: token request failed, retrying: {:?}", error);
                self.state = State::Fetching(fetching);
                AttemptOutcome::Retry
            }
            Fetched::Failed { state, error } => {
                warn!("alf: token request failed: {:?}", error);
                self.completed = self.completed.wrapping_add(1);
                self.last_error = Some(error.clone());
                if error.kind() == crate::error::ErrorKind::Credentials {
                    self.cooldown_until = Some(now + self.ctx.retry.backoff_max);
                }
                let stale = state.usable_token(now).is_some();
                self.state = state;
                AttemptOutcome::Failed { stale, error }
            }
        }
    }

    fn valid(&mut self, v: Valid<N>) -> AttemptOutcome {
        debug!("alf: new token, generation {}", v.token().generation());
        self.state = State::Valid(v);
        self.completed = self.completed.wrapping_add(1);
        self.last_error = None;
        self.rejected = None;
        self.cooldown_until = None;
        AttemptOutcome::Done
    }

    /// Copy the `Authorization` value of the token to use now into `out`: at its start, or
    /// with `at_end` at its end. Returns where the value starts and the token's generation.
    fn copy_header(&self, now: Instant, out: &mut [u8], at_end: bool) -> Header {
        let Some(t) = self.state.usable_token(now) else {
            return Header::NoToken;
        };
        let value = t.access_token().header_value().as_bytes();
        let start = if at_end {
            out.len().checked_sub(value.len())
        } else {
            Some(0)
        };
        let dst =
            start.and_then(|start| Some((start, out.get_mut(start..)?.get_mut(..value.len())?)));
        match dst {
            Some((start, dst)) => {
                dst.copy_from_slice(value);
                Header::Copied {
                    start,
                    len: value.len(),
                    generation: t.generation(),
                }
            }
            None => Header::TooLong,
        }
    }
}

/// The outcome of [`Shared::copy_header`].
enum Header {
    Copied {
        start: usize,
        len: usize,
        generation: u32,
    },
    /// No usable token (it expired or was rejected meanwhile): get one again.
    NoToken,
    /// The buffer is too small for the token.
    TooLong,
}

/// A copy of the `Authorization` value in a buffer, wiped when the request is done (dropped
/// future included).
struct HeaderCopy<'a>(&'a mut [u8]);

impl HeaderCopy<'_> {
    fn value(&self) -> &str {
        core::str::from_utf8(self.0).unwrap_or("")
    }
}

impl Drop for HeaderCopy<'_> {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut *self.0);
    }
}

impl<T, C, const N: usize, const RX: usize> Client<T, C, NoStore, N, RX>
where
    T: Transport,
    C: Clock,
{
    /// A client that keeps its token in its own memory.
    pub fn new(config: Config, transport: T, clock: C) -> Self {
        Self::with_store(config, transport, clock, NoStore)
    }
}

impl<T, C, S, const N: usize, const RX: usize> Client<T, C, S, N, RX>
where
    T: Transport,
    C: Clock,
    S: TokenStore,
{
    /// A client that also keeps its token in `store`, to share it with other processes or
    /// across reboots.
    pub fn with_store(config: Config, transport: T, clock: C, store: S) -> Self {
        let ctx = Context::new(config.refresh, config.retry, config.jitter_seed);
        Self {
            config,
            clock,
            shared: maitake_sync::blocking::Mutex::new(Shared {
                state: State::default(),
                ctx,
                completed: 0,
                last_error: None,
                rejected: None,
                refreshers: 0,
                cooldown_until: None,
                pending: 0,
            }),
            io: maitake_sync::Mutex::new(Io {
                transport,
                store,
                key: None,
                rx: [0; RX],
            }),
            resource: None,
        }
    }

    /// Send resource requests ([`send`](Self::send)) through `transport`, and token requests
    /// through the client's first transport. With one transport, a request that arrives while
    /// a token is being refreshed waits for the refresh to end (and its backoff, if the token
    /// endpoint fails); with two, it goes out at once with the old token, which is what
    /// stale-while-revalidate is for. On a device this costs a second socket.
    ///
    /// With a resource transport, [`send`](Self::send) keeps the `Authorization` value
    /// (`Bearer ` and the token) at the end of your `rx` while the request is sent, and gives
    /// the transport the rest of `rx` for the response: size `rx` for the response plus the
    /// token. (With one transport it is kept in the client's token-response buffer, which is
    /// free while the request is sent.) Either way it is wiped when the request is done.
    pub fn with_resource_transport(mut self, transport: T) -> Self {
        self.resource = Some(maitake_sync::Mutex::new(transport));
        self
    }

    /// Run `f` on the separate resource transport, if there is one.
    pub async fn with_resource_transport_ref<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        match &self.resource {
            Some(r) => Some(f(&mut *r.lock().await)),
            None => None,
        }
    }

    /// Run `f` on the transport, once no request is using it (for tests and diagnostics).
    pub async fn with_transport<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.io.lock().await.transport)
    }

    /// Run `f` on the store, once no request is using it.
    pub async fn with_store_ref<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.io.lock().await.store)
    }

    /// A valid access token: the cached one, or a new one from the token endpoint.
    pub async fn access_token(&self) -> Result<AccessToken<N>, Error<T::Error>> {
        self.token().await.map(|l| l.token)
    }

    /// A valid access token with its generation (for [`invalidate`](Self::invalidate)).
    ///
    /// Errors are those of the token endpoint, the transport, or the response; see [`Error`].
    pub async fn token(&self) -> Result<Lease<N>, Error<T::Error>> {
        loop {
            self.ensure_token().await?;
            // The copy is made here, after the last `.await`, so that no future holds it.
            let now = self.clock.now();
            let lease = self
                .shared
                .with_lock(|s| s.state.usable_token(now).map(lease));
            if let Some(l) = lease {
                return Ok(l);
            }
            // The token expired or was rejected since: get one again.
        }
    }

    /// The generation of a valid token, without copying the token: the cached one, or a new
    /// one from the token endpoint, exactly as [`token`](Self::token) would get it.
    ///
    /// For adapters that keep their own form of the token (such as a ready-made
    /// `Authorization` header value) per generation: while the generation is the one they
    /// have, they use what they have, and call [`token`](Self::token) only when it changes.
    /// A generation names one token of this client; it changes when a new token is fetched
    /// (or loaded from the store), so after a refresh and after [`invalidate`](Self::invalidate).
    /// The generation returned is that of a token usable at the time of the call: never one
    /// that has expired or been invalidated. Pass it to [`invalidate`](Self::invalidate) when a
    /// server rejects the token.
    ///
    /// With a fresh token this takes one short critical section and copies nothing, where
    /// `token()` copies the token (`N` bytes) and wipes the copy when it is dropped.
    ///
    /// # Errors
    /// Those of [`token`](Self::token): the token endpoint, the transport, or the response.
    pub async fn generation(&self) -> Result<u32, Error<T::Error>> {
        let now = self.clock.now();
        let fresh = self.shared.with_lock(|s| {
            s.state
                .fresh_token(now)
                .map(crate::machine::Token::generation)
        });
        if let Some(generation) = fresh {
            return Ok(generation);
        }
        loop {
            self.ensure_token().await?;
            let now = self.clock.now();
            let generation = self.shared.with_lock(|s| {
                s.state
                    .usable_token(now)
                    .map(crate::machine::Token::generation)
            });
            if let Some(generation) = generation {
                return Ok(generation);
            }
            // The token expired or was rejected since: get one again.
        }
    }

    /// Make sure there is a usable token: the cached one, or a new one from the token
    /// endpoint. Copies nothing.
    async fn ensure_token(&self) -> Result<(), Error<T::Error>> {
        let now = self.clock.now();
        // One critical section: a caller that does not get a token counts as pending before
        // anyone else can look at the state.
        let (seen, fast) = self.shared.with_lock(|s| {
            let fast = s.fast_path(now);
            s.pending += u32::from(!fast);
            (s.completed, fast)
        });
        if fast {
            return Ok(());
        }
        let _pending = Counted::already(&self.shared, pending);
        let mut io = self.io.lock().await;
        self.fetch_locked(&mut io, seen).await
    }

    /// A server rejected the token with this generation: drop it, unless it was already
    /// replaced. Many concurrent rejections of one token cause one fetch.
    pub fn invalidate(&self, generation: u32) {
        self.shared.with_lock(|s| {
            s.state = match s.state.take() {
                State::Valid(v) => {
                    let print = fingerprint(v.token());
                    match v.invalidate(generation) {
                        Ok(expired) => {
                            debug!("alf: token generation {} rejected, dropped", generation);
                            s.rejected = Some(print);
                            State::Expired(expired)
                        }
                        Err(v) => State::Valid(v),
                    }
                }
                // A refresh is running and the old token was rejected: stop serving it.
                State::Fetching(f) => {
                    let print = f.stale(Instant::ZERO).map(fingerprint);
                    let (f, dropped) = f.reject_stale(generation);
                    if dropped {
                        s.rejected = print;
                    }
                    State::Fetching(f)
                }
                other => other,
            };
        });
    }

    /// Forget the token, here and in the store.
    pub async fn forget_token(&self) {
        let mut io = self.io.lock().await;
        self.shared.with_lock(|s| {
            s.state = State::default();
            s.cooldown_until = None;
        });
        if S::ENABLED {
            let key = self.store_key(&mut io.key);
            if io.store.clear(&key).await.is_err() {
                warn!("alf: token store clear failed");
            }
        }
    }

    /// Keep the token fresh in the background: refresh it when it is due, so that requests
    /// never wait for a token in steady state. Never returns; run it in its own task. Failed
    /// fetches are retried after the retry policy's `backoff_max`.
    ///
    /// While it runs, callers that find the token due for refresh keep using it (it is still
    /// valid) and leave the refresh to this loop, so no request waits for a renewal in steady
    /// state. When this future is dropped, callers go back to refreshing on demand.
    pub async fn keep_fresh(&self) {
        let _registered = Counted::new(&self.shared, refreshers);
        loop {
            if let Some(at) = self.poll_at() {
                self.clock.sleep_until(at).await;
            }
            // Through the I/O lock, so that a fetch in flight is waited for, not spun on.
            let seen = self.shared.with_lock(|s| s.completed);
            let result = {
                let _pending = Counted::new(&self.shared, pending);
                let mut io = self.io.lock().await;
                self.fetch_locked(&mut io, seen).await
            };
            if result.is_err() {
                let now = self.clock.now();
                self.clock
                    .sleep_until(now + self.config.retry.backoff_max)
                    .await;
            }
        }
    }

    fn store_key(&self, cache: &mut Option<String<64>>) -> String<64> {
        if !S::ENABLED {
            // Keeps SHA-256 out of firmware that has no store.
            return String::new();
        }
        cache.get_or_insert_with(|| self.config.store_key()).clone()
    }

    async fn fetch_locked(&self, io: &mut Io<T, S, RX>, seen: u32) -> Result<(), Error<T::Error>> {
        let now = self.clock.now();
        match self.shared.with_lock(|s| s.decide(now, seen)) {
            Decision::Use => return Ok(()),
            Decision::Failed(e) => return Err(Error::from_shared(e)),
            Decision::Fetch {
                attempt,
                refreshing,
            } => {
                debug!(
                    "alf: fetching a token (attempt {}, refresh {})",
                    attempt, refreshing
                );
            }
        }
        let mut locked = false;
        if S::ENABLED && self.clock.unix_time().is_some() {
            if self.load_from_store(io).await {
                return Ok(());
            }
            let policy = self.config.store;
            let key = self.store_key(&mut io.key);
            match io.store.try_lock(&key, policy.lock_ttl).await {
                Ok(true) => {
                    locked = true;
                    // Another process may have saved a token and unlocked between our load
                    // and our lock: look once more before fetching.
                    if self.load_from_store(io).await {
                        if io.store.unlock(&key).await.is_err() {
                            warn!("alf: token store unlock failed");
                        }
                        return Ok(());
                    }
                }
                Ok(false) => {
                    // Another process is fetching: wait a little for its token.
                    let deadline = self.clock.now() + policy.wait;
                    loop {
                        let now = self.clock.now();
                        if now >= deadline {
                            break;
                        }
                        self.clock
                            .sleep_until((now + policy.poll_interval).min(deadline))
                            .await;
                        if self.load_from_store(io).await {
                            return Ok(());
                        }
                    }
                    debug!("alf: no token from the process holding the fetch lock; fetching");
                }
                Err(_) => warn!("alf: token store lock failed; fetching"),
            }
        }
        let result = self.fetch_attempts(io).await;
        if locked {
            let key = self.store_key(&mut io.key);
            if io.store.unlock(&key).await.is_err() {
                warn!("alf: token store unlock failed");
            }
        }
        result
    }

    /// Send token requests until one succeeds or the retry policy gives up.
    async fn fetch_attempts(&self, io: &mut Io<T, S, RX>) -> Result<(), Error<T::Error>> {
        loop {
            let retry_at = self.shared.with_lock(|s| match &s.state {
                State::Fetching(f) => f.retry_at(),
                _ => None,
            });
            if let Some(at) = retry_at {
                self.clock.sleep_until(at).await;
            }
            let sent_at = self.clock.now();
            self.shared.with_lock(|s| {
                if let State::Fetching(f) = s.state.take() {
                    s.state = State::Fetching(f.retry(sent_at));
                }
            });
            let request = Request {
                method: Method::Post,
                url: self.config.token_endpoint(),
                headers: TOKEN_REQUEST_HEADERS,
                authorization: self.config.authorization(),
                body: self.config.form_body().as_bytes(),
            };
            let rx_range = (io.rx.as_ptr() as usize, io.rx.len());
            let sent = io
                .transport
                .send(&request, &mut io.rx)
                .await
                .map(|r| Detached::new(&r, rx_range));
            let now = self.clock.now();
            // `Retry-After` dates are whole seconds.
            let unix_now = self.clock.unix_time().map(UnixTime::as_secs);
            let mut transport_error = None;
            let result = match sent {
                Ok(Some(d)) => {
                    let (head, scratch) = io.rx.split_at_mut(d.end());
                    let response = d.attach(head);
                    trace!("alf: token endpoint answered {}", response.status);
                    parse_token_response::<N>(
                        &response,
                        scratch,
                        self.config.secret.secret(),
                        unix_now,
                    )
                }
                Ok(None) => Err(Error::InvalidResponse(ResponseError::BodyNotInBuffer)),
                Err(e) => {
                    let kind = embedded_io::Error::kind(&e);
                    transport_error = Some(e);
                    Err(Error::Transport(kind))
                }
            };
            let outcome = self.shared.with_lock(|s| s.complete(now, result));
            // The response (and the token in it) has been read: no copy stays behind.
            zeroize::Zeroize::zeroize(&mut io.rx[..]);
            match outcome {
                AttemptOutcome::Done => {
                    if S::ENABLED {
                        self.save_to_store(io, now).await;
                    }
                    return Ok(());
                }
                // The wait happens at the top of the loop, so that a caller that takes over
                // from a dropped one waits too.
                AttemptOutcome::Retry => {}
                AttemptOutcome::Failed { stale: true, .. } => return Ok(()),
                AttemptOutcome::Failed {
                    stale: false,
                    error,
                } => {
                    return Err(match transport_error {
                        Some(e) => Error::Transport(e),
                        None => Error::from_shared(error),
                    });
                }
            }
        }
    }

    /// `true` when a usable token was loaded from the store.
    async fn load_from_store(&self, io: &mut Io<T, S, RX>) -> bool {
        let loaded = self.try_load_from_store(io).await.is_some();
        // The stored value was read into the token-response buffer: no copy stays behind.
        zeroize::Zeroize::zeroize(&mut io.rx[..]);
        loaded
    }

    async fn try_load_from_store(&self, io: &mut Io<T, S, RX>) -> Option<()> {
        self.clock.unix_time()?;
        let key = self.store_key(&mut io.key);
        let loaded = match io.store.load(&key, &mut io.rx).await {
            Ok(Some(t)) => t,
            Ok(None) => return None,
            Err(_) => {
                warn!("alf: token store load failed; fetching instead");
                return None;
            }
        };
        if !is_valid_token(loaded.access_token) {
            warn!("alf: token store returned an invalid token; fetching instead");
            return None;
        }
        let token = AccessToken::<N>::from_token(loaded.access_token)?;
        // The monotonic time first, then the wall time: the time left is counted from a
        // reading taken no earlier than `now`, and from the end of the interval that reading
        // stands for (the end of its second, for a clock that counts whole seconds; the end
        // of its millisecond otherwise: clocks round down), so the token's deadline on the
        // monotonic clock, which rounds down too, is never past its real expiry. Saving rounds
        // the other way: it never stores a later expiry.
        let now = self.clock.now();
        let unix_now = self.clock.unix_time()?;
        let remaining = Duration::from_millis(
            loaded
                .expires_at_unix_ms
                .checked_sub(unix_now.latest_millis().checked_add(1)?)?,
        );
        self.shared.with_lock(|s| {
            // The token a server just rejected: fetch a new one instead.
            if s.rejected == Some(fingerprint_bytes(token.secret().as_bytes())) {
                return None;
            }
            // During a refresh the store usually holds the very token being refreshed (this
            // client saved it). Adopting it again would push its refresh towards its expiry,
            // over and over: only a newer token, saved by another process, counts.
            if let State::Fetching(f) = &s.state
                && f.stale(now)
                    .is_some_and(|t| t.access_token().secret() == token.secret())
            {
                return None;
            }
            // Its refresh is scheduled from the remaining lifetime, with the margin capped at
            // half of it, as for a fetched token; one that is already due is not adopted.
            let v = Valid::adopt(&mut s.ctx, token, now, remaining)?;
            match v.check(now) {
                Check::Fresh(v) => {
                    debug!("alf: using the token from the store");
                    s.state = State::Valid(v);
                    s.completed = s.completed.wrapping_add(1);
                    s.last_error = None;
                    Some(())
                }
                // Due or expired: not worth adopting, fetch a new one.
                _ => None,
            }
        })
    }

    async fn save_to_store(&self, io: &mut Io<T, S, RX>, now: Instant) {
        // The wall time first, then the monotonic time: the time left is measured from an
        // instant no earlier than the wall clock reading, which is itself no later than the
        // real time, so the stored expiry is never later than the real one.
        let Some(unix_now) = self.clock.unix_time() else {
            return;
        };
        let mono_now = self.clock.now();
        let key = self.store_key(&mut io.key);
        // The token is copied into the token-response buffer (which just held it, in the
        // response), not into this future.
        let Io { store, rx, .. } = io;
        let copied = self.shared.with_lock(|s| {
            let t = s.state.usable_token(now)?;
            let value = t.access_token().secret().as_bytes();
            rx.get_mut(..value.len())?.copy_from_slice(value);
            Some((value.len(), t.expires_at()))
        });
        let Some((len, expires_at)) = copied else {
            return;
        };
        let token = HeaderCopy(rx.get_mut(..len).unwrap_or_default());
        let stored = StoredToken {
            access_token: token.value(),
            expires_at_unix_ms: unix_now
                .as_millis()
                .saturating_add(expires_at.saturating_duration_since(mono_now).as_millis()),
        };
        if store.save(&key, stored).await.is_err() {
            warn!("alf: token store save failed");
        }
    }

    /// Send a resource request with `Authorization: Bearer <token>`.
    ///
    /// - The token is fetched first if needed; if that fails, the error is returned and the
    ///   request is **not sent**.
    /// - On a 401 the token is dropped (only if it is still the one that was rejected) and the
    ///   request is sent once more with a new token; the second response is returned as it
    ///   is. A 401 whose `WWW-Authenticate` says `insufficient_scope` or `invalid_request` is
    ///   not replayed: a new token would not change the answer. Request bodies here are byte
    ///   slices, so they can always be replayed.
    /// - A request that already has an `Authorization` header is refused
    ///   ([`RequestError::AuthorizationHeaderPresent`]) rather than silently overwritten.
    /// - The response is read into `rx` (the body, and with some transports the headers).
    ///   With a [resource transport](Self::with_resource_transport), the end of `rx` holds the
    ///   `Authorization` value meanwhile.
    /// - The token is read when the transport is free for this request: a request that waited
    ///   behind a refresh goes out with the new token, and one that waited behind a rejected
    ///   token goes out with the next one, not with the rejected one.
    /// - No copy of the token is held in the future: `send`'s future is about the transport's
    ///   own plus a few hundred bytes, whatever the token capacity `N`.
    pub async fn send<'b>(
        &self,
        request: &Request<'_>,
        rx: &'b mut [u8],
    ) -> Result<Response<'b>, Error<T::Error>> {
        if request.authorization.is_some() || request.header("authorization").is_some() {
            return Err(Error::Request(RequestError::AuthorizationHeaderPresent));
        }
        if !request
            .headers
            .iter()
            .all(|(n, v)| is_valid_header_name(n) && is_valid_header_value(v))
            || !is_valid_header_value(request.url)
        {
            return Err(Error::Request(RequestError::InvalidHeader));
        }
        let (d, generation) = self.send_authorized(request, rx).await?;
        let replay = d.status == 401
            && !matches!(
                d.bearer_error,
                Some(BearerError::InsufficientScope | BearerError::InvalidRequest)
            );
        if !replay {
            return Ok(d.attach(rx));
        }
        debug!(
            "alf: 401 with token generation {}, replaying once",
            generation
        );
        self.invalidate(generation);
        let (d, _) = self.send_authorized(request, rx).await?;
        Ok(d.attach(rx))
    }

    /// Get a token if needed, then send `request` with it. Returns the response and the
    /// generation of the token that was sent.
    async fn send_authorized(
        &self,
        request: &Request<'_>,
        rx: &mut [u8],
    ) -> Result<(Detached, u32), Error<T::Error>> {
        loop {
            self.ensure_token().await?;
            if let Some(sent) = self.send_once(request, rx).await? {
                return Ok(sent);
            }
            // The token expired or was rejected while this request waited for the transport.
        }
    }

    /// Send `request` once with the token usable when the transport is ours; `None` when
    /// there is none any more.
    ///
    /// The `Authorization` value is copied where it costs no memory of its own: into the
    /// client's token-response buffer, which is free while this caller holds the I/O lock
    /// (one transport), or, with a resource transport, into the end of `rx`, which the
    /// transport then does not get. Never into this future, which would grow by the token
    /// capacity. The copy is wiped when the request is done.
    async fn send_once(
        &self,
        request: &Request<'_>,
        rx: &mut [u8],
    ) -> Result<Option<(Detached, u32)>, Error<T::Error>> {
        let rx_range = (rx.as_ptr() as usize, rx.len());
        let (response, generation) = match &self.resource {
            Some(transport) => {
                let mut transport = transport.lock().await;
                let now = self.clock.now();
                let (start, len, generation) =
                    match self.shared.with_lock(|s| s.copy_header(now, rx, true)) {
                        Header::Copied {
                            start,
                            len,
                            generation,
                        } => (start, len, generation),
                        Header::NoToken => return Ok(None),
                        Header::TooLong => return Err(Error::Capacity(CapacityError::Header)),
                    };
                let (head, tail) = rx.split_at_mut(start);
                let header = HeaderCopy(tail.get_mut(..len).unwrap_or_default());
                let authed = Request {
                    authorization: Some(header.value()),
                    ..*request
                };
                let response = transport.send(&authed, head).await;
                (response, generation)
            }
            None => {
                let mut io = self.io.lock().await;
                let Io {
                    transport, rx: buf, ..
                } = &mut *io;
                let now = self.clock.now();
                let (len, generation) =
                    match self.shared.with_lock(|s| s.copy_header(now, buf, false)) {
                        Header::Copied {
                            len, generation, ..
                        } => (len, generation),
                        Header::NoToken => return Ok(None),
                        Header::TooLong => return Err(Error::Capacity(CapacityError::Header)),
                    };
                let header = HeaderCopy(buf.get_mut(..len).unwrap_or_default());
                let authed = Request {
                    authorization: Some(header.value()),
                    ..*request
                };
                let response = transport.send(&authed, rx).await;
                (response, generation)
            }
        };
        let response = response.map_err(Error::Transport)?;
        let d = Detached::new(&response, rx_range)
            .ok_or(Error::InvalidResponse(ResponseError::BodyNotInBuffer))?;
        Ok(Some((d, generation)))
    }
}

/// A response with its body recorded as a range of the receive buffer, so that the buffer can
/// be borrowed again (to replay, or to unescape into its unused end).
#[derive(Clone, Copy)]
struct Detached {
    status: u16,
    start: usize,
    len: usize,
    retry_after: Option<crate::http::RetryAfter>,
    bearer_error: Option<BearerError>,
}

impl Detached {
    /// `None` if the body is not inside the receive buffer `(address, length)` (a transport
    /// that broke its contract).
    fn new(r: &Response<'_>, (base, rx_len): (usize, usize)) -> Option<Self> {
        let body = r.body.as_ptr() as usize;
        let start = if r.body.is_empty() {
            0
        } else {
            body.checked_sub(base)?
        };
        if start.checked_add(r.body.len())? > rx_len {
            return None;
        }
        Some(Self {
            status: r.status,
            start,
            len: r.body.len(),
            retry_after: r.retry_after,
            bearer_error: r.bearer_error,
        })
    }
    fn end(&self) -> usize {
        self.start + self.len
    }
    fn attach(self, rx: &[u8]) -> Response<'_> {
        Response {
            status: self.status,
            body: &rx[self.start..self.end()],
            retry_after: self.retry_after,
            bearer_error: self.bearer_error,
        }
    }
}
