#![no_std]
#![doc = include_str!("lib.md")]
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Errors keep the token endpoint's `error_description` and `error_uri` inline (no allocator),
// which makes them larger than clippy likes; they are returned rarely and moved, not copied
// around in loops.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

// Declared first so that its macros are visible in every module.
#[macro_use]
mod fmt;

pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
mod json;
pub mod machine;
pub mod policy;
pub mod request;
pub mod response;
pub mod secret;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod transport;

pub use client::{Client, Lease};
pub use clock::{Clock, UnixTime};
pub use config::{ClientAuth, Config, ConfigBuilder};
pub use error::{
    CapacityError, ConfigError, Error, ErrorKind, OAuthErrorCode, RequestError, ResponseError,
    TokenEndpointError,
};
pub use http::{BearerError, Method, Request, Response, RetryAfter};
pub use machine::{State, StateKind};
pub use policy::{RefreshPolicy, RetryPolicy};
pub use secret::{AccessToken, ClientSecret};
pub use store::{MemoryStore, NoStore, StorePolicy, StoredToken, TokenStore};
pub use time::{Duration, Instant};
pub use transport::Transport;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
