//! The fuzz corpus as a regression suite: every file in `fuzz/corpus/parse_token_response/`,
//! `fuzz/corpus/parse_error_response/` and `fuzz/corpus/headers/` goes through alf's response
//! and header parsers on every `cargo test`, with the invariants the fuzz targets assert.
//!
//! The invariants and the input format live in one file, `fuzz/src/invariants.rs`, which the
//! fuzz targets and this test both include, so the two cannot drift apart. Seeds and crash
//! reproducers added to the corpus are therefore checked here without cargo-fuzz or nightly.
//! (The `form_encode` and `machine` corpora are `arbitrary` byte streams, replayed only by
//! `cargo fuzz`; `tests/properties.rs` covers the same ground with proptest.)

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use alf::http::RetryAfter;
use alf::{Error, OAuthErrorCode, ResponseError};

#[path = "../fuzz/src/invariants.rs"]
mod invariants;

use invariants::{
    check_challenge, check_exchange, check_headers, check_retry_after, decode_exchange, non_success,
};

/// The corpus files of one fuzz target, sorted by name.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, data)
        })
        .collect()
}

/// Run `check` on every file of these corpora; report all the files that fail, not the first.
fn replay(targets: &[&str], check: impl Fn(&[u8])) {
    let mut failures = Vec::new();
    let mut count = 0;
    for target in targets {
        for (path, data) in corpus(target) {
            count += 1;
            if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} corpus files break an invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const TEXT_CORPORA: &[&str] = &["parse_token_response", "parse_error_response", "headers"];

#[test]
fn token_responses_keep_the_invariants() {
    // Every text corpus, with its status as written: any input is a valid input.
    replay(TEXT_CORPORA, |data| {
        let _ = check_exchange(&decode_exchange(data));
    });
}

#[test]
fn error_responses_keep_the_invariants() {
    // As the parse_error_response target does: the status forced out of 2xx.
    replay(TEXT_CORPORA, |data| {
        let mut ex = decode_exchange(data);
        ex.status = non_success(ex.status);
        let parsed = check_exchange(&ex);
        assert!(
            matches!(&parsed, Err(Error::TokenEndpoint(e)) if e.status == ex.status),
            "{parsed:?}"
        );
    });
}

#[test]
fn headers_keep_the_invariants() {
    replay(TEXT_CORPORA, |data| {
        let ex = decode_exchange(data);
        check_headers(&ex);
        for line in ex.body.split(|&b| b == b'\n') {
            if let Ok(text) = std::str::from_utf8(line) {
                check_retry_after(text, ex.unix_now);
                check_challenge(text);
            }
        }
    });
}

fn file(target: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The seeds mean what their names say (so a format change cannot hollow the corpus out).
#[test]
fn seeds_decode_as_written() {
    let data = file("parse_token_response", "auth0_like.txt");
    let ex = decode_exchange(&data);
    assert_eq!((ex.status, ex.capacity, ex.scratch_len), (200, 2048, 4096));
    assert_eq!((ex.unix_now, ex.secret.as_str()), (None, "s3cr3t"));
    let (token, expires_in) = check_exchange(&ex).expect("a token");
    assert!(token.starts_with("eyJ"));
    assert_eq!(expires_in, Some(86_400));

    let data = file("parse_token_response", "azure_v1_string_expiry.txt");
    assert_eq!(
        check_exchange(&decode_exchange(&data)).unwrap().1,
        Some(3599)
    );

    let data = file("parse_token_response", "huge_expires_exponent.txt");
    assert_eq!(
        check_exchange(&decode_exchange(&data)).unwrap().1,
        Some(u64::MAX)
    );

    let data = file("parse_error_response", "slow_down_retry_after.txt");
    let ex = decode_exchange(&data);
    assert_eq!(ex.headers, [(&b"Retry-After"[..], &b"7"[..])]);
    let Err(Error::TokenEndpoint(e)) = check_exchange(&ex) else {
        panic!("an endpoint error")
    };
    assert_eq!((e.status, e.retry_after_ms), (429, Some(7000)));

    let data = file("parse_error_response", "echoes_secret.txt");
    let Err(Error::TokenEndpoint(e)) = check_exchange(&decode_exchange(&data)) else {
        panic!("an endpoint error")
    };
    assert_eq!(e.code, Some(OAuthErrorCode::InvalidClient));
    assert_eq!(e.description.as_deref(), Some("[redacted]"));
    assert_eq!(e.uri.as_deref(), Some("[redacted]"));

    let data = file("headers", "retry_after_rfc_date.txt");
    let ex = decode_exchange(&data);
    assert_eq!(ex.unix_now, Some(784_111_000));
    let r = invariants::response(&ex);
    assert_eq!(r.retry_after, Some(RetryAfter::Date(784_111_777)));
}

/// What the fuzzers found, fixed in `src/response.rs`.
#[test]
fn regressions_found_by_fuzzing() {
    // A token capacity below the `Bearer ` prefix and an empty token: the emptiness check
    // sliced past the end of the empty buffer (a panic).
    for name in [
        "crash_empty_token_capacity_below_prefix",
        "crash_empty_token_capacity_below_prefix_min",
        "regression_empty_token_capacity_1.txt",
    ] {
        let data = file("parse_token_response", name);
        let ex = decode_exchange(&data);
        assert!(ex.capacity < 7, "{name}");
        assert_eq!(
            check_exchange(&ex).unwrap_err(),
            Error::InvalidResponse(ResponseError::InvalidAccessToken),
            "{name}"
        );
    }
    // A secret with a space, and an error text with a control character where the space is:
    // replacing the control character spelled the secret after the secret check.
    let data = file(
        "parse_error_response",
        "regression_secret_with_space_behind_control.txt",
    );
    let ex = decode_exchange(&data);
    assert_eq!(ex.secret, "correct horse");
    let Err(Error::TokenEndpoint(e)) = check_exchange(&ex) else {
        panic!("an endpoint error")
    };
    assert_eq!(e.description.as_deref(), Some("[redacted]"));
    assert_eq!(e.uri.as_deref(), Some("[redacted]"));
    for name in [
        "crash_secret_revealed_by_control_replacement",
        "crash_secret_revealed_by_control_replacement_min",
    ] {
        let data = file("parse_error_response", name);
        let mut ex = decode_exchange(&data);
        ex.status = non_success(ex.status);
        assert!(matches!(check_exchange(&ex), Err(Error::TokenEndpoint(_))));
    }
}
