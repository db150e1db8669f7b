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
//!
//! Unescaping ([`next_piece`], [`unescape`]) follows serde-json-core's `EscapedStr` exactly
//! (including its quirks: no surrogate pairs, and `\u+0e9` read as `\u00e9` because it parses
//! the four digits with `u32::from_str_radix`), on bytes and without its `str` slicing.

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
    /// Unescaped: `raw` itself when it holds no backslash or when not unescaping. Always UTF-8
    /// (unescaping valid UTF-8 gives valid UTF-8), kept as bytes to avoid checking it again.
    pub(crate) text: &'b [u8],
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

    /// A string. Not generic and not inlined: one copy of the code for every caller.
    #[inline(never)]
    fn string(&mut self) -> Result<Text<'a, '_>, Error> {
        if self.next_byte()? != b'"' {
            return Err(Error::Invalid);
        }
        let start = self.at;
        let end = string_end(self.body, start - 1).ok_or(Error::Invalid)?;
        let raw = self
            .body
            .get(start..end)
            .and_then(|raw| core::str::from_utf8(raw).ok())
            .ok_or(Error::Invalid)?;
        self.at = end + 1;
        let text = match self.scratch.as_deref_mut() {
            Some(buf) if raw.bytes().any(|b| b == b'\\') => unescape(raw.as_bytes(), buf)?,
            _ => raw.as_bytes(),
        };
        Ok(Text { raw, text })
    }

    /// `true` when the value here is `null` (then consumed); `false` for any other value
    /// (not consumed).
    pub(crate) fn null(&mut self) -> Result<bool, Error> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        if self.body.get(self.at..self.at + 4) != Some(b"null") {
            return Err(Error::Invalid);
        }
        self.at += 4;
        Ok(true)
    }

    /// `null`, or the value read by `value`.
    pub(crate) fn option<T>(
        &mut self,
        value: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        if self.null()? {
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
            return self.string().map(on_string);
        }
        self.skip()?;
        Ok(other)
    }

    /// Skip one value.
    pub(crate) fn skip(&mut self) -> Result<(), Error> {
        if self.skip_flat()? {
            self.skip_nested()?;
        }
        Ok(())
    }

    /// Skip a string or a scalar; `true` (nothing consumed) when the value is an array or an
    /// object.
    fn skip_flat(&mut self) -> Result<bool, Error> {
        match self.peek().ok_or(Error::Invalid)? {
            b'"' => self.string().map(|_| false),
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
    /// recursion: per open level, two bits: whether it is an array, and whether it is still at
    /// its "first" element as serde-json-core counts (a leading comma in an array keeps it
    /// there).
    fn skip_nested(&mut self) -> Result<(), Error> {
        const ARRAY: u32 = 1;
        const FIRST: u32 = 2;
        let mut levels = [0u32; MAX_DEPTH / 16];
        let mut depth = 0usize;
        let mut open = true;
        loop {
            if open {
                let Some(word) = levels.get_mut(depth / 16) else {
                    return Err(Error::Invalid); // nested too deep
                };
                let shift = depth % 16 * 2;
                let array = if self.next_byte()? == b'[' { ARRAY } else { 0 };
                *word = *word & !((ARRAY | FIRST) << shift) | (array | FIRST) << shift;
                depth += 1;
            }
            let level = depth - 1;
            let Some(word) = levels.get_mut(level / 16) else {
                return Err(Error::Invalid); // not reached: the level is open
            };
            let shift = level % 16 * 2;
            let is_array = *word >> shift & ARRAY != 0;
            let first = *word >> shift & FIRST != 0;
            let next = self.peek().ok_or(Error::Invalid)?;
            if next == if is_array { b']' } else { b'}' } {
                self.at += 1;
                depth -= 1;
                if depth == 0 {
                    return Ok(());
                }
                open = false;
                continue;
            }
            // A comma; or none before the first element or member. (An array accepts a
            // leading comma and is still at its first element after it.)
            if next == b',' && (is_array || !first) {
                self.at += 1;
            } else if first {
                *word &= !(FIRST << shift);
            } else {
                return Err(Error::Invalid);
            }
            if is_array {
                if self.peek() == Some(b']') {
                    return Err(Error::Invalid); // a trailing comma
                }
            } else {
                if self.peek() != Some(b'"') {
                    return Err(Error::Invalid); // a trailing comma, or a key that is not a string
                }
                self.string()?;
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
        key: impl Fn(&[u8]) -> K,
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
            let k = key(self.string()?.text);
            if self.next_byte()? != b':' {
                return Err(Error::Invalid);
            }
            member(self, k)?;
        }
        self.at += 1; // `}`
        Ok(())
    }
}

/// Index of the closing quote of the string whose opening quote is at `start` (a backslash
/// escapes the byte after it).
pub(crate) fn string_end(body: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while let Some(&b) = body.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The next piece of the escaped string `rest` (advanced past it), as serde-json-core's
/// `EscapedStr::fragments` splits it: a run without backslash as it stands, or one escape
/// decoded into `utf8`. Empty when `rest` is. An escape that does not decode (`\q`, a
/// surrogate such as `\ud83d`, or a string that ends early) is [`Error::Unescape`].
pub(crate) fn next_piece<'r: 'p, 'p>(
    rest: &mut &'r [u8],
    utf8: &'p mut [u8; 4],
) -> Result<&'p [u8], Error> {
    let [b'\\', tail @ ..] = *rest else {
        let run_len = rest.iter().take_while(|&&b| b != b'\\').count();
        let (run, tail) = rest.split_at_checked(run_len).unwrap_or((rest, &[]));
        *rest = tail;
        return Ok(run);
    };
    let (c, tail) = match tail {
        [b'u', a, b, c, d, tail @ ..] => (hex4([*a, *b, *c, *d]).ok_or(Error::Unescape)?, tail),
        [e, tail @ ..] => {
            // Each escape letter, then what it stands for (a table: smaller than a `match`).
            const SIMPLE: &[u8; 16] = b"\"\"\\\\//b\x08f\x0cn\nr\rt\t";
            let c = SIMPLE
                .chunks_exact(2)
                .find(|pair| pair[0] == *e)
                .ok_or(Error::Unescape)?[1];
            (u32::from(c), tail)
        }
        [] => return Err(Error::Unescape),
    };
    *rest = tail;
    // UTF-8 of a code point below 0x10000 that is not a surrogate (`char::from_u32`'s rule).
    let cont = |shift: u32| 0x80 | (c >> shift & 0x3f) as u8;
    Ok(match c {
        0..0x80 => {
            utf8[0] = c as u8;
            &utf8[..1]
        }
        0x80..0x800 => {
            *utf8 = [0xc0 | (c >> 6) as u8, cont(0), 0, 0];
            &utf8[..2]
        }
        0xd800..0xe000 => return Err(Error::Unescape),
        _ => {
            *utf8 = [0xe0 | (c >> 12) as u8, cont(6), cont(0), 0];
            &utf8[..3]
        }
    })
}

/// Four hexadecimal digits as `u32::from_str_radix(_, 16)` reads them: the first may be a
/// `+` sign.
fn hex4(digits: [u8; 4]) -> Option<u32> {
    let digits: &[u8] = match &digits {
        [b'+', rest @ ..] => rest,
        all => all,
    };
    digits.iter().try_fold(0u32, |value, &d| {
        let d = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        Some(value << 4 | u32::from(d))
    })
}

/// Unescape `raw` into `buf`; the part of `buf` written. [`Error::Unescape`] when an escape
/// does not decode or the result does not fit.
pub(crate) fn unescape<'b>(raw: &[u8], buf: &'b mut [u8]) -> Result<&'b [u8], Error> {
    let mut rest = raw;
    let mut len = 0;
    while !rest.is_empty() {
        let mut utf8 = [0u8; 4];
        let piece = next_piece(&mut rest, &mut utf8)?;
        buf.get_mut(len..)
            .and_then(|free| free.get_mut(..piece.len()))
            .ok_or(Error::Unescape)?
            .copy_from_slice(piece);
        len += piece.len();
    }
    buf.get(..len).ok_or(Error::Unescape)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use serde_json_core::str::{EscapedStr, EscapedStringFragment};
    use std::vec::Vec;

    /// serde-json-core's unescaping, which [`next_piece`] replaces: the pieces, or `None` at
    /// the first escape that does not decode.
    fn theirs(raw: &str) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        for fragment in EscapedStr(raw).fragments() {
            let mut utf8 = [0u8; 4];
            out.push(match fragment {
                Ok(EscapedStringFragment::NotEscaped(s)) => Some(s.as_bytes().to_vec()),
                Ok(EscapedStringFragment::Escaped(c)) => {
                    Some(c.encode_utf8(&mut utf8).as_bytes().to_vec())
                }
                Err(_) => None,
            });
            if out.last() == Some(&None) {
                break;
            }
        }
        out
    }

    fn mine(raw: &str) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        let mut rest = raw.as_bytes();
        while !rest.is_empty() {
            let mut utf8 = [0u8; 4];
            match next_piece(&mut rest, &mut utf8) {
                Ok(piece) => out.push(Some(piece.to_vec())),
                Err(_) => {
                    out.push(None);
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn skipped_values_nest_at_most_max_depth_deep() {
        let skip = |open: &str, close: &str, depth: usize| {
            let body = std::format!("{}1{}", open.repeat(depth), close.repeat(depth));
            let mut s = Scanner::new(body.as_bytes(), None);
            s.skip().and_then(|()| s.end())
        };
        for (open, close) in [("[", "]"), ("{\"k\":", "}"), ("[,", "]")] {
            assert_eq!(skip(open, close, 1), Ok(()), "{open}");
            assert_eq!(skip(open, close, MAX_DEPTH), Ok(()), "{open}");
            assert_eq!(
                skip(open, close, MAX_DEPTH + 1),
                Err(Error::Invalid),
                "{open}"
            );
        }
        // Mixed levels keep their own kind: `]` cannot close an object.
        let mut s = Scanner::new(br#"[{"a":[1,{"b":2}]},[[]]]"#, None);
        assert_eq!(s.skip(), Ok(()));
        let mut s = Scanner::new(br#"[{"a":[1,{"b":2}]],[[]]]"#, None);
        assert_eq!(s.skip(), Err(Error::Invalid));
    }

    #[test]
    fn pieces_are_serde_json_core_s_fragments() {
        for raw in [
            "",
            "abc",
            "a\\/b",
            "\\u00e9\\u0041x",
            "\\u+0e9",
            "\\u-0e9",
            "\\ud83d\\ude00",
            "\\uDFFF",
            "\\uE000",
            "\\u07ff\\u0800\\uffff",
            "\\q",
            "\\",
            "x\\u12",
            "\\u12345",
            "\\\"\\\\\\/\\b\\f\\n\\r\\t",
            "caf\u{e9}\\u00e9",
            "\\\u{e9}",
            "\\u00\u{e9}",
        ] {
            assert_eq!(mine(raw), theirs(raw), "{raw:?}");
        }
        // Random strings over the characters that matter.
        let alphabet = [
            "\\", "u", "+", "-", "0", "7", "d", "D", "8", "f", "F", "g", "n", "/", "\"", "\u{e9}",
            "a",
        ];
        let mut rng = crate::policy::Rng::new(0x2545_f491_4f6c_dd1d);
        for _ in 0..200_000 {
            let mut raw = std::string::String::new();
            for _ in 0..rng.below(12) {
                raw.push_str(alphabet[rng.below(alphabet.len() as u64) as usize]);
            }
            assert_eq!(mine(&raw), theirs(&raw), "{raw:?}");
        }
    }
}
