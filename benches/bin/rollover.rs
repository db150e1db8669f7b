//! Rollover (issue 6, item 5): request latency while tokens are renewed, against steady state.
//!
//! ```text
//! rollover [--quick] [--seconds 20] [--lifetime 2] [--token-delay-ms 20] [--concurrency 8]
//!          [--pace-ms 4] [--variants steady,on-demand,proactive,at-expiry]
//! ```
//! An in-process loopback server whose token endpoint answers after `--token-delay-ms`, and
//! `--concurrency` request loops (one request every `--pace-ms` each) through
//! `alf_reqwest::Client`, for `--seconds` per variant:
//! - `steady`: tokens live 3600 s, so no renewal happens while measuring;
//! - `on-demand`: tokens live `--lifetime` s, default refresh policy (the token is renewed at
//!   half its lifetime by the first request that finds it due; others use the old one);
//! - `proactive`: the same with `Builder::proactive_refresh(true)`;
//! - `at-expiry`: refresh margin and jitter 0, no proactive refresh: every request waits for
//!   the renewal at expiry (what alf avoids by default).
//!
//! A request is in a *renewal window* when it overlaps a token request as the server saw it
//! (arrival to answer). The goal: p99 in renewal windows within 1.1x of steady state with
//! proactive refresh.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alf_bench::load::{
    Args, LoadServer, Percentiles, ServerConfig, alf_config, machine, ms, serve_if_asked,
    unix_micros,
};

fn main() -> ExitCode {
    let args = Args::from_env();
    serve_if_asked(&args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(args))
}

/// `(start in Unix µs, latency)` of each request.
type Samples = Vec<(u64, Duration)>;

async fn drive(
    client: &alf_reqwest::Client,
    url: &str,
    seconds: f64,
    concurrency: usize,
    pace: Duration,
) -> (Samples, u64) {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut failed = 0u64;
            while Instant::now() < until {
                let start_unix = unix_micros();
                let start = Instant::now();
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        samples.push((start_unix, start.elapsed()));
                    }
                    _ => failed += 1,
                }
                tokio::time::sleep(pace).await;
            }
            (samples, failed)
        }));
    }
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (s, f) = t.await.expect("task");
        all.extend(s);
        failed += f;
    }
    (all, failed)
}

struct Outcome {
    name: &'static str,
    all: Percentiles,
    window: Percentiles,
    outside: Percentiles,
    renewals: usize,
    waited: usize,
    failed: u64,
}

fn main_report(o: &Outcome) {
    println!(
        "{:<10} renewals={:<3} failed={} requests >= token delay: {}",
        o.name, o.renewals, o.failed, o.waited
    );
    println!("  all requests      {}", o.all);
    println!("  renewal windows   {}", o.window);
    println!("  outside windows   {}", o.outside);
}

async fn run(args: Args) -> ExitCode {
    let seconds: f64 = args.get("seconds", 20.0, 3.0);
    let lifetime: u64 = args.get("lifetime", 2, 2);
    let delay = Duration::from_millis(args.get("token-delay-ms", 20, 20));
    let concurrency: usize = args.get("concurrency", 8, 8);
    let pace = Duration::from_millis(args.get("pace-ms", 4, 4));
    let variants: String = args.get(
        "variants",
        "steady,on-demand,proactive,at-expiry".into(),
        "steady,on-demand,proactive,at-expiry".into(),
    );
    let server = LoadServer::start(ServerConfig {
        lifetime_secs: lifetime,
        token_delay: delay,
        ..ServerConfig::default()
    })
    .await
    .expect("load server");
    let state = Arc::clone(&server.state);
    let base = format!("http://{}", server.addr);
    let url = server.url("/api");

    println!("== rollover: latency across token renewals (issue 6, item 5)");
    println!("machine: {}", machine());
    println!(
        "{seconds} s per variant, token lifetime {lifetime} s, token endpoint delay {}, \
         {concurrency} request loops, one request every {} ms each",
        ms(delay),
        pace.as_millis()
    );
    let mut outcomes = Vec::new();
    for variant in variants.split(',').filter(|v| !v.is_empty()) {
        let (name, life, proactive, margin, jitter) = match variant {
            "steady" => ("steady", 3600, false, 60_000, 10_000),
            "on-demand" => ("on-demand", lifetime, false, 60_000, 10_000),
            "proactive" => ("proactive", lifetime, true, 60_000, 10_000),
            "at-expiry" => ("at-expiry", lifetime, false, 0, 0),
            other => {
                eprintln!("error: unknown variant {other}");
                return ExitCode::FAILURE;
            }
        };
        state.set_lifetime_secs(life);
        let config = alf_config(
            &base,
            Duration::from_millis(margin),
            Duration::from_millis(jitter),
        );
        let client = alf_reqwest::Client::builder(config)
            .proactive_refresh(proactive)
            .build()
            .expect("client");
        // Warm up: the first token and the connections, outside the measurement.
        let _ = drive(&client, &url, 0.3, concurrency, pace).await;
        state.reset();
        let (mut samples, failed) = drive(&client, &url, seconds, concurrency, pace).await;
        drop(client);
        let log = state.token_log();
        samples.sort_unstable_by_key(|s| s.0);
        let (mut window, mut outside, mut all) = (Vec::new(), Vec::new(), Vec::new());
        for &(start, lat) in &samples {
            let end = start + lat.as_micros() as u64;
            let overlaps = log.iter().any(|&(a, b)| start <= b && end >= a);
            all.push(lat);
            if overlaps {
                window.push(lat);
            } else {
                outside.push(lat);
            }
        }
        let waited = all.iter().filter(|l| **l >= delay).count();
        let o = Outcome {
            name,
            all: Percentiles::of(&mut all),
            window: Percentiles::of(&mut window),
            outside: Percentiles::of(&mut outside),
            renewals: log.len(),
            waited,
            failed,
        };
        main_report(&o);
        outcomes.push(o);
    }
    server.stop();
    println!();
    let steady = outcomes.iter().find(|o| o.name == "steady").map(|o| o.all);
    let mut verdict = ExitCode::SUCCESS;
    if let Some(steady) = steady {
        println!(
            "steady state: p50 {} p99 {}",
            ms(steady.p50),
            ms(steady.p99)
        );
        for o in outcomes.iter().filter(|o| o.name != "steady") {
            let ratio = o.window.p99.as_secs_f64() / steady.p99.as_secs_f64().max(1e-9);
            println!(
                "{:<10}: renewal windows p50 {} p99 {} = {ratio:.2}x steady p99{}",
                o.name,
                ms(o.window.p50),
                ms(o.window.p99),
                if o.name == "proactive" {
                    if ratio <= 1.1 {
                        " (goal <= 1.1x: met)"
                    } else {
                        " (goal <= 1.1x: MISSED)"
                    }
                } else {
                    ""
                }
            );
        }
    }
    if outcomes.iter().any(|o| o.failed > 0) {
        println!("RESULT: FAIL (failed calls)");
        verdict = ExitCode::FAILURE;
    } else {
        println!("RESULT: OK (0 failed calls)");
    }
    verdict
}
