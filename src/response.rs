//! Parsing the token endpoint's answer: a token response (RFC 6749 §5.1) or an error response
//! (§5.2).
//!
//! The body is read by a small scanner with serde-json-core 0.7's acceptance rules (alf used
//! serde-json-core with a serde derive; the scanner keeps its outcomes for about 5 KB less
//! flash on a Cortex-M, see `examples/SIZE-LOG.md`). `expires_in` (a number *or* a string of
//! digits, depending on the provider) is read by [`top_level_value`] from the raw body once the
//! scanner has checked that the body is a well-formed JSON object. Short strings (error texts,
//! `token_type`) are unescaped (`\/`, `\u00e9`) into a scratch buffer the caller provides
//! (the unused end of the receive buffer).
//!
//! The access token is never copied by the scanner: it only finds it, as a slice of the body,
//! and it is unescaped straight into its [`AccessToken`] once, at the end. A token of `N` bytes
//! therefore costs `N` bytes of stack once, and an escaped token needs no scratch space.

use heapless::String;

use crate::json::{self, Scanner, Text};

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
        self.expires_in
            .map_or(default_lifetime, Duration::from_secs)
    }
}

/// Errors of the parser: a token endpoint error never carries a transport error.
pub type ParseError = Error<embedded_io::ErrorKind>;

/// `true` when `token` can be sent in a header as it is: non-empty, visible ASCII only
/// (no space, CR, LF or other control bytes).
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

/// A string field kept only when it fits its limit (at most [`ERROR_TEXT_CAPACITY`] bytes).
/// One type for every limit, so that the reading code exists once.
enum Bounded {
    Fits(String<ERROR_TEXT_CAPACITY>),
    TooLong,
    NotAString,
}

impl Bounded {
    /// Read the value into `slot` (`None` for `null`). Into the caller's field, not returned,
    /// so that the text is not copied once more.
    fn read(
        s: &mut Scanner<'_, '_>,
        max: usize,
        slot: &mut Option<Self>,
    ) -> Result<(), json::Error> {
        if s.null()? {
            *slot = None;
            return Ok(());
        }
        // A number, boolean, object or array is skipped, so that it does not make the whole
        // body unreadable.
        let value = slot.insert(Self::NotAString);
        s.string_or(
            // `max` is at most the capacity; the text is UTF-8, so the conversion only checks.
            |t| {
                *value = match core::str::from_utf8(t.text) {
                    Ok(text) if text.len() <= max => {
                        String::try_from(text).map_or(Self::TooLong, Self::Fits)
                    }
                    _ => Self::TooLong,
                }
            },
            (),
        )
    }
}

/// Where the access token is: the scanner only locates it.
enum TokenField<'de> {
    /// As it stands in the body, still escaped if it has backslashes.
    Raw(&'de str),
    NotAString,
}

/// The members alf reads; any other is skipped.
#[derive(Default)]
struct Fields<'a> {
    access_token: Option<TokenField<'a>>,
    /// At most 32 bytes.
    token_type: Option<Bounded>,
    /// At most 64 bytes.
    error: Option<Bounded>,
    error_description: Option<Bounded>,
    error_uri: Option<Bounded>,
}

/// The members of [`Fields`], and `scope` (skipped, but like them it may appear only once).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Member {
    AccessToken,
    TokenType,
    Error,
    ErrorDescription,
    ErrorUri,
    Scope,
    Other,
}

impl Member {
    /// The member named `name` (unescaped). A table search: a `match` on byte strings
    /// compiles to a byte-by-byte decision tree several times larger.
    fn of(name: &[u8]) -> Self {
        const NAMES: [(&[u8], Member); 6] = [
            (b"access_token", Member::AccessToken),
            (b"token_type", Member::TokenType),
            (b"error", Member::Error),
            (b"error_description", Member::ErrorDescription),
            (b"error_uri", Member::ErrorUri),
            (b"scope", Member::Scope),
        ];
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(Self::Other, |&(_, m)| m)
    }
}

/// [`read_fields`] into new [`Fields`].
#[cfg(test)]
fn fields<'a>(body: &'a [u8], scratch: Option<&mut [u8]>) -> Result<Fields<'a>, json::Error> {
    let mut f = Fields::default();
    read_fields(body, scratch, &mut f)?;
    Ok(f)
}

/// Read the members alf needs from `body` into `f` (empty: [`Fields::default`]), unescaping
/// strings into `scratch` when given. A member that appears twice makes the body invalid.
/// (Into the caller's `Fields`, not returned: they are about 600 bytes, and every move of
/// them is a copy.)
fn read_fields<'a>(
    body: &'a [u8],
    scratch: Option<&mut [u8]>,
    f: &mut Fields<'a>,
) -> Result<(), json::Error> {
    let mut seen = 0u8;
    let mut s = Scanner::new(body, scratch);
    s.object(Member::of, |s, member| {
        if member == Member::Other {
            return s.skip();
        }
        let bit = 1 << member as u8;
        if seen & bit != 0 {
            return Err(json::Error::Invalid);
        }
        seen |= bit;
        match member {
            Member::AccessToken => {
                f.access_token = s.option(|s| {
                    s.string_or(
                        |t: Text<'a, '_>| TokenField::Raw(t.raw),
                        TokenField::NotAString,
                    )
                })?;
            }
            Member::TokenType => Bounded::read(s, 32, &mut f.token_type)?,
            Member::Error => Bounded::read(s, 64, &mut f.error)?,
            Member::ErrorDescription => {
                Bounded::read(s, ERROR_TEXT_CAPACITY, &mut f.error_description)?;
            }
            Member::ErrorUri => Bounded::read(s, ERROR_TEXT_CAPACITY, &mut f.error_uri)?,
            Member::Scope | Member::Other => {
                s.option(Scanner::skip)?;
            }
        }
        Ok(())
    })?;
    s.end()
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
// Not inlined: it runs once per token response, and inlined into the client's poll function
// on a device it made the firmware larger.
#[inline(never)]
pub fn parse_token_response<const N: usize>(
    response: &Response<'_>,
    scratch: &mut [u8],
    secret: &str,
    unix_now: Option<u64>,
) -> Result<TokenResponse<N>, ParseError> {
    let mut f = Fields::default();
    let fields = match read_fields(response.body, Some(scratch), &mut f) {
        Ok(()) => Some(&f),
        Err(json::Error::Unescape) => {
            // A string could not be unescaped: it did not fit `scratch`, or it holds an escape
            // that is not decoded (a surrogate pair such as `\ud83d\ude00`). Read the body
            // again without unescaping: the token is unescaped on its own below, codes and
            // `token_type` stay as they are (an escaped one just does not match), and the
            // texts that would need unescaping are dropped.
            f = Fields::default();
            match read_fields(response.body, None, &mut f) {
                Ok(()) => {
                    for text in [&mut f.error_description, &mut f.error_uri] {
                        if matches!(text, Some(Bounded::Fits(t)) if t.bytes().any(|b| b == b'\\')) {
                            *text = None;
                        }
                    }
                    Some(&f)
                }
                Err(_) => None,
            }
        }
        Err(_) => None,
    };

    let endpoint_error = |fields: Option<&Fields<'_>>| {
        let text = |b: &Option<Bounded>| match b {
            Some(Bounded::Fits(t)) => sanitize(t.as_bytes(), secret),
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
        return Err(endpoint_error(fields));
    }
    let Some(fields) = fields else {
        return Err(Error::InvalidResponse(ResponseError::NotJson));
    };
    if fields.error.is_some() {
        return Err(endpoint_error(Some(fields)));
    }
    let raw = match fields.access_token {
        None | Some(TokenField::NotAString) => {
            return Err(Error::InvalidResponse(ResponseError::MissingAccessToken));
        }
        Some(TokenField::Raw(raw)) => raw,
    };
    match &fields.token_type {
        None => {}
        Some(Bounded::Fits(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(_) => return Err(Error::InvalidResponse(ResponseError::UnsupportedTokenType)),
    }
    let expires_in = match top_level_value(response.body, "expires_in") {
        None | Some(b"null") => None,
        Some(raw) => Some(
            parse_expires_in(raw).ok_or(Error::InvalidResponse(ResponseError::InvalidExpiresIn))?,
        ),
    };
    let mut response = TokenResponse {
        token: AccessToken::empty(),
        expires_in,
    };
    token_from_json(raw, &mut response.token)?;
    Ok(response)
}

/// Fill `token` (empty: [`AccessToken::empty`]) from its JSON string contents (`raw`, still
/// escaped), in place in the response being built.
fn token_from_json<const N: usize>(
    raw: &str,
    token: &mut AccessToken<N>,
) -> Result<(), ParseError> {
    let invalid = || Error::InvalidResponse(ResponseError::InvalidAccessToken);
    let mut rest = raw.as_bytes();
    while !rest.is_empty() {
        let mut utf8 = [0u8; 4];
        let piece = json::next_piece(&mut rest, &mut utf8).map_err(|_| invalid())?;
        // Visible ASCII only, so always a `str`.
        let piece = match core::str::from_utf8(piece) {
            Ok(p) if p.bytes().all(|b| b.is_ascii_graphic()) => p,
            _ => return Err(invalid()),
        };
        token
            .push_str(piece)
            .map_err(|()| Error::Capacity(CapacityError::AccessToken))?;
    }
    // Not `secret().is_empty()`: with `N` below the prefix length the buffer is empty and
    // `secret()` would slice out of bounds.
    if token.header_value().len() <= crate::secret::BEARER_PREFIX.len() {
        return Err(invalid());
    }
    Ok(())
}

/// `text` contains the non-empty `secret`. A plain byte-window search: `str::contains` with a
/// `&str` pattern links the two-way searcher (about 1.3 KB of flash on a Cortex-M) for texts
/// of at most a few hundred bytes.
fn contains_secret(text: &[u8], secret: &str) -> bool {
    !secret.is_empty() && text.windows(secret.len()).any(|w| w == secret.as_bytes())
}

/// Replace control characters (`char::is_control`: U+0000-U+001F and U+007F-U+009F) by a
/// space each, and replace the whole text by `[redacted]` if it contains the client secret.
/// `text` is UTF-8 of at most [`ERROR_TEXT_CAPACITY`] bytes (else `None`).
fn sanitize(text: &[u8], secret: &str) -> Option<String<ERROR_TEXT_CAPACITY>> {
    let mut clean = [0u8; ERROR_TEXT_CAPACITY];
    let mut len = 0;
    let mut bytes = text.iter();
    while let Some(&b) = bytes.next() {
        let c = match b {
            0..0x20 | 0x7f => b' ',
            // U+0080-U+009F are 0xc2 0x80-0x9f in UTF-8.
            0xc2 if bytes
                .as_slice()
                .first()
                .is_some_and(|n| (0x80..0xa0).contains(n)) =>
            {
                bytes.next();
                b' '
            }
            _ => b,
        };
        // Same or fewer bytes per char, so this always fits a text that fits.
        *clean.get_mut(len)? = c;
        len += 1;
    }
    let clean = clean.get(..len)?;
    // Replacing a control character by a space can spell a secret that holds a space.
    if contains_secret(text, secret) || contains_secret(clean, secret) {
        return String::try_from("[redacted]").ok();
    }
    String::try_from(core::str::from_utf8(clean).ok()?).ok()
}

/// `expires_in` as whole seconds: a JSON number (`3600`, `3599.9`, `3.6e3`) or a string of
/// digits (`"3600"`). Zero, negative and malformed values are `None`; huge values saturate.
pub fn parse_expires_in(raw: &[u8]) -> Option<u64> {
    let secs = match raw {
        [b'"', digits @ .., b'"'] => {
            if digits.is_empty() || digit_count(digits) != digits.len() {
                return None;
            }
            digits.iter().fold(0, |value, &d| push_digit(value, d))
        }
        _ => parse_json_number_floor(raw)?,
    };
    (secs > 0).then_some(secs)
}

/// How many ASCII digits `s` starts with.
fn digit_count(s: &[u8]) -> usize {
    s.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// `value * 10 + digit` (`digit` an ASCII digit), saturating at `u64::MAX`. Not inlined: the
/// 64-bit arithmetic exists once for every digit loop.
#[inline(never)]
fn push_digit(value: u64, digit: u8) -> u64 {
    value
        .saturating_mul(10)
        .saturating_add(u64::from(digit.wrapping_sub(b'0')))
}

/// The floor of a non-negative JSON number, saturating at `u64::MAX`; `None` for a negative
/// non-zero number or a malformed one.
fn parse_json_number_floor(s: &[u8]) -> Option<u64> {
    let (negative, s) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    let int_len = digit_count(s);
    if int_len == 0 || (int_len > 1 && s.first() == Some(&b'0')) {
        return None;
    }
    let (int, mut rest) = s.split_at_checked(int_len)?;
    let mut frac: &[u8] = &[];
    if let [b'.', tail @ ..] = rest {
        let n = digit_count(tail);
        if n == 0 {
            return None;
        }
        (frac, rest) = tail.split_at_checked(n)?;
    }
    // The exponent, within +-10 000 (enough to saturate or to reach zero); `isize`, not `i64`:
    // no 64-bit arithmetic on 32-bit targets.
    let mut exp: isize = 0;
    if let [b'e' | b'E', tail @ ..] = rest {
        let (negative_exp, tail) = match tail {
            [b'-', t @ ..] => (true, t),
            [b'+', t @ ..] => (false, t),
            t => (false, t),
        };
        if tail.is_empty() || digit_count(tail) != tail.len() {
            return None;
        }
        let e = tail
            .iter()
            .fold(0u16, |a, d| {
                a.saturating_mul(10).saturating_add(u16::from(d - b'0'))
            })
            .min(10_000) as isize;
        exp = if negative_exp { -e } else { e };
        rest = &[];
    }
    if !rest.is_empty() {
        return None;
    }
    // value = int.frac * 10^exp; take the digits that land before the decimal point. (A slice
    // is at most `isize::MAX` bytes long, so the lengths convert exactly.)
    let point = (int.len() as isize).saturating_add(exp);
    let mut value = 0u64;
    let mut nonzero = false;
    for (i, &d) in int.iter().chain(frac).enumerate() {
        nonzero |= d != b'0';
        if (i as isize) < point {
            value = push_digit(value, d);
        }
    }
    let total = (int.len() + frac.len()) as isize;
    for _ in total..point.min(total + 40) {
        value = push_digit(value, b'0');
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
    // Where the value of `key` starts once its name is found: it ends at the next `,`, `}` or
    // `]` of the top level.
    let mut value = None;
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => {
                let end = json::string_end(body, i)?;
                if depth == 1 && expect_key {
                    let mut j = end + 1;
                    while body.get(j).is_some_and(|&b| b != b':') {
                        j += 1;
                    }
                    j += 1;
                    if key_matches(body.get(i + 1..end)?, key) {
                        value = Some(j);
                    }
                    expect_key = false;
                    i = j;
                    continue;
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b',' | b'}' | b']' if depth == 1 => {
                if let Some(start) = value {
                    return Some(trim(body.get(start..i)?));
                }
                if b != b',' {
                    return None; // the end of the object
                }
                expect_key = true;
            }
            b'}' | b']' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// `true` if the raw (possibly escaped) member name `raw` is `key` once unescaped, as serde
/// sees it: `"expires\u005fin"` is `expires_in`. (A name that is not UTF-8 never matches:
/// unescaping keeps invalid bytes invalid, and `key` is UTF-8.)
fn key_matches(mut raw: &[u8], key: &str) -> bool {
    let mut rest = key.as_bytes();
    while !raw.is_empty() {
        let mut utf8 = [0u8; 4];
        let Ok(piece) = json::next_piece(&mut raw, &mut utf8) else {
            return false;
        };
        match rest.strip_prefix(piece) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
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

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::http::RetryAfter;
    use std::format;

    const SECRET: &str = "s3cret";

    fn parse_with<const N: usize>(
        status: u16,
        body: &str,
        scratch: &mut [u8],
    ) -> Result<TokenResponse<N>, ParseError> {
        parse_token_response::<N>(
            &Response::new(status, body.as_bytes()),
            scratch,
            SECRET,
            None,
        )
    }

    fn parse(status: u16, body: &str) -> Result<TokenResponse<256>, ParseError> {
        parse_with::<256>(status, body, &mut [0u8; 512])
    }

    /// The token and `expires_in` of a successful 200.
    #[track_caller]
    fn ok(body: &str) -> (std::string::String, Option<u64>) {
        match parse(200, body) {
            Ok(r) => (r.token.secret().into(), r.expires_in),
            Err(e) => panic!("{body}: {e:?}"),
        }
    }

    #[track_caller]
    fn invalid(body: &str) -> ResponseError {
        match parse(200, body) {
            Err(Error::InvalidResponse(e)) => e,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[track_caller]
    fn endpoint_error(status: u16, body: &str) -> TokenEndpointError {
        match parse(status, body) {
            Err(Error::TokenEndpoint(e)) => e,
            other => panic!("{status} {body}: {other:?}"),
        }
    }

    #[test]
    fn good_token_with_any_case_of_bearer_or_no_token_type() {
        for tt in [
            r#","token_type":"Bearer""#,
            r#","token_type":"bearer""#,
            r#","token_type":"BEARER""#,
            "",
        ] {
            let body = format!(r#"{{"access_token":"abc.DEF-123_~+/=","expires_in":3600{tt}}}"#);
            assert_eq!(ok(&body), ("abc.DEF-123_~+/=".into(), Some(3600)), "{body}");
        }
        let r = parse(200, r#"{"access_token":"t","token_type":"Bearer"}"#).unwrap();
        assert_eq!(r.token.header_value(), "Bearer t");
        // `null` counts as missing.
        assert_eq!(ok(r#"{"access_token":"t","token_type":null}"#).0, "t");
        // Whitespace and unknown members (with nested values) are fine; 2xx other than 200 too.
        let body = r#" { "scope" : {"a":[1,{"b":"c"}]}, "id_token":"x", "n": [1, 2],
                        "access_token" : "t" , "expires_in" : 60 } "#;
        assert_eq!(ok(body), ("t".into(), Some(60)));
        assert!(parse(201, r#"{"access_token":"t"}"#).is_ok());
    }

    #[test]
    fn unknown_token_types_are_rejected() {
        for tt in [
            r#""mac""#,
            r#""DPoP""#,
            r#""Bearer ""#,
            r#""""#,
            "5",
            "true",
        ] {
            let body = format!(r#"{{"access_token":"t","token_type":{tt}}}"#);
            assert_eq!(
                invalid(&body),
                ResponseError::UnsupportedTokenType,
                "{body}"
            );
        }
    }

    fn expires(raw: &str) -> Result<Option<u64>, ParseError> {
        parse(
            200,
            &format!(r#"{{"access_token":"t","expires_in":{raw}}}"#),
        )
        .map(|r| r.expires_in)
    }

    #[test]
    fn expires_in_forms() {
        let cases: &[(&str, Option<u64>)] = &[
            ("3600", Some(3600)),
            (r#""3600""#, Some(3600)),
            ("3599.7", Some(3599)),
            ("1e3", Some(1000)),
            ("1E+3", Some(1000)),
            ("2.5e1", Some(25)),
            ("36000e-1", Some(3600)),
            ("1", Some(1)),
            ("null", None),
            ("1e30", Some(u64::MAX)),
            ("99999999999999999999999", Some(u64::MAX)),
            (r#""99999999999999999999999""#, Some(u64::MAX)),
        ];
        for (raw, want) in cases {
            assert_eq!(expires(raw).ok(), Some(*want), "{raw}");
        }
        assert_eq!(ok(r#"{"access_token":"t"}"#).1, None);
        let bad = [
            "-1",
            "-3600",
            "0",
            "0.0",
            "0.5",
            "1e-3",
            r#""0""#,
            r#""abc""#,
            r#""-5""#,
            r#""3600.5""#,
            r#"" 3600""#,
            r#""""#,
            "true",
            "abc",
            r#"{"v":3600}"#,
            "[3600]",
        ];
        for raw in bad {
            assert_eq!(
                expires(raw).err(),
                Some(Error::InvalidResponse(ResponseError::InvalidExpiresIn)),
                "{raw}"
            );
        }
    }

    #[test]
    fn lifetime_uses_the_default_when_expires_in_is_missing() {
        let d = Duration::from_secs(42);
        assert_eq!(
            parse(200, r#"{"access_token":"t"}"#).unwrap().lifetime(d),
            d
        );
        assert_eq!(
            parse(200, r#"{"access_token":"t","expires_in":7}"#)
                .unwrap()
                .lifetime(d),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn bad_access_tokens() {
        use ResponseError::*;
        let cases = [
            (r#"{"token_type":"Bearer"}"#, MissingAccessToken),
            (r#"{"access_token":null}"#, MissingAccessToken),
            (r#"{"access_token":123}"#, MissingAccessToken),
            (r#"{"access_token":true}"#, MissingAccessToken),
            (r#"{"access_token":{"a":"b"}}"#, MissingAccessToken),
            (r#"{"access_token":["a"]}"#, MissingAccessToken),
            (r#"{"access_token":""}"#, InvalidAccessToken),
            (r#"{"access_token":"a b"}"#, InvalidAccessToken),
            (r#"{"access_token":"a\r\nX-Evil: 1"}"#, InvalidAccessToken),
            (r#"{"access_token":"a\nb"}"#, InvalidAccessToken),
            (r#"{"access_token":"a\u0000b"}"#, InvalidAccessToken),
            (r#"{"access_token":"a\tb"}"#, InvalidAccessToken),
            (r#"{"access_token":"caf\u00e9"}"#, InvalidAccessToken),
            ("{\"access_token\":\"caf\u{e9}\"}", InvalidAccessToken),
            ("{\"access_token\":\"a\x7fb\"}", InvalidAccessToken),
        ];
        for (body, want) in cases {
            assert_eq!(invalid(body), want, "{body}");
        }
    }

    #[test]
    fn access_token_over_capacity() {
        let mut scratch = [0u8; 64];
        // N = 32 holds "Bearer " and 25 bytes of token.
        let fits = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(25));
        let r = parse_with::<32>(200, &fits, &mut scratch).unwrap();
        assert_eq!(r.token.secret(), "a".repeat(25));
        let too_long = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(26));
        assert_eq!(
            parse_with::<32>(200, &too_long, &mut scratch).err(),
            Some(Error::Capacity(CapacityError::AccessToken))
        );
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(ok(r#"{"access_token":"a\/b"}"#).0, "a/b");
        assert_eq!(ok(r#"{"access_token":"\u0041\"\\"}"#).0, "A\"\\");
        let e = endpoint_error(
            400,
            r#"{"error":"invalid_request","error_description":"caf\u00e9 \/ x","error_uri":"https:\/\/h\/e"}"#,
        );
        assert_eq!(e.description.as_deref(), Some("café / x"));
        assert_eq!(e.uri.as_deref(), Some("https://h/e"));
        // An escaped key is decoded too.
        assert_eq!(ok(r#"{"access\u005ftoken":"t"}"#).0, "t");
        // serde-json-core does not decode surrogate pairs: such a text is dropped, but the
        // error keeps its code, and a success body holding one elsewhere is still accepted.
        let e = endpoint_error(
            400,
            r#"{"error":"invalid_client","error_description":"\ud83d\ude00","error_uri":"u"}"#,
        );
        assert_eq!(
            (e.code, e.description, e.uri.as_deref()),
            (Some(OAuthErrorCode::InvalidClient), None, Some("u"))
        );
        assert_eq!(ok(r#"{"access_token":"t","x":"\ud83d\ude00"}"#).0, "t");
        // In the token itself it is refused (a token is visible ASCII anyway).
        assert_eq!(
            invalid(r#"{"access_token":"\ud83d\ude00"}"#),
            ResponseError::InvalidAccessToken
        );
        // A malformed escape in an error response is treated the same way.
        let e = endpoint_error(
            401,
            r#"{"error":"invalid_client","error_description":"\q"}"#,
        );
        assert_eq!(
            (e.code, e.description),
            (Some(OAuthErrorCode::InvalidClient), None)
        );
    }

    #[test]
    fn an_escaped_token_needs_no_scratch_space() {
        let body = r#"{"access_token":"abcdefgh\/ijklmnop","error_description":"x"}"#;
        for scratch in [&mut [0u8; 0][..], &mut [0u8; 8], &mut [0u8; 64]] {
            assert_eq!(
                parse_with::<64>(200, body, scratch).unwrap().token.secret(),
                "abcdefgh/ijklmnop"
            );
        }
        // An escape that decodes to something not allowed in a header is still refused.
        assert_eq!(
            parse_with::<64>(200, r#"{"access_token":"a\nb"}"#, &mut [0u8; 0]).err(),
            Some(Error::InvalidResponse(ResponseError::InvalidAccessToken))
        );
        // Over capacity once unescaped: `\/` is one byte.
        assert_eq!(
            parse_with::<10>(200, r#"{"access_token":"a\/b"}"#, &mut [0u8; 0])
                .unwrap()
                .token
                .secret(),
            "a/b"
        );
        assert_eq!(
            parse_with::<10>(200, r#"{"access_token":"a\/bc"}"#, &mut [0u8; 0]).err(),
            Some(Error::Capacity(CapacityError::AccessToken))
        );
        // An escaped token_type that spells something else is not taken for Bearer.
        assert_eq!(
            parse_with::<64>(
                200,
                r#"{"access_token":"t","token_type":"m\u0061c"}"#,
                &mut [0u8; 0]
            )
            .err(),
            Some(Error::InvalidResponse(ResponseError::UnsupportedTokenType))
        );
    }

    #[test]
    fn error_response_whose_text_does_not_fit_the_scratch_is_still_an_endpoint_error() {
        let body = r#"{"error":"invalid_client","error_description":"no such client \/ bad secret","error_uri":"https://h/e"}"#;
        for status in [401, 200] {
            let e = match parse_with::<64>(status, body, &mut [0u8; 8]) {
                Err(Error::TokenEndpoint(e)) => e,
                other => panic!("{status}: {other:?}"),
            };
            assert_eq!(e.status, status);
            assert_eq!(e.code, Some(OAuthErrorCode::InvalidClient));
            // Not decoded, so not kept; texts without escapes are.
            assert_eq!(e.description, None);
            assert_eq!(e.uri.as_deref(), Some("https://h/e"));
        }
    }

    #[test]
    fn non_json_2xx_bodies() {
        let bodies = [
            "",
            " ",
            "access_token=abc&expires_in=3600",
            "<html>ok</html>",
            r#"{"access_token":"abc","expires_in":3600"#,
            r#"{"access_token":"abc"#,
            r#"{"access_token":"abc"} trailing"#,
            r#"{"access_token":"abc",}"#,
            r#"[{"access_token":"abc"}]"#,
            r#""access_token""#,
            "3600",
            "null",
            r#"{"access_token":"abc","access_token":"def"}"#,
        ];
        for body in bodies {
            assert_eq!(invalid(body), ResponseError::NotJson, "{body:?}");
        }
        // A malformed escape in the token: the token is refused.
        assert_eq!(
            invalid(r#"{"access_token":"a\qb"}"#),
            ResponseError::InvalidAccessToken
        );
        // Not UTF-8.
        let r = parse_token_response::<64>(
            &Response::new(200, b"{\"access_token\":\"\xff\"}"),
            &mut [0; 64],
            SECRET,
            None,
        );
        assert!(matches!(r, Err(Error::InvalidResponse(_))), "{r:?}");
    }

    #[test]
    fn error_object_in_a_200_is_an_endpoint_error() {
        let e = endpoint_error(200, r#"{"error":"invalid_client"}"#);
        assert_eq!(e.status, 200);
        assert_eq!(e.code, Some(OAuthErrorCode::InvalidClient));
        assert_eq!(e.kind(), crate::ErrorKind::Credentials);
        // Even next to a token: the server said error.
        let e = endpoint_error(
            200,
            r#"{"access_token":"t","error":"temporarily_unavailable"}"#,
        );
        assert_eq!(e.code, Some(OAuthErrorCode::Unknown));
        // `"error": null` is no error.
        assert_eq!(ok(r#"{"access_token":"t","error":null}"#).0, "t");
    }

    #[test]
    fn rfc6749_error_responses_keep_code_description_and_uri() {
        use OAuthErrorCode::*;
        let cases = [
            (400, "invalid_request", InvalidRequest),
            (400, "invalid_grant", InvalidGrant),
            (400, "unsupported_grant_type", UnsupportedGrantType),
            (400, "invalid_scope", InvalidScope),
            (401, "invalid_client", InvalidClient),
            (400, "unauthorized_client", UnauthorizedClient),
            (500, "server_error", Unknown),
        ];
        for (status, code, want) in cases {
            let body = format!(
                r#"{{"error":"{code}","error_description":"Client authentication failed.","error_uri":"https://as.example/errors#{code}"}}"#
            );
            let e = endpoint_error(status, &body);
            assert_eq!(e.status, status);
            assert_eq!(e.code, Some(want), "{code}");
            assert_eq!(
                e.description.as_deref(),
                Some("Client authentication failed.")
            );
            assert_eq!(
                e.uri.as_deref(),
                Some(format!("https://as.example/errors#{code}").as_str())
            );
            assert_eq!(e.retry_after_ms, None);
        }
        // Only the code.
        let e = endpoint_error(400, r#"{"error":"invalid_client"}"#);
        assert_eq!(
            (e.code, e.description, e.uri),
            (Some(InvalidClient), None, None)
        );
        // A code longer than any known one is kept as Unknown.
        let long = format!(r#"{{"error":"{}"}}"#, "x".repeat(100));
        assert_eq!(endpoint_error(400, &long).code, Some(Unknown));
        // A non-string code or text is no code or text, and does not lose the rest.
        let e = endpoint_error(
            400,
            r#"{"error":"invalid_client","error_description":{"en":"bad"},"error_uri":7}"#,
        );
        assert_eq!(
            (e.code, e.description, e.uri),
            (Some(InvalidClient), None, None)
        );
        let e = endpoint_error(400, r#"{"error":42,"error_description":"d"}"#);
        assert_eq!((e.code, e.description.as_deref()), (None, Some("d")));
    }

    #[test]
    fn overlong_error_text_is_dropped() {
        let fits = "d".repeat(ERROR_TEXT_CAPACITY);
        let e = endpoint_error(
            400,
            &format!(r#"{{"error":"invalid_request","error_description":"{fits}"}}"#),
        );
        assert_eq!(e.description.as_deref(), Some(fits.as_str()));
        let long = "d".repeat(ERROR_TEXT_CAPACITY + 1);
        let e = endpoint_error(
            400,
            &format!(
                r#"{{"error":"invalid_request","error_description":"{long}","error_uri":"{long}"}}"#
            ),
        );
        assert_eq!(
            (e.code, e.description, e.uri),
            (Some(OAuthErrorCode::InvalidRequest), None, None)
        );
    }

    #[test]
    fn the_client_secret_never_reaches_an_error_text() {
        let e = endpoint_error(
            401,
            r#"{"error":"invalid_client","error_description":"secret s3cret is wrong","error_uri":"https://h/?s=s3cret"}"#,
        );
        assert_eq!(e.description.as_deref(), Some("[redacted]"));
        assert_eq!(e.uri.as_deref(), Some("[redacted]"));
        // Also when it only appears after unescaping.
        let e = endpoint_error(
            401,
            r#"{"error":"invalid_client","error_description":"s3\u0063ret"}"#,
        );
        assert_eq!(e.description.as_deref(), Some("[redacted]"));
        assert!(!format!("{e:?} {e}").contains(SECRET));
        // An empty secret redacts nothing.
        let r = parse_token_response::<64>(
            &Response::new(400, br#"{"error":"x","error_description":"fine"}"#),
            &mut [0; 64],
            "",
            None,
        );
        let Err(Error::TokenEndpoint(e)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(e.description.as_deref(), Some("fine"));
    }

    #[test]
    fn control_characters_in_error_text_are_replaced() {
        let e = endpoint_error(
            400,
            r#"{"error":"invalid_request","error_description":"a\r\nX-Evil: 1\u0000\u001b[31m\u0085z","error_uri":"u\tv"}"#,
        );
        assert_eq!(e.description.as_deref(), Some("a  X-Evil: 1  [31m z"));
        assert_eq!(e.uri.as_deref(), Some("u v"));
    }

    #[test]
    fn redirects_are_endpoint_errors() {
        for status in [301, 302, 303, 307, 308] {
            let e = endpoint_error(status, r#"{"access_token":"t","expires_in":3600}"#);
            assert_eq!((e.status, e.code), (status, None));
            assert_eq!(endpoint_error(status, "").status, status);
        }
        // 1xx is no success either.
        assert_eq!(endpoint_error(100, r#"{"access_token":"t"}"#).status, 100);
    }

    #[test]
    fn non_json_error_bodies_keep_the_status() {
        for (status, body) in [
            (503, "<html>Service Unavailable</html>"),
            (500, ""),
            (502, "{"),
            (404, "[]"),
            (400, r#"{"error":"invalid_client""#),
        ] {
            let e = endpoint_error(status, body);
            assert_eq!(
                e,
                TokenEndpointError {
                    status,
                    code: None,
                    description: None,
                    uri: None,
                    retry_after_ms: None
                }
            );
        }
        assert_eq!(
            endpoint_error(503, "oops").kind(),
            crate::ErrorKind::Retryable
        );
        assert_eq!(
            endpoint_error(401, "Unauthorized").kind(),
            crate::ErrorKind::Credentials
        );
    }

    #[test]
    fn retry_after_is_carried_in_milliseconds() {
        let mut r = Response::new(429, br#"{"error":"slow_down"}"#);
        r.observe_header("Retry-After", b"7");
        let Err(Error::TokenEndpoint(e)) =
            parse_token_response::<64>(&r, &mut [0; 64], SECRET, None)
        else {
            panic!()
        };
        assert_eq!((e.status, e.retry_after_ms), (429, Some(7000)));
        // A date needs the wall time.
        r.retry_after = Some(RetryAfter::Date(1_000_030));
        let Err(Error::TokenEndpoint(e)) =
            parse_token_response::<64>(&r, &mut [0; 64], SECRET, None)
        else {
            panic!()
        };
        assert_eq!(e.retry_after_ms, None);
        let Err(Error::TokenEndpoint(e)) =
            parse_token_response::<64>(&r, &mut [0; 64], SECRET, Some(1_000_000))
        else {
            panic!()
        };
        assert_eq!(e.retry_after_ms, Some(30_000));
        // On a non-JSON 503 too.
        let mut r = Response::new(503, b"busy");
        r.observe_header("retry-after", b"2");
        let Err(Error::TokenEndpoint(e)) =
            parse_token_response::<64>(&r, &mut [0; 64], SECRET, None)
        else {
            panic!()
        };
        assert_eq!((e.code, e.retry_after_ms), (None, Some(2000)));
    }

    #[test]
    fn top_level_value_finds_only_top_level_members() {
        // Member names are compared unescaped, as serde compares them.
        assert_eq!(
            top_level_value(br#"{"expires\u005fin":7,"x":1}"#, "expires_in"),
            Some(&b"7"[..])
        );
        assert_eq!(
            top_level_value(br#"{"expires\u005fim":7}"#, "expires_in"),
            None
        );
        assert_eq!(top_level_value(br#"{"expires\q":7}"#, "expires_in"), None);
        fn v<'a>(body: &'a str, key: &str) -> Option<&'a str> {
            top_level_value(body.as_bytes(), key).map(|b| core::str::from_utf8(b).unwrap())
        }
        assert_eq!(v(r#"{"expires_in":3600}"#, "expires_in"), Some("3600"));
        assert_eq!(
            v(r#"{ "a" : 1 , "expires_in" :  "3600"  }"#, "expires_in"),
            Some(r#""3600""#)
        );
        assert_eq!(
            v("{\n\t\"expires_in\"\r\n:\n 12 \n}", "expires_in"),
            Some("12")
        );
        assert_eq!(
            v(r#"{"expires_in":{"a":[1,2],"b":"}"},"x":1}"#, "expires_in"),
            Some(r#"{"a":[1,2],"b":"}"}"#)
        );
        assert_eq!(
            v(r#"{"expires_in":[1,{"c":2}]}"#, "expires_in"),
            Some(r#"[1,{"c":2}]"#)
        );
        // The same key in nested objects and arrays is not the member.
        assert_eq!(
            v(
                r#"{"a":{"expires_in":1},"b":[{"expires_in":2}],"expires_in":3}"#,
                "expires_in"
            ),
            Some("3")
        );
        assert_eq!(v(r#"{"a":{"expires_in":1}}"#, "expires_in"), None);
        // Nor is the key appearing as a value, or inside a string.
        assert_eq!(
            v(r#"{"a":"expires_in","expires_in":4}"#, "expires_in"),
            Some("4")
        );
        assert_eq!(
            v(r#"{"a":"\"expires_in\": 9,","expires_in":5}"#, "expires_in"),
            Some("5")
        );
        assert_eq!(
            v(r#"{"a\"":"expires_in","expires_in":6}"#, "expires_in"),
            Some("6")
        );
        assert_eq!(v(r#"{"a":"x\\","expires_in":7}"#, "expires_in"), Some("7"));
        assert_eq!(v(r#"{"a":"expires_in"}"#, "expires_in"), None);
        // The first of duplicates; a prefix of the key is another key.
        assert_eq!(
            v(r#"{"expires_in":1,"expires_in":2}"#, "expires_in"),
            Some("1")
        );
        assert_eq!(v(r#"{"expires":1,"expires_in_x":2}"#, "expires_in"), None);
        assert_eq!(v(r#"{"expires_in":null}"#, "expires_in"), Some("null"));
        assert_eq!(v("{}", "expires_in"), None);
        // Malformed input gives up without panicking.
        for junk in [
            "",
            "{",
            r#"{"expires_in""#,
            r#"{"expires_in":"#,
            r#"{"expires_in":1"#,
            r#"{"a":"#,
            "}",
            "]]]",
            r#"{"\"#,
            "[\"expires_in\":1]",
        ] {
            let _ = v(junk, "expires_in");
        }
        assert_eq!(v(r#"{"expires_in":1"#, "expires_in"), None);
    }

    #[test]
    fn parse_expires_in_rules() {
        let cases: &[(&str, Option<u64>)] = &[
            ("3600", Some(3600)),
            ("\"3600\"", Some(3600)),
            ("3599.7", Some(3599)),
            ("3599.999999", Some(3599)),
            ("1e3", Some(1000)),
            ("1.5E3", Some(1500)),
            ("1e+3", Some(1000)),
            ("12345e-2", Some(123)),
            ("0.5e1", Some(5)),
            ("1e10000", Some(u64::MAX)),
            ("1e99999999999999999999", Some(u64::MAX)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", Some(u64::MAX)),
            ("\"18446744073709551616\"", Some(u64::MAX)),
            ("1e-99999999999999999999", None),
            ("0", None),
            ("-0", None),
            ("0.9", None),
            ("-1", None),
            ("-0.5", None),
            ("-1e3", None),
            ("\"0\"", None),
            ("\"007\"", Some(7)),
            ("\"\"", None),
            ("\"", None),
            ("\"-1\"", None),
            ("\"1e3\"", None),
            ("", None),
            ("-", None),
            ("01", None),
            ("1.", None),
            (".5", None),
            ("1e", None),
            ("1e+", None),
            ("1x", None),
            ("+1", None),
            ("null", None),
            ("true", None),
            ("{}", None),
            ("1 2", None),
            ("١٢", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_expires_in(raw.as_bytes()), *want, "{raw}");
        }
    }

    #[test]
    fn is_valid_token_rules() {
        assert!(is_valid_token("abc.DEF-_~+/="));
        for bad in ["", " ", "a b", "a\r", "a\n", "a\t", "é", "a\x7f", "a\0"] {
            assert!(!is_valid_token(bad), "{bad:?}");
        }
    }
}

/// Differential test: the scanner against serde-json-core 0.7 with the serde derive alf used
/// before, on the fuzz corpus, the bodies of these tests and random mutations of them.
#[cfg(test)]
mod serde_parity {
    extern crate std;
    use super::*;
    use core::fmt;
    use serde::Deserialize;
    use serde::de::{self, Deserializer, IgnoredAny, Visitor};
    use std::vec::Vec;

    /// A string field kept only when it fits in `N` bytes.
    enum SBounded<const N: usize> {
        Fits(String<N>),
        TooLong,
        NotAString,
    }

    struct SBoundedVisitor<const N: usize>;

    impl<'de, const N: usize> Visitor<'de> for SBoundedVisitor<N> {
        type Value = SBounded<N>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(String::try_from(v).map_or(SBounded::TooLong, SBounded::Fits))
        }
        // serde-json-core reports numbers, booleans and null this way under `ignored_any`.
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(SBounded::NotAString)
        }
        // An object or array is skipped, so that it does not make the whole body unreadable.
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_map(map).map(|_| SBounded::NotAString)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_seq(seq).map(|_| SBounded::NotAString)
        }
    }

    impl<'de, const N: usize> Deserialize<'de> for SBounded<N> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_ignored_any(SBoundedVisitor)
        }
    }

    /// Where the access token is: serde only locates it.
    enum STokenField<'de> {
        /// As it stands in the body, still escaped if it has backslashes.
        Raw(&'de str),
        /// It had escapes and serde unescaped it into the scratch buffer; read it from the body.
        Unescaped,
        NotAString,
    }

    struct STokenVisitor<'a>(core::marker::PhantomData<&'a ()>);

    impl<'de: 'a, 'a> Visitor<'de> for STokenVisitor<'a> {
        type Value = STokenField<'a>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an access token string")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(STokenField::Raw(v))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(STokenField::Unescaped)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(STokenField::NotAString)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_map(map).map(|_| STokenField::NotAString)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_seq(seq).map(|_| STokenField::NotAString)
        }
    }

    impl<'de: 'a, 'a> Deserialize<'de> for STokenField<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_ignored_any(STokenVisitor(core::marker::PhantomData))
        }
    }

    #[derive(serde::Deserialize)]
    struct SFields<'a> {
        #[serde(borrow)]
        access_token: Option<STokenField<'a>>,
        token_type: Option<SBounded<32>>,
        error: Option<SBounded<64>>,
        error_description: Option<SBounded<ERROR_TEXT_CAPACITY>>,
        error_uri: Option<SBounded<ERROR_TEXT_CAPACITY>>,
        // Named so that a nested object or array here is skipped, not rejected.
        #[allow(dead_code)]
        scope: Option<IgnoredAny>,
    }

    #[derive(Debug, PartialEq)]
    enum Outcome {
        Unescape,
        Invalid,
        Ok(std::string::String),
    }

    fn b(x: &Option<Bounded>) -> std::string::String {
        match x {
            None => "none".into(),
            Some(Bounded::Fits(s)) => std::format!("fits({s})"),
            Some(Bounded::TooLong) => "toolong".into(),
            Some(Bounded::NotAString) => "notastring".into(),
        }
    }

    fn sb<const N: usize>(x: &Option<SBounded<N>>) -> std::string::String {
        match x {
            None => "none".into(),
            Some(SBounded::Fits(s)) => std::format!("fits({s})"),
            Some(SBounded::TooLong) => "toolong".into(),
            Some(SBounded::NotAString) => "notastring".into(),
        }
    }

    fn mine(body: &[u8], scratch: Option<&mut [u8]>) -> Outcome {
        match fields(body, scratch) {
            Err(json::Error::Unescape) => Outcome::Unescape,
            Err(json::Error::Invalid) => Outcome::Invalid,
            Ok(f) => Outcome::Ok(std::format!(
                "{} {} {} {} {}",
                match f.access_token {
                    None => "none".into(),
                    Some(TokenField::Raw(r)) if r.contains('\\') => "escaped".into(),
                    Some(TokenField::Raw(r)) => std::format!("raw({r})"),
                    Some(TokenField::NotAString) => std::string::String::from("notastring"),
                },
                b(&f.token_type),
                b(&f.error),
                b(&f.error_description),
                b(&f.error_uri)
            )),
        }
    }

    fn theirs(body: &[u8], scratch: Option<&mut [u8]>) -> Outcome {
        use serde_json_core::de::Error as E;
        let r = match scratch {
            Some(s) => serde_json_core::from_slice_escaped::<SFields<'_>>(body, s),
            None => serde_json_core::from_slice::<SFields<'_>>(body),
        };
        match r {
            Err(E::EscapedStringIsTooLong | E::InvalidEscapeSequence) => Outcome::Unescape,
            Err(_) => Outcome::Invalid,
            Ok((f, _)) => Outcome::Ok(std::format!(
                "{} {} {} {} {}",
                match f.access_token {
                    None => "none".into(),
                    Some(STokenField::Raw(r)) if r.contains('\\') => "escaped".into(),
                    Some(STokenField::Raw(r)) => std::format!("raw({r})"),
                    Some(STokenField::Unescaped) => "escaped".into(),
                    Some(STokenField::NotAString) => std::string::String::from("notastring"),
                },
                sb(&f.token_type),
                sb(&f.error),
                sb(&f.error_description),
                sb(&f.error_uri)
            )),
        }
    }

    fn seeds() -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = [
            &br#"{"access_token":"eyJ.a\/b","token_type":"Bearer","expires_in":3600,"scope":"a b"}"#[..],
            br#"{"error":"invalid_client","error_description":"caf\u00e9 \ud83d\ude00","error_uri":"http:\/\/x"}"#,
            br#" { "access_token" : "t" , "token_type" : null , "x" : [1, {"a": [true, null]}, "s\"q"] } "#,
            br#"{"access_token":"a","access_token":"b"}"#,
            br#"{"access\u005ftoken":"t","scope":null,"scope":1}"#,
            br#"{"a":[,1],"b":[1 2],"c":{"d":-1.5e3},"error":{"x":1},"token_type":["b"]}"#,
            br#"{"access_token":"t"} x"#,
            br#"{"access_token":"t",}"#,
            br#"{"access_token":"\q","error":"\u12"}"#,
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        for target in ["parse_token_response", "parse_error_response", "headers"] {
            let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/corpus")
                .join(target);
            for entry in std::fs::read_dir(dir).unwrap() {
                let data = std::fs::read(entry.unwrap().path()).unwrap();
                // The body is whatever follows the first `{`, or the whole file.
                if let Some(i) = data.iter().position(|&c| c == b'{') {
                    out.push(data[i..].to_vec());
                }
                out.push(data);
            }
        }
        out
    }

    #[test]
    fn the_scanner_reads_what_serde_json_core_read() {
        let seeds = seeds();
        let alphabet = b"{}[],:\"\\ nult0-9eE.abu\t\r\n/";
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut checked = 0;
        for round in 0..60_000usize {
            let mut body = seeds[round % seeds.len()].clone();
            if round >= seeds.len() {
                for _ in 0..(next() % 6 + 1) {
                    let at = (next() as usize) % (body.len() + 1);
                    let c = alphabet[(next() as usize) % alphabet.len()];
                    match next() % 3 {
                        0 if at < body.len() => body[at] = c,
                        1 if at < body.len() => {
                            body.remove(at);
                        }
                        _ => body.insert(at, c),
                    }
                }
            }
            for len in [0usize, 4, 16, 1024] {
                let mut a = std::vec![0u8; len];
                let mut b = std::vec![0u8; len];
                let (x, y) = if len == 0 {
                    (mine(&body, None), theirs(&body, None))
                } else {
                    (mine(&body, Some(&mut a)), theirs(&body, Some(&mut b)))
                };
                assert_eq!(
                    x,
                    y,
                    "{:?} with scratch {len}",
                    std::string::String::from_utf8_lossy(&body)
                );
                checked += 1;
            }
        }
        assert!(checked > 200_000);
    }
}
