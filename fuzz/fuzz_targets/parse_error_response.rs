//! Error responses: the input of `parse_token_response` with the status forced out of 2xx,
//! so every input is an endpoint error. Never a panic, never a token; the status is kept; the
//! code, description and URI are what the body says (compared with serde_json), without
//! control characters and without the client secret. Input format: `src/invariants.rs`.

#![no_main]

use alf::Error;
use libfuzzer_sys::fuzz_target;

#[path = "../src/invariants.rs"]
mod invariants;
#[path = "../src/reference.rs"]
mod reference;

fuzz_target!(|data: &[u8]| {
    let mut ex = invariants::decode_exchange(data);
    ex.status = invariants::non_success(ex.status);
    let parsed = invariants::check_exchange(&ex);
    assert!(
        matches!(&parsed, Err(Error::TokenEndpoint(e)) if e.status == ex.status),
        "{parsed:?}"
    );
    reference::compare(&ex, &parsed);
});
