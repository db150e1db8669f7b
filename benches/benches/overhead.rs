//! Per-request overhead of alf-reqwest over plain reqwest (issue 6, item 1).
//!
//! One loopback keep-alive HTTP/1.1 server (its own thread), one single-threaded tokio runtime
//! for the clients, and the same GET three ways:
//! - `reqwest`: plain `reqwest::Client` with a fixed `Authorization: Bearer` header (a
//!   `HeaderValue` built once and cloned per request: the cheapest a reqwest user can do);
//! - `alf_reqwest`: `alf_reqwest::Client` over an identical reqwest client, token cached;
//! - `alf_reqwest_default`: `alf_reqwest::Client::new` (adds a 30 s timeout to every request
//!   and a same-origin redirect policy).
//!
//! Criterion measures each in turn (one group). Then, with `--bench`, an interleaved loop runs
//! batches of requests alternating between the three clients, and prints the median time per
//! request of each and the ratios to plain reqwest (goal: alf_reqwest / reqwest <= 1.03).
//! `ALF_BENCH_ROUNDS` (default 60) and `ALF_BENCH_BATCH` (default 200) size that loop.

mod common;

use std::time::Instant;

use criterion::Criterion;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

struct Setup {
    url: String,
    rt: tokio::runtime::Runtime,
    raw: reqwest::Client,
    auth: reqwest::header::HeaderValue,
    alf: alf_reqwest::Client,
    alf_default: alf_reqwest::Client,
    _server: common::Server,
}

impl Setup {
    fn new() -> Self {
        let server = common::Server::start();
        let url = server.resource_url();
        let rt = runtime();
        let raw = common::reqwest_client();
        let auth = common::bearer_header();
        let alf = common::alf_same_reqwest(&server);
        let alf_default = common::alf_default(&server);
        rt.block_on(async {
            // Open every connection and fetch the tokens before anything is measured.
            for _ in 0..10 {
                common::raw_get(&raw, &url, &auth).await;
                common::alf_get(&alf, &url).await;
                common::alf_get(&alf_default, &url).await;
            }
        });
        Self {
            url,
            rt,
            raw,
            auth,
            alf,
            alf_default,
            _server: server,
        }
    }
}

fn criterion_group(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("overhead");
    g.bench_function("reqwest", |b| {
        b.to_async(&s.rt)
            .iter(|| common::raw_get(&s.raw, &s.url, &s.auth))
    });
    g.bench_function("alf_reqwest", |b| {
        b.to_async(&s.rt).iter(|| common::alf_get(&s.alf, &s.url))
    });
    g.bench_function("alf_reqwest_default", |b| {
        b.to_async(&s.rt)
            .iter(|| common::alf_get(&s.alf_default, &s.url))
    });
    g.finish();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Batches alternating between the clients (the order rotates every round), so that drift in
/// the machine's speed hits all of them alike.
fn interleaved(s: &Setup) {
    let rounds = env_usize("ALF_BENCH_ROUNDS", 60);
    let batch = env_usize("ALF_BENCH_BATCH", 200);
    const NAMES: [&str; 3] = ["reqwest", "alf_reqwest", "alf_reqwest_default"];
    let mut per_request: [Vec<f64>; 3] = Default::default();
    let mut ratios: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        let mut this_round = [0.0f64; 3];
        for k in 0..3 {
            let which = (round + k) % 3;
            let started = Instant::now();
            s.rt.block_on(async {
                for _ in 0..batch {
                    match which {
                        0 => common::raw_get(&s.raw, &s.url, &s.auth).await,
                        1 => common::alf_get(&s.alf, &s.url).await,
                        _ => common::alf_get(&s.alf_default, &s.url).await,
                    };
                }
            });
            this_round[which] = started.elapsed().as_nanos() as f64 / batch as f64;
        }
        for which in 0..3 {
            per_request[which].push(this_round[which]);
            ratios[which].push(this_round[which] / this_round[0]);
        }
    }
    let medians: Vec<f64> = per_request.iter_mut().map(|v| median(v)).collect();
    println!();
    println!("interleaved: {rounds} rounds x {batch} requests per client, median time per request");
    for which in 0..3 {
        println!(
            "  {:<20} {:>9.0} ns/request   ratio of medians {:.3}   median of per-round ratios {:.3}",
            NAMES[which],
            medians[which],
            medians[which] / medians[0],
            median(&mut ratios[which]),
        );
    }
    println!("  goal: alf_reqwest / reqwest <= 1.03 at the median");
}

/// Where criterion writes its estimates: `$CRITERION_HOME`, else `<target>/criterion`.
fn criterion_home() -> Option<std::path::PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(home.into());
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(std::path::PathBuf::from(target).join("criterion"));
    }
    // <target>/release/deps/overhead-<hash>
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

/// The median criterion estimated for `overhead/<name>`, in ns (read from its
/// `estimates.json` without a JSON parser: the first `point_estimate` after `"median"`).
fn criterion_median(name: &str) -> Option<f64> {
    let path = criterion_home()?.join(format!("overhead/{name}/new/estimates.json"));
    let text = std::fs::read_to_string(path).ok()?;
    let rest = &text[text.find("\"median\"")?..];
    let rest = &rest[rest.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

fn print_criterion_medians() {
    let names = ["reqwest", "alf_reqwest", "alf_reqwest_default"];
    let medians: Vec<Option<f64>> = names.iter().map(|n| criterion_median(n)).collect();
    let Some(raw) = medians[0] else { return };
    println!();
    println!("criterion medians (per request):");
    for (name, m) in names.iter().zip(&medians) {
        if let Some(m) = m {
            println!("  {name:<20} {m:>9.0} ns   ratio {:.3}", m / raw);
        }
    }
}

fn main() {
    let setup = Setup::new();
    let mut c = Criterion::default().configure_from_args();
    criterion_group(&mut c, &setup);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        print_criterion_medians();
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: skip the long loop then.
    if std::env::args().any(|a| a == "--bench") {
        interleaved(&setup);
    }
}
