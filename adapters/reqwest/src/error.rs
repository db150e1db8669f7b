//! [`Error`]: what can go wrong sending a request through [`Client`](crate::Client).

use core::fmt;

use crate::transport::TransportError;

/// Why [`RequestBuilder::send`](crate::RequestBuilder::send) (or building a
/// [`Client`](crate::Client)) failed.
///
/// An HTTP error status is not an `Error`: `send` returns the response, whatever its status
/// (use [`reqwest::Response::error_for_status`] to turn one into an error).
///
/// `Display` and `Debug` never show a token, a secret or an `Authorization` value; reqwest
/// errors are stored without their URL.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No access token could be had (the token endpoint refused the credentials, was
    /// unreachable, answered garbage...). The resource request was **not sent**. Match on the
    /// inner [`alf::Error`] for details, for example
    /// [`alf::Error::TokenEndpoint`] with the endpoint's status and OAuth error code.
    Token(alf::Error<TransportError>),
    /// The request was refused before it was sent; for example
    /// [`alf::RequestError::AuthorizationHeaderPresent`]: the request already had an
    /// `Authorization` header, which alf does not silently replace.
    Request(alf::RequestError),
    /// reqwest could not build or send the resource request (bad URL, connection refused,
    /// timeout, a redirect policy error...). Its URL has been removed.
    Http(reqwest::Error),
    /// [`Builder::proactive_refresh`](crate::Builder::proactive_refresh) was asked for outside
    /// a tokio runtime: there is nowhere to spawn the refresh task.
    NoRuntime,
    /// [`Builder::proactive_refresh`](crate::Builder::proactive_refresh) with a token store
    /// runs the refresh on a thread of its own, or a [`blocking`](crate::blocking) client
    /// starts its runtime's thread, and the operating system would not start it.
    Thread(std::io::Error),
    /// A [`blocking`](crate::blocking) client was called from inside an async runtime, whose
    /// thread it would block; use the async [`Client`](crate::Client) there.
    BlockingInRuntime,
}

impl Error {
    pub(crate) fn http(e: reqwest::Error) -> Self {
        Self::Http(e.without_url())
    }

    /// `true` when the resource request was not sent because no token could be had.
    pub fn is_token(&self) -> bool {
        matches!(self, Self::Token(_))
    }

    /// The token error, when no token could be had.
    pub fn token_error(&self) -> Option<&alf::Error<TransportError>> {
        match self {
            Self::Token(e) => Some(e),
            _ => None,
        }
    }

    /// `true` when a request (token or resource) timed out.
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Token(alf::Error::Transport(e)) => {
                embedded_io::Error::kind(e) == embedded_io::ErrorKind::TimedOut
            }
            Self::Token(alf::Error::SharedTransport(k)) => *k == embedded_io::ErrorKind::TimedOut,
            Self::Http(e) => e.is_timeout(),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(e) => write!(f, "no access token, request not sent: {e}"),
            Self::Request(e) => write!(f, "request refused before sending: {e:?}"),
            Self::Http(e) => write!(f, "resource request failed: {e}"),
            Self::NoRuntime => {
                f.write_str("proactive refresh needs a tokio runtime (build the client inside one)")
            }
            Self::Thread(e) => write!(f, "cannot start a thread for alf: {e}"),
            Self::BlockingInRuntime => f.write_str(
                "a blocking alf client was called inside an async runtime (use the async client)",
            ),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Token(e) => Some(e),
            Self::Http(e) => Some(e),
            Self::Thread(e) => Some(e),
            Self::Request(_) | Self::NoRuntime | Self::BlockingInRuntime => None,
        }
    }
}

impl From<alf::Error<TransportError>> for Error {
    fn from(e: alf::Error<TransportError>) -> Self {
        Self::Token(e)
    }
}

impl From<reqwest::Error> for Error {
    /// Wraps the error without its URL.
    fn from(e: reqwest::Error) -> Self {
        Self::http(e)
    }
}
