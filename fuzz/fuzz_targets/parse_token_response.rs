//! Any status, headers and body through `alf::response::parse_token_response`, with every
//! token capacity `N` and scratch length: never a panic, an accepted token is a non-empty
//! visible-ASCII header value that fits, error texts hold no control characters and never the
//! client secret, and the result agrees with serde_json. Input format: `src/invariants.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/invariants.rs"]
mod invariants;
#[path = "../src/reference.rs"]
mod reference;

fuzz_target!(|data: &[u8]| {
    let ex = invariants::decode_exchange(data);
    let parsed = invariants::check_exchange(&ex);
    reference::compare(&ex, &parsed);
});
