//! [`Error`]: why [`ReqwlessTransport::send`](crate::ReqwlessTransport) failed, and the
//! [`embedded_io::ErrorKind`] that alf's retry policy acts on.

use core::fmt;

use embedded_io::ErrorKind;

/// Why a request through [`ReqwlessTransport`](crate::ReqwlessTransport) failed.
///
/// No variant holds a URL, a header value, a body or any other data from the request or the
/// response, so printing an `Error` (`Debug`, `Display`, `defmt::Format`) never shows a
/// secret or a token.
///
/// [`kind`](embedded_io::Error::kind) is what alf acts on: it retries `TimedOut`,
/// `ConnectionRefused`, `ConnectionReset`, `ConnectionAborted`, `NotFound` (DNS) and other
/// network kinds, and does not retry `InvalidInput`, `Unsupported`, `InvalidData` or
/// `OutOfMemory`.
#[derive(Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The whole exchange (DNS, connect, TLS, request, response) did not finish within the
    /// transport's timeout. Kind: `TimedOut`.
    Timeout,
    /// The request cannot be sent as it is; nothing was sent. Kind: `InvalidInput`.
    InvalidRequest(InvalidRequest),
    /// The response headers, or the body, do not fit in the receive buffer. Kind:
    /// `OutOfMemory`. Give the client a larger buffer (alf's `RX` parameter for token
    /// responses, your own `rx` for resource requests).
    ResponseTooLarge,
    /// The peer closed the connection before the whole response arrived: in the head, in a
    /// body announced by `Content-Length`, or in a chunked body before its last chunk. Kind:
    /// `ConnectionAborted`.
    Truncated,
    /// The response has more than 32 header fields (interim 1xx responses included, each
    /// counted on its own), more than this transport parses. Kind: `OutOfMemory`, like
    /// [`ResponseTooLarge`](Self::ResponseTooLarge): a capacity limit, not retried.
    TooManyResponseHeaders,
    /// An `https://` URL, but this transport has no TLS: the `tls` feature is off, or
    /// [`with_tls`](crate::ReqwlessTransport) was not called. Nothing was sent (reqwless
    /// itself would send the request in clear text in the second case). Kind: `Unsupported`.
    TlsNotConfigured,
    /// reqwless (or the TCP stack or TLS below it) failed, or the response is malformed. The
    /// kind follows the cause:
    /// - DNS failure: `NotFound`;
    /// - TCP errors (`Network`): the stack's own kind (`ConnectionRefused`,
    ///   `ConnectionReset`, ...);
    /// - a malformed response (`Codec`: status line, header, `Content-Length`,
    ///   `Transfer-Encoding` other than `chunked`, both of them, a chunk-size line or a
    ///   chunk's end): `InvalidData`;
    /// - an invalid URL: `InvalidInput`; a scheme other than `http` and `https`:
    ///   `Unsupported`;
    /// - a TLS failure: `InvalidData` for certificate and protocol errors (never retried),
    ///   `OutOfMemory` for buffers too small, the I/O kind for I/O errors.
    Http(reqwless::Error),
}

/// Why a request was refused before anything was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum InvalidRequest {
    /// The URL is not an absolute `http://` or `https://` URL that this transport can send:
    /// it has user information (`user:pass@`), a control character or a space, or an empty
    /// host.
    Url,
    /// A header name is not an HTTP token, or a header value (or the `Authorization` value)
    /// holds a control character such as CR or LF.
    Header,
    /// The request sets a header the transport sets itself: `Host`, `Content-Length`,
    /// `Transfer-Encoding`, or `Authorization` twice.
    ReservedHeader,
    /// More headers than the transport's header capacity (its `H` parameter, 16 by default,
    /// counting `Authorization` and `Connection`).
    TooManyHeaders,
}

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Url => "invalid or unsupported URL",
            Self::Header => "invalid header name or value",
            Self::ReservedHeader => "the request sets a header the transport sets itself",
            Self::TooManyHeaders => "more headers than the transport's capacity",
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("HTTP exchange timed out"),
            Self::InvalidRequest(r) => write!(f, "request not sent: {r}"),
            Self::ResponseTooLarge => f.write_str("response does not fit in the receive buffer"),
            Self::Truncated => f.write_str("connection closed before the whole response arrived"),
            Self::TooManyResponseHeaders => f.write_str("more than 32 response headers"),
            Self::TlsNotConfigured => {
                f.write_str("https:// URL but no TLS configured; nothing sent")
            }
            Self::Http(e) => write!(f, "HTTP exchange failed: {e:?}"),
        }
    }
}

impl core::error::Error for Error {}

impl embedded_io::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Timeout => ErrorKind::TimedOut,
            Self::InvalidRequest(_) => ErrorKind::InvalidInput,
            Self::ResponseTooLarge => ErrorKind::OutOfMemory,
            Self::Truncated => ErrorKind::ConnectionAborted,
            Self::TooManyResponseHeaders => ErrorKind::OutOfMemory,
            Self::TlsNotConfigured => ErrorKind::Unsupported,
            Self::Http(e) => reqwless_kind(e),
        }
    }
}

impl From<InvalidRequest> for Error {
    fn from(r: InvalidRequest) -> Self {
        Self::InvalidRequest(r)
    }
}

impl From<reqwless::Error> for Error {
    fn from(e: reqwless::Error) -> Self {
        match e {
            reqwless::Error::BufferTooSmall => Self::ResponseTooLarge,
            e => Self::Http(e),
        }
    }
}

fn reqwless_kind(e: &reqwless::Error) -> ErrorKind {
    use reqwless::Error as E;
    match e {
        E::Dns => ErrorKind::NotFound,
        E::Network(kind) => *kind,
        E::ConnectionAborted => ErrorKind::ConnectionAborted,
        E::Codec => ErrorKind::InvalidData,
        E::InvalidUrl(nourl::Error::UnsupportedScheme) => ErrorKind::Unsupported,
        E::InvalidUrl(_) => ErrorKind::InvalidInput,
        E::BufferTooSmall => ErrorKind::OutOfMemory,
        #[cfg(feature = "tls")]
        E::Tls(t) => crate::tls::kind(t),
        // `AlreadySent`, `IncorrectBodyWritten`: not reachable through this transport.
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_io::Error as _;

    #[test]
    fn kinds() {
        assert_eq!(Error::Timeout.kind(), ErrorKind::TimedOut);
        assert_eq!(
            Error::from(InvalidRequest::Header).kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            Error::from(reqwless::Error::BufferTooSmall).kind(),
            ErrorKind::OutOfMemory
        );
        assert!(matches!(
            Error::from(reqwless::Error::BufferTooSmall),
            Error::ResponseTooLarge
        ));
        assert_eq!(Error::Truncated.kind(), ErrorKind::ConnectionAborted);
        assert_eq!(Error::TooManyResponseHeaders.kind(), ErrorKind::OutOfMemory);
        assert_eq!(
            Error::from(reqwless::Error::Dns).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            Error::from(reqwless::Error::Codec).kind(),
            ErrorKind::InvalidData
        );
        assert_eq!(
            Error::from(reqwless::Error::Network(ErrorKind::ConnectionRefused)).kind(),
            ErrorKind::ConnectionRefused
        );
        assert_eq!(
            Error::from(reqwless::Error::ConnectionAborted).kind(),
            ErrorKind::ConnectionAborted
        );
        assert_eq!(
            Error::from(reqwless::Error::InvalidUrl(nourl::Error::UnsupportedScheme)).kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(
            Error::from(reqwless::Error::InvalidUrl(nourl::Error::InvalidPort)).kind(),
            ErrorKind::InvalidInput
        );
    }
}
