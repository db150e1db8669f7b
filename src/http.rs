//! The HTTP messages exchanged with a [`Transport`](crate::Transport), and the parsing of the
//! few response headers alf acts on (`Retry-After`, `WWW-Authenticate`).
//!
//! alf builds every byte of the token request itself (form body, `Authorization` value), so a
//! transport only moves bytes; it never encodes credentials.

use crate::time::Duration;

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[allow(missing_docs)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl Method {
    /// The method's name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Head => "HEAD",
            Self::Options => "OPTIONS",
        }
    }
}

/// One HTTP request, borrowed. `Debug` never shows the `Authorization` value.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The absolute URL (`http://` or `https://`).
    pub url: &'a str,
    /// Headers to send, other than `Authorization`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The `Authorization` header value to send, if any. alf sets it; a transport must send it
    /// exactly as given and never log it.
    pub authorization: Option<&'a str>,
    /// The body; empty for none.
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// A request with no headers and no body.
    pub const fn new(method: Method, url: &'a str) -> Self {
        Self {
            method,
            url,
            headers: &[],
            authorization: None,
            body: &[],
        }
    }
    /// Set the headers (other than `Authorization`).
    pub const fn headers(mut self, headers: &'a [(&'a str, &'a str)]) -> Self {
        self.headers = headers;
        self
    }
    /// Set the body.
    pub const fn body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }
    /// The value of header `name` (case-insensitive) among [`headers`](Self::headers).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

impl core::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.len())
            .field("authorization", &self.authorization.map(|_| "[redacted]"))
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A response as a transport hands it to alf: the status, the body (in the caller's receive
/// buffer) and the headers alf acts on.
///
/// Transports build it with [`Response::new`] and pass every response header to
/// [`observe_header`](Self::observe_header); alf keeps the ones it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'b> {
    /// HTTP status code.
    pub status: u16,
    /// The body, as received.
    pub body: &'b [u8],
    /// The `Retry-After` header, when present and valid.
    pub retry_after: Option<RetryAfter>,
    /// The `error` of a `Bearer` challenge in `WWW-Authenticate`, when present.
    pub bearer_error: Option<BearerError>,
}

impl<'b> Response<'b> {
    /// A response with no headers of interest.
    pub const fn new(status: u16, body: &'b [u8]) -> Self {
        Self {
            status,
            body,
            retry_after: None,
            bearer_error: None,
        }
    }

    /// Look at one response header; alf keeps `Retry-After` and `WWW-Authenticate`.
    pub fn observe_header(&mut self, name: &str, value: &[u8]) {
        let Ok(value) = core::str::from_utf8(value) else {
            return;
        };
        if name.eq_ignore_ascii_case("retry-after") {
            self.retry_after = RetryAfter::parse(value);
        } else if name.eq_ignore_ascii_case("www-authenticate") {
            self.bearer_error = BearerError::from_challenge(value).or(self.bearer_error);
        }
    }

    /// `true` for a 2xx status.
    pub const fn is_success(&self) -> bool {
        self.status >= 200 && self.status < 300
    }
}

/// A parsed `Retry-After` header (RFC 9110 §10.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RetryAfter {
    /// A delay in seconds.
    Seconds(u64),
    /// An HTTP date, in seconds since the Unix epoch.
    Date(u64),
}

impl RetryAfter {
    /// Parse `delay-seconds` or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    /// Anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim_ascii();
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            // Saturate absurd values instead of failing: they mean "a very long time".
            let secs = v.bytes().fold(0u64, |acc, b| {
                acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
            });
            return Some(Self::Seconds(secs));
        }
        parse_imf_fixdate(v).map(Self::Date)
    }

    /// The delay this header asks for, given the wall time in Unix seconds. A date needs the
    /// wall time: without it the header is ignored (`None`). A date in the past is zero.
    pub fn delay(self, unix_now: Option<u64>) -> Option<Duration> {
        match self {
            Self::Seconds(s) => Some(Duration::from_secs(s)),
            Self::Date(at) => unix_now.map(|now| Duration::from_secs(at.saturating_sub(now))),
        }
    }
}

/// Parse an IMF-fixdate, the preferred HTTP date form, into Unix seconds.
fn parse_imf_fixdate(s: &str) -> Option<u64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT" is exactly 29 bytes.
    let b = s.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    if !matches!(
        &b[..3],
        b"Mon" | b"Tue" | b"Wed" | b"Thu" | b"Fri" | b"Sat" | b"Sun"
    ) {
        return None;
    }
    // 32-bit arithmetic (a four-digit year's days and seconds of the day fit): no 64-bit
    // division on 32-bit targets.
    let num = |r: core::ops::Range<usize>| -> Option<u32> {
        let part = &b[r];
        if part.iter().all(u8::is_ascii_digit) {
            Some(part.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0')))
        } else {
            None
        }
    };
    let day = num(5..7)?;
    let month = match &b[8..11] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    if b[7] != b' ' || b[11] != b' ' || b[16] != b' ' || b[19] != b':' || b[22] != b':' {
        return None;
    }
    let year = num(12..16)?;
    let (hour, min, sec) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if !(1..=31).contains(&day) || year < 1970 || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = u64::from(days_from_civil(year, month, day));
    Some(days * 86_400 + u64::from(hour * 3600 + min * 60 + sec))
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian, 1970 <= year <= 9999).
fn days_from_civil(year: u32, month: u32, day: u32) -> u32 {
    // Shift the year so it starts in March: leap days then fall at the end of a year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The `error` attribute of a `Bearer` challenge (RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum BearerError {
    /// `invalid_token`: expired, revoked or malformed; a new token may work.
    InvalidToken,
    /// `insufficient_scope`: a new token with the same scope will not help.
    InsufficientScope,
    /// `invalid_request`: the request itself is wrong.
    InvalidRequest,
    /// A `Bearer` challenge with no `error`, or an unknown one.
    Other,
}

impl BearerError {
    /// Read the `error` attribute of the first `Bearer` challenge in a `WWW-Authenticate`
    /// value. `None` when there is no `Bearer` challenge.
    pub fn from_challenge(value: &str) -> Option<Self> {
        let start = find_bearer_scheme(value)?;
        let rest = &value[start + 6..];
        // Walk `name=value` pairs; values may be quoted.
        let mut s = rest.trim_ascii_start();
        while !s.is_empty() {
            let eq = s.find('=')?;
            let name = s[..eq].trim_ascii().trim_start_matches(',').trim_ascii();
            s = s[eq + 1..].trim_ascii_start();
            let (val, tail) = if let Some(q) = s.strip_prefix('"') {
                let end = q.find('"')?;
                (&q[..end], &q[end + 1..])
            } else {
                let end = s.find(',').unwrap_or(s.len());
                (s[..end].trim_ascii(), &s[end..])
            };
            if name.eq_ignore_ascii_case("error") {
                return Some(match val {
                    "invalid_token" => Self::InvalidToken,
                    "insufficient_scope" => Self::InsufficientScope,
                    "invalid_request" => Self::InvalidRequest,
                    _ => Self::Other,
                });
            }
            s = tail
                .trim_ascii_start()
                .trim_start_matches(',')
                .trim_ascii_start();
        }
        Some(Self::Other)
    }
}

/// Where the `Bearer` auth-scheme starts: the word `bearer` (any case) outside quoted strings,
/// at the start or after a space or comma, followed by the end or a space.
fn find_bearer_scheme(value: &str) -> Option<usize> {
    let b = value.as_bytes();
    let mut in_quotes = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            _ if !in_quotes
                && (i == 0 || matches!(b[i - 1], b' ' | b','))
                && b.get(i..i + 6)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer"))
                && matches!(b.get(i + 6), None | Some(b' ')) =>
            {
                return Some(i);
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `true` if `value` can be sent as a header value without breaking the message: no CR, LF,
/// NUL or other control bytes (tab allowed).
pub fn is_valid_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// `true` if `name` is a valid header name (an RFC 9110 token).
pub fn is_valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(RetryAfter::parse("120"), Some(RetryAfter::Seconds(120)));
        assert_eq!(RetryAfter::parse(" 7 "), Some(RetryAfter::Seconds(7)));
        assert_eq!(
            RetryAfter::parse("99999999999999999999999"),
            Some(RetryAfter::Seconds(u64::MAX))
        );
        // RFC 9110's example date.
        assert_eq!(
            RetryAfter::parse("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(RetryAfter::Date(784_111_777))
        );
        assert_eq!(
            RetryAfter::parse("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(RetryAfter::Date(0))
        );
        assert_eq!(
            RetryAfter::parse("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(RetryAfter::Date(1_835_438_400))
        );
        // The largest four-digit date: still exact (the day count is computed in 32 bits).
        assert_eq!(
            RetryAfter::parse("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(RetryAfter::Date(253_402_300_799))
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
        ] {
            assert_eq!(RetryAfter::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_date_needs_wall_time() {
        let d = RetryAfter::Date(1000);
        assert_eq!(d.delay(None), None);
        assert_eq!(d.delay(Some(990)), Some(Duration::from_secs(10)));
        assert_eq!(d.delay(Some(2000)), Some(Duration::ZERO));
        assert_eq!(
            RetryAfter::Seconds(3).delay(None),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn bearer_challenges() {
        use BearerError::*;
        let cases = [
            (r#"Bearer error="invalid_token""#, Some(InvalidToken)),
            (
                r#"Bearer realm="api", error="invalid_token", error_description="expired""#,
                Some(InvalidToken),
            ),
            (
                r#"bearer error=insufficient_scope"#,
                Some(InsufficientScope),
            ),
            (
                r#"Bearer realm="a,b", error="invalid_request""#,
                Some(InvalidRequest),
            ),
            (
                r#"Bearer error_description="x", error="invalid_token""#,
                Some(InvalidToken),
            ),
            ("Bearer", Some(Other)),
            (r#"Bearer realm="example""#, Some(Other)),
            (r#"Basic realm="x""#, None),
            (r#"Bearerish error="invalid_token""#, None),
            (r#"Bearer error="unterminated"#, None),
            (
                r#"Basic realm="bearer x", Bearer error="insufficient_scope""#,
                Some(InsufficientScope),
            ),
            (
                r#"Basic realm="a \" bearer x", Bearer error="invalid_token""#,
                Some(InvalidToken),
            ),
            (r#"Basic realm="bearer""#, None),
        ];
        for (v, want) in cases {
            assert_eq!(BearerError::from_challenge(v), want, "{v}");
        }
    }

    #[test]
    fn observe_header_is_case_insensitive_and_ignores_junk() {
        let mut r = Response::new(429, b"");
        r.observe_header("RETRY-AFTER", b"5");
        r.observe_header("Www-Authenticate", br#"Bearer error="invalid_token""#);
        r.observe_header("X-Other", b"\xff\xfe");
        assert_eq!(r.retry_after, Some(RetryAfter::Seconds(5)));
        assert_eq!(r.bearer_error, Some(BearerError::InvalidToken));
    }

    #[test]
    fn header_validation() {
        assert!(is_valid_header_value("Bearer abc.def"));
        assert!(!is_valid_header_value("a\r\nX-Evil: 1"));
        assert!(!is_valid_header_value("a\0"));
        assert!(is_valid_header_name("X-Request-Id"));
        assert!(!is_valid_header_name("Bad Name"));
        assert!(!is_valid_header_name(""));
    }
}
