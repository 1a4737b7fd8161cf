//! Where a chunked message body ends (RFC 9112 §7.1), for bodies the fast path passes through unchanged: the
//! bytes go to the caller as they came, and this only follows the framing — chunk sizes, data, CRLFs, the last
//! chunk and the trailer section — so the gateway knows when the response is complete and the instance connection
//! free for the next request.
//!
//! Lenient where hyper is (a bare LF ends a line) and strict where a wrong guess would desynchronise the
//! connection (a size that is not hex, too long, or data not followed by its line end): those are errors, and the
//! caller drops the connection.

/// A chunked body's framing state, fed the body's bytes in order.
#[derive(Debug, Clone, Default)]
pub struct Chunked {
    state: State,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
enum State {
    /// Reading the hex digits of a chunk size (`digits` so far).
    #[default]
    SizeStart,
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: whitespace and chunk extensions up to the line end.
    Extension {
        size: u64,
    },
    /// Saw CR after a size line: LF must follow.
    SizeLf {
        size: u64,
    },
    /// In a chunk's data, this many bytes to go.
    Data(u64),
    /// After a chunk's data: CR LF (or a bare LF).
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the empty line that ends the body).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// Saw CR at the start of a trailer line: LF ends the body.
    EndLf,
    Done,
}

/// The bytes do not follow chunked framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// At most 16 hex digits: a size must fit in 64 bits.
const MAX_DIGITS: u8 = 16;

impl Chunked {
    /// Follows `buf`, the next bytes of the body. Returns how many of them belong to the body: all of them, or
    /// fewer when the body ends inside `buf` (the rest belongs to whatever follows on the connection).
    pub fn feed(&mut self, buf: &[u8]) -> Result<usize, Malformed> {
        let mut i = 0;
        while i < buf.len() {
            if self.state == State::Done {
                return Ok(i);
            }
            if let State::Data(left) = self.state {
                let take = left.min((buf.len() - i) as u64);
                i += take as usize;
                self.state = if take == left { State::DataCr } else { State::Data(left - take) };
                continue;
            }
            let b = buf[i];
            i += 1;
            self.state = match self.state {
                State::SizeStart => State::Size { size: hex(b).ok_or(Malformed)?, digits: 1 },
                State::Size { size, digits } => match hex(b) {
                    Some(d) if digits < MAX_DIGITS => State::Size { size: size << 4 | d, digits: digits + 1 },
                    Some(_) => return Err(Malformed),
                    None => after_size(size, b)?,
                },
                State::Extension { size } => after_size(size, b)?,
                State::SizeLf { size } => match b {
                    b'\n' => line_done(size),
                    _ => return Err(Malformed),
                },
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    b'\n' => State::SizeStart,
                    _ => return Err(Malformed),
                },
                State::DataLf => match b {
                    b'\n' => State::SizeStart,
                    _ => return Err(Malformed),
                },
                State::TrailerStart => match b {
                    b'\r' => State::EndLf,
                    b'\n' => State::Done,
                    _ => State::TrailerLine,
                },
                State::TrailerLine => match b {
                    b'\n' => State::TrailerStart,
                    _ => State::TrailerLine,
                },
                State::EndLf => match b {
                    b'\n' => State::Done,
                    _ => return Err(Malformed),
                },
                State::Data(_) | State::Done => unreachable!("handled above"),
            };
        }
        Ok(i)
    }

    /// The last chunk and the trailer section have been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

/// The byte after a size's digits (or inside its extensions).
fn after_size(size: u64, b: u8) -> Result<State, Malformed> {
    Ok(match b {
        b'\r' => State::SizeLf { size },
        b'\n' => line_done(size),
        // Whitespace, `;name=value` extensions (quoted strings included): skipped up to the line end.
        b'\t' | b' '..=b'~' | 0x80..=0xff => State::Extension { size },
        _ => return Err(Malformed),
    })
}

fn line_done(size: u64) -> State {
    if size == 0 {
        State::TrailerStart
    } else {
        State::Data(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `body` then `rest` in pieces split at `cuts`; returns the body length found.
    fn end_of(bytes: &[u8], cuts: &[usize]) -> Result<Option<usize>, Malformed> {
        let mut c = Chunked::default();
        let mut at = 0;
        let mut points: Vec<usize> = cuts.iter().map(|&x| x % (bytes.len() + 1)).collect();
        points.push(bytes.len());
        points.sort_unstable();
        for p in points {
            if p < at {
                continue;
            }
            let used = c.feed(&bytes[at..p])?;
            if c.is_done() {
                return Ok(Some(at + used));
            }
            assert_eq!(used, p - at, "every byte belongs to an unfinished body");
            at = p;
        }
        Ok(None)
    }

    #[test]
    fn finds_the_end_of_bodies() {
        let next = b"HTTP/1.1 200 OK\r\n\r\n";
        for (body, complete) in [
            (&b"0\r\n\r\n"[..], true),
            (b"5\r\nhello\r\n0\r\n\r\n", true),
            (b"5;ext=\"a;b\"\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n", true),
            (b"5\nhello\n0\n\n", true),
            (b"3\r\nabc\r\n0\r\nExpires: never\r\nX-A: b\r\n\r\n", true),
            (b"00000000000000ff\r\n", false),
            (b"5\r\nhello\r\n0\r\n", false),
        ] {
            let mut bytes = body.to_vec();
            bytes.extend_from_slice(next);
            let end = complete.then_some(body.len());
            assert_eq!(end_of(body, &[]), Ok(end.filter(|_| complete)), "{}", String::from_utf8_lossy(body));
            if complete {
                assert_eq!(end_of(&bytes, &[]), Ok(end), "{}", String::from_utf8_lossy(body));
                assert_eq!(end_of(&bytes, &[1, 2, 3, 7]), Ok(end));
            }
        }
    }

    #[test]
    fn refuses_what_is_not_chunked() {
        for bad in [&b"x\r\n"[..], b"5\r\nhelloX", b"\r\n", b"11111111111111111\r\n", b"5\r\nhello\r\r", b"0\r\n\rX"] {
            assert_eq!(end_of(bad, &[]), Err(Malformed), "{}", String::from_utf8_lossy(bad));
        }
    }

    proptest! {
        /// Any chunking of any data, cut anywhere: the end is found exactly, whatever follows.
        #[test]
        fn the_end_is_found_however_the_bytes_arrive(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
            trailers in proptest::collection::vec("[A-Za-z-]{1,8}: [ -~]{0,12}", 0..3),
            upper in any::<bool>(),
            after in proptest::collection::vec(any::<u8>(), 0..30),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut body = Vec::new();
            for c in &chunks {
                let size = if upper { format!("{:X}", c.len()) } else { format!("{:x}", c.len()) };
                body.extend_from_slice(size.as_bytes());
                body.extend_from_slice(b"\r\n");
                body.extend_from_slice(c);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"0\r\n");
            for t in &trailers {
                body.extend_from_slice(t.as_bytes());
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"\r\n");
            let mut bytes = body.clone();
            bytes.extend_from_slice(&after);
            prop_assert_eq!(end_of(&bytes, &cuts), Ok(Some(body.len())));
        }
    }
}
