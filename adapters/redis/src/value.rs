//! The stored value: `v1\nBearer\n<expires_at_unix>\n<token>`.
//!
//! Line 1 is the format version, line 2 the token type (always `Bearer`), line 3 the absolute
//! expiry in Unix seconds (decimal digits), and the rest is the token. Anything else decodes to
//! `None`, so alf fetches a new token instead of using garbage.

use alf::StoredToken;
use zeroize::Zeroizing;

/// The format version written by this crate.
const VERSION: &str = "v1";
/// The only token type alf uses.
const TOKEN_TYPE: &str = "Bearer";
/// `u64::MAX` has 20 digits.
const MAX_DIGITS: usize = 20;

/// Whether `token` can be sent as a bearer token: visible ASCII, no spaces, not empty.
pub(crate) fn is_valid_token(token: &[u8]) -> bool {
    !token.is_empty() && token.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// Encode `token`, or `None` if it is not a valid header value (it could not be read back).
pub(crate) fn encode(token: &StoredToken<'_>) -> Option<Zeroizing<Vec<u8>>> {
    if !is_valid_token(token.access_token.as_bytes()) {
        return None;
    }
    let expires = token.expires_at_unix.to_string();
    let mut out = Zeroizing::new(Vec::with_capacity(
        VERSION.len() + TOKEN_TYPE.len() + expires.len() + token.access_token.len() + 3,
    ));
    for part in [VERSION, TOKEN_TYPE, &expires] {
        out.extend_from_slice(part.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(token.access_token.as_bytes());
    Some(out)
}

/// Decode a stored value into `buf`; `None` for anything that is not a valid `v1` entry or
/// whose token does not fit in `buf`.
pub(crate) fn decode<'b>(raw: &[u8], buf: &'b mut [u8]) -> Option<StoredToken<'b>> {
    let mut parts = raw.splitn(4, |&b| b == b'\n');
    if parts.next()? != VERSION.as_bytes() {
        return None;
    }
    if !parts.next()?.eq_ignore_ascii_case(TOKEN_TYPE.as_bytes()) {
        return None;
    }
    let expires = parts.next()?;
    if expires.is_empty() || expires.len() > MAX_DIGITS || !expires.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let expires_at_unix: u64 = core::str::from_utf8(expires).ok()?.parse().ok()?;
    let token = parts.next()?;
    if !is_valid_token(token) {
        return None;
    }
    let dst = buf.get_mut(..token.len())?;
    dst.copy_from_slice(token);
    let access_token = core::str::from_utf8(dst).ok()?;
    Some(StoredToken {
        access_token,
        expires_at_unix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(token: &str, expires_at_unix: u64) -> Option<(String, u64)> {
        let raw = encode(&StoredToken {
            access_token: token,
            expires_at_unix,
        })?;
        let mut buf = [0u8; 64];
        decode(&raw, &mut buf).map(|t| (t.access_token.to_owned(), t.expires_at_unix))
    }

    #[test]
    fn round_trips() {
        assert_eq!(
            round_trip("abc.DEF-_~+/=", 1_700_000_000),
            Some(("abc.DEF-_~+/=".into(), 1_700_000_000))
        );
        assert_eq!(round_trip("t", u64::MAX), Some(("t".into(), u64::MAX)));
        assert_eq!(round_trip("t", 0), Some(("t".into(), 0)));
    }

    #[test]
    fn refuses_to_encode_invalid_tokens() {
        for bad in ["", "a b", "a\nb", "a\rb", "é", "a\tb"] {
            assert!(
                encode(&StoredToken {
                    access_token: bad,
                    expires_at_unix: 1
                })
                .is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn garbage_decodes_to_none() {
        let cases: &[&[u8]] = &[
            b"",
            b"v1",
            b"v1\nBearer\n123",
            b"v1\nBearer\n123\n",
            b"v2\nBearer\n123\ntok",
            b"V1\nBearer\n123\ntok",
            b"v1\nMAC\n123\ntok",
            b"v1\nBearer\n\ntok",
            b"v1\nBearer\n-1\ntok",
            b"v1\nBearer\n+1\ntok",
            b"v1\nBearer\n12a\ntok",
            b"v1\nBearer\n 12\ntok",
            b"v1\nBearer\n18446744073709551616\ntok",
            b"v1\nBearer\n123456789012345678901\ntok",
            b"v1\nBearer\n123\nto k",
            b"v1\nBearer\n123\ntok\n",
            b"v1\nBearer\n123\ntok\r",
            b"v1\nBearer\n123\nt\xffk",
            b"\xff\xfe\n\n\n",
            b"v1\r\nBearer\r\n123\r\ntok",
        ];
        for raw in cases {
            let mut buf = [0u8; 64];
            assert!(
                decode(raw, &mut buf).is_none(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn token_type_is_case_insensitive() {
        let mut buf = [0u8; 8];
        assert_eq!(
            decode(b"v1\nbearer\n5\ntok", &mut buf).map(|t| t.expires_at_unix),
            Some(5)
        );
    }

    #[test]
    fn token_larger_than_buffer_is_none() {
        let mut buf = [0u8; 3];
        assert!(decode(b"v1\nBearer\n5\ntoken", &mut buf).is_none());
        assert!(decode(b"v1\nBearer\n5\ntok", &mut buf).is_some());
    }
}
