#![doc = include_str!("../README.md")]
//! # Features
#![doc = document_features::document_features!()]
#![forbid(unsafe_code)]
// The core's error keeps the token endpoint's `error_description` inline (no allocator), which
// makes `Error::Token` larger than clippy likes. It stays unboxed so that callers can match
// `Error::Token(alf::Error::TokenEndpoint(e))` directly; errors are rare and moved, not copied.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

#[cfg(feature = "blocking")]
pub mod blocking;
pub mod client;
pub mod clock;
pub mod error;
#[cfg(feature = "middleware")]
pub mod middleware;
pub mod transport;

pub use client::{
    Builder, Client, CoreClient, MAX_REDIRECTS, RequestBuilder, same_origin_redirects,
};
pub use clock::TokioClock;
pub use error::Error;
#[cfg(feature = "middleware")]
pub use middleware::{AlfMiddleware, MiddlewareStore};
pub use transport::{DEFAULT_TIMEOUT, ReqwestTransport, TransportBuilder, TransportError};

/// alf itself, re-exported so that `alf_reqwest::alf::Config` works without a second
/// dependency line.
pub use alf;
/// reqwest, re-exported for its types (`Response`, `Method`, `header`...).
pub use reqwest;
/// reqwest-middleware, re-exported (with the `middleware` feature) for `ClientBuilder`,
/// `ClientWithMiddleware` and its `Error`.
#[cfg(feature = "middleware")]
pub use reqwest_middleware;
