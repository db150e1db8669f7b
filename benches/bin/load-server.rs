//! The load binaries' loopback server on its own, for the Python comparison:
//!
//! ```text
//! load-server --serve [--port 0] [--lifetime 1] [--token-delay-ms 0] [--unauthorized-ppm 0]
//! ```
//! Prints `port=<port>` once it listens, then serves until killed. See
//! `alf_bench::load::server` for the endpoints (`/token`, `/api`, `/stats`, `/admin`).

use alf_bench::load::{Args, serve_if_asked};

fn main() {
    let args = Args::from_env();
    serve_if_asked(&args);
    eprintln!(
        "usage: load-server --serve [--port 0] [--lifetime 1] [--token-delay-ms 0] \
         [--unauthorized-ppm 0]"
    );
    std::process::exit(2);
}
