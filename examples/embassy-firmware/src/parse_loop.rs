//! The parsing loop of `alf-parse-only` and `alf-config-and-parse`.

use core::hint::black_box;

use alf::client::DEFAULT_TOKEN_CAPACITY;
use alf::http::Response;
use alf::response::parse_token_response;

use crate::settings::CLIENT_SECRET;

/// A typical token response (RFC 6749 §5.1), with an escaped character.
const BODY: &[u8] = br#"{"access_token":"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkZXZpY2UtMTcifQ.c2ln\/bmF0dXJl","token_type":"Bearer","expires_in":3600,"scope":"telemetry:write"}"#;

/// Parse `BODY` with `alf::response::parse_token_response`, forever. `black_box`: the inputs
/// are opaque to the optimiser, so nothing is evaluated at compile time and the whole parser
/// is linked.
pub fn parse_forever() -> ! {
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
