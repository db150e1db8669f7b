//! Shared code of the load binaries (`soak`, `herd`, `fleet`, `rollover`, `load-server`): the
//! loopback server, command-line knobs, memory figures, latency percentiles, a counting
//! allocator, a Redis server on a free port.

pub mod heap;
pub mod redis;
pub mod server;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use server::{CLIENT_ID, CLIENT_SECRET, ID_HEADER, LoadServer, ServerConfig, ServerState};

/// Microseconds since the Unix epoch (wall clock: comparable between processes, and with
/// Python's `time.time()`).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Standard base64 (with padding), for the `Basic` header the server expects.
pub fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A small, fast pseudo-random generator (xorshift64*), good enough for fault injection.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced by a constant).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x2545_f491_4f6c_dd1d
        } else {
            seed
        })
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// Command-line knobs: `--name value` or `--name=value`, else `$ALF_BENCH_NAME` (upper case,
/// `-` as `_`), else a default that depends on `--quick`.
#[derive(Debug, Clone)]
pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
    quick: bool,
}

impl Args {
    /// The process's arguments.
    pub fn from_env() -> Self {
        Self::parse(std::env::args().skip(1))
    }

    /// Parse arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Self {
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        let mut it = args.into_iter().peekable();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                continue;
            };
            if let Some((k, v)) = name.split_once('=') {
                values.insert(k.to_owned(), v.to_owned());
            } else if it.peek().is_some_and(|n| !n.starts_with("--")) {
                values.insert(name.to_owned(), it.next().unwrap_or_default());
            } else {
                flags.push(name.to_owned());
            }
        }
        let mut args = Self {
            values,
            flags,
            quick: false,
        };
        args.quick = args.flag("quick");
        args
    }

    fn env(name: &str) -> Option<String> {
        let key = format!("ALF_BENCH_{}", name.to_uppercase().replace('-', "_"));
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }

    /// Whether `--quick` was given (or `ALF_BENCH_QUICK=1`).
    pub fn quick(&self) -> bool {
        self.quick
    }

    /// Whether `--name` was given (or `$ALF_BENCH_NAME` is `1`/`true`).
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
            || self
                .values
                .get(name)
                .is_some_and(|v| v == "1" || v == "true")
            || Self::env(name).is_some_and(|v| v == "1" || v == "true")
    }

    /// A raw value, if given.
    pub fn value(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned().or_else(|| Self::env(name))
    }

    /// `--name`'s value, else `full` (or `quick` under `--quick`). Exits with a message when
    /// the value does not parse.
    pub fn get<T: FromStr>(&self, name: &str, full: T, quick: T) -> T {
        match self.value(name) {
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("error: --{name} {v:?} is not a valid value");
                std::process::exit(2)
            }),
            None if self.quick => quick,
            None => full,
        }
    }
}

/// Memory figures of this process from `/proc/self/status`, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcMemory {
    /// Peak resident set size (`VmHWM`).
    pub hwm_kib: u64,
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
}

impl ProcMemory {
    /// Read `/proc/self/status` (zeros where it cannot be read).
    pub fn now() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Self {
            hwm_kib: field("VmHWM:"),
            rss_kib: field("VmRSS:"),
        }
    }
}

/// Latency percentiles of a set of samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Percentiles {
    /// Percentiles (nearest rank) of `samples`, which are sorted in place.
    pub fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let n = samples.len();
        if n == 0 {
            return Self::default();
        }
        let at = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Self {
            count: n,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: samples[n - 1],
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={:>7}  p50={:>8}  p90={:>8}  p99={:>8}  p99.9={:>8}  max={:>8}",
            self.count,
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }
}

/// A duration in milliseconds with 3 decimals, e.g. `0.412ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.3}ms", d.as_secs_f64() * 1e3)
}

/// An alf configuration for the load server at `base` (`http://127.0.0.1:<port>`) with the
/// refresh margin and jitter given (the rest default).
pub fn alf_config(base: &str, margin: Duration, jitter: Duration) -> alf::Config {
    let endpoint = format!("{base}/token");
    alf::Config::builder(&endpoint, CLIENT_ID, CLIENT_SECRET)
        .refresh_policy(
            alf::RefreshPolicy::DEFAULT
                .margin(alf::Duration::from_millis(margin.as_millis() as u64))
                .jitter(alf::Duration::from_millis(jitter.as_millis() as u64)),
        )
        .build()
        .expect("valid alf configuration")
}

/// The machine: `nproc`, CPU model, kernel, for the reports.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// The server's knobs from the command line: `--lifetime S`, `--token-delay-ms MS`,
/// `--unauthorized-ppm N`, `--port P`.
pub fn server_config(args: &Args) -> ServerConfig {
    ServerConfig {
        lifetime_secs: args.get("lifetime", 1, 1),
        token_delay: Duration::from_millis(args.get("token-delay-ms", 0, 0)),
        unauthorized_ppm: args.get("unauthorized-ppm", 0, 0),
        port: args.get("port", 0, 0),
    }
}

/// With `--serve`: run the load server until killed (printing `port=<port>`), and exit. Every
/// load binary accepts it, so each can start its server as a separate process.
pub fn serve_if_asked(args: &Args) {
    if !args.flag("serve") {
        return;
    }
    match server::serve_forever(server_config(args)) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: load server: {e}");
            std::process::exit(1)
        }
    }
}

/// A load server in a child process (this binary run again with `--serve`), killed on drop.
#[derive(Debug)]
pub struct ChildServer {
    child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl ChildServer {
    /// Start this executable with `--serve` and `extra` arguments; waits for its port.
    pub fn spawn(extra: &[String]) -> std::io::Result<Self> {
        use std::io::BufRead;
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new(exe)
            .arg("--serve")
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or(std::io::ErrorKind::BrokenPipe)?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("port=")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("server said {line:?}")))?;
        Ok(Self { child, port })
    }

    /// `http://127.0.0.1:<port>`
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A number field of the server's `/stats` JSON (0 when absent).
pub fn json_u64(json: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    json.find(&pat)
        .map(|i| &json[i + pat.len()..])
        .and_then(|rest| {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .unwrap_or(0)
}

/// A logger printing every record at or above `level` to stderr, with the Unix time and the
/// process id (to see alf's own decisions: `fleet --debug`).
#[derive(Debug)]
pub struct StderrLogger(log::LevelFilter);

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.0
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let t = unix_micros();
            eprintln!(
                "{}.{:06} pid {} {} {}",
                t / 1_000_000,
                t % 1_000_000,
                std::process::id(),
                record.level(),
                record.args()
            );
        }
    }
    fn flush(&self) {}
}

/// Install [`StderrLogger`] at `level` (once per process; later calls do nothing).
pub fn log_to_stderr(level: log::LevelFilter) {
    if log::set_boxed_logger(Box::new(StderrLogger(level))).is_ok() {
        log::set_max_level(level);
    }
}
