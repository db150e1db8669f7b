//! alf's core with JSON parsing alone, on a Cortex-M4F: parse a token response with
//! `alf::response::parse_token_response` (alf's JSON scanner, serde-json-core's string
//! unescaping). No executor, no network, no time driver, no `Config`: the flash this binary
//! takes is what reading a token response costs by itself (the budget's "core with JSON
//! parsing alone"). `alf-config-and-parse` adds `Config::build`.

#![no_std]
#![no_main]

#[macro_use]
#[path = "../settings.rs"]
mod settings;

use core::hint::black_box;

use alf::client::DEFAULT_TOKEN_CAPACITY;
use alf::http::Response;
use alf::response::parse_token_response;
use cortex_m_rt::entry;

#[cfg(not(feature = "defmt"))]
use panic_halt as _;
#[cfg(feature = "defmt")]
use {defmt_rtt as _, panic_probe as _};

use settings::CLIENT_SECRET;

/// A typical token response (RFC 6749 §5.1), with an escaped character.
const BODY: &[u8] = br#"{"access_token":"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkZXZpY2UtMTcifQ.c2ln\/bmF0dXJl","token_type":"Bearer","expires_in":3600,"scope":"telemetry:write"}"#;

#[entry]
fn main() -> ! {
    // `black_box`: the inputs are opaque to the optimiser, so nothing is evaluated at compile
    // time and the whole parser is linked.
    let mut scratch = [0u8; 256];
    loop {
        let response = Response::new(black_box(200), black_box(BODY));
        match parse_token_response::<DEFAULT_TOKEN_CAPACITY>(
            &response,
            &mut scratch,
            CLIENT_SECRET,
            None,
        ) {
            Ok(token) => {
                log!(info, "token: expires in {}", token.expires_in);
                black_box(&token);
            }
            Err(e) => log!(error, "token response: {}", e),
        }
        cortex_m::asm::wfi();
    }
}
