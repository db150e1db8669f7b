//! Logging shim: every log line in alf goes through these macros.
//!
//! With the `defmt` feature they forward to `defmt`, with `log` to the `log` crate, and with
//! neither they compile to nothing while still "using" their arguments, so no build warns
//! about unused variables. Format strings use only `{}` and `{:?}`, which both back ends accept.
//!
//! Rule for every call site: never pass a secret, a token or an `Authorization` value. The
//! secret types print `[redacted]` anyway, but raw `&str` copies of them must never reach here.
#![allow(unused_macros)]

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("alf: the `defmt` and `log` features are mutually exclusive; enable at most one");

macro_rules! alf_log {
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
    ($($arg:expr),+ $(,)?) => { alf_log!(trace, $($arg),+) };
}
macro_rules! debug {
    ($($arg:expr),+ $(,)?) => { alf_log!(debug, $($arg),+) };
}
macro_rules! warn {
    ($($arg:expr),+ $(,)?) => { alf_log!(warn, $($arg),+) };
}
