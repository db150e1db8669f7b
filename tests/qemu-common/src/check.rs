//! Assertions that return a [`Failure`] instead of panicking, so that one failing case does not
//! stop the others on a target without unwinding.

use core::fmt::{self, Write};

const MESSAGE_CAPACITY: usize = 240;

/// Which check failed, and why (truncated to a fixed size: there is no allocator).
pub struct Failure {
    file: &'static str,
    line: u32,
    message: [u8; MESSAGE_CAPACITY],
    len: usize,
}

impl Failure {
    #[doc(hidden)]
    pub fn new(file: &'static str, line: u32, args: fmt::Arguments<'_>) -> Self {
        let mut f = Self {
            file,
            line,
            message: [0; MESSAGE_CAPACITY],
            len: 0,
        };
        let _ = f.write_fmt(args);
        f
    }

    /// The message (possibly truncated).
    pub fn message(&self) -> &str {
        // Only whole characters are ever copied in.
        core::str::from_utf8(&self.message[..self.len]).unwrap_or("")
    }
}

impl Write for Failure {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut b = [0u8; 4];
            let bytes = c.encode_utf8(&mut b).as_bytes();
            let Some(dst) = self.message.get_mut(self.len..self.len + bytes.len()) else {
                return Err(fmt::Error);
            };
            dst.copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message())
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Fail the case unless `cond` holds.
macro_rules! ensure {
    ($cond:expr) => {
        if !$cond {
            return Err($crate::Failure::new(
                file!(),
                line!(),
                format_args!("not true: {}", stringify!($cond)),
            ));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::Failure::new(file!(), line!(), format_args!($($arg)+)));
        }
    };
}

/// Fail the case unless `left == right`, showing both.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (l, r) => {
                if !(*l == *r) {
                    return Err($crate::Failure::new(
                        file!(),
                        line!(),
                        format_args!(
                            "{} == {}: {:?} != {:?}",
                            stringify!($left),
                            stringify!($right),
                            l,
                            r
                        ),
                    ));
                }
            }
        }
    };
}

/// Fail the case unless `value` matches `pattern` (with an optional guard).
macro_rules! ensure_matches {
    ($value:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match &$value {
            v => {
                if !matches!(v, $pattern $(if $guard)?) {
                    return Err($crate::Failure::new(
                        file!(),
                        line!(),
                        format_args!(
                            "{} does not match {}: {:?}",
                            stringify!($value),
                            stringify!($pattern),
                            v
                        ),
                    ));
                }
            }
        }
    };
}

/// Unwrap an `Ok`, or fail the case showing the error.
macro_rules! ok {
    ($result:expr) => {
        match $result {
            Ok(v) => v,
            Err(e) => {
                return Err($crate::Failure::new(
                    file!(),
                    line!(),
                    format_args!("{} failed: {:?}", stringify!($result), e),
                ));
            }
        }
    };
}

/// Unwrap an `Err`, or fail the case.
macro_rules! err {
    ($result:expr) => {
        match $result {
            Err(e) => e,
            Ok(_) => {
                return Err($crate::Failure::new(
                    file!(),
                    line!(),
                    format_args!("{} succeeded, an error was expected", stringify!($result)),
                ));
            }
        }
    };
}

/// Fail the case with a message.
macro_rules! fail {
    ($($arg:tt)+) => {
        return Err($crate::Failure::new(file!(), line!(), format_args!($($arg)+)))
    };
}
