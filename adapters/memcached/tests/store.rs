//! `MemcachedStore` against a real `memcached`.

mod support;

use std::time::{Duration, Instant};

use alf::{Config, StoredToken, TokenStore};
use alf_memcached::{MemcachedStore, MemcachedStoreError};
use async_memcached::{AsciiProtocol, MetaProtocol};
use support::{MemcachedServer, free_port, unix_now_ms};

const KEY: &str = "alf:00112233445566778899aabbccddeeff";

fn store(server: &MemcachedServer) -> MemcachedStore {
    MemcachedStore::new(server.addr())
}

async fn load_owned(
    store: &mut MemcachedStore,
    key: &str,
) -> Result<Option<(String, u64)>, MemcachedStoreError> {
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

/// The TTL memcached reports for `key` (meta get `t` flag), `None` when absent.
async fn ttl(server: &MemcachedServer, key: &str) -> Option<i64> {
    let mut raw = server.raw().await;
    raw.meta_get(key, false, None, Some(&["t"]))
        .await
        .unwrap()
        .and_then(|v| v.ttl_remaining)
}

#[tokio::test]
async fn save_load_clear_round_trip() {
    let server = MemcachedServer::start();
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

    let mut other = store(&server);
    assert_eq!(
        load_owned(&mut other, KEY).await.unwrap(),
        Some(("eyJhbGciOi.payload.sig-_~+/=".into(), exp))
    );

    s.save(KEY, token("second", exp + 1)).await.unwrap();
    assert_eq!(
        load_owned(&mut other, KEY).await.unwrap(),
        Some(("second".into(), exp + 1))
    );

    let raw = server
        .raw()
        .await
        .get(KEY)
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    assert_eq!(raw, format!("v2\nBearer\n{}\nsecond", exp + 1).into_bytes());

    other.clear(KEY).await.unwrap();
    assert_eq!(load_owned(&mut s, KEY).await.unwrap(), None);
    s.clear(KEY).await.unwrap();
}

#[tokio::test]
async fn token_larger_than_the_buffer_is_none() {
    let server = MemcachedServer::start();
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
async fn memcached_expires_the_entry_with_the_token() {
    let server = MemcachedServer::start();
    let mut s = store(&server);

    s.save(KEY, token("t", unix_now_ms() + 100 * 1000))
        .await
        .unwrap();
    let t = ttl(&server, KEY).await.unwrap();
    assert!(t > 95 && t <= 100, "TTL {t}");

    // Past 30 days memcached wants an absolute time; the TTL it reports is still right, to
    // the second: memcached's own clock ticks once a second and may lag ours by one, so an
    // absolute expiry can read back one second longer (seen in CI: 5184001).
    let sixty_days = 60 * 24 * 3600;
    s.save(KEY, token("t", unix_now_ms() + sixty_days * 1000))
        .await
        .unwrap();
    let t = ttl(&server, KEY).await.unwrap();
    let sixty_days = i64::try_from(sixty_days).unwrap();
    assert!(t > sixty_days - 10 && t <= sixty_days + 1, "TTL {t}");

    // An absurd expiry is stored with a capped TTL instead of an error.
    s.save(KEY, token("forever", u64::MAX)).await.unwrap();
    assert_eq!(
        load_owned(&mut s, KEY).await.unwrap(),
        Some(("forever".into(), u64::MAX))
    );
    assert!(ttl(&server, KEY).await.unwrap() > 0);

    // An already expired token is not stored at all, and replaces what was there.
    s.save(KEY, token("old", unix_now_ms() - 1000))
        .await
        .unwrap();
    assert_eq!(ttl(&server, KEY).await, None);
    assert_eq!(load_owned(&mut s, KEY).await.unwrap(), None);

    // A short-lived token really disappears.
    s.save(KEY, token("short", unix_now_ms() + 2 * 1000))
        .await
        .unwrap();
    assert_eq!(load_owned(&mut s, KEY).await.unwrap().unwrap().0, "short");
    let t = ttl(&server, KEY).await.unwrap();
    assert!(t > 0 && t <= 2, "TTL {t}");
    let started = Instant::now();
    while load_owned(&mut s, KEY).await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the entry outlived its token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn values_in_the_previous_format_are_still_read() {
    // `v1`: the expiry in whole Unix seconds, as alf wrote it before it kept milliseconds. A
    // token already in the store when the fleet upgrades is still used.
    let server = MemcachedServer::start();
    let mut s = store(&server);
    let mut raw = server.raw().await;
    let exp_secs = unix_now_ms() / 1000 + 3600;
    let value = format!("v1\nBearer\n{exp_secs}\nold-format");
    raw.set(KEY, value.as_bytes(), Some(60), None)
        .await
        .unwrap();
    assert_eq!(
        load_owned(&mut s, KEY).await.unwrap(),
        Some(("old-format".into(), exp_secs * 1000))
    );
}

#[tokio::test]
async fn garbage_values_load_as_none() {
    let server = MemcachedServer::start();
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
        raw.set(KEY, value.as_slice(), Some(60), None)
            .await
            .unwrap();
        assert_eq!(
            load_owned(&mut s, KEY).await.unwrap(),
            None,
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
    s.save(KEY, token("tok", exp)).await.unwrap();
    assert_eq!(
        load_owned(&mut s, KEY).await.unwrap(),
        Some(("tok".into(), exp))
    );
}

#[tokio::test]
async fn invalid_tokens_and_keys_are_refused() {
    let server = MemcachedServer::start();
    let mut s = store(&server);
    for bad in ["", "a b", "a\nb", "a\r\nb", "t\u{e9}"] {
        assert_eq!(
            s.save(KEY, token(bad, unix_now_ms() + 60 * 1000)).await,
            Err(MemcachedStoreError::InvalidToken)
        );
    }
    assert_eq!(load_owned(&mut s, KEY).await.unwrap(), None);

    for prefix in ["my app:".to_owned(), "x".repeat(250), "tab\t".to_owned()] {
        let mut s = store(&server).with_prefix(prefix);
        assert_eq!(
            load_owned(&mut s, KEY).await,
            Err(MemcachedStoreError::InvalidKey)
        );
        assert_eq!(
            s.save(KEY, token("t", unix_now_ms() + 60 * 1000)).await,
            Err(MemcachedStoreError::InvalidKey)
        );
        assert_eq!(
            s.try_lock(KEY, alf::Duration::from_secs(1)).await,
            Err(MemcachedStoreError::InvalidKey)
        );
    }
    // The longest prefix that fits, lock suffix included.
    let mut s = store(&server).with_prefix("x".repeat(250 - KEY.len() - ":lock".len()));
    s.save(KEY, token("t", unix_now_ms() + 60 * 1000))
        .await
        .unwrap();
    assert!(s.try_lock(KEY, alf::Duration::from_secs(1)).await.unwrap());
}

#[tokio::test]
async fn clients_with_another_config_do_not_see_the_token() {
    let server = MemcachedServer::start();
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
    assert!(
        server
            .raw()
            .await
            .get(format!("app1:{key_a}"))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn memcached_down_at_start_fails_fast() {
    let port = free_port();
    let timeout = Duration::from_millis(300);
    let mut s = MemcachedStore::new(format!("127.0.0.1:{port}")).with_timeout(timeout);
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(
            load_owned(&mut s, KEY).await.unwrap_err(),
            MemcachedStoreError::Connection
        );
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

    let _server = MemcachedServer::start_on(port);
    s.connect().await.unwrap();
    assert_eq!(load_owned(&mut s, KEY).await.unwrap(), None);

    // An address that is not one fails the same way, without a panic.
    let mut s = MemcachedStore::new("not an address");
    assert_eq!(
        load_owned(&mut s, KEY).await.unwrap_err(),
        MemcachedStoreError::Connection
    );
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
    let mut s = MemcachedStore::new(format!("127.0.0.1:{port}")).with_timeout(timeout);
    for _ in 0..2 {
        let started = Instant::now();
        assert_eq!(
            load_owned(&mut s, KEY).await.unwrap_err(),
            MemcachedStoreError::Timeout
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
        Err(MemcachedStoreError::Timeout)
    );
    assert!(started.elapsed() < timeout + Duration::from_millis(300));
    accept.abort();
}

#[tokio::test]
async fn memcached_killed_mid_run_then_back() {
    let mut server = MemcachedServer::start();
    let mut s = store(&server);
    let exp = unix_now_ms() + 600 * 1000;
    s.save(KEY, token("t1", exp)).await.unwrap();

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(
            load_owned(&mut s, KEY).await.unwrap_err(),
            MemcachedStoreError::Connection
        );
        assert!(started.elapsed() < MemcachedStore::DEFAULT_TIMEOUT);
    }
    assert!(s.save(KEY, token("t2", exp)).await.is_err());

    // Back (empty): the store reconnects by itself.
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
    let server = MemcachedServer::start();
    let mut a = store(&server);
    let mut b = store(&server);
    let ttl_10s = alf::Duration::from_secs(10);
    let lock_key = format!("{KEY}:lock");

    assert!(a.try_lock(KEY, ttl_10s).await.unwrap());
    assert!(!b.try_lock(KEY, ttl_10s).await.unwrap());
    // The holder asking again (a retry) is told it holds it.
    assert!(a.try_lock(KEY, ttl_10s).await.unwrap());
    let t = ttl(&server, &lock_key).await.unwrap();
    assert!((10..=11).contains(&t), "lock TTL {t}");

    b.unlock(KEY).await.unwrap();
    assert!(!b.try_lock(KEY, ttl_10s).await.unwrap());

    a.unlock(KEY).await.unwrap();
    assert!(b.try_lock(KEY, ttl_10s).await.unwrap());
    assert!(!a.try_lock(KEY, ttl_10s).await.unwrap());
    b.unlock(KEY).await.unwrap();
    assert_eq!(ttl(&server, &lock_key).await, None);

    assert!(a.try_lock(KEY, ttl_10s).await.unwrap());
    assert!(b.try_lock("alf:another", ttl_10s).await.unwrap());
    a.unlock(KEY).await.unwrap();
    b.unlock("alf:another").await.unwrap();
    // Unlocking what is not locked is fine.
    a.unlock(KEY).await.unwrap();
}

#[tokio::test]
async fn fetch_lock_expires_by_itself() {
    let server = MemcachedServer::start();
    let mut a = store(&server);
    let mut b = store(&server);

    let started = Instant::now();
    assert!(
        a.try_lock(KEY, alf::Duration::from_millis(300))
            .await
            .unwrap()
    );
    assert!(!b.try_lock(KEY, alf::Duration::from_secs(10)).await.unwrap());
    // `a` died (never unlocked): its lock (300 ms, so 1-2 s in memcached's seconds) goes
    // away by itself and `b` takes it.
    while !b.try_lock(KEY, alf::Duration::from_secs(10)).await.unwrap() {
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the lock did not expire"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the lock expired early"
    );
    // `a` wakes up late and unlocks: `b`'s lock survives.
    a.unlock(KEY).await.unwrap();
    assert!(!a.try_lock(KEY, alf::Duration::from_secs(10)).await.unwrap());
    b.unlock(KEY).await.unwrap();
    assert!(a.try_lock(KEY, alf::Duration::from_secs(10)).await.unwrap());
}

/// A lock holding another instance's id (set by anyone) is left alone.
#[tokio::test]
async fn unlock_compares_the_holder_id() {
    let server = MemcachedServer::start();
    let mut a = store(&server);
    let lock_key = format!("{KEY}:lock");
    let mut raw = server.raw().await;
    // Someone else's lock with another id: `a` must not delete it.
    raw.set(&lock_key, "someone-else", Some(10), None)
        .await
        .unwrap();
    a.unlock(KEY).await.unwrap();
    assert!(raw.get(&lock_key).await.unwrap().is_some());
}

#[test]
fn outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let mut s = MemcachedStore::new("127.0.0.1:1");
    let mut buf = [0u8; 16];
    let r = embassy_futures::block_on(s.load(KEY, &mut buf)).map(|t| t.is_some());
    assert_eq!(r, Err(MemcachedStoreError::NoRuntime));
}

#[test]
fn debug_and_errors() {
    let s = MemcachedStore::new("127.0.0.1:11211").with_prefix("p:");
    let debug = format!("{s:?}");
    assert!(
        debug.contains("p:") && debug.contains("tcp://127.0.0.1:11211"),
        "{debug}"
    );
    assert_eq!(MemcachedStore::DEFAULT_TIMEOUT, Duration::from_millis(200));
    assert_eq!(s.timeout(), Duration::from_millis(200));
    assert_eq!(s.prefix(), "p:");
    assert_eq!(
        MemcachedStoreError::Server("SERVER_ERROR out of memory".into()).to_string(),
        "memcached error: SERVER_ERROR out of memory"
    );
}
