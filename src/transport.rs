//! The one trait a new HTTP stack implements to carry alf.

use crate::http::{Request, Response};

/// Sends one HTTP request and returns the response. This is all alf needs from a network
/// stack: porting alf to a new one means implementing this trait (about 40 lines for reqwless).
///
/// # Contract
/// - Send `request.method` to `request.url` with every header in `request.headers`, plus an
///   `Authorization` header with `request.authorization` when it is `Some`, and the body
///   (with its `Content-Length`). Do not add credentials of your own.
/// - **Never follow redirects.** Return a 3xx as it is: alf decides what to do with it (for the
///   token endpoint: an error, so that credentials never go to another URL).
/// - Read the whole response body into `rx` and return it in [`Response::body`]. If the body
///   does not fit, fail with an error whose [`kind`](embedded_io::Error::kind) is
///   [`OutOfMemory`](embedded_io::ErrorKind::OutOfMemory); never return a truncated body as
///   complete. A body cut short by the peer is an error too.
/// - Pass every response header to [`Response::observe_header`]; alf keeps the ones it needs.
/// - Report failures with a meaningful [`embedded_io::ErrorKind`]: alf retries `TimedOut`,
///   `ConnectionRefused`, `ConnectionReset` and other network kinds, and does not retry
///   `InvalidInput`, `Unsupported`, `InvalidData` or `OutOfMemory`.
/// - Apply a timeout: a peer that never answers must end in a `TimedOut` error, not a hang.
/// - Never log `request.authorization`, the body of a token request, or the response body.
///
/// # Cancellation
/// alf's callers may drop the future at any `.await` (embassy's `with_timeout` does). A
/// dropped `send` may leave a connection half-used; the next call must not be affected by it
/// (open a new connection, or discard the old one).
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// The transport's error type. Its `kind()` drives alf's retry decisions.
    type Error: embedded_io::Error;

    /// Send `request` and read the response into `rx`.
    async fn send<'b>(
        &mut self,
        request: &Request<'_>,
        rx: &'b mut [u8],
    ) -> Result<Response<'b>, Self::Error>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    type Error = T::Error;
    async fn send<'b>(
        &mut self,
        request: &Request<'_>,
        rx: &'b mut [u8],
    ) -> Result<Response<'b>, Self::Error> {
        (**self).send(request, rx).await
    }
}
