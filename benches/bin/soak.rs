//! Soak (issue 5): many resource requests at high concurrency through `alf_reqwest::Client`,
//! with 1 s tokens and random 401s; no call may fail, memory must stay flat.
//!
//! ```text
//! soak [--quick] [--requests 100000] [--concurrency 256] [--lifetime 1]
//!      [--unauthorized-ppm 50000] [--proactive] [--threads N]
//! ```
//! The load server runs in a child process (this binary with `--serve`), so the memory figures
//! are the client's. Each request carries an `x-alf-bench-id`; the server answers 401 to that
//! share of first attempts at random, never to a replay, so a client that replays once after
//! a 401 never fails. Exits 1 when any call failed.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use alf_bench::load::heap::Counting;
use alf_bench::load::{
    Args, ChildServer, ID_HEADER, ProcMemory, alf_config, json_u64, machine, serve_if_asked,
};

#[global_allocator]
static ALLOC: Counting = Counting::new();

fn kib(bytes: i64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn main() -> ExitCode {
    let args = Args::from_env();
    serve_if_asked(&args);
    let threads: usize = args.get("threads", 0, 0);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        rt.worker_threads(threads);
    }
    let rt = rt.enable_all().build().expect("tokio runtime");
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let requests: u64 = args.get("requests", 100_000, 20_000);
    let concurrency: usize = args.get("concurrency", 256, 64);
    let lifetime: u64 = args.get("lifetime", 1, 1);
    let ppm: u32 = args.get("unauthorized-ppm", 50_000, 50_000);
    let proactive = args.flag("proactive");

    let server = match ChildServer::spawn(&[
        "--lifetime".into(),
        lifetime.to_string(),
        "--unauthorized-ppm".into(),
        ppm.to_string(),
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the load server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = server.base();
    let plain = reqwest::Client::new();
    let stats = || async {
        plain
            .get(format!("{base}/stats"))
            .send()
            .await
            .expect("stats")
            .text()
            .await
            .expect("stats body")
    };

    println!("== soak: alf-reqwest Client under load (issue 5)");
    println!("machine: {}", machine());
    println!(
        "requests={requests} concurrency={concurrency} token lifetime={lifetime}s \
         random 401s={:.2}% of first attempts, proactive refresh={proactive}, refresh policy: \
         default (margin 60 s, jitter 10 s, both capped at half the lifetime)",
        f64::from(ppm) / 1e4
    );

    let mem_start = ProcMemory::now();
    let heap_start = ALLOC.live();
    // The default refresh policy: with a 1 s token, the margin is capped at half the lifetime.
    let config = alf_config(&base, Duration::from_secs(60), Duration::from_secs(10));
    let client = alf_reqwest::Client::builder(config)
        .proactive_refresh(proactive)
        .build()
        .expect("client");

    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let url = format!("{base}/api");
    let started = Instant::now();

    // Progress: memory every 10 % of the requests.
    let progress = {
        let next = Arc::clone(&next);
        tokio::spawn(async move {
            let mut rows = Vec::new();
            let mut mark = requests / 10;
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let done = next.load(Relaxed).min(requests);
                if done >= mark {
                    let m = ProcMemory::now();
                    rows.push((done, started.elapsed(), m.rss_kib, ALLOC.live()));
                    mark += requests / 10;
                }
                if done >= requests {
                    return rows;
                }
            }
        })
    };

    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, next, ok, failed, errors, url) = (
            client.clone(),
            Arc::clone(&next),
            Arc::clone(&ok),
            Arc::clone(&failed),
            Arc::clone(&errors),
            url.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= requests {
                    return;
                }
                let result = client.get(&url).header(ID_HEADER, i).send().await;
                let outcome = match result {
                    Ok(r) if r.status() == 200 => match r.bytes().await {
                        Ok(_) => Ok(()),
                        Err(e) => Err(format!("body: {e}")),
                    },
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(format!("error: {e}")),
                };
                match outcome {
                    Ok(()) => {
                        ok.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        failed.fetch_add(1, Relaxed);
                        let mut errors = errors.lock().unwrap();
                        if errors.len() < 10 {
                            errors.push(e);
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker task");
    }
    let elapsed = started.elapsed();
    let rows = progress.await.expect("progress task");
    let mem_end = ProcMemory::now();
    let heap_end = ALLOC.live();
    let heap_peak = ALLOC.peak();
    drop(client);
    // Let the pool's connections and the runtime's tasks wind down.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let heap_dropped = ALLOC.live();
    let stats = stats().await;

    let (ok, failed) = (ok.load(Relaxed), failed.load(Relaxed));
    let tokens = json_u64(&stats, "token_requests");
    let injected = json_u64(&stats, "api_injected_401");
    let bad_token = json_u64(&stats, "api_bad_token");
    let api = json_u64(&stats, "api_requests");
    let refused = json_u64(&stats, "token_refused");
    let secs = elapsed.as_secs_f64();
    let lifetimes = secs / lifetime as f64;

    println!();
    println!("progress (requests done, time, RSS, live heap):");
    for (done, t, rss, heap) in &rows {
        println!(
            "  {done:>7}  {:>6.2}s  rss={rss:>7} KiB  heap={}",
            t.as_secs_f64(),
            kib(*heap)
        );
    }
    println!();
    println!(
        "calls: {ok} ok, {failed} failed, in {secs:.2} s ({:.0} calls/s)",
        (ok + failed) as f64 / secs
    );
    for e in errors.lock().unwrap().iter() {
        println!("  failure: {e}");
    }
    println!(
        "server: {api} API requests ({injected} random 401s injected, {bad_token} with an \
         expired/unknown token), {tokens} token requests ({refused} refused)"
    );
    println!(
        "token requests: {tokens} over {secs:.2} s = {lifetimes:.1} lifetimes of {lifetime} s \
         -> {:.2} per lifetime (refresh at half the lifetime gives 2 per lifetime; each \
         injected 401 drops the token it rejected, unless already replaced)",
        tokens as f64 / lifetimes
    );
    // VmHWM lags the sampled VmRSS a little (the kernel syncs its RSS counters lazily).
    let peak_rss = rows.iter().map(|r| r.2).fold(mem_end.hwm_kib, u64::max);
    println!(
        "memory: peak RSS {peak_rss} KiB (VmHWM {} KiB), VmRSS start {} KiB, end {} KiB",
        mem_end.hwm_kib, mem_start.rss_kib, mem_end.rss_kib
    );
    println!(
        "live heap: start {}, peak {}, end (client alive) {}, after dropping the client {}; \
         {} allocations",
        kib(heap_start),
        kib(heap_peak),
        kib(heap_end),
        kib(heap_dropped),
        ALLOC.allocations()
    );
    if failed > 0 || ok != requests {
        println!("RESULT: FAIL ({failed} failed calls)");
        ExitCode::FAILURE
    } else {
        println!("RESULT: OK (0 failed calls)");
        ExitCode::SUCCESS
    }
}
