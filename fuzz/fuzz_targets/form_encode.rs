//! Any client id, secret, scopes and extra parameters through `Config::builder(..).build()`.
//! The outcome must be exactly what a reference model of the rules predicts (which error, or
//! success), and a built configuration must encode losslessly: the form body and the `Basic`
//! credentials are decoded back here (percent-decoding and base64 written in this file, not
//! taken from the crates alf encodes with) and compared with the inputs. The `Debug` output and
//! the store key never depend on the secret.

#![no_main]

use alf::config::{
    AUTHORIZATION_CAPACITY, CLIENT_ID_CAPACITY, FORM_CAPACITY, MAX_PARAMS, MAX_SCOPES,
};
use alf::secret::CLIENT_SECRET_CAPACITY;
use alf::{ClientAuth, Config, ConfigError};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

const ENDPOINT: &str = "https://auth.example.com/oauth2/token";
/// `pct(id) ":" pct(secret)` longer than this is refused (alf's internal buffer).
const CREDENTIALS_CAPACITY: usize = 384;

#[derive(Debug, Arbitrary)]
struct Input {
    id: String,
    secret: String,
    scopes: Vec<String>,
    params: Vec<(String, String)>,
    post: bool,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The reference encoding: every byte but the unreserved ones as `%XX`, upper-case hex.
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if is_unreserved(b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Percent-decode `s`, which must hold only unreserved characters and `%XX` escapes.
fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not an upper-case hex digit in {s:?}"),
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            assert!(i + 2 < b.len(), "truncated escape in {s:?}");
            out.push(hex(b[i + 1]) << 4 | hex(b[i + 2]));
            i += 3;
        } else {
            assert!(
                is_unreserved(b[i]),
                "unencoded {:?} in {s:?}",
                char::from(b[i])
            );
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("decodes to UTF-8")
}

/// Standard base64 with padding (RFC 4648 §4), strictly.
fn base64_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    assert!(b.len() % 4 == 0, "base64 length {}", b.len());
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", char::from(c)),
        }
    };
    let mut out = Vec::new();
    for (n, chunk) in b.chunks(4).enumerate() {
        let last = n + 1 == b.len() / 4;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        assert!(pad <= 2 && (pad == 0 || last), "bad padding");
        let mut acc = 0u32;
        for &c in &chunk[..4 - pad] {
            acc = acc << 6 | val(c);
        }
        acc <<= 6 * pad as u32;
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    out
}

/// What `build` must return for this input, from the documented rules, in the order alf
/// checks them; `Ok` carries the expected form body.
fn model(input: &Input) -> Result<String, ConfigError> {
    let mut scopes: Vec<&str> = Vec::new();
    for s in &input.scopes {
        let words: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
        if words.is_empty() {
            scopes.push("");
        } else {
            scopes.extend(words);
        }
    }
    if scopes.len() > MAX_SCOPES || input.params.len() > MAX_PARAMS {
        return Err(ConfigError::TooMany);
    }
    if input.id.is_empty() || input.id.len() > CLIENT_ID_CAPACITY {
        return Err(ConfigError::InvalidClientId);
    }
    if input.secret.len() > CLIENT_SECRET_CAPACITY {
        return Err(ConfigError::InvalidClientSecret);
    }
    // RFC 6749 §3.3 scope-token characters.
    let scope_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
    };
    if !scopes.iter().all(|s| scope_ok(s)) {
        return Err(ConfigError::InvalidScope);
    }
    let reserved = ["grant_type", "scope", "client_id", "client_secret"];
    if input
        .params
        .iter()
        .any(|(n, _)| n.is_empty() || reserved.contains(&n.as_str()))
    {
        return Err(ConfigError::InvalidParameter);
    }
    let mut form = String::from("grant_type=client_credentials");
    if !scopes.is_empty() {
        form += "&scope=";
        form += &scopes
            .iter()
            .map(|s| pct(s))
            .collect::<Vec<_>>()
            .join("%20");
    }
    for (n, v) in &input.params {
        form += &format!("&{}={}", pct(n), pct(v));
    }
    if form.len() > FORM_CAPACITY {
        return Err(ConfigError::TooLong);
    }
    if input.post {
        form += &format!(
            "&client_id={}&client_secret={}",
            pct(&input.id),
            pct(&input.secret)
        );
        if form.len() > FORM_CAPACITY {
            return Err(ConfigError::TooLong);
        }
    } else {
        let creds = pct(&input.id).len() + 1 + pct(&input.secret).len();
        if creds > CREDENTIALS_CAPACITY
            || "Basic ".len() + creds.div_ceil(3) * 4 > AUTHORIZATION_CAPACITY
        {
            return Err(ConfigError::TooLong);
        }
    }
    Ok(form)
}

fn build(input: &Input, secret: &str) -> Result<Config, ConfigError> {
    let mut b = Config::builder(ENDPOINT, &input.id, secret).client_auth(if input.post {
        ClientAuth::Post
    } else {
        ClientAuth::Basic
    });
    for s in &input.scopes {
        b = b.scope(s);
    }
    for (n, v) in &input.params {
        b = b.param(n, v);
    }
    b.build()
}

fuzz_target!(|input: Input| {
    let built = build(&input, &input.secret);
    let want = model(&input);
    let config = match (built, want) {
        (Ok(config), Ok(form)) => {
            assert_eq!(config.form_body(), form);
            config
        }
        (Err(got), Err(want)) => {
            assert_eq!(got, want);
            return;
        }
        (got, want) => panic!("build gave {:?}, the rules say {want:?}", got.map(|_| ())),
    };

    // Decode the form body back into the pairs that went in.
    let pairs: Vec<(String, String)> = config
        .form_body()
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("name=value");
            (pct_decode(k), pct_decode(v))
        })
        .collect();
    let mut expected = vec![("grant_type".to_string(), "client_credentials".to_string())];
    let words: Vec<&str> = input
        .scopes
        .iter()
        .flat_map(|s| s.split(' ').filter(|w| !w.is_empty()))
        .collect();
    if !words.is_empty() {
        expected.push(("scope".into(), words.join(" ")));
    }
    expected.extend(input.params.iter().cloned());
    let params_len = expected.len();
    if input.post {
        expected.push(("client_id".into(), input.id.clone()));
        expected.push(("client_secret".into(), input.secret.clone()));
    }
    assert_eq!(pairs, expected);
    // The credential-free part is a prefix of the body with exactly the parameters.
    assert!(config.form_body().starts_with(config.form_params()));
    assert_eq!(
        config.form_params().split('&').count(),
        params_len,
        "form_params"
    );

    // Decode the Basic credentials back.
    match config.authorization() {
        Some(auth) => {
            assert!(!input.post);
            assert!(auth.len() <= AUTHORIZATION_CAPACITY);
            let b64 = auth.strip_prefix("Basic ").expect("Basic scheme");
            let raw = String::from_utf8(base64_decode(b64)).expect("ASCII credentials");
            // An encoded id holds no ':', so the first one separates id and secret.
            let (id, secret) = raw.split_once(':').expect("id:secret");
            assert_eq!(pct_decode(id), input.id);
            assert_eq!(pct_decode(secret), input.secret);
        }
        None => assert!(input.post),
    }

    // Nothing observable but the credentials depends on the secret.
    let other_secret = if input.secret == "x" { "y" } else { "x" };
    if let Ok(other) = build(&input, other_secret) {
        assert_eq!(format!("{config:?}"), format!("{other:?}"));
        assert_eq!(config.store_key(), other.store_key());
        assert_eq!(config.form_params(), other.form_params());
    }
    let key = config.store_key();
    assert!(key.starts_with("alf:") && key.len() == 36);
});
