//! Errors of [`RedisStore`](crate::RedisStore).

use std::fmt;

/// What went wrong talking to Redis.
///
/// alf treats every error as "no token in the store" and fetches one itself, so these are for
/// logs and metrics. Neither `Debug` nor `Display` ever includes a token, a stored value or
/// the Redis URL (which may hold a password).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The URL given to [`RedisStore::new`](crate::RedisStore::new) is not a Redis URL.
    InvalidUrl,
    /// The operation did not finish within the store's timeout
    /// ([`RedisStore::timeout`](crate::RedisStore::timeout)).
    Timeout,
    /// Called outside a Tokio runtime: the store needs one for its connection and timers.
    NoRuntime,
    /// Redis could not be reached, or the connection broke (refused, reset, closed). The next
    /// operation connects again.
    Connection,
    /// Redis answered with an error, or with a reply of an unexpected type.
    Redis {
        /// The kind of error, as the `redis` crate classifies it.
        kind: redis::ErrorKind,
        /// The server's error code (such as `NOAUTH` or `READONLY`), when it sent one.
        code: Option<String>,
    },
    /// The token given to `save` is not a valid bearer token (empty, or not visible ASCII), so
    /// it was not stored.
    InvalidToken,
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl => f.write_str("invalid Redis URL"),
            Self::Timeout => f.write_str("Redis did not answer in time"),
            Self::NoRuntime => f.write_str("the Redis token store needs a Tokio runtime"),
            Self::Connection => f.write_str("cannot reach Redis (connection failed or closed)"),
            Self::Redis {
                kind,
                code: Some(code),
            } => write!(f, "Redis error {code} ({kind:?})"),
            Self::Redis { kind, code: None } => write!(f, "Redis error ({kind:?})"),
            Self::InvalidToken => f.write_str("refusing to store an invalid token"),
        }
    }
}

impl std::error::Error for RedisStoreError {}

impl From<redis::RedisError> for RedisStoreError {
    /// Keeps the kind and the server's error code, never the message: a message may quote
    /// a reply, and a reply may be a token.
    fn from(e: redis::RedisError) -> Self {
        if e.is_timeout() {
            Self::Timeout
        } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            Self::Connection
        } else {
            Self::Redis {
                kind: e.kind(),
                code: e.code().map(str::to_owned),
            }
        }
    }
}
