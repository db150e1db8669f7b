#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod error;
mod lock_id;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use alf::{StoredToken, TokenStore};
use async_memcached::{AsciiProtocol, Client, Error, MetaProtocol, Status};
use zeroize::Zeroizing;

pub use error::MemcachedStoreError;

/// memcached reads an expiry above 30 days as an absolute Unix time.
const MAX_RELATIVE_EXPTIME: u64 = 30 * 24 * 3600;
/// memcached parses the expiry as a 32-bit signed integer.
const MAX_EXPTIME: u64 = i32::MAX as u64;
/// memcached's longest key.
const MAX_KEY_LEN: usize = 250;

/// An [`alf::TokenStore`] in memcached: processes and hosts sharing one memcached share one
/// token, and fetch it once (see the crate documentation).
///
/// Create one per [`alf::Client`]; it connects on first use and reconnects after a failure.
/// It must be used inside a Tokio runtime with timers enabled.
pub struct MemcachedStore {
    addr: String,
    conn: Option<Client>,
    prefix: String,
    timeout: Duration,
    lock_id: String,
}

impl fmt::Debug for MemcachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedStore")
            .field("addr", &self.addr)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl MemcachedStore {
    /// The default [`timeout`](Self::timeout) of every operation: 200 ms.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

    /// A store for the memcached at `addr`: `host:port`, `tcp://host:port` or
    /// `unix:///path/to/socket`.
    ///
    /// This does no I/O: the connection is made by the first operation (or by
    /// [`connect`](Self::connect)), so a memcached that is down at start-up makes operations
    /// fail quickly, and they succeed once it is up. An address that cannot be used shows up
    /// as [`MemcachedStoreError::Connection`] then.
    pub fn new(addr: impl Into<String>) -> Self {
        let mut addr = addr.into();
        // async-memcached reads `127.0.0.1:11211` as a URL with scheme `127.0.0.1`.
        if !addr.contains("://") {
            addr.insert_str(0, "tcp://");
        }
        Self {
            addr,
            conn: None,
            prefix: String::new(),
            timeout: Self::DEFAULT_TIMEOUT,
            lock_id: lock_id::new_lock_id(),
        }
    }

    /// Put `prefix` in front of every key (for example `"myapp:"`), to keep alf's keys apart
    /// from other data in a shared memcached. Keys must stay memcached keys: visible ASCII,
    /// no spaces, 250 bytes in all (alf's keys take 36, the lock suffix 5).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Give up on any operation, including connecting, after `timeout` (default
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT)). A request that needs a token waits at
    /// most this long per store operation for a slow or dead memcached.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The timeout of every operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Connect now (and ask for the server's version), instead of on first use: to check the
    /// configuration at start-up.
    ///
    /// # Errors
    /// When memcached cannot be reached within the timeout.
    pub async fn connect(&mut self) -> Result<(), MemcachedStoreError> {
        self.run(|mut c| async move {
            let r = c.version().await.map(drop);
            (c, r)
        })
        .await
    }

    fn key(&self, key: &str, suffix: &str) -> Result<String, MemcachedStoreError> {
        let full = format!("{}{key}{suffix}", self.prefix);
        if full.is_empty()
            || full.len() > MAX_KEY_LEN
            || !full.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return Err(MemcachedStoreError::InvalidKey);
        }
        Ok(full)
    }

    /// The kept connection, or a new one. The caller puts it back into `self.conn`.
    async fn take_connection(&mut self) -> Result<Client, Error> {
        match self.conn.take() {
            // A client whose last operation was cut short has closed its connection.
            Some(c) if !c.is_closed() => Ok(c),
            _ => Client::new(&self.addr).await,
        }
    }

    /// Run `op` on a connection within the timeout; forget the connection when it failed, so
    /// that the next operation reconnects. `op` gets the connection and gives it back with its
    /// result (a cancelled `op` takes it along: a timed-out connection is not reused).
    ///
    /// A connection kept from an earlier operation may have died meanwhile (memcached
    /// restarted): then `op` runs once more on a new connection, within the same timeout.
    /// Every `op` here is safe to repeat.
    async fn run<T, F>(&mut self, op: impl Fn(Client) -> F) -> Result<T, MemcachedStoreError>
    where
        F: Future<Output = (Client, Result<T, Error>)>,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(MemcachedStoreError::NoRuntime);
        }
        let timeout = self.timeout;
        let outcome = tokio::time::timeout(timeout, async {
            let reused = self.conn.as_ref().is_some_and(|c| !c.is_closed());
            let (conn, result) = op(self.take_connection().await?).await;
            let (conn, result) = match result {
                Err(Error::ConnectionClosed | Error::Io(_)) if reused => {
                    drop(conn);
                    op(self.take_connection().await?).await
                }
                other => (conn, other),
            };
            self.conn = Some(conn);
            result
        })
        .await;
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let e = MemcachedStoreError::from(e);
                if e == MemcachedStoreError::Connection {
                    self.conn = None;
                }
                Err(e)
            }
            Err(_elapsed) => {
                self.conn = None;
                Err(MemcachedStoreError::Timeout)
            }
        }
    }

    async fn delete(&mut self, key: &str) -> Result<(), MemcachedStoreError> {
        self.run(|mut c| async move {
            let r = match c.delete(key).await {
                Err(Error::Protocol(Status::NotFound)) => Ok(()),
                other => other,
            };
            (c, r)
        })
        .await
    }
}

impl TokenStore for MemcachedStore {
    type Error = MemcachedStoreError;

    /// `get` the entry; anything that is not a valid entry (wrong format, a token that does
    /// not fit `buf`) is `Ok(None)`.
    async fn load<'b>(
        &mut self,
        key: &str,
        buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error> {
        let key = &self.key(key, "")?;
        let value = self
            .run(|mut c| async move {
                let r = c.get(key).await;
                (c, r)
            })
            .await?;
        let Some(raw) = value.and_then(|v| v.data) else {
            return Ok(None);
        };
        let raw = Zeroizing::new(raw);
        Ok(StoredToken::decode(&raw, buf))
    }

    /// `set` with the time left until expiry as `exptime` (whole seconds, rounded down; past
    /// 30 days, the absolute Unix time), or `delete` if less than a second is left by the
    /// system clock.
    async fn save(&mut self, key: &str, token: StoredToken<'_>) -> Result<(), Self::Error> {
        let mut encoded = Zeroizing::new(vec![0u8; token.encoded_len()]);
        let len = token
            .encode(&mut encoded)
            .ok_or(MemcachedStoreError::InvalidToken)?;
        let value = &encoded[..len];
        let key = &self.key(key, "")?;
        // Whole seconds left, rounded down: the entry never outlives the token.
        let remaining = token
            .expires_at_unix_ms
            .saturating_sub(lock_id::unix_now_ms())
            / 1000;
        if remaining == 0 {
            return self.delete(key).await;
        }
        let exptime = if remaining <= MAX_RELATIVE_EXPTIME {
            remaining
        } else {
            (token.expires_at_unix_ms / 1000).min(MAX_EXPTIME)
        };
        let exptime = i64::try_from(exptime).unwrap_or(i64::MAX);
        self.run(|mut c| async move {
            let r = c.set(key, value, Some(exptime), None).await;
            (c, r)
        })
        .await
    }

    /// `delete` the entry.
    async fn clear(&mut self, key: &str) -> Result<(), Self::Error> {
        let key = self.key(key, "")?;
        self.delete(&key).await
    }

    /// `add <key>:lock <this instance's id>`: `Ok(true)` when it was stored, or when the lock
    /// already holds this instance's id (so a retry after a lost reply, or a second call,
    /// still reports the lock this instance holds).
    ///
    /// memcached's clock ticks once a second, so an entry given `n` seconds lives between
    /// `n - 1` and `n` seconds: the lock gets `ttl` rounded up to whole seconds plus one, and
    /// lives at least `ttl` (at most a second more).
    async fn try_lock(&mut self, key: &str, ttl: alf::Duration) -> Result<bool, Self::Error> {
        let key = &self.key(key, ":lock")?;
        let exptime = (ttl.as_millis().div_ceil(1000) + 1).clamp(1, MAX_RELATIVE_EXPTIME);
        let exptime = i64::try_from(exptime).unwrap_or(1);
        let id = self.lock_id.clone();
        let id = id.as_str();
        self.run(|mut c| async move {
            let r = lock(&mut c, key, id, exptime).await;
            (c, r)
        })
        .await
    }

    /// Delete `<key>:lock` if it still holds this instance's id: meta get of the value and its
    /// CAS, then a meta delete conditional on that CAS, so a lock taken over by another
    /// instance in between is never deleted.
    async fn unlock(&mut self, key: &str) -> Result<(), Self::Error> {
        let key = &self.key(key, ":lock")?;
        let id = self.lock_id.clone();
        let id = id.as_bytes();
        self.run(|mut c| async move {
            let r = unlock_if_held(&mut c, key, id).await;
            (c, r)
        })
        .await
    }
}

async fn lock(c: &mut Client, key: &str, id: &str, exptime: i64) -> Result<bool, Error> {
    match c.add(key, id, Some(exptime), None).await {
        Ok(()) => Ok(true),
        Err(Error::Protocol(Status::NotStored)) => {
            let holder = c.get(key).await?.and_then(|v| v.data);
            Ok(holder.as_deref() == Some(id.as_bytes()))
        }
        Err(e) => Err(e),
    }
}

async fn unlock_if_held(c: &mut Client, key: &str, id: &[u8]) -> Result<(), Error> {
    let Some(held) = c.meta_get(key, false, None, Some(&["v", "c"])).await? else {
        return Ok(());
    };
    let (Some(data), Some(cas)) = (held.data, held.cas) else {
        return Ok(());
    };
    if data != id {
        return Ok(());
    }
    let compare = format!("C{cas}");
    match c
        .meta_delete(key, false, None, Some(&[compare.as_str()]))
        .await
    {
        Ok(_) | Err(Error::Protocol(Status::Exists | Status::NotFound)) => Ok(()),
        Err(e) => Err(e),
    }
}
