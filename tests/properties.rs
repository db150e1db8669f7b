//! Property tests of the wire layer (credentials, form body, response parsing, `Retry-After`)
//! and of the token state machine driven by hand, through the public API only.

// alf's errors keep the endpoint's texts inline (no allocator), as the crate itself notes.
#![allow(clippy::result_large_err)]

use alf::config::{AUTHORIZATION_CAPACITY, CLIENT_ID_CAPACITY, FORM_CAPACITY};
use alf::http::{Response, RetryAfter};
use alf::machine::{Check, Context, Fetched, Fetching, NoToken, State, StateKind, Valid};
use alf::response::{
    ParseError, TokenResponse, is_valid_token, parse_expires_in, parse_token_response,
    top_level_value,
};
use alf::secret::CLIENT_SECRET_CAPACITY;
use alf::{
    ClientAuth, Config, ConfigError, Duration, Error, ErrorKind, Instant, OAuthErrorCode,
    RefreshPolicy, RetryPolicy,
};
use base64ct::Encoding as _;
use percent_encoding::percent_decode_str;
use proptest::prelude::*;

const EP: &str = "https://auth.example.com/token";

// ---------------------------------------------------------------------------------------------
// A reference encoder, written from RFC 3986 §2.3 and design.md, independent of alf's.

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    percent_decode_str(s)
        .decode_utf8()
        .expect("percent-decodes to UTF-8")
        .into_owned()
}

/// `s` holds only unreserved characters and `%XX` escapes (upper-case hex).
fn only_unreserved_and_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
            if i + 2 >= b.len() || !(hex(b[i + 1]) && hex(b[i + 2])) {
                return false;
            }
            i += 3;
        } else if is_unreserved(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Characters of every kind: ASCII (reserved, space, controls) and any Unicode scalar.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::char::range(' ', '~'),
        1 => prop::sample::select(vec![' ', '+', '%', ':', '&', '=', '/', '?', '#', '\0', '\n', '\u{7f}']),
        2 => any::<char>(),
    ]
}

fn text(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(any_char(), len).prop_map(|v| v.into_iter().collect())
}

// ---------------------------------------------------------------------------------------------
// Credentials and form body.

proptest! {
    #[test]
    fn basic_credentials_round_trip(id in text(1..=40), secret in text(0..=60)) {
        let creds = format!("{}:{}", pct(&id), pct(&secret));
        let header_len = "Basic ".len() + creds.len().div_ceil(3) * 4;
        match Config::builder(EP, &id, &secret).build() {
            Ok(config) => {
                prop_assert_eq!(config.client_auth(), ClientAuth::Basic);
                let auth = config.authorization().expect("Basic has an Authorization value");
                let b64 = auth.strip_prefix("Basic ").expect("starts with Basic");
                let raw = base64ct::Base64::decode_vec(b64).expect("valid base64");
                let raw = String::from_utf8(raw).expect("ASCII");
                prop_assert!(only_unreserved_and_escapes(raw.split_once(':').unwrap().0));
                prop_assert!(only_unreserved_and_escapes(raw.split_once(':').unwrap().1));
                prop_assert!(!raw.contains('+'));
                // Exactly the reference encoding...
                prop_assert_eq!(&raw, &creds);
                // ...and back to the originals: an encoded id holds no ':'.
                let (eid, esecret) = raw.split_once(':').unwrap();
                prop_assert_eq!(&decode(eid), &id);
                prop_assert_eq!(&decode(esecret), &secret);
                // Basic keeps credentials out of the form.
                prop_assert_eq!(config.form_body(), "grant_type=client_credentials");
            }
            Err(ConfigError::InvalidClientId) => prop_assert!(id.len() > CLIENT_ID_CAPACITY),
            Err(ConfigError::InvalidClientSecret) => prop_assert!(secret.len() > CLIENT_SECRET_CAPACITY),
            Err(ConfigError::TooLong) => prop_assert!(header_len > 400, "{} bytes refused", header_len),
            Err(e) => prop_assert!(false, "unexpected {:?}", e),
        }
        // Whatever fits comfortably must build.
        if id.len() <= CLIENT_ID_CAPACITY && header_len <= 400 && header_len <= AUTHORIZATION_CAPACITY {
            prop_assert!(Config::builder(EP, &id, &secret).build().is_ok());
        }
    }
}

/// RFC 6749 §3.3 scope-token characters.
fn scope_token() -> impl Strategy<Value = String> {
    "[!#-\\[\\]-~]{1,12}"
}

fn param_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "audience", "resource", "x", "scope_x", "client", "a b", "é&="
        ])
        .prop_map(String::from),
        text(1..=8),
    ]
    .prop_filter("reserved names are refused", |n| {
        !matches!(
            n.as_str(),
            "grant_type" | "scope" | "client_id" | "client_secret"
        )
    })
}

proptest! {
    #[test]
    fn form_body_round_trip(
        scopes in prop::collection::vec(scope_token(), 0..=6),
        params in prop::collection::vec((param_name(), text(0..=12)), 0..=5),
        post in any::<bool>(),
        id in text(1..=10),
        secret in text(0..=10),
    ) {
        let mut b = Config::builder(EP, &id, &secret)
            .client_auth(if post { ClientAuth::Post } else { ClientAuth::Basic });
        for s in &scopes {
            b = b.scope(s);
        }
        for (n, v) in &params {
            b = b.param(n, v);
        }
        // The reference body.
        let mut want = String::from("grant_type=client_credentials");
        if !scopes.is_empty() {
            want += "&scope=";
            want += &scopes.iter().map(|s| pct(s)).collect::<Vec<_>>().join("%20");
        }
        for (n, v) in &params {
            want += &format!("&{}={}", pct(n), pct(v));
        }
        let params_len = want.len();
        if post {
            want += &format!("&client_id={}&client_secret={}", pct(&id), pct(&secret));
        }
        let config = match b.build() {
            Ok(c) => c,
            Err(ConfigError::TooLong) => {
                prop_assert!(want.len() > FORM_CAPACITY);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
        };
        let body = config.form_body();
        prop_assert_eq!(body, want.as_str());
        prop_assert_eq!(config.form_params(), &want[..params_len]);
        prop_assert_eq!(config.authorization().is_some(), !post);

        // Split and decode back.
        let pairs: Vec<(String, String)> = body
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("name=value");
                prop_assert!(only_unreserved_and_escapes(k) && only_unreserved_and_escapes(v), "{}", kv);
                Ok((decode(k), decode(v)))
            })
            .collect::<Result<_, TestCaseError>>()?;
        let mut expected = vec![("grant_type".to_string(), "client_credentials".to_string())];
        if !scopes.is_empty() {
            expected.push(("scope".into(), scopes.join(" ")));
        }
        expected.extend(params.iter().cloned());
        if post {
            expected.push(("client_id".into(), id.clone()));
            expected.push(("client_secret".into(), secret.clone()));
        }
        prop_assert_eq!(pairs, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Response parsing never panics, and accepts exactly the good responses.

/// A JSON-ish value: mostly valid JSON, sometimes not quite.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        "-?[0-9]{1,25}(\\.[0-9]{0,5})?([eE][-+]?[0-9]{1,4})?",
        "\"[0-9]{0,22}\"",
        "\"([ -!#-\\[\\]-~]|\\\\[\"\\\\/bfnrtq]|\\\\u[0-9a-fA-F]{4}|é)*\"",
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("\"Bearer\"".to_string()),
        "[a-z0-9.+-]{0,6}",
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((json_key(), inner), 0..4).prop_map(|kv| {
                let members: Vec<String> =
                    kv.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "access_token", "expires_in", "token_type", "error", "error_description", "error_uri",
            "scope", "refresh_token", "access\\u005ftoken", "expires_in\\\"",
        ])
        .prop_map(|k| format!("\"{k}\"")),
        1 => "\"[a-z_\\\\\"]{0,8}\"",
    ]
}

/// An object made of those, then maybe damaged.
fn near_json() -> impl Strategy<Value = Vec<u8>> {
    let object = prop::collection::vec((json_key(), json_value(), "[ \t\r\n]{0,2}"), 0..8)
        .prop_map(|kv| {
            let members: Vec<String> = kv
                .into_iter()
                .map(|(k, v, ws)| format!("{ws}{k}{ws}:{ws}{v}{ws}"))
                .collect();
            format!("{{{}}}", members.join(",")).into_bytes()
        });
    (object, 0usize..4, any::<prop::sample::Index>(), any::<u8>()).prop_map(
        |(mut body, damage, at, byte)| {
            if !body.is_empty() {
                let i = at.index(body.len());
                match damage {
                    0 => body.truncate(i),
                    1 => body.insert(i, byte),
                    2 => body[i] = byte,
                    _ => {}
                }
            }
            body
        },
    )
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(200),
        Just(201),
        Just(204),
        Just(302),
        Just(400),
        Just(401),
        Just(429),
        Just(503),
        any::<u16>()
    ]
}

/// What must hold of any parse result.
fn check_parse(status: u16, body: &[u8], scratch_len: usize) -> Result<(), TestCaseError> {
    let mut scratch = vec![0u8; scratch_len];
    let mut response = Response::new(status, body);
    response.observe_header("Retry-After", b"3");
    let result = parse_token_response::<64>(&response, &mut scratch, "s3cret", Some(1_000_000));
    let success = (200..300).contains(&status);
    match &result {
        Ok(r) => {
            prop_assert!(success);
            prop_assert!(is_valid_token(r.token.secret()));
            prop_assert!(r.token.secret().len() <= 64 - "Bearer ".len());
            prop_assert_ne!(r.expires_in, Some(0));
        }
        Err(Error::TokenEndpoint(e)) => {
            prop_assert_eq!(e.status, status);
            prop_assert_eq!(e.retry_after_ms, Some(3000));
            for t in [&e.description, &e.uri].into_iter().flatten() {
                prop_assert!(!t.contains("s3cret"));
                prop_assert!(!t.chars().any(char::is_control));
            }
        }
        Err(Error::InvalidResponse(_) | Error::Capacity(_)) => prop_assert!(success),
        Err(e) => prop_assert!(false, "unexpected {:?}", e),
    }
    for key in ["expires_in", "access_token", "", "\""] {
        if let Some(v) = top_level_value(body, key) {
            // A sub-slice of the body.
            let range = body.as_ptr_range();
            prop_assert!(range.contains(&v.as_ptr()) || v.is_empty());
        }
    }
    let _ = parse_expires_in(body);
    Ok(())
}

proptest! {
    #[test]
    fn parsing_arbitrary_bytes_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..512),
        status in status(),
        scratch_len in 0usize..96,
    ) {
        check_parse(status, &body, scratch_len)?;
    }

    #[test]
    fn parsing_near_json_never_panics(body in near_json(), status in status(), scratch_len in 0usize..96) {
        check_parse(status, &body, scratch_len)?;
    }

    #[test]
    fn top_level_value_and_expires_in_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = top_level_value(&body, "expires_in");
        let _ = parse_expires_in(&body);
    }
}

/// A token made of header-safe characters, some of them written escaped.
fn token_chars() -> impl Strategy<Value = Vec<(char, bool)>> {
    prop::collection::vec((prop::char::range('!', '~'), any::<bool>()), 1..40)
}

fn json_escape(c: char, escaped: bool) -> String {
    match c {
        '"' => "\\\"".into(),
        '\\' => "\\\\".into(),
        '/' if escaped => "\\/".into(),
        c if escaped => format!("\\u{:04x}", u32::from(c)),
        c => c.to_string(),
    }
}

proptest! {
    #[test]
    fn good_responses_are_accepted_as_sent(
        token in token_chars(),
        n in 1u64..=u64::from(u32::MAX),
        expires_form in 0u8..4,
        token_type in prop::sample::select(vec!["", "Bearer", "bearer", "BEARER", "bEaReR"]),
        noise in prop::collection::vec((json_key(), json_value()), 0..3),
        order in any::<bool>(),
    ) {
        let value: String = token.iter().map(|(c, _)| *c).collect();
        let written: String = token.iter().map(|&(c, e)| json_escape(c, e)).collect();
        let expires = match expires_form {
            0 => format!("{n}"),
            1 => format!("\"{n}\""),
            2 => format!("{n}.{}", n % 10),
            _ => format!("{}e-2", u128::from(n) * 100 + 99),
        };
        // Unknown members only: a second known key would be a duplicate.
        let noise: Vec<String> = noise
            .into_iter()
            .filter(|(k, _)| !["\"access_token\"", "\"expires_in\"", "\"token_type\"", "\"error\"", "\"error_description\"", "\"error_uri\"", "\"scope\"", "\"access\\u005ftoken\""].contains(&k.as_str()))
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        let mut members = vec![format!("\"access_token\":\"{written}\""), format!("\"expires_in\":{expires}")];
        if !token_type.is_empty() {
            members.push(format!("\"token_type\":\"{token_type}\""));
        }
        if order {
            members.reverse();
        }
        members.extend(noise);
        let body = format!("{{{}}}", members.join(","));
        let mut scratch = [0u8; 1024];
        let result = parse_token_response::<256>(&Response::new(200, body.as_bytes()), &mut scratch, "s3cret", None);
        // Noise is near-JSON and may be rejected as a whole; a token is never garbled.
        match result {
            Ok(r) => {
                prop_assert_eq!(r.token.secret(), value.as_str());
                prop_assert_eq!(r.expires_in, Some(n));
            }
            Err(Error::InvalidResponse(alf::ResponseError::NotJson)) => {}
            Err(e) => prop_assert!(false, "{:?} for {}", e, body),
        }
        // Without noise it must be accepted.
        members.truncate(if token_type.is_empty() { 2 } else { 3 });
        let body = format!("{{{}}}", members.join(","));
        let r = parse_token_response::<256>(&Response::new(200, body.as_bytes()), &mut scratch, "s3cret", None);
        let r = r.map_err(|e| TestCaseError::fail(format!("{e:?} for {body}")))?;
        prop_assert_eq!(r.token.secret(), value.as_str());
        prop_assert_eq!(r.expires_in, Some(n));
    }

    #[test]
    fn expires_in_integers(n in 1u64..=u64::from(u32::MAX), big in any::<u64>()) {
        prop_assert_eq!(parse_expires_in(n.to_string().as_bytes()), Some(n));
        prop_assert_eq!(parse_expires_in(format!("\"{n}\"").as_bytes()), Some(n));
        prop_assert_eq!(parse_expires_in(format!("{n}.999").as_bytes()), Some(n));
        prop_assert_eq!(parse_expires_in(format!("{n}000e-3").as_bytes()), Some(n));
        prop_assert_eq!(parse_expires_in(format!("-{n}").as_bytes()), None);
        prop_assert_eq!(parse_expires_in(format!("-{n}.5").as_bytes()), None);
        prop_assert_eq!(parse_expires_in(format!("\"-{n}\"").as_bytes()), None);
        prop_assert_eq!(parse_expires_in(big.to_string().as_bytes()), (big > 0).then_some(big));
        // Beyond u64 saturates.
        prop_assert_eq!(parse_expires_in(format!("{big}00000000000000000000").as_bytes()), (big > 0).then_some(u64::MAX));
    }
}

// ---------------------------------------------------------------------------------------------
// Retry-After.

/// An IMF-fixdate for Unix time `t`, computed by walking years and months.
fn imf_fixdate(t: u64) -> String {
    let (mut days, secs) = (t / 86_400, t % 86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut year = 1970;
    while days >= if leap(year) { 366 } else { 365 } {
        days -= if leap(year) { 366 } else { 365 };
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

proptest! {
    #[test]
    fn retry_after_never_panics(s in "\\PC{0,40}", bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let _ = RetryAfter::parse(&s);
        let _ = RetryAfter::parse(&String::from_utf8_lossy(&bytes));
        let mut r = Response::new(429, b"");
        r.observe_header("Retry-After", &bytes);
        r.observe_header("WWW-Authenticate", &bytes);
        r.observe_header("WWW-Authenticate", s.as_bytes());
    }

    #[test]
    fn retry_after_seconds(n in any::<u32>(), pad in "[ \t]{0,2}") {
        prop_assert_eq!(RetryAfter::parse(&format!("{pad}{n}{pad}")), Some(RetryAfter::Seconds(u64::from(n))));
        prop_assert_eq!(RetryAfter::Seconds(u64::from(n)).delay(None), Some(Duration::from_secs(u64::from(n))));
        prop_assert_eq!(RetryAfter::parse(&format!("-{n}")), None);
    }

    #[test]
    fn retry_after_dates(t in 0u64..253_402_300_800) {
        let date = imf_fixdate(t);
        prop_assert_eq!(RetryAfter::parse(&date), Some(RetryAfter::Date(t)), "{}", date);
    }
}

// ---------------------------------------------------------------------------------------------
// The state machine, driven by hand.

const N: usize = 64;

#[derive(Debug, Clone)]
enum Outcome {
    Token {
        expires_in: Option<u64>,
    },
    Timeout,
    Refused,
    Status {
        status: u16,
        body: &'static str,
        retry_after: Option<u64>,
    },
    NotJson,
}

#[derive(Debug, Clone)]
enum Event {
    Advance(u64),
    Fetch,
    Retry,
    Complete(Outcome),
    Check,
    Invalidate { right: bool },
    GiveUp,
    Adopt(u64),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => prop_oneof![
            Just(None),
            (1u64..100_000).prop_map(Some),
            Just(Some(1)),
            any::<u64>().prop_map(|n| Some(n.max(1))),
        ]
        .prop_map(|expires_in| Outcome::Token { expires_in }),
        1 => Just(Outcome::Timeout),
        1 => Just(Outcome::Refused),
        1 => Just(Outcome::NotJson),
        3 => (
            prop::sample::select(vec![
                (503, "<html>down</html>"),
                (500, r#"{"error":"server_error"}"#),
                (429, r#"{"error":"slow_down"}"#),
                (400, r#"{"error":"invalid_client"}"#),
                (401, r#"{"error":"invalid_client","error_description":"bad"}"#),
                (400, r#"{"error":"invalid_request"}"#),
                (401, ""),
                (403, "forbidden"),
                (200, r#"{"error":"invalid_client"}"#),
                (200, r#"{"error":"unauthorized_client"}"#),
                (503, r#"{"error":"invalid_client"}"#),
            ]),
            prop::option::of(prop_oneof![0u64..120, any::<u64>()]),
        )
            .prop_map(|((status, body), retry_after)| Outcome::Status { status, body, retry_after }),
    ]
}

/// Mostly ordinary spans; now and then one that reaches the end of time (after which every
/// token expires as it arrives), so about half the runs get there.
fn millis() -> impl Strategy<Value = u64> {
    prop_oneof![
        30 => 0u64..5_000,
        15 => 0u64..10_000_000,
        1 => any::<u64>(),
        1 => (u64::MAX - 10_000)..=u64::MAX,
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => millis().prop_map(Event::Advance),
        3 => Just(Event::Fetch),
        2 => Just(Event::Retry),
        5 => outcome().prop_map(Event::Complete),
        2 => Just(Event::Check),
        1 => any::<bool>().prop_map(|right| Event::Invalidate { right }),
        1 => Just(Event::GiveUp),
        1 => millis().prop_map(Event::Adopt),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        (0u64..100_000).prop_map(Duration::from_millis),
        (0u64..100_000).prop_map(Duration::from_secs),
        Just(Duration::MAX),
    ]
}

fn lifetime() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => (1u64..100_000).prop_map(Duration::from_millis),
        3 => (1u64..200_000).prop_map(Duration::from_secs),
        1 => Just(Duration::MAX),
    ]
}

fn policies() -> impl Strategy<Value = (RefreshPolicy, RetryPolicy)> {
    let statuses: Vec<&'static [u16]> = vec![
        alf::policy::DEFAULT_RETRY_STATUSES,
        &[],
        &[400, 401, 403, 429, 500, 503],
        &[200, 400, 401, 503],
    ];
    (
        (duration(), duration(), lifetime(), lifetime()),
        (
            0u8..6,
            prop::sample::select(statuses),
            duration(),
            duration(),
            duration(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (margin, jitter, default, max),
                (total, statuses, factor, cap, rjitter, transport),
            )| {
                let refresh = RefreshPolicy::DEFAULT
                    .margin(margin)
                    .jitter(jitter)
                    .default_lifetime(default)
                    .max_lifetime(max);
                let retry = RetryPolicy::DEFAULT
                    .total(total)
                    .statuses(statuses)
                    .backoff_factor(factor)
                    .backoff_max(cap)
                    .jitter(rjitter)
                    .transport_errors(transport);
                (refresh, retry)
            },
        )
}

fn token_response(expires_in: Option<u64>) -> TokenResponse<N> {
    let body = match expires_in {
        Some(n) => format!(r#"{{"access_token":"tok","token_type":"Bearer","expires_in":{n}}}"#),
        None => r#"{"access_token":"tok"}"#.to_string(),
    };
    let r = parse_token_response::<N>(
        &Response::new(200, body.as_bytes()),
        &mut [0; 64],
        "s3cret",
        None,
    );
    let r = r.expect("a good token response");
    assert_eq!(r.expires_in, expires_in);
    r
}

fn result_of(outcome: &Outcome) -> Result<TokenResponse<N>, ParseError> {
    match outcome {
        Outcome::Token { expires_in } => Ok(token_response(*expires_in)),
        Outcome::Timeout => Err(Error::Transport(embedded_io::ErrorKind::TimedOut)),
        Outcome::Refused => Err(Error::Transport(embedded_io::ErrorKind::ConnectionRefused)),
        Outcome::NotJson => {
            parse_token_response::<N>(&Response::new(200, b"<html>"), &mut [0; 64], "s3cret", None)
        }
        Outcome::Status {
            status,
            body,
            retry_after,
        } => {
            let mut r = Response::new(*status, body.as_bytes());
            if let Some(s) = retry_after {
                r.observe_header("Retry-After", s.to_string().as_bytes());
            }
            let e = parse_token_response::<N>(&r, &mut [0; 64], "s3cret", None);
            assert!(matches!(e, Err(Error::TokenEndpoint(_))), "{e:?}");
            e
        }
    }
}

/// A credential error: must never be retried in a loop.
fn is_credential_error(e: &ParseError) -> bool {
    match e {
        Error::TokenEndpoint(e) => {
            matches!(e.status, 400 | 401 | 403)
                || matches!(
                    e.code,
                    Some(OAuthErrorCode::InvalidClient | OAuthErrorCode::UnauthorizedClient)
                )
        }
        _ => false,
    }
}

fn tokens_of(state: &State<N>, now: Instant) -> Vec<alf::machine::Token<N>> {
    let mut v = Vec::new();
    match state {
        State::Valid(valid) => v.push(valid.token().clone()),
        // The stale token may be past its expiry; it is checked through `stale` and
        // `usable_token`, and `refresh_at <= expires_at` holds for it too.
        State::Fetching(f) => v.extend(f.stale(now).cloned()),
        _ => {}
    }
    v
}

struct Machine {
    ctx: Context,
    state: State<N>,
    now: Instant,
    max_attempts: u8,
    last_generation: u32,
}

impl Machine {
    fn invariants(&self) -> Result<(), TestCaseError> {
        if let Some(t) = self.state.usable_token(self.now) {
            prop_assert!(
                t.expires_at() > self.now,
                "usable token expired: {:?} at {:?}",
                t,
                self.now
            );
        }
        // A fresh token is a valid one before its refresh time, and so never an expired one.
        if let Some(t) = self.state.fresh_token(self.now) {
            prop_assert_eq!(self.state.kind(), StateKind::Valid);
            prop_assert!(self.now < t.refresh_at() && self.now < t.expires_at());
            prop_assert_eq!(
                self.state.usable_token(self.now).map(|u| u.generation()),
                Some(t.generation())
            );
        } else if let State::Valid(v) = &self.state {
            prop_assert!(self.now >= v.token().refresh_at());
        }
        for t in tokens_of(&self.state, self.now) {
            prop_assert!(t.refresh_at() <= t.expires_at(), "{:?}", t);
            prop_assert!(t.generation() != 0);
        }
        if let State::Fetching(f) = &self.state {
            prop_assert!(
                f.attempt() >= 1 && f.attempt() <= self.max_attempts,
                "attempt {}",
                f.attempt()
            );
            prop_assert_eq!(self.state.poll_at(), f.retry_at());
        }
        if let State::Valid(v) = &self.state {
            prop_assert_eq!(self.state.poll_at(), Some(v.token().refresh_at()));
        }
        Ok(())
    }

    fn new_token(&mut self, t: &alf::machine::Token<N>) -> Result<(), TestCaseError> {
        prop_assert!(t.generation() > self.last_generation, "generation reused");
        self.last_generation = t.generation();
        prop_assert_eq!(t.access_token().secret(), "tok");
        Ok(())
    }

    fn step(&mut self, event: Event) -> Result<(), TestCaseError> {
        let now = self.now;
        self.state = match (self.state.take(), event) {
            (s, Event::Advance(ms)) => {
                self.now = now + Duration::from_millis(ms);
                s
            }
            (State::NoToken(n), Event::Fetch) => State::Fetching(n.fetch(now)),
            (State::Expired(e), Event::Fetch) => State::Fetching(e.fetch(now)),
            (State::Valid(v), Event::Fetch) => {
                let t = v.token().clone();
                let f = v.refresh(now);
                prop_assert_eq!(f.attempt(), 1);
                prop_assert_eq!(f.sent_at(), now);
                // The old token is served during the refresh, until it expires.
                let want = (now < t.expires_at()).then_some(t.generation());
                prop_assert_eq!(f.stale(now).map(|t| t.generation()), want);
                State::Fetching(f)
            }
            (State::Fetching(f), Event::Retry) => {
                let waiting = f.retry_at().is_some();
                let before = f.attempt();
                let f = f.retry(now);
                prop_assert_eq!(
                    f.attempt(),
                    if waiting {
                        before.saturating_add(1)
                    } else {
                        before
                    }
                );
                prop_assert_eq!(f.sent_at(), now);
                prop_assert_eq!(f.retry_at(), None);
                State::Fetching(f)
            }
            (State::Fetching(f), Event::Complete(outcome)) => self.complete(f, &outcome)?,
            // Complete what a fetch started now would bring, so that most events do something.
            (State::NoToken(n), Event::Complete(outcome)) => {
                self.complete(n.fetch(now), &outcome)?
            }
            (State::Expired(e), Event::Complete(outcome)) => {
                self.complete(e.fetch(now), &outcome)?
            }
            (State::Valid(v), Event::Complete(outcome)) => {
                self.complete(v.refresh(now), &outcome)?
            }
            (State::Valid(v), Event::Check) => {
                let t = v.token().clone();
                // The look by reference agrees with the transition.
                let fresh = v.is_fresh(now);
                match v.check(now) {
                    Check::Fresh(v) => {
                        prop_assert!(now < t.refresh_at());
                        prop_assert!(fresh);
                        let state = State::Valid(v);
                        prop_assert_eq!(
                            state.fresh_token(now).map(|f| f.generation()),
                            Some(t.generation())
                        );
                        state
                    }
                    Check::RefreshDue(v) => {
                        prop_assert!(t.refresh_at() <= now && now < t.expires_at());
                        prop_assert!(!fresh);
                        let state = State::Valid(v);
                        prop_assert!(state.fresh_token(now).is_none());
                        state
                    }
                    Check::Expired(e) => {
                        prop_assert!(now >= t.expires_at());
                        prop_assert!(!fresh);
                        prop_assert_eq!(e.last_generation(), t.generation());
                        State::Expired(e)
                    }
                }
            }
            (State::Valid(v), Event::Invalidate { right }) => {
                let g = v.token().generation();
                let target = if right { g } else { g.wrapping_add(1) };
                match v.invalidate(target) {
                    Ok(e) => {
                        prop_assert!(right);
                        prop_assert_eq!(e.last_generation(), g);
                        State::Expired(e)
                    }
                    Err(v) => {
                        prop_assert!(!right);
                        prop_assert_eq!(v.token().generation(), g);
                        State::Valid(v)
                    }
                }
            }
            (State::Fetching(f), Event::Invalidate { right }) => {
                let stale = f.stale(Instant::ZERO).map(|t| t.generation());
                let target = match (stale, right) {
                    (Some(g), true) => g,
                    (Some(g), false) => g.wrapping_add(1),
                    (None, _) => self.last_generation,
                };
                let (f, dropped) = f.reject_stale(target);
                prop_assert_eq!(dropped, stale == Some(target));
                if dropped {
                    prop_assert!(f.stale(Instant::ZERO).is_none());
                }
                State::Fetching(f)
            }
            (State::Fetching(f), Event::GiveUp) => {
                let stale = f.stale(now).map(|t| t.generation());
                let s = f.give_up(&self.ctx, now);
                let want = if stale.is_some() {
                    StateKind::Valid
                } else {
                    StateKind::NoToken
                };
                prop_assert!(
                    s.kind() == want
                        || (want == StateKind::NoToken && s.kind() == StateKind::Expired)
                );
                prop_assert_eq!(s.usable_token(now).map(|t| t.generation()), stale);
                s
            }
            (s @ (State::NoToken(_) | State::Expired(_)), Event::Adopt(remaining_ms)) => {
                let value = token_response(Some(1)).token;
                let remaining = Duration::from_millis(remaining_ms);
                match Valid::adopt(&mut self.ctx, value, now, remaining) {
                    Some(v) => {
                        prop_assert!(v.token().expires_at() > now);
                        prop_assert!(v.token().expires_at() <= now + remaining);
                        let t = v.token().clone();
                        self.new_token(&t)?;
                        State::Valid(v)
                    }
                    None => {
                        prop_assert!(remaining == Duration::ZERO || now == Instant::MAX);
                        s
                    }
                }
            }
            (s, _) => s,
        };
        self.invariants()
    }

    fn complete(&mut self, f: Fetching<N>, outcome: &Outcome) -> Result<State<N>, TestCaseError> {
        let now = self.now;
        let attempt = f.attempt();
        let sent_at = f.sent_at();
        let stale = f.stale(now).map(|t| t.generation());
        let result = result_of(outcome);
        Ok(match f.complete(&mut self.ctx, now, result) {
            Fetched::Valid(v) => {
                let t = v.token().clone();
                let from_token = matches!(outcome, Outcome::Token { .. });
                prop_assert!(from_token);
                prop_assert!(t.expires_at() > now);
                // Expiry is measured from when the request was sent.
                prop_assert!(t.expires_at() <= sent_at + self.ctx.refresh.max_lifetime);
                let Outcome::Token { expires_in } = outcome else {
                    unreachable!()
                };
                let policy = self.ctx.refresh;
                let lifetime = expires_in
                    .map_or(policy.default_lifetime, Duration::from_secs)
                    .min(policy.max_lifetime);
                prop_assert_eq!(t.expires_at(), sent_at + lifetime);
                // Refreshed `margin` (plus up to `jitter`) early, but never more than half the
                // lifetime early.
                let half = Duration::from_millis(lifetime.as_millis() / 2);
                let early = t.expires_at() - t.refresh_at();
                prop_assert!(
                    early >= policy.margin.min(half),
                    "{:?} early, margin {:?}",
                    early,
                    policy.margin
                );
                prop_assert!(
                    early <= policy.margin.saturating_add(policy.jitter).min(half),
                    "{:?} early of {:?}",
                    early,
                    lifetime
                );
                self.new_token(&t)?;
                State::Valid(v)
            }
            Fetched::Retry {
                fetching,
                at,
                error,
            } => {
                prop_assert!(at >= now);
                prop_assert_eq!(fetching.retry_at(), Some(at));
                prop_assert_eq!(fetching.attempt(), attempt);
                prop_assert!(
                    attempt <= self.ctx.retry.total,
                    "retry after attempt {} of {}",
                    attempt,
                    self.ctx.retry.total
                );
                prop_assert!(
                    !is_credential_error(&error),
                    "credential error retried: {:?}",
                    error
                );
                prop_assert_eq!(error.kind(), ErrorKind::Retryable);
                if let Error::TokenEndpoint(e) = &error {
                    prop_assert!(self.ctx.retry.statuses.contains(&e.status));
                    // Retry-After is honoured, or the error is not retried.
                    if let Some(ms) = e.retry_after_ms {
                        prop_assert!(at >= now + Duration::from_millis(ms));
                    }
                } else {
                    prop_assert!(self.ctx.retry.transport_errors);
                }
                // The stale token is still served until it expires.
                prop_assert_eq!(fetching.stale(now).map(|t| t.generation()), stale);
                State::Fetching(fetching)
            }
            Fetched::Failed { state, error } => {
                prop_assert_ne!(state.kind(), StateKind::Fetching);
                let _ = error;
                // Stale-while-revalidate: the old token is kept while it is good.
                prop_assert_eq!(state.usable_token(now).map(|t| t.generation()), stale);
                state
            }
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn machine_driven_by_hand(
        (refresh, retry) in policies(),
        seed in any::<u64>(),
        start in millis(),
        events in prop::collection::vec(event(), 0..80),
    ) {
        let mut m = Machine {
            ctx: Context::new(refresh, retry, seed),
            state: State::NoToken(NoToken::new()),
            now: Instant::from_millis(start),
            max_attempts: retry.total.saturating_add(1),
            last_generation: 0,
        };
        m.invariants()?;
        for e in events {
            m.step(e)?;
        }
    }
}
