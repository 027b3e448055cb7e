//! Responses: what a handler fills in, and how it is written on the wire.
//!
//! The writer uses no `core::fmt`: status lines are precomputed, the date comes formatted from
//! [`DateCache`](super::date::DateCache), and the length is written by `itoa`.

// The status lines live in one table, in the core (refusals use it too).
use crate::admit::status::status_line;

/// The reason phrase for `status` (empty for a status this server does not name).
pub(crate) fn reason(status: u16) -> &'static str {
    status_line(status).map_or("", |line| {
        // "HTTP/1.1 NNN " is 13 bytes; the line ends with CRLF. The table is ASCII.
        std::str::from_utf8(&line[13..line.len() - 2]).unwrap_or("")
    })
}

/// A response being built by a [`Handler`](crate::http::Handler).
///
/// The body buffer is the server's, reused from request to request, so a warm server answers
/// without allocating. The server adds `content-length` and `connection` itself.
///
/// # Examples
///
/// ```
/// use reqguard::http::{Reply, Request, Response};
///
/// fn teapot(_req: &Request<'_>, res: &mut Response<'_>) -> Reply {
///     res.set_status(418);
///     res.write(b"short and stout");
///     Reply::Now
/// }
/// # let _ = teapot;
/// ```
#[derive(Debug)]
pub struct Response<'a> {
    body: &'a mut Vec<u8>,
    /// What a handler set besides the body; `None` for the common answer (`200`, `text/plain`,
    /// no `allow`, no close, no stop): known as such by one load, and made by one store.
    set: Option<Settings<'a>>,
}

/// What a [`Response`] says besides its body, once anything is set.
#[derive(Debug)]
struct Settings<'a> {
    status: u16,
    /// `None` for `text/plain`: the common answer is known as such without comparing names.
    content_type: Option<&'static str>,
    allow: Option<&'a str>,
    close: bool,
    stop_server: bool,
    /// A `content-type` that is not a field value was set: the answer is a `500`.
    bad_content_type: bool,
}

impl<'a> Response<'a> {
    pub(crate) fn new(body: &'a mut Vec<u8>) -> Self {
        body.clear();
        Response { body, set: None }
    }

    /// What is set, from the defaults the first time.
    fn settings(&mut self) -> &mut Settings<'a> {
        self.set.get_or_insert(Settings {
            status: 200,
            content_type: None,
            allow: None,
            close: false,
            stop_server: false,
            bad_content_type: false,
        })
    }

    /// Sets the status code (200 unless set). A status outside `200..=599` is answered `500`:
    /// informational answers are the server's to send, and only three digits fit the wire.
    pub fn set_status(&mut self, status: u16) {
        let set = self.settings();
        if !set.bad_content_type {
            set.status = status;
        }
    }

    /// The status code (`500` once an invalid `content-type` was set).
    pub fn status(&self) -> u16 {
        match &self.set {
            None => 200,
            Some(set) if set.bad_content_type => 500,
            Some(set) => set.status,
        }
    }

    /// Sets the `content-type` (`text/plain` unless set). A value that is not a field value
    /// (with a control byte: CR, LF, NUL...; HTAB is allowed) makes the answer a plain `500`,
    /// whatever the handler sets or writes after it: written as set, it would end the field
    /// and inject others.
    pub fn set_content_type(&mut self, content_type: &'static str) {
        let set = self.settings();
        if set.bad_content_type || !is_field_value(content_type) {
            // A status out of range, kept: `settle` answers `500`.
            set.bad_content_type = true;
            set.status = 0;
            set.content_type = None;
            return;
        }
        set.content_type = (content_type != TEXT_PLAIN).then_some(content_type);
    }

    /// Appends to the body.
    pub fn write(&mut self, bytes: &[u8]) {
        self.body.extend_from_slice(bytes);
    }

    /// The body so far, to write into with `std::io::Write` or `extend`.
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        self.body
    }

    /// Closes the connection after this response (`Connection: close`).
    pub fn close_connection(&mut self) {
        self.settings().close = true;
    }

    /// Asks the server to stop gracefully once this turn of its loop ends: the "stop from the
    /// loop" path, the way a JS handler calls `server.stop()`, from
    /// [`Handler::handle`](crate::http::Handler::handle) or a deferred
    /// [`Handler::resume`](crate::http::Handler::resume) alike (a promise that resolves into
    /// `server.stop()`). A [`Session`](crate::http::Session) begins the stop when the call
    /// that ran the handler returns.
    pub fn stop_server(&mut self) {
        self.settings().stop_server = true;
    }

    /// Replaces whatever was written with a `status` answer (the panic path).
    pub(crate) fn fail(&mut self, status: u16) {
        let set = self.settings();
        set.status = status;
        set.content_type = None;
        self.body.clear();
        self.body.extend_from_slice(reason(status).as_bytes());
    }

    /// The `405` answer for a resource that answers the methods in `allow`.
    pub(crate) fn method_not_allowed(&mut self, allow: &'a str) {
        self.fail(405);
        self.settings().allow = Some(allow);
    }

    /// The `204` answer to an `OPTIONS` for a resource that answers the methods in `allow`.
    pub(crate) fn options(&mut self, allow: &'a str) {
        let set = self.settings();
        set.status = 204;
        set.allow = Some(allow);
        self.body.clear();
    }

    /// Makes the answer one the wire can carry: a status outside `200..=599` becomes `500`.
    #[inline]
    pub(crate) fn settle(&mut self) {
        if let Some(set) = &self.set {
            if !(200..=599).contains(&set.status) {
                self.fail(500);
            }
        }
    }

    /// What goes on the wire.
    pub(crate) fn answer(&self) -> Answer<'_> {
        match &self.set {
            None => Answer {
                status: 200,
                content_type: None,
                body: self.body,
                allow: None,
                plain: true,
            },
            Some(set) => Answer {
                status: set.status,
                content_type: set.content_type,
                body: self.body,
                allow: set.allow,
                plain: false,
            },
        }
    }

    /// Nothing but the body was set: `200`, `text/plain`, no `allow`, neither
    /// [`wants_close`](Response::wants_close) nor [`wants_stop`](Response::wants_stop).
    #[inline(always)]
    pub(crate) fn is_plain(&self) -> bool {
        self.set.is_none()
    }

    pub(crate) fn wants_close(&self) -> bool {
        self.set.as_ref().is_some_and(|set| set.close)
    }

    pub(crate) fn wants_stop(&self) -> bool {
        self.set.as_ref().is_some_and(|set| set.stop_server)
    }
}

/// Whether `value` can be written as a field value (RFC 9110 §5.5): visible ASCII, SP,
/// HTAB and obs-text; no other control byte (CR and LF above all).
fn is_field_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= b' ' && b != 0x7f))
}

pub(crate) use super::date::DateLine;
use super::date::TAIL_ROOM;

/// The content type of an answer unless its handler sets another.
const TEXT_PLAIN: &str = "text/plain";

/// One answer as the writer sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Answer<'a> {
    pub(crate) status: u16,
    /// `None` for `text/plain`.
    pub(crate) content_type: Option<&'a str>,
    pub(crate) body: &'a [u8],
    /// The `allow` field of a `405`.
    pub(crate) allow: Option<&'a str>,
    /// Known to be `200`, `text/plain` and without `allow` (a [`Response`] nothing but the
    /// body was set on): the common answer without comparing the three. False says nothing.
    pub(crate) plain: bool,
}

impl Answer<'static> {
    /// A plain-text answer whose body is its reason phrase (for `505`, also the versions the
    /// server speaks: RFC 9110 §15.6.6 asks the representation to say which are supported).
    pub(crate) fn plain(status: u16) -> Self {
        let body: &[u8] = match status {
            505 => b"HTTP Version Not Supported (this server speaks HTTP/1.0 and HTTP/1.1)",
            _ => reason(status).as_bytes(),
        };
        Answer {
            status,
            content_type: None,
            body,
            allow: None,
            plain: false,
        }
    }
}

/// Framing of one response on the wire: HTTP/1.0, `connection: close`, a `HEAD` request's
/// answer (its head alone, `content-length` included: RFC 9110 §9.3.2, so the next answer on
/// the connection parses).
///
/// One byte of flags, not three `bool`s: built from the head's fields just before the answer
/// is written (and captured by reference where the answer is queued), three one-byte stores
/// were read back as a two-byte and a one-byte load, and a load that spans two stores cannot
/// be forwarded from them: it waited for them to reach the cache, a quarter of the dispatch's
/// samples (`perf record`, floor bench, docs/benchmarks-history.md round 22).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Wire(u8);

impl Wire {
    const HTTP10: u8 = 1;
    const CLOSES: u8 = 2;
    const HEAD: u8 = 4;

    /// HTTP/1.1, `connection: close`, not `HEAD`: how a rejection or refusal is framed when
    /// nothing else is known of its request.
    pub(crate) const CLOSE: Wire = Wire(Wire::CLOSES);

    /// HTTP/1.1, kept alive, not `HEAD`.
    #[cfg(test)]
    pub(crate) const KEEP: Wire = Wire(0);

    #[inline(always)]
    pub(crate) const fn new(http10: bool, close: bool, head: bool) -> Wire {
        Wire(
            ((http10 as u8) * Wire::HTTP10)
                | ((close as u8) * Wire::CLOSES)
                | ((head as u8) * Wire::HEAD),
        )
    }

    /// The request was HTTP/1.0: its keep-alive is said (`connection: keep-alive`).
    #[inline(always)]
    pub(crate) const fn http10(self) -> bool {
        self.0 & Wire::HTTP10 != 0
    }

    /// The answer closes the connection (`connection: close`).
    #[inline(always)]
    pub(crate) const fn close(self) -> bool {
        self.0 & Wire::CLOSES != 0
    }

    /// The request was `HEAD`: the answer is its head alone.
    #[inline(always)]
    pub(crate) const fn head(self) -> bool {
        self.0 & Wire::HEAD != 0
    }

    /// The same framing, closing the connection or not as `close` says.
    #[inline(always)]
    pub(crate) const fn with_close(self, close: bool) -> Wire {
        Wire((self.0 & !Wire::CLOSES) | ((close as u8) * Wire::CLOSES))
    }

    /// The same framing, answering a `HEAD` request or not as `head` says.
    #[inline(always)]
    pub(crate) const fn with_head(self, head: bool) -> Wire {
        Wire((self.0 & !Wire::HEAD) | ((head as u8) * Wire::HEAD))
    }
}

/// Appends one whole response to `out`; `date` is the `date` field line (with its CRLF).
///
/// Four copies for the common answer (`200`, HTTP/1.1, `text/plain`: its head up to the length
/// comes whole from `date`; the digits, the end of the head, the body), six for others; no
/// formatting machinery. `allow` comes before the content fields so the length's CRLF and the
/// end of the head are one copy.
#[inline(always)]
pub(crate) fn write_response(out: &mut Vec<u8>, wire: Wire, date: &DateLine, answer: Answer<'_>) {
    write_answer::<false>(out, wire, date, answer);
}

/// As [`write_response`], but a body on the wire longer than [`LEND_FROM`] is left out (the
/// head says its length): returns true, and the caller lends the body to the connection's
/// output ([`Answers::lend`](super::answers::Answers::lend)) or copies it after the head. True
/// also for a body longer than that to a `HEAD` (none goes out): the caller writes nothing.
#[inline(always)]
pub(crate) fn write_response_lending(
    out: &mut Vec<u8>,
    wire: Wire,
    date: &DateLine,
    answer: Answer<'_>,
) -> bool {
    write_answer::<true>(out, wire, date, answer)
}

/// The shortest body [`write_response_lending`] leaves out: a constant, so the common answer
/// pays one compare with no load for it (whether the body is lent is then decided out of line,
/// against the dispatcher's `lend_over`).
pub(crate) const LEND_FROM: usize = 16 * 1024;

#[inline(always)]
fn write_answer<const LEND: bool>(
    out: &mut Vec<u8>,
    wire: Wire,
    date: &DateLine,
    answer: Answer<'_>,
) -> bool {
    let common = answer.status == 200 && answer.allow.is_none();
    if answer.plain || (common && answer.content_type.is_none()) {
        if is_short(wire, answer.body) {
            // The head and the room for its tail in one copy.
            out.extend_from_slice(date.ok_plain_and_room());
            write_short_tail(out, answer.body);
            return false;
        }
        out.extend_from_slice(date.ok_plain());
        return write_length_and_body::<LEND>(out, wire, answer.body);
    }
    // The common line, and every other fixed piece, has a constant length: copied inline.
    if common {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        write_status_line(out, answer.status);
    }
    out.extend_from_slice(date.line());
    if let Some(allow) = answer.allow {
        out.extend_from_slice(b"allow: ");
        out.extend_from_slice(allow.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // 1xx, 204 and 304 answers have no content, and 1xx and 204 no content-length either
    // (RFC 9110 §8.6, §15.3.5; RFC 9112 §6.3); 304 may omit it.
    let has_content = !matches!(answer.status, 100..=199 | 204 | 304);
    if has_content {
        if let Some(content_type) = answer.content_type {
            out.extend_from_slice(b"content-type: ");
            out.extend_from_slice(content_type.as_bytes());
            out.extend_from_slice(b"\r\ncontent-length: ");
        } else {
            out.extend_from_slice(b"content-type: text/plain\r\ncontent-length: ");
        }
        write_length_and_body::<LEND>(out, wire, answer.body)
    } else {
        match (wire.close(), wire.http10()) {
            (true, _) => out.extend_from_slice(b"connection: close\r\n\r\n"),
            (false, true) => out.extend_from_slice(b"connection: keep-alive\r\n\r\n"),
            (false, false) => out.extend_from_slice(b"\r\n"),
        }
        false
    }
}

/// The digits of `content-length`, the end of the head, and the body unless the request was
/// `HEAD` or (`LEND`) the body is longer than [`LEND_FROM`]: then returns true, the body is
/// the caller's to lend or copy.
#[inline(always)]
fn write_length_and_body<const LEND: bool>(out: &mut Vec<u8>, wire: Wire, body: &[u8]) -> bool {
    // The length's CRLF goes out with the end of the head.
    let end: &[u8] = match (wire.close(), wire.http10()) {
        (true, _) => b"\r\nconnection: close\r\n\r\n",
        (false, true) => b"\r\nconnection: keep-alive\r\n\r\n",
        (false, false) => b"\r\n\r\n",
    };
    if is_short(wire, body) {
        out.extend_from_slice(&[0; TAIL_ROOM]);
        write_short_tail(out, body);
        return false;
    }
    match body.len() {
        // One or two digits, most answers: no call, no digit buffer; a kept-alive HTTP/1.1
        // answer's with the end of its head, in one copy.
        n @ 0..=9 if end.len() == 4 => {
            out.extend_from_slice(&[digit(n), b'\r', b'\n', b'\r', b'\n'])
        }
        n @ 10..=99 if end.len() == 4 => {
            out.extend_from_slice(&[digit(n / 10), digit(n), b'\r', b'\n', b'\r', b'\n'])
        }
        n => {
            match n {
                0..=9 => out.push(digit(n)),
                10..=99 => out.extend_from_slice(&[digit(n / 10), digit(n)]),
                _ => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            }
            out.extend_from_slice(end);
        }
    }
    if wire.head() {
        // No body on the wire; a large one is still reported (the caller writes nothing of
        // it, but sees the response buffer it grew: `Connection::lend`).
        return LEND && body.len() > LEND_FROM;
    }
    if LEND && body.len() > LEND_FROM {
        return true;
    }
    out.extend_from_slice(body);
    false
}

/// The longest body [`write_short_tail`] writes: what [`TAIL_ROOM`] leaves after two length
/// digits and the head's end.
const SHORT_BODY: usize = 10;
const _: () = assert!(2 + 4 + SHORT_BODY <= TAIL_ROOM);

/// One decimal digit: the last of `n`.
fn digit(n: usize) -> u8 {
    b'0' + (n % 10) as u8
}

/// Whether an answer's tail is short: kept alive, HTTP/1.1 (the end of its head is the length's
/// CRLF and an empty line), not to `HEAD`, a body of at most [`SHORT_BODY`] bytes.
#[inline(always)]
fn is_short(wire: Wire, body: &[u8]) -> bool {
    !wire.close() && !wire.http10() && !wire.head() && body.len() <= SHORT_BODY
}

/// A kept-alive HTTP/1.1 answer's length digits, the end of its head and its body of at most
/// [`SHORT_BODY`] bytes, written in place over the [`TAIL_ROOM`] bytes of room that end `out`
/// (just appended), then cut to length: a few bytes of body need no call to `memcpy`. In place,
/// not gathered on the stack and
/// copied: the copy's 16-byte loads of bytes just stored one, four and eight at a time cannot be
/// forwarded from the stores, and waited for them to reach the cache, behind the answer's head
/// stored just before (with 64 connections, their output buffers out of the L1 cache: a quarter
/// of the dispatch's time).
#[inline(always)]
fn write_short_tail(out: &mut Vec<u8>, body: &[u8]) {
    let n = body.len();
    let Some(tail) = out.last_chunk_mut::<TAIL_ROOM>() else {
        return; // never: the room was just appended
    };
    let from = if n < 10 {
        tail[..5].copy_from_slice(&[digit(n), b'\r', b'\n', b'\r', b'\n']);
        5
    } else {
        tail[..6].copy_from_slice(&[digit(n / 10), digit(n), b'\r', b'\n', b'\r', b'\n']);
        6
    };
    copy_short(&mut tail[from..from + SHORT_BODY], body);
    // The room's unused bytes, cut off.
    out.truncate(out.len() - (TAIL_ROOM - from - n));
}

/// Copies `src` (at most 16 bytes) to the start of `dst` (16 bytes) with two fixed-size copies
/// that may overlap, as `memcpy` does for short lengths.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    match n {
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..n].copy_from_slice(&src[n - 8..]);
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..n].copy_from_slice(&src[n - 4..]);
        }
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        _ => {}
    }
}

/// The status line: `HTTP/1.1` whatever the request's version (RFC 9110 §6.2: a server SHOULD
/// send the highest version it conforms to, within the request's major version; an HTTP/1.0
/// client reads it as it reads HTTP/1.0, and nothing in the answer needs HTTP/1.1: no chunked
/// content, no `100` to HTTP/1.0).
fn write_status_line(out: &mut Vec<u8>, status: u16) {
    match status_line(status) {
        Some(line) => out.extend_from_slice(line),
        None => {
            // Three digits and an empty reason phrase (RFC 9112 §4); `settle` keeps the status
            // in 200..=599, and anything else still writes three digits.
            let status = status.clamp(100, 999);
            let digits = [
                b' ',
                b'0' + (status / 100) as u8,
                b'0' + (status / 10 % 10) as u8,
                b'0' + (status % 10) as u8,
                b' ',
                b'\r',
                b'\n',
            ];
            out.extend_from_slice(b"HTTP/1.1");
            out.extend_from_slice(&digits);
        }
    }
}

/// Appends a plain-text answer whose body is its reason phrase.
pub(crate) fn write_status(out: &mut Vec<u8>, wire: Wire, date: &DateLine, status: u16) {
    write_response(out, wire, date, Answer::plain(status));
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &DateLine = &DateLine::new(b"Sun, 06 Nov 1994 08:49:37 GMT");

    fn written(wire: Wire, answer: Answer<'_>) -> String {
        let mut out = Vec::new();
        write_response(&mut out, wire, DATE, answer);
        String::from_utf8(out).unwrap()
    }

    const KEEP: Wire = Wire::KEEP;

    /// The one byte of flags reads back as the three `bool`s it was made of, and each setter
    /// changes its own flag alone (round 22: the flags replaced three `bool` fields).
    #[test]
    fn wire_flags_read_back_as_made_and_each_setter_changes_its_own() {
        for bits in 0..8u8 {
            let (http10, close, head) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
            let wire = Wire::new(http10, close, head);
            assert_eq!(
                (wire.http10(), wire.close(), wire.head()),
                (http10, close, head)
            );
            for to in [false, true] {
                let closed = wire.with_close(to);
                assert_eq!(
                    (closed.http10(), closed.close(), closed.head()),
                    (http10, to, head)
                );
                let headed = wire.with_head(to);
                assert_eq!(
                    (headed.http10(), headed.close(), headed.head()),
                    (http10, close, to)
                );
            }
        }
        assert_eq!(Wire::CLOSE, Wire::new(false, true, false));
        assert_eq!(KEEP, Wire::new(false, false, false));
    }

    /// The content type a handler sets is the one written, `text/plain` set by name included
    /// (kept as the default, so its answer takes the common way and reads the same).
    #[test]
    fn a_handler_s_content_type_is_written_as_set() {
        let mut scratch = Vec::new();
        let mut default = Response::new(&mut scratch);
        default.write(b"hi");
        let expected = written(KEEP, default.answer());
        assert!(expected.contains("\r\ncontent-type: text/plain\r\n"));
        for (set, shown) in [
            ("text/plain", "text/plain"),
            ("text/html", "text/html"),
            ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
            ("application/octet-stream", "application/octet-stream"),
        ] {
            for status in [200, 404] {
                let mut scratch = Vec::new();
                let mut response = Response::new(&mut scratch);
                response.set_status(status);
                response.set_content_type(set);
                response.write(b"hi");
                let text = written(KEEP, response.answer());
                assert!(
                    text.contains(&format!("\r\ncontent-type: {shown}\r\n")),
                    "{text}"
                );
                assert_eq!(text.matches("content-type").count(), 1, "{text}");
                if status == 200 && set == "text/plain" {
                    assert_eq!(text, expected);
                }
            }
        }
    }

    #[test]
    fn writes_the_head_and_body() {
        let answer = Answer::plain(404);
        assert_eq!(
            written(KEEP, answer),
            "HTTP/1.1 404 Not Found\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             content-type: text/plain\r\ncontent-length: 9\r\n\r\nNot Found"
        );
        let head = KEEP.with_head(true);
        assert!(written(head, answer).ends_with("content-length: 9\r\n\r\n"));
        let http10 = Wire::new(true, false, false);
        // HTTP/1.1 to an HTTP/1.0 request too (RFC 9110 §6.2), its keep-alive said.
        assert!(written(http10, answer).starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(written(http10, answer).contains("\r\nconnection: keep-alive\r\n\r\n"));
        let close = KEEP.with_close(true);
        assert!(written(close, answer).contains("\r\nconnection: close\r\n\r\n"));
    }

    #[test]
    fn the_length_is_written_in_decimal_whatever_its_digits() {
        for len in [0, 1, 9, 10, 42, 99, 100, 1_000, 65_536] {
            let body = vec![b'x'; len];
            for (status, content_type) in [(200, None), (404, Some("text/html"))] {
                let answer = Answer {
                    body: &body,
                    content_type,
                    ..Answer::plain(status)
                };
                let text = written(KEEP, answer);
                let field = format!("\r\ncontent-length: {len}\r\n\r\n");
                assert!(text.contains(&field), "{len}");
                assert!(text.ends_with(&format!("{field}{}", "x".repeat(len))));
            }
        }
    }

    /// Every byte of a body reaches the wire in its place, whichever copy writes it (the short
    /// bodies of kept-alive answers go through fixed-size copies that overlap).
    #[test]
    fn bodies_of_every_short_length_are_written_whole() {
        let bytes: Vec<u8> = (b'a'..=b'z').chain(b'A'..=b'Z').collect();
        for len in 0..=40 {
            let body = &bytes[..len];
            for wire in [KEEP, KEEP.with_close(true)] {
                for status in [200, 404] {
                    let answer = Answer {
                        body,
                        ..Answer::plain(status)
                    };
                    let text = written(wire, answer);
                    let end = if wire.close() {
                        "connection: close\r\n"
                    } else {
                        ""
                    };
                    let tail = format!(
                        "\r\ncontent-length: {len}\r\n{end}\r\n{}",
                        String::from_utf8_lossy(body)
                    );
                    assert!(text.ends_with(&tail), "{len} {text:?}");
                }
            }
        }
    }

    #[test]
    fn allow_and_bodyless_statuses() {
        let allow = Answer {
            allow: Some("GET, HEAD"),
            ..Answer::plain(405)
        };
        assert!(written(KEEP, allow).contains("\r\nallow: GET, HEAD\r\n"));
        let no_content = Answer {
            body: b"dropped",
            ..Answer::plain(204)
        };
        assert_eq!(
            written(KEEP, no_content),
            "HTTP/1.1 204 No Content\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
        );
        let unnamed = Answer::plain(299);
        assert!(written(KEEP, unnamed).starts_with("HTTP/1.1 299 \r\n"));
        assert_eq!(reason(503), "Service Unavailable");
    }
}
