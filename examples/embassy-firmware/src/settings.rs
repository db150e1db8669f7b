//! Build-time settings and logging, shared by both binaries.
//!
//! Credentials come from the environment at build time (`option_env!`), never from the
//! source; the defaults are harmless placeholders.

// Each binary uses some of them (alf-parse-only only the secret; `DEVICE_IPV4` is unused with
// `dhcp-dns`).
#![allow(dead_code)]

/// Build-time setting `$name`, or `$default` when it is not set.
macro_rules! setting {
    ($name:literal, $default:literal) => {
        match option_env!($name) {
            Some(value) => value,
            None => $default,
        }
    };
}

/// Logs through defmt with the `defmt` feature; compiles to nothing without it.
macro_rules! log {
    ($level:ident, $fmt:literal $(, $arg:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        defmt::$level!($fmt $(, $arg)*);
        #[cfg(not(feature = "defmt"))]
        {
            $(let _ = &$arg;)*
        }
    }};
}

/// The token endpoint (`ALF_TOKEN_ENDPOINT`).
pub const TOKEN_ENDPOINT: &str = setting!("ALF_TOKEN_ENDPOINT", "http://10.42.0.1:8080/token");
/// The client id (`ALF_CLIENT_ID`).
pub const CLIENT_ID: &str = setting!("ALF_CLIENT_ID", "example-device");
/// The client secret (`ALF_CLIENT_SECRET`).
pub const CLIENT_SECRET: &str = setting!("ALF_CLIENT_SECRET", "not-a-secret");
/// The scope to ask for (`ALF_SCOPE`).
pub const SCOPE: &str = setting!("ALF_SCOPE", "telemetry:write");

/// The device's static IPv4 address and prefix length, without the `dhcp-dns` feature.
pub const DEVICE_IPV4: ([u8; 4], u8) = ([10, 42, 0, 17], 24);
