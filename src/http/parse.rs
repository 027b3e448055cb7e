//! Request parsing with httparse: the head, then a `Content-Length` or chunked body.
//!
//! Nothing here allocates. Parsed parts are kept as byte ranges into the connection's input;
//! chunked bodies are decoded incrementally in src/http/chunked.rs.

use std::mem::MaybeUninit;
use std::ops::Range;

use super::chunked::ChunkedError;
use super::limits::Limits;
use super::response::Wire;
use super::scan::{scan, Name, RequestLine, TakeField};
use super::uri;
use crate::codings::{codings, Codings};

/// Headers beyond this count get `431`.
pub(crate) const MAX_HEADERS: usize = 64;

/// Room for the header fields of one head, filled from the start as it is parsed (see
/// [`Head::fields`]). One per loop, not per connection: a request is dispatched in the call
/// that parsed it, and one that waits for its body keeps a copy of its fields.
pub(crate) type FieldSlots = [HeaderSpan; MAX_HEADERS];

/// [`FieldSlots`] with nothing in them.
pub(crate) const NO_FIELDS: FieldSlots = [HeaderSpan::EMPTY; MAX_HEADERS];

/// Why the input cannot become a request; each maps to one status and closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Malformed request line, headers, framing or chunk; a missing, repeated or invalid
    /// `Host`; a request target in no form the method allows: `400`.
    BadRequest,
    /// The method does not end within the head limit: `501`.
    MethodTooLong,
    /// A transfer coding the server does not decode before the final `chunked`
    /// (`gzip, chunked`): `501` (RFC 9112 §6.1).
    UnknownCoding,
    /// An HTTP major version other than 1 (`HTTP/2.0` in an HTTP/1 request line): `505`.
    VersionNotSupported,
    /// The method ends within the head limit, the target does not: `414`.
    TargetTooLong,
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
            Reject::MethodTooLong | Reject::UnknownCoding => 501,
            Reject::VersionNotSupported => 505,
            Reject::TargetTooLong => 414,
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

/// One header field line, as spans into the head it was parsed from (small: every field is
/// written into the loop's [`FieldSlots`] as it is parsed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderSpan {
    pub(crate) name: Span,
    pub(crate) value: Span,
}

impl HeaderSpan {
    /// No field: what empty slots hold.
    pub(crate) const EMPTY: HeaderSpan = HeaderSpan {
        name: Span { start: 0, end: 0 },
        value: Span { start: 0, end: 0 },
    };

    /// The field whose name and value are at `name` and `value` in a head (see [`Span::of`]).
    #[inline]
    pub(crate) fn new(name: Range<usize>, value: Range<usize>) -> Self {
        HeaderSpan {
            name: Span::of(name),
            value: Span::of(value),
        }
    }
}

/// Where a part of the head is: a byte range into the input the head was parsed from. Kept as
/// two `u32`s (heads are parsed within the first 4 GiB at most) so a `Head` stays small: it is
/// moved a few times per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    pub(crate) fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// Where it starts.
    #[inline]
    pub(crate) fn start(self) -> usize {
        self.start as usize
    }

    /// How many bytes it spans.
    #[inline]
    pub(crate) fn len(self) -> usize {
        self.end.wrapping_sub(self.start) as usize
    }

    /// `range`, which lies within a head: parsed within [`MAX_PARSED`] bytes, so the casts
    /// are exact.
    #[inline]
    pub(crate) fn of(range: Range<usize>) -> Span {
        Span {
            start: range.start as u32,
            end: range.end as u32,
        }
    }
}

/// A [`Span`] that may be absent, as one word: the span's start in the low half, its end in
/// the high half, 0 (the default) for none (what it holds never starts at the head's first byte: a `Host`
/// value, or the authority of a target, come after the method). One word so that it is written
/// by one store and read back by one load: as an `Option<Span>` the scan stored it as two
/// 4-byte halves and the `Head` took it by one 8-byte load, and a load that spans two stores
/// waits for them to reach the cache (a store-forwarding stall: 28 % of `parse_head`'s
/// samples on the floor bench, `perf annotate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpanWord(u64);

impl SpanWord {
    /// `span`, which does not start at 0.
    #[inline]
    pub(crate) fn some(span: Span) -> SpanWord {
        debug_assert!(span.start > 0, "a span after the method");
        SpanWord(u64::from(span.start) | u64::from(span.end) << 32)
    }

    /// The span, if there is one.
    #[inline]
    pub(crate) fn get(self) -> Option<Span> {
        (self.0 != 0).then_some(Span {
            start: self.0 as u32,
            end: (self.0 >> 32) as u32,
        })
    }

    #[inline]
    pub(crate) fn is_some(self) -> bool {
        self.0 != 0
    }
}

/// The longest head parsed: offsets into it fit a [`Span`].
const MAX_PARSED: usize = u32::MAX as usize;

/// A parsed request head, as ranges into the input it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) method: Span,
    /// The request target as sent.
    pub(crate) target: Span,
    /// The path and query the router sees: the whole origin-form target, or the part of an
    /// absolute-form one after its authority (empty means the path `/`).
    pub(crate) origin: Span,
    /// The authority of an absolute-form target, else the `Host` value (absent in HTTP/1.0).
    pub(crate) host: SpanWord,
    pub(crate) http10: bool,
    /// The method is `HEAD`: the answer carries no body.
    pub(crate) is_head: bool,
    pub(crate) len: usize,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue` (the last `Expect` field decides); whether the client waits for
    /// `100 Continue` is [`Head::awaits_continue`].
    pub(crate) expect_continue: bool,
    /// How many header fields the head has: the first slots of the [`FieldSlots`] it was
    /// parsed with.
    pub(crate) fields: u8,
}

impl Head {
    /// The client waits for `100 Continue` before sending its body: `Expect: 100-continue` in
    /// an HTTP/1.1 request (RFC 9110 §10.1.1: a server MUST ignore it in HTTP/1.0) whose
    /// framing says a body may come (chunked, or a length above zero: with none, or
    /// `Content-Length: 0`, there is nothing to wait for, §10.1.1, and a request no handler
    /// takes keeps its connection: it was closed, and the request pipelined behind it lost).
    /// The one rule the body's read, a health probe's answer and a request no route takes go
    /// by. (Not folded into `expect_continue` at the parse: that costs the common head 4 to 8
    /// instructions, callgrind, by the code LLVM makes of the whole function.)
    pub(crate) fn awaits_continue(&self) -> bool {
        self.expect_continue && !self.http10 && self.framing != Framing::Length(0)
    }

    /// How this request's answer is framed.
    pub(crate) fn wire(&self, close: bool) -> Wire {
        Wire::new(self.http10, close, self.is_head)
    }
}

fn range_of(buf: &[u8], part: &[u8]) -> Range<usize> {
    // Pointer arithmetic on two addresses, no unsafe: `part` is a subslice of `buf`.
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether the field name `name` (a token, as httparse checked) is `lower`, a lowercase name of
/// letters and `-`, in any case. Setting bit 5 lowercases a letter and leaves `-` alone; the
/// only other bytes it maps onto a letter or `-` are controls and `@[\]^`, which no token has.
fn name_is(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.iter().zip(lower).all(|(&n, &l)| n | 0x20 == l)
}

/// [`name_is`]`(name, b"host")` for a 4-byte name, in one compare: every request has one.
#[inline]
fn is_host(name: &[u8]) -> bool {
    let Ok(word) = <[u8; 4]>::try_from(name) else {
        return false;
    };
    u32::from_le_bytes(word) | 0x2020_2020 == u32::from_le_bytes(*b"host")
}

/// What the header fields say about framing and the connection, gathered in one pass. Small
/// and flat (flags in one byte), as it lives through the scan's loop on every request.
#[derive(Clone, Copy, Default)]
struct Fields {
    /// The `Content-Length`, if [`Fields::LENGTH`] (and not [`Fields::HUGE`]).
    length: u64,
    /// The `Host` value's span (see [`SpanWord`]).
    host: SpanWord,
    flags: u8,
}

impl TakeField for Fields {
    /// Takes in the field `span` of the head at the start of `buf`: a field that makes the
    /// request invalid is remembered, and refused once the head is whole. A `Host` the scan
    /// named is taken without looking at its name again.
    #[inline(always)]
    fn take(&mut self, buf: &[u8], span: &HeaderSpan, name: Name) {
        let taken = match name {
            Name::PlainHost => self.add_host(true, span.value),
            Name::Host => {
                let valid = uri::valid_authority(&buf[span.value.range()]);
                self.add_host(valid, span.value)
            }
            Name::Unknown if Fields::may_matter(span.name.len()) => {
                let (name, value) = (&buf[span.name.range()], &buf[span.value.range()]);
                // Through a copy: the parse's own `Fields` is then never behind a reference
                // that leaves it (`add_other` is out of line), and stays in registers for
                // the common head, which has no such field (in memory, the head's checks
                // loaded it back, and spilled what they loaded).
                let mut copy = *self;
                let taken = copy.add(name, value, span.value);
                *self = copy;
                taken
            }
            Name::Unknown => Ok(()),
        };
        if taken.is_err() {
            self.flags |= Fields::INVALID;
        }
    }
}

impl Fields {
    /// A `Content-Length` was read.
    const LENGTH: u8 = 1;
    /// ... and its numeral is past `u64`.
    const HUGE: u8 = 2;
    const CHUNKED: u8 = 4;
    /// `Connection: close`.
    const CLOSE: u8 = 8;
    /// `Connection: keep-alive`.
    const KEEP_ALIVE: u8 = 16;
    /// `Expect: 100-continue` (the last `Expect` field decides).
    const CONTINUE: u8 = 32;
    /// A field made the request invalid (`400`).
    const INVALID: u8 = 64;
    /// `Transfer-Encoding` names a coding before `chunked` that is not decoded here (`501`).
    const UNKNOWN_CODING: u8 = 128;

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Sets `flag` if `on` (a flag once set stays).
    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        }
    }

    /// The `Content-Length`: `Some(None)` for a numeral past `u64`.
    fn length(&self) -> Option<Option<u64>> {
        match (self.has(Fields::LENGTH), self.has(Fields::HUGE)) {
            (false, _) => None,
            (true, true) => Some(None),
            (true, false) => Some(Some(self.length)),
        }
    }

    /// Takes in one header field (`value` at `at` in the head); `Err` for a field that makes
    /// the request invalid. `value` comes without leading or trailing whitespace (httparse and
    /// the scan both trim SP and HTAB, and no other whitespace is valid in a field value).
    #[inline(always)]
    fn add(&mut self, name: &[u8], value: &[u8], at: Span) -> Result<(), Reject> {
        // Dispatch on the length first: most fields are none of these, and cost one compare.
        let is = |known: &str| name_is(name, known.as_bytes());
        match name.len() {
            4 if is_host(name) => self.add_host(uri::valid_authority(value), at),
            _ => self.add_other(name.len(), is, value),
        }
    }

    /// Takes in a `Host` field whose value (at `at`) is `valid` or not: exactly one `Host`
    /// with a valid value (RFC 9112 §3.2).
    #[inline(always)]
    fn add_host(&mut self, valid: bool, at: Span) -> Result<(), Reject> {
        if self.host.is_some() || !valid {
            return Err(Reject::BadRequest);
        }
        self.host = SpanWord::some(at);
        Ok(())
    }

    /// Whether a field whose name is `len` bytes long may be one [`add`](Fields::add) reads
    /// (`Host` 4, `Expect` 6, `Connection` 10, `Content-Length` 14, `Transfer-Encoding` 17):
    /// most fields are none, told by their name's length before any slice is made.
    #[inline(always)]
    const fn may_matter(len: usize) -> bool {
        matches!(len, 4 | 6 | 10 | 14 | 17)
    }

    /// [`add`](Fields::add) for every field but `Host`.
    #[inline]
    fn add_other(
        &mut self,
        len: usize,
        is: impl Fn(&str) -> bool,
        value: &[u8],
    ) -> Result<(), Reject> {
        match len {
            6 if is("expect") => {
                self.flags &= !Fields::CONTINUE;
                self.set(
                    Fields::CONTINUE,
                    value.eq_ignore_ascii_case(b"100-continue"),
                );
            }
            10 if is("connection") => {
                self.set(Fields::CLOSE, has_token(value, "close"));
                self.set(Fields::KEEP_ALIVE, has_token(value, "keep-alive"));
            }
            14 if is("content-length") => {
                let n = parse_length(value)?;
                // Two different lengths are a request-smuggling attempt.
                if self.length().is_some_and(|l| l != n) {
                    return Err(Reject::BadRequest);
                }
                self.flags |= Fields::LENGTH;
                match n {
                    Some(n) => self.length = n,
                    None => self.flags |= Fields::HUGE,
                }
            }
            17 if is("transfer-encoding") => {
                // One field, whose codings end in `chunked`; a second is refused rather than
                // joined (an intermediary may read two fields differently).
                if self.has(Fields::CHUNKED) {
                    return Err(Reject::BadRequest);
                }
                match codings(value) {
                    Codings::Chunked => {}
                    Codings::UnknownBeforeChunked => self.flags |= Fields::UNKNOWN_CODING,
                    Codings::Invalid => return Err(Reject::BadRequest),
                }
                self.flags |= Fields::CHUNKED;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Why a head that does not fit in `max_head` is refused: a request line that never ended is
/// a method (`501`) or target (`414`) too long, anything else too many header bytes (`431`).
fn too_large(request: &httparse::Request<'_, '_>) -> Reject {
    match (request.method, request.path) {
        (None, _) => Reject::MethodTooLong,
        (Some(_), None) => Reject::TargetTooLong,
        _ => Reject::HeadTooLarge,
    }
}

/// Whether the request starting `buf` is a `HEAD` (its answer has no body, even a rejection).
///
/// Leading empty lines are skipped exactly as httparse skips them (`\r\n` or `\n`; a `\r`
/// followed by anything else ends them, and is the error), so the answer does not depend on how
/// many bytes had arrived when the error was found (found by the `http_session` fuzz target).
pub(crate) fn starts_head(buf: &[u8]) -> bool {
    let mut rest = buf;
    while let [b'\r', b'\n', tail @ ..] | [b'\n', tail @ ..] = rest {
        rest = tail;
    }
    rest.starts_with(b"HEAD ")
}

/// Parses a request head at the start of `buf`: `Ok(None)` while it is incomplete.
///
/// The head is scanned once: by [`scan`] when it has the common shape, else by httparse. Its
/// header fields are kept in the first [`Head::fields`] of `slots` as ranges for the handler,
/// and read once here for framing, `Host` and `Connection`. (The server parses by
/// [`parse_head_counted`], which counts the bytes read.)
#[cfg(test)]
pub(crate) fn parse_head(
    buf: &[u8],
    limits: &Limits,
    slots: &mut FieldSlots,
) -> Result<Option<Head>, Reject> {
    parse_head_counted(buf, limits, slots, &mut 0)
}

/// Parses a request head at the start of `buf` (`Ok(None)` while it is incomplete; see
/// `parse_head`, the tests' entry), adding to `parsed` the bytes of `buf` the parse reads (at
/// most the head limit: the server's `head_bytes_parsed`). Counted here, where the parse takes
/// its window: counted by the caller, the common request paid the limit's load and the
/// minimum again (callgrind, depth 16: 2 instructions per request).
#[inline(never)]
pub(crate) fn parse_head_counted(
    buf: &[u8],
    limits: &Limits,
    slots: &mut FieldSlots,
    parsed: &mut u64,
) -> Result<Option<Head>, Reject> {
    // Only the first `max_head` bytes can hold an acceptable head. Parsing no further makes the
    // answer independent of how the bytes arrived: an error past the limit is a `431` whether
    // the client sent it in one read or in many.
    let limited = buf.len().min(limits.max_head());
    *parsed += u64::try_from(limited).unwrap_or(u64::MAX);
    let window = &buf[..limited.min(MAX_PARSED)];
    let mut found = Fields::default();
    let line = match scan(window, slots, &mut found) {
        Some(line) => {
            #[cfg(debug_assertions)]
            same_as_httparse(window, &line, &slots[..line.fields]);
            line
        }
        None => match parse_with_httparse(window, buf.len() > window.len(), slots)? {
            Some((line, fields)) => {
                found = fields;
                line
            }
            None => return Ok(None),
        },
    };
    finish_head(window, limits, line, found).map(Some)
}

/// Parses the head at the start of `window` (the first bytes of the input, `more` of which
/// lies past it) with httparse, its fields into `slots` and read into [`Fields`]: for every
/// head [`scan`] declines. Out of line, so its 64 field slots and httparse's code stay out of
/// the common path.
#[inline(never)]
fn parse_with_httparse(
    window: &[u8],
    more: bool,
    slots: &mut FieldSlots,
) -> Result<Option<(RequestLine, Fields)>, Reject> {
    let mut fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(window, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if more => return Err(too_large(&request)),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::HeadTooLarge),
        Err(httparse::Error::Version) => return parse_other_version(window, more, slots),
        Err(_) => return Err(Reject::BadRequest),
    };
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(Reject::BadRequest);
    };
    // httparse fills at most `MAX_HEADERS` fields: as many as there are slots.
    for (slot, header) in slots.iter_mut().zip(request.headers.iter()) {
        *slot = HeaderSpan::new(
            range_of(window, header.name.as_bytes()),
            range_of(window, header.value),
        );
    }
    let count = request.headers.len().min(MAX_HEADERS);
    let mut found = Fields::default();
    for field in &slots[..count] {
        found.take(window, field, Name::Unknown);
    }
    let line = RequestLine {
        fields: count,
        method: range_of(window, method.as_bytes()),
        target: range_of(window, target.as_bytes()),
        http10: version == 0,
        len,
    };
    Ok(Some((line, found)))
}

/// A head whose HTTP version httparse refused (it knows `HTTP/1.0` and `HTTP/1.1` only):
/// `HTTP/1.2` and any later minor version is parsed as HTTP/1.1 (RFC 9110 §2.5: a recipient
/// SHOULD process it as the highest minor version it conforms to), another major version is
/// `505` (§15.6.6), a version outside `HTTP/DIGIT.DIGIT` `400` (RFC 9112 §2.3: a malformed
/// request line). Decided once the version and its line end are whole, or as soon as a byte
/// breaks the grammar, so the answer does not depend on how the head arrived.
#[cold]
fn parse_other_version(
    window: &[u8],
    more: bool,
    slots: &mut FieldSlots,
) -> Result<Option<(RequestLine, Fields)>, Reject> {
    match other_version(window) {
        OtherVersion::LaterMinor(at) => {
            // Parsed as HTTP/1.1 from a copy whose minor digit says so: the parts keep their
            // offsets, which are all a head is made of.
            let mut as_http11 = window.to_vec();
            as_http11[at] = b'1';
            parse_with_httparse(&as_http11, more, slots)
        }
        OtherVersion::OtherMajor => Err(Reject::VersionNotSupported),
        OtherVersion::Incomplete if more => Err(Reject::HeadTooLarge),
        OtherVersion::Incomplete => Ok(None),
        OtherVersion::Invalid => Err(Reject::BadRequest),
    }
}

/// What the version of a request line httparse refused says.
#[derive(Debug, PartialEq, Eq)]
enum OtherVersion {
    /// `HTTP/1.x`, x a digit past 1; the offset of x.
    LaterMinor(usize),
    /// `HTTP/D.D` with a major digit other than 1, then the line's end: a major version not
    /// served.
    OtherMajor,
    /// Too few bytes yet to tell.
    Incomplete,
    /// Not `HTTP/DIGIT.DIGIT` (RFC 9112 §2.3), or not followed by the line's end.
    Invalid,
}

/// The version of the request line at the start of `window` (after the empty lines httparse
/// skips), which httparse refused: after its method and target, each ended by one SP as
/// httparse requires before it reads a version. A major version other than 1 is known only
/// once the version and its line end (`CRLF` or `LF`, as httparse takes them) are whole:
/// `HTTP/2` may still become `HTTP/2.0` (`505`) or `HTTP/22` (`400`). Each byte that breaks
/// the grammar is `Invalid` whatever follows it, so the answer is the same however many bytes
/// of the line have arrived.
fn other_version(window: &[u8]) -> OtherVersion {
    let mut line = window;
    while let [b'\r', b'\n', tail @ ..] | [b'\n', tail @ ..] = line {
        line = tail;
    }
    let start = window.len() - line.len();
    let mut spaces = line
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b' ')
        .map(|(at, _)| at);
    let (Some(_), Some(second)) = (spaces.next(), spaces.next()) else {
        return OtherVersion::Invalid;
    };
    let at = start + second + 1;
    let version = &window[at..];
    if !version.iter().zip(b"HTTP/").all(|(b, want)| b == want) {
        return OtherVersion::Invalid;
    }
    match version.get(5) {
        None => OtherVersion::Incomplete,
        Some(b'1') => match version.get(6..8) {
            Some([b'.', minor]) if minor.is_ascii_digit() => OtherVersion::LaterMinor(at + 7),
            None if version.get(6).is_none_or(|&b| b == b'.') => OtherVersion::Incomplete,
            _ => OtherVersion::Invalid,
        },
        Some(_) => other_major(&version[5..]),
    }
}

/// [`other_version`] past `HTTP/`, its major digit not `1`: `D.D` and the line's end.
fn other_major(rest: &[u8]) -> OtherVersion {
    let wanted = |at: usize, byte: u8| match at {
        0 | 2 => byte.is_ascii_digit(),
        1 => byte == b'.',
        // The line's end: `LF`, or `CR` then `LF` (`at` 4 is read only after a `CR`).
        3 => byte == b'\r' || byte == b'\n',
        _ => byte == b'\n',
    };
    let end = match rest.get(3) {
        Some(b'\n') => 4,
        _ => 5,
    };
    for (at, &byte) in rest.iter().take(end).enumerate() {
        if !wanted(at, byte) {
            return OtherVersion::Invalid;
        }
    }
    if rest.len() < end {
        OtherVersion::Incomplete
    } else {
        OtherVersion::OtherMajor
    }
}

/// Checks that httparse parses `window` into the same parts as [`scan`] did (`line`,
/// `headers`). Allocates nothing: it runs inside the allocation-counting tests.
#[cfg(any(debug_assertions, test))]
fn same_as_httparse(window: &[u8], line: &RequestLine, headers: &[HeaderSpan]) {
    let mut fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let parsed = request.parse_with_uninit_headers(window, &mut fields);
    assert_eq!(
        parsed,
        Ok(httparse::Status::Complete(line.len)),
        "scan: length"
    );
    assert_eq!(
        request.method.map(str::as_bytes),
        Some(&window[line.method.clone()])
    );
    assert_eq!(
        request.path.map(str::as_bytes),
        Some(&window[line.target.clone()])
    );
    assert_eq!(request.version, Some(u8::from(!line.http10)));
    assert_eq!(request.headers.len(), headers.len(), "scan: field count");
    for (theirs, ours) in request.headers.iter().zip(headers) {
        assert_eq!(range_of(window, theirs.name.as_bytes()), ours.name.range());
        assert_eq!(range_of(window, theirs.value), ours.value.range());
    }
}

/// The [`Head`] of the request whose request line and fields (`headers`) were parsed from the
/// start of `buf`: `Host`, target form, framing and connection, checked.
#[inline]
fn finish_head(
    buf: &[u8],
    limits: &Limits,
    line: RequestLine,
    found: Fields,
) -> Result<Head, Reject> {
    let RequestLine {
        method,
        target: target_range,
        http10,
        len,
        fields,
    } = line;
    // At most `MAX_HEADERS`, the slots there are.
    let fields = fields as u8;
    // The method's bytes are looked at only when its length may make it `CONNECT` or `HEAD`
    // (not sliced for a `GET`), the target's first byte alone.
    // (A method's range never runs backwards: its length needs no saturation.)
    let (is_head, is_connect) = match method.end.wrapping_sub(method.start) {
        4 => (buf.get(method.clone()) == Some(b"HEAD"), false),
        7 => (false, buf.get(method.clone()) == Some(b"CONNECT")),
        _ => (false, false),
    };
    let origin_form = target_range.end > target_range.start
        && buf.get(target_range.start) == Some(&b'/')
        && !is_connect;
    // The common head: HTTP/1.1, an origin-form target (nothing more to look at), a valid
    // `Host` (found once), and no field about framing, the connection or `Expect`.
    if let (0, false, true, true) = (found.flags, http10, origin_form, found.host.is_some()) {
        return Ok(Head {
            method: Span::of(method),
            target: Span::of(target_range.clone()),
            origin: Span::of(target_range),
            host: found.host,
            http10,
            is_head,
            len,
            framing: Framing::Length(0),
            keep_alive: true,
            expect_continue: false,
            fields,
        });
    }
    // HTTP/1.1 requires exactly one Host (RFC 9112 §3.2); HTTP/1.0 may omit it.
    if found.has(Fields::INVALID) || (!found.host.is_some() && !http10) {
        return Err(Reject::BadRequest);
    }
    let (method_range, method) = (method.clone(), &buf[method]);
    let target = &buf[target_range.clone()];
    let target_form = if origin_form {
        Some(uri::Target::Origin {
            origin: 0..target.len(),
            authority: None,
        })
    } else {
        uri::parse_target(method, target)
    };
    let (origin, host) = match target_form {
        Some(uri::Target::Origin { origin, authority }) => {
            let at = |r: Range<usize>| target_range.start + r.start..target_range.start + r.end;
            // The authority of an absolute-form target replaces Host (RFC 9112 §3.2.2).
            let authority = authority.map(|a| SpanWord::some(Span::of(at(a))));
            (at(origin), authority.unwrap_or(found.host))
        }
        Some(uri::Target::Asterisk | uri::Target::Authority) => (target_range.clone(), found.host),
        None => return Err(Reject::BadRequest),
    };
    let framing = match (found.has(Fields::CHUNKED), found.length()) {
        // Both framings at once are the other smuggling attempt.
        (true, Some(_)) => return Err(Reject::BadRequest),
        (true, None) if http10 => return Err(Reject::BadRequest),
        // Framed, but coded in a way this server cannot decode (RFC 9112 §6.1: SHOULD 501).
        (true, None) if found.has(Fields::UNKNOWN_CODING) => return Err(Reject::UnknownCoding),
        (true, None) => Framing::Chunked,
        (false, n) => {
            // At most `max_body`, which is a `usize`.
            let max = u64::try_from(limits.max_body()).unwrap_or(u64::MAX);
            match n.unwrap_or(Some(0)) {
                Some(n) if n <= max => {
                    Framing::Length(usize::try_from(n).map_err(|_| Reject::BodyTooLarge)?)
                }
                _ => return Err(Reject::BodyTooLarge),
            }
        }
    };
    Ok(Head {
        method: Span::of(method_range),
        target: Span::of(target_range),
        origin: Span::of(origin),
        host,
        http10,
        is_head,
        len,
        framing,
        keep_alive: !found.has(Fields::CLOSE) && (!http10 || found.has(Fields::KEEP_ALIVE)),
        expect_continue: found.has(Fields::CONTINUE),
        fields,
    })
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

    #[test]
    fn a_head_request_is_recognized_past_the_empty_lines_httparse_skips_only() {
        assert!(starts_head(b"HEAD / HTTP/1.1\r\n"));
        assert!(starts_head(b"\r\n\nHEAD / HTTP/1.1\r\n"));
        // A lone `\r` is not an empty line: the answer to "\n\rHEAD ..." has a body, whether
        // the error is found at "\n\rH" or with the whole head here.
        assert!(!starts_head(b"\n\rHEAD / HTTP/1.1\r\n"));
        assert!(!starts_head(b"\n\rH"));
        assert!(!starts_head(b"GET / HTTP/1.1\r\n"));
    }

    fn head(input: &[u8]) -> Result<Option<Head>, Reject> {
        parse_head(
            input,
            &Limits::default().with_max_head(256).with_max_body(16),
            &mut NO_FIELDS.clone(),
        )
    }

    #[test]
    fn a_span_word_gives_back_its_span_and_its_default_is_none() {
        assert_eq!(SpanWord::default().get(), None);
        assert!(!SpanWord::default().is_some());
        for (start, end) in [(1, 1), (1, 2), (6, 11), (0xffff, 0x1_0000), (1, u32::MAX)] {
            let span = Span { start, end };
            let word = SpanWord::some(span);
            assert!(word.is_some());
            assert_eq!(word.get(), Some(span), "{start}..{end}");
        }
    }

    #[test]
    fn the_host_is_the_field_or_the_targets_authority_and_none_without_either() {
        let host = |input: &[u8]| {
            let h = head(input).unwrap().unwrap();
            h.host.get().map(|span| input[span.range()].to_vec())
        };
        assert_eq!(
            host(b"GET / HTTP/1.1\r\nHost: a.b\r\n\r\n"),
            Some(b"a.b".to_vec())
        );
        assert_eq!(host(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"), Some(b"".to_vec()));
        assert_eq!(
            host(b"GET http://c.d:8/x HTTP/1.1\r\nHost: a.b\r\n\r\n"),
            Some(b"c.d:8".to_vec())
        );
        assert_eq!(host(b"GET / HTTP/1.0\r\n\r\n"), None);
        assert_eq!(host(b"GET / HTTP/1.0\r\nX: y\r\n\r\n"), None);
    }

    #[test]
    fn keep_alive_defaults_per_version() {
        let h = head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert!(h.keep_alive && !h.http10);
        let h = head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive && h.http10);
        let h = head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = head(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
    }

    /// RFC 9112 §6.1: `chunked` last frames the body; a coding before it the server does not
    /// decode is `501`; empty list elements are ignored; anything else is `400`.
    #[test]
    fn every_field_name_the_framing_reads_passes_the_length_filter() {
        for name in [
            "Host",
            "Expect",
            "Connection",
            "Content-Length",
            "Transfer-Encoding",
        ] {
            assert!(Fields::may_matter(name.len()), "{name} would be skipped");
        }
    }

    #[test]
    fn transfer_codings_before_chunked_are_501_and_empty_elements_ignored() {
        let te = |value: &str| {
            let request =
                format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {value}\r\n\r\n");
            head(request.as_bytes()).map(|h| h.map(|h| h.framing))
        };
        assert_eq!(te("chunked,"), Ok(Some(Framing::Chunked)));
        assert_eq!(te("gzip, chunked"), Err(Reject::UnknownCoding));
        assert_eq!(te("chunked, chunked"), Err(Reject::BadRequest));
        // Framing conflicts stay `400`: with a length, in HTTP/1.0, or in two fields.
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Err(Reject::BadRequest)
        );
        assert_eq!(
            head(b"POST / HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Err(Reject::BadRequest)
        );
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Reject::BadRequest)
        );
    }

    /// RFC 9110 §2.5, §6.2: a later HTTP/1 minor version is served as HTTP/1.1; another major
    /// version is `505`; a version outside the grammar `400`; and however the line arrives.
    #[test]
    fn later_minor_versions_are_http11_and_other_majors_505() {
        let h = head(b"GET /a HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.http10 && !h.keep_alive);
        assert_eq!(h.origin.range(), 4..6);
        assert!(
            head(b"\r\nPOST / HTTP/1.9\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
                .unwrap()
                .is_some_and(|h| h.framing == Framing::Length(2))
        );
        assert_eq!(head(b"GET / HTTP/1.2\r\nHost: x\r\n"), Ok(None));
        assert_eq!(head(b"GET / HTTP/1.2\r\n\r\n"), Err(Reject::BadRequest));
        for major in [
            "GET / HTTP/2.0\r\n",
            "GET / HTTP/3.0\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/0.9\n",
            "\r\nGET / HTTP/9.9\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(
                head(major.as_bytes()),
                Err(Reject::VersionNotSupported),
                "{major:?}"
            );
        }
        for partial in [
            "GET / HTTP/",
            "GET / HTTP/1.",
            "GET / HTTP/2",
            "GET / HTTP/2.",
            "GET / HTTP/2.0",
            "GET / HTTP/2.0\r",
        ] {
            assert_eq!(head(partial.as_bytes()), Ok(None), "{partial:?}");
        }
        for bad in [
            "GET / HTTPS/2.0\r\n",
            "GET / HTTP/12.0\r\n",
            "GET / HTTP/12",
            "GET / HTTP/1.x\r\n",
            "GET / http/1.1\r\n",
            "GET / HTTP/1.10\r\n\r\n",
            // RFC 9112 §2.3: `HTTP/` DIGIT `.` DIGIT, whatever the major digit.
            "GET / HTTP/2\r\n",
            "GET / HTTP/22",
            "GET / HTTP/02.0\r\n",
            "GET / HTTP/00.9\r\n",
            "GET / HTTP/01.1\r\n",
            "GET / HTTP/3.\r\n",
            "GET / HTTP/3.x",
            "GET / HTTP/2.0x\r\n",
            "GET / HTTP/2.0 \r\n",
            "GET / HTTP/2.0\rx",
            "GET / HTTP/2.0\r\r\n",
        ] {
            assert_eq!(head(bad.as_bytes()), Err(Reject::BadRequest), "{bad:?}");
        }
        assert_eq!(Reject::VersionNotSupported.status(), 505);
        assert_eq!(Reject::UnknownCoding.status(), 501);
    }

    /// The answer to a head with a version httparse refuses is the same whatever prefix of it
    /// was parsed first (a connection parses a head's first bytes at once, then again once its
    /// end may have arrived): a prefix is incomplete, or already refused as the whole is.
    #[test]
    fn a_versions_answer_does_not_depend_on_the_split() {
        for version in [
            "HTTP/2.0",
            "HTTP/3.0",
            "HTTP/0.9",
            "HTTP/2",
            "HTTP/02.0",
            "HTTP/3.",
            "HTTP/22",
            "HTTP/2.0x",
            "HTTP/1.2",
            "HTTP/1.20",
            "HTTP/10.0",
            "HTTP/2.0\r",
            "HTTP/2.0 ",
        ] {
            for end in ["\r\n", "\n"] {
                let input = format!("GET / {version}{end}Host: x\r\n\r\n");
                let whole = head(input.as_bytes()).map(|h| h.is_some());
                assert!(!matches!(whole, Ok(false)), "{input:?}");
                for cut in 1..input.len() {
                    let prefix = head(&input.as_bytes()[..cut]).map(|h| h.is_some());
                    assert!(
                        prefix == Ok(false) || prefix == whole,
                        "{input:?} cut at {cut}: {prefix:?}, whole {whole:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn rejects() {
        assert_eq!(head(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        // An error past the limit is a 431, however the bytes arrived.
        let mut late_error = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        late_error.extend_from_slice(&[b'a'; 260]);
        late_error.extend_from_slice(b"\0\r\n\r\n");
        assert_eq!(head(&late_error), Err(Reject::HeadTooLarge));
        assert_eq!(head(&late_error[..250]), Ok(None));
        assert_eq!(
            head(b"G\0T / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(Reject::BadRequest)
        );
        // A request line that never ends: its method or its target is too long.
        assert_eq!(head(&[b'a'; 300]), Err(Reject::MethodTooLong));
        let mut target = b"GET /".to_vec();
        target.extend_from_slice(&[b'a'; 300]);
        assert_eq!(head(&target), Err(Reject::TargetTooLong));
        let mut long = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        long.extend_from_slice(&[b'a'; 300]);
        assert_eq!(head(&long), Err(Reject::HeadTooLarge));
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n"),
            Err(Reject::BodyTooLarge)
        );
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(Reject::BadRequest)
        );
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Reject::BadRequest)
        );
        assert_eq!(
            head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
            Err(Reject::BadRequest)
        );
        // Any numeral is read without overflow: over `u64` is simply too large.
        for huge in ["99999999999999999999999", "18446744073709551616", "17"] {
            let request = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {huge}\r\n\r\n");
            assert_eq!(head(request.as_bytes()), Err(Reject::BodyTooLarge));
        }
        let any = Limits::default().with_max_body(usize::MAX);
        let request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n";
        assert_eq!(
            parse_head(request, &any, &mut NO_FIELDS.clone()),
            Err(Reject::BodyTooLarge)
        );
    }

    #[test]
    fn host_is_required_once_and_valid_in_http11() {
        assert_eq!(head(b"GET / HTTP/1.1\r\n\r\n"), Err(Reject::BadRequest));
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
            Err(Reject::BadRequest)
        );
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            Err(Reject::BadRequest)
        );
        assert_eq!(
            head(b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n"),
            Err(Reject::BadRequest)
        );
        assert!(head(b"GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
        assert!(head(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").unwrap().is_some());
    }

    /// A `Host` value is accepted or refused by what it is, whatever whitespace comes before
    /// it: the scan reads a plain one before skipping any, and one that begins otherwise (more
    /// whitespace, an IP literal) is checked whole as an authority.
    #[test]
    fn a_host_is_judged_by_its_value_whatever_whitespace_comes_before_it() {
        let values = [
            ("x", true),
            ("x:80", true),
            ("[::1]:80", true),
            ("", true),
            ("a b", false),
            ("x:y", false),
            ("x@y", false),
        ];
        for before in ["", " ", "  ", "\t", " \t ", "\t\t"] {
            for (value, valid) in values {
                let input = format!("GET / HTTP/1.1\r\nHost:{before}{value}\r\n\r\n");
                let what = format!("{input:?}");
                match head(input.as_bytes()) {
                    Ok(Some(h)) if valid => {
                        assert_eq!(
                            &input.as_bytes()[h.host.get().unwrap().range()],
                            value.as_bytes(),
                            "{what}"
                        )
                    }
                    Err(Reject::BadRequest) if !valid => {}
                    other => panic!("{what}: {other:?}"),
                }
            }
        }
    }

    /// The fields are read as the scan finds them, or after httparse for a head the scan
    /// declines (here: the request line ended by a bare LF): the same head either way.
    #[test]
    fn fields_are_read_alike_after_the_scan_and_after_httparse() {
        let big = Limits::default()
            .with_max_head(256)
            .with_max_body(usize::MAX);
        for fields in [
            "Host: x\r\nExpect: 100-continue\r\n",
            "Host: x\r\nExpect: 100-continue\r\nExpect: other\r\n",
            "Host: x\r\nExpect: other\r\nExpect: 100-Continue\r\n",
            "Host: x\r\nConnection: keep-alive, close\r\n",
            "Host: x\r\nContent-Length: 7\r\nContent-Length: 7\r\n",
            "Host: x\r\nContent-Length: 7\r\nContent-Length: 8\r\n",
            "Host: x\r\nContent-Length: 99999999999999999999\r\nContent-Length: 99999999999999999999\r\n",
            "Host: x\r\nContent-Length: 99999999999999999999\r\nContent-Length: 7\r\n",
            "Host: x\r\nTransfer-Encoding: chunked\r\n",
            "Host: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Host: x\r\nTransfer-Encoding: gzip\r\n",
            "Host: a:80\r\n",
            "Host: [::1]:80\r\n",
            "Host: a%41\r\n",
            "Host: a@b\r\n",
            "Host: x\r\nHost: x\r\n",
            "Host: x\r\nContent-Length: 1\r\nHost: a b\r\n",
            "X: 1\r\n",
        ] {
            let heads = [
                format!("POST / HTTP/1.1\r\n{fields}\r\n"),
                format!("POST / HTTP/1.1\n{fields}\r\n"),
            ];
            let [scanned, parsed] = heads.map(|h| parse_head(h.as_bytes(), &big, &mut NO_FIELDS.clone()));
            let scanned = scanned.map(|h| h.map(|h| (h.keep_alive, h.expect_continue, h.framing)));
            let parsed = parsed.map(|h| h.map(|h| (h.keep_alive, h.expect_continue, h.framing)));
            assert_eq!(scanned, parsed, "{fields:?}");
        }
        let expect = |fields: &str| {
            let h = format!("GET / HTTP/1.1\r\n{fields}\r\n");
            parse_head(h.as_bytes(), &big, &mut NO_FIELDS.clone())
                .unwrap()
                .unwrap()
                .expect_continue
        };
        assert!(expect("Host: x\r\nExpect: 100-continue\r\n"));
        assert!(!expect(
            "Host: x\r\nExpect: 100-continue\r\nExpect: other\r\n"
        ));
        // RFC 9110 §10.1.1: ignored in HTTP/1.0, by the scan and after httparse alike.
        for head in [
            "GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.0\nExpect: 100-continue\r\n\r\n",
        ] {
            let parsed = parse_head(head.as_bytes(), &big, &mut NO_FIELDS.clone());
            assert!(!parsed.unwrap().unwrap().awaits_continue(), "{head:?}");
        }
        // Nothing to wait for without a body (RFC 9110 §10.1.1).
        let awaits = |fields: &str| {
            let h = format!("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n{fields}\r\n");
            let parsed = parse_head(h.as_bytes(), &big, &mut NO_FIELDS.clone());
            parsed.unwrap().unwrap().awaits_continue()
        };
        assert!(!awaits(""));
        assert!(!awaits("Content-Length: 0\r\n"));
        assert!(awaits("Content-Length: 1\r\n"));
        assert!(awaits("Transfer-Encoding: chunked\r\n"));
    }

    #[test]
    fn absolute_form_is_routed_by_its_path_and_names_the_host() {
        let input = b"GET http://example.com:80/a?b HTTP/1.1\r\nHost: other\r\n\r\n";
        let h = head(input).unwrap().unwrap();
        assert_eq!(&input[h.origin.range()], b"/a?b");
        assert_eq!(&input[h.host.get().unwrap().range()], b"example.com:80");
        assert_eq!(&input[h.target.range()], b"http://example.com:80/a?b");
        assert_eq!(
            head(b"GET a/b HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(Reject::BadRequest)
        );
    }

    /// A request head built from `parts` (method, target, version, fields, line end), then
    /// bytes overwritten by `flips`: mostly the common shape, often just outside it.
    fn mutated_head(parts: &HeadParts, flips: &[(usize, u8)]) -> Vec<u8> {
        const METHODS: [&str; 5] = ["GET", "POST", "HEAD", "OPTIONS", "X-Y"];
        const TARGETS: [&str; 5] = ["/", "/a?b=c", "*", "http://h:1/p", "/%7e~!"];
        const VERSIONS: [&str; 4] = ["HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/1.1 "];
        const NAMES: [&str; 5] = ["Host", "content-length", "X-A", "Connection", "t:e"];
        const VALUES: [&str; 6] = ["x", "", " 5 ", "\tclose\t", "a b", "chunked"];
        let (method, target, version, fields, eol) = parts;
        let eol = if *eol { "\r\n" } else { "\n" };
        let mut head = format!(
            "{} {} {}\r\n",
            METHODS[*method % 5],
            TARGETS[*target % 5],
            VERSIONS[*version % 4]
        );
        for &(name, value) in fields {
            head += &format!("{}:{}{eol}", NAMES[name % 5], VALUES[value % 6]);
        }
        head += "\r\n";
        let mut head = head.into_bytes();
        for &(at, byte) in flips {
            let at = at % head.len();
            head[at] = byte;
        }
        head
    }

    type HeadParts = (usize, usize, usize, Vec<(usize, usize)>, bool);

    proptest::proptest! {
        /// Whatever the hand-written scan accepts, httparse parses into the same parts
        /// (`same_as_httparse` panics otherwise); and what it declines is parsed as before.
        #[test]
        fn the_scan_agrees_with_httparse(
            parts in (0usize..5, 0usize..5, 0usize..4,
                proptest::collection::vec((0usize..5, 0usize..6), 0..5),
                proptest::bool::weighted(0.9)),
            flips in proptest::collection::vec(
                (proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..3),
            cut in proptest::prelude::any::<usize>(),
        ) {
            let head = mutated_head(&parts, &flips);
            let head = &head[..head.len() - cut % 3];
            let mut slots = NO_FIELDS;
            if let Some(line) = scan(head, &mut slots[..4], &mut ()) {
                same_as_httparse(head, &line, &slots[..line.fields]);
            }
            let _ = parse_head(head, &Limits::default(), &mut slots);
        }
    }

    /// The target's run and the `Host` value's run end where httparse says at every length
    /// and every place in an 8-byte word (each run is read a word at a time, and the value's
    /// CRLF looked for where its word stopped): targets and values of 0 to 24 bytes, after
    /// methods of 3 to 7 bytes, each value of lowercase letters and digits (a plain `Host`),
    /// with a reg-name byte its word test does not take (`-`, `A`, `~`) at its start, middle
    /// or end, or with a port; the `Host` alone or followed by another field. Each head parsed
    /// in full and, in builds with debug assertions, compared with httparse.
    #[test]
    fn runs_end_where_httparse_says_at_every_length_and_offset() {
        for method in ["GET", "HEAD", "DELETE", "OPTIONS", "PUT"] {
            for len in 0..=24 {
                let run: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
                let mut hosts = vec![run.clone()];
                for odd in ["-", "A", "~"] {
                    for at in [0, len / 2, len] {
                        hosts.push(format!("{}{odd}{}", &run[..at], &run[at..]));
                    }
                }
                hosts.push(format!("{run}:80"));
                let target = format!("/{run}");
                for host in &hosts {
                    for rest in ["", "X-A: 1\r\n"] {
                        let input =
                            format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n{rest}\r\n");
                        let mut slots = NO_FIELDS;
                        let h = parse_head(input.as_bytes(), &Limits::default(), &mut slots);
                        let h = h.unwrap_or_else(|e| panic!("{input:?}: {e:?}")).unwrap();
                        assert_eq!(h.len, input.len(), "{input:?}");
                        assert_eq!(&input.as_bytes()[h.target.range()], target.as_bytes());
                        let value = &input.as_bytes()[h.host.get().unwrap().range()];
                        assert_eq!(value, host.as_bytes(), "{input:?}");
                        assert_eq!(h.is_head, method == "HEAD");
                    }
                }
            }
        }
    }

    #[test]
    fn header_spans_are_kept_for_the_handler() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\nX-One:  1 \r\n\r\n";
        let mut slots = NO_FIELDS;
        let h = parse_head(input, &Limits::default(), &mut slots)
            .unwrap()
            .unwrap();
        assert!(!h.is_head);
        let named: Vec<(&[u8], &[u8])> = slots[..usize::from(h.fields)]
            .iter()
            .map(|s| (&input[s.name.range()], &input[s.value.range()]))
            .collect();
        assert_eq!(named, [(&b"Host"[..], &b"x"[..]), (b"X-One", b"1")]);
    }
}
