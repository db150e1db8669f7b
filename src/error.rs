//! alf's one error type, and the small enums it is made of.
//!
//! No variant carries a secret, a token or an `Authorization` value. Text that comes from the
//! token endpoint (`error_description`, `error_uri`) is kept only when it fits, with control
//! characters replaced and any copy of the client secret removed.

use core::fmt;

use heapless::String;

/// Capacity of the `error_description` and `error_uri` texts kept from an error response.
pub const ERROR_TEXT_CAPACITY: usize = 128;

/// What kind of failure an [`Error`] is: the part generic code acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorKind {
    /// A transient failure (network, timeout, 429, 5xx): trying again later may work.
    Retryable,
    /// The token endpoint rejected the client's credentials (`invalid_client`,
    /// `unauthorized_client`, 400/401): retrying will not help until the configuration changes.
    Credentials,
    /// alf's configuration or the request is invalid.
    Config,
    /// The peer broke the protocol: a malformed or unacceptable response.
    Protocol,
    /// A buffer or capacity was too small for the data.
    Capacity,
}

/// The error codes of RFC 6749 §5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// Any other code (servers add their own, such as `temporarily_unavailable`).
    Unknown,
}

impl OAuthErrorCode {
    /// Map an `error` value to a code.
    pub fn parse(code: &str) -> Self {
        // A table search: a `match` on the strings compiles to a byte-by-byte decision tree
        // several times larger.
        const CODES: [OAuthErrorCode; 6] = [
            OAuthErrorCode::InvalidRequest,
            OAuthErrorCode::InvalidClient,
            OAuthErrorCode::InvalidGrant,
            OAuthErrorCode::UnauthorizedClient,
            OAuthErrorCode::UnsupportedGrantType,
            OAuthErrorCode::InvalidScope,
        ];
        CODES
            .iter()
            .find(|c| c.as_str() == code)
            .map_or(Self::Unknown, |&c| c)
    }

    /// The code as it appears on the wire (`"unknown"` for [`Unknown`](Self::Unknown)).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::Unknown => "unknown",
        }
    }
}

/// The token endpoint answered with an error: a 4xx/5xx, or a 2xx holding an RFC 6749 §5.2
/// error object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TokenEndpointError {
    /// The HTTP status.
    pub status: u16,
    /// The `error` code, when the body was an RFC 6749 error object.
    pub code: Option<OAuthErrorCode>,
    /// `error_description`, when present and within [`ERROR_TEXT_CAPACITY`].
    pub description: Option<String<ERROR_TEXT_CAPACITY>>,
    /// `error_uri`, when present and within [`ERROR_TEXT_CAPACITY`].
    pub uri: Option<String<ERROR_TEXT_CAPACITY>>,
    /// `Retry-After` sent with the error, in milliseconds from when it was received.
    pub retry_after_ms: Option<u64>,
}

/// Why a 2xx token response was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ResponseError {
    /// The body is not a JSON object (not JSON at all, truncated, an array, a number...).
    NotJson,
    /// No `access_token`, or it is not a string.
    MissingAccessToken,
    /// `access_token` is empty or is not a valid header value (visible ASCII, no spaces).
    InvalidAccessToken,
    /// `token_type` is present and is not `Bearer` (compared case-insensitively).
    UnsupportedTokenType,
    /// `expires_in` is zero, negative, or neither a number nor a string of digits (or the
    /// token's whole lifetime passed before the response arrived).
    InvalidExpiresIn,
    /// The transport returned a body outside the receive buffer it was given (a transport
    /// bug: see the [`Transport`](crate::Transport) contract).
    BodyNotInBuffer,
}

/// Which capacity was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CapacityError {
    /// The access token is longer than the client's token capacity `N - 7`.
    AccessToken,
    /// A header value built by alf did not fit its buffer.
    Header,
}

/// Invalid configuration, reported when the configuration is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// The token endpoint is not an `http://` or `https://` URL with a host, or holds
    /// characters that cannot appear in a URL.
    InvalidTokenEndpoint,
    /// The client id is empty or longer than its capacity.
    InvalidClientId,
    /// The client secret is longer than its capacity.
    InvalidClientSecret,
    /// A scope is empty or holds a space or a character RFC 6749 §3.3 forbids.
    InvalidScope,
    /// An extra parameter has an empty or reserved name (`grant_type`, `scope`, `client_id`,
    /// `client_secret`).
    InvalidParameter,
    /// The form body or the `Authorization` header would exceed its capacity.
    TooLong,
    /// Too many scopes or extra parameters.
    TooMany,
    /// A policy value is out of range (for example a zero default lifetime).
    InvalidPolicy,
}

/// Why a resource request was refused before it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RequestError {
    /// The request already has an `Authorization` header; alf does not silently replace it.
    AuthorizationHeaderPresent,
    /// A header name or value holds CR, LF or other bytes not allowed in a header.
    InvalidHeader,
    /// The request has more headers than alf can add its own to.
    TooManyHeaders,
}

/// Everything that can go wrong getting a token or sending a request through alf.
///
/// `TE` is the transport's error type. When one caller's token request fails, the callers who
/// were waiting for it share the failure: they get the same error, except that a transport
/// error reaches them as [`Error::SharedTransport`] with its kind, since the transport's
/// error value itself cannot be copied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error<TE> {
    /// The transport failed (connection, timeout, TLS, buffer too small...).
    Transport(TE),
    /// The token request that this caller waited for, made by another caller, failed in the
    /// transport with this kind.
    SharedTransport(embedded_io::ErrorKind),
    /// The token endpoint answered with an error.
    TokenEndpoint(TokenEndpointError),
    /// The token endpoint answered 2xx, but not with a usable token.
    InvalidResponse(ResponseError),
    /// A capacity was exceeded.
    Capacity(CapacityError),
    /// The configuration is invalid.
    Config(ConfigError),
    /// The resource request was refused before sending.
    Request(RequestError),
}

fn transport_kind(kind: embedded_io::ErrorKind) -> ErrorKind {
    use embedded_io::ErrorKind as K;
    match kind {
        K::OutOfMemory => ErrorKind::Capacity,
        K::InvalidInput | K::Unsupported => ErrorKind::Config,
        K::InvalidData => ErrorKind::Protocol,
        _ => ErrorKind::Retryable,
    }
}

impl TokenEndpointError {
    /// How to treat this error.
    pub fn kind(&self) -> ErrorKind {
        match self.code {
            Some(OAuthErrorCode::InvalidClient | OAuthErrorCode::UnauthorizedClient) => {
                ErrorKind::Credentials
            }
            Some(OAuthErrorCode::InvalidScope | OAuthErrorCode::UnsupportedGrantType) => {
                ErrorKind::Config
            }
            _ => match self.status {
                400 | 401 | 403 => ErrorKind::Credentials,
                408 | 425 | 429 | 500..=599 => ErrorKind::Retryable,
                _ => ErrorKind::Protocol,
            },
        }
    }
}

impl<TE: embedded_io::Error> Error<TE> {
    /// How to treat this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Transport(e) => transport_kind(e.kind()),
            Self::SharedTransport(k) => transport_kind(*k),
            Self::TokenEndpoint(e) => e.kind(),
            Self::InvalidResponse(_) => ErrorKind::Protocol,
            Self::Capacity(_) => ErrorKind::Capacity,
            Self::Config(_) | Self::Request(_) => ErrorKind::Config,
        }
    }
}

impl<TE> Error<TE> {
    /// Map a transport-free error (one that cannot hold `Transport`) into any `Error<TE>`.
    pub(crate) fn from_shared(e: Error<embedded_io::ErrorKind>) -> Self {
        match e {
            Error::Transport(k) | Error::SharedTransport(k) => Self::SharedTransport(k),
            Error::TokenEndpoint(e) => Self::TokenEndpoint(e),
            Error::InvalidResponse(e) => Self::InvalidResponse(e),
            Error::Capacity(e) => Self::Capacity(e),
            Error::Config(e) => Self::Config(e),
            Error::Request(e) => Self::Request(e),
        }
    }
}

impl<TE> From<ConfigError> for Error<TE> {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl fmt::Display for TokenEndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token endpoint answered {}", self.status)?;
        if let Some(code) = self.code {
            write!(f, " {}", code.as_str())?;
        }
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl<TE: fmt::Display> fmt::Display for Error<TE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "transport error: {e}"),
            Self::SharedTransport(k) => {
                write!(f, "shared token request failed in the transport: {k:?}")
            }
            Self::TokenEndpoint(e) => e.fmt(f),
            Self::InvalidResponse(e) => write!(f, "invalid token response: {e:?}"),
            Self::Capacity(e) => write!(f, "capacity exceeded: {e:?}"),
            Self::Config(e) => write!(f, "invalid configuration: {e:?}"),
            Self::Request(e) => write!(f, "request refused: {e:?}"),
        }
    }
}

impl<TE: core::error::Error + 'static> core::error::Error for Error<TE> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Transport(e) => Some(e),
            Self::TokenEndpoint(e) => Some(e),
            _ => None,
        }
    }
}
impl core::error::Error for TokenEndpointError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
impl core::error::Error for ConfigError {}

/// Lets `Error` be used where an `embedded_io` error is expected (for example inside another
/// transport that wraps alf).
impl<TE: embedded_io::Error + 'static> embedded_io::Error for Error<TE> {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Self::Transport(e) => e.kind(),
            Self::SharedTransport(k) => *k,
            Self::Capacity(_) => embedded_io::ErrorKind::OutOfMemory,
            Self::Config(_) | Self::Request(_) => embedded_io::ErrorKind::InvalidInput,
            Self::TokenEndpoint(e) if e.kind() == ErrorKind::Credentials => {
                embedded_io::ErrorKind::PermissionDenied
            }
            _ => embedded_io::ErrorKind::Other,
        }
    }
}
