#![no_std]
#![doc = include_str!("../README.md")]
//!
//! # Features
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Declared first so that its macros are visible in every module.
#[macro_use]
mod fmt;

mod clock;
mod dns;
mod error;
mod response;
#[cfg(feature = "tls")]
mod tls;
mod transport;

pub use clock::EmbassyClock;
pub use dns::{StaticDns, UnknownHost};
pub use error::{Error, InvalidRequest};
#[cfg(feature = "tls")]
pub use tls::Tls;
pub use transport::{DEFAULT_HEADER_CAPACITY, DEFAULT_TIMEOUT, ReqwlessTransport};

/// Re-exported so that users name the same versions this crate was built with.
pub use alf;
pub use reqwless;
