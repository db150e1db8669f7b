//! Concurrency tests of [`alf::Client`]: single-flight fetches, shared failures, concurrent
//! 401s, cancellation at every `.await` that matters, and real OS threads.
//!
//! Tasks run on `futures_util::future::join_all`, `futures_executor::LocalPool` and
//! `embassy_futures`; the scripted transport stays pending for a few polls so that the other
//! callers really arrive while a request is in flight.

use core::future::{Future, poll_fn};
use core::pin::pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Barrier, mpsc};
use std::thread;

use alf::testing::{Expect, MockClock, MockError, ScriptedTransport};
use alf::{
    Client, Clock, Config, Duration, Error, ErrorKind, Instant, Method, RefreshPolicy, Request,
    RetryPolicy, StateKind,
};
use embassy_futures::select::{Either, select};
use embedded_io::ErrorKind as IoKind;
use futures_executor::LocalPool;
use futures_util::future::join_all;
use futures_util::task::LocalSpawnExt;

const TOKEN_URL: &str = "https://auth.example.com/oauth2/token";
const API: &str = "https://api.example.com/v1/things";

const T1: &[u8] = br#"{"access_token":"t1","token_type":"Bearer","expires_in":100}"#;
const T2: &[u8] = br#"{"access_token":"t2","token_type":"Bearer","expires_in":100}"#;
const INVALID_CLIENT: &[u8] = br#"{"error":"invalid_client","error_description":"unknown client"}"#;

type Scripted = ScriptedTransport<32>;

fn config_with_retry(retry: RetryPolicy) -> Config {
    // Under tests/run.sh every log line of this test binary is captured (at TRACE) and checked
    // for the client secret.
    alf_test_hygiene::secret("s3cret");
    alf_test_hygiene::init();
    Config::builder(TOKEN_URL, "client", "s3cret")
        .refresh_policy(RefreshPolicy::DEFAULT.jitter(Duration::ZERO))
        .retry_policy(retry.jitter(Duration::ZERO))
        .build()
        .unwrap()
}

fn config() -> Config {
    config_with_retry(RetryPolicy::DEFAULT)
}

fn script(expects: &[Expect]) -> Scripted {
    let mut t = ScriptedTransport::new();
    for e in expects {
        t.expect(*e);
    }
    t
}

fn token(body: &'static [u8]) -> Expect {
    Expect::post(TOKEN_URL).respond(200, body)
}

fn sent<C: Clock>(c: &Client<Scripted, C>) -> usize {
    futures_executor::block_on(c.with_transport(|t| t.sent()))
}

fn done<C: Clock>(c: &Client<Scripted, C>) {
    futures_executor::block_on(c.with_transport(|t| t.done()));
}

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

/// Poll a future once, with a waker that does nothing.
fn poll_once<F: Future>(f: core::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// A clock that moves only when the test sets it: `sleep_until` stays pending until then.
struct StepClock {
    ms: AtomicU64,
}

impl StepClock {
    fn new() -> Self {
        Self {
            ms: AtomicU64::new(0),
        }
    }
    fn set(&self, t: Instant) {
        self.ms.store(t.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for StepClock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.ms.load(Ordering::SeqCst))
    }
    async fn sleep_until(&self, deadline: Instant) {
        poll_fn(|cx| {
            if self.now() >= deadline {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
    }
}

/// A scripted transport whose request count can be read while a request holds the client.
struct Counted {
    inner: Scripted,
    count: Rc<core::cell::Cell<usize>>,
}

impl Counted {
    fn new(expects: &[Expect]) -> (Self, Rc<core::cell::Cell<usize>>) {
        let count = Rc::new(core::cell::Cell::new(0));
        (
            Self {
                inner: script(expects),
                count: count.clone(),
            },
            count,
        )
    }
}

impl alf::Transport for Counted {
    type Error = MockError;
    async fn send<'b>(
        &mut self,
        request: &Request<'_>,
        rx: &'b mut [u8],
    ) -> Result<alf::Response<'b>, MockError> {
        self.count.set(self.count.get() + 1);
        self.inner.send(request, rx).await
    }
}

/// Run `f` on its own thread and fail if it does not finish within a few seconds (a client
/// that spins without yielding would otherwise hang the test forever).
fn within_seconds(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(5)) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The thread panicked: report its panic.
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("did not finish: the client spins or is stuck")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Single flight
// ---------------------------------------------------------------------------------------------

#[test]
fn fifty_callers_at_cold_start_share_one_fetch() {
    let clock = MockClock::new();
    let client: Client<_, _> = Client::new(config(), script(&[token(T1).pending(5)]), &clock);
    let results = futures_executor::block_on(join_all((0..50).map(|_| client.token())));
    let first = results[0].as_ref().unwrap();
    assert_eq!(first.token.secret(), "t1");
    for r in &results {
        let l = r.as_ref().unwrap();
        assert_eq!((l.token.secret(), l.generation), ("t1", first.generation));
    }
    assert_eq!(sent(&client), 1);
}

#[test]
fn fifty_spawned_tasks_at_expiry_share_one_fetch() {
    let client = Rc::new(Client::new(
        config(),
        script(&[token(T1), token(T2).pending(5)]),
        MockClock::new(),
    ));
    futures_executor::block_on(client.token()).unwrap();
    client.clock().set(secs(100));
    let tokens = Rc::new(RefCell::new(Vec::new()));
    let mut pool = LocalPool::new();
    for _ in 0..50 {
        let (client, tokens) = (client.clone(), tokens.clone());
        pool.spawner()
            .spawn_local(async move {
                let l = client.token().await.unwrap();
                tokens
                    .borrow_mut()
                    .push((l.token.secret().to_owned(), l.generation));
            })
            .unwrap();
    }
    pool.run();
    let tokens = tokens.borrow();
    assert_eq!(tokens.len(), 50);
    assert!(
        tokens.iter().all(|t| *t == tokens[0] && t.0 == "t2"),
        "{tokens:?}"
    );
    assert_eq!(sent(&client), 2);
}

#[test]
fn callers_during_a_refresh_get_the_old_token_at_once_and_one_fetch_runs() {
    let clock = MockClock::new();
    let client: Client<_, _> =
        Client::new(config(), script(&[token(T1), token(T2).pending(5)]), &clock);
    futures_executor::block_on(client.token()).unwrap();
    clock.set(secs(60));
    let results = futures_executor::block_on(join_all((0..50).map(|_| client.token())));
    let tokens: Vec<&str> = results
        .iter()
        .map(|r| r.as_ref().unwrap().token.secret())
        .collect();
    // The first caller claimed the refresh and waited for it; the others did not wait.
    assert_eq!(tokens[0], "t2");
    assert_eq!(tokens.iter().filter(|t| **t == "t1").count(), 49);
    assert_eq!(sent(&client), 2);
    assert_eq!(
        futures_executor::block_on(client.access_token())
            .unwrap()
            .secret(),
        "t2"
    );
    assert_eq!(sent(&client), 2);
}

#[test]
fn callers_waiting_through_retries_share_the_final_token() {
    let clock = MockClock::new();
    let client: Client<_, _> = Client::new(
        config(),
        script(&[
            Expect::post(TOKEN_URL).respond(503, b"").pending(3),
            token(T1).pending(3),
        ]),
        &clock,
    );
    let results = futures_executor::block_on(join_all((0..20).map(|_| client.token())));
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap().token.secret() == "t1")
    );
    assert_eq!(sent(&client), 2);
    assert_eq!(clock.sleeps(), 1);
}

// ---------------------------------------------------------------------------------------------
// Shared failure
// ---------------------------------------------------------------------------------------------

#[test]
fn twenty_callers_share_one_failed_fetch_and_credentials_cool_down_before_the_next_fetch() {
    let clock = MockClock::new();
    let client: Client<_, _> = Client::new(
        config(),
        script(&[
            Expect::post(TOKEN_URL)
                .respond(400, INVALID_CLIENT)
                .pending(5),
            token(T1),
        ]),
        &clock,
    );
    let results = futures_executor::block_on(join_all((0..20).map(|_| client.token())));
    let first = results[0].as_ref().unwrap_err();
    match first {
        Error::TokenEndpoint(e) => assert_eq!(
            (e.status, e.code),
            (400, Some(alf::OAuthErrorCode::InvalidClient))
        ),
        other => panic!("{other:?}"),
    }
    for r in &results {
        assert_eq!(r.as_ref().unwrap_err(), first);
    }
    assert_eq!(sent(&client), 1);
    // Rejected credentials: for the cooldown (backoff_max, 30 s) later callers get the same
    // error without a new token request, so a loop cannot hammer the token endpoint.
    for _ in 0..5 {
        assert_eq!(
            futures_executor::block_on(client.access_token()).unwrap_err(),
            *first
        );
    }
    clock.advance(Duration::from_secs(29));
    assert!(futures_executor::block_on(client.access_token()).is_err());
    assert_eq!(sent(&client), 1);
    // After it, a caller fetches again.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        futures_executor::block_on(client.access_token())
            .unwrap()
            .secret(),
        "t1"
    );
    assert_eq!(sent(&client), 2);
}

#[test]
fn callers_sharing_a_failed_transport_get_its_kind() {
    let clock = MockClock::new();
    let client: Client<_, _> = Client::new(
        config_with_retry(RetryPolicy::NONE),
        script(&[Expect::post(TOKEN_URL)
            .fail(IoKind::ConnectionReset)
            .pending(5)]),
        &clock,
    );
    let results = futures_executor::block_on(join_all((0..10).map(|_| client.token())));
    assert_eq!(
        results[0].as_ref().unwrap_err(),
        &Error::Transport(MockError(IoKind::ConnectionReset))
    );
    for r in &results[1..] {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e, &Error::SharedTransport(IoKind::ConnectionReset));
        assert_eq!(e.kind(), ErrorKind::Retryable);
    }
    assert_eq!(sent(&client), 1);
}

// ---------------------------------------------------------------------------------------------
// Concurrent 401s
// ---------------------------------------------------------------------------------------------

#[test]
fn many_concurrent_sends_after_a_401_cause_one_fetch_and_send_the_rejected_token_once() {
    let clock = MockClock::new();
    let mut expects = vec![token(T1)];
    expects.push(Expect::get(API).bearer("t1").respond(401, b"").pending(2));
    expects.push(token(T2).pending(2));
    expects.extend([Expect::get(API).bearer("t2").respond(200, b"ok").pending(1); 10]);
    let client: Client<_, _> = Client::new(config(), script(&expects), &clock);
    futures_executor::block_on(client.token()).unwrap();

    let request = Request::new(Method::Get, API);
    let mut buffers = [[0u8; 16]; 10];
    let results = futures_executor::block_on(join_all(
        buffers.iter_mut().map(|rx| client.send(&request, rx)),
    ));
    for r in &results {
        let r = r.as_ref().unwrap();
        assert_eq!((r.status, r.body), (200, &b"ok"[..]));
    }
    // The token is read when the transport is free, so the requests queued behind the
    // rejected one never send the rejected token: 1 + 1 rejected + 1 new token + 10 (the
    // first request's replay and the nine others), in the scripted order.
    assert_eq!(sent(&client), 13);
    done(&client);
}

#[test]
fn many_concurrent_rejections_of_one_lease_cause_one_fetch() {
    let clock = MockClock::new();
    let client: Client<_, _> = Client::new(config(), script(&[token(T1), token(T2)]), &clock);
    let leases = futures_executor::block_on(join_all((0..10).map(|_| client.token())));
    let leases: Vec<_> = leases.into_iter().map(Result::unwrap).collect();
    assert!(leases.iter().all(|l| l.token.secret() == "t1"));
    // Ten callers (alf-reqwest's, for one) had their requests rejected with the same token.
    for l in &leases {
        client.invalidate(l.generation);
    }
    let again = futures_executor::block_on(join_all((0..10).map(|_| client.token())));
    for l in again {
        assert_eq!(l.unwrap().token.secret(), "t2");
    }
    for l in &leases {
        client.invalidate(l.generation);
    }
    assert_eq!(
        futures_executor::block_on(client.access_token())
            .unwrap()
            .secret(),
        "t2"
    );
    assert_eq!(sent(&client), 2);
    done(&client);
}

// ---------------------------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------------------------

#[test]
fn caller_dropped_mid_fetch_does_not_leave_the_client_stuck() {
    let clock = MockClock::new();
    let client: Client<_, _> = Client::new(
        config(),
        script(&[Expect::post(TOKEN_URL).hang(), token(T1)]),
        &clock,
    );
    {
        let mut fut = pin!(client.token());
        assert!(poll_once(fut.as_mut()).is_pending());
        assert_eq!(client.state_kind(), StateKind::Fetching);
    }
    assert_eq!(client.state_kind(), StateKind::Fetching);
    let l = futures_executor::block_on(client.token()).unwrap();
    assert_eq!(l.token.secret(), "t1");
    assert_eq!(client.state_kind(), StateKind::Valid);
    assert_eq!(sent(&client), 2);
}

#[test]
fn caller_dropped_mid_fetch_hands_over_to_a_waiting_caller() {
    let clock = MockClock::new();
    let client: Client<_, _> = Client::new(
        config(),
        script(&[Expect::post(TOKEN_URL).hang(), token(T1).pending(2)]),
        &clock,
    );
    let mut fetcher = Box::pin(client.token());
    assert!(poll_once(fetcher.as_mut()).is_pending());
    let mut waiter = pin!(client.token());
    assert!(
        poll_once(waiter.as_mut()).is_pending(),
        "queued behind the fetch"
    );
    drop(fetcher);
    let l = futures_executor::block_on(waiter).unwrap();
    assert_eq!(l.token.secret(), "t1");
    assert_eq!(sent(&client), 2);
}

#[test]
fn caller_dropped_by_select_does_not_leave_the_client_stuck() {
    let clock = MockClock::new();
    let client: Client<_, _> = Client::new(
        config(),
        script(&[Expect::post(TOKEN_URL).hang(), token(T1)]),
        &clock,
    );
    let first = embassy_futures::block_on(select(client.token(), core::future::ready(())));
    assert!(
        matches!(first, Either::Second(())),
        "the hanging fetch cannot complete"
    );
    assert_eq!(
        embassy_futures::block_on(client.access_token())
            .unwrap()
            .secret(),
        "t1"
    );
    assert_eq!(sent(&client), 2);
}

#[test]
fn caller_dropped_mid_backoff_does_not_leave_the_client_stuck() {
    let clock = MockClock::new();
    let client: Client<_, _> = Client::new(
        config(),
        script(&[Expect::post(TOKEN_URL).respond(503, b""), token(T1)]),
        &clock,
    );
    {
        let mut fut = pin!(client.token());
        // The first poll sends the request and starts the backoff sleep.
        assert!(poll_once(fut.as_mut()).is_pending());
        assert_eq!(clock.sleeps(), 1);
    }
    assert_eq!(sent(&client), 1);
    assert_eq!(client.state_kind(), StateKind::Fetching);
    assert_eq!(
        futures_executor::block_on(client.access_token())
            .unwrap()
            .secret(),
        "t1"
    );
    assert_eq!(client.state_kind(), StateKind::Valid);
    assert_eq!(sent(&client), 2);
}

#[test]
fn caller_after_a_dropped_backoff_still_waits_for_retry_after() {
    // The server asked for 5 s. Dropping the caller that was waiting must not let the next
    // caller send at once.
    let clock = StepClock::new();
    let (transport, count) = Counted::new(&[
        Expect::post(TOKEN_URL).respond_with_headers(503, b"", &[("Retry-After", "5")]),
        token(T1),
    ]);
    let client: Client<_, _> = Client::new(config(), transport, &clock);
    {
        let mut fut = pin!(client.token());
        assert!(poll_once(fut.as_mut()).is_pending());
        assert_eq!(count.get(), 1);
    }
    clock.set(secs(2));
    let mut next = pin!(client.token());
    assert!(poll_once(next.as_mut()).is_pending());
    assert_eq!(count.get(), 1, "sent before the Retry-After delay was over");
    clock.set(secs(5));
    let l = futures_executor::block_on(next).unwrap();
    assert_eq!(l.token.secret(), "t1");
    assert_eq!(count.get(), 2);
}

#[test]
fn refresh_dropped_mid_request_serves_the_stale_token_then_the_next_caller_refreshes() {
    let clock = MockClock::new();
    let client: Client<_, _> = Client::new(
        config(),
        script(&[token(T1), Expect::post(TOKEN_URL).hang(), token(T2)]),
        &clock,
    );
    let first = futures_executor::block_on(client.token()).unwrap();
    clock.set(secs(60));
    {
        let mut refresh = pin!(client.token());
        assert!(poll_once(refresh.as_mut()).is_pending());
        assert_eq!(client.state_kind(), StateKind::Fetching);
        // While the refresh is pending, others get the old token at once.
        let other = futures_executor::block_on(client.token()).unwrap();
        assert_eq!(
            (other.token.secret(), other.generation),
            ("t1", first.generation)
        );
    }
    // The refresh was dropped: the next caller refreshes instead of living on the stale token.
    assert_eq!(
        futures_executor::block_on(client.access_token())
            .unwrap()
            .secret(),
        "t2"
    );
    assert_eq!(sent(&client), 3);
    assert_eq!(client.state_kind(), StateKind::Valid);
    done(&client);
}

#[test]
fn keep_fresh_does_not_spin_while_another_caller_refreshes() {
    within_seconds(|| {
        let clock = StepClock::new();
        let client: Client<_, _> = Client::new(
            config(),
            script(&[token(T1), token(T2).pending(20)]),
            &clock,
        );
        futures_executor::block_on(client.token()).unwrap();
        clock.set(secs(60));
        let refresh = async {
            // This caller claims the refresh; keep_fresh must wait for it, not busy-loop.
            let l = client.token().await.unwrap();
            assert_eq!(l.token.secret(), "t2");
        };
        match embassy_futures::block_on(select(refresh, client.keep_fresh())) {
            Either::First(()) => {}
            Either::Second(()) => panic!("keep_fresh returned"),
        }
        assert_eq!(sent(&client), 2);
    });
}

// ---------------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------------

#[test]
fn client_is_send_and_sync_and_eight_threads_share_one_fetch() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let client = Arc::new(Client::<_, _>::new(
        config(),
        script(&[token(T1).pending(50)]),
        MockClock::new(),
    ));
    assert_send_sync(&client);
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (client, barrier) = (client.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let l = futures_executor::block_on(client.token()).unwrap();
                (l.token.secret().to_owned(), l.generation)
            })
        })
        .collect();
    let tokens: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        tokens.iter().all(|t| *t == tokens[0] && t.0 == "t1"),
        "{tokens:?}"
    );
    assert_eq!(sent(&client), 1);
}

#[test]
fn threads_at_expiry_share_one_fetch() {
    let client = Arc::new(Client::<_, _>::new(
        config(),
        script(&[token(T1), token(T2).pending(50)]),
        MockClock::new(),
    ));
    futures_executor::block_on(client.token()).unwrap();
    client.clock().set(secs(100));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (client, barrier) = (client.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                futures_executor::block_on(client.access_token())
                    .unwrap()
                    .secret()
                    .to_owned()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), "t2");
    }
    assert_eq!(sent(&client), 2);
}

#[test]
fn with_a_resource_transport_send_does_not_wait_behind_a_refresh() {
    let clock = MockClock::new();
    let token_transport = script(&[token(T1), Expect::post(TOKEN_URL).hang()]);
    let resource_transport = script(&[Expect::get(API).bearer("t1").respond(200, b"ok")]);
    let c =
        Client::new(config(), token_transport, &clock).with_resource_transport(resource_transport);
    assert_eq!(
        futures_executor::block_on(c.access_token())
            .unwrap()
            .secret(),
        "t1"
    );
    // refresh_at = 50 s for a 100 s token (margin capped at half the lifetime).
    clock.set(secs(60));
    let mut rx = [0u8; 64];
    futures_executor::block_on(async {
        let refresh = pin!(c.access_token());
        let request = Request::new(Method::Get, API);
        let send = pin!(c.send(&request, &mut rx));
        match select(refresh, send).await {
            Either::First(_) => panic!("the hanging refresh completed"),
            Either::Second(r) => assert_eq!(r.unwrap().status, 200),
        }
    });
    assert_eq!(sent(&c), 2, "one token request, one refresh in flight");
    let resource =
        futures_executor::block_on(c.with_resource_transport_ref(|t| (t.sent(), t.remaining())));
    assert_eq!(resource, Some((1, 0)));
}

#[test]
fn with_one_transport_send_waits_for_the_refresh_to_end() {
    let clock = MockClock::new();
    let c = Client::new(
        config(),
        script(&[
            token(T1),
            Expect::post(TOKEN_URL).pending(20).respond(200, T2),
            Expect::get(API).bearer("t2").respond(200, b"ok"),
        ]),
        &clock,
    );
    assert_eq!(
        futures_executor::block_on(c.access_token())
            .unwrap()
            .secret(),
        "t1"
    );
    clock.set(secs(60));
    let mut rx = [0u8; 64];
    let (refreshed, response) = futures_executor::block_on(async {
        let request = Request::new(Method::Get, API);
        embassy_futures::join::join(c.access_token(), c.send(&request, &mut rx)).await
    });
    assert_eq!(refreshed.unwrap().secret(), "t2");
    // The one transport was busy with the refresh: the script's order (token, refresh,
    // resource) proves it went out after the refresh, and with the new token, since the token
    // is read when the transport is free.
    assert_eq!(response.unwrap().status, 200);
    done(&c);
}
