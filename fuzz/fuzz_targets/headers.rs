//! Response headers: every `name: value` line of the input goes through
//! `Response::observe_header`, and every value through `RetryAfter::parse` and
//! `BearerError::from_challenge`. Never a panic; alf keeps exactly `Retry-After` and the first
//! Bearer challenge; a `Retry-After` in seconds or as a date parses back from its canonical
//! form. Input format: `src/invariants.rs` (the body is read as more header values).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    let ex = invariants::decode_exchange(data);
    invariants::check_headers(&ex);
    // The body too, line by line, as raw values.
    for line in ex.body.split(|&b| b == b'\n') {
        if let Ok(text) = std::str::from_utf8(line) {
            invariants::check_retry_after(text, ex.unix_now);
            invariants::check_challenge(text);
        }
    }
});
