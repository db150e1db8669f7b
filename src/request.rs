//! The token request on the wire (RFC 6749 §4.4 and §2.3.1): the form body and the `Basic`
//! credentials, encoded once when the [`Config`](crate::Config) is built.
//!
//! One encoding serves both: every byte outside the unreserved set `A-Z a-z 0-9 - . _ ~` is
//! percent-encoded, and a space becomes `%20`, never `+`. Every server tried decodes `%20` in a
//! form; `+` is not turned back into a space by all of them (Authlib, for one), which would
//! corrupt secrets that contain spaces.

use core::fmt::Write;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use zeroize::Zeroize;

use crate::error::ConfigError;
use crate::secret::SecretString;

/// Everything but the unreserved characters of RFC 3986 is encoded.
pub const ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The headers of every token request, besides `Authorization`.
pub const TOKEN_REQUEST_HEADERS: &[(&str, &str)] = &[
    ("Content-Type", "application/x-www-form-urlencoded"),
    ("Accept", "application/json"),
];

/// Write `value` percent-encoded (see the module docs) into `out`.
pub fn write_encoded<W: Write>(out: &mut W, value: &str) -> core::fmt::Result {
    for chunk in utf8_percent_encode(value, ENCODE_SET) {
        out.write_str(chunk)?;
    }
    Ok(())
}

/// Largest `pct(id):pct(secret)` alf encodes; longer credentials are a configuration error.
const CREDENTIALS_CAPACITY: usize = 384;

/// Write the `Authorization` value for `client_secret_basic` into `out`:
/// `Basic base64(pct(client_id) ":" pct(client_secret))` (RFC 6749 §2.3.1).
/// Every intermediate buffer is wiped.
pub fn write_basic_authorization<const M: usize>(
    out: &mut SecretString<M>,
    client_id: &str,
    client_secret: &str,
) -> Result<(), ConfigError> {
    let mut creds = SecretString::<CREDENTIALS_CAPACITY>::new();
    write_encoded(&mut creds, client_id)
        .and_then(|()| creds.write_str(":"))
        .and_then(|()| write_encoded(&mut creds, client_secret))
        .map_err(|_| ConfigError::TooLong)?;
    let mut b64 = [0u8; CREDENTIALS_CAPACITY.div_ceil(3) * 4];
    let result =
        match <base64ct::Base64 as base64ct::Encoding>::encode(creds.secret().as_bytes(), &mut b64)
        {
            Ok(encoded) => out
                .write_str("Basic ")
                .and_then(|()| out.write_str(encoded))
                .map_err(|_| ConfigError::TooLong),
            Err(_) => Err(ConfigError::TooLong),
        };
    b64.zeroize();
    result
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    fn enc(s: &str) -> String {
        let mut out = String::new();
        write_encoded(&mut out, s).unwrap();
        out
    }

    #[test]
    fn encodes_everything_but_unreserved() {
        assert_eq!(enc("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(enc("a b"), "a%20b");
        assert_eq!(
            enc(": + % & = é /"),
            "%3A%20%2B%20%25%20%26%20%3D%20%C3%A9%20%2F"
        );
    }

    fn basic(id: &str, secret: &str) -> String {
        let mut out = SecretString::<1024>::new();
        write_basic_authorization(&mut out, id, secret).unwrap();
        String::from(out.secret())
    }

    /// Vectors computed independently (Python: base64(quote(id, safe='-._~') + ':' + ...)).
    #[test]
    fn basic_auth_vectors() {
        // RFC 6749 §2.3.1 example: "s6BhdRkqt3" / "gX1fBat3bV".
        assert_eq!(
            basic("s6BhdRkqt3", "gX1fBat3bV"),
            "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW"
        );
        // Reserved characters and a space in both: "a:b c" / "p+q%r&s=t é".
        assert_eq!(
            basic("a:b c", "p+q%r&s=t é"),
            "Basic YSUzQWIlMjBjOnAlMkJxJTI1ciUyNnMlM0R0JTIwJUMzJUE5"
        );
    }

    #[test]
    fn too_long_credentials_are_a_config_error() {
        let long = "é".repeat(200); // 400 bytes, 1200 encoded
        let mut out = SecretString::<4096>::new();
        assert_eq!(
            write_basic_authorization(&mut out, "id", &long),
            Err(ConfigError::TooLong)
        );
        let mut small = SecretString::<10>::new();
        assert_eq!(
            write_basic_authorization(&mut small, "id", "secret"),
            Err(ConfigError::TooLong)
        );
    }
}
