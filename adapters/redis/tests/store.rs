//! `RedisStore` against a real `redis-server`.

mod support;

use std::time::{Duration, Instant};

use alf::{Config, StoredToken, TokenStore};
use alf_redis::{RedisStore, RedisStoreError};
use redis::AsyncCommands;
use support::{RedisServer, free_port, unix_now_ms};

const KEY: &str = "alf:00112233445566778899aabbccddeeff";

fn store(server: &RedisServer) -> RedisStore {
    RedisStore::new(&server.url()).unwrap()
}

async fn load_owned(
    store: &mut RedisStore,
    key: &str,
) -> Result<Option<(String, u64)>, RedisStoreError> {
    let mut buf = [0u8; 256];
    Ok(store
        .load(key, &mut buf)
        .await?
        .map(|t| (t.access_token.to_owned(), t.expires_at_unix_ms)))
}

fn token(access_token: &str, expires_at_unix_ms: u64) -> StoredToken<'_> {
    StoredToken {
        access_token,
        expires_at_unix_ms,
    }
}

#[tokio::test]
async fn save_load_clear_round_trip() {
    let server = RedisServer::start();
    let mut s = store(&server);
    assert_eq!(load_owned(&mut s, KEY).await.unwrap(), None);

    let exp = unix_now_ms() + 3600 * 1000;
    s.save(KEY, token("eyJhbGciOi.payload.sig-_~+/=", exp))
        .await
        .unwrap();
    assert_eq!(
        load_owned(&mut s, KEY).await.unwrap(),
        Some(("eyJhbGciOi.payload.sig-_~+/=".into(), exp))
    );

    // Another instance (another process, in real life) sees it too.
    let mut other = store(&server);
    assert_eq!(
        load_owned(&mut other, KEY).await.unwrap(),
        Some(("eyJhbGciOi.payload.sig-_~+/=".into(), exp))
    );

    // Saving again replaces it.
    s.save(KEY, token("second", exp + 1)).await.unwrap();
    assert_eq!(
        load_owned(&mut other, KEY).await.unwrap(),
        Some(("second".into(), exp + 1))
    );

    // The wire format is the documented one.
    let raw: Vec<u8> = server.raw().await.get(KEY).await.unwrap();
    assert_eq!(raw, format!("v2\nBearer\n{}\nsecond", exp + 1).into_bytes());

    other.clear(KEY).await.unwrap();
    assert_eq!(load_owned(&mut s, KEY).await.unwrap(), None);
    // Clearing what is not there is fine.
    s.clear(KEY).await.unwrap();
}

#[tokio::test]
async fn token_larger_than_the_buffer_is_none() {
    let server = RedisServer::start();
    let mut s = store(&server);
    s.save(KEY, token(&"x".repeat(300), unix_now_ms() + 60 * 1000))
        .await
        .unwrap();
    let mut small = [0u8; 299];
    assert!(s.load(KEY, &mut small).await.unwrap().is_none());
    let mut exact = [0u8; 300];
    assert_eq!(
        s.load(KEY, &mut exact)
            .await
            .unwrap()
            .unwrap()
            .access_token
            .len(),
        300
    );
}

#[tokio::test]
async fn redis_expires_the_entry_with_the_token() {
    let server = RedisServer::start();
    let mut s = store(&server);
    let mut raw = server.raw().await;

    let lifetime_ms = 100_000;
    s.save(KEY, token("t", unix_now_ms() + lifetime_ms))
        .await
        .unwrap();
    let pttl: i64 = raw.pttl(KEY).await.unwrap();
    assert!(
        pttl > 0 && pttl <= i64::try_from(lifetime_ms).unwrap(),
        "PTTL {pttl}"
    );
    assert!(
        pttl > 98_000,
        "PTTL {pttl} is much shorter than the token's life"
    );

    // A short-lived token really disappears.
    s.save(KEY, token("t", unix_now_ms() + 2 * 1000))
        .await
        .unwrap();
    let pttl: i64 = raw.pttl(KEY).await.unwrap();
    assert!(pttl > 0 && pttl <= 2000, "PTTL {pttl}");
    tokio::time::sleep(Duration::from_millis(u64::try_from(pttl).unwrap() + 100)).await;
    assert_eq!(load_owned(&mut s, KEY).await.unwrap(), None);

    // An already expired token is not stored at all, and replaces what was there.
    s.save(KEY, token("t", unix_now_ms() + 60 * 1000))
        .await
        .unwrap();
    s.save(KEY, token("old", unix_now_ms() - 1000))
        .await
        .unwrap();
    let exists: bool = raw.exists(KEY).await.unwrap();
    assert!(!exists);
    s.save(KEY, token("ancient", 0)).await.unwrap();
    let exists: bool = raw.exists(KEY).await.unwrap();
    assert!(!exists);

    // An absurd expiry is stored with a capped TTL instead of an error.
    s.save(KEY, token("forever", u64::MAX)).await.unwrap();
    assert_eq!(
        load_owned(&mut s, KEY).await.unwrap(),
        Some(("forever".into(), u64::MAX))
    );
    let pttl: i64 = raw.pttl(KEY).await.unwrap();
    assert!(pttl > 0);
}

#[tokio::test]
async fn values_in_the_previous_format_are_still_read() {
    // `v1`: the expiry in whole Unix seconds, as alf wrote it before it kept milliseconds. A
    // token already in the store when the fleet upgrades is still used.
    let server = RedisServer::start();
    let mut s = store(&server);
    let mut raw = server.raw().await;
    let exp_secs = unix_now_ms() / 1000 + 3600;
    let value = format!("v1\nBearer\n{exp_secs}\nold-format");
    let () = raw.set(KEY, value.as_bytes()).await.unwrap();
    assert_eq!(
        load_owned(&mut s, KEY).await.unwrap(),
        Some(("old-format".into(), exp_secs * 1000))
    );
}

#[tokio::test]
async fn garbage_values_load_as_none() {
    let server = RedisServer::start();
    let mut s = store(&server);
    let mut raw = server.raw().await;
    let exp = unix_now_ms() + 3600 * 1000;
    let garbage: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"hello".to_vec(),
        format!("{exp}").into_bytes(),
        format!("v1\nBearer\n{exp}").into_bytes(),
        format!("v1\nBearer\n{exp}\n").into_bytes(),
        format!("v3\nBearer\n{exp}\ntok").into_bytes(),
        format!("V2\nBearer\n{exp}\ntok").into_bytes(),
        format!("v1\nMAC\n{exp}\ntok").into_bytes(),
        b"v1\nBearer\nsoon\ntok".to_vec(),
        b"v1\nBearer\n-5\ntok".to_vec(),
        b"v1\nBearer\n99999999999999999999999\ntok".to_vec(),
        format!("v1\nBearer\n{exp}\ntok en").into_bytes(),
        format!("v1\nBearer\n{exp}\ntok\r\nX-Evil: 1").into_bytes(),
        format!("v1\nBearer\n{exp}\ntok\n").into_bytes(),
        format!("v1\nBearer\n{exp}\nt\u{e9}k").into_bytes(),
        [b"v1\nBearer\n1\n".as_slice(), &[0xff, 0xfe, 0x80]].concat(),
        vec![0xff; 64],
        format!(r#"{{"access_token":"tok","expires_at":{exp}}}"#).into_bytes(),
    ];
    for value in &garbage {
        let () = raw.set(KEY, value.as_slice()).await.unwrap();
        assert_eq!(
            load_owned(&mut s, KEY).await.unwrap(),
            None,
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
    // Not even a string.
    let () = raw.del(KEY).await.unwrap();
    let () = raw.hset(KEY, "access_token", "tok").await.unwrap();
    assert_eq!(load_owned(&mut s, KEY).await.unwrap(), None);
    // Saving over it repairs the entry.
    s.save(KEY, token("tok", exp)).await.unwrap();
    assert_eq!(
        load_owned(&mut s, KEY).await.unwrap(),
        Some(("tok".into(), exp))
    );
}

#[tokio::test]
async fn invalid_tokens_are_not_saved() {
    let server = RedisServer::start();
    let mut s = store(&server);
    for bad in ["", "a b", "a\nb", "a\r\nb", "t\u{e9}"] {
        assert_eq!(
            s.save(KEY, token(bad, unix_now_ms() + 60 * 1000)).await,
            Err(RedisStoreError::InvalidToken)
        );
    }
    assert_eq!(load_owned(&mut s, KEY).await.unwrap(), None);
}

#[tokio::test]
async fn clients_with_another_config_do_not_see_the_token() {
    let server = RedisServer::start();
    let ep = "https://auth.example.com/token";
    let key_a = Config::builder(ep, "client-a", "secret")
        .scope("read")
        .build()
        .unwrap()
        .store_key();
    let key_b = Config::builder(ep, "client-b", "secret")
        .scope("read")
        .build()
        .unwrap()
        .store_key();
    let key_a_write = Config::builder(ep, "client-a", "secret")
        .scope("write")
        .build()
        .unwrap()
        .store_key();
    assert_ne!(key_a, key_b);

    let mut a = store(&server);
    let mut b = store(&server);
    a.save(&key_a, token("token-of-a", unix_now_ms() + 600 * 1000))
        .await
        .unwrap();
    assert_eq!(load_owned(&mut b, &key_b).await.unwrap(), None);
    assert_eq!(load_owned(&mut b, &key_a_write).await.unwrap(), None);
    assert_eq!(
        load_owned(&mut b, &key_a).await.unwrap().unwrap().0,
        "token-of-a"
    );

    // Prefixes separate applications sharing a Redis.
    let mut p1 = store(&server).with_prefix("app1:");
    let mut p2 = store(&server).with_prefix("app2:");
    p1.save(&key_a, token("app1-token", unix_now_ms() + 600 * 1000))
        .await
        .unwrap();
    assert_eq!(load_owned(&mut p2, &key_a).await.unwrap(), None);
    assert_eq!(
        load_owned(&mut a, &key_a).await.unwrap().unwrap().0,
        "token-of-a"
    );
    let exists: bool = server
        .raw()
        .await
        .exists(format!("app1:{key_a}"))
        .await
        .unwrap();
    assert!(exists);
}

#[tokio::test]
async fn redis_down_at_start_fails_fast() {
    let port = free_port();
    let timeout = Duration::from_millis(300);
    let mut s = RedisStore::new(&format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .with_timeout(timeout);
    for _ in 0..3 {
        let started = Instant::now();
        let err = load_owned(&mut s, KEY).await.unwrap_err();
        assert_eq!(err, RedisStoreError::Connection);
        assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());
    }
    let started = Instant::now();
    assert!(
        s.save(KEY, token("t", unix_now_ms() + 60 * 1000))
            .await
            .is_err()
    );
    assert!(s.try_lock(KEY, alf::Duration::from_secs(1)).await.is_err());
    assert!(s.unlock(KEY).await.is_err());
    assert!(s.clear(KEY).await.is_err());
    assert!(s.connect().await.is_err());
    assert!(started.elapsed() < timeout * 5);

    // Once it is up, the same store works.
    let _server = RedisServer::start_on(port);
    s.connect().await.unwrap();
    assert_eq!(load_owned(&mut s, KEY).await.unwrap(), None);
}

/// A server that accepts connections and never answers: every operation times out.
#[tokio::test]
async fn silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let timeout = Duration::from_millis(200);
    let mut s = RedisStore::new(&format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .with_timeout(timeout);
    for _ in 0..2 {
        let started = Instant::now();
        assert_eq!(
            load_owned(&mut s, KEY).await.unwrap_err(),
            RedisStoreError::Timeout
        );
        let took = started.elapsed();
        assert!(
            took >= timeout && took < timeout + Duration::from_millis(300),
            "took {took:?}"
        );
    }
    let started = Instant::now();
    assert_eq!(
        s.try_lock(KEY, alf::Duration::from_secs(1)).await,
        Err(RedisStoreError::Timeout)
    );
    assert!(started.elapsed() < timeout + Duration::from_millis(300));
    accept.abort();
}

#[tokio::test]
async fn redis_killed_mid_run_then_back() {
    let mut server = RedisServer::start();
    let mut s = store(&server);
    let exp = unix_now_ms() + 600 * 1000;
    s.save(KEY, token("t1", exp)).await.unwrap();

    // Killed: operations fail (fast) while it is down.
    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(
            load_owned(&mut s, KEY).await.unwrap_err(),
            RedisStoreError::Connection
        );
        assert!(started.elapsed() < RedisStore::DEFAULT_TIMEOUT);
    }
    assert!(s.save(KEY, token("t2", exp)).await.is_err());

    // Back (empty: this test server persists nothing): the store reconnects by itself.
    server.restart();
    assert_eq!(load_owned(&mut s, KEY).await.unwrap(), None);
    s.save(KEY, token("t2", exp)).await.unwrap();
    assert_eq!(
        load_owned(&mut s, KEY).await.unwrap(),
        Some(("t2".into(), exp))
    );

    // Restarted while the store was idle: the operation finds its connection dead,
    // reconnects and succeeds, all within one call.
    server.restart();
    assert_eq!(load_owned(&mut s, KEY).await.unwrap(), None);
    s.save(KEY, token("t3", exp)).await.unwrap();
    server.restart();
    assert!(s.try_lock(KEY, alf::Duration::from_secs(1)).await.unwrap());
    server.restart();
    s.unlock(KEY).await.unwrap();
}

#[tokio::test]
async fn fetch_lock_between_two_instances() {
    let server = RedisServer::start();
    let mut a = store(&server);
    let mut b = store(&server);
    let ttl = alf::Duration::from_secs(10);
    let lock_key = format!("{KEY}:lock");
    let mut raw = server.raw().await;

    assert!(a.try_lock(KEY, ttl).await.unwrap());
    assert!(!b.try_lock(KEY, ttl).await.unwrap());
    // The holder asking again (a retry) is told it holds it.
    assert!(a.try_lock(KEY, ttl).await.unwrap());
    let pttl: i64 = raw.pttl(&lock_key).await.unwrap();
    assert!(pttl > 0 && pttl <= 10_000, "PTTL {pttl}");

    // A non-holder's unlock releases nothing.
    b.unlock(KEY).await.unwrap();
    assert!(!b.try_lock(KEY, ttl).await.unwrap());

    // The holder's unlock does.
    a.unlock(KEY).await.unwrap();
    assert!(b.try_lock(KEY, ttl).await.unwrap());
    assert!(!a.try_lock(KEY, ttl).await.unwrap());
    b.unlock(KEY).await.unwrap();
    let exists: bool = raw.exists(&lock_key).await.unwrap();
    assert!(!exists);

    // The lock is per key.
    assert!(a.try_lock(KEY, ttl).await.unwrap());
    assert!(b.try_lock("alf:another", ttl).await.unwrap());
    a.unlock(KEY).await.unwrap();
    b.unlock("alf:another").await.unwrap();
}

#[tokio::test]
async fn fetch_lock_expires_by_itself() {
    let server = RedisServer::start();
    let mut a = store(&server);
    let mut b = store(&server);

    assert!(
        a.try_lock(KEY, alf::Duration::from_millis(300))
            .await
            .unwrap()
    );
    assert!(!b.try_lock(KEY, alf::Duration::from_secs(10)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    // `a` died (never unlocked); its lock is gone and `b` takes it.
    assert!(b.try_lock(KEY, alf::Duration::from_secs(10)).await.unwrap());
    // `a` wakes up late and unlocks: `b`'s lock survives.
    a.unlock(KEY).await.unwrap();
    assert!(!a.try_lock(KEY, alf::Duration::from_secs(10)).await.unwrap());
    b.unlock(KEY).await.unwrap();
    assert!(a.try_lock(KEY, alf::Duration::from_secs(10)).await.unwrap());
}

#[test]
fn outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let mut s = RedisStore::new("redis://127.0.0.1:1/").unwrap();
    let mut buf = [0u8; 16];
    let r = embassy_futures::block_on(s.load(KEY, &mut buf)).map(|t| t.is_some());
    assert_eq!(r, Err(RedisStoreError::NoRuntime));
}

#[test]
fn errors_and_debug_never_show_secrets() {
    assert!(matches!(
        RedisStore::new("http://nope"),
        Err(RedisStoreError::InvalidUrl)
    ));
    let s = RedisStore::new("redis://:hunter2@127.0.0.1:6379/0")
        .unwrap()
        .with_prefix("p:");
    let debug = format!("{s:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("p:"));
    let e = RedisStoreError::Redis {
        kind: redis::ErrorKind::Io,
        code: Some("NOAUTH".into()),
    };
    assert_eq!(e.to_string(), "Redis error NOAUTH (Io)");
    assert_eq!(RedisStore::DEFAULT_TIMEOUT, Duration::from_millis(200));
    assert_eq!(s.timeout(), Duration::from_millis(200));
    assert_eq!(s.prefix(), "p:");
}
