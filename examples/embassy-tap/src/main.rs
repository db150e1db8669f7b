//! alf-reqwless on the host, checked end to end: the embassy executor, embassy-net over a TAP
//! device, and one `&'static alf::Client` shared by several tasks, against a real
//! authorization server (alf's Authlib test server, `tests/servers/authlib_server.py`). The alf
//! parts are what firmware would run, with another network driver and time driver; the checks
//! around them use `std`.
//!
//! The stack is 10.42.0.2/24 on `tap0` (static configuration); the server is at 10.42.0.1. Run
//! it inside a network namespace that holds only `lo` and `tap0`, so that nothing leaves the
//! machine: `tests/tap.sh` in alf's repository does all of it (see "embassy-net on a host" in
//! alf's design notes).
//!
//! What it checks, in order, printing `ok` or `FAIL` for each check, then `N passed, N failed`,
//! and exiting with 0 only if every check passed:
//! 1. Cold start: several tasks ask for a token at the same moment; the server sees one token
//!    request, and every task gets 200 with the same token.
//! 2. Steady state, for two token lifetimes and a half: the tasks keep calling the API while a
//!    background task keeps the token fresh. Tokens are reused, each is replaced before it
//!    expires (refresh margin: a third of the lifetime), and no request gets a 401.
//! 3. 401 replay: right after a refresh, the example revokes every token at the server
//!    (`POST /_revoke_all`); the next request gets 200 after exactly one 401 and one new token.
//! 4. Totals: what the client sent (counted in its transport) equals what the server saw
//!    (`GET /_stats`). The line `ALF_TAP_EXPECT ...` gives these counts to `tests/tap.sh`,
//!    which checks them against the server once more.
//!
//! Environment: `ALF_CLIENT_ID` and `ALF_CLIENT_SECRET` (required; the secret is never
//! printed), `ALF_TOKEN_URL` (default `http://10.42.0.1:8080/oauth/token`), `ALF_API_URL`
//! (default `http://10.42.0.1:8080/api/resource`; the test hooks `/_stats` and `/_revoke_all`
//! are at the same origin), `ALF_SCOPE` (optional), `ALF_LIFETIME` (the server's token lifetime
//! in seconds, default 3), `ALF_TAP` (default `tap0`), `RUST_LOG` (e.g. `debug`).

use core::fmt::Display;
use core::sync::atomic::{AtomicU32, Ordering};
use std::collections::BTreeMap;

use alf::http::{Method, Request, Response};
use alf::{Client, Config, RefreshPolicy, Transport};
use alf_reqwless::{EmbassyClock, ReqwlessTransport};
use embassy_executor::Spawner;
use embassy_net::dns::DnsSocket;
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::{Ipv4Address, Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer};
use static_cell::StaticCell;

/// alf sends one request at a time through a client, so one TCP socket is enough.
type Tcp = TcpClient<'static, 1, 1024, 1024>;
type Net = ReqwlessTransport<'static, Tcp, DnsSocket<'static>>;
type OAuthClient = Client<Counting<Net>, EmbassyClock>;

/// Tasks sharing the client.
const WORKERS: usize = 3;

// ---------------------------------------------------------------------------------------------
// The client's transport, counted

/// Requests the client has sent to the token endpoint, and to anywhere else (the API).
static SENT_TOKEN: AtomicU32 = AtomicU32::new(0);
static SENT_API: AtomicU32 = AtomicU32::new(0);
/// When each token request was sent.
static TOKEN_SENT_AT: std::sync::Mutex<Vec<Instant>> = std::sync::Mutex::new(Vec::new());

/// alf's transport with a count of the requests it sends, to compare with the server's.
struct Counting<T> {
    inner: T,
    token_url: &'static str,
}

impl<T: Transport> Transport for Counting<T> {
    type Error = T::Error;

    async fn send<'b>(
        &mut self,
        request: &Request<'_>,
        rx: &'b mut [u8],
    ) -> Result<Response<'b>, T::Error> {
        if request.url == self.token_url {
            SENT_TOKEN.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut at) = TOKEN_SENT_AT.lock() {
                at.push(Instant::now());
            }
        } else {
            SENT_API.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.send(request, rx).await
    }
}

/// What the client has sent so far.
#[derive(Debug, Clone, Copy)]
struct Sent {
    token: u64,
    api: u64,
}

fn sent() -> Sent {
    Sent {
        token: SENT_TOKEN.load(Ordering::Relaxed).into(),
        api: SENT_API.load(Ordering::Relaxed).into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Workers

/// What the main task asks of a worker.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// One request, at once.
    Once,
    /// Requests every `period` until `until`.
    Until { until: Instant, period: Duration },
}

/// What a worker did in one job.
#[derive(Debug, Default)]
struct Report {
    /// Resource requests made (replays not counted).
    requests: u64,
    /// Of which answered 200.
    ok: u64,
    /// What went wrong otherwise.
    problems: Vec<String>,
    /// When the worker first asked for a token, and when it first got one.
    first_ask: Option<Instant>,
    first_got: Option<Instant>,
    /// Each token generation seen, with when this worker first saw it.
    generations: BTreeMap<u32, Instant>,
}

static JOBS: [Signal<CriticalSectionRawMutex, Job>; WORKERS] = [const { Signal::new() }; WORKERS];
static REPORTS: Channel<CriticalSectionRawMutex, Report, WORKERS> = Channel::new();

#[embassy_executor::task(pool_size = WORKERS)]
async fn worker(id: usize, client: &'static OAuthClient, api: &'static str) {
    loop {
        let job = JOBS[id].wait().await;
        let mut report = Report::default();
        match job {
            Job::Once => call_api(client, api, &mut report).await,
            Job::Until { until, period } => {
                while Instant::now() < until {
                    call_api(client, api, &mut report).await;
                    Timer::after(period).await;
                }
            }
        }
        REPORTS.send(report).await;
    }
}

/// Note which token the client hands out now, then call the API with it.
async fn call_api(client: &OAuthClient, api: &str, report: &mut Report) {
    let asked = Instant::now();
    let lease = client.token().await;
    let got = Instant::now();
    report.first_ask.get_or_insert(asked);
    report.first_got.get_or_insert(got);
    match lease {
        Ok(lease) => {
            report.generations.entry(lease.generation).or_insert(got);
        }
        Err(e) => {
            report.problems.push(format!("token: {e}"));
            return;
        }
    }
    report.requests += 1;
    let mut rx = [0u8; 1024];
    match client.send(&Request::new(Method::Get, api), &mut rx).await {
        Ok(r) if r.status == 200 => report.ok += 1,
        Ok(r) => report.problems.push(format!("API answered {}", r.status)),
        Err(e) => report
            .problems
            .push(format!("API request failed: {e} (kind {:?})", e.kind())),
    }
}

/// Give every worker `job` at the same moment, and collect their reports.
async fn run_workers(job: Job) -> Vec<Report> {
    for signal in &JOBS {
        signal.signal(job);
    }
    let mut reports = Vec::new();
    for _ in 0..WORKERS {
        reports.push(REPORTS.receive().await);
    }
    reports
}

/// Keeps the token fresh in the background, so that workers do not wait for one.
#[embassy_executor::task]
async fn refresher(client: &'static OAuthClient) {
    client.keep_fresh().await;
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

// ---------------------------------------------------------------------------------------------
// The test server's hooks, through the same network stack but not through alf

/// The counters of the test server's `GET /_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stats {
    token_requests: u64,
    token_errors: u64,
    resource_requests: u64,
    resource_401: u64,
}

impl Stats {
    fn since(self, earlier: Stats) -> Stats {
        Stats {
            token_requests: self.token_requests.saturating_sub(earlier.token_requests),
            token_errors: self.token_errors.saturating_sub(earlier.token_errors),
            resource_requests: self
                .resource_requests
                .saturating_sub(earlier.resource_requests),
            resource_401: self.resource_401.saturating_sub(earlier.resource_401),
        }
    }
}

/// The unsigned integer after `"key":` in a JSON text (enough for the server's flat counters).
fn json_number(json: &str, key: &str) -> Option<u64> {
    let quoted = format!("\"{key}\":");
    let at = json.find(&quoted)? + quoted.len();
    let rest = json[at..].trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

struct Hooks {
    transport: Net,
    stats_url: String,
    revoke_url: String,
}

impl Hooks {
    async fn call(&mut self, method: Method, url: &str) -> Result<String, String> {
        let mut rx = [0u8; 2048];
        let r = self
            .transport
            .send(&Request::new(method, url), &mut rx)
            .await
            .map_err(|e| format!("{} {url}: {e:?}", method.as_str()))?;
        let body = String::from_utf8_lossy(r.body).into_owned();
        if r.status != 200 {
            return Err(format!("{} {url}: {} {body}", method.as_str(), r.status));
        }
        Ok(body)
    }

    async fn stats(&mut self) -> Result<Stats, String> {
        let url = self.stats_url.clone();
        let body = self.call(Method::Get, &url).await?;
        let n = |key| json_number(&body, key).ok_or_else(|| format!("no {key} in {body}"));
        Ok(Stats {
            token_requests: n("token_requests")?,
            token_errors: n("token_errors")?,
            resource_requests: n("resource_requests")?,
            resource_401: n("resource_401")?,
        })
    }

    /// Revoke every token issued so far; returns how many.
    async fn revoke_all(&mut self) -> Result<u64, String> {
        let url = self.revoke_url.clone();
        let body = self.call(Method::Post, &url).await?;
        json_number(&body, "revoked").ok_or_else(|| format!("no count in {body}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Checks

#[derive(Debug, Default)]
struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn check(&mut self, ok: bool, what: impl Display) -> bool {
        if ok {
            self.passed += 1;
            println!("ok   {what}");
        } else {
            self.failed += 1;
            println!("FAIL {what}");
        }
        ok
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_millis() as f64 / 1000.0)
}

/// Everything a set of reports says, merged.
struct Merged {
    requests: u64,
    ok: u64,
    problems: Vec<String>,
    generations: BTreeMap<u32, Instant>,
}

fn merge(reports: &[Report], into: &mut BTreeMap<u32, Instant>) -> Merged {
    let mut m = Merged {
        requests: 0,
        ok: 0,
        problems: Vec::new(),
        generations: BTreeMap::new(),
    };
    for r in reports {
        m.requests += r.requests;
        m.ok += r.ok;
        m.problems.extend(r.problems.iter().cloned());
        for (&g, &at) in &r.generations {
            for map in [&mut m.generations, &mut *into] {
                let seen = map.entry(g).or_insert(at);
                *seen = (*seen).min(at);
            }
        }
    }
    m
}

fn problems(m: &Merged) -> String {
    if m.problems.is_empty() {
        String::new()
    } else {
        format!(" ({})", m.problems.join("; "))
    }
}

struct Scenario<'a> {
    client: &'static OAuthClient,
    api: &'static str,
    hooks: &'a mut Hooks,
    lifetime: Duration,
    margin: Duration,
    t: &'a mut Tally,
    /// Every token generation seen, with when it was first seen.
    generations: BTreeMap<u32, Instant>,
}

impl Scenario<'_> {
    async fn run(&mut self, spawner: Spawner) -> Result<(), String> {
        self.cold_start().await?;
        spawner.spawn(refresher(self.client).map_err(|e| format!("spawn: {e:?}"))?);
        self.steady().await?;
        self.replay().await?;
        self.totals().await
    }

    /// Several tasks ask for a token at the same moment: one token request serves them all.
    async fn cold_start(&mut self) -> Result<(), String> {
        let before = self.hooks.stats().await?;
        self.t.check(
            before == Stats::default(),
            "cold start: the server has seen no request yet",
        );
        let reports = run_workers(Job::Once).await;
        let after = self.hooks.stats().await?.since(before);
        let last_ask = reports.iter().filter_map(|r| r.first_ask).max();
        let first_got = reports.iter().filter_map(|r| r.first_got).min();
        self.t.check(
            matches!((last_ask, first_got), (Some(a), Some(g)) if a < g),
            format_args!("cold start: {WORKERS} tasks asked for a token before any got one"),
        );
        let m = merge(&reports, &mut self.generations);
        self.t.check(
            m.requests == WORKERS as u64 && m.ok == m.requests,
            format_args!(
                "cold start: {} of {WORKERS} requests answered 200{}",
                m.ok,
                problems(&m)
            ),
        );
        self.t.check(
            m.generations.len() == 1 && reports.iter().all(|r| r.generations.len() == 1),
            format_args!(
                "cold start: every task got the same token (generations {:?})",
                m.generations.keys().collect::<Vec<_>>()
            ),
        );
        let s = sent();
        self.t.check(
            s.token == 1 && after.token_requests == 1,
            format_args!(
                "cold start: one token request for {WORKERS} tasks (client sent {}, server saw {})",
                s.token, after.token_requests
            ),
        );
        self.t.check(
            after.resource_requests == WORKERS as u64 && after.resource_401 == 0,
            format_args!(
                "cold start: the server saw {} API requests, {} answered 401",
                after.resource_requests, after.resource_401
            ),
        );
        Ok(())
    }

    /// The tasks keep calling the API for two lifetimes and a half while `keep_fresh` runs.
    async fn steady(&mut self) -> Result<(), String> {
        let before = self.hooks.stats().await?;
        let sent_before = sent();
        let length = self.lifetime * 2 + Duration::from_millis(500);
        let until = Instant::now() + length;
        let reports = run_workers(Job::Until {
            until,
            period: Duration::from_millis(100),
        })
        .await;
        let after = self.hooks.stats().await?.since(before);
        let fetched = sent().token - sent_before.token;
        let m = merge(&reports, &mut self.generations);
        self.t.check(
            m.requests > 0 && m.ok == m.requests,
            format_args!(
                "steady: {} of {} requests from {WORKERS} tasks over {} answered 200{}",
                m.ok,
                m.requests,
                secs(length),
                problems(&m)
            ),
        );
        self.t.check(
            after.resource_401 == 0,
            format_args!(
                "steady: no 401, so no expired token was sent (401s: {})",
                after.resource_401
            ),
        );
        self.t.check(
            fetched == after.token_requests && m.requests >= 4 * (fetched + 1),
            format_args!(
                "steady: tokens reused: {fetched} token requests (server saw {}) for {} API requests",
                after.token_requests, m.requests
            ),
        );
        // Tokens seen in this phase that were new in it: the refreshes. A refresh in the
        // phase's last moments may have come after the workers' last request.
        let refreshed = m.generations.len() as u64 - 1;
        self.t.check(
            refreshed >= 2 && (refreshed..=refreshed + 1).contains(&fetched),
            format_args!(
                "steady: refreshed {refreshed} times in {} ({fetched} token requests)",
                secs(length)
            ),
        );
        // A token expires `lifetime` after its request was sent, and is due for refresh
        // `margin` earlier: each token request (the cold start's and this phase's) should be
        // sent when the previous token is due, and before it expires.
        let sent_at = TOKEN_SENT_AT.lock().map(|v| v.clone()).unwrap_or_default();
        let gaps: Vec<Duration> = sent_at.windows(2).map(|w| w[1] - w[0]).collect();
        let due = self.lifetime - self.margin;
        self.t.check(
            gaps.len() as u64 == fetched
                && gaps
                    .iter()
                    .all(|&g| g + Duration::from_millis(5) >= due && g < self.lifetime),
            format_args!(
                "steady: each token refreshed when due ({} after it was requested), before it expired ({}): after [{}]",
                secs(due),
                secs(self.lifetime),
                gaps.iter().map(|&g| secs(g)).collect::<Vec<_>>().join(", "),
            ),
        );
        Ok(())
    }

    /// Right after a refresh, revoke every token: the next request is replayed once.
    async fn replay(&mut self) -> Result<(), String> {
        // Wait for the next refresh, so that none is due while this runs.
        let last = self.generations.keys().next_back().copied().unwrap_or(0);
        let deadline = Instant::now() + self.lifetime;
        let current = loop {
            let g = self
                .client
                .token()
                .await
                .map_err(|e| format!("token: {e}"))?
                .generation;
            if g != last || Instant::now() >= deadline {
                break g;
            }
            Timer::after(Duration::from_millis(20)).await;
        };
        self.t.check(
            current != last,
            format_args!("replay: a new token arrived (generation {last} -> {current})"),
        );
        let before = self.hooks.stats().await?;
        let sent_before = sent();
        let revoked = self.hooks.revoke_all().await?;
        self.t.check(
            revoked >= 1,
            format_args!("replay: the server revoked all {revoked} tokens it issued"),
        );
        let mut rx = [0u8; 1024];
        let status = match self
            .client
            .send(&Request::new(Method::Get, self.api), &mut rx)
            .await
        {
            Ok(r) => r.status.to_string(),
            Err(e) => format!("error {e}"),
        };
        let after = self.hooks.stats().await?.since(before);
        let s = sent();
        let (api, token) = (s.api - sent_before.api, s.token - sent_before.token);
        self.t.check(
            status == "200",
            format_args!("replay: the request after the revocation answered {status}"),
        );
        self.t.check(
            after.resource_401 == 1 && after.resource_requests == 2 && api == 2,
            format_args!(
                "replay: exactly one replay: client sent {api} API requests, server saw {}, 401s: {}",
                after.resource_requests, after.resource_401
            ),
        );
        self.t.check(
            token == 1 && after.token_requests == 1,
            format_args!(
                "replay: one new token for the replay (client sent {token}, server saw {})",
                after.token_requests
            ),
        );
        let now = self
            .client
            .token()
            .await
            .map_err(|e| format!("token: {e}"))?
            .generation;
        self.generations.entry(now).or_insert_with(Instant::now);
        self.t.check(
            now != current,
            format_args!("replay: the rejected token was dropped (generation {current} -> {now})"),
        );

        // The new token is reused.
        let before = self.hooks.stats().await?;
        let status = match self
            .client
            .send(&Request::new(Method::Get, self.api), &mut rx)
            .await
        {
            Ok(r) => r.status.to_string(),
            Err(e) => format!("error {e}"),
        };
        let after = self.hooks.stats().await?.since(before);
        self.t.check(
            status == "200" && after.token_requests == 0 && after.resource_401 == 0,
            format_args!(
                "replay: the next request answered {status} with the new token (new token requests: {})",
                after.token_requests
            ),
        );
        Ok(())
    }

    /// What the client sent equals what the server saw.
    async fn totals(&mut self) -> Result<(), String> {
        let server = self.hooks.stats().await?;
        let s = sent();
        self.t.check(
            server.token_requests == s.token
                && server.resource_requests == s.api
                && server.resource_401 == 1
                && server.token_errors == 0,
            format_args!(
                "totals: client sent {} token and {} API requests; server saw {} and {}, 401s: {}, token errors: {}",
                s.token,
                s.api,
                server.token_requests,
                server.resource_requests,
                server.resource_401,
                server.token_errors
            ),
        );
        println!(
            "ALF_TAP_EXPECT token_requests={} resource_requests={} resource_401=1 token_errors=0",
            s.token, s.api
        );
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Start-up

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("{name} is required");
        std::process::exit(2)
    })
}

/// `scheme://authority` of `url`.
fn origin(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    url[start..].find('/').map_or(url, |i| &url[..start + i])
}

fn finish(t: &Tally) -> ! {
    println!("{} passed, {} failed", t.passed, t.failed);
    std::process::exit(if t.failed == 0 && t.passed > 0 { 0 } else { 1 })
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    env_logger::init();
    let mut t = Tally::default();

    // Leaked once at start-up: tasks take `'static` arguments.
    let token_url: &'static str =
        env_or("ALF_TOKEN_URL", "http://10.42.0.1:8080/oauth/token").leak();
    let api: &'static str = env_or("ALF_API_URL", "http://10.42.0.1:8080/api/resource").leak();
    let client_id = required("ALF_CLIENT_ID");
    let secret = required("ALF_CLIENT_SECRET");
    let scope = std::env::var("ALF_SCOPE").ok();
    let lifetime = match env_or("ALF_LIFETIME", "3").parse::<u64>() {
        Ok(s) if s >= 2 => Duration::from_secs(s),
        _ => {
            eprintln!("ALF_LIFETIME must be a whole number of seconds, at least 2");
            std::process::exit(2)
        }
    };
    let margin = lifetime / 3;

    let tap = env_or("ALF_TAP", "tap0");
    let device = match TunTapDevice::new(&tap) {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "cannot open TAP device {tap}: {e} (run inside the namespace, see tests/tap.sh)"
            );
            std::process::exit(2)
        }
    };
    let net_config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(Ipv4Address::new(10, 42, 0, 2), 24),
        gateway: None,
        dns_servers: heapless::Vec::new(),
    });
    // Sockets: alf's TCP socket, the hooks' TCP socket, the DNS socket.
    static RESOURCES: StaticCell<StackResources<3>> = StaticCell::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let (stack, runner) = embassy_net::new(
        device,
        net_config,
        RESOURCES.init(StackResources::new()),
        seed,
    );
    spawner.spawn(net_task(runner).expect("spawn the network task"));
    stack.wait_config_up().await;
    println!("network up: 10.42.0.2/24 on {tap}");

    static TCP_STATE: StaticCell<TcpClientState<1, 1024, 1024>> = StaticCell::new();
    static TCP: StaticCell<Tcp> = StaticCell::new();
    static HOOKS_TCP_STATE: StaticCell<TcpClientState<1, 1024, 1024>> = StaticCell::new();
    static HOOKS_TCP: StaticCell<Tcp> = StaticCell::new();
    static DNS: StaticCell<DnsSocket<'static>> = StaticCell::new();
    let tcp = TCP.init(TcpClient::new(stack, TCP_STATE.init(TcpClientState::new())));
    let hooks_tcp = HOOKS_TCP.init(TcpClient::new(
        stack,
        HOOKS_TCP_STATE.init(TcpClientState::new()),
    ));
    let dns = DNS.init(DnsSocket::new(stack));
    let timeout = Duration::from_secs(10);
    let transport = Counting {
        inner: ReqwlessTransport::new(&*tcp, &*dns).with_timeout(timeout),
        token_url,
    };

    let mut builder = Config::builder(token_url, &client_id, &secret).refresh_policy(
        RefreshPolicy::DEFAULT
            .margin(alf::Duration::from_millis(margin.as_millis()))
            .jitter(alf::Duration::ZERO),
    );
    if let Some(scope) = &scope {
        builder = builder.scope(scope);
    }
    let config = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid alf configuration: {e}");
            std::process::exit(2)
        }
    };
    // The configuration holds its own copy of the secret (zeroized on drop); clear this one.
    secret.into_bytes().fill(0);

    static CLIENT: StaticCell<OAuthClient> = StaticCell::new();
    let client: &'static OAuthClient =
        CLIENT.init(Client::new(config, transport, EmbassyClock::new()));
    for id in 0..WORKERS {
        spawner.spawn(worker(id, client, api).expect("spawn a worker"));
    }

    let base = origin(api);
    let mut hooks = Hooks {
        transport: ReqwlessTransport::new(&*hooks_tcp, &*dns).with_timeout(timeout),
        stats_url: format!("{base}/_stats"),
        revoke_url: format!("{base}/_revoke_all"),
    };
    let mut scenario = Scenario {
        client,
        api,
        hooks: &mut hooks,
        lifetime,
        margin,
        t: &mut t,
        generations: BTreeMap::new(),
    };
    // Bounded: about three lifetimes are needed.
    let bound = lifetime * 4 + Duration::from_secs(15);
    match embassy_time::with_timeout(bound, scenario.run(spawner)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            t.check(false, format_args!("the scenario stopped: {e}"));
        }
        Err(_) => {
            t.check(
                false,
                format_args!("the scenario ended within {}", secs(bound)),
            );
        }
    }
    finish(&t)
}
