//! Differential checks against serde_json, a full JSON parser, for the fuzz targets only (the
//! root crate's replay test has no serde_json). They check soundness: whatever alf reports
//! (a token, an `expires_in`, an error code or text) is what the body says, whenever the body
//! is JSON that serde_json reads.

#![allow(dead_code)]

use alf::{Error, OAuthErrorCode, TokenEndpointError};
use serde_json::{Map, Value};

use crate::invariants::{Exchange, Parsed};

fn object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn occurrences(body: &[u8], needle: &[u8]) -> usize {
    body.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Compare a parse result with serde_json's reading of the same body.
pub(crate) fn compare(ex: &Exchange<'_>, parsed: &Parsed) {
    let Some(map) = object(ex.body) else {
        return;
    };
    match parsed {
        Ok((token, expires_in)) => {
            assert_eq!(
                map.get("access_token"),
                Some(&Value::String(token.clone())),
                "alf's token is not serde_json's"
            );
            // alf reads the first `expires_in`, serde_json keeps the last: compare when the
            // body has exactly one and writes it without escapes.
            if occurrences(ex.body, b"\"expires_in\"") == 1 && !ex.body.contains(&b'\\') {
                let want = match map.get("expires_in") {
                    None | Some(Value::Null) => Some(None),
                    Some(Value::Number(n)) => n.as_u64().map(Some),
                    _ => None,
                };
                if let Some(want) = want {
                    assert_eq!(*expires_in, want, "expires_in differs from serde_json");
                }
            }
        }
        Err(Error::TokenEndpoint(e)) => compare_error(e, &map, &ex.secret),
        Err(_) => {}
    }
}

/// What alf should keep of an error text `s` from the body.
fn expected_text(s: &str, secret: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if !secret.is_empty() && (s.contains(secret) || clean.contains(secret)) {
        "[redacted]".to_string()
    } else {
        clean
    }
}

fn compare_error(e: &TokenEndpointError, map: &Map<String, Value>, secret: &str) {
    match e.code {
        None => {}
        Some(OAuthErrorCode::Unknown) => assert!(
            matches!(map.get("error"), Some(Value::String(_))),
            "code Unknown without a string error: {:?}",
            map.get("error")
        ),
        Some(code) => assert_eq!(
            map.get("error"),
            Some(&Value::String(code.as_str().to_string())),
            "code {code:?}"
        ),
    }
    for (kept, key) in [(&e.description, "error_description"), (&e.uri, "error_uri")] {
        if let Some(kept) = kept {
            let Some(Value::String(s)) = map.get(key) else {
                panic!("{key} {kept:?} kept but the body has {:?}", map.get(key));
            };
            assert_eq!(kept.as_str(), expected_text(s, secret), "{key}");
        }
    }
}
