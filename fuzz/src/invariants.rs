//! What must hold of alf's response and header parsers for *any* input, shared by the fuzz
//! targets (`fuzz/fuzz_targets/*.rs`) and the corpus replay test (`tests/json_corpus.rs`), which
//! both include this file with `#[path]`. It uses alf's public API and `std` only.
//!
//! # Input format
//!
//! One input (a corpus file) is a small text-like HTTP response, so that seeds can be written
//! and read by hand, and so that every byte string is a valid input:
//!
//! ```text
//! STATUS CAPACITY SCRATCH UNIX SECRET...
//! Header-Name: value
//!
//! body, to the end of the input
//! ```
//!
//! - Line 1, space-separated: the HTTP status; the token capacity `N` (rounded up to one of
//!   [`CAPACITIES`]); the length of the scratch buffer; the wall time in Unix seconds (`0`
//!   for none); the client secret (the rest of the line, spaces included). A missing or
//!   malformed field takes its default (200, 2048, 1024, none, `s3cr3t`).
//! - Then header lines, `name: value`, each passed to [`Response::observe_header`], up to an
//!   empty line. Without an empty line there is no body.

// Each includer uses part of this file. The parse results carry alf's errors, which keep the
// endpoint's texts inline (no allocator), as alf itself notes.
#![allow(dead_code, clippy::result_large_err)]

use alf::http::{BearerError, Response, RetryAfter};
use alf::response::{ParseError, is_valid_token, parse_expires_in, parse_token_response};
use alf::{Error, OAuthErrorCode};

/// The token capacities (`N`, `Bearer ` prefix included) an input can ask for. Capacities
/// below 7 hold no token at all.
pub(crate) const CAPACITIES: [usize; 8] = [1, 6, 7, 8, 16, 64, 256, 2048];

/// Longest scratch buffer an input can ask for.
pub(crate) const MAX_SCRATCH: usize = 8192;

/// An input, decoded.
#[derive(Debug)]
pub(crate) struct Exchange<'a> {
    pub(crate) status: u16,
    pub(crate) capacity: usize,
    pub(crate) scratch_len: usize,
    pub(crate) unix_now: Option<u64>,
    pub(crate) secret: String,
    pub(crate) headers: Vec<(&'a [u8], &'a [u8])>,
    pub(crate) body: &'a [u8],
}

/// Decimal digits, saturating; `None` when empty or not all digits.
fn decimal(field: &[u8]) -> Option<u64> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(field.iter().fold(0u64, |a, d| {
        a.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn split_line(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

/// Decode any bytes into an [`Exchange`] (see the module docs).
pub(crate) fn decode_exchange(data: &[u8]) -> Exchange<'_> {
    let (control, mut rest) = split_line(data);
    let mut fields = control.splitn(5, |&b| b == b' ');
    let mut next = || fields.next().and_then(decimal);
    let status = next().map_or(200, |s| u16::try_from(s).unwrap_or(u16::MAX));
    let wanted = next().unwrap_or(2048);
    let capacity = CAPACITIES
        .iter()
        .copied()
        .find(|&c| c as u64 >= wanted)
        .unwrap_or(2048);
    let scratch_len = next().map_or(1024, |s| s.min(MAX_SCRATCH as u64) as usize);
    let unix_now = next().filter(|&u| u != 0);
    let secret = control.splitn(5, |&b| b == b' ').nth(4).map_or_else(
        || "s3cr3t".to_string(),
        |s| String::from_utf8_lossy(s).into_owned(),
    );

    let mut headers = Vec::new();
    let mut body: &[u8] = &[];
    while let Some(r) = rest {
        let (line, tail) = split_line(r);
        if line.is_empty() || line == b"\r" {
            body = tail.unwrap_or(&[]);
            break;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => (trim(&line[..i]), trim(&line[i + 1..])),
            None => (trim(line), &[][..]),
        };
        headers.push((name, value));
        rest = tail;
    }
    Exchange {
        status,
        capacity,
        scratch_len,
        unix_now,
        secret,
        headers,
        body,
    }
}

/// `status` moved out of 2xx (an error-response input): 2xx becomes 4xx.
pub(crate) fn non_success(status: u16) -> u16 {
    if (200..300).contains(&status) {
        status + 200
    } else {
        status
    }
}

/// The response a transport would hand alf for this exchange.
pub(crate) fn response<'a>(ex: &Exchange<'a>) -> Response<'a> {
    let mut r = Response::new(ex.status, ex.body);
    for (name, value) in &ex.headers {
        if let Ok(name) = std::str::from_utf8(name) {
            r.observe_header(name, value);
        }
    }
    r
}

/// A parse result with the token copied out (so it is the same type for every `N`).
pub(crate) type Parsed = Result<(String, Option<u64>), ParseError>;

/// Parse `ex` with the capacity it asks for and check every invariant; panics on a violation.
pub(crate) fn check_exchange(ex: &Exchange<'_>) -> Parsed {
    match ex.capacity {
        1 => check_n::<1>(ex),
        6 => check_n::<6>(ex),
        7 => check_n::<7>(ex),
        8 => check_n::<8>(ex),
        16 => check_n::<16>(ex),
        64 => check_n::<64>(ex),
        256 => check_n::<256>(ex),
        _ => check_n::<2048>(ex),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn check_n<const N: usize>(ex: &Exchange<'_>) -> Parsed {
    let response = response(ex);
    let mut scratch = vec![0u8; ex.scratch_len];
    let result = parse_token_response::<N>(&response, &mut scratch, &ex.secret, ex.unix_now);
    let success = (200..300).contains(&ex.status);
    // Formatting never panics.
    let _ = format!("{result:?}");
    let parsed = match result {
        Ok(r) => {
            let token = r.token.secret();
            assert!(success, "a token from status {}", ex.status);
            assert!(
                is_valid_token(token),
                "token {token:?} is not a header value"
            );
            assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()));
            assert!(
                N >= 7 && token.len() <= N - 7,
                "token of {} bytes in capacity {N}",
                token.len()
            );
            assert_eq!(r.token.header_value(), format!("Bearer {token}"));
            assert_ne!(r.expires_in, Some(0), "a token that is already expired");
            if !ex.body.contains(&b'\\') {
                assert!(contains(ex.body, token.as_bytes()), "token not in the body");
            }
            assert_eq!(format!("{:?}", r.token), "AccessToken([redacted])");
            assert_eq!(format!("{}", r.token), "[redacted]");
            Ok((token.to_string(), r.expires_in))
        }
        Err(Error::TokenEndpoint(e)) => {
            assert_eq!(e.status, ex.status);
            if success {
                // A 2xx is an endpoint error only because of an `error` member.
                assert!(contains(ex.body, b"error") || ex.body.contains(&b'\\'));
            }
            for text in [&e.description, &e.uri].into_iter().flatten() {
                check_error_text(text, &ex.secret);
            }
            let want = response
                .retry_after
                .and_then(|r| r.delay(ex.unix_now))
                .map(|d| d.as_millis());
            assert_eq!(e.retry_after_ms, want);
            if e.code == Some(OAuthErrorCode::InvalidClient) {
                assert!(contains(ex.body, b"invalid_client") || ex.body.contains(&b'\\'));
            }
            let _ = (e.kind(), format!("{e} {e:?}"));
            Err(Error::TokenEndpoint(e))
        }
        Err(e @ (Error::InvalidResponse(_) | Error::Capacity(_))) => {
            assert!(success, "{e:?} for status {}", ex.status);
            Err(e)
        }
        Err(e) => panic!("unexpected error {e:?}"),
    };
    // The helpers never panic on any body either.
    for key in ["expires_in", "access_token", "error", ""] {
        if let Some(v) = alf::response::top_level_value(ex.body, key) {
            let range = ex.body.as_ptr_range();
            assert!(v.is_empty() || range.contains(&v.as_ptr()));
            let _ = parse_expires_in(v);
        }
    }
    let _ = parse_expires_in(ex.body);
    parsed
}

/// An error text kept from the token endpoint: no control characters (they could forge log
/// lines or headers), and never the client secret.
pub(crate) fn check_error_text(text: &str, secret: &str) {
    assert!(
        !text.chars().any(char::is_control),
        "control character in {text:?}"
    );
    if !secret.is_empty() && text != "[redacted]" {
        assert!(
            !text.contains(secret),
            "the client secret in error text {text:?}"
        );
    }
}

/// Check alf's view of every header of `ex`, one at a time and all together.
pub(crate) fn check_headers(ex: &Exchange<'_>) {
    let mut all = Response::new(ex.status, ex.body);
    for (name, value) in &ex.headers {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let before = all;
        all.observe_header(name, value);
        let Ok(text) = std::str::from_utf8(value) else {
            assert_eq!(all, before, "a non-UTF-8 value changed the response");
            continue;
        };
        if name.eq_ignore_ascii_case("retry-after") {
            assert_eq!(all.retry_after, RetryAfter::parse(text));
            assert_eq!(all.bearer_error, before.bearer_error);
        } else if name.eq_ignore_ascii_case("www-authenticate") {
            assert_eq!(all.retry_after, before.retry_after);
            // The first challenge with a Bearer scheme wins; later ones never erase it.
            assert_eq!(
                all.bearer_error,
                BearerError::from_challenge(text).or(before.bearer_error)
            );
        } else {
            assert_eq!(all, before, "header {name:?} is not one alf keeps");
        }
        check_retry_after(text, ex.unix_now);
        check_challenge(text);
    }
}

/// `Retry-After` parsing: a value parses back to itself when written again.
pub(crate) fn check_retry_after(text: &str, unix_now: Option<u64>) {
    let Some(parsed) = RetryAfter::parse(text) else {
        return;
    };
    match parsed {
        RetryAfter::Seconds(s) => {
            let t = text.trim();
            assert!(!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(RetryAfter::parse(&s.to_string()), Some(parsed));
            assert_eq!(
                parsed.delay(unix_now).map(|d| d.as_millis()),
                Some(s.saturating_mul(1000))
            );
        }
        RetryAfter::Date(at) => {
            // Written again in the canonical form, the date is the same instant.
            let canonical = imf_fixdate(at);
            if canonical.len() != 29 {
                // Past year 9999 (`31 Dec 9999 23:59:60` rolls over): no 4-digit form.
                return;
            }
            assert_eq!(
                RetryAfter::parse(&canonical),
                Some(parsed),
                "{text:?} -> {at} -> {canonical:?}"
            );
            let delay = parsed.delay(unix_now);
            assert_eq!(delay.is_some(), unix_now.is_some());
            if let (Some(d), Some(now)) = (delay, unix_now) {
                assert_eq!(d.as_millis(), at.saturating_sub(now).saturating_mul(1000));
            }
        }
    }
}

/// `WWW-Authenticate`: a challenge is read only when a `bearer` scheme is there.
pub(crate) fn check_challenge(text: &str) {
    if BearerError::from_challenge(text).is_some() {
        assert!(
            text.to_ascii_lowercase().contains("bearer"),
            "a Bearer error from {text:?}"
        );
    }
}

/// The IMF-fixdate for Unix time `t` (`Sun, 06 Nov 1994 08:49:37 GMT`), written by walking
/// years and months.
pub(crate) fn imf_fixdate(t: u64) -> String {
    let (mut days, secs) = (t / 86_400, t % 86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut year = 1970u64;
    let year_len = |y: u64| if leap(y) { 366 } else { 365 };
    // Whole 400-year cycles first, so huge values stay fast.
    let cycles = days / 146_097;
    days %= 146_097;
    year += cycles * 400;
    while days >= year_len(year) {
        days -= year_len(year);
        year += 1;
    }
    let lengths = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 0;
    while days >= lengths[month] {
        days -= lengths[month];
        month += 1;
    }
    let names = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        days + 1,
        names[month],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
