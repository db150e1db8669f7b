//! Pure functions: configuration and its wire encoding, token response parsing, HTTP headers,
//! policies.

use core::fmt::Write;

use alf::policy::Rng;
use alf::response::{ParseError, TokenResponse, parse_token_response};
use alf::{
    BearerError, CapacityError, ClientAuth, Config, ConfigError, Duration, Error, ErrorKind,
    Instant, OAuthErrorCode, RefreshPolicy, Response, ResponseError, RetryAfter, RetryPolicy,
};

use crate::CaseResult;

const EP: &str = "https://auth.example.com/token";
const SECRET: &str = "s3cret-XYZ";

/// Parse a token endpoint response into a token of capacity `N`.
pub(crate) fn parse_n<const N: usize>(
    status: u16,
    body: &[u8],
) -> Result<TokenResponse<N>, ParseError> {
    let mut scratch = [0u8; 512];
    parse_token_response::<N>(&Response::new(status, body), &mut scratch, SECRET, None)
}

fn parse(status: u16, body: &[u8]) -> Result<TokenResponse<256>, ParseError> {
    parse_n::<256>(status, body)
}

fn expires_in(raw_body: &[u8]) -> Result<Option<u64>, ParseError> {
    parse(200, raw_body).map(|r| r.expires_in)
}

/// A fixed buffer to format into.
struct Buf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Buf<N> {
    fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("<invalid utf-8>")
    }
}

impl<const N: usize> Write for Buf<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let dst = self
            .bytes
            .get_mut(self.len..self.len + s.len())
            .ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

pub(crate) fn config_basic_rfc6749_vector() -> CaseResult {
    // RFC 6749 §2.3.1 / §4.4.2 example credentials.
    let c = ok!(Config::builder(EP, "s6BhdRkqt3", "gX1fBat3bV").build());
    ensure_eq!(c.client_auth(), ClientAuth::Basic);
    ensure_eq!(
        c.authorization(),
        Some("Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW")
    );
    ensure_eq!(c.form_body(), "grant_type=client_credentials");
    ensure_eq!(c.token_endpoint(), EP);
    Ok(())
}

pub(crate) fn config_basic_reserved_characters() -> CaseResult {
    // id and secret are form-urlencoded before base64 (RFC 6749 §2.3.1); a space is %20.
    // Expected values computed independently with Python's urllib.parse.quote(safe='-._~').
    let c = ok!(Config::builder(EP, "a:b c", "p+q%r&s=t é").build());
    ensure_eq!(
        c.authorization(),
        Some("Basic YSUzQWIlMjBjOnAlMkJxJTI1ciUyNnMlM0R0JTIwJUMzJUE5")
    );
    let c = ok!(Config::builder(EP, "id: +%&=é", "sec ret:+%&=é").build());
    ensure_eq!(
        c.authorization(),
        Some("Basic aWQlM0ElMjAlMkIlMjUlMjYlM0QlQzMlQTk6c2VjJTIwcmV0JTNBJTJCJTI1JTI2JTNEJUMzJUE5")
    );
    ensure_eq!(c.form_body(), "grant_type=client_credentials");
    Ok(())
}

pub(crate) fn config_form_body_scopes_params_post_auth() -> CaseResult {
    let c = ok!(Config::builder(EP, "a:b c", "p+q%r&s=t é")
        .scope("read write")
        .scope("admin")
        .param("audience", "https://api.example.com/x y")
        .client_auth(ClientAuth::Post)
        .build());
    ensure_eq!(c.authorization(), None);
    ensure_eq!(
        c.form_params(),
        "grant_type=client_credentials&scope=read%20write%20admin\
         &audience=https%3A%2F%2Fapi.example.com%2Fx%20y"
    );
    ensure_eq!(
        c.form_body(),
        "grant_type=client_credentials&scope=read%20write%20admin\
         &audience=https%3A%2F%2Fapi.example.com%2Fx%20y\
         &client_id=a%3Ab%20c&client_secret=p%2Bq%25r%26s%3Dt%20%C3%A9"
    );
    // Basic: the form carries no credentials at all.
    let c = ok!(Config::builder(EP, "client", "secret")
        .scope("read")
        .build());
    ensure_eq!(c.form_body(), "grant_type=client_credentials&scope=read");
    ensure_eq!(c.authorization(), Some("Basic Y2xpZW50OnNlY3JldA=="));
    Ok(())
}

pub(crate) fn config_rejects_invalid_input() -> CaseResult {
    let build = |ep, id, secret| Config::builder(ep, id, secret).build().err();
    ensure_eq!(
        build("ftp://h/token", "id", "s"),
        Some(ConfigError::InvalidTokenEndpoint)
    );
    ensure_eq!(
        build("https:///token", "id", "s"),
        Some(ConfigError::InvalidTokenEndpoint)
    );
    ensure_eq!(
        build("https://h/to ken", "id", "s"),
        Some(ConfigError::InvalidTokenEndpoint)
    );
    ensure_eq!(
        build("https://u@h/token", "id", "s"),
        Some(ConfigError::InvalidTokenEndpoint)
    );
    ensure_eq!(build(EP, "", "s"), Some(ConfigError::InvalidClientId));
    let scope = Config::builder(EP, "id", "s").scope("a\"b").build().err();
    ensure_eq!(scope, Some(ConfigError::InvalidScope));
    let param = Config::builder(EP, "id", "s")
        .param("grant_type", "password")
        .build()
        .err();
    ensure_eq!(param, Some(ConfigError::InvalidParameter));
    let policy = Config::builder(EP, "id", "s")
        .refresh_policy(RefreshPolicy::DEFAULT.default_lifetime(Duration::ZERO))
        .build()
        .err();
    ensure_eq!(policy, Some(ConfigError::InvalidPolicy));
    Ok(())
}

pub(crate) fn config_debug_and_store_key_hold_no_secret() -> CaseResult {
    let c = ok!(Config::builder(EP, "client", SECRET).scope("read").build());
    let mut out = Buf::<1024>::new();
    ok!(write!(out, "{c:?}"));
    ensure!(out.as_str().contains("client"), "{}", out.as_str());
    ensure!(!out.as_str().contains(SECRET), "Debug shows the secret");
    let basic = ok!(c.authorization().ok_or("no Authorization"));
    ensure!(
        !out.as_str().contains(&basic[6..]),
        "Debug shows the credentials"
    );
    // The store key: `alf:` + 32 hex digits of SHA-256, independent of the secret.
    let key = c.store_key();
    ensure_eq!(key.len(), 36);
    ensure!(key.starts_with("alf:"));
    ensure!(key[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    let other_secret = ok!(Config::builder(EP, "client", "other").scope("read").build());
    ensure_eq!(other_secret.store_key(), key);
    let other_scope = ok!(Config::builder(EP, "client", SECRET).scope("write").build());
    ensure!(other_scope.store_key() != key);
    Ok(())
}

pub(crate) fn parse_good_token() -> CaseResult {
    let r = ok!(parse(
        200,
        br#"{"access_token":"abc.DEF-123_~+/=","token_type":"Bearer","expires_in":3600,"scope":"a b"}"#
    ));
    ensure_eq!(r.token.secret(), "abc.DEF-123_~+/=");
    ensure_eq!(r.token.header_value(), "Bearer abc.DEF-123_~+/=");
    ensure_eq!(r.expires_in, Some(3600));
    // token_type is case-insensitive; unknown members (nested too) and whitespace are fine.
    let r = ok!(parse(
        200,
        b" { \"id\" : {\"a\":[1,{\"b\":\"c\"}]}, \"token_type\":\"bEaReR\",\n \"access_token\" : \"t\" } "
    ));
    ensure_eq!(r.token.secret(), "t");
    Ok(())
}

pub(crate) fn parse_escaped_slash() -> CaseResult {
    let r = ok!(parse(200, br#"{"access_token":"a\/b\/c","expires_in":60}"#));
    ensure_eq!(r.token.secret(), "a/b/c");
    let r = ok!(parse(200, br#"{"access\u005ftoken":"\u0041bc"}"#));
    ensure_eq!(r.token.secret(), "Abc");
    Ok(())
}

pub(crate) fn parse_expires_in_string_and_float() -> CaseResult {
    ensure_eq!(
        ok!(expires_in(br#"{"access_token":"t","expires_in":"3600"}"#)),
        Some(3600)
    );
    ensure_eq!(
        ok!(expires_in(br#"{"access_token":"t","expires_in":3599.7}"#)),
        Some(3599)
    );
    ensure_eq!(
        ok!(expires_in(br#"{"access_token":"t","expires_in":3.6e3}"#)),
        Some(3600)
    );
    ensure_eq!(
        ok!(expires_in(br#"{"access_token":"t","expires_in":36000e-1}"#)),
        Some(3600)
    );
    ensure_eq!(
        ok!(expires_in(br#"{"access_token":"t","expires_in":1}"#)),
        Some(1)
    );
    Ok(())
}

pub(crate) fn parse_expires_in_zero_and_negative_rejected() -> CaseResult {
    let bad: [&[u8]; 8] = [
        br#"{"access_token":"t","expires_in":0}"#,
        br#"{"access_token":"t","expires_in":-1}"#,
        br#"{"access_token":"t","expires_in":-3600}"#,
        br#"{"access_token":"t","expires_in":0.5}"#,
        br#"{"access_token":"t","expires_in":"0"}"#,
        br#"{"access_token":"t","expires_in":"-5"}"#,
        br#"{"access_token":"t","expires_in":"soon"}"#,
        br#"{"access_token":"t","expires_in":true}"#,
    ];
    for body in bad {
        let e = err!(expires_in(body));
        ensure_eq!(e, Error::InvalidResponse(ResponseError::InvalidExpiresIn));
        ensure_eq!(e.kind(), ErrorKind::Protocol);
    }
    Ok(())
}

pub(crate) fn parse_expires_in_missing_uses_default() -> CaseResult {
    let r = ok!(parse(200, br#"{"access_token":"t"}"#));
    ensure_eq!(r.expires_in, None);
    ensure_eq!(r.lifetime(Duration::from_secs(42)), Duration::from_secs(42));
    let r = ok!(parse(200, br#"{"access_token":"t","expires_in":null}"#));
    ensure_eq!(r.expires_in, None);
    Ok(())
}

pub(crate) fn parse_expires_in_huge_is_capped() -> CaseResult {
    for body in [
        &br#"{"access_token":"t","expires_in":1e30}"#[..],
        br#"{"access_token":"t","expires_in":99999999999999999999999}"#,
        br#"{"access_token":"t","expires_in":"99999999999999999999999"}"#,
    ] {
        ensure_eq!(ok!(expires_in(body)), Some(u64::MAX));
    }
    // Such a lifetime is believed only up to `max_lifetime` (24 h by default), with no
    // overflow anywhere in the schedule.
    let r = ok!(parse(200, br#"{"access_token":"t","expires_in":1e30}"#));
    let p = RefreshPolicy::DEFAULT.jitter(Duration::ZERO);
    let sent = Instant::from_secs(5);
    let (refresh, expires) = p.schedule(sent, r.lifetime(p.default_lifetime), &mut Rng::new(1));
    ensure_eq!(expires, sent + Duration::from_secs(24 * 3600));
    ensure_eq!(refresh, expires.saturating_sub(Duration::from_secs(60)));
    let (refresh, expires) = p.schedule(Instant::MAX, Duration::MAX, &mut Rng::new(1));
    ensure!(refresh <= expires);
    ensure_eq!(expires, Instant::MAX);
    Ok(())
}

pub(crate) fn parse_unknown_token_type_rejected() -> CaseResult {
    for body in [
        &br#"{"access_token":"t","token_type":"mac"}"#[..],
        br#"{"access_token":"t","token_type":"DPoP"}"#,
        br#"{"access_token":"t","token_type":""}"#,
        br#"{"access_token":"t","token_type":5}"#,
    ] {
        ensure_eq!(
            err!(parse(200, body)),
            Error::InvalidResponse(ResponseError::UnsupportedTokenType)
        );
    }
    Ok(())
}

pub(crate) fn parse_token_with_crlf_rejected() -> CaseResult {
    // A token that would split the Authorization header is never accepted.
    for body in [
        &br#"{"access_token":"a\r\nX-Evil: 1"}"#[..],
        br#"{"access_token":"a\nb"}"#,
        br#"{"access_token":"a b"}"#,
        br#"{"access_token":"a\u0000b"}"#,
        br#"{"access_token":""}"#,
    ] {
        ensure_eq!(
            err!(parse(200, body)),
            Error::InvalidResponse(ResponseError::InvalidAccessToken)
        );
    }
    ensure_eq!(
        err!(parse(200, br#"{"access_token":42}"#)),
        Error::InvalidResponse(ResponseError::MissingAccessToken)
    );
    Ok(())
}

pub(crate) fn parse_non_json_rejected() -> CaseResult {
    for body in [
        &b"<html>hello</html>"[..],
        b"",
        b"[1,2]",
        br#"{"access_token":"t""#,
        b"access_token=t&expires_in=3600",
    ] {
        ensure_eq!(
            err!(parse(200, body)),
            Error::InvalidResponse(ResponseError::NotJson)
        );
    }
    // A non-JSON error page keeps its status.
    let e = err!(parse(502, b"<html>Bad Gateway</html>"));
    ensure_matches!(e, Error::TokenEndpoint(t) if t.status == 502 && t.code.is_none());
    ensure_eq!(e.kind(), ErrorKind::Retryable);
    Ok(())
}

pub(crate) fn parse_200_with_error_body() -> CaseResult {
    let e = err!(parse(
        200,
        br#"{"error":"invalid_client","error_description":"nope"}"#
    ));
    let Error::TokenEndpoint(t) = &e else {
        return Err(crate::Failure::new(file!(), line!(), format_args!("{e:?}")));
    };
    ensure_eq!(t.status, 200);
    ensure_eq!(t.code, Some(OAuthErrorCode::InvalidClient));
    ensure_eq!(t.description.as_deref(), Some("nope"));
    ensure_eq!(e.kind(), ErrorKind::Credentials);
    Ok(())
}

pub(crate) fn parse_error_response_redacts_secret() -> CaseResult {
    let e = err!(parse(
        400,
        br#"{"error":"invalid_request","error_description":"bad secret s3cret-XYZ","error_uri":"https:\/\/h\/e"}"#
    ));
    let Error::TokenEndpoint(t) = &e else {
        return Err(crate::Failure::new(file!(), line!(), format_args!("{e:?}")));
    };
    ensure_eq!(t.code, Some(OAuthErrorCode::InvalidRequest));
    ensure_eq!(t.description.as_deref(), Some("[redacted]"));
    ensure_eq!(t.uri.as_deref(), Some("https://h/e"));
    let mut out = Buf::<512>::new();
    ok!(write!(out, "{e} {e:?}"));
    ensure!(!out.as_str().contains(SECRET), "{}", out.as_str());
    // Control characters in error texts are replaced.
    let e = err!(parse(401, br#"{"error":"x","error_description":"a\r\nb"}"#));
    ensure_matches!(e, Error::TokenEndpoint(t)
        if t.description.as_deref() == Some("a  b") && t.code == Some(OAuthErrorCode::Unknown));
    Ok(())
}

pub(crate) fn parse_oversize_token_small_capacity() -> CaseResult {
    // N = 32 holds "Bearer " and 25 bytes of token.
    let r = ok!(parse_n::<32>(
        200,
        br#"{"access_token":"aaaaaaaaaaaaaaaaaaaaaaaaa"}"#
    ));
    ensure_eq!(r.token.secret().len(), 25);
    let e = err!(parse_n::<32>(
        200,
        br#"{"access_token":"aaaaaaaaaaaaaaaaaaaaaaaaaa"}"#
    ));
    ensure_eq!(e, Error::Capacity(CapacityError::AccessToken));
    ensure_eq!(e.kind(), ErrorKind::Capacity);
    // An escaped token needs no scratch space: it is unescaped in place.
    let body = br#"{"access_token":"a\/bcdefghijklmnopqrstuvwxyz"}"#;
    let mut scratch = [0u8; 8];
    let r = parse_token_response::<256>(&Response::new(200, body), &mut scratch, "", None);
    ensure_eq!(r.map(|t| t.token.secret() == "a/bcdefghijklmnopqrstuvwxyz"), Ok(true));
    Ok(())
}

pub(crate) fn retry_after_seconds_and_http_date() -> CaseResult {
    ensure_eq!(RetryAfter::parse("120"), Some(RetryAfter::Seconds(120)));
    ensure_eq!(RetryAfter::parse(" 7 "), Some(RetryAfter::Seconds(7)));
    ensure_eq!(
        RetryAfter::parse("99999999999999999999999"),
        Some(RetryAfter::Seconds(u64::MAX))
    );
    // RFC 9110's example date, the epoch, and a leap day.
    ensure_eq!(
        RetryAfter::parse("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(RetryAfter::Date(784_111_777))
    );
    ensure_eq!(
        RetryAfter::parse("Thu, 01 Jan 1970 00:00:00 GMT"),
        Some(RetryAfter::Date(0))
    );
    ensure_eq!(
        RetryAfter::parse("Tue, 29 Feb 2028 12:00:00 GMT"),
        Some(RetryAfter::Date(1_835_438_400))
    );
    for bad in [
        "",
        "-1",
        "1.5",
        "soon",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sunday, 06-Nov-94 08:49:37 GMT",
    ] {
        ensure_eq!(RetryAfter::parse(bad), None);
    }
    // A date needs the wall time; a date in the past is no wait.
    let d = RetryAfter::Date(1000);
    ensure_eq!(d.delay(None), None);
    ensure_eq!(d.delay(Some(990)), Some(Duration::from_secs(10)));
    ensure_eq!(d.delay(Some(2000)), Some(Duration::ZERO));
    ensure_eq!(
        RetryAfter::Seconds(3).delay(None),
        Some(Duration::from_secs(3))
    );
    // Through a response's headers, case-insensitively.
    let mut r = Response::new(429, b"");
    r.observe_header("RETRY-AFTER", b"5");
    r.observe_header("X-Other", b"\xff\xfe");
    ensure_eq!(r.retry_after, Some(RetryAfter::Seconds(5)));
    Ok(())
}

pub(crate) fn www_authenticate_bearer_errors() -> CaseResult {
    use BearerError::*;
    let cases: [(&str, Option<BearerError>); 7] = [
        (r#"Bearer error="invalid_token""#, Some(InvalidToken)),
        (
            r#"Bearer realm="api", error="invalid_token", error_description="expired""#,
            Some(InvalidToken),
        ),
        ("bearer error=insufficient_scope", Some(InsufficientScope)),
        (
            r#"Bearer realm="a,b", error="invalid_request""#,
            Some(InvalidRequest),
        ),
        ("Bearer", Some(Other)),
        (r#"Basic realm="x""#, None),
        (r#"Bearerish error="invalid_token""#, None),
    ];
    for (value, want) in cases {
        ensure_eq!(BearerError::from_challenge(value), want);
    }
    let mut r = Response::new(401, b"");
    r.observe_header("Www-Authenticate", br#"Bearer error="insufficient_scope""#);
    ensure_eq!(r.bearer_error, Some(InsufficientScope));
    Ok(())
}

pub(crate) fn retry_policy_backoff_numbers() -> CaseResult {
    let p = RetryPolicy::DEFAULT
        .jitter(Duration::ZERO)
        .backoff_max(Duration::from_secs(2));
    let mut rng = Rng::new(0);
    let mut waits = [0u64; 5];
    for (i, w) in waits.iter_mut().enumerate() {
        *w = p.backoff(i as u8 + 1, &mut rng).as_millis();
    }
    ensure_eq!(waits, [300, 600, 1200, 2000, 2000]);
    ensure_eq!(p.backoff(255, &mut rng), Duration::from_secs(2));
    // Defaults: 3 retries, 300 ms base, 30 s cap; jitter adds 0..=100 ms.
    let d = RetryPolicy::DEFAULT;
    ensure_eq!(
        (d.total, d.backoff_factor, d.backoff_max),
        (3, Duration::from_millis(300), Duration::from_secs(30))
    );
    ensure_eq!(d.statuses, &[429, 500, 502, 503, 504][..]);
    for seed in 0..50 {
        let w = d.backoff(2, &mut Rng::new(seed)).as_millis();
        ensure!(
            (600..=700).contains(&w),
            "backoff(2) = {w} ms with seed {seed}"
        );
    }
    Ok(())
}

pub(crate) fn retry_policy_honours_retry_after_up_to_cap() -> CaseResult {
    let p = RetryPolicy::DEFAULT
        .jitter(Duration::ZERO)
        .backoff_max(Duration::from_secs(10));
    let mut rng = Rng::new(0);
    ensure_eq!(
        p.wait(1, Some(Duration::from_secs(5)), &mut rng),
        Some(Duration::from_secs(5))
    );
    ensure_eq!(
        p.wait(1, Some(Duration::ZERO), &mut rng),
        Some(Duration::from_millis(300))
    );
    ensure_eq!(p.wait(3, None, &mut rng), Some(Duration::from_millis(1200)));
    ensure_eq!(p.wait(1, Some(Duration::from_secs(11)), &mut rng), None);
    Ok(())
}

pub(crate) fn refresh_policy_schedule() -> CaseResult {
    let p = RefreshPolicy::DEFAULT.jitter(Duration::ZERO);
    let mut rng = Rng::new(1);
    // One hour, sent at 10 s: expires at 3610 s, refreshed 60 s before.
    let (r, e) = p.schedule(Instant::from_secs(10), Duration::from_secs(3600), &mut rng);
    ensure_eq!((r, e), (Instant::from_secs(3550), Instant::from_secs(3610)));
    // A 30 s token: the 60 s margin is capped at half the lifetime.
    let (r, e) = p.schedule(Instant::ZERO, Duration::from_secs(30), &mut rng);
    ensure_eq!((r, e), (Instant::from_secs(15), Instant::from_secs(30)));
    // Custom margin.
    let p = p.margin(Duration::from_secs(300));
    let (r, e) = p.schedule(Instant::ZERO, Duration::from_secs(3600), &mut rng);
    ensure_eq!((r, e), (Instant::from_secs(3300), Instant::from_secs(3600)));
    Ok(())
}

pub(crate) fn refresh_policy_jitter_in_bounds() -> CaseResult {
    let p = RefreshPolicy::DEFAULT
        .margin(Duration::from_secs(60))
        .jitter(Duration::from_secs(30));
    let mut seen = [false; 31];
    for seed in 0..200 {
        let (r, e) = p.schedule(
            Instant::ZERO,
            Duration::from_secs(3600),
            &mut Rng::new(seed),
        );
        ensure_eq!(e, Instant::from_secs(3600));
        let early = (e - r).as_secs();
        ensure!(
            (60..=90).contains(&early),
            "refreshes {early} s early with seed {seed}"
        );
        seen[(early - 60) as usize] = true;
    }
    let spread = seen.iter().filter(|s| **s).count();
    ensure!(
        spread > 20,
        "jitter does not spread: {spread} distinct values"
    );
    Ok(())
}
