//! Secret-bearing strings: the client secret, access tokens and the precomputed credentials.
//!
//! Every type here prints `[redacted]` through `Debug`, `Display` and `defmt::Format`, and wipes
//! its whole buffer (used and unused capacity) when dropped. Reading the value takes an explicit
//! call to `secret()`, so a secret never reaches a log line by accident.

use core::fmt;

use heapless::String;
use zeroize::Zeroize;

/// Capacity of a [`ClientSecret`] in bytes.
pub const CLIENT_SECRET_CAPACITY: usize = 256;

/// A string that must not be shown: redacted formatting, zeroized on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString<const N: usize>(String<N>);

/// The OAuth client secret.
pub type ClientSecret = SecretString<CLIENT_SECRET_CAPACITY>;

impl<const N: usize> SecretString<N> {
    /// An empty secret.
    pub const fn new() -> Self {
        Self(String::new())
    }

    /// Copy `value` into a new secret, or `None` when it is longer than `N` bytes.
    pub fn try_from_str(value: &str) -> Option<Self> {
        let mut s = Self::new();
        s.push_str(value).ok()?;
        Some(s)
    }

    /// The secret value.
    ///
    /// # Security
    /// The returned `&str` has none of this type's protections: do not log it, format it into
    /// an error, or copy it anywhere that is not wiped after use.
    pub fn secret(&self) -> &str {
        self.0.as_str()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Append `s`; on overflow nothing is appended and `Err(())` is returned.
    pub(crate) fn push_str(&mut self, s: &str) -> Result<(), ()> {
        self.0.push_str(s).map_err(|_| ())
    }

    /// Wipe the contents (the whole buffer) and make it empty.
    pub fn clear(&mut self) {
        self.0.zeroize();
    }
}

impl<const N: usize> Drop for SecretString<N> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<const N: usize> fmt::Debug for SecretString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<const N: usize> fmt::Display for SecretString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(feature = "defmt")]
impl<const N: usize> defmt::Format for SecretString<N> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "[redacted]")
    }
}

/// `fmt::Write` so encoders can write straight into a secret buffer.
impl<const N: usize> fmt::Write for SecretString<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s).map_err(|_| fmt::Error)
    }
}

/// The `Bearer ` prefix stored in front of every [`AccessToken`].
pub(crate) const BEARER_PREFIX: &str = "Bearer ";

/// An access token, stored ready to use as an `Authorization` header value.
///
/// `N` is the capacity in bytes *including* the 7-byte `Bearer ` prefix, so the longest token
/// that fits is `N - 7` bytes. The default of 2048 holds the JWTs of large providers.
/// Formatting prints `[redacted]`; the buffer is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken<const N: usize = 2048>(SecretString<N>);

impl<const N: usize> AccessToken<N> {
    /// Build a token from its value. Returns `None` if it does not fit in `N - 7` bytes; the
    /// caller is responsible for checking that it is a valid header value
    /// (see [`crate::response::is_valid_token`]).
    pub(crate) fn from_token(token: &str) -> Option<Self> {
        let mut s = SecretString::new();
        s.push_str(BEARER_PREFIX).ok()?;
        s.push_str(token).ok()?;
        Some(Self(s))
    }

    /// An empty token (just the prefix), to be filled with [`push_str`](Self::push_str).
    pub(crate) fn empty() -> Self {
        let mut s = SecretString::new();
        // `N` smaller than the prefix can hold no token at all; the first push then fails.
        let _ = s.push_str(BEARER_PREFIX);
        Self(s)
    }

    /// Append to the token; on overflow nothing is appended.
    pub(crate) fn push_str(&mut self, piece: &str) -> Result<(), ()> {
        if self.0.len() < BEARER_PREFIX.len() {
            return Err(());
        }
        self.0.push_str(piece)
    }

    /// The token itself, without the `Bearer ` prefix.
    ///
    /// # Security
    /// The returned `&str` is a live credential: never log it or put it in an error.
    pub fn secret(&self) -> &str {
        // `get`: a capacity below the prefix holds no token at all (never a panic).
        self.0.secret().get(BEARER_PREFIX.len()..).unwrap_or("")
    }

    /// The whole `Authorization` header value, `Bearer <token>`.
    ///
    /// # Security
    /// As for [`secret`](Self::secret).
    pub fn header_value(&self) -> &str {
        self.0.secret()
    }
}

impl<const N: usize> fmt::Debug for AccessToken<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

impl<const N: usize> fmt::Display for AccessToken<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(feature = "defmt")]
impl<const N: usize> defmt::Format for AccessToken<N> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "AccessToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn formatting_never_shows_the_value() {
        let s = ClientSecret::try_from_str("hunter2").unwrap();
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        let t = AccessToken::<64>::from_token("tok-123").unwrap();
        assert_eq!(format!("{t:?} {t}"), "AccessToken([redacted]) [redacted]");
        assert_eq!(t.secret(), "tok-123");
        assert_eq!(t.header_value(), "Bearer tok-123");
    }

    #[test]
    fn capacity_is_checked() {
        assert!(SecretString::<4>::try_from_str("12345").is_none());
        assert!(AccessToken::<10>::from_token("abcd").is_none()); // 7 + 4 > 10
        assert!(AccessToken::<11>::from_token("abcd").is_some());
    }

    #[test]
    fn clear_wipes_the_buffer() {
        let mut s = SecretString::<16>::try_from_str("wipe-me").unwrap();
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.secret(), "");
    }
}
