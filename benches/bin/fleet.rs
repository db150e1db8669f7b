//! Fleet (issue 6, item 4): processes sharing one token through a real Redis.
//!
//! ```text
//! fleet [--quick] [--processes 8] [--lifetime 5] [--lifetimes 10] [--concurrency 4]
//!       [--pace-ms 10] [--margin-ms 0] [--jitter-ms 0] [--modes shared,alone]
//!       [--max-shared N]
//! ```
//! Starts `redis-server` on a free loopback port and the load server in this process, then
//! runs `--processes` copies of this binary (`--worker`) for `--lifetimes` token lifetimes,
//! first sharing the token through `alf_redis::RedisStore` (mode `shared`), then each with
//! its own memory only (mode `alone`). Each worker runs `--concurrency` request loops, one
//! request every `--pace-ms` per loop, until a common deadline. Token requests are counted at
//! the server: the goal for `shared` is one per lifetime. Exits 1 when a call failed, when
//! sharing did not reduce the token requests, or (with `--max-shared N`) when the shared mode
//! made more than N token requests.

use std::io::BufRead;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use alf_bench::load::redis::RedisServer;
use alf_bench::load::{
    Args, LoadServer, ServerConfig, alf_config, machine, serve_if_asked, unix_micros,
};

fn main() -> ExitCode {
    let args = Args::from_env();
    serve_if_asked(&args);
    if args.flag("worker") {
        return worker(&args);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(parent(args))
}

/// What a worker prints on its last line.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: u64,
    failed: u64,
}

async fn parent(args: Args) -> ExitCode {
    let processes: usize = args.get("processes", 8, 8);
    // Quick: 2 lifetimes of 5 s. The store keeps the expiry in Unix milliseconds and the
    // workers' clock reads milliseconds, so a shared copy keeps its whole lifetime.
    let lifetime: u64 = args.get("lifetime", 5, 5);
    let lifetimes: u64 = args.get("lifetimes", 10, 2);
    let concurrency: usize = args.get("concurrency", 4, 2);
    let pace_ms: u64 = args.get("pace-ms", 10, 10);
    let margin_ms: u64 = args.get("margin-ms", 0, 0);
    let jitter_ms: u64 = args.get("jitter-ms", 0, 0);
    let modes: String = args.get("modes", "shared,alone".into(), "shared,alone".into());
    // 0: no bound (the goal is reported only).
    let max_shared: u64 = args.get("max-shared", 0, 0);

    let redis = match RedisServer::start() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = LoadServer::start(ServerConfig {
        lifetime_secs: lifetime,
        ..ServerConfig::default()
    })
    .await
    .expect("load server");
    let base = format!("http://{}", server.addr);

    println!("== fleet: {processes} processes, one token endpoint (issue 6, item 4)");
    println!("machine: {}", machine());
    println!(
        "token lifetime={lifetime}s, run={lifetimes} lifetimes ({} s) per mode, \
         {concurrency} request loops per process, one request per loop every {pace_ms} ms, \
         refresh margin {margin_ms} ms, jitter {jitter_ms} ms",
        lifetime * lifetimes
    );
    let exe = std::env::current_exe().expect("own path");
    let mut results = Vec::new();
    let mut failed_calls = 0;
    for mode in modes.split(',').filter(|m| !m.is_empty()) {
        let shared = mode == "shared";
        server.state.reset();
        let deadline = unix_micros() + lifetime * lifetimes * 1_000_000;
        let mut children = Vec::new();
        for _ in 0..processes {
            let mut cmd = Command::new(&exe);
            cmd.args(["--worker", "--base", &base])
                .args(["--until-unix-us", &deadline.to_string()])
                .args(["--concurrency", &concurrency.to_string()])
                .args(["--pace-ms", &pace_ms.to_string()])
                .args(["--margin-ms", &margin_ms.to_string()])
                .args(["--jitter-ms", &jitter_ms.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped());
            if shared {
                cmd.args(["--redis", &redis.url()]);
            }
            if args.flag("debug") {
                cmd.arg("--debug");
            }
            children.push(cmd.spawn().expect("spawn worker"));
        }
        // Wait off the runtime's workers, so the server keeps serving.
        let tallies = tokio::task::spawn_blocking(move || {
            children
                .into_iter()
                .map(|mut child| {
                    let mut tally = None;
                    if let Some(out) = child.stdout.take() {
                        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                            if let Some(rest) = line.strip_prefix("worker ") {
                                let field = |k: &str| {
                                    rest.split_whitespace()
                                        .find_map(|f| f.strip_prefix(k))
                                        .and_then(|v| v.parse().ok())
                                        .unwrap_or(0)
                                };
                                tally = Some(Tally {
                                    ok: field("ok="),
                                    failed: field("failed="),
                                });
                            } else {
                                println!("  worker: {line}");
                            }
                        }
                    }
                    let status = child.wait().expect("worker exit");
                    (tally, status)
                })
                .collect::<Vec<_>>()
        })
        .await
        .expect("join workers");
        let tokens = server.state.token_count();
        let mut sum = Tally::default();
        let mut broken = 0;
        for (t, status) in &tallies {
            match t {
                Some(t) if status.success() => {
                    sum.ok += t.ok;
                    sum.failed += t.failed;
                }
                _ => broken += 1,
            }
        }
        failed_calls += sum.failed + broken;
        let label = if shared {
            "shared Redis store"
        } else {
            "no store (each process alone)"
        };
        println!(
            "{label}: {tokens} token requests in {lifetimes} lifetimes ({:.2} per lifetime; \
             goal {}), calls {} ok, {} failed{}",
            tokens as f64 / lifetimes as f64,
            if shared {
                format!("{lifetimes}")
            } else {
                format!(
                    "none, {processes} processes alone need about {}",
                    processes as u64 * lifetimes
                )
            },
            sum.ok,
            sum.failed,
            if broken > 0 {
                format!(", {broken} worker(s) crashed")
            } else {
                String::new()
            }
        );
        let start = deadline - lifetime * lifetimes * 1_000_000;
        let times: Vec<String> = server
            .state
            .token_log()
            .iter()
            .map(|(a, _)| format!("{:.2}", a.saturating_sub(start) as f64 / 1e6))
            .collect();
        println!("  token requests at (s from start): {}", times.join(" "));
        println!(
            "  API requests answered 401 because the token had expired at the server: {} \
             (each was replayed with a new token)",
            server
                .state
                .api_bad_token
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        results.push((shared, tokens));
    }
    server.stop();
    drop(redis);
    let shared = results.iter().find(|r| r.0).map(|r| r.1);
    let alone = results.iter().find(|r| !r.0).map(|r| r.1);
    if let (Some(s), Some(a)) = (shared, alone) {
        println!(
            "sharing the store: {s} vs {a} token requests ({:.1}x fewer); goal {lifetimes} \
             shared -> {}",
            a as f64 / s.max(1) as f64,
            if s <= lifetimes { "met" } else { "missed" }
        );
    }
    let worse = matches!((shared, alone), (Some(s), Some(a)) if s >= a);
    let over = matches!(shared, Some(s) if max_shared > 0 && s > max_shared);
    if over {
        println!(
            "shared token requests {} > --max-shared {max_shared}",
            shared.unwrap_or(0)
        );
    }
    if failed_calls > 0 || worse || over {
        println!(
            "RESULT: FAIL ({failed_calls} failed calls or crashed workers{}{})",
            if worse {
                ", no fewer token requests with the store"
            } else {
                ""
            },
            if over {
                ", too many shared token requests"
            } else {
                ""
            }
        );
        ExitCode::FAILURE
    } else {
        println!("RESULT: OK (0 failed calls)");
        ExitCode::SUCCESS
    }
}

/// One process of the fleet: request loops until the deadline, then `worker ok=N failed=M`.
fn worker(args: &Args) -> ExitCode {
    if args.flag("debug") {
        alf_bench::load::log_to_stderr(log::LevelFilter::Debug);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let tally = local.block_on(&rt, async {
        let base: String = args.get("base", String::new(), String::new());
        let until: u64 = args.get("until-unix-us", 0, 0);
        let concurrency: usize = args.get("concurrency", 4, 4);
        let pace = Duration::from_millis(args.get("pace-ms", 10, 10));
        let margin = Duration::from_millis(args.get("margin-ms", 0, 0));
        let jitter = Duration::from_millis(args.get("jitter-ms", 0, 0));
        let config = || alf_config(&base, margin, jitter);
        let url = format!("{base}/api");
        match args.value("redis") {
            Some(redis) => {
                let store = alf_redis::RedisStore::new(&redis).expect("redis store");
                let client = alf_reqwest::Client::builder(config())
                    .store(store)
                    .build()
                    .expect("client");
                loops(client, &url, until, concurrency, pace).await
            }
            None => {
                loops(
                    alf_reqwest::Client::new(config()),
                    &url,
                    until,
                    concurrency,
                    pace,
                )
                .await
            }
        }
    });
    println!("worker ok={} failed={}", tally.ok, tally.failed);
    ExitCode::SUCCESS
}

async fn loops<S: alf::TokenStore + Send + 'static>(
    client: alf_reqwest::Client<S>,
    url: &str,
    until: u64,
    concurrency: usize,
    pace: Duration,
) -> Tally {
    let mut handles = Vec::new();
    for _ in 0..concurrency {
        let (client, url) = (client.clone(), url.to_owned());
        handles.push(tokio::task::spawn_local(async move {
            let mut t = Tally::default();
            let mut first_error = None;
            while unix_micros() < until {
                let r = client.get(&url).send().await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        t.ok += 1;
                    }
                    Ok(r) => {
                        t.failed += 1;
                        first_error.get_or_insert_with(|| format!("status {}", r.status()));
                    }
                    Err(e) => {
                        t.failed += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                tokio::time::sleep(pace).await;
            }
            if let Some(e) = first_error {
                println!("first failure: {e}");
            }
            t
        }));
    }
    let mut sum = Tally::default();
    for h in handles {
        let t = h.await.expect("loop");
        sum.ok += t.ok;
        sum.failed += t.failed;
    }
    sum
}
