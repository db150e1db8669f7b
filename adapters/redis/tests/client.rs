//! `alf::Client` with a `RedisStore`, against a real `redis-server`.

mod support;

use std::time::Duration;

use alf::testing::{Expect, MockClock, ScriptedTransport};
use alf::{Client, Config, StorePolicy, StoredToken, TokenStore};
use alf_redis::RedisStore;
use redis::AsyncCommands;
use support::host::{HttpTransport, TokenServer, TokioClock};
use support::{RedisServer, free_port, unix_now};

const EP: &str = "https://auth.example.com/token";
const TOKEN_A: &[u8] = br#"{"access_token":"token-a","token_type":"Bearer","expires_in":3600}"#;
const TOKEN_C: &[u8] = br#"{"access_token":"token-c","token_type":"Bearer","expires_in":3600}"#;

fn config(client_id: &str) -> Config {
    Config::builder(EP, client_id, "secret")
        .scope("orders:read")
        .build()
        .unwrap()
}

fn clock() -> MockClock {
    let clock = MockClock::new();
    clock.set_unix_time(Some(unix_now()));
    clock
}

fn transport(replies: &[&'static [u8]]) -> ScriptedTransport<4> {
    let mut t = ScriptedTransport::new();
    for body in replies {
        t.expect(Expect::post(EP).respond(200, body));
    }
    t
}

#[tokio::test]
async fn a_second_client_takes_the_token_from_redis_without_a_request() {
    let server = RedisServer::start();
    let clock = clock();

    let a: Client<_, _, _> = Client::with_store(
        config("fleet"),
        transport(&[TOKEN_A]),
        &clock,
        RedisStore::new(&server.url()).unwrap(),
    );
    assert_eq!(a.token().await.unwrap().token.secret(), "token-a");
    a.with_transport(|t| t.done()).await;

    // It is in Redis, expiring with the token.
    let key = config("fleet").store_key();
    let pttl: i64 = server.raw().await.pttl(key.as_str()).await.unwrap();
    assert!(pttl > 3_590_000 && pttl <= 3_600_000, "PTTL {pttl}");
    let lock_exists: bool = server
        .raw()
        .await
        .exists(format!("{key}:lock"))
        .await
        .unwrap();
    assert!(!lock_exists, "the fetch lock was not released");

    // Client B: same configuration, no token request expected.
    let b: Client<_, _, _> = Client::with_store(
        config("fleet"),
        transport(&[]),
        &clock,
        RedisStore::new(&server.url()).unwrap(),
    );
    assert_eq!(b.token().await.unwrap().token.secret(), "token-a");
    assert_eq!(b.with_transport(|t| t.sent()).await, 0);

    // Client C: another client id on the same Redis fetches its own token.
    let c: Client<_, _, _> = Client::with_store(
        config("other"),
        transport(&[TOKEN_C]),
        &clock,
        RedisStore::new(&server.url()).unwrap(),
    );
    assert_eq!(c.token().await.unwrap().token.secret(), "token-c");
    c.with_transport(|t| t.done()).await;
    // ...and does not disturb A's.
    let d: Client<_, _, _> = Client::with_store(
        config("fleet"),
        transport(&[]),
        &clock,
        RedisStore::new(&server.url()).unwrap(),
    );
    assert_eq!(d.token().await.unwrap().token.secret(), "token-a");
}

#[tokio::test]
async fn forget_token_clears_redis() {
    let server = RedisServer::start();
    let clock = clock();
    let a: Client<_, _, _> = Client::with_store(
        config("fleet"),
        transport(&[TOKEN_A]),
        &clock,
        RedisStore::new(&server.url()).unwrap(),
    );
    a.token().await.unwrap();
    a.forget_token().await;
    let exists: bool = server
        .raw()
        .await
        .exists(config("fleet").store_key().as_str())
        .await
        .unwrap();
    assert!(!exists);

    let b: Client<_, _, _> = Client::with_store(
        config("fleet"),
        transport(&[TOKEN_C]),
        &clock,
        RedisStore::new(&server.url()).unwrap(),
    );
    assert_eq!(b.token().await.unwrap().token.secret(), "token-c");
    b.with_transport(|t| t.done()).await;
}

#[tokio::test]
async fn garbage_in_redis_means_a_fetch() {
    let server = RedisServer::start();
    let clock = clock();
    let key = config("fleet").store_key();
    let () = server
        .raw()
        .await
        .set(key.as_str(), "v1\nBearer\nnot-a-number\ntok")
        .await
        .unwrap();
    let a: Client<_, _, _> = Client::with_store(
        config("fleet"),
        transport(&[TOKEN_A]),
        &clock,
        RedisStore::new(&server.url()).unwrap(),
    );
    assert_eq!(a.token().await.unwrap().token.secret(), "token-a");
    a.with_transport(|t| t.done()).await;
    // And the entry is repaired for the others.
    let raw: String = server.raw().await.get(key.as_str()).await.unwrap();
    assert!(raw.starts_with("v2\nBearer\n") && raw.ends_with("\ntoken-a"));
}

#[tokio::test]
async fn redis_down_never_fails_the_request() {
    let clock = clock();
    let store = RedisStore::new(&format!("redis://127.0.0.1:{}/", free_port())).unwrap();
    let a: Client<_, _, _> =
        Client::with_store(config("fleet"), transport(&[TOKEN_A]), &clock, store);
    let started = std::time::Instant::now();
    assert_eq!(a.token().await.unwrap().token.secret(), "token-a");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    a.with_transport(|t| t.done()).await;
}

/// Another process holds the fetch lock and saves its token a little later: the client waits
/// for it (on a real clock) instead of asking the token endpoint.
#[tokio::test]
async fn waits_for_the_lock_holders_token() {
    let server = RedisServer::start();
    let key = config("fleet").store_key();
    let mut holder = RedisStore::new(&server.url()).unwrap();
    assert!(
        holder
            .try_lock(&key, alf::Duration::from_secs(10))
            .await
            .unwrap()
    );
    let holder_key = key.clone();
    let holder_task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let token = StoredToken {
            access_token: "from-the-holder",
            expires_at_unix_ms: (unix_now() + 3600) * 1000,
        };
        holder.save(&holder_key, token).await.unwrap();
        holder.unlock(&holder_key).await.unwrap();
    });

    let policy = StorePolicy::DEFAULT
        .wait(alf::Duration::from_secs(3))
        .poll_interval(alf::Duration::from_millis(50));
    let config = Config::builder(EP, "fleet", "secret")
        .scope("orders:read")
        .store_policy(policy)
        .build()
        .unwrap();
    let b: Client<_, _, _> = Client::with_store(
        config,
        transport(&[]),
        TokioClock::new(),
        RedisStore::new(&server.url()).unwrap(),
    );
    let started = std::time::Instant::now();
    assert_eq!(b.token().await.unwrap().token.secret(), "from-the-holder");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(b.with_transport(|t| t.sent()).await, 0);
    holder_task.await.unwrap();
}

/// Several clients (one store each, as separate processes would have) asking at the same
/// time, over real HTTP: one token request.
#[tokio::test]
async fn concurrent_clients_share_one_fetch() {
    let server = RedisServer::start();
    let endpoint = TokenServer::start(Duration::from_millis(200)).await;
    let config = Config::builder(&endpoint.url, "fleet", "secret")
        .scope("orders:read")
        .build()
        .unwrap();
    let clients: Vec<Client<_, _, _>> = (0..5)
        .map(|_| {
            Client::with_store(
                config.clone(),
                HttpTransport::default(),
                TokioClock::new(),
                RedisStore::new(&server.url()).unwrap(),
            )
        })
        .collect();
    let tokens: Vec<String> = futures_join_all(
        clients
            .iter()
            .map(|c| async move { c.token().await.unwrap().token.secret().to_owned() }),
    )
    .await;
    assert_eq!(endpoint.requests(), 1, "tokens: {tokens:?}");
    assert!(tokens.iter().all(|t| t == "token-1"), "{tokens:?}");
}

/// Poll the futures together on this task (they are not `Send`, so no `tokio::spawn`).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futures.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[test]
fn store_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let mut s = RedisStore::new("redis://127.0.0.1:1/").unwrap();
    let mut buf = [0u8; 8];
    assert_send(&s.load("k", &mut buf));
    assert_send(&s.save(
        "k",
        StoredToken {
            access_token: "t",
            expires_at_unix_ms: 1,
        },
    ));
    assert_send(&s.clear("k"));
    assert_send(&s.try_lock("k", alf::Duration::from_secs(1)));
    assert_send(&s.unlock("k"));
    assert_send(&s);
}
