//! alf's core with JSON parsing alone, on a Cortex-M4F: parse a token response with
//! `alf::response::parse_token_response` (alf's JSON scanner and its string
//! unescaping). No executor, no network, no time driver, no `Config`: the flash this binary
//! takes is what reading a token response costs by itself (the budget's "core with JSON
//! parsing alone"). `alf-config-and-parse` adds `Config::build`.

#![no_std]
#![no_main]

#[macro_use]
#[path = "../settings.rs"]
mod settings;
#[path = "../parse_loop.rs"]
mod parse_loop;

use cortex_m_rt::entry;

#[cfg(not(feature = "defmt"))]
use panic_halt as _;
#[cfg(feature = "defmt")]
use {defmt_rtt as _, panic_probe as _};

#[entry]
fn main() -> ! {
    parse_loop::parse_forever()
}
