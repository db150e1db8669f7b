//! The token hot path (issue 6, item 2): what a request pays for its token when a valid one is
//! cached.
//!
//! - `core/token` and `core/access_token`: `alf::Client` over `alf::testing` (ScriptedTransport,
//!   MockClock), default token capacity (2048 bytes); `core/token_n512`: the same with a
//!   512-byte token capacity (a `Lease` copies the token and wipes its whole buffer on drop, so
//!   the capacity shows in the cost);
//! - `core/generation`: `generation()`, the generation of the cached token without a copy;
//! - `core/send`: a resource request through `send` (the script is refilled each time, a push
//!   onto a heapless queue);
//! - `reqwest/header_value`: the header made from scratch: `token()` on alf-reqwest's core
//!   (tokio clock) and a sensitive `HeaderValue` made from the token;
//!   `reqwest/token_and_cached_header`: what `send` pays now that it keeps the header value
//!   of the current token generation (the core's `token()` and a clone of the value);
//!   `reqwest/generation_and_cached_header`: what `send` pays now that it asks the core only
//!   for the generation (`generation()`, no copy of the token) and clones the cached value;
//!   `reqwest/fixed_header_clone`: what plain reqwest pays with a prebuilt header (a clone).

mod common;

use alf::testing::{Expect, MockClock, ScriptedTransport};
use alf::{Client, Method, NoStore, Request};
use criterion::{Criterion, criterion_group, criterion_main};
use embassy_futures::block_on;
use std::hint::black_box;

const TOKEN_URL: &str = "https://auth.example.com/token";
const API_URL: &str = "https://api.example.com/v1/orders/42";
const TOKEN_RESPONSE: &[u8] = br#"{"access_token":"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl","token_type":"Bearer","expires_in":3600}"#;

fn warm<const N: usize, const RX: usize>(
    clock: &MockClock,
) -> Client<ScriptedTransport<4>, &MockClock, NoStore, N, RX> {
    let config = alf::Config::builder(TOKEN_URL, "bench-client", "bench-secret")
        .build()
        .expect("config");
    let mut transport = ScriptedTransport::<4>::new();
    transport.expect(Expect::post(TOKEN_URL).respond(200, TOKEN_RESPONSE));
    let client = Client::new(config, transport, clock);
    block_on(client.token()).expect("first token");
    client
}

fn core(c: &mut Criterion) {
    let clock = MockClock::new();
    let client = warm::<2048, 4096>(&clock);
    let small = warm::<512, 1536>(&clock);
    let mut g = c.benchmark_group("core");
    g.bench_function("token", |b| {
        b.iter(|| {
            let lease = block_on(client.token()).expect("token");
            black_box(lease.token.header_value().len())
        })
    });
    g.bench_function("access_token", |b| {
        b.iter(|| {
            let token = block_on(client.access_token()).expect("token");
            black_box(token.header_value().len())
        })
    });
    g.bench_function("generation", |b| {
        b.iter(|| black_box(block_on(client.generation()).expect("generation")))
    });
    g.bench_function("token_n512", |b| {
        b.iter(|| {
            let lease = block_on(small.token()).expect("token");
            black_box(lease.token.header_value().len())
        })
    });
    let request = Request::new(Method::Get, API_URL);
    let mut rx = [0u8; 256];
    g.bench_function("send", |b| {
        b.iter(|| {
            block_on(client.with_transport(|t| {
                t.expect(Expect::get(API_URL).respond(200, b"{}"));
            }));
            let response = block_on(client.send(&request, &mut rx)).expect("send");
            black_box(response.status)
        })
    });
    g.finish();
}

fn reqwest(c: &mut Criterion) {
    let server = common::Server::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = common::alf_same_reqwest(&server);
    rt.block_on(client.access_token()).expect("first token");
    let _inside = rt.enter();
    let mut g = c.benchmark_group("reqwest");
    g.bench_function("header_value", |b| {
        b.iter(|| {
            let lease = block_on(client.core().token()).expect("token");
            let mut value = reqwest::header::HeaderValue::from_str(lease.token.header_value())
                .expect("header value");
            value.set_sensitive(true);
            black_box(value)
        })
    });
    // What alf-reqwest's `send` pays per request since it caches the header value by token
    // generation: the core's token() (a Lease copy, wiped on drop) and a reference-count clone.
    let cached = common::bearer_header();
    g.bench_function("token_and_cached_header", |b| {
        b.iter(|| {
            let lease = block_on(client.core().token()).expect("token");
            black_box(lease.generation);
            black_box(cached.clone())
        })
    });
    // What `send` pays now: the generation only (no copy of the token) and the cached value.
    g.bench_function("generation_and_cached_header", |b| {
        b.iter(|| {
            black_box(block_on(client.core().generation()).expect("generation"));
            black_box(cached.clone())
        })
    });
    let fixed = common::bearer_header();
    g.bench_function("fixed_header_clone", |b| {
        b.iter(|| black_box(fixed.clone()))
    });
    g.finish();
}

criterion_group!(benches, core, reqwest);
criterion_main!(benches);
