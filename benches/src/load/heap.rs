//! A counting global allocator: live heap bytes now and at the peak.
//!
//! A binary opts in with
//! `#[global_allocator] static ALLOC: alf_bench::load::heap::Counting = alf_bench::load::heap::Counting::new();`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// The system allocator, counting live bytes (requested sizes) and allocations.
#[derive(Debug)]
pub struct Counting {
    live: AtomicI64,
    peak: AtomicI64,
    allocations: AtomicU64,
}

impl Counting {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self {
            live: AtomicI64::new(0),
            peak: AtomicI64::new(0),
            allocations: AtomicU64::new(0),
        }
    }

    /// Live heap bytes now.
    pub fn live(&self) -> i64 {
        self.live.load(Relaxed)
    }

    /// Most live heap bytes seen (since the start or the last [`reset_peak`](Self::reset_peak)).
    pub fn peak(&self) -> i64 {
        self.peak.load(Relaxed)
    }

    /// Allocations made so far.
    pub fn allocations(&self) -> u64 {
        self.allocations.load(Relaxed)
    }

    /// Start measuring the peak again from the live bytes now.
    pub fn reset_peak(&self) {
        self.peak.store(self.live(), Relaxed);
    }

    fn add(&self, bytes: usize) {
        let live = self.live.fetch_add(bytes as i64, Relaxed) + bytes as i64;
        self.peak.fetch_max(live, Relaxed);
        self.allocations.fetch_add(1, Relaxed);
    }

    fn sub(&self, bytes: usize) {
        self.live.fetch_sub(bytes as i64, Relaxed);
    }
}

impl Default for Counting {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counters
// are plain atomics and never allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            self.add(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            self.add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        self.sub(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.sub(layout.size());
            self.add(new_size);
        }
        p
    }
}
