#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod error;
mod lock_id;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use alf::{StoredToken, TokenStore};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisResult};
use zeroize::Zeroizing;

pub use error::RedisStoreError;

/// Longest TTL given to Redis (100 years, in milliseconds): far beyond any token, and far from
/// the overflow Redis rejects.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// Deletes the lock only if it still holds this instance's id (atomic on the server).
const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// An [`alf::TokenStore`] in Redis: processes and hosts sharing one Redis share one token, and
/// fetch it once (see the crate documentation).
///
/// Create one per [`alf::Client`]; it connects on first use and reconnects after a failure.
/// It must be used inside a Tokio runtime with timers enabled.
pub struct RedisStore {
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    prefix: String,
    timeout: Duration,
    lock_id: String,
    unlock: redis::Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: leave it out.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The default [`timeout`](Self::timeout) of every operation: 200 ms.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

    /// A store for the Redis at `url` (`redis://[:password@]host[:port][/db]`).
    ///
    /// This does no I/O: the connection is made by the first operation (or by
    /// [`connect`](Self::connect)), so a Redis that is down at start-up makes operations fail
    /// quickly, and they succeed once it is up.
    ///
    /// # Errors
    /// [`RedisStoreError::InvalidUrl`] when `url` is not a Redis URL.
    pub fn new(url: &str) -> Result<Self, RedisStoreError> {
        let client = redis::Client::open(url).map_err(|_| RedisStoreError::InvalidUrl)?;
        Ok(Self::from_client(client))
    }

    /// A store using a `redis::Client` you configured yourself (TLS, credentials).
    pub fn from_client(client: redis::Client) -> Self {
        Self {
            client,
            conn: None,
            prefix: String::new(),
            timeout: Self::DEFAULT_TIMEOUT,
            lock_id: lock_id::new_lock_id(),
            unlock: redis::Script::new(UNLOCK_SCRIPT),
        }
    }

    /// Put `prefix` in front of every key (for example `"myapp:"`), to keep alf's keys apart
    /// from other data in a shared Redis.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Give up on any operation, including connecting, after `timeout` (default
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT)). A request that needs a token waits at
    /// most this long per store operation for a slow or dead Redis.
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

    /// Connect now (and `PING`), instead of on first use: to check the configuration at start-up.
    ///
    /// # Errors
    /// When Redis cannot be reached within the timeout.
    pub async fn connect(&mut self) -> Result<(), RedisStoreError> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<()>(&mut c).await })
            .await
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn lock_key(&self, key: &str) -> String {
        format!("{}{key}:lock", self.prefix)
    }

    async fn connection(&mut self) -> RedisResult<MultiplexedConnection> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        self.conn = Some(c.clone());
        Ok(c)
    }

    /// Run `op` on a connection within the timeout; forget the connection when it failed, so
    /// that the next operation reconnects.
    ///
    /// A connection kept from an earlier operation may have died meanwhile (Redis restarted):
    /// then `op` runs once more on a new connection, within the same timeout. Every `op` here
    /// is safe to repeat.
    async fn run<T, F>(
        &mut self,
        op: impl Fn(MultiplexedConnection) -> F,
    ) -> Result<T, RedisStoreError>
    where
        F: Future<Output = RedisResult<T>>,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisStoreError::NoRuntime);
        }
        let timeout = self.timeout;
        let outcome = tokio::time::timeout(timeout, async {
            let reused = self.conn.is_some();
            match op(self.connection().await?).await {
                Err(e)
                    if reused
                        && RedisStoreError::from(e.clone()) == RedisStoreError::Connection =>
                {
                    self.conn = None;
                    op(self.connection().await?).await
                }
                other => other,
            }
        })
        .await;
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let e = RedisStoreError::from(e);
                if matches!(e, RedisStoreError::Connection | RedisStoreError::Timeout) {
                    self.conn = None;
                }
                Err(e)
            }
            Err(_elapsed) => {
                self.conn = None;
                Err(RedisStoreError::Timeout)
            }
        }
    }
}

impl TokenStore for RedisStore {
    type Error = RedisStoreError;

    /// `GET` the entry; anything that is not a valid entry (wrong format, wrong Redis type,
    /// a token that does not fit `buf`) is `Ok(None)`.
    async fn load<'b>(
        &mut self,
        key: &str,
        buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error> {
        let key = &self.key(key);
        let raw = self
            .run(|mut c| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<Vec<u8>>>(&mut c)
                    .await
            })
            .await;
        let raw = match raw {
            Ok(Some(raw)) => Zeroizing::new(raw),
            Ok(None) => return Ok(None),
            // Someone else's data under our key: not a token.
            Err(RedisStoreError::Redis {
                code: Some(code), ..
            }) if code == "WRONGTYPE" => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(StoredToken::decode(&raw, buf))
    }

    /// `SET key value PX <ms until expiry>` (one atomic command), or `DEL` if the token has
    /// already expired by the system clock.
    async fn save(&mut self, key: &str, token: StoredToken<'_>) -> Result<(), Self::Error> {
        let mut encoded = Zeroizing::new(vec![0u8; token.encoded_len()]);
        let len = token
            .encode(&mut encoded)
            .ok_or(RedisStoreError::InvalidToken)?;
        let value = &encoded[..len];
        let ttl_ms = token
            .expires_at_unix_ms
            .saturating_sub(lock_id::unix_now_ms())
            .min(MAX_TTL_MS);
        let key = &self.key(key);
        if ttl_ms == 0 {
            return self.run(|mut c| async move { redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await }).await;
        }
        self.run(|mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// `DEL` the entry.
    async fn clear(&mut self, key: &str) -> Result<(), Self::Error> {
        let key = &self.key(key);
        self.run(|mut c| async move { redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await })
            .await
    }

    /// `SET <key>:lock <this instance's id> NX PX <ttl>`: `Ok(true)` when it was set, or when
    /// the lock already holds this instance's id (so a retry after a lost reply, or a second
    /// call, still reports the lock this instance holds).
    async fn try_lock(&mut self, key: &str, ttl: alf::Duration) -> Result<bool, Self::Error> {
        let key = &self.lock_key(key);
        let id = &self.lock_id.clone();
        let ttl_ms = ttl.as_millis().clamp(1, MAX_TTL_MS);
        self.run(|mut c| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(id).arg("NX").arg("PX").arg(ttl_ms);
            if cmd.query_async::<Option<String>>(&mut c).await?.is_some() {
                return Ok(true);
            }
            let holder = redis::cmd("GET")
                .arg(key)
                .query_async::<Option<String>>(&mut c)
                .await?;
            Ok(holder.as_ref() == Some(id))
        })
        .await
    }

    /// Delete `<key>:lock` if it still holds this instance's id, atomically (a Lua script).
    async fn unlock(&mut self, key: &str) -> Result<(), Self::Error> {
        let key = &self.lock_key(key);
        let id = &self.lock_id.clone();
        let script = &self.unlock.clone();
        self.run(|mut c| async move {
            script
                .key(key)
                .arg(id)
                .invoke_async::<i64>(&mut c)
                .await
                .map(drop)
        })
        .await
    }
}
