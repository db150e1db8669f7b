//! alf's core on a Cortex-M4F: build a `Config` (URL checks, form body, Basic credentials)
//! and parse a token response with `alf::response::parse_token_response`. No executor, no
//! network, no time driver: `alf-parse-only` plus what the configuration costs.

#![no_std]
#![no_main]

#[macro_use]
#[path = "../settings.rs"]
mod settings;
#[path = "../parse_loop.rs"]
mod parse_loop;

use core::hint::black_box;

use alf::Config;
use cortex_m_rt::entry;

#[cfg(not(feature = "defmt"))]
use panic_halt as _;
#[cfg(feature = "defmt")]
use {defmt_rtt as _, panic_probe as _};

use settings::{CLIENT_ID, CLIENT_SECRET, SCOPE, TOKEN_ENDPOINT};

#[entry]
fn main() -> ! {
    // `black_box`: the inputs are opaque to the optimiser, so the whole of `Config::build` is
    // linked.
    let config = Config::builder(
        black_box(TOKEN_ENDPOINT),
        black_box(CLIENT_ID),
        black_box(CLIENT_SECRET),
    )
    .scope(black_box(SCOPE))
    .build();
    match config {
        Ok(config) => {
            black_box(&config);
        }
        Err(e) => {
            log!(error, "invalid configuration: {}", e);
            panic!()
        }
    }
    parse_loop::parse_forever()
}
