//! Reading one HTTP/1.1 response from the connection into the caller's buffer.
//!
//! httparse parses the status line, the headers and the chunk-size lines; this module frames
//! the body (RFC 9112 §6.3): none for `HEAD` and for 204 and 304, chunked (decoded in place),
//! `Content-Length`, or until the peer closes. Interim (1xx) responses are skipped (RFC 9110
//! §15.2). A read that returns 0 bytes is the end of the stream: it ends a body read until
//! close and is [`Error::Truncated`] everywhere else, so a connection closed early is reported
//! at once (reqwless 0.14's chunked reader read end-of-stream again and again).

use alf::http::Response;
use embedded_io::Error as _;
use embedded_io_async::Read;
use httparse::Status;

use crate::error::Error;

/// How many response headers [`read`] accepts; more fail with
/// [`Error::TooManyResponseHeaders`]. The header table is on the stack while a head is
/// parsed: 32 entries of 16 bytes on a 32-bit target.
pub(crate) const MAX_RESPONSE_HEADERS: usize = 32;

/// Read one response from `conn` into `rx`: the head first, then the body, which ends up at
/// the start of `rx` (`Response::body` borrows it). `head_request`: the request was a `HEAD`,
/// so the response has no body.
///
/// Each header goes to [`Response::observe_header`]. A head or a body that does not fit in
/// `rx` is [`Error::ResponseTooLarge`]; a peer that closes before the end of the head or of
/// the body, [`Error::Truncated`]; a malformed response, `Http(Codec)` (kind `InvalidData`).
pub(crate) async fn read<'b, C: Read>(
    conn: &mut C,
    head_request: bool,
    rx: &'b mut [u8],
) -> Result<Response<'b>, Error> {
    // `rx[..end]`: the bytes read so far and not consumed.
    let mut end = 0;
    let (mut response, body): (Response<'b>, Body) = loop {
        if let Some((len, response, body)) = parse_head(&rx[..end], head_request)? {
            // What follows the head moves to the start of `rx`.
            rx.copy_within(len..end, 0);
            end -= len;
            match body {
                Body::Interim => continue,
                body => break (response, body),
            }
        }
        if end == rx.len() {
            return Err(Error::ResponseTooLarge);
        }
        match fill(conn, &mut rx[end..]).await? {
            0 => return Err(Error::Truncated),
            n => end += n,
        }
    };
    let len = match body {
        Body::None | Body::Interim => 0,
        Body::Chunked => dechunk(conn, rx, end).await?,
        Body::Length(_) | Body::Close => {
            let until_close = matches!(body, Body::Close);
            let want = match body {
                Body::Length(n) if n > rx.len() => return Err(Error::ResponseTooLarge),
                Body::Length(n) => n,
                _ => rx.len(),
            };
            // Bytes after the announced length are ignored (nothing else comes on this
            // connection).
            let mut have = end.min(want);
            while have < want {
                match fill(conn, &mut rx[have..want]).await? {
                    0 if until_close => break,
                    0 => return Err(Error::Truncated),
                    n => have += n,
                }
            }
            // A buffer filled up to the last byte: only the end of the stream says the body
            // fits.
            if until_close && have == rx.len() && fill(conn, &mut [0]).await? != 0 {
                return Err(Error::ResponseTooLarge);
            }
            have
        }
    };
    response.body = &rx[..len];
    Ok(response)
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// An interim (1xx) response: the final one follows.
    Interim,
    /// No body: `HEAD`, 204, 304.
    None,
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length`.
    Length(usize),
    /// Until the peer closes the connection.
    Close,
}

/// One read from `conn`; 0 is the end of the stream (`buf` is never empty).
async fn fill<C: Read>(conn: &mut C, buf: &mut [u8]) -> Result<usize, Error> {
    conn.read(buf)
        .await
        .map_err(|e| Error::Http(reqwless::Error::Network(e.kind())))
}

fn malformed() -> Error {
    Error::Http(reqwless::Error::Codec)
}

/// Parse the head at the start of `buf`: `None` while it is incomplete, else its length, the
/// status with the observed headers, and how the body is delimited.
fn parse_head(
    buf: &[u8],
    head_request: bool,
) -> Result<Option<(usize, Response<'static>, Body)>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyResponseHeaders),
        Err(_) => return Err(malformed()),
    };
    // Always there in a complete head.
    let status = parsed.code.unwrap_or(0);
    let mut response = Response::new(status, &[]);
    let mut length = None;
    let mut chunked = false;
    for h in parsed.headers.iter() {
        response.observe_header(h.name, h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = content_length(h.value)?;
            // The same length repeated is allowed (RFC 9110 §8.6), different ones are not.
            if length.is_some_and(|l| l != n) {
                return Err(malformed());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // No `TE` is sent, so `chunked`, once, is the only coding a server may use
            // (RFC 9112 §6.1).
            if chunked || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(malformed());
            }
            chunked = true;
        }
    }
    // Both: a sign of response splitting, to be handled as an error (RFC 9112 §6.3).
    if chunked && length.is_some() {
        return Err(malformed());
    }
    let body = match (status, length) {
        (100..=199, _) => Body::Interim,
        (204 | 304, _) => Body::None,
        _ if head_request => Body::None,
        _ if chunked => Body::Chunked,
        (_, Some(n)) => Body::Length(n),
        (_, None) => Body::Close,
    };
    Ok(Some((len, response, body)))
}

/// A `Content-Length` value: digits only. One too large for `usize` becomes `usize::MAX`,
/// which no buffer holds.
fn content_length(value: &[u8]) -> Result<usize, Error> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(malformed());
    }
    Ok(value.iter().fold(0usize, |n, &d| {
        n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    }))
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// In a chunk's data, with this many bytes left.
    Data(usize),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty line.
    Trailers,
}

/// Decode a chunked body in place (RFC 9112 §7.1): `rx[..end]` holds its first bytes as
/// received. Returns the body's length; the body is at the start of `rx`.
///
/// The decoded body is `rx[..body]`, the bytes received and not decoded yet `rx[start..end]`
/// (`body <= start`): chunk data moves down, never up. Chunk extensions are ignored
/// (httparse skips them), trailer fields are discarded (§7.1.2).
async fn dechunk<C: Read>(conn: &mut C, rx: &mut [u8], mut end: usize) -> Result<usize, Error> {
    let mut body = 0;
    let mut start = 0;
    let mut state = Chunk::Size;
    loop {
        let raw = &rx[start..end];
        // How many bytes of `raw` this step consumed; `None`: it needs more.
        let used = match state {
            Chunk::Size => {
                // httparse takes an empty size for 0.
                if raw.first().is_some_and(|b| !b.is_ascii_hexdigit()) {
                    return Err(malformed());
                }
                match httparse::parse_chunk_size(raw) {
                    Ok(Status::Complete((used, 0))) => {
                        state = Chunk::Trailers;
                        Some(used)
                    }
                    Ok(Status::Complete((used, size))) => {
                        // Refused before reading it, as a `Content-Length` that does not fit.
                        match usize::try_from(size) {
                            Ok(size) if size <= rx.len() - body => state = Chunk::Data(size),
                            _ => return Err(Error::ResponseTooLarge),
                        }
                        Some(used)
                    }
                    Ok(Status::Partial) => None,
                    Err(httparse::InvalidChunkSize) => return Err(malformed()),
                }
            }
            Chunk::Data(left) => {
                let n = left.min(raw.len());
                rx.copy_within(start..start + n, body);
                body += n;
                state = if n == left {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left - n)
                };
                (n > 0).then_some(n)
            }
            Chunk::DataEnd => match raw {
                [b'\r', b'\n', ..] => {
                    state = Chunk::Size;
                    Some(2)
                }
                [] | [b'\r'] => None,
                _ => return Err(malformed()),
            },
            Chunk::Trailers => match raw.iter().position(|&b| b == b'\n') {
                // The empty line: the end of the message.
                Some(0) => return Ok(body),
                Some(1) if raw[0] == b'\r' => return Ok(body),
                // A trailer field, discarded.
                Some(i) => Some(i + 1),
                None => None,
            },
        };
        match used {
            Some(n) => start += n,
            None => {
                // Keep what is not decoded yet right after the body, and read more after it.
                rx.copy_within(start..end, body);
                end -= start - body;
                start = body;
                if end == rx.len() {
                    return Err(Error::ResponseTooLarge);
                }
                match fill(conn, &mut rx[end..]).await? {
                    0 => return Err(Error::Truncated),
                    n => end += n,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};
    use embedded_io::ErrorKind;
    use std::vec::Vec;

    /// A connection that hands out `pieces` one read at a time (each read returns at most
    /// `max` bytes of the current piece), then the end of the stream, once: a read after the
    /// end of the stream fails the test.
    struct Mem<'a> {
        pieces: Vec<&'a [u8]>,
        max: usize,
        eof: bool,
        reads: usize,
    }

    impl<'a> Mem<'a> {
        fn new(pieces: &[&'a [u8]]) -> Self {
            Self {
                pieces: pieces
                    .iter()
                    .rev()
                    .copied()
                    .filter(|p| !p.is_empty())
                    .collect(),
                max: usize::MAX,
                eof: false,
                reads: 0,
            }
        }

        fn bytewise(mut self) -> Self {
            self.max = 1;
            self
        }
    }

    impl embedded_io_async::ErrorType for Mem<'_> {
        type Error = ErrorKind;
    }

    impl Read for Mem<'_> {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
            assert!(!buf.is_empty(), "read into an empty buffer");
            assert!(!self.eof, "read again after the end of the stream");
            self.reads += 1;
            let Some(piece) = self.pieces.pop() else {
                self.eof = true;
                return Ok(0);
            };
            let n = piece.len().min(buf.len()).min(self.max);
            buf[..n].copy_from_slice(&piece[..n]);
            if n < piece.len() {
                self.pieces.push(&piece[n..]);
            }
            Ok(n)
        }
    }

    /// A connection that fails its first read.
    struct Failing;

    impl embedded_io_async::ErrorType for Failing {
        type Error = ErrorKind;
    }

    impl Read for Failing {
        async fn read(&mut self, _: &mut [u8]) -> Result<usize, ErrorKind> {
            Err(ErrorKind::ConnectionReset)
        }
    }

    /// Run a future that never waits (the in-memory connections are always ready).
    fn now<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the in-memory connection never waits"),
        }
    }

    /// Status and body of the response in `pieces`, read with an `rx` of `size` bytes, both
    /// in as many reads as the pieces and one byte at a time (the same result).
    fn get(pieces: &[&[u8]], size: usize) -> Result<(u16, Vec<u8>), Error> {
        get_as(false, pieces, size)
    }

    fn get_as(head: bool, pieces: &[&[u8]], size: usize) -> Result<(u16, Vec<u8>), Error> {
        let run = |mut conn: Mem<'_>| {
            let mut rx = std::vec![0u8; size];
            now(read(&mut conn, head, &mut rx)).map(|r| (r.status, r.body.to_vec()))
        };
        let whole = run(Mem::new(pieces));
        let bytewise = run(Mem::new(pieces).bytewise());
        assert_eq!(
            std::format!("{whole:?}"),
            std::format!("{bytewise:?}"),
            "one byte at a time"
        );
        whole
    }

    fn err(r: Result<(u16, Vec<u8>), Error>) -> Error {
        r.expect_err("an error")
    }

    fn is_codec(e: &Error) -> bool {
        matches!(e, Error::Http(reqwless::Error::Codec))
    }

    #[test]
    fn content_length() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(get(&[r], 64).unwrap(), (200, b"hello".to_vec()));
        // Split anywhere, and in an `rx` just large enough for the head.
        for at in 0..r.len() {
            let (a, b) = r.split_at(at);
            assert_eq!(get(&[a, b], 64).unwrap(), (200, b"hello".to_vec()), "{at}");
        }
        assert_eq!(get(&[r], 38).unwrap().1, b"hello");
        // The body alone needs only its own length: it moves to the start of `rx`.
        let long = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n";
        let body = [b'x'; 40];
        assert_eq!(get(&[long, &body], 40).unwrap().1, body);
        // Repeated, the same value is fine; bytes after the body are ignored.
        let twice = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nokEXTRA";
        assert_eq!(get(&[twice], 64).unwrap().1, b"ok");
        let empty = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(get(&[empty], 64).unwrap(), (200, Vec::new()));
    }

    #[test]
    fn content_length_too_large_is_refused_before_reading_the_body() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n";
        let mut conn = Mem::new(&[head, &[b'x'; 65]]);
        let mut rx = [0u8; 64];
        let e = now(read(&mut conn, false, &mut rx)).unwrap_err();
        assert!(matches!(e, Error::ResponseTooLarge), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::OutOfMemory);
        assert_eq!(conn.reads, 1, "the body was not read");
        let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999999\r\n\r\n";
        assert!(matches!(err(get(&[huge], 128)), Error::ResponseTooLarge));
    }

    #[test]
    fn content_length_short_is_truncated() {
        let r: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly";
        let e = err(get(&[r], 64));
        assert!(matches!(e, Error::Truncated), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::ConnectionAborted);
        // The connection closed right after the head.
        let r: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        assert!(matches!(err(get(&[r], 64)), Error::Truncated));
    }

    #[test]
    fn bad_content_lengths() {
        for value in ["", "abc", "-1", "+5", "5 5", "5, 5", "0x10", "1.0"] {
            let r = std::format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n");
            assert!(is_codec(&err(get(&[r.as_bytes()], 128))), "{value:?}");
        }
        let conflict = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc";
        assert!(is_codec(&err(get(&[conflict], 128))));
        let both =
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert!(is_codec(&err(get(&[both], 128))));
        assert_eq!(err(get(&[conflict], 128)).kind(), ErrorKind::InvalidData);
    }

    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

    #[test]
    fn chunked_several_chunks() {
        let body = b"5\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n";
        assert_eq!(
            get(&[CHUNKED, body], 128).unwrap(),
            (200, b"hello world!".to_vec())
        );
        // Upper- and lower-case hex, leading zeros, one chunk of 0x1a bytes.
        let hex = b"1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0000\r\n\r\n";
        assert_eq!(
            get(&[CHUNKED, hex], 128).unwrap().1,
            b"abcdefghijklmnopqrstuvwxyz"
        );
        let lower = b"1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        assert_eq!(get(&[CHUNKED, lower], 128).unwrap().1.len(), 26);
        // An empty body, and the coding's name in another case and with whitespace.
        let te = b"HTTP/1.1 200 OK\r\nTransfer-Encoding:  Chunked \r\n\r\n0\r\n\r\n";
        assert_eq!(get(&[te], 128).unwrap(), (200, Vec::new()));
    }

    #[test]
    fn chunked_split_anywhere() {
        let mut whole = CHUNKED.to_vec();
        whole.extend_from_slice(b"3;x=y\r\nabc\r\n4\r\ndefg\r\n0\r\nT: 1\r\n\r\n");
        for at in 0..whole.len() {
            let (a, b) = whole.split_at(at);
            assert_eq!(get(&[a, b], 128).unwrap().1, b"abcdefg", "{at}");
        }
        for (a, b) in (0..whole.len()).flat_map(|a| (a..whole.len()).map(move |b| (a, b))) {
            let pieces = [&whole[..a], &whole[a..b], &whole[b..]];
            assert_eq!(get(&pieces, 128).unwrap().1, b"abcdefg", "{a} {b}");
        }
    }

    #[test]
    fn chunk_extensions_and_trailers() {
        let ext = b"5;name=value;quoted=\"a;b\"\r\nhello\r\n6 ; x\r\n world\r\n0;last\r\n\r\n";
        assert_eq!(get(&[CHUNKED, ext], 128).unwrap().1, b"hello world");
        let trailers = b"2\r\nok\r\n0\r\nExpires: never\r\nX-Checksum: abc\r\n\r\n";
        let r = get(&[CHUNKED, trailers], 128).unwrap();
        assert_eq!(r, (200, b"ok".to_vec()));
        // Bytes after the end of the message are ignored.
        let after = b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert_eq!(get(&[CHUNKED, after], 128).unwrap().1, b"ok");
    }

    #[test]
    fn bad_chunks() {
        for body in [
            &b"x\r\nabc\r\n0\r\n\r\n"[..],
            b"\r\n",
            b" 3\r\nabc\r\n0\r\n\r\n",
            b"3x\r\nabc\r\n0\r\n\r\n",
            b"3\rabc\r\n0\r\n\r\n",
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"-1\r\n",
        ] {
            let e = err(get(&[CHUNKED, body], 128));
            assert!(is_codec(&e), "{:?}: {e:?}", std::str::from_utf8(body));
        }
        for te in ["gzip", "gzip, chunked", "chunked, chunked", ""] {
            let r = std::format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n");
            assert!(is_codec(&err(get(&[r.as_bytes()], 128))), "{te:?}");
        }
        let twice = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(is_codec(&err(get(&[twice], 128))));
    }

    #[test]
    fn chunked_too_large() {
        // A chunk larger than the room left is refused as soon as its size is known.
        let head = CHUNKED;
        let mut conn = Mem::new(&[head, b"41\r\n", &[b'x'; 65]]);
        let mut rx = [0u8; 64];
        let e = now(read(&mut conn, false, &mut rx)).unwrap_err();
        assert!(matches!(e, Error::ResponseTooLarge), "{e:?}");
        assert_eq!(conn.reads, 2);
        // Chunks that fit one by one but not together.
        let body = b"20\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n21\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n0\r\n\r\n";
        assert!(matches!(
            err(get(&[head, body], 64)),
            Error::ResponseTooLarge
        ));
        // A size beyond u64 or usize.
        let huge = b"ffffffffffffffff\r\n";
        assert!(matches!(
            err(get(&[head, huge], 64)),
            Error::ResponseTooLarge
        ));
        // A chunk-size line (extensions) that fills the buffer.
        let mut ext = b"1;".to_vec();
        ext.extend_from_slice(&[b'e'; 100]);
        assert!(matches!(
            err(get(&[head, &ext], 64)),
            Error::ResponseTooLarge
        ));
        // The body exactly fills `rx`, with the framing read after it.
        let exact = b"20\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n20\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n0\r\n\r\n";
        assert!(matches!(
            err(get(&[head, exact], 64)),
            Error::ResponseTooLarge
        ));
        assert_eq!(get(&[head, exact], 69).unwrap().1, [b'x'; 64]);
    }

    #[test]
    fn chunked_cut_short_is_truncated_not_a_spin() {
        for body in [
            &b""[..],
            b"5",
            b"5\r",
            b"5\r\n",
            b"5\r\nhel",
            b"5\r\nhello",
            b"5\r\nhello\r",
            b"5\r\nhello\r\n",
            b"5\r\nhello\r\n0\r\n",
            b"5\r\nhello\r\n0\r\nX: y\r\n",
            b"5\r\nhello\r\n0\r\n\r",
        ] {
            let e = err(get(&[CHUNKED, body], 128));
            assert!(
                matches!(e, Error::Truncated),
                "{:?}: {e:?}",
                std::str::from_utf8(body)
            );
        }
    }

    #[test]
    fn head_cut_short_or_too_large() {
        for cut in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"HTTP/1.1 200 OK\r\n\r",
        ] {
            let e = err(get(&[cut], 128));
            assert!(matches!(e, Error::Truncated), "{cut:?}: {e:?}");
            assert_eq!(e.kind(), ErrorKind::ConnectionAborted);
        }
        let r = b"HTTP/1.1 200 OK\r\nX-Padding: 0123456789012345678901234567890123456789\r\n\r\n";
        assert!(matches!(err(get(&[r], 64)), Error::ResponseTooLarge));
        assert!(matches!(err(get(&[r], 0)), Error::ResponseTooLarge));
        assert_eq!(get(&[r], r.len()).unwrap(), (200, Vec::new()));
        for bad in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 OK\r\n\r\n",
            b"<html>",
            b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        ] {
            assert!(is_codec(&err(get(&[bad], 128))), "{bad:?}");
        }
    }

    #[test]
    fn read_until_close() {
        let r = b"HTTP/1.1 200 OK\r\n\r\nhello ";
        assert_eq!(
            get(&[r, b"world"], 64).unwrap(),
            (200, b"hello world".to_vec())
        );
        // HTTP/1.0 without a length.
        assert_eq!(
            get(&[b"HTTP/1.0 200 OK\r\n\r\nx"], 64).unwrap(),
            (200, b"x".to_vec())
        );
        // Exactly the size of `rx`, and one byte more.
        let head = b"HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(get(&[head, &[b'x'; 64]], 64).unwrap().1, [b'x'; 64]);
        let e = err(get(&[head, &[b'x'; 65]], 64));
        assert!(matches!(e, Error::ResponseTooLarge), "{e:?}");
        assert_eq!(get(&[head], 64).unwrap(), (200, Vec::new()));
    }

    #[test]
    fn responses_without_a_body() {
        for r in [
            &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let (status, body) = get(&[r], 64).unwrap();
            assert!(matches!(status, 204 | 304) && body.is_empty(), "{r:?}");
        }
        // A HEAD: the headers describe a body that is not sent.
        for r in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
        ] {
            assert_eq!(get_as(true, &[r], 64).unwrap(), (200, Vec::new()), "{r:?}");
        }
        // Not a HEAD: the same responses have bodies.
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
        assert!(matches!(err(get(&[r], 64)), Error::ResponseTooLarge));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
                  HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(get(&[r], 64).unwrap(), (200, b"ok".to_vec()));
        let only = b"HTTP/1.1 100 Continue\r\n\r\n";
        assert!(matches!(err(get(&[only], 64)), Error::Truncated));
    }

    #[test]
    fn headers_reach_alf() {
        let r = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nRetry-After: 7\r\n\
                  WWW-Authenticate: Bearer error=\"invalid_token\"\r\n\r\n";
        let mut conn = Mem::new(&[r]);
        let mut rx = [0u8; 256];
        let response = now(read(&mut conn, false, &mut rx)).unwrap();
        assert_eq!(response.status, 401);
        assert_eq!(
            response.retry_after,
            Some(alf::http::RetryAfter::Seconds(7))
        );
        assert_eq!(
            response.bearer_error,
            Some(alf::http::BearerError::InvalidToken)
        );
    }

    #[test]
    fn too_many_headers() {
        let head = |n: usize| {
            let mut r = std::string::String::from("HTTP/1.1 200 OK\r\n");
            for i in 0..n {
                r.push_str(&std::format!("X-{i}: {i}\r\n"));
            }
            r + "Content-Length: 0\r\n\r\n"
        };
        let fits = head(MAX_RESPONSE_HEADERS - 1);
        assert_eq!(get(&[fits.as_bytes()], 1024).unwrap().0, 200);
        let e = err(get(&[head(MAX_RESPONSE_HEADERS).as_bytes()], 1024));
        assert!(matches!(e, Error::TooManyResponseHeaders), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::OutOfMemory);
    }

    #[test]
    fn read_errors_keep_their_kind() {
        let mut rx = [0u8; 64];
        let e = now(read(&mut Failing, false, &mut rx)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e:?}");
    }
}
