//! Random identities for lock holders, and the wall clock.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A 128-bit random identity as 32 hex digits, unique per store instance.
///
/// It only has to differ between lock holders (it is not a secret): it mixes std's randomly
/// keyed hasher (seeded from the OS), the process id, the time and a process-wide counter.
pub(crate) fn new_lock_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut id = String::with_capacity(32);
    for half in 0..2u8 {
        let mut h = RandomState::new().build_hasher();
        h.write_u8(half);
        h.write_u32(std::process::id());
        h.write_u64(n);
        h.write_u128(nanos);
        let _ = write!(id, "{:016x}", h.finish());
    }
    id
}

/// Milliseconds since the Unix epoch by the system clock (0 if the clock is before 1970).
pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ() {
        let a = new_lock_id();
        let b = new_lock_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
