//! The core's hot path never allocates: with a valid token cached, `token()`/`access_token()`,
//! the `Authorization` value and `send()` of a resource request run without a single heap
//! allocation (the core has no allocator to call; this proves nothing slipped in through a
//! dependency or a `std`-only path).
//!
//! A counting global allocator counts the allocations made by the thread that is armed, so
//! the test harness's own threads do not disturb the count.

// A `GlobalAlloc` implementation is `unsafe` by definition; this test file is the only place
// it is allowed (the libraries forbid `unsafe_code`).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use alf::testing::{Expect, MockClock, ScriptedTransport};
use alf::{Client, Config, Method, Request};
use embassy_futures::block_on;

struct Counting;

thread_local! {
    // `const`: no lazy initialisation and no destructor, so using them never allocates. Per
    // thread, so that tests running in parallel do not count each other's allocations.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    if ARMED.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

const TOKEN_URL: &str = "https://auth.example.com/token";
const API_URL: &str = "https://api.example.com/v1/orders/42";
const CALLS: usize = 1000;

fn warm(clock: &MockClock) -> Client<ScriptedTransport<4>, &MockClock> {
    let config = Config::builder(TOKEN_URL, "client", "secret")
        .scope("orders:read")
        .build()
        .unwrap();
    let mut transport = ScriptedTransport::<4>::new();
    transport.expect(Expect::post(TOKEN_URL).respond(
        200,
        br#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}"#,
    ));
    let client = Client::new(config, transport, clock);
    block_on(client.token()).unwrap();
    client
}

#[test]
fn the_detector_counts_allocations() {
    // Control: the counter sees an allocation when there is one.
    let n = allocations_in(|| {
        std::hint::black_box(Box::new(42u64));
    });
    assert_eq!(n, 1);
}

#[test]
fn a_valid_token_and_its_header_value_cost_no_allocation() {
    let clock = MockClock::new();
    let client = warm(&clock);
    let mut bytes = 0;
    let n = allocations_in(|| {
        for _ in 0..CALLS {
            let token = block_on(client.access_token()).unwrap();
            bytes += std::hint::black_box(token.header_value()).len();
            let lease = block_on(client.token()).unwrap();
            bytes += std::hint::black_box(lease.token.header_value()).len();
            clock.advance_ms(1); // time moves, the token stays fresh
        }
    });
    assert_eq!(bytes, CALLS * 2 * "Bearer tok-1".len());
    assert_eq!(n, 0, "{n} allocations in {CALLS} hot-path token calls");
    // Still the first token: every call was served from the cache.
    assert_eq!(block_on(client.token()).unwrap().generation, 1);
}

#[test]
fn sending_a_resource_request_costs_no_allocation() {
    let clock = MockClock::new();
    let client = warm(&clock);
    let request = Request::new(Method::Get, API_URL).headers(&[("accept", "application/json")]);
    let mut rx = [0u8; 256];
    let mut ok = 0;
    let n = allocations_in(|| {
        for _ in 0..CALLS {
            // Refill the script (a heapless queue: no allocation either).
            block_on(client.with_transport(|t| {
                t.expect(Expect::get(API_URL).bearer("tok-1").respond(200, b"{}"));
            }));
            let response = block_on(client.send(&request, &mut rx)).unwrap();
            ok += usize::from(response.status == 200 && response.body == b"{}");
        }
    });
    assert_eq!(ok, CALLS);
    assert_eq!(n, 0, "{n} allocations in {CALLS} sends");
    block_on(client.with_transport(|t| {
        assert_eq!(t.sent(), CALLS + 1);
        t.done();
    }));
}
