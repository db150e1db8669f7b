//! A small JSON scanner for the token endpoint's answer, with serde-json-core 0.7's acceptance
//! rules, without serde.
//!
//! alf needs five string members of one object and must skip everything else. serde-json-core
//! did that through serde's derive and visitors: about 5 KB of flash on a Cortex-M for one
//! struct. This scanner keeps exactly what serde-json-core accepted and refused (so that
//! `tests/json_corpus.rs`, the fuzz corpus and the response tests keep their outcomes):
//!
//! - whitespace is space, tab, CR and LF; the body is one object, then only whitespace;
//! - members are separated by one comma, no trailing comma; keys are strings;
//! - a string ends at the first `"` not escaped by a backslash and must be UTF-8; with a
//!   scratch buffer, strings that hold a backslash (keys included) are unescaped into it, and
//!   an escape that cannot be decoded, or a string that does not fit, is [`Error::Unescape`]
//!   (the caller then reads the body again without unescaping);
//! - a value that is not a string, an array or an object is skipped up to the next `,`, `}`
//!   or `]`, whatever it holds (serde-json-core's own leniency: `1 2` is one value);
//! - in an array a leading comma is accepted (`[,1]`), a trailing one is not.
//!
//! One difference: skipped arrays and objects nest at most [`MAX_DEPTH`] deep. They are
//! skipped without recursion (serde-json-core recursed without a limit, so a deeply nested body
//! could overflow a device's stack); the scanner keeps two bits per open level.

use serde_json_core::str::{EscapedStr, EscapedStringFragment};

/// How deep skipped arrays and objects may nest.
pub(crate) const MAX_DEPTH: usize = 1024;

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// A string could not be unescaped: it does not fit the scratch buffer, or it holds an
    /// escape that is not decoded (a surrogate pair such as `\ud83d\ude00`, or `\q`).
    Unescape,
    /// Not a JSON object as serde-json-core reads one.
    Invalid,
}

/// A string member or value.
#[derive(Clone, Copy)]
pub(crate) struct Text<'a, 'b> {
    /// As written in the body, between the quotes (escapes kept).
    pub(crate) raw: &'a str,
    /// Unescaped: `raw` itself when it holds no backslash or when not unescaping.
    pub(crate) text: &'b str,
}

pub(crate) struct Scanner<'a, 's> {
    body: &'a [u8],
    at: usize,
    scratch: Option<&'s mut [u8]>,
}

impl<'a, 's> Scanner<'a, 's> {
    /// A scanner over `body`; strings are unescaped into `scratch` when there is one.
    pub(crate) fn new(body: &'a [u8], scratch: Option<&'s mut [u8]>) -> Self {
        Self {
            body,
            at: 0,
            scratch,
        }
    }

    /// Skip whitespace; the next byte, not consumed.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.body.get(self.at) {
            if !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    fn next_byte(&mut self) -> Result<u8, Error> {
        let b = self.peek().ok_or(Error::Invalid)?;
        self.at += 1;
        Ok(b)
    }

    /// The end of the body: only whitespace may be left.
    pub(crate) fn end(&mut self) -> Result<(), Error> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Error::Invalid),
        }
    }

    /// A string, handed to `f`.
    fn string<R>(&mut self, f: impl FnOnce(Text<'a, '_>) -> R) -> Result<R, Error> {
        if self.next_byte()? != b'"' {
            return Err(Error::Invalid);
        }
        let start = self.at;
        loop {
            match self.body.get(self.at) {
                Some(b'"') => break,
                Some(b'\\') => self.at += 2,
                Some(_) => self.at += 1,
                None => return Err(Error::Invalid),
            }
        }
        let raw = self
            .body
            .get(start..self.at)
            .and_then(|raw| core::str::from_utf8(raw).ok())
            .ok_or(Error::Invalid)?;
        self.at += 1;
        let plain = Text { raw, text: raw };
        match self.scratch.as_deref_mut() {
            Some(buf) if raw.contains('\\') => {
                let len = unescape(raw, buf)?;
                let text = buf
                    .get(..len)
                    .and_then(|t| core::str::from_utf8(t).ok())
                    .ok_or(Error::Invalid)?;
                Ok(f(Text { raw, text }))
            }
            _ => Ok(f(plain)),
        }
    }

    /// `null`, or the value read by `value`.
    pub(crate) fn option<T>(
        &mut self,
        value: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        if self.peek() == Some(b'n') {
            for expected in *b"null" {
                if self.body.get(self.at) != Some(&expected) {
                    return Err(Error::Invalid);
                }
                self.at += 1;
            }
            return Ok(None);
        }
        value(self).map(Some)
    }

    /// A string handed to `on_string`, or any other value skipped (then `other`).
    pub(crate) fn string_or<T>(
        &mut self,
        on_string: impl FnOnce(Text<'a, '_>) -> T,
        other: T,
    ) -> Result<T, Error> {
        if self.peek() == Some(b'"') {
            return self.string(on_string);
        }
        if self.skip_flat()? {
            self.skip_nested()?;
        }
        Ok(other)
    }

    /// Skip one value.
    pub(crate) fn skip(&mut self) -> Result<(), Error> {
        self.string_or(|_| (), ())
    }

    /// Skip a string or a scalar; `true` (nothing consumed) when the value is an array or an
    /// object.
    fn skip_flat(&mut self) -> Result<bool, Error> {
        match self.peek().ok_or(Error::Invalid)? {
            b'"' => self.string(|_| false),
            b'[' | b'{' => Ok(true),
            b',' | b'}' | b']' => Err(Error::Invalid),
            // Anything up to the next delimiter, as serde-json-core skips scalars.
            _ => loop {
                match self.body.get(self.at) {
                    Some(b',' | b'}' | b']') => return Ok(false),
                    Some(_) => self.at += 1,
                    None => return Err(Error::Invalid),
                }
            },
        }
    }

    /// Skip the array or object that starts here, with serde-json-core's rules, without
    /// recursion: per open level, whether it is an array and whether it is still at its
    /// "first" element as serde-json-core counts (a leading comma in an array keeps it there).
    fn skip_nested(&mut self) -> Result<(), Error> {
        const WORDS: usize = MAX_DEPTH / 64;
        let mut arrays = [0u64; WORDS];
        let mut firsts = [0u64; WORDS];
        let bit = |level: usize| (level / 64, 1u64 << (level % 64));
        let mut depth = 0usize;
        let mut open = true;
        loop {
            if open {
                let (w, m) = bit(depth);
                let (Some(array), Some(first)) = (arrays.get_mut(w), firsts.get_mut(w)) else {
                    return Err(Error::Invalid); // nested too deep
                };
                if self.next_byte()? == b'[' {
                    *array |= m;
                } else {
                    *array &= !m;
                }
                *first |= m;
                depth += 1;
            }
            let (w, m) = bit(depth - 1);
            let is_array = arrays.get(w).is_some_and(|a| a & m != 0);
            let first = firsts.get(w).is_some_and(|f| f & m != 0);
            let not_first = |firsts: &mut [u64; WORDS]| {
                if let Some(f) = firsts.get_mut(w) {
                    *f &= !m;
                }
            };
            let close = if is_array { b']' } else { b'}' };
            let next = self.peek().ok_or(Error::Invalid)?;
            if next == close {
                self.at += 1;
                depth -= 1;
                if depth == 0 {
                    return Ok(());
                }
                open = false;
                continue;
            }
            if is_array {
                let next = match next {
                    b',' => {
                        self.at += 1;
                        self.peek().ok_or(Error::Invalid)?
                    }
                    b if first => {
                        not_first(&mut firsts);
                        b
                    }
                    _ => return Err(Error::Invalid),
                };
                if next == b']' {
                    return Err(Error::Invalid); // a trailing comma
                }
            } else {
                match next {
                    b',' if !first => self.at += 1,
                    _ if first => not_first(&mut firsts),
                    _ => return Err(Error::Invalid),
                }
                if self.peek() != Some(b'"') {
                    return Err(Error::Invalid); // a trailing comma, or a key that is not a string
                }
                self.string(|_| ())?;
                if self.next_byte()? != b':' {
                    return Err(Error::Invalid);
                }
            }
            open = self.skip_flat()?;
        }
    }

    /// An object: for each member, `key` maps its (unescaped) name to a `K`, then `member`
    /// reads the value.
    pub(crate) fn object<K>(
        &mut self,
        key: impl Fn(&str) -> K,
        mut member: impl FnMut(&mut Self, K) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if self.next_byte()? != b'{' {
            return Err(Error::Invalid);
        }
        let mut first = true;
        loop {
            match self.peek().ok_or(Error::Invalid)? {
                b'}' => break,
                b',' if !first => {
                    self.at += 1;
                }
                _ if first => first = false,
                _ => return Err(Error::Invalid),
            }
            if self.peek() != Some(b'"') {
                return Err(Error::Invalid); // a trailing comma, or a key that is not a string
            }
            let k = self.string(|t| key(t.text))?;
            if self.next_byte()? != b':' {
                return Err(Error::Invalid);
            }
            member(self, k)?;
        }
        self.at += 1; // `}`
        Ok(())
    }
}

/// Unescape `raw` into `buf`; the length written.
fn unescape(raw: &str, buf: &mut [u8]) -> Result<usize, Error> {
    let mut len = 0;
    for fragment in EscapedStr(raw).fragments() {
        let mut utf8 = [0u8; 4];
        let bytes = match fragment.map_err(|_| Error::Unescape)? {
            EscapedStringFragment::NotEscaped(s) => s.as_bytes(),
            EscapedStringFragment::Escaped(c) => c.encode_utf8(&mut utf8).as_bytes(),
        };
        buf.get_mut(len..)
            .and_then(|rest| rest.get_mut(..bytes.len()))
            .ok_or(Error::Unescape)?
            .copy_from_slice(bytes);
        len += bytes.len();
    }
    Ok(len)
}
