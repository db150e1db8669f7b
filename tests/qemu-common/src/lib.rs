//! alf's core test cases, written once and run as firmware under QEMU (Cortex-M4F, Cortex-M0,
//! RISC-V 32) and on the host.
//!
//! `no_std`, no allocator: each case is a plain `fn() -> Result<(), Failure>` that drives alf
//! through its public API, the async parts with `embassy_futures::block_on` and alf's own
//! `testing` doubles (`ScriptedTransport`, `MockClock`).
//!
//! [`run`] prints one line per case, `ok <name>` or `FAILED <name>` (followed by an indented
//! line saying which check failed), then `N passed, N failed`. A panic (for example a
//! `ScriptedTransport` expectation that does not match) cannot be caught without unwinding:
//! the firmware's panic handler calls [`report_panic`], which names the running case and
//! prints the summary line before the firmware exits with a failure.

#![no_std]
// A `Failure` carries its message inline (no allocator); it is returned once per failing case.
#![allow(clippy::result_large_err)]

#[macro_use]
mod check;
mod driver;
mod machine;
pub mod stack;
mod wire;

use core::cell::Cell;
use core::fmt::Write;

pub use check::Failure;

/// What one case returns.
pub type CaseResult = Result<(), Failure>;

/// One named test case.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Printed after `ok` / `FAILED`.
    pub name: &'static str,
    /// The case itself.
    pub run: fn() -> CaseResult,
}

macro_rules! cases {
    ($($module:ident :: $name:ident),* $(,)?) => {
        &[$(Case { name: stringify!($name), run: $module::$name }),*]
    };
}

/// Every case, in the order they run.
pub static CASES: &[Case] = cases![
    wire::config_basic_rfc6749_vector,
    wire::config_basic_reserved_characters,
    wire::config_form_body_scopes_params_post_auth,
    wire::config_rejects_invalid_input,
    wire::config_debug_and_store_key_hold_no_secret,
    wire::parse_good_token,
    wire::parse_escaped_slash,
    wire::parse_expires_in_string_and_float,
    wire::parse_expires_in_zero_and_negative_rejected,
    wire::parse_expires_in_missing_uses_default,
    wire::parse_expires_in_huge_is_capped,
    wire::parse_unknown_token_type_rejected,
    wire::parse_token_with_crlf_rejected,
    wire::parse_non_json_rejected,
    wire::parse_200_with_error_body,
    wire::parse_error_response_redacts_secret,
    wire::parse_oversize_token_small_capacity,
    wire::retry_after_seconds_and_http_date,
    wire::www_authenticate_bearer_errors,
    wire::retry_policy_backoff_numbers,
    wire::retry_policy_honours_retry_after_up_to_cap,
    wire::refresh_policy_schedule,
    wire::refresh_policy_jitter_in_bounds,
    machine::machine_fetch_valid_refresh_expire,
    machine::machine_retry_then_give_up_keeps_stale,
    machine::machine_non_retryable_errors_give_up,
    machine::machine_invalidate_only_that_generation,
    driver::driver_fetch_once_then_reuse,
    driver::driver_refresh_at_refresh_at,
    driver::driver_retries_503_503_200_exact_sleep,
    driver::driver_retry_after_429_honoured,
    driver::driver_retry_after_http_date_with_wall_clock,
    driver::driver_retry_after_beyond_cap_not_waited,
    driver::driver_transport_errors_retry_by_kind,
    driver::driver_invalid_client_not_retried,
    driver::driver_zero_expires_in_is_an_error,
    driver::driver_stale_token_served_when_refresh_fails,
    driver::driver_expired_token_never_served,
    driver::driver_401_replayed_exactly_once,
    driver::driver_401_insufficient_scope_not_replayed,
    driver::driver_token_failure_sends_no_resource_request,
    driver::driver_refuses_caller_authorization_header,
    driver::driver_invalidate_old_generation_keeps_new_token,
    driver::driver_single_flight_join4,
    driver::driver_cancelled_fetch_then_next_call_succeeds,
    driver::driver_refresh_in_flight_serves_old_token,
    driver::driver_cancelled_refresh_recovers,
    driver::driver_memory_store_shares_token,
];

/// Counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Cases that passed.
    pub passed: u32,
    /// Cases that failed.
    pub failed: u32,
}

impl Summary {
    /// Cases run.
    pub fn total(&self) -> u32 {
        self.passed + self.failed
    }
    /// `true` when at least one case ran and none failed.
    pub fn success(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }
}

#[derive(Clone, Copy)]
struct Progress {
    current: Option<&'static str>,
    summary: Summary,
}

/// Where the run stands, for the panic handler.
static PROGRESS: critical_section::Mutex<Cell<Progress>> =
    critical_section::Mutex::new(Cell::new(Progress {
        current: None,
        summary: Summary {
            passed: 0,
            failed: 0,
        },
    }));

fn update(f: impl FnOnce(&mut Progress)) -> Progress {
    critical_section::with(|cs| {
        let cell = PROGRESS.borrow(cs);
        let mut p = cell.get();
        f(&mut p);
        cell.set(p);
        p
    })
}

/// Run every case and report each one to `report` as it ends.
pub fn run_with(report: &mut dyn FnMut(&'static str, &CaseResult)) -> Summary {
    update(|p| {
        *p = Progress {
            current: None,
            summary: Summary::default(),
        }
    });
    for case in CASES {
        update(|p| p.current = Some(case.name));
        let result = (case.run)();
        report(case.name, &result);
        update(|p| {
            p.current = None;
            match result {
                Ok(()) => p.summary.passed += 1,
                Err(_) => p.summary.failed += 1,
            }
        });
    }
    update(|_| {}).summary
}

/// Run every case, printing `ok <name>` / `FAILED <name>` lines and the closing
/// `N passed, N failed` line to `out`.
pub fn run(out: &mut dyn Write) -> Summary {
    let summary = run_cases(out);
    print_summary(out, &summary);
    summary
}

/// Run every case, printing `ok <name>` / `FAILED <name>` lines to `out` (no closing line).
pub fn run_cases(out: &mut dyn Write) -> Summary {
    run_with(&mut |name, result| {
        // Output errors cannot be reported anywhere better; the exit status still tells.
        let _ = match result {
            Ok(()) => writeln!(out, "ok {name}"),
            Err(f) => writeln!(out, "FAILED {name}\n    {f}"),
        };
    })
}

/// Print the closing `N passed, N failed` line.
pub fn print_summary(out: &mut dyn Write, summary: &Summary) {
    let _ = writeln!(out, "{} passed, {} failed", summary.passed, summary.failed);
}

/// For the firmware's panic handler: report the case that panicked as failed, and print the
/// closing line (cases not run are not counted). Returns the summary.
pub fn report_panic(out: &mut dyn Write, info: &core::panic::PanicInfo<'_>) -> Summary {
    let mut current = None;
    let p = update(|p| {
        current = p.current.take();
        if current.is_some() {
            p.summary.failed += 1;
        }
    });
    let name = current.unwrap_or("(outside any case)");
    let _ = writeln!(out, "FAILED {name}\n    panicked: {info}");
    let mut summary = p.summary;
    if summary.failed == 0 {
        summary.failed = 1;
    }
    let _ = writeln!(out, "{} passed, {} failed", summary.passed, summary.failed);
    summary
}
