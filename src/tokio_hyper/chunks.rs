//! The chunk sizes of a chunked request body, read as hyper reads them, for a route that
//! refuses a body past its limit from the size alone, as the mio server does (`413` at the
//! size line). hyper hands a route a body's data, never its chunk sizes: a chunk declared past
//! the limit was waited for until its data came, or the body timeout.
//!
//! Watched only where the body's first byte is the first byte hyper reads after the route began
//! (a client that waits for `100 Continue`: hyper reads nothing of the body before the route
//! asks for it, and sends the `100` then), so the scan begins at a size line. Anything the scan
//! does not take for chunked framing ends the watch: hyper judges the framing itself.

/// Where a [`ChunkWatch`] is in the body's framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// A chunk size's hex digits so far (`None`: none yet).
    Size(Option<u64>),
    /// A chunk extension or whitespace after the size, up to the line's end.
    Extension(u64),
    /// The size line's CR was read; its LF comes next.
    SizeLf(u64),
    /// A chunk's data, this many bytes of it left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataCr,
    DataLf,
}

/// What a scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The body goes on within the limit.
    Within,
    /// A chunk size takes the body past the limit: the route answers `413` now.
    PastLimit,
    /// The last chunk (size 0), or what the scan does not take for chunked framing: the watch
    /// ends.
    Ended,
}

/// The framing of one chunked body, and what is left of its route's limit.
#[derive(Debug)]
pub(crate) struct ChunkWatch {
    at: At,
    left: u64,
}

impl ChunkWatch {
    /// A body at its first size line, to stay within `max_body` bytes of data.
    pub(crate) fn new(max_body: u64) -> Self {
        ChunkWatch {
            at: At::Size(None),
            left: max_body,
        }
    }

    /// Takes `bytes`, the next ones hyper read of the body (and maybe what follows it).
    pub(crate) fn scan(&mut self, mut bytes: &[u8]) -> Scan {
        while let Some((&byte, rest)) = bytes.split_first() {
            let at = match self.at {
                At::Data(left) => {
                    let taken = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    bytes = &bytes[taken..];
                    let left = left - taken as u64;
                    self.at = if left == 0 {
                        At::DataCr
                    } else {
                        At::Data(left)
                    };
                    continue;
                }
                At::Size(size) => match (byte as char).to_digit(16) {
                    Some(digit) => {
                        let size = size.unwrap_or(0);
                        match size.checked_mul(16).map(|s| s + u64::from(digit)) {
                            Some(size) => At::Size(Some(size)),
                            None => return Scan::Ended, // past `u64`: hyper's framing error
                        }
                    }
                    None => match (size, byte) {
                        (Some(size), b';' | b' ' | b'\t') => At::Extension(size),
                        (Some(size), b'\r') => At::SizeLf(size),
                        (Some(size), b'\n') => return self.size_line(size, rest),
                        _ => return Scan::Ended,
                    },
                },
                At::Extension(size) => match byte {
                    b'\n' => return self.size_line(size, rest),
                    b'\r' => At::SizeLf(size),
                    _ => At::Extension(size),
                },
                At::SizeLf(size) => match byte {
                    b'\n' => return self.size_line(size, rest),
                    _ => return Scan::Ended,
                },
                At::DataCr => match byte {
                    b'\r' => At::DataLf,
                    b'\n' => At::Size(None),
                    _ => return Scan::Ended,
                },
                At::DataLf => match byte {
                    b'\n' => At::Size(None),
                    _ => return Scan::Ended,
                },
            };
            self.at = at;
            bytes = rest;
        }
        Scan::Within
    }

    /// A size line ended, `rest` behind it.
    fn size_line(&mut self, size: u64, rest: &[u8]) -> Scan {
        if size == 0 {
            return Scan::Ended;
        }
        match self.left.checked_sub(size) {
            None => Scan::PastLimit,
            Some(left) => {
                self.left = left;
                self.at = At::Data(size);
                self.scan(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_judged_against_what_is_left_of_the_limit_whatever_the_splits() {
        let body = b"10\r\n0123456789abcdef\r\n8;ext=1\r\n01234567\r\n0\r\n\r\n";
        for split in 0..body.len() {
            let mut watch = ChunkWatch::new(24);
            let first = watch.scan(&body[..split]);
            // The last chunk's size line (`0\r\n`) ends the watch, the trailer section unread.
            if split >= body.len() - 2 {
                assert_eq!(first, Scan::Ended, "split at {split}");
                continue;
            }
            let second = watch.scan(&body[split..]);
            assert_eq!(first, Scan::Within, "split at {split}");
            assert_eq!(second, Scan::Ended, "split at {split}");
        }
        let mut watch = ChunkWatch::new(23);
        assert_eq!(watch.scan(body), Scan::PastLimit);
        assert_eq!(ChunkWatch::new(1000).scan(b"7d0\r\nabc"), Scan::PastLimit);
        assert_eq!(ChunkWatch::new(1000).scan(b"3e8\r\nabc"), Scan::Within);
        assert_eq!(
            ChunkWatch::new(u64::MAX - 1).scan(b"ffffffffffffffff\r\n"),
            Scan::PastLimit
        );
        // Past `u64`: hyper's to refuse as framing (`400`), as the mio server does.
        assert_eq!(
            ChunkWatch::new(10).scan(b"fffffffffffffffff\r\n"),
            Scan::Ended
        );
        // Not chunked framing: the watch ends, and says nothing of a limit.
        assert_eq!(ChunkWatch::new(10).scan(b"zz\r\n"), Scan::Ended);
        assert_eq!(ChunkWatch::new(10).scan(b"\r\n"), Scan::Ended);
        assert_eq!(ChunkWatch::new(10).scan(b"2\r\nabX"), Scan::Ended);
    }
}
