//! Token stores: keeping a token somewhere other than the client's own memory, so that other
//! processes (Redis, Memcached) or the next boot (flash) can reuse it.
//!
//! A stored token carries its expiry as absolute Unix seconds, so alf only reads and writes a
//! store when the [`Clock`](crate::Clock) knows the wall time. A store that fails, times out or
//! returns garbage never fails a request: alf logs a warning and fetches a token itself.

use core::fmt;

use crate::secret::SecretString;
use crate::time::Duration;

/// How a client coordinates with other processes through a shared store.
///
/// When the shared token is missing or due, one process takes a short lock in the store
/// ([`TokenStore::try_lock`]) and fetches; the others poll the store for its token every
/// `poll_interval`, for at most `wait`, then fetch themselves (so a lock holder that died
/// costs a short delay, not an outage). The lock expires on its own after `lock_ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct StorePolicy {
    /// How long the fetch lock lives if its holder never releases it. Default 10 s.
    pub lock_ttl: Duration,
    /// How long to wait for another process's token. Default 3 s.
    pub wait: Duration,
    /// How often to look for it. Default 50 ms.
    pub poll_interval: Duration,
}

impl StorePolicy {
    /// The default policy (see the field docs).
    pub const DEFAULT: Self = Self {
        lock_ttl: Duration::from_secs(10),
        wait: Duration::from_secs(3),
        poll_interval: Duration::from_millis(50),
    };
    /// Set [`lock_ttl`](Self::lock_ttl).
    pub const fn lock_ttl(mut self, d: Duration) -> Self {
        self.lock_ttl = d;
        self
    }
    /// Set [`wait`](Self::wait).
    pub const fn wait(mut self, d: Duration) -> Self {
        self.wait = d;
        self
    }
    /// Set [`poll_interval`](Self::poll_interval).
    pub const fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }
}

impl Default for StorePolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A token as it travels to and from a store.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StoredToken<'a> {
    /// The access token, without the `Bearer ` prefix.
    ///
    /// # Security
    /// A live credential: stores keep it, they never log it.
    pub access_token: &'a str,
    /// When it expires, in seconds since the Unix epoch.
    pub expires_at_unix: u64,
}

impl fmt::Debug for StoredToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("access_token", &"[redacted]")
            .field("expires_at_unix", &self.expires_at_unix)
            .finish()
    }
}

/// Somewhere to keep a token between processes or reboots.
///
/// `key` identifies the client: it is derived from the token endpoint, the client id, the
/// scopes and the extra parameters (a SHA-256, never including the secret), and is at most
/// 64 ASCII bytes, so one store can serve many clients.
///
/// # Contract
/// - `load` returns the token last saved under `key`, or `None`. It writes the token into
///   `buf` and returns a view of it; if it does not fit, return `Ok(None)`.
/// - `save` replaces the token under `key`. Stores with a TTL should expire the entry at
///   `expires_at_unix`.
/// - `clear` removes it.
/// - `try_lock` / `unlock` (optional) implement a fleet-wide single fetch: `try_lock` takes a
///   lock on `key` that expires by itself after `ttl` and returns `Ok(true)` if this store
///   instance now holds it; `unlock` releases it only if this instance still holds it. The
///   defaults do no coordination (`try_lock` always succeeds).
/// - Errors are reported, never panicked; alf treats every error as "no token here".
/// - Cancellation: a dropped `save` must not leave a corrupt entry that `load` would return as
///   a valid token (a torn entry reads as `None` or an error).
#[allow(async_fn_in_trait)]
pub trait TokenStore {
    /// The store's error type.
    type Error: fmt::Debug;

    /// `false` only for [`NoStore`]: lets alf skip computing the key.
    const ENABLED: bool = true;

    /// Load the token saved under `key`.
    async fn load<'b>(
        &mut self,
        key: &str,
        buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error>;

    /// Save `token` under `key`.
    async fn save(&mut self, key: &str, token: StoredToken<'_>) -> Result<(), Self::Error>;

    /// Remove the token saved under `key`.
    async fn clear(&mut self, key: &str) -> Result<(), Self::Error>;

    /// Try to take the fetch lock for `key` for at most `ttl`.
    async fn try_lock(&mut self, key: &str, ttl: Duration) -> Result<bool, Self::Error> {
        let _ = (key, ttl);
        Ok(true)
    }

    /// Release the fetch lock for `key`, if this instance holds it.
    async fn unlock(&mut self, key: &str) -> Result<(), Self::Error> {
        let _ = key;
        Ok(())
    }
}

impl<S: TokenStore + ?Sized> TokenStore for &mut S {
    type Error = S::Error;
    const ENABLED: bool = S::ENABLED;
    async fn load<'b>(
        &mut self,
        key: &str,
        buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error> {
        (**self).load(key, buf).await
    }
    async fn save(&mut self, key: &str, token: StoredToken<'_>) -> Result<(), Self::Error> {
        (**self).save(key, token).await
    }
    async fn clear(&mut self, key: &str) -> Result<(), Self::Error> {
        (**self).clear(key).await
    }
    async fn try_lock(&mut self, key: &str, ttl: Duration) -> Result<bool, Self::Error> {
        (**self).try_lock(key, ttl).await
    }
    async fn unlock(&mut self, key: &str) -> Result<(), Self::Error> {
        (**self).unlock(key).await
    }
}

/// The default: no store. The token lives in the client's own memory only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStore;

impl TokenStore for NoStore {
    type Error = core::convert::Infallible;
    const ENABLED: bool = false;
    async fn load<'b>(
        &mut self,
        _key: &str,
        _buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error> {
        Ok(None)
    }
    async fn save(&mut self, _key: &str, _token: StoredToken<'_>) -> Result<(), Self::Error> {
        Ok(())
    }
    async fn clear(&mut self, _key: &str) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// An in-memory store holding one token of up to `N` bytes: the reference implementation of
/// the contract, and a way for two clients in one program to share a token (through
/// `&mut MemoryStore`).
#[derive(Debug, Default)]
pub struct MemoryStore<const N: usize = 2048> {
    key: heapless::String<64>,
    token: SecretString<N>,
    expires_at_unix: u64,
}

/// Errors of [`MemoryStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryStoreError {
    /// The key or the token is longer than the store's capacity.
    TooLong,
}

impl<const N: usize> MemoryStore<N> {
    /// An empty store.
    pub const fn new() -> Self {
        Self {
            key: heapless::String::new(),
            token: SecretString::new(),
            expires_at_unix: 0,
        }
    }
}

impl<const N: usize> TokenStore for MemoryStore<N> {
    type Error = MemoryStoreError;

    async fn load<'b>(
        &mut self,
        key: &str,
        buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error> {
        let token = self.token.secret().as_bytes();
        if self.token.is_empty() || self.key.as_str() != key || token.len() > buf.len() {
            return Ok(None);
        }
        buf[..token.len()].copy_from_slice(token);
        let Ok(access_token) = core::str::from_utf8(&buf[..token.len()]) else {
            return Ok(None);
        };
        Ok(Some(StoredToken {
            access_token,
            expires_at_unix: self.expires_at_unix,
        }))
    }

    async fn save(&mut self, key: &str, token: StoredToken<'_>) -> Result<(), Self::Error> {
        let new_token =
            SecretString::try_from_str(token.access_token).ok_or(MemoryStoreError::TooLong)?;
        let new_key = heapless::String::try_from(key).map_err(|_| MemoryStoreError::TooLong)?;
        self.key = new_key;
        self.token = new_token;
        self.expires_at_unix = token.expires_at_unix;
        Ok(())
    }

    async fn clear(&mut self, key: &str) -> Result<(), Self::Error> {
        if self.key.as_str() == key {
            self.token.clear();
        }
        Ok(())
    }
}
