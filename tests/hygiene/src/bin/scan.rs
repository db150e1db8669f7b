//! `alf-log-scan <dir> [min-log-files]`: fail if any captured log line holds a secret.
//!
//! Prints how many log files, lines and secrets were read. Fails when `dir` holds fewer than
//! `min-log-files` log files (default 1) or no secrets at all: a capture that did not happen
//! must not pass as a clean one.

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: alf-log-scan <dir> [min-log-files]");
        std::process::exit(2);
    };
    let min_files: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    let report = match alf_test_hygiene::scan(std::path::Path::new(&dir)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("alf-log-scan: cannot read {dir}: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "log capture: {} test processes, {} log lines, {} distinct secrets/tokens/Authorization values observed on the wire",
        report.log_files, report.lines, report.secrets
    );
    let mut failed = false;
    if report.log_files < min_files || report.secrets == 0 || report.lines == 0 {
        eprintln!(
            "alf-log-scan: nothing (or too little) was captured: expected at least {min_files} log files, some lines and some secrets"
        );
        failed = true;
    }
    for (file, _line, _secret) in &report.leaks {
        // Neither the line nor the secret is printed: this output is a CI log too.
        eprintln!("alf-log-scan: LEAK in {file}: a log line holds a secret observed on the wire");
    }
    if !report.leaks.is_empty() {
        eprintln!(
            "alf-log-scan: {} leaking lines; rerun the suite with ALF_LOG_CAPTURE=<dir> and inspect the files",
            report.leaks.len()
        );
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
    println!("log capture: no secret in any line");
}
