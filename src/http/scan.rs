//! The common request head, scanned by hand in one pass; httparse decides everything else.
//!
//! Nearly every request head is plain: a token method, one space, a printable-ASCII target,
//! one space, `HTTP/1.1` or `HTTP/1.0`, CRLF line ends, `name: value` fields of printable
//! ASCII. [`scan`] reads exactly that shape and nothing else: at the first byte outside it
//! (a bare LF, a leading empty line, obs-text, a control, a missing byte, one field too many)
//! it returns `None` and the caller asks httparse, which then gives the answer (complete,
//! partial or which error). So the two agree by construction on everything `scan` declines,
//! and on what it accepts they must give the same parts: `parse_head` checks that against
//! httparse on every head in builds with debug assertions (the tests and the fuzz targets).
//!
//! Why by hand: on the benchmark's `GET` (33 bytes), httparse spent about 500 instructions
//! (its SIMD dispatch, a UTF-8 check of the target, its header loop) where this loop spends
//! under 200; see `docs/benchmarks.md`, section 5c.

use std::ops::Range;

use super::parse::HeaderSpan;

/// The request line of a scanned head, as ranges into the input, and the head's length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestLine {
    pub(crate) method: Range<usize>,
    pub(crate) target: Range<usize>,
    pub(crate) http10: bool,
    /// The head's length, its final CRLF included.
    pub(crate) len: usize,
}

/// `tchar` (RFC 9110 §5.6.2): what a method and a field name are made of (httparse's
/// `TOKEN_MAP`).
static TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

/// The bytes of a target this scan accepts: visible ASCII (httparse also takes bytes over
/// 0x7F and checks UTF-8: those heads go to it).
static TARGET: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x21;
    while b < 0x7F {
        table[b] = true;
        b += 1;
    }
    table
};

/// The bytes of a field value this scan accepts: HTAB, SP and visible ASCII (httparse also
/// takes obs-text: those heads go to it).
static VALUE: [bool; 256] = {
    let mut table = TARGET;
    table[b'\t' as usize] = true;
    table[b' ' as usize] = true;
    table
};

/// Scans the head at the start of `buf` if it has the common shape, its fields into `headers`
/// (cleared first; at most `max_headers`). `None`: not that shape, or not complete in `buf`;
/// `headers` is then meaningless and httparse must parse the head.
pub(crate) fn scan(
    buf: &[u8],
    headers: &mut Vec<HeaderSpan>,
    max_headers: usize,
) -> Option<RequestLine> {
    headers.clear();
    let method = 0..run(buf, 0, &TOKEN)?;
    let target = method.end + 1..run(buf, method.end + 1, &TARGET)?;
    if method.is_empty() || target.is_empty() {
        return None;
    }
    let http10 = match buf.get(target.end + 1..target.end + 11)? {
        b"HTTP/1.1\r\n" => false,
        b"HTTP/1.0\r\n" => true,
        _ => return None,
    };
    let mut at = target.end + 11;
    loop {
        if *buf.get(at)? == b'\r' {
            return (*buf.get(at + 1)? == b'\n').then_some(RequestLine {
                method,
                target,
                http10,
                len: at + 2,
            });
        }
        let (field, next) = field(buf, at)?;
        if headers.len() == max_headers {
            return None;
        }
        headers.push(field);
        at = next;
    }
}

/// The end of the run of `allowed` bytes from `from`, which must be followed by a space.
#[inline]
fn run(buf: &[u8], from: usize, allowed: &[bool; 256]) -> Option<usize> {
    let mut at = from;
    loop {
        let b = *buf.get(at)?;
        if !allowed[usize::from(b)] {
            return (b == b' ').then_some(at);
        }
        at += 1;
    }
}

/// One `name: value` CRLF line at `at`; the field and where the next line starts. The value
/// is without its leading and trailing SP and HTAB, as httparse gives it (an empty value is
/// the empty range at its CR).
#[inline]
fn field(buf: &[u8], at: usize) -> Option<(HeaderSpan, usize)> {
    let mut end = at;
    while TOKEN[usize::from(*buf.get(end)?)] {
        end += 1;
    }
    if end == at || buf[end] != b':' {
        return None;
    }
    let name = at..end;
    let mut start = end + 1;
    while matches!(*buf.get(start)?, b' ' | b'\t') {
        start += 1;
    }
    let mut cr = start;
    while VALUE[usize::from(*buf.get(cr)?)] {
        cr += 1;
    }
    if buf[cr] != b'\r' || *buf.get(cr + 1)? != b'\n' {
        return None;
    }
    let mut value_end = cr;
    while value_end > start && matches!(buf[value_end - 1], b' ' | b'\t') {
        value_end -= 1;
    }
    let field = HeaderSpan {
        name,
        value: start..value_end,
    };
    Some((field, cr + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields as `(name, value)`.
    type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;

    fn scanned(input: &[u8]) -> Option<(RequestLine, Fields<'_>)> {
        let mut spans = Vec::new();
        let line = scan(input, &mut spans, 4)?;
        let fields = spans
            .iter()
            .map(|s| (&input[s.name.clone()], &input[s.value.clone()]))
            .collect();
        Some((line, fields))
    }

    #[test]
    fn scans_the_common_shape() {
        let input = b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-Y: \t1 2 \t\r\nE:\r\n\r\nbody";
        let (line, fields) = scanned(input).unwrap();
        assert_eq!(&input[line.method], b"GET");
        assert_eq!(&input[line.target], b"/a?b");
        assert!(!line.http10);
        assert_eq!(line.len, input.len() - 4);
        assert_eq!(
            fields,
            [(&b"Host"[..], &b"x"[..]), (b"X-Y", b"1 2"), (b"E", b"")]
        );
        assert!(scanned(b"GET / HTTP/1.0\r\n\r\n").unwrap().0.http10);
    }

    #[test]
    fn declines_everything_else() {
        for other in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n"[..], // incomplete
            b"GET / HTTP/1.1\r\nHost: x\r\n\r",
            b"\r\nGET / HTTP/1.1\r\n\r\n",     // a leading empty line
            b"GET / HTTP/1.1\nHost: x\n\n",    // bare LF
            b"GET  / HTTP/1.1\r\n\r\n",        // two spaces
            b"GET / HTTP/2.0\r\n\r\n",         // version
            b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", // non-ASCII target
            b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n", // obs-text
            b"GET / HTTP/1.1\r\nX : 1\r\n\r\n", // space before the colon
            b"GET / HTTP/1.1\r\n X: 1\r\n\r\n", // obs-fold
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", // over 4 fields
            b" / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(scanned(other), None, "{:?}", String::from_utf8_lossy(other));
        }
    }
}
