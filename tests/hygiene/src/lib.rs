//! Secret hygiene across alf's whole host test suite.
//!
//! Every host test binary calls [`init`] (the loopback servers of the tests do it when they
//! start) and reports what went over the wire with [`observe_request`] and
//! [`observe_response`]: the `Authorization` values sent, the client ids and secrets inside
//! Basic credentials and `client_secret_post` bodies, and every `access_token` issued. When the
//! environment variable `ALF_LOG_CAPTURE` names a directory, [`init`] installs a `log` logger
//! at TRACE that appends every record (alf's own, reqwest's, and the `tracing` events of hyper
//! and the others, which reach `log` when no `tracing` subscriber is set) to
//! `<dir>/<binary>-<pid>.log`, and the observations go to `<dir>/<binary>-<pid>.secrets`.
//!
//! After the suite, `alf-log-scan <dir>` ([`scan`]) reads them all and fails if any log line
//! holds any of the secrets as a whole word. Without `ALF_LOG_CAPTURE` everything here does
//! nothing, so a plain `cargo test` stays quiet and fast.
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use base64ct::{Base64, Encoding};

pub mod servers;

/// The environment variable naming the capture directory.
pub const CAPTURE_ENV: &str = "ALF_LOG_CAPTURE";

/// Values shorter than this are not recorded: they would match ordinary words.
pub const MIN_SECRET_LEN: usize = 4;

struct Capture {
    log: Mutex<File>,
    secrets: Mutex<File>,
}

static CAPTURE: OnceLock<Option<Capture>> = OnceLock::new();

fn capture() -> Option<&'static Capture> {
    CAPTURE
        .get_or_init(|| {
            let dir = PathBuf::from(std::env::var_os(CAPTURE_ENV)?);
            std::fs::create_dir_all(&dir).ok()?;
            let exe = std::env::current_exe().ok();
            let name = exe
                .as_deref()
                .and_then(Path::file_stem)
                .and_then(|s| s.to_str())
                .unwrap_or("test");
            let stem = format!("{name}-{}", std::process::id());
            let open = |ext: &str| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{stem}.{ext}")))
                    .ok()
            };
            Some(Capture {
                log: Mutex::new(open("log")?),
                secrets: Mutex::new(open("secrets")?),
            })
        })
        .as_ref()
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if let Some(c) = capture() {
            let line = format!(
                "{} {}: {}\n",
                record.level(),
                record.target(),
                record.args()
            );
            // One write per line: the process may exit without dropping anything.
            let _ = c.log.lock().map(|mut f| f.write_all(line.as_bytes()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Start capturing this test binary's log records, if `ALF_LOG_CAPTURE` is set. Idempotent;
/// does nothing when another logger is already installed (a test that captures logs itself).
pub fn init() {
    if capture().is_some() && log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

/// Record `value` as a secret that no log line may contain.
pub fn secret(value: &str) {
    let value = value.trim();
    if value.len() < MIN_SECRET_LEN || value.contains('\n') {
        return;
    }
    if let Some(c) = capture() {
        let _ = c
            .secrets
            .lock()
            .map(|mut f| f.write_all(format!("{value}\n").as_bytes()));
    }
}

/// Record the secrets of a request a test server received (or a test transport sent): the
/// whole `Authorization` value, the bearer token or the Basic credentials in it (encoded and
/// decoded: client id and secret, percent-encoded and plain), and `client_secret` /
/// `client_assertion` form parameters of the body.
pub fn observe_request(authorization: Option<&str>, body: &[u8]) {
    init();
    if let Some(value) = authorization {
        secret(value);
        if let Some((scheme, rest)) = value.split_once(' ') {
            secret(rest);
            if scheme.eq_ignore_ascii_case("basic")
                && let Ok(decoded) = Base64::decode_vec(rest.trim())
            {
                let decoded = String::from_utf8_lossy(&decoded).into_owned();
                if let Some((_, pass)) = decoded.split_once(':') {
                    secret(pass);
                    secret(&percent_decode(pass));
                }
            }
        }
    }
    let body = String::from_utf8_lossy(body);
    for pair in body.split('&') {
        if let Some((name, value)) = pair.split_once('=')
            && (name == "client_secret" || name == "client_assertion")
        {
            secret(value);
            secret(&percent_decode(&value.replace('+', " ")));
        }
    }
}

/// Record the `access_token` of a token response body a test server sent (or a test transport
/// received).
pub fn observe_response(body: &[u8]) {
    init();
    let body = String::from_utf8_lossy(body);
    let mut rest = body.as_ref();
    while let Some(at) = rest.find("\"access_token\"") {
        rest = &rest[at + "\"access_token\"".len()..];
        let Some(value) = rest
            .trim_start()
            .strip_prefix(':')
            .map(str::trim_start)
            .and_then(|v| v.strip_prefix('"'))
        else {
            continue;
        };
        if let Some(end) = value.find('"') {
            secret(&value[..end]);
        }
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Bytes that can be part of a token or credential: a secret found inside a longer run of
/// them is a different value, not a leak (`tok-1` in `tok-12`, `secret` in `client_secret`).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=_%".contains(&b)
}

/// Whether `line` holds `secret` delimited by non-word bytes (or the line's ends).
pub fn contains_word(line: &str, secret: &str) -> bool {
    let (line_b, secret_b) = (line.as_bytes(), secret.as_bytes());
    let mut from = 0;
    while let Some(i) = line[from..].find(secret) {
        let start = from + i;
        let end = start + secret.len();
        let before = start == 0 || !is_word_byte(line_b[start - 1]);
        let after = end == line_b.len() || !is_word_byte(line_b[end]);
        // A secret that itself starts or ends with a non-word byte is delimited by itself.
        let before = before || !is_word_byte(secret_b[0]);
        let after = after || !is_word_byte(secret_b[secret_b.len() - 1]);
        if before && after {
            return true;
        }
        from = start + 1;
    }
    false
}

/// What [`scan`] found.
#[derive(Debug, Default)]
pub struct Report {
    /// Log files read (one per test process that captured).
    pub log_files: usize,
    /// Log lines read.
    pub lines: usize,
    /// Distinct secrets observed on the wire.
    pub secrets: usize,
    /// `(log file, line, secret)` for every leak.
    pub leaks: Vec<(String, String, String)>,
}

/// Read every `*.log` and `*.secrets` file of `dir` and look for every secret in every line.
pub fn scan(dir: &Path) -> std::io::Result<Report> {
    let mut report = Report::default();
    let mut secrets = std::collections::BTreeSet::new();
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("secrets") => {
                for s in std::fs::read_to_string(&path)?.lines() {
                    secrets.insert(s.to_owned());
                }
            }
            Some("log") => logs.push(path),
            _ => {}
        }
    }
    report.secrets = secrets.len();
    report.log_files = logs.len();
    for path in logs {
        let text = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
        for line in text.lines() {
            report.lines += 1;
            for s in &secrets {
                if contains_word(line, s) {
                    let file = path.file_name().unwrap_or_default().to_string_lossy();
                    report
                        .leaks
                        .push((file.into_owned(), line.to_owned(), s.clone()));
                }
            }
        }
    }
    Ok(report)
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn unix_now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the system clock is after 1970");
    u64::try_from(since.as_millis()).expect("milliseconds fit in u64")
}

/// Whole seconds since the Unix epoch, from the system clock.
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_only() {
        assert!(contains_word("token tok-1 sent", "tok-1"));
        assert!(contains_word("tok-1", "tok-1"));
        assert!(contains_word("x=\"tok-1\"", "tok-1"));
        assert!(!contains_word("token tok-12 sent", "tok-1"));
        assert!(!contains_word("method client_secret_basic", "secret"));
        assert!(contains_word("the secret leaked", "secret"));
        assert!(contains_word("got Bearer abc.def", "Bearer abc.def"));
        assert!(contains_word("a tok-12 and a tok-1", "tok-1"));
    }

    #[test]
    fn scan_finds_a_planted_leak_and_only_it() {
        let dir = std::env::temp_dir().join(format!("alf-hygiene-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.secrets"), "s3cret-value\ntok-77\n").unwrap();
        std::fs::write(
            dir.join("a.log"),
            "DEBUG alf: token fetched\nTRACE x: sending tok-770\nWARN y: got s3cret-value back\n",
        )
        .unwrap();
        let report = scan(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((report.log_files, report.lines, report.secrets), (1, 3, 2));
        assert_eq!(report.leaks.len(), 1);
        assert_eq!(report.leaks[0].2, "s3cret-value");
    }
}
