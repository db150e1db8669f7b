//! The session client with a token store: clients and processes sharing one Redis (or
//! Memcached) reuse one token. The stores talk to real `redis-server` / `memcached` processes
//! started on free loopback ports (see `support`); the token endpoint and the API are the
//! loopback fixture of `common`.
//!
//! The fleet tests run this test binary again as child processes: each child runs only
//! `fleet_child_process`, which does nothing unless the parent set its environment.

mod common;
mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use alf::{StoredToken, TokenStore};
use alf_memcached::MemcachedStore;
use alf_redis::RedisStore;
use alf_reqwest::Client;
use alf_test_hygiene::unix_now_ms;
use common::Fixture;
use support::{Server, free_port};

fn redis_client(fx: &Fixture, redis: &Server) -> Client<RedisStore> {
    Client::builder(fx.config().build().unwrap())
        .store(RedisStore::new(&redis.redis_url()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_sharing_redis_make_one_token_request() {
    let redis = Server::redis();
    let fx = Fixture::start(3600).await;
    let a = redis_client(&fx, &redis);
    let b = redis_client(&fx, &redis);
    assert_eq!(a.get(fx.url("/api/a")).send().await.unwrap().status(), 200);
    assert_eq!(b.get(fx.url("/api/b")).send().await.unwrap().status(), 200);
    // A third client that starts later reads the token that is already there.
    let c = redis_client(&fx, &redis);
    assert_eq!(c.get(fx.url("/api/c")).send().await.unwrap().status(), 200);
    assert_eq!(fx.state.token_requests(), 1);
    assert_eq!(fx.state.api_tokens(), ["tok-1", "tok-1", "tok-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_starting_together_share_one_fetch_through_the_redis_lock() {
    let redis = Server::redis();
    let fx = Fixture::start(3600).await;
    // A slow token endpoint: the second client finds the first one's lock and waits for its
    // token instead of fetching.
    fx.state.token_delay_ms.store(300, SeqCst);
    let a = redis_client(&fx, &redis);
    let b = redis_client(&fx, &redis);
    let (ra, rb) = tokio::join!(
        a.get(fx.url("/api/a")).send(),
        b.get(fx.url("/api/b")).send()
    );
    assert_eq!(ra.unwrap().status(), 200);
    assert_eq!(rb.unwrap().status(), 200);
    assert_eq!(fx.state.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_sharing_memcached_make_one_token_request() {
    let memcached = Server::memcached();
    let fx = Fixture::start(3600).await;
    let client = || {
        Client::builder(fx.config().build().unwrap())
            .store(MemcachedStore::new(memcached.addr()))
            .build()
            .unwrap()
    };
    let (a, b) = (client(), client());
    assert_eq!(a.get(fx.url("/api/a")).send().await.unwrap().status(), 200);
    assert_eq!(b.get(fx.url("/api/b")).send().await.unwrap().status(), 200);
    assert_eq!(fx.state.token_requests(), 1);
    assert_eq!(fx.state.api_tokens(), ["tok-1", "tok-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_does_not_fail_requests() {
    let fx = Fixture::start(3600).await;
    // Nothing listens on this port.
    let dead = format!("redis://127.0.0.1:{}/", free_port());
    let client = || {
        Client::builder(fx.config().build().unwrap())
            .store(
                RedisStore::new(&dead)
                    .unwrap()
                    .with_timeout(Duration::from_millis(100)),
            )
            .build()
            .unwrap()
    };
    let (a, b) = (client(), client());
    for _ in 0..3 {
        assert_eq!(a.get(fx.url("/api/a")).send().await.unwrap().status(), 200);
    }
    assert_eq!(
        fx.state.token_requests(),
        1,
        "fetched directly, then reused"
    );
    // The other client cannot get the token through the store: it fetches its own.
    assert_eq!(b.get(fx.url("/api/b")).send().await.unwrap().status(), 200);
    assert_eq!(fx.state.token_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memcached_that_is_down_does_not_fail_requests() {
    let fx = Fixture::start(3600).await;
    let client = Client::builder(fx.config().build().unwrap())
        .store(
            MemcachedStore::new(format!("127.0.0.1:{}", free_port()))
                .with_timeout(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    assert_eq!(
        client.get(fx.url("/api/a")).send().await.unwrap().status(),
        200
    );
    assert_eq!(fx.state.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_is_replayed_with_a_new_token_not_the_stored_one() {
    let redis = Server::redis();
    let fx = Fixture::start(3600).await;
    let a = redis_client(&fx, &redis);
    let b = redis_client(&fx, &redis);
    assert_eq!(a.get(fx.url("/api/a")).send().await.unwrap().status(), 200);
    fx.state.revoke_next.store(true, SeqCst);
    // b loads tok-1 from Redis, the API rejects it, b fetches tok-2 (not tok-1 again) and
    // saves it for everyone.
    assert_eq!(b.get(fx.url("/api/b")).send().await.unwrap().status(), 200);
    assert_eq!(fx.state.token_requests(), 2);
    let c = redis_client(&fx, &redis);
    assert_eq!(c.get(fx.url("/api/c")).send().await.unwrap().status(), 200);
    assert_eq!(fx.state.api_tokens(), ["tok-1", "tok-1", "tok-2", "tok-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_futures_with_a_redis_store_can_be_spawned() {
    fn assert_send<T: Send + 'static>(t: T) -> T {
        t
    }
    let redis = Server::redis();
    let fx = Fixture::start(3600).await;
    let client: Client<RedisStore> = redis_client(&fx, &redis);
    let fut = assert_send(client.get(fx.url("/api/spawned")).send());
    let r = tokio::spawn(fut).await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let c = client.clone();
    let token = tokio::spawn(async move { c.access_token().await.map(|t| t.secret().len()) });
    assert_eq!(token.await.unwrap().unwrap(), "tok-1".len());
    // The same for Memcached.
    let memcached = Server::memcached();
    let client = Client::builder(fx.config().build().unwrap())
        .store(MemcachedStore::new(memcached.addr()))
        .build()
        .unwrap();
    let fut = assert_send(client.post(fx.url("/api/spawned")).body("x").send());
    assert_eq!(tokio::spawn(fut).await.unwrap().unwrap().status(), 200);
}

/// A store in this process that counts its operations and says when it is dropped, to watch
/// the refresh thread of a client with a store.
#[derive(Clone, Default)]
struct Watched {
    inner: Arc<WatchedInner>,
}

#[derive(Default)]
struct WatchedInner {
    token: std::sync::Mutex<Option<(String, String, u64)>>,
    saves: AtomicUsize,
    dropped: AtomicBool,
}

/// The handle a test keeps; the store itself goes into the client.
struct WatchedStore(Watched);

impl Drop for WatchedStore {
    fn drop(&mut self) {
        self.0.inner.dropped.store(true, SeqCst);
    }
}

impl TokenStore for WatchedStore {
    type Error = core::convert::Infallible;

    async fn load<'b>(
        &mut self,
        key: &str,
        buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error> {
        let token = self.0.inner.token.lock().unwrap().clone();
        let Some((k, t, expires_at_unix_ms)) = token else {
            return Ok(None);
        };
        if k != key || t.len() > buf.len() {
            return Ok(None);
        }
        buf[..t.len()].copy_from_slice(t.as_bytes());
        Ok(Some(StoredToken {
            access_token: core::str::from_utf8(&buf[..t.len()]).unwrap(),
            expires_at_unix_ms,
        }))
    }

    async fn save(&mut self, key: &str, token: StoredToken<'_>) -> Result<(), Self::Error> {
        *self.0.inner.token.lock().unwrap() = Some((
            key.to_owned(),
            token.access_token.to_owned(),
            token.expires_at_unix_ms,
        ));
        self.0.inner.saves.fetch_add(1, SeqCst);
        Ok(())
    }

    async fn clear(&mut self, key: &str) -> Result<(), Self::Error> {
        let mut token = self.0.inner.token.lock().unwrap();
        if token.as_ref().is_some_and(|(k, _, _)| k == key) {
            *token = None;
        }
        Ok(())
    }
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proactive_refresh_with_a_store_runs_and_stops_with_the_last_clone() {
    let fx = Fixture::start(1).await;
    let watched = Watched::default();
    let client = Client::builder(fx.config().build().unwrap())
        .store(WatchedStore(watched.clone()))
        .proactive_refresh(true)
        .build()
        .unwrap();
    let clone = client.clone();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fx.state.token_requests(), 1, "fetched at start");
    // Refreshes every ~0.5 s without any request, and saves each token in the store.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let n = fx.state.token_requests();
    assert!((2..=4).contains(&n), "{n} token requests");
    assert_eq!(watched.inner.saves.load(SeqCst), n);
    assert_eq!(
        clone.get(fx.url("/api/a")).send().await.unwrap().status(),
        200
    );
    drop(client);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        fx.state.token_requests() > n,
        "one clone left: still refreshing"
    );
    assert!(!watched.inner.dropped.load(SeqCst));
    drop(clone);
    // The refresh thread held the last reference to the core: it has ended once the store is
    // dropped.
    wait_for("the refresh thread to end", || {
        watched.inner.dropped.load(SeqCst)
    })
    .await;
    let after_drop = fx.state.token_requests();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(fx.state.token_requests(), after_drop, "stopped");
    assert_eq!(fx.state.expired_seen.load(SeqCst), 0);
}

#[tokio::test]
async fn proactive_refresh_with_a_store_works_on_a_current_thread_runtime() {
    let fx = Fixture::start(1).await;
    let watched = Watched::default();
    let client = Client::builder(fx.config().build().unwrap())
        .store(WatchedStore(watched.clone()))
        .proactive_refresh(true)
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        fx.state.token_requests() >= 2,
        "refreshed in the background"
    );
    assert_eq!(
        client.get(fx.url("/api/a")).send().await.unwrap().status(),
        200
    );
    drop(client);
    wait_for("the refresh thread to end", || {
        watched.inner.dropped.load(SeqCst)
    })
    .await;
}

/// Panics on threads named `alf-refresh`, counted by a panic hook installed once.
fn refresh_thread_panics() -> &'static AtomicUsize {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("alf-refresh") {
                PANICS.fetch_add(1, SeqCst);
            }
            previous(info);
        }));
    });
    &PANICS
}

#[test]
fn the_refresh_thread_ends_quietly_when_the_runtime_shuts_down_first() {
    let panics = refresh_thread_panics();
    let watched = Watched::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let fx = Fixture::start(1).await;
        let client = Client::builder(fx.config().build().unwrap())
            .store(WatchedStore(watched.clone()))
            .proactive_refresh(true)
            .build()
            .unwrap();
        // The refresh thread sleeps on the runtime's timer until the refresh is due.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(fx.state.token_requests(), 1);
        client
    });
    // The client outlives its runtime.
    drop(rt);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        !watched.inner.dropped.load(SeqCst),
        "the client still holds it"
    );
    drop(client);
    assert!(
        watched.inner.dropped.load(SeqCst),
        "the refresh thread had already let go of the client"
    );
    assert_eq!(panics.load(SeqCst), 0, "the refresh thread panicked");
}

const FLEET: usize = 4;
const MARK: &str = "ALF-REQWEST-FLEET";

/// Run `FLEET` copies of this binary as `fleet_child_process` against one token server (slow,
/// so that they all need a token while the first one fetches); return the number of token
/// requests and what each child printed.
fn run_fleet(redis_url: Option<&str>) -> (usize, Vec<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let fx = Fixture::start(3600).await;
            fx.state.token_delay_ms.store(300, SeqCst);
            tx.send((fx.url(""), Arc::clone(&fx.state))).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let (base_url, state) = rx.recv().unwrap();
    // Everyone starts at the same moment, once all processes are up.
    let start_at = unix_now_ms() + 1500;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..FLEET)
        .map(|_| {
            let mut command = Command::new(&exe);
            command
                .args(["fleet_child_process", "--exact", "--nocapture"])
                .args(["--test-threads", "1"])
                .env("ALF_REQWEST_FLEET_BASE_URL", &base_url)
                .env("ALF_REQWEST_FLEET_START_AT_MS", start_at.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            match redis_url {
                Some(url) => command.env("ALF_REQWEST_FLEET_REDIS", url),
                None => command.env_remove("ALF_REQWEST_FLEET_REDIS"),
            };
            command.spawn().unwrap()
        })
        .collect();
    let mut lines = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split_once(MARK).map(|(_, rest)| rest.trim().to_owned()))
            .unwrap_or_else(|| panic!("no result in {stdout}"));
        lines.push(line);
    }
    (state.token_requests(), lines)
}

#[test]
fn a_fleet_of_processes_sharing_redis_makes_one_token_request() {
    let redis = Server::redis();
    let (requests, lines) = run_fleet(Some(&redis.redis_url()));
    assert_eq!(
        requests, 1,
        "{FLEET} processes made {requests} token requests: {lines:?}"
    );
    assert!(lines.iter().all(|l| l == "status=200"), "{lines:?}");
}

#[test]
fn a_fleet_of_processes_without_a_store_makes_one_token_request_each() {
    let (requests, lines) = run_fleet(None);
    assert_eq!(requests, FLEET, "{lines:?}");
    assert!(lines.iter().all(|l| l == "status=200"), "{lines:?}");
}

/// One member of a fleet; does nothing when run on its own.
#[test]
fn fleet_child_process() {
    let Ok(base_url) = std::env::var("ALF_REQWEST_FLEET_BASE_URL") else {
        return;
    };
    let start_at: u64 = std::env::var("ALF_REQWEST_FLEET_START_AT_MS")
        .unwrap()
        .parse()
        .unwrap();
    let redis = std::env::var("ALF_REQWEST_FLEET_REDIS").ok();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let endpoint = format!("{base_url}/token");
        let config = alf::Config::builder(&endpoint, "client", "secret")
            .build()
            .unwrap();
        let builder = Client::builder(config);
        let wait = Duration::from_millis(start_at.saturating_sub(unix_now_ms()));
        let response = match redis {
            Some(url) => {
                let client = builder
                    .store(RedisStore::new(&url).unwrap())
                    .build()
                    .unwrap();
                tokio::time::sleep(wait).await;
                client.get(format!("{base_url}/api/fleet")).send().await
            }
            None => {
                let client = builder.build().unwrap();
                tokio::time::sleep(wait).await;
                client.get(format!("{base_url}/api/fleet")).send().await
            }
        };
        println!("\n{MARK} status={}", response.unwrap().status().as_u16());
    });
}
