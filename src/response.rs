//! Parsing the token endpoint's answer: a token response (RFC 6749 §5.1) or an error response
//! (§5.2), with serde-json-core.
//!
//! serde-json-core cannot deserialize "any" value, so `expires_in` (a number *or* a string of
//! digits, depending on the provider) is read by [`top_level_value`] from the raw body after
//! serde has checked that the body is a well-formed JSON object. Strings are unescaped
//! (`\/`, `\u00e9`) into a scratch buffer the caller provides (the unused end of the receive
//! buffer).

use core::fmt;

use heapless::String;
use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;

use crate::error::{
    CapacityError, ERROR_TEXT_CAPACITY, Error, OAuthErrorCode, ResponseError, TokenEndpointError,
};
use crate::http::Response;
use crate::secret::AccessToken;
use crate::time::Duration;

/// What a successful token response says.
#[derive(Debug)]
pub struct TokenResponse<const N: usize> {
    /// The access token.
    pub token: AccessToken<N>,
    /// `expires_in` in whole seconds, or `None` when the server sent none.
    pub expires_in: Option<u64>,
}

impl<const N: usize> TokenResponse<N> {
    /// The lifetime to use under `default_lifetime` when `expires_in` is missing.
    pub fn lifetime(&self, default_lifetime: Duration) -> Duration {
        self.expires_in.map_or(default_lifetime, Duration::from_secs)
    }
}

/// Errors of the parser: a token endpoint error never carries a transport error.
pub type ParseError = Error<embedded_io::ErrorKind>;

/// `true` when `token` can be sent in a header as it is: non-empty, visible ASCII only
/// (no space, CR, LF or other control bytes).
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

/// A string field kept only when it fits in `N` bytes.
enum Bounded<const N: usize> {
    Fits(String<N>),
    TooLong,
    NotAString,
}

struct BoundedVisitor<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for BoundedVisitor<N> {
    type Value = Bounded<N>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(String::try_from(v).map_or(Bounded::TooLong, Bounded::Fits))
    }
    // serde-json-core reports numbers, booleans and null this way under `ignored_any`.
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Bounded::NotAString)
    }
}

impl<'de, const N: usize> Deserialize<'de> for Bounded<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_ignored_any(BoundedVisitor)
    }
}

/// The access token, validated as it is read.
enum TokenField<const N: usize> {
    Token(AccessToken<N>),
    TooLong,
    Invalid,
}

struct TokenVisitor<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for TokenVisitor<N> {
    type Value = TokenField<N>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an access token string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if !is_valid_token(v) {
            return Ok(TokenField::Invalid);
        }
        Ok(AccessToken::from_token(v).map_or(TokenField::TooLong, TokenField::Token))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TokenField::Invalid)
    }
}

impl<'de, const N: usize> Deserialize<'de> for TokenField<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_ignored_any(TokenVisitor)
    }
}

#[derive(Deserialize)]
#[serde(bound = "")]
struct Fields<const N: usize> {
    access_token: Option<TokenField<N>>,
    token_type: Option<Bounded<32>>,
    error: Option<Bounded<64>>,
    error_description: Option<Bounded<ERROR_TEXT_CAPACITY>>,
    error_uri: Option<Bounded<ERROR_TEXT_CAPACITY>>,
    // Named so that a nested object or array here is skipped, not rejected.
    #[allow(dead_code)]
    scope: Option<IgnoredAny>,
}

/// Parse the token endpoint's response.
///
/// - A 2xx with a usable `access_token` is a [`TokenResponse`].
/// - A 2xx holding an `error` member, any 3xx (alf never follows a redirect from the token
///   endpoint), 4xx or 5xx is [`Error::TokenEndpoint`], with the OAuth fields when the body is
///   an RFC 6749 error object.
/// - Anything else is [`Error::InvalidResponse`] or [`Error::Capacity`].
///
/// `scratch` receives unescaped strings; `secret` is removed from any error text.
pub fn parse_token_response<const N: usize>(
    response: &Response<'_>,
    scratch: &mut [u8],
    secret: &str,
    unix_now: Option<u64>,
) -> Result<TokenResponse<N>, ParseError> {
    let parsed = serde_json_core::from_slice_escaped::<Fields<N>>(response.body, scratch);
    let fields = match parsed {
        Ok((f, _)) => Some(f),
        Err(serde_json_core::de::Error::EscapedStringIsTooLong) => {
            return Err(Error::Capacity(CapacityError::Scratch));
        }
        Err(_) => None,
    };

    let endpoint_error = |fields: Option<&Fields<N>>| {
        let text = |b: &Option<Bounded<ERROR_TEXT_CAPACITY>>| match b {
            Some(Bounded::Fits(s)) => Some(sanitize(s.clone(), secret)),
            _ => None,
        };
        Error::TokenEndpoint(TokenEndpointError {
            status: response.status,
            code: fields.and_then(|f| match &f.error {
                Some(Bounded::Fits(c)) => Some(OAuthErrorCode::parse(c)),
                Some(Bounded::TooLong) => Some(OAuthErrorCode::Unknown),
                _ => None,
            }),
            description: fields.and_then(|f| text(&f.error_description)),
            uri: fields.and_then(|f| text(&f.error_uri)),
            retry_after_ms: response
                .retry_after
                .and_then(|r| r.delay(unix_now))
                .map(Duration::as_millis),
        })
    };

    if !response.is_success() {
        return Err(endpoint_error(fields.as_ref()));
    }
    let Some(fields) = fields else {
        return Err(Error::InvalidResponse(ResponseError::NotJson));
    };
    if fields.error.is_some() {
        return Err(endpoint_error(Some(&fields)));
    }
    let token = match fields.access_token {
        None => return Err(Error::InvalidResponse(ResponseError::MissingAccessToken)),
        Some(TokenField::Invalid) => {
            return Err(Error::InvalidResponse(ResponseError::InvalidAccessToken));
        }
        Some(TokenField::TooLong) => return Err(Error::Capacity(CapacityError::AccessToken)),
        Some(TokenField::Token(t)) => t,
    };
    match &fields.token_type {
        None => {}
        Some(Bounded::Fits(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(_) => return Err(Error::InvalidResponse(ResponseError::UnsupportedTokenType)),
    }
    let expires_in = match top_level_value(response.body, "expires_in") {
        None | Some(b"null") => None,
        Some(raw) => Some(parse_expires_in(raw).ok_or(Error::InvalidResponse(ResponseError::InvalidExpiresIn))?),
    };
    Ok(TokenResponse { token, expires_in })
}

/// Replace control characters, and drop the whole text if it contains the client secret.
fn sanitize(mut s: String<ERROR_TEXT_CAPACITY>, secret: &str) -> String<ERROR_TEXT_CAPACITY> {
    if !secret.is_empty() && s.contains(secret) {
        s.clear();
        let _ = s.push_str("[redacted]");
        return s;
    }
    if s.chars().any(char::is_control) {
        let mut clean = String::new();
        for c in s.chars() {
            // Same or fewer bytes per char, so this always fits.
            let _ = clean.push(if c.is_control() { ' ' } else { c });
        }
        s = clean;
    }
    s
}

/// `expires_in` as whole seconds: a JSON number (`3600`, `3599.9`, `3.6e3`) or a string of
/// digits (`"3600"`). Zero, negative and malformed values are `None`; huge values saturate.
pub fn parse_expires_in(raw: &[u8]) -> Option<u64> {
    let (digits, is_string) = match raw {
        [b'"', inner @ .., b'"'] => (inner, true),
        _ => (raw, false),
    };
    let secs = if is_string {
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        digits.iter().fold(0u64, |a, d| a.saturating_mul(10).saturating_add(u64::from(d - b'0')))
    } else {
        parse_json_number_floor(digits)?
    };
    (secs > 0).then_some(secs)
}

/// The floor of a non-negative JSON number, saturating at `u64::MAX`; `None` for a negative
/// non-zero number or a malformed one.
fn parse_json_number_floor(s: &[u8]) -> Option<u64> {
    let (negative, s) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    let int_len = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if int_len == 0 || (int_len > 1 && s[0] == b'0') {
        return None;
    }
    let (int, mut rest) = s.split_at(int_len);
    let mut frac: &[u8] = &[];
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        frac = &tail[..n];
        rest = &tail[n..];
    }
    let mut exp: i64 = 0;
    if let [b'e' | b'E', tail @ ..] = rest {
        let (sign, tail) = match tail {
            [b'-', t @ ..] => (-1, t),
            [b'+', t @ ..] => (1, t),
            t => (1, t),
        };
        if tail.is_empty() || !tail.iter().all(u8::is_ascii_digit) {
            return None;
        }
        exp = sign * tail.iter().fold(0i64, |a, d| a.saturating_mul(10).saturating_add(i64::from(d - b'0'))).min(10_000);
        rest = &[];
    }
    if !rest.is_empty() {
        return None;
    }
    // value = int.frac * 10^exp; take the digits that land before the decimal point.
    let all_digits = int.iter().chain(frac.iter());
    let point = i64::try_from(int.len()).unwrap_or(i64::MAX).saturating_add(exp);
    let mut value = 0u64;
    let mut nonzero = false;
    for (i, d) in all_digits.enumerate() {
        nonzero |= *d != b'0';
        if (i as i64) < point {
            value = value.saturating_mul(10).saturating_add(u64::from(d - b'0'));
        }
    }
    let total = (int.len() + frac.len()) as i64;
    for _ in total..point.min(total + 40) {
        value = value.saturating_mul(10);
    }
    if negative && nonzero {
        return None;
    }
    Some(value)
}

/// The raw bytes of member `key` of the top-level JSON object in `body`, without surrounding
/// whitespace. `body` must already be known to be a well-formed object.
pub fn top_level_value<'a>(body: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let mut i = body.iter().position(|&b| b == b'{')? + 1;
    let mut depth = 1usize;
    let mut expect_key = true;
    while i < body.len() {
        match body[i] {
            b'"' => {
                let end = string_end(body, i)?;
                if depth == 1 && expect_key {
                    let name = &body[i + 1..end];
                    let mut j = end + 1;
                    while j < body.len() && body[j] != b':' {
                        j += 1;
                    }
                    j += 1;
                    if name == key.as_bytes() {
                        return Some(trim(&body[j..value_end(body, j)?]));
                    }
                    expect_key = false;
                    i = j;
                    continue;
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return None;
                }
            }
            b',' if depth == 1 => expect_key = true,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the closing quote of the string starting at `start`.
fn string_end(body: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// End of the value starting at `start`: the `,` or `}` that closes it at its own level.
fn value_end(body: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < body.len() {
        match body[i] {
            b'"' => i = string_end(body, i)?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return Some(i),
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = s {
        s = rest;
    }
    s
}
