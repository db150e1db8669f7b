//! Secrets are wiped before their memory goes back to the allocator.
//!
//! A global allocator scans every block it is asked to free for a marker (the secret or token
//! of the test that is running) and records each block that still holds it. Scanning in
//! `dealloc` is sound: the block is still ours until it is handed to `System`, and every block
//! is fully initialised (allocations are zeroed, and so is the tail a `realloc` adds), so
//! reading it as bytes reads initialised memory.
//!
//! Each test has its own marker, and the tests run one at a time (a mutex), so that one test's
//! frees never count for another. A control test proves that the detector does see a marker
//! left in a freed block.

// A `GlobalAlloc` implementation is `unsafe` by definition; this test file is one of the only
// places it is allowed (the libraries forbid `unsafe_code`).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};

use alf::testing::{Expect, MockClock, ScriptedTransport};
use alf::{ClientAuth, ClientSecret, Config};
use embassy_futures::block_on;

// ---- the detector -------------------------------------------------------------------------

const MAX_PATTERN: usize = 64;
const PATTERNS: usize = 2;
const MAX_HITS: usize = 64;

struct Scanning;

static ARMED: AtomicBool = AtomicBool::new(false);
static PATTERN: [[AtomicU8; MAX_PATTERN]; PATTERNS] =
    [const { [const { AtomicU8::new(0) }; MAX_PATTERN] }; PATTERNS];
static PATTERN_LEN: [AtomicUsize; PATTERNS] = [const { AtomicUsize::new(0) }; PATTERNS];
/// Freed blocks that held a marker.
static HITS: AtomicUsize = AtomicUsize::new(0);
/// The sizes of the first `MAX_HITS` of those blocks.
static HIT_SIZES: [AtomicUsize; MAX_HITS] = [const { AtomicUsize::new(0) }; MAX_HITS];

fn holds_a_marker(block: &[u8]) -> bool {
    (0..PATTERNS).any(|p| {
        let len = PATTERN_LEN[p].load(SeqCst);
        if len == 0 || block.len() < len {
            return false;
        }
        let mut pattern = [0u8; MAX_PATTERN];
        for (dst, src) in pattern.iter_mut().zip(&PATTERN[p][..len]) {
            *dst = src.load(SeqCst);
        }
        let pattern = &pattern[..len];
        block.windows(len).any(|w| w == pattern)
    })
}

// SAFETY: allocation is forwarded to `System` (zeroed, so that every byte of a block is
// initialised); `dealloc` reads the block, which is still valid and owned by the caller's
// allocation until it is passed on to `System.dealloc`.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() && new_size > layout.size() {
            // SAFETY: `new` is valid for `new_size` bytes; zero the part realloc left
            // uninitialised.
            unsafe {
                new.add(layout.size())
                    .write_bytes(0, new_size - layout.size())
            };
        }
        new
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(SeqCst) {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes, all initialised (see
            // above), and no one else uses it any more: it is being freed.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if holds_a_marker(block) {
                let n = HITS.fetch_add(1, SeqCst);
                if let Some(slot) = HIT_SIZES.get(n) {
                    slot.store(layout.size(), SeqCst);
                }
            }
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Scanning = Scanning;

/// One test at a time: the detector's markers and counts are global.
static SERIAL: Mutex<()> = Mutex::new(());

/// Watch for these markers (at most two) until the guard is dropped.
struct Watch {
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Watch {
    fn start(markers: &[&str]) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        ARMED.store(false, SeqCst);
        for (p, slot) in PATTERN.iter().enumerate() {
            let marker = markers.get(p).map_or(&b""[..], |m| m.as_bytes());
            assert!(marker.len() <= MAX_PATTERN);
            for (i, b) in marker.iter().enumerate() {
                slot[i].store(*b, SeqCst);
            }
            PATTERN_LEN[p].store(marker.len(), SeqCst);
        }
        HITS.store(0, SeqCst);
        ARMED.store(true, SeqCst);
        Self { _serial: serial }
    }

    /// Freed blocks that held a marker so far.
    fn hits(&self) -> usize {
        HITS.load(SeqCst)
    }

    /// How many of those blocks were `size` bytes long.
    fn hits_of_size(&self, size: usize) -> usize {
        HIT_SIZES
            .iter()
            .take(self.hits().min(MAX_HITS))
            .filter(|s| s.load(SeqCst) == size)
            .count()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        ARMED.store(false, SeqCst);
        for len in &PATTERN_LEN {
            len.store(0, SeqCst);
        }
    }
}

// ---- the control --------------------------------------------------------------------------

#[test]
fn the_detector_sees_a_marker_left_in_a_freed_block() {
    const MARKER: &str = "zm-control-Hq83JxVt0Lw2";
    let watch = Watch::start(&[MARKER]);
    let mut s = Box::new(heapless::String::<64>::new());
    s.push_str(MARKER).unwrap();
    std::hint::black_box(&s);
    drop(s);
    assert_eq!(
        watch.hits(),
        1,
        "a heapless::String is not wiped: the detector must see it"
    );
}

// ---- the secrets --------------------------------------------------------------------------

#[test]
fn a_boxed_client_secret_is_wiped_before_it_is_freed() {
    const MARKER: &str = "zm-secret-Kd72PqWs9Rb4";
    let watch = Watch::start(&[MARKER]);
    let s = Box::new(ClientSecret::try_from_str(MARKER).unwrap());
    assert_eq!(std::hint::black_box(&s).secret(), MARKER);
    drop(s);
    assert_eq!(watch.hits(), 0, "the secret was still in the freed block");
}

/// Base64 of `client:<secret>` (the Basic credentials), computed on the stack.
fn basic_credentials<'a>(secret: &str, out: &'a mut [u8; 128]) -> &'a str {
    use base64ct::Encoding;
    let mut plain = [0u8; 96];
    let n = "client:".len() + secret.len();
    plain[..7].copy_from_slice(b"client:");
    plain[7..n].copy_from_slice(secret.as_bytes());
    base64ct::Base64::encode(&plain[..n], out).unwrap()
}

#[test]
fn a_boxed_config_is_wiped_before_it_is_freed() {
    for (auth, marker) in [
        (ClientAuth::Basic, "zm-config-basic-Vn41Ty8Q"),
        (ClientAuth::Post, "zm-config-post-Me90Lz3Kc"),
    ] {
        let mut basic = [0u8; 128];
        let basic = basic_credentials(marker, &mut basic);
        let watch = Watch::start(&[marker, basic]);
        let config = Box::new(
            Config::builder("https://auth.example.com/token", "client", marker)
                .client_auth(auth)
                .build()
                .unwrap(),
        );
        std::hint::black_box(&config);
        drop(config);
        assert_eq!(
            watch.hits(),
            0,
            "{auth:?}: the secret or the credentials were still in the freed block"
        );
    }
}

// ---- the tokens ---------------------------------------------------------------------------

const TOKEN_URL: &str = "https://auth.example.com/token";
const API_URL: &str = "https://api.example.com/v1/orders/42";

#[test]
fn a_boxed_access_token_is_wiped_before_it_is_freed() {
    const MARKER: &str = "zm-token-Fw26Xc1Ny7Ga";
    let watch = Watch::start(&[MARKER]);
    let clock = MockClock::new();
    let mut transport = ScriptedTransport::<2>::new();
    transport.expect(Expect::post(TOKEN_URL).respond(
        200,
        br#"{"access_token":"zm-token-Fw26Xc1Ny7Ga","expires_in":3600}"#,
    ));
    let config = Config::builder(TOKEN_URL, "client", "secret")
        .build()
        .unwrap();
    let client: alf::Client<_, _, alf::NoStore, 256, 512> =
        alf::Client::new(config, transport, &clock);
    let token = Box::new(block_on(client.access_token()).unwrap());
    assert_eq!(token.secret(), MARKER);
    drop(token);
    assert_eq!(watch.hits(), 0, "the token was still in the freed block");
}

/// The core client in a box: it holds the token, and its receive buffer held the token
/// response. Neither may reach the allocator unwiped.
/// That includes the receive buffer (`rx` in `src/client.rs`), which held the token response
/// and the unescaped token: it is wiped after each response and on drop.
#[test]
fn a_boxed_core_client_with_a_token_is_wiped_before_it_is_freed() {
    const MARKER: &str = "zm-core-Ub58Rk2Hs6Dz";
    let watch = Watch::start(&[MARKER]);
    let clock = MockClock::new();
    let mut transport = ScriptedTransport::<2>::new();
    transport.expect(Expect::post(TOKEN_URL).respond(
        200,
        br#"{"access_token":"zm-core-Ub58Rk2Hs6Dz","token_type":"Bearer","expires_in":3600}"#,
    ));
    transport.expect(Expect::get(API_URL).bearer(MARKER).respond(200, b"{}"));
    let config = Config::builder(TOKEN_URL, "client", "secret")
        .build()
        .unwrap();
    let client: Box<alf::Client<_, _>> = Box::new(alf::Client::new(config, transport, &clock));
    let mut rx = [0u8; 64];
    let request = alf::Request::new(alf::Method::Get, API_URL);
    assert_eq!(
        block_on(client.send(&request, &mut rx)).unwrap().status,
        200
    );
    block_on(client.with_transport(|t| t.done()));
    drop(client);
    assert_eq!(watch.hits(), 0, "the token was still in the freed client");
}

// ---- alf-reqwest --------------------------------------------------------------------------

const REQWEST_MARKER: &str = "zm-reqwest-Pa47Jn0Cs5Ye";
const REQWEST_TOKEN_RESPONSE: &str = concat!(
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 82\r\n\r\n",
    r#"{"access_token":"zm-reqwest-Pa47Jn0Cs5Ye","token_type":"Bearer","expires_in":3600}"#,
);

/// A token endpoint on loopback that answers every request with the token response.
async fn token_endpoint() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut len = 0;
                loop {
                    let Ok(n) = stream.read(&mut buf[len..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    len += n;
                    // The token request is small: its head and body come together.
                    if buf[..len]
                        .windows(29)
                        .any(|w| w == b"grant_type=client_credentials")
                    {
                        len = 0;
                        let reply = REQWEST_TOKEN_RESPONSE.as_bytes();
                        if stream.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// alf-reqwest's own memory (the core client, in an `Arc`) is wiped before it is freed.
/// reqwest's and hyper's buffers are not alf's and keep copies (counted and printed, not
/// asserted; see SECURITY.md).
#[test]
fn an_alf_reqwest_client_with_a_token_is_wiped_before_it_is_freed() {
    let watch = Watch::start(&[REQWEST_MARKER]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let core_block = {
        // `Arc<T>` allocates its two counts and `T` in one block.
        let layout = std::alloc::Layout::new::<[usize; 2]>()
            .extend(std::alloc::Layout::new::<alf_reqwest::CoreClient>())
            .unwrap()
            .0
            .pad_to_align();
        layout.size()
    };
    rt.block_on(async {
        let addr = token_endpoint().await;
        let mut url = [0u8; 64];
        let url = {
            use std::io::Write;
            let mut w = &mut url[..];
            write!(w, "http://{addr}/token").unwrap();
            let n = 64 - w.len();
            std::str::from_utf8(&url[..n]).unwrap()
        };
        let config = Config::builder(url, "client", "secret").build().unwrap();
        let client = alf_reqwest::Client::new(config);
        let token = client.access_token().await.unwrap();
        assert_eq!(token.secret(), REQWEST_MARKER);
        drop(token);
        drop(client);
    });
    let in_core = watch.hits_of_size(core_block);
    drop(rt);
    eprintln!(
        "freed blocks holding the token: {} in all, {in_core} of the core client's size ({core_block} bytes)",
        watch.hits()
    );
    assert_eq!(in_core, 0, "the token was still in the freed core client");
}
