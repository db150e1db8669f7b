//! Errors of [`MemcachedStore`](crate::MemcachedStore).

use std::fmt;

use async_memcached::{Error, ErrorKind, Status};

/// What went wrong talking to memcached.
///
/// alf treats every error as "no token in the store" and fetches one itself, so these are for
/// logs and metrics. Neither `Debug` nor `Display` ever includes a token or a stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemcachedStoreError {
    /// The operation did not finish within the store's timeout
    /// ([`MemcachedStore::timeout`](crate::MemcachedStore::timeout)).
    Timeout,
    /// Called outside a Tokio runtime: the store needs one for its connection and timers.
    NoRuntime,
    /// memcached could not be reached, or the connection broke (refused, reset, closed). The
    /// next operation connects again.
    Connection,
    /// The prefix and the key together are not a valid memcached key (at most 250 bytes of
    /// visible ASCII, no spaces).
    InvalidKey,
    /// memcached reported an error (`CLIENT_ERROR`, `SERVER_ERROR`) with this message.
    Server(String),
    /// memcached answered something this store did not expect (for example `ERROR` from a
    /// server without the meta commands, older than 1.6).
    Protocol,
    /// The token given to `save` is not a valid bearer token (empty, or not visible ASCII), so
    /// it was not stored.
    InvalidToken,
}

impl fmt::Display for MemcachedStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("memcached did not answer in time"),
            Self::NoRuntime => f.write_str("the memcached token store needs a Tokio runtime"),
            Self::Connection => f.write_str("cannot reach memcached (connection failed or closed)"),
            Self::InvalidKey => {
                f.write_str("not a valid memcached key (prefix too long or not visible ASCII)")
            }
            Self::Server(message) => write!(f, "memcached error: {message}"),
            Self::Protocol => f.write_str("unexpected answer from memcached"),
            Self::InvalidToken => f.write_str("refusing to store an invalid token"),
        }
    }
}

impl std::error::Error for MemcachedStoreError {}

impl From<Error> for MemcachedStoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Connect(_) | Error::ConnectionClosed | Error::Io(_) => Self::Connection,
            Error::Protocol(Status::Error(ErrorKind::KeyTooLong)) => Self::InvalidKey,
            // Messages written by the server; they never quote a stored value.
            Error::Protocol(Status::Error(ErrorKind::Client(m) | ErrorKind::Server(m))) => {
                Self::Server(m)
            }
            _ => Self::Protocol,
        }
    }
}
