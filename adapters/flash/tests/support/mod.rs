//! A RAM-backed NOR flash model for the tests: counts operations, enforces NOR rules, and can
//! be told to lose power in the middle of a write or an erase, to hang (for cancellation), or
//! to fail.
#![allow(dead_code)]

use core::future::poll_fn;
use core::task::Poll;

use embedded_storage_async::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Errors of [`MockFlash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MockError {
    OutOfBounds,
    NotAligned,
    /// The power was cut: every operation fails until [`MockFlash::reboot`].
    PowerLost,
    /// A failure asked for with [`MockFlash::fail`].
    Injected,
}

impl NorFlashError for MockError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::PowerLost | Self::Injected => NorFlashErrorKind::Other,
        }
    }
}

/// Operation counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) reads: u32,
    /// `write` calls that changed the flash (whole or cut).
    pub(crate) writes: u32,
    pub(crate) bytes_written: u64,
    /// `erase` calls.
    pub(crate) erases: u32,
    /// Erase pages erased (an erase of a range counts each page).
    pub(crate) pages_erased: u32,
    /// Words written that were not fully erased before: not allowed on plain NOR flash.
    pub(crate) rewrites: u32,
}

impl Stats {
    /// Writes and erases: what wears the flash.
    pub(crate) fn mutations(&self) -> u32 {
        self.writes + self.erases
    }
}

/// Which operations fail with [`MockError::Injected`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fail {
    pub(crate) reads: bool,
    pub(crate) writes: bool,
    pub(crate) erases: bool,
}

/// A power cut: the mutating operation number `at` (0 = the next one) stops after `bytes`
/// bytes; the word being written at that moment gets some of its bits programmed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cut {
    pub(crate) at: u32,
    pub(crate) bytes: usize,
}

/// NOR flash in RAM: `W`-byte write words, `E`-byte erase pages, byte reads.
#[derive(Debug, Clone)]
pub(crate) struct MockFlash<const W: usize = 4, const E: usize = 1024> {
    pub(crate) mem: Vec<u8>,
    pub(crate) stats: Stats,
    pub(crate) fail: Fail,
    cut: Option<Cut>,
    hang_at: Option<u32>,
    mutations: u32,
    dead: bool,
}

impl<const W: usize, const E: usize> MockFlash<W, E> {
    /// `pages` erased pages.
    pub(crate) fn new(pages: usize) -> Self {
        Self {
            mem: vec![0xFF; pages * E],
            stats: Stats::default(),
            fail: Fail::default(),
            cut: None,
            hang_at: None,
            mutations: 0,
            dead: false,
        }
    }

    /// Lose power during mutating operation number `at`, counted from now, after `bytes`
    /// bytes of it.
    pub(crate) fn cut_power(&mut self, at: u32, bytes: usize) {
        self.cut = Some(Cut {
            at: self.mutations + at,
            bytes,
        });
    }

    /// Never complete mutating operation number `at` (counted from now): it stays pending
    /// without touching the flash, so the caller can drop the future.
    pub(crate) fn hang(&mut self, at: u32) {
        self.hang_at = Some(self.mutations + at);
    }

    /// Power back on: faults planned or in progress are forgotten.
    pub(crate) fn reboot(&mut self) {
        self.dead = false;
        self.cut = None;
        self.hang_at = None;
        self.fail = Fail::default();
    }

    /// Whether a planned power cut happened.
    pub(crate) fn lost_power(&self) -> bool {
        self.dead
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<usize, MockError> {
        let start = offset as usize;
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(MockError::NotAligned);
        }
        if start + len > self.mem.len() {
            return Err(MockError::OutOfBounds);
        }
        Ok(start)
    }

    /// Count a mutating operation; `Some(bytes)` when the power goes during it.
    async fn mutation(&mut self) -> Result<Option<usize>, MockError> {
        if self.dead {
            return Err(MockError::PowerLost);
        }
        let n = self.mutations;
        if self.hang_at == Some(n) {
            poll_fn(|_| Poll::<()>::Pending).await;
        }
        self.mutations += 1;
        Ok(match self.cut {
            Some(c) if c.at == n => Some(c.bytes),
            _ => None,
        })
    }
}

impl<const W: usize, const E: usize> ErrorType for MockFlash<W, E> {
    type Error = MockError;
}

impl<const W: usize, const E: usize> ReadNorFlash for MockFlash<W, E> {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MockError> {
        if self.dead {
            return Err(MockError::PowerLost);
        }
        if self.fail.reads {
            return Err(MockError::Injected);
        }
        let start = self.check(offset, bytes.len(), 1)?;
        self.stats.reads += 1;
        bytes.copy_from_slice(&self.mem[start..start + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl<const W: usize, const E: usize> NorFlash for MockFlash<W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), MockError> {
        if to < from {
            return Err(MockError::OutOfBounds);
        }
        let start = self.check(from, (to - from) as usize, E)?;
        if self.fail.erases {
            return Err(MockError::Injected);
        }
        let cut = self.mutation().await?;
        let len = (to - from) as usize;
        self.stats.erases += 1;
        self.stats.pages_erased += (len / E) as u32;
        match cut {
            None => {
                self.mem[start..start + len].fill(0xFF);
                Ok(())
            }
            Some(bytes) => {
                // Erased up to `bytes`; the byte there half-way; the rest as it was.
                let done = bytes.min(len);
                self.mem[start..start + done].fill(0xFF);
                if done < len {
                    self.mem[start + done] |= 0x0F;
                }
                self.dead = true;
                Err(MockError::PowerLost)
            }
        }
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockError> {
        let start = self.check(offset, bytes.len(), W)?;
        if self.fail.writes {
            return Err(MockError::Injected);
        }
        let cut = self.mutation().await?;
        self.stats.writes += 1;
        for w in 0..bytes.len() / W {
            let at = start + w * W;
            if self.mem[at..at + W].iter().any(|&b| b != 0xFF) {
                self.stats.rewrites += 1;
            }
        }
        let done = cut.unwrap_or(bytes.len()).min(bytes.len());
        for (i, &b) in bytes[..done].iter().enumerate() {
            // NOR programming only clears bits.
            self.mem[start + i] &= b;
        }
        self.stats.bytes_written += done as u64;
        if cut.is_some() {
            if done < bytes.len() {
                // The byte being programmed when the power went: some of its bits made it.
                self.mem[start + done] &= bytes[done] | 0x5A;
            }
            self.dead = true;
            return Err(MockError::PowerLost);
        }
        Ok(())
    }
}

/// A small deterministic generator for garbage and token contents.
pub(crate) struct XorShift(pub u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

/// A token of `len` visible-ASCII bytes, different for each `seed`.
pub(crate) fn token(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..len)
        .map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize] as char)
        .collect()
}
