//! Request parsing with httparse: the head, then a `Content-Length` or chunked body.
//!
//! Nothing here allocates. Parsed parts are kept as byte ranges into the connection's input;
//! chunked bodies are decoded incrementally in src/http/chunked.rs.

use std::ops::Range;

use super::chunked::ChunkedError;
use super::limits::Limits;

/// Headers beyond this count get `431`.
const MAX_HEADERS: usize = 64;

/// Why the input cannot become a request; each maps to one status and closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Malformed request line, headers, framing or chunk: `400`.
    BadRequest,
    /// Request line plus headers over the limit: `431`.
    HeadTooLarge,
    /// Body over the limit: `413`.
    BodyTooLarge,
    /// A chunked body that breaks the syntax or a limit (`400`, `413` or `431`).
    Chunked(ChunkedError),
    /// The client took too long to send its request: `408`.
    Timeout,
}

impl Reject {
    pub(crate) fn status(self) -> u16 {
        match self {
            Reject::BadRequest => 400,
            Reject::HeadTooLarge => 431,
            Reject::BodyTooLarge => 413,
            Reject::Timeout => 408,
            Reject::Chunked(error) => error.status(),
        }
    }
}

/// How the body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
}

/// A parsed request head, as ranges into the input it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) method: Range<usize>,
    pub(crate) target: Range<usize>,
    pub(crate) http10: bool,
    pub(crate) len: usize,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
}

fn range_of(buf: &[u8], part: &str) -> Range<usize> {
    // Pointer arithmetic on two addresses, no unsafe: `part` is a subslice of `buf`.
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses a request head at the start of `buf`: `Ok(None)` while it is incomplete.
pub(crate) fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<Head>, Reject> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    // Only the first `max_head` bytes can hold an acceptable head. Parsing no further makes the
    // answer independent of how the bytes arrived: an error past the limit is a `431` whether
    // the client sent it in one read or in many.
    let window = &buf[..buf.len().min(limits.get_max_head())];
    let len = match request.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > limits.get_max_head() => {
            return Err(Reject::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::HeadTooLarge),
        Err(_) => return Err(Reject::BadRequest),
    };
    if len > limits.get_max_head() {
        return Err(Reject::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(Reject::BadRequest);
    };
    let http10 = version == 0;
    let mut length: Option<Option<u64>> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut expect_continue = false;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(header.value)?;
            // Two different lengths are a request-smuggling attempt.
            if length.is_some_and(|l| l != n) {
                return Err(Reject::BadRequest);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` alone is understood; anything else cannot be framed.
            if !header.value.trim_ascii().eq_ignore_ascii_case(b"chunked") || chunked {
                return Err(Reject::BadRequest);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            close |= has_token(header.value, "close");
            keep_alive |= has_token(header.value, "keep-alive");
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = header
                .value
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue");
        }
    }
    let framing = match (chunked, length) {
        // Both framings at once are the other smuggling attempt.
        (true, Some(_)) => return Err(Reject::BadRequest),
        (true, None) if http10 => return Err(Reject::BadRequest),
        (true, None) => Framing::Chunked,
        (false, n) => {
            // At most `max_body`, which is a `usize`.
            let max = u64::try_from(limits.get_max_body()).unwrap_or(u64::MAX);
            match n.unwrap_or(Some(0)) {
                Some(n) if n <= max => {
                    Framing::Length(usize::try_from(n).map_err(|_| Reject::BodyTooLarge)?)
                }
                _ => return Err(Reject::BodyTooLarge),
            }
        }
    };
    Ok(Some(Head {
        method: range_of(buf, method),
        target: range_of(buf, target),
        http10,
        len,
        framing,
        keep_alive: if http10 { keep_alive && !close } else { !close },
        expect_continue,
    }))
}

/// A `Content-Length` value: digits only (else `400`), read as a `u64` with checked
/// arithmetic; `None` when the numeral is past `u64` (RFC 9110 section 8.6: a recipient must
/// anticipate large numerals). Over `max_body` is `413` once the whole head is checked.
fn parse_length(value: &[u8]) -> Result<Option<u64>, Reject> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(Reject::BadRequest);
    }
    Ok(value.iter().try_fold(0u64, |n, digit| {
        n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(input: &[u8]) -> Result<Option<Head>, Reject> {
        parse_head(input, &Limits::default().max_head(256).max_body(16))
    }

    #[test]
    fn keep_alive_defaults_per_version() {
        let h = head(b"GET / HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert!(h.keep_alive && !h.http10);
        let h = head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive && h.http10);
        let h = head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = head(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
    }

    #[test]
    fn rejects() {
        assert_eq!(head(b"GET / HTTP/1.1\r\n"), Ok(None));
        // An error past the limit is a 431, however the bytes arrived.
        let mut late_error = b"GET / HTTP/1.1\r\nX: ".to_vec();
        late_error.extend_from_slice(&[b'a'; 260]);
        late_error.extend_from_slice(b"\0\r\n\r\n");
        assert_eq!(head(&late_error), Err(Reject::HeadTooLarge));
        assert_eq!(head(&late_error[..250]), Ok(None));
        assert_eq!(head(b"G\0T / HTTP/1.1\r\n\r\n"), Err(Reject::BadRequest));
        assert_eq!(head(&[b'a'; 300]), Err(Reject::HeadTooLarge));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend_from_slice(&[b'a'; 300]);
        assert_eq!(head(&long), Err(Reject::HeadTooLarge));
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n"),
            Err(Reject::BodyTooLarge)
        );
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(Reject::BadRequest)
        );
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Reject::BadRequest)
        );
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(Reject::BadRequest)
        );
        // Any numeral is read without overflow: over `u64` is simply too large.
        for huge in ["99999999999999999999999", "18446744073709551616", "17"] {
            let request = format!("POST / HTTP/1.1\r\nContent-Length: {huge}\r\n\r\n");
            assert_eq!(head(request.as_bytes()), Err(Reject::BodyTooLarge));
        }
        let any = Limits::default().max_body(usize::MAX);
        let request = b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n";
        assert_eq!(parse_head(request, &any), Err(Reject::BodyTooLarge));
    }
}
