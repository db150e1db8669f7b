//! A fleet of OS processes sharing one memcached and one token endpoint: one token request.
//!
//! `fleet_of_processes_fetches_once` starts memcached and a loopback token endpoint, then runs
//! this test binary again `CHILDREN` times, each running only `fleet_child_process` (which
//! does nothing unless the parent set its environment).

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use alf::{Client, Config};
use alf_memcached::MemcachedStore;
use support::host::{HttpTransport, TokenServer, TokioClock};
use support::{MemcachedServer, unix_now_ms};

const CHILDREN: usize = 6;
const MARK: &str = "ALF-FLEET-TOKEN";

#[test]
fn fleet_of_processes_fetches_once() {
    let memcached = MemcachedServer::start();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // A slow token endpoint: the others must find the lock while the first fetches.
            tx.send(TokenServer::start(Duration::from_millis(300)).await)
                .unwrap();
            std::future::pending::<()>().await;
        });
    });
    let endpoint = rx.recv().unwrap();

    // Everyone starts at the same moment, once all processes are up.
    let start_at = unix_now_ms() + 1500;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "fleet_child_process",
                    "--exact",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env("ALF_FLEET_MEMCACHED", memcached.addr())
                .env("ALF_FLEET_TOKEN_URL", &endpoint.url)
                .env("ALF_FLEET_START_AT_MS", start_at.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut tokens = Vec::new();
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
            .find_map(|l| l.split_once(MARK).map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no token in {stdout}"));
        tokens.push(line.trim().to_owned());
    }
    assert_eq!(
        endpoint.requests(),
        1,
        "{CHILDREN} processes made {} token requests: {tokens:?}",
        endpoint.requests()
    );
    assert!(
        tokens.iter().all(|t| t.starts_with("token-1 ")),
        "{tokens:?}"
    );
    let fetched = tokens.iter().filter(|t| t.ends_with(" requests=1")).count();
    assert_eq!(fetched, 1, "{tokens:?}");
}

/// One member of the fleet; does nothing when run on its own.
#[test]
fn fleet_child_process() {
    let Ok(memcached) = std::env::var("ALF_FLEET_MEMCACHED") else {
        return;
    };
    let token_url = std::env::var("ALF_FLEET_TOKEN_URL").unwrap();
    let start_at: u64 = std::env::var("ALF_FLEET_START_AT_MS")
        .unwrap()
        .parse()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = Config::builder(&token_url, "fleet", "secret")
            .scope("orders:read")
            .build()
            .unwrap();
        let client: Client<_, _, _> = Client::with_store(
            config,
            HttpTransport::default(),
            TokioClock::new(),
            MemcachedStore::new(memcached),
        );
        tokio::time::sleep(Duration::from_millis(
            start_at.saturating_sub(unix_now_ms()),
        ))
        .await;
        let lease = client.token().await.unwrap();
        let requests = client.with_transport(|t| t.sent).await;
        println!("\n{MARK} {} requests={requests}", lease.token.secret());
    });
}
