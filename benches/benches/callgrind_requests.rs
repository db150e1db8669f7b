//! A fixed amount of work, for counting instructions under `valgrind --tool=callgrind`
//! (`benches/callgrind.sh` runs it). Not a criterion bench: `harness = false`, and it takes
//! arguments:
//!
//! ```text
//! callgrind_requests MODE COUNT
//!   alf          COUNT GETs through alf_reqwest::Client over the same reqwest client as `reqwest`
//!   alf-default  COUNT GETs through alf_reqwest::Client::new (30 s timeout, same-origin redirects)
//!   reqwest      COUNT GETs through plain reqwest with a fixed Authorization header
//!   reqwest-timeout  the same, with the 30 s timeout and redirect policy of `alf-default`
//!   token        COUNT alf::Client::token() calls with a valid cached token (alf::testing)
//!   generation   COUNT alf::Client::generation() calls with a valid cached token (no copy)
//!   fetch        COUNT token fetches through alf::Client (ScriptedTransport + MockClock)
//!   parse        COUNT alf::response::parse_token_response calls
//!   serve        (internal) the loopback server, in a child process so that valgrind does not
//!                count its instructions
//! ```
//!
//! Each mode does a little warm-up first (a connection, a token); the script runs each mode at
//! two counts and divides the difference in instructions by the difference in counts, so
//! start-up, warm-up and exit cancel out.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use alf::testing::{Expect, MockClock, ScriptedTransport};
use alf::{Client, Method, Request, Response};

const TOKEN_URL: &str = "https://auth.example.com/token";
const TOKEN_RESPONSE: &[u8] = br#"{"access_token":"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl","token_type":"Bearer","expires_in":3600,"scope":"orders:read"}"#;
const WARMUP: usize = 20;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mode = args.next().unwrap_or_else(|| "help".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    match mode.as_str() {
        "serve" => serve(),
        "alf" | "alf-default" | "reqwest" | "reqwest-timeout" => requests(&mode, count),
        "token" => token(count),
        "generation" => generation(count),
        "fetch" => fetch(count),
        "parse" => parse(count),
        _ => {
            eprintln!(
                "usage: callgrind_requests alf|alf-default|reqwest|reqwest-timeout|token|generation|fetch|parse COUNT"
            );
            // `cargo bench` runs every bench target without arguments: nothing to do then.
        }
    }
}

/// The child process: serve until stdin closes.
fn serve() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr"));
        common::serve(listener).await;
    });
}

fn requests(mode: &str, count: usize) {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("server process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("server address");
    let server = common::Server {
        addr: line.trim().parse().expect("address"),
    };
    let url = server.resource_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut bytes = 0;
    rt.block_on(async {
        match mode {
            "reqwest" | "reqwest-timeout" => {
                let client = if mode == "reqwest" {
                    common::reqwest_client()
                } else {
                    common::reqwest_client_like_alf_defaults()
                };
                let auth = common::bearer_header();
                for _ in 0..WARMUP + count {
                    bytes += common::raw_get(&client, &url, &auth).await;
                }
            }
            _ => {
                let client = if mode == "alf" {
                    common::alf_same_reqwest(&server)
                } else {
                    common::alf_default(&server)
                };
                for _ in 0..WARMUP + count {
                    bytes += common::alf_get(&client, &url).await;
                }
            }
        }
    });
    drop(child.stdin.take());
    let _ = child.wait();
    println!("{mode}: {} requests, {bytes} body bytes", WARMUP + count);
}

fn warm_core(clock: &MockClock) -> Client<ScriptedTransport<4>, &MockClock> {
    let config = alf::Config::builder(TOKEN_URL, "bench-client", "bench-secret")
        .build()
        .expect("config");
    let mut transport = ScriptedTransport::<4>::new();
    transport.expect(Expect::post(TOKEN_URL).respond(200, TOKEN_RESPONSE));
    let client = Client::new(config, transport, clock);
    embassy_futures::block_on(client.token()).expect("first token");
    client
}

fn token(count: usize) {
    let clock = MockClock::new();
    let client = warm_core(&clock);
    let mut len = 0;
    for _ in 0..WARMUP + count {
        let lease = embassy_futures::block_on(client.token()).expect("token");
        len += std::hint::black_box(lease.token.header_value()).len();
    }
    println!("token: {} calls, {len} bytes", WARMUP + count);
}

fn generation(count: usize) {
    let clock = MockClock::new();
    let client = warm_core(&clock);
    let mut sum = 0u64;
    for _ in 0..WARMUP + count {
        let generation = embassy_futures::block_on(client.generation()).expect("generation");
        sum += u64::from(std::hint::black_box(generation));
    }
    println!("generation: {} calls, sum {sum}", WARMUP + count);
}

fn fetch(count: usize) {
    let clock = MockClock::new();
    let client = warm_core(&clock);
    let mut generation = 1; // the warm-up token's
    for _ in 0..WARMUP + count {
        // Reject the current token, so that the next call fetches a new one.
        client.invalidate(generation);
        embassy_futures::block_on(client.with_transport(|t| {
            t.expect(Expect::post(TOKEN_URL).respond(200, TOKEN_RESPONSE));
        }));
        let lease = embassy_futures::block_on(client.token()).expect("token");
        generation = std::hint::black_box(lease.generation);
    }
    assert_eq!(
        generation as usize,
        WARMUP + count + 1,
        "every call fetched"
    );
    println!("fetch: {} fetches", WARMUP + count);
}

fn parse(count: usize) {
    let response = Response::new(200, TOKEN_RESPONSE);
    let mut scratch = [0u8; 2048];
    let mut ok = 0;
    for _ in 0..WARMUP + count {
        let parsed = alf::response::parse_token_response::<2048>(
            std::hint::black_box(&response),
            &mut scratch,
            "bench-secret",
            None,
        );
        ok += usize::from(std::hint::black_box(parsed).is_ok());
    }
    assert_eq!(ok, WARMUP + count);
    // Keep `Request`/`Method` in use for readers comparing with the `fetch` mode.
    let _ = Request::new(Method::Get, TOKEN_URL);
    println!("parse: {ok} parses");
}
