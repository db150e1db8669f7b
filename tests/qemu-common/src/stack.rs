//! Peak stack use of the cases, measured on the firmware by painting the free stack with a
//! pattern before the run and finding the deepest word overwritten after it.

use core::fmt;

const PATTERN: u32 = 0x5AC3_5AC3;
/// Room left untouched just below the stack pointer, for the painting function's own frame.
const GUARD: usize = 256;

/// A painted stack region, from [`paint`].
#[derive(Debug, Clone, Copy)]
pub struct Painted {
    bottom: usize,
    top: usize,
}

/// Fill the `len` bytes below `sp - GUARD` with a pattern.
///
/// # Safety
/// `sp` must be (close to) the current stack pointer of a descending stack, and the `len`
/// bytes below it must be RAM that nothing but this stack uses.
pub unsafe fn paint(sp: usize, len: usize) -> Painted {
    let top = (sp - GUARD) & !3;
    let bottom = top - (len & !3);
    let mut a = bottom;
    while a < top {
        // SAFETY: the caller guarantees the region is unused stack RAM; `a` is aligned.
        unsafe { (a as *mut u32).write_volatile(PATTERN) };
        a += 4;
    }
    Painted { bottom, top }
}

/// How deep the stack went below the painted region's top since [`paint`].
#[derive(Debug, Clone, Copy)]
pub struct Peak {
    /// Bytes used below the point where the stack was painted.
    pub bytes: usize,
    /// The whole painted region was used: the real peak may be higher.
    pub saturated: bool,
}

impl Painted {
    /// Read back the high-water mark.
    pub fn peak(&self) -> Peak {
        let mut a = self.bottom;
        // SAFETY: the region was painted by `paint` and is still stack RAM.
        while a < self.top && unsafe { (a as *const u32).read_volatile() } == PATTERN {
            a += 4;
        }
        Peak {
            bytes: self.top - a + GUARD,
            saturated: a == self.bottom,
        }
    }
}

impl fmt::Display for Peak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at_least = if self.saturated { "at least " } else { "" };
        write!(
            f,
            "peak stack use of the cases: {at_least}{} bytes",
            self.bytes
        )
    }
}
