//! Token stores: keeping a token somewhere other than the client's own memory, so that other
//! processes (Redis, Memcached) or the next boot (flash) can reuse it.
//!
//! A stored token carries its expiry as absolute Unix milliseconds, so alf only reads and
//! writes a store when the [`Clock`](crate::Clock) knows the wall time. A store that fails,
//! times out or returns garbage never fails a request: alf logs a warning and fetches a token
//! itself.

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
    /// When it expires, in milliseconds since the Unix epoch.
    ///
    /// alf computes it from the [`Clock`](crate::Clock)'s wall time so that it is never later
    /// than the real expiry, and counts a loaded token's time left from the latest time the
    /// clock's reading stands for (see [`UnixTime`](crate::UnixTime)).
    pub expires_at_unix_ms: u64,
}

impl fmt::Debug for StoredToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("access_token", &"[redacted]")
            .field("expires_at_unix_ms", &self.expires_at_unix_ms)
            .finish()
    }
}

/// The text form of a stored token for key/value stores:
/// `v2\nBearer\n<expires_at_unix_ms>\n<token>`.
const VALUE_VERSION: &str = "v2";
/// The previous text form, `v1\nBearer\n<expires_at_unix, in seconds>\n<token>`: still read.
const VALUE_VERSION_1: &str = "v1";
const VALUE_TOKEN_TYPE: &str = "Bearer";

impl StoredToken<'_> {
    /// Bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let mut digits = 1;
        let mut n = self.expires_at_unix_ms;
        while n >= 10 {
            n /= 10;
            digits += 1;
        }
        VALUE_VERSION.len() + VALUE_TOKEN_TYPE.len() + digits + self.access_token.len() + 3
    }

    /// Write this token in the value format key/value stores share
    /// (`v2\nBearer\n<expires_at_unix_ms>\n<token>`) into `out`; returns the bytes written, or
    /// `None` if `out` is too small or the token is not a valid header value.
    ///
    /// # Security
    /// `out` then holds a live credential: wipe it after use.
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        if !crate::response::is_valid_token(self.access_token) {
            return None;
        }
        let mut w = Writer { out, pos: 0 };
        core::fmt::write(
            &mut w,
            format_args!(
                "{VALUE_VERSION}\n{VALUE_TOKEN_TYPE}\n{}\n{}",
                self.expires_at_unix_ms, self.access_token
            ),
        )
        .ok()?;
        Some(w.pos)
    }
}

impl<'b> StoredToken<'b> {
    /// Read a value written by [`encode`](StoredToken::encode), copying the token into `buf`.
    ///
    /// Reads the current form (`v2`, expiry in milliseconds) and the one alf wrote before
    /// (`v1\nBearer\n<expires_at_unix, in seconds>\n<token>`, converted to milliseconds), so
    /// that tokens already in a store keep working after an upgrade. Anything else (another
    /// version, a bad expiry, a token with spaces or control bytes, a token longer than `buf`)
    /// is `None`: a store treats it as "no token".
    pub fn decode(raw: &[u8], buf: &'b mut [u8]) -> Option<Self> {
        let mut parts = raw.splitn(4, |&b| b == b'\n');
        let version = parts.next()?;
        let millis_per_unit = if version == VALUE_VERSION.as_bytes() {
            1
        } else if version == VALUE_VERSION_1.as_bytes() {
            1000
        } else {
            return None;
        };
        if !parts
            .next()?
            .eq_ignore_ascii_case(VALUE_TOKEN_TYPE.as_bytes())
        {
            return None;
        }
        let expires = parts.next()?;
        if expires.is_empty() || expires.len() > 20 || !expires.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let expires = expires.iter().try_fold(0u64, |a, d| {
            a.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        // A v1 expiry past `u64::MAX` ms (half a billion years) is "never" either way.
        let expires_at_unix_ms = expires.saturating_mul(millis_per_unit);
        let token = core::str::from_utf8(parts.next()?).ok()?;
        if !crate::response::is_valid_token(token) {
            return None;
        }
        let dst = buf.get_mut(..token.len())?;
        dst.copy_from_slice(token.as_bytes());
        let access_token = core::str::from_utf8(dst).ok()?;
        Some(Self {
            access_token,
            expires_at_unix_ms,
        })
    }
}

/// `fmt::Write` into a byte slice, failing when it is full.
struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.pos.checked_add(s.len()).ok_or(fmt::Error)?;
        self.out
            .get_mut(self.pos..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.pos = end;
        Ok(())
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
///   `expires_at_unix_ms` (rounding up to the store's TTL unit is fine: alf checks the expiry
///   in the value itself).
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
    expires_at_unix_ms: u64,
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
            expires_at_unix_ms: 0,
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
            expires_at_unix_ms: self.expires_at_unix_ms,
        }))
    }

    async fn save(&mut self, key: &str, token: StoredToken<'_>) -> Result<(), Self::Error> {
        let new_token =
            SecretString::try_from_str(token.access_token).ok_or(MemoryStoreError::TooLong)?;
        let new_key = heapless::String::try_from(key).map_err(|_| MemoryStoreError::TooLong)?;
        self.key = new_key;
        self.token = new_token;
        self.expires_at_unix_ms = token.expires_at_unix_ms;
        Ok(())
    }

    async fn clear(&mut self, key: &str) -> Result<(), Self::Error> {
        if self.key.as_str() == key {
            self.token.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(token: &str, expires_at_unix_ms: u64) -> Option<(heapless::String<64>, u64)> {
        let t = StoredToken {
            access_token: token,
            expires_at_unix_ms,
        };
        let mut raw = [0u8; 128];
        let n = t.encode(&mut raw)?;
        assert_eq!(n, t.encoded_len());
        let mut buf = [0u8; 64];
        let d = StoredToken::decode(&raw[..n], &mut buf)?;
        Some((
            heapless::String::try_from(d.access_token).ok()?,
            d.expires_at_unix_ms,
        ))
    }

    #[test]
    fn values_round_trip() {
        for (tok, exp) in [
            ("abc.DEF-_~+/=", 1_700_000_000),
            ("t", u64::MAX),
            ("t", 0),
            ("t", 9),
            ("t", 10),
        ] {
            let (t, e) = round_trip(tok, exp).unwrap();
            assert_eq!((t.as_str(), e), (tok, exp));
        }
        let mut raw = [0u8; 128];
        let n = StoredToken {
            access_token: "tok",
            expires_at_unix_ms: 5,
        }
        .encode(&mut raw)
        .unwrap();
        assert_eq!(&raw[..n], b"v2\nBearer\n5\ntok");
    }

    #[test]
    fn invalid_tokens_are_not_encoded_and_small_buffers_fail() {
        for bad in ["", "a b", "a\nb", "a\rb", "\u{e9}", "a\tb"] {
            let t = StoredToken {
                access_token: bad,
                expires_at_unix_ms: 1,
            };
            assert_eq!(t.encode(&mut [0u8; 64]), None, "{bad:?}");
        }
        let t = StoredToken {
            access_token: "token",
            expires_at_unix_ms: 123,
        };
        assert_eq!(t.encode(&mut [0u8; 10]), None);
        let mut raw = [0u8; 64];
        let n = t.encode(&mut raw).unwrap();
        assert_eq!(
            StoredToken::decode(&raw[..n], &mut [0u8; 4]),
            None,
            "token larger than buf"
        );
    }

    fn decoded(raw: &[u8]) -> Option<(heapless::String<64>, u64)> {
        let mut buf = [0u8; 64];
        let d = StoredToken::decode(raw, &mut buf)?;
        Some((
            heapless::String::try_from(d.access_token).ok()?,
            d.expires_at_unix_ms,
        ))
    }

    #[test]
    fn v2_values_are_milliseconds() {
        let (t, e) = decoded(b"v2\nBearer\n1700000000123\nabc.DEF").unwrap();
        assert_eq!((t.as_str(), e), ("abc.DEF", 1_700_000_000_123));
        let (t, e) = decoded(b"v2\nbearer\n5\ntok").unwrap();
        assert_eq!((t.as_str(), e), ("tok", 5));
        let (_, e) = decoded(b"v2\nBearer\n18446744073709551615\ntok").unwrap();
        assert_eq!(e, u64::MAX);
    }

    #[test]
    fn v1_values_are_still_read_as_seconds() {
        // What alf wrote before the expiry was kept in milliseconds: a token already in a
        // store keeps working after an upgrade, with the same expiry.
        let (t, e) = decoded(b"v1\nBearer\n1700000000\nabc.DEF").unwrap();
        assert_eq!((t.as_str(), e), ("abc.DEF", 1_700_000_000_000));
        let (t, e) = decoded(b"v1\nbearer\n5\ntok").unwrap();
        assert_eq!((t.as_str(), e), ("tok", 5_000));
        assert_eq!(decoded(b"v1\nBearer\n0\ntok").unwrap().1, 0);
        // Seconds beyond u64::MAX milliseconds saturate ("never", in practice).
        let (_, e) = decoded(b"v1\nBearer\n18446744073709551615\ntok").unwrap();
        assert_eq!(e, u64::MAX);
        let (_, e) = decoded(b"v1\nBearer\n18446744073709552\ntok").unwrap();
        assert_eq!(e, u64::MAX);
    }

    #[test]
    fn garbage_decodes_to_none() {
        let mut cases: heapless::Vec<heapless::Vec<u8, 64>, 64> = heapless::Vec::new();
        let per_version: &[&[u8]] = &[
            b"",
            b"\nBearer\n123",
            b"\nBearer\n123\n",
            b"\nMAC\n123\ntok",
            b"\n\n123\ntok",
            b"\nBearer\n\ntok",
            b"\nBearer\n-1\ntok",
            b"\nBearer\n+1\ntok",
            b"\nBearer\n12a\ntok",
            b"\nBearer\n 12\ntok",
            b"\nBearer\n1.5\ntok",
            b"\nBearer\n18446744073709551616\ntok",
            b"\nBearer\n123456789012345678901\ntok",
            b"\nBearer\n123\nto k",
            b"\nBearer\n123\ntok\n",
            b"\nBearer\n123\ntok\r",
            b"\nBearer\n123\nt\xffk",
            b"\nBearer\n123\n",
            b"\r\nBearer\r\n123\r\ntok",
        ];
        for version in [&b"v1"[..], b"v2"] {
            for tail in per_version {
                let mut raw = heapless::Vec::new();
                raw.extend_from_slice(version).unwrap();
                raw.extend_from_slice(tail).unwrap();
                cases.push(raw).unwrap();
            }
        }
        let others: &[&[u8]] = &[
            b"",
            b"v1",
            b"v2",
            b"v0\nBearer\n123\ntok",
            b"v3\nBearer\n123\ntok",
            b"V1\nBearer\n123\ntok",
            b"V2\nBearer\n123\ntok",
            b"v12\nBearer\n123\ntok",
            b" v2\nBearer\n123\ntok",
            b"Bearer\n123\ntok",
            b"\xff\xfe\n\n\n",
        ];
        for raw in others {
            cases.push(heapless::Vec::from_slice(raw).unwrap()).unwrap();
        }
        for raw in &cases {
            assert_eq!(StoredToken::decode(raw, &mut [0u8; 64]), None, "{raw:?}");
        }
    }
}
