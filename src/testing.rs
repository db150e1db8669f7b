//! Test doubles for code that uses alf: a scripted transport and a manual clock.
//!
//! Both are `no_std` and allocation-free, so the same tests run on a host and as firmware. Use
//! them to test your own code against alf's real token logic without a network:
//!
//! ```
//! use alf::testing::{Expect, MockClock, ScriptedTransport};
//! use alf::{Client, Config, Method, Request};
//!
//! let config = Config::builder("https://auth.example.com/token", "id", "secret").build()?;
//! let clock = MockClock::new();
//! let mut transport = ScriptedTransport::<4>::new();
//! transport.expect(
//!     Expect::post("https://auth.example.com/token")
//!         .authorization("Basic aWQ6c2VjcmV0")
//!         .body("grant_type=client_credentials")
//!         .respond(200, br#"{"access_token":"t1","expires_in":3600}"#),
//! );
//! transport.expect(Expect::get("https://api.example.com/v1").bearer("t1").respond(200, b"hello"));
//!
//! let client: Client<_, _> = Client::new(config, transport, &clock);
//! let mut rx = [0u8; 256];
//! let response = embassy_futures::block_on(
//!     client.send(&Request::new(Method::Get, "https://api.example.com/v1"), &mut rx),
//! )?;
//! assert_eq!(response.body, b"hello");
//! embassy_futures::block_on(client.with_transport(|t| t.done()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::future::poll_fn;
use core::task::Poll;

use heapless::Deque;
use maitake_sync::blocking::Mutex;

use crate::clock::{Clock, UnixTime};
use crate::http::{Method, Request, Response};
use crate::time::{Duration, Instant};
use crate::transport::Transport;

/// A clock that moves only when told to, shareable by reference (`&MockClock` is a
/// [`Clock`]).
///
/// Two modes:
/// - [`MockClock::new`] (auto-advance): [`sleep_until`](Clock::sleep_until) moves the clock to
///   the deadline at once (virtual time, like tokio's paused clock) and yields once, so backoff
///   in tests takes no real time and [`slept`](Self::slept) tells how long alf would have
///   waited. Use it for request/response tests.
/// - [`MockClock::manual`]: `sleep_until` waits until the test moves the clock past the
///   deadline with [`advance`](Self::advance) or [`set`](Self::set). Use it for background
///   loops such as [`Client::keep_fresh`](crate::Client::keep_fresh), which would otherwise
///   race virtual time ahead.
#[derive(Debug)]
pub struct MockClock {
    inner: Mutex<ClockState>,
    manual: bool,
    advanced: maitake_sync::WaitQueue,
}

#[derive(Debug, Clone, Copy)]
struct ClockState {
    now: Instant,
    /// The wall time at `Instant::ZERO`, in milliseconds, and whether readings have whole
    /// seconds (`true`) or milliseconds.
    unix_ms_at_zero: Option<(u64, bool)>,
    slept: Duration,
    sleeps: u32,
}

impl Default for MockClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MockClock {
    /// An auto-advancing clock at `Instant::ZERO`, with no wall time.
    pub fn new() -> Self {
        Self::with_mode(false)
    }
    /// A clock at `Instant::ZERO` whose sleeps wait for the test to move it.
    pub fn manual() -> Self {
        Self::with_mode(true)
    }
    fn with_mode(manual: bool) -> Self {
        Self {
            inner: Mutex::new(ClockState {
                now: Instant::ZERO,
                unix_ms_at_zero: None,
                slept: Duration::ZERO,
                sleeps: 0,
            }),
            manual,
            advanced: maitake_sync::WaitQueue::new(),
        }
    }
    /// Move the clock forward (waking manual-mode sleepers whose deadline has passed).
    pub fn advance(&self, d: Duration) {
        self.inner.with_lock(|s| s.now = s.now + d);
        self.advanced.wake_all();
    }
    /// Move the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.advance(Duration::from_millis(ms));
    }
    /// Set the time (it may go backwards: use that to test clock faults).
    pub fn set(&self, now: Instant) {
        self.inner.with_lock(|s| s.now = now);
        self.advanced.wake_all();
    }
    /// Give the clock a wall time, `unix` seconds now, read like a clock that counts whole
    /// seconds (an RTC): [`unix_time`](Clock::unix_time) is
    /// [`UnixTime::from_secs`](crate::UnixTime::from_secs) of the current second. The wall time
    /// then moves with the clock, millisecond by millisecond. `None` removes it.
    pub fn set_unix_time(&self, unix: Option<u64>) {
        self.set_wall(unix.map(|u| u.saturating_mul(1000)), true);
    }
    /// Give the clock a wall time, `unix_ms` milliseconds now, read with millisecond
    /// resolution ([`UnixTime::from_millis`](crate::UnixTime::from_millis)), like a system
    /// clock. `None` removes it.
    pub fn set_unix_time_ms(&self, unix_ms: Option<u64>) {
        self.set_wall(unix_ms, false);
    }
    fn set_wall(&self, unix_ms: Option<u64>, whole_seconds: bool) {
        self.inner.with_lock(|s| {
            s.unix_ms_at_zero =
                unix_ms.map(|u| (u.saturating_sub(s.now.as_millis()), whole_seconds))
        });
    }
    /// Total time spent in `sleep_until`.
    pub fn slept(&self) -> Duration {
        self.inner.with_lock(|s| s.slept)
    }
    /// Number of `sleep_until` calls.
    pub fn sleeps(&self) -> u32 {
        self.inner.with_lock(|s| s.sleeps)
    }
}

impl Clock for MockClock {
    fn now(&self) -> Instant {
        self.inner.with_lock(|s| s.now)
    }
    async fn sleep_until(&self, deadline: Instant) {
        if self.manual {
            self.inner.with_lock(|s| s.sleeps += 1);
            // The queue is never closed, so this only returns once the deadline has passed.
            let _ = self.advanced.wait_for(|| self.now() >= deadline).await;
            return;
        }
        self.inner.with_lock(|s| {
            s.sleeps += 1;
            if deadline > s.now {
                s.slept = s.slept.saturating_add(deadline - s.now);
                s.now = deadline;
            }
        });
        embassy_futures::yield_now().await;
    }
    fn unix_time(&self) -> Option<UnixTime> {
        self.inner.with_lock(|s| {
            let (at_zero, whole_seconds) = s.unix_ms_at_zero?;
            let ms = at_zero.saturating_add(s.now.as_millis());
            Some(if whole_seconds {
                UnixTime::from_secs(ms / 1000)
            } else {
                UnixTime::from_millis(ms)
            })
        })
    }
}

/// The error a [`ScriptedTransport`] returns: just a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MockError(pub embedded_io::ErrorKind);

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mock transport error: {:?}", self.0)
    }
}
impl core::error::Error for MockError {}
impl embedded_io::Error for MockError {
    fn kind(&self) -> embedded_io::ErrorKind {
        self.0
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Any,
    None,
    Exactly(&'static str),
    Bearer(&'static str),
}

#[derive(Clone, Copy)]
enum Reply {
    Respond {
        status: u16,
        body: &'static [u8],
        headers: &'static [(&'static str, &'static str)],
    },
    Fail(embedded_io::ErrorKind),
    Hang,
}

/// One expected request and its canned reply. Build with [`Expect::post`], [`Expect::get`],
/// [`Expect::request`] or [`Expect::any`], then finish with [`respond`](Self::respond),
/// [`fail`](Self::fail) or [`hang`](Self::hang). `Debug` does not show the expected
/// `Authorization` value or bodies.
#[derive(Clone, Copy)]
pub struct Expect {
    method: Option<Method>,
    url: Option<&'static str>,
    auth: Auth,
    body: Option<&'static [u8]>,
    reply: Reply,
    pending_polls: u32,
}

impl fmt::Debug for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.reply {
            Reply::Respond { status, .. } => Some(status),
            _ => None,
        };
        f.debug_struct("Expect")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("checks_authorization", &!matches!(self.auth, Auth::Any))
            .field("checks_body", &self.body.is_some())
            .field("reply_status", &status)
            .field("pending_polls", &self.pending_polls)
            .finish()
    }
}

impl Expect {
    /// Any request.
    pub const fn any() -> Self {
        Self {
            method: None,
            url: None,
            auth: Auth::Any,
            body: None,
            reply: Reply::Respond {
                status: 200,
                body: b"",
                headers: &[],
            },
            pending_polls: 0,
        }
    }
    /// A request with this method and URL.
    pub const fn request(method: Method, url: &'static str) -> Self {
        let mut e = Self::any();
        e.method = Some(method);
        e.url = Some(url);
        e
    }
    /// A `POST` to `url` (a token request).
    pub const fn post(url: &'static str) -> Self {
        Self::request(Method::Post, url)
    }
    /// A `GET` of `url`.
    pub const fn get(url: &'static str) -> Self {
        Self::request(Method::Get, url)
    }
    /// Expect exactly this `Authorization` value.
    pub const fn authorization(mut self, value: &'static str) -> Self {
        self.auth = Auth::Exactly(value);
        self
    }
    /// Expect `Authorization: Bearer <token>`.
    pub const fn bearer(mut self, token: &'static str) -> Self {
        self.auth = Auth::Bearer(token);
        self
    }
    /// Expect no `Authorization` header.
    pub const fn no_authorization(mut self) -> Self {
        self.auth = Auth::None;
        self
    }
    /// Expect exactly this body.
    pub const fn body(mut self, body: &'static str) -> Self {
        self.body = Some(body.as_bytes());
        self
    }
    /// Reply with this status and body.
    pub const fn respond(self, status: u16, body: &'static [u8]) -> Self {
        self.respond_with_headers(status, body, &[])
    }
    /// Reply with this status, body and headers.
    pub const fn respond_with_headers(
        mut self,
        status: u16,
        body: &'static [u8],
        headers: &'static [(&'static str, &'static str)],
    ) -> Self {
        self.reply = Reply::Respond {
            status,
            body,
            headers,
        };
        self
    }
    /// Fail with an error of this kind.
    pub const fn fail(mut self, kind: embedded_io::ErrorKind) -> Self {
        self.reply = Reply::Fail(kind);
        self
    }
    /// Never answer (to test cancellation: drop the future).
    pub const fn hang(mut self) -> Self {
        self.reply = Reply::Hang;
        self
    }
    /// Stay pending for `polls` polls before replying, so that other tasks run meanwhile.
    pub const fn pending(mut self, polls: u32) -> Self {
        self.pending_polls = polls;
        self
    }
}

/// A transport that checks each request against a queue of [`Expect`]ations and replies as
/// scripted. It holds up to `Q` expectations.
///
/// A request that does not match its expectation, or that comes when none is left, panics
/// (the test fails) with a message naming the request number and the difference. Messages
/// never include `Authorization` values or bodies, which may hold secrets. Call
/// [`done`](Self::done) at the end of a test to check that every expectation was used.
#[derive(Debug)]
pub struct ScriptedTransport<const Q: usize = 16> {
    queue: Deque<Expect, Q>,
    sent: usize,
}

impl<const Q: usize> Default for ScriptedTransport<Q> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const Q: usize> ScriptedTransport<Q> {
    /// An empty script.
    pub const fn new() -> Self {
        Self {
            queue: Deque::new(),
            sent: 0,
        }
    }
    /// Add an expectation.
    ///
    /// # Panics
    /// When more than `Q` are queued.
    pub fn expect(&mut self, e: Expect) -> &mut Self {
        assert!(
            self.queue.push_back(e).is_ok(),
            "ScriptedTransport: more than {Q} expectations"
        );
        self
    }
    /// Requests received so far.
    pub fn sent(&self) -> usize {
        self.sent
    }
    /// Expectations not used yet.
    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
    /// Check that every expectation was used.
    ///
    /// # Panics
    /// When some are left.
    pub fn done(&self) {
        assert!(
            self.queue.is_empty(),
            "ScriptedTransport: {} expected request(s) never came",
            self.queue.len()
        );
    }

    fn check(&self, n: usize, e: &Expect, r: &Request<'_>) {
        if let Some(m) = e.method {
            assert!(
                m == r.method,
                "request #{n}: expected {m:?}, got {:?} {}",
                r.method,
                r.url
            );
        }
        if let Some(u) = e.url {
            assert!(u == r.url, "request #{n}: expected URL {u}, got {}", r.url);
        }
        let auth_ok = match e.auth {
            Auth::Any => true,
            Auth::None => r.authorization.is_none(),
            Auth::Exactly(v) => r.authorization == Some(v),
            Auth::Bearer(t) => r.authorization.and_then(|a| a.strip_prefix("Bearer ")) == Some(t),
        };
        assert!(
            auth_ok,
            "request #{n} to {}: the Authorization header differs from the expected one",
            r.url
        );
        if let Some(b) = e.body {
            assert!(
                b == r.body,
                "request #{n} to {}: the body differs ({} bytes, expected {})",
                r.url,
                r.body.len(),
                b.len()
            );
        }
    }
}

impl<const Q: usize> Transport for ScriptedTransport<Q> {
    type Error = MockError;

    async fn send<'b>(
        &mut self,
        request: &Request<'_>,
        rx: &'b mut [u8],
    ) -> Result<Response<'b>, MockError> {
        self.sent += 1;
        let n = self.sent;
        let Some(e) = self.queue.pop_front() else {
            panic!(
                "request #{n} ({:?} {}) was not expected",
                request.method, request.url
            );
        };
        self.check(n, &e, request);
        let mut pending = e.pending_polls;
        let hang = matches!(e.reply, Reply::Hang);
        poll_fn(|cx| {
            if pending == 0 && !hang {
                Poll::Ready(())
            } else {
                pending = pending.saturating_sub(1);
                if !hang {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        })
        .await;
        match e.reply {
            Reply::Respond {
                status,
                body,
                headers,
            } => {
                let Some(dst) = rx.get_mut(..body.len()) else {
                    return Err(MockError(embedded_io::ErrorKind::OutOfMemory));
                };
                dst.copy_from_slice(body);
                let mut response = Response::new(status, dst);
                for (name, value) in headers {
                    response.observe_header(name, value.as_bytes());
                }
                Ok(response)
            }
            Reply::Fail(kind) => Err(MockError(kind)),
            Reply::Hang => unreachable!("a hanging reply never completes"),
        }
    }
}
