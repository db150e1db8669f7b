//! Logging shim: this crate's few log lines go through these macros, to `defmt` or `log`
//! (features of the same names) or nowhere.
//!
//! Never pass a URL, a header value, a body or an `Authorization` value: URLs may carry API
//! keys in their query, and the rest may carry credentials.
#![allow(unused_macros)]

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!(
    "alf-reqwless: the `defmt` and `log` features are mutually exclusive; enable at most one"
);

macro_rules! log_at {
    ($level:ident, $($arg:expr),+ $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::$level!($($arg),+);
        #[cfg(feature = "log")]
        ::log::$level!($($arg),+);
        #[cfg(not(any(feature = "defmt", feature = "log")))]
        {
            let _ = ($(&$arg),+);
        }
    }};
}

macro_rules! trace {
    ($($arg:expr),+ $(,)?) => { log_at!(trace, $($arg),+) };
}
macro_rules! debug {
    ($($arg:expr),+ $(,)?) => { log_at!(debug, $($arg),+) };
}
