//! Incremental decoding of a chunked request body (RFC 9112 section 7.1), with its state kept
//! across reads, so a body costs the same however the client splits it.
//!
//! # Invariants
//!
//! 1. [`ChunkedDecoder::decode`] reads its input left to right and never looks at a byte
//!    twice: decoding a body is linear in its length, whatever the reads were.
//! 2. The decoded length never exceeds `max_body`; the framing (size lines, extensions, CRLFs,
//!    the trailer section) never exceeds `max_overhead`; extensions and trailers also stay within
//!    their own limits. Every count is a `u64`; nothing is added without a check first.
//! 3. The answer depends only on the bytes, not on how they were split: the decoder consumes
//!    every byte it is given up to the end of the body, and an error, once found, is returned
//!    again by every later call.

use std::fmt;

use super::limits::Limits;
use crate::codings::is_tchar;

/// Why a chunked body cannot be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkedError {
    /// Not the chunked syntax: a bad size, extension, CRLF or trailer line (`400`).
    Malformed,
    /// The decoded body would exceed [`Limits::max_body`](Limits::with_max_body) (`413`).
    BodyTooLarge,
    /// Size lines, extensions, CRLFs and trailers together exceed
    /// [`Limits::max_chunk_overhead`](Limits::with_max_chunk_overhead) (`413`).
    OverheadTooLarge,
    /// Chunk extensions together exceed
    /// [`Limits::max_chunk_extensions`](Limits::with_max_chunk_extensions) (`413`).
    ExtensionsTooLarge,
    /// The trailer section exceeds [`Limits::max_trailers`](Limits::with_max_trailers) (`431`).
    TrailersTooLarge,
}

impl ChunkedError {
    /// The status the server answers with.
    pub fn status(self) -> u16 {
        match self {
            ChunkedError::Malformed => 400,
            ChunkedError::BodyTooLarge
            | ChunkedError::OverheadTooLarge
            | ChunkedError::ExtensionsTooLarge => 413,
            ChunkedError::TrailersTooLarge => 431,
        }
    }
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkedError::Malformed => "malformed chunked body",
            ChunkedError::BodyTooLarge => "chunked body over max_body",
            ChunkedError::OverheadTooLarge => "chunk framing over max_chunk_overhead",
            ChunkedError::ExtensionsTooLarge => "chunk extensions over max_chunk_extensions",
            ChunkedError::TrailersTooLarge => "trailer section over max_trailers",
        })
    }
}

impl std::error::Error for ChunkedError {}

/// Where the decoder is in the grammar:
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] )
/// trailer      = *( field-name ":" OWS field-value OWS CRLF )
/// ```
///
/// One leniency, as hyper's decoder has it: whitespace may also end a size line, after the
/// size or an extension (`3 \r\n`), as the `BWS` before a `;` that does not come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the first hex digit of a size.
    SizeStart,
    /// In the hex digits of a size.
    Size,
    /// Whitespace after the size or an extension: `;` or CR next.
    AfterSize,
    /// After `;`: whitespace, then an extension name.
    ExtNameStart,
    ExtName,
    /// Whitespace after an extension name: `=`, `;` or CR next.
    ExtAfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtValueStart,
    ExtValue,
    ExtQuoted,
    ExtQuotedEscape,
    /// CR seen at the end of a size line.
    SizeLf,
    /// In chunk data (`remaining` bytes left).
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// CR of the final empty line seen.
    EndLf,
    Done,
    Failed(ChunkedError),
}

/// A chunked body decoder that keeps its state between reads.
///
/// Give it each piece of input as it arrives; it appends the data to a body buffer and says how
/// many bytes of the piece belonged to the body. Bytes after the end of the body (a pipelined
/// request) are left alone.
///
/// # Examples
///
/// ```
/// use reqguard::http::{ChunkedDecoder, ChunkedError, Limits};
///
/// let mut decoder = ChunkedDecoder::new(&Limits::default());
/// let mut body = Vec::new();
/// assert_eq!(decoder.decode(b"5\r\nhel", &mut body), Ok(6));
/// assert_eq!(decoder.decode(b"lo\r\n0\r\n\r\nGET /", &mut body), Ok(9)); // not `GET /`
/// assert!(decoder.is_done());
/// assert_eq!(body, b"hello");
///
/// let mut decoder = ChunkedDecoder::new(&Limits::default().with_max_body(4));
/// assert_eq!(decoder.decode(b"5\r\nhello", &mut body), Err(ChunkedError::BodyTooLarge));
/// ```
#[derive(Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Data bytes left in the current chunk (while reading a size: the size so far).
    remaining: u64,
    decoded: u64,
    overhead: u64,
    extensions: u64,
    trailers: u64,
    max_body: u64,
    max_overhead: u64,
    max_extensions: u64,
    max_trailers: u64,
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `field-vchar`, `obs-text` or whitespace: what a field value or a quoted string may hold.
fn is_text(b: u8) -> bool {
    is_ws(b) || (0x21..=0x7e).contains(&b) || b >= 0x80
}

fn size_of(limit: usize) -> u64 {
    u64::try_from(limit).unwrap_or(u64::MAX)
}

impl ChunkedDecoder {
    /// A decoder for one body, bounded by `limits` ([`Limits::max_body`](Limits::with_max_body),
    /// [`Limits::max_chunk_overhead`](Limits::with_max_chunk_overhead),
    /// [`Limits::max_chunk_extensions`](Limits::with_max_chunk_extensions),
    /// [`Limits::max_trailers`](Limits::with_max_trailers)).
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            remaining: 0,
            decoded: 0,
            overhead: 0,
            extensions: 0,
            trailers: 0,
            max_body: size_of(limits.max_body()),
            max_overhead: size_of(limits.max_chunk_overhead()),
            max_extensions: size_of(limits.max_chunk_extensions()),
            max_trailers: size_of(limits.max_trailers()),
        }
    }

    /// Decodes what it can of `input`, appending chunk data to `body`; returns how many bytes
    /// of `input` it consumed. That is all of them until the body ends; then
    /// [`is_done`](ChunkedDecoder::is_done) holds and the rest of `input` is not the body's.
    ///
    /// # Errors
    ///
    /// The first violation of the syntax or a limit; the decoder then stays failed.
    pub fn decode(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<usize, ChunkedError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Failed(error) => return Err(error),
                State::Done => return Ok(pos),
                _ if pos == input.len() => return Ok(pos),
                State::Data => {
                    let left = &input[pos..];
                    let take =
                        usize::try_from(self.remaining).map_or(left.len(), |r| r.min(left.len()));
                    body.extend_from_slice(&left[..take]);
                    pos += take;
                    // `take <= remaining`, and `decoded + remaining <= max_body` was checked
                    // when the size was read.
                    self.remaining -= take as u64;
                    self.decoded += take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    let byte = input[pos];
                    pos += 1;
                    self.state = match self.framing_byte(byte) {
                        Ok(next) => next,
                        Err(error) => State::Failed(error),
                    };
                }
            }
        }
    }

    /// Whether the whole body, trailers included, has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes decoded so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Framing bytes (everything but chunk data) read so far.
    pub fn overhead(&self) -> u64 {
        self.overhead
    }

    /// One byte outside chunk data: counted against the overhead, then parsed.
    fn framing_byte(&mut self, b: u8) -> Result<State, ChunkedError> {
        if self.overhead >= self.max_overhead {
            return Err(ChunkedError::OverheadTooLarge);
        }
        self.overhead += 1;
        match self.state {
            State::SizeStart | State::Size | State::AfterSize | State::SizeLf => self.size_byte(b),
            State::DataCr => expect(b, b'\r', State::DataLf),
            State::DataLf => expect(b, b'\n', State::SizeStart),
            State::TrailerStart
            | State::TrailerName
            | State::TrailerValue
            | State::TrailerLf
            | State::EndLf => self.trailer_byte(b),
            _ => self.extension_byte(b),
        }
    }

    /// A byte of a size line outside its extensions.
    fn size_byte(&mut self, b: u8) -> Result<State, ChunkedError> {
        match (self.state, b) {
            (State::SizeStart | State::Size, _) if b.is_ascii_hexdigit() => {
                let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                let size = self
                    .remaining
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(digit))
                    .ok_or(ChunkedError::BodyTooLarge)?;
                // `decoded <= max_body` always holds, so this cannot underflow.
                if size > self.max_body - self.decoded {
                    return Err(ChunkedError::BodyTooLarge);
                }
                self.remaining = size;
                Ok(State::Size)
            }
            (State::SizeStart, _) => Err(ChunkedError::Malformed),
            (State::Size | State::AfterSize, b';') => self.start_extension(),
            (State::Size | State::AfterSize, b'\r') => Ok(State::SizeLf),
            (State::Size | State::AfterSize, _) if is_ws(b) => Ok(State::AfterSize),
            (State::SizeLf, b'\n') if self.remaining == 0 => Ok(State::TrailerStart),
            (State::SizeLf, b'\n') => Ok(State::Data),
            _ => Err(ChunkedError::Malformed),
        }
    }

    fn start_extension(&mut self) -> Result<State, ChunkedError> {
        self.count_extension()?;
        Ok(State::ExtNameStart)
    }

    fn count_extension(&mut self) -> Result<(), ChunkedError> {
        if self.extensions >= self.max_extensions {
            return Err(ChunkedError::ExtensionsTooLarge);
        }
        self.extensions += 1;
        Ok(())
    }

    /// A byte inside a chunk extension (after its `;`).
    fn extension_byte(&mut self, b: u8) -> Result<State, ChunkedError> {
        if b == b'\r' {
            // The line ends: only where an extension may end.
            return match self.state {
                State::ExtName | State::ExtAfterName | State::ExtValue => Ok(State::SizeLf),
                _ => Err(ChunkedError::Malformed),
            };
        }
        self.count_extension()?;
        let next = match self.state {
            State::ExtNameStart if is_ws(b) => State::ExtNameStart,
            State::ExtNameStart if is_tchar(b) => State::ExtName,
            State::ExtName if is_tchar(b) => State::ExtName,
            State::ExtName | State::ExtAfterName if is_ws(b) => State::ExtAfterName,
            State::ExtName | State::ExtAfterName if b == b'=' => State::ExtValueStart,
            State::ExtName | State::ExtAfterName | State::ExtValue if b == b';' => {
                State::ExtNameStart
            }
            State::ExtValueStart if is_ws(b) => State::ExtValueStart,
            State::ExtValueStart if b == b'"' => State::ExtQuoted,
            State::ExtValueStart | State::ExtValue if is_tchar(b) => State::ExtValue,
            State::ExtValue if is_ws(b) => State::AfterSize,
            State::ExtQuoted if b == b'"' => State::AfterSize,
            State::ExtQuoted if b == b'\\' => State::ExtQuotedEscape,
            State::ExtQuoted | State::ExtQuotedEscape if is_text(b) => State::ExtQuoted,
            _ => return Err(ChunkedError::Malformed),
        };
        Ok(next)
    }

    /// A byte of the trailer section: field lines, then an empty line.
    fn trailer_byte(&mut self, b: u8) -> Result<State, ChunkedError> {
        if self.trailers >= self.max_trailers {
            return Err(ChunkedError::TrailersTooLarge);
        }
        self.trailers += 1;
        match (self.state, b) {
            (State::TrailerStart, b'\r') => Ok(State::EndLf),
            (State::EndLf, b'\n') => Ok(State::Done),
            // A field name; a line starting with whitespace (obs-fold) or `:` is not one.
            (State::TrailerStart | State::TrailerName, _) if is_tchar(b) => Ok(State::TrailerName),
            (State::TrailerName, b':') => Ok(State::TrailerValue),
            (State::TrailerValue, b'\r') => Ok(State::TrailerLf),
            (State::TrailerValue, _) if is_text(b) => Ok(State::TrailerValue),
            (State::TrailerLf, b'\n') => Ok(State::TrailerStart),
            // Anything else, a line without a colon included, is malformed.
            _ => Err(ChunkedError::Malformed),
        }
    }
}

fn expect(b: u8, wanted: u8, next: State) -> Result<State, ChunkedError> {
    if b == wanted {
        Ok(next)
    } else {
        Err(ChunkedError::Malformed)
    }
}

impl fmt::Debug for ChunkedDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkedDecoder")
            .field("state", &self.state)
            .field("decoded", &self.decoded)
            .field("overhead", &self.overhead)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> Limits {
        Limits::default().with_max_body(64)
    }

    /// Decodes `input` in one piece: (consumed, body) or the error.
    fn whole(input: &[u8], limits: &Limits) -> Result<(usize, Vec<u8>), ChunkedError> {
        let mut decoder = ChunkedDecoder::new(limits);
        let mut body = Vec::new();
        let used = decoder.decode(input, &mut body)?;
        Ok((used, body)).filter_done(&decoder)
    }

    trait FilterDone {
        fn filter_done(self, d: &ChunkedDecoder) -> Self;
    }

    impl FilterDone for Result<(usize, Vec<u8>), ChunkedError> {
        /// An unfinished body reports `usize::MAX` as consumed, so "incomplete" compares equal
        /// however it was split.
        fn filter_done(self, d: &ChunkedDecoder) -> Self {
            self.map(|(used, body)| (if d.is_done() { used } else { usize::MAX }, body))
        }
    }

    /// Decodes `input` split at `cuts` (offsets, in any order).
    fn split(
        input: &[u8],
        cuts: &[usize],
        limits: &Limits,
    ) -> Result<(usize, Vec<u8>), ChunkedError> {
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
        cuts.push(input.len());
        cuts.sort_unstable();
        let mut decoder = ChunkedDecoder::new(limits);
        let mut body = Vec::new();
        let mut start = 0;
        for cut in cuts {
            if cut < start {
                continue;
            }
            let used = decoder.decode(&input[start..cut], &mut body)?;
            start += used;
            if decoder.is_done() {
                return Ok((start, body));
            }
            assert_eq!(start, cut, "an unfinished decoder consumes all it is given");
        }
        Ok((start, body)).filter_done(&decoder)
    }

    #[test]
    fn decodes_sizes_extensions_and_trailers() {
        let body = b"5\r\nhello\r\n3;ext=1;q=\"a\\\"b\" ; flag\r\nabc\r\nA \r\n0123456789\r\n0\r\nTrailer: x\r\nT2:\r\n\r\nNEXT";
        assert_eq!(
            whole(body, &limits()),
            Ok((body.len() - 4, b"helloabc0123456789".to_vec()))
        );
        assert_eq!(whole(b"0\r\n\r\n", &limits()), Ok((5, Vec::new())));
        assert_eq!(whole(b"000\r\n\r\n", &limits()), Ok((7, Vec::new())));
        assert!(whole(b"5\r\nhel", &limits()).unwrap().0 == usize::MAX);
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b" 5\r\nhello\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloXX",
            b"5\r\nhello\n0\r\n\r\n",
            b"5;\r\nhello\r\n",
            b"5;a=\r\nhello\r\n",
            b"5;a=\"x\r\nhello\r\n",
            b"5;a b\r\nhello\r\n",
            b"5;=b\r\nhello\r\n",
            b"5;a=\"b\"c\r\nhello\r\n",
            b"5; \r\nhello\r\n",
            b"5;a\x01\r\nhello\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\nNoColon\r\n\r\n",
            b"0\r\n folded: x\r\n\r\n",
            b"0\r\n: empty name\r\n\r\n",
            b"0\r\nName : space before colon\r\n\r\n",
            b"0\r\nName: bare\nlf\r\n\r\n",
            b"0\r\nName: ctl\x7f\r\n\r\n",
            b"0\r\n\n",
            b"-1\r\n",
            b"0x5\r\nhello\r\n",
        ] {
            assert_eq!(
                whole(bad, &limits()),
                Err(ChunkedError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn limits_are_checked_without_overflow() {
        let limits = limits();
        assert_eq!(whole(b"41\r\n", &limits), Err(ChunkedError::BodyTooLarge));
        assert_eq!(
            whole(b"40\r\n", &limits).map(|r| r.0),
            Ok(usize::MAX),
            "exactly max_body is fine"
        );
        assert_eq!(
            whole(b"20\r\n01234567890123456789012345678901\r\n21\r\n", &limits),
            Err(ChunkedError::BodyTooLarge)
        );
        let huge = Limits::default().with_max_body(usize::MAX);
        assert_eq!(
            whole(b"FFFFFFFFFFFFFFFF\r\n", &huge).map(|r| r.0),
            Ok(usize::MAX)
        );
        assert_eq!(
            whole(b"FFFFFFFFFFFFFFFF0\r\n", &huge),
            Err(ChunkedError::BodyTooLarge)
        );
        assert_eq!(
            whole(b"1\r\na\r\nFFFFFFFFFFFFFFFF\r\n", &huge),
            Err(ChunkedError::BodyTooLarge)
        );
        let tight = Limits::default()
            .with_max_chunk_overhead(8)
            .with_max_chunk_extensions(4)
            .with_max_trailers(6);
        assert_eq!(
            whole(b"1\r\na\r\n1\r\nb\r\n", &tight),
            Err(ChunkedError::OverheadTooLarge)
        );
        assert_eq!(
            whole(b"1;abcd\r\n", &tight),
            Err(ChunkedError::ExtensionsTooLarge)
        );
        let trailers = Limits::default().with_max_trailers(6);
        assert_eq!(
            whole(b"0\r\nab: c\r\n\r\n", &trailers),
            Err(ChunkedError::TrailersTooLarge)
        );
        assert!(whole(b"0\r\nab:c\r\n\r\n", &trailers).is_err());
        assert_eq!(whole(b"0\r\na:\r\n\r\n", &trailers), Ok((9, Vec::new())));
    }

    #[test]
    fn failure_is_sticky() {
        let mut decoder = ChunkedDecoder::new(&limits());
        let mut body = Vec::new();
        assert_eq!(
            decoder.decode(b"z", &mut body),
            Err(ChunkedError::Malformed)
        );
        assert_eq!(decoder.decode(b"", &mut body), Err(ChunkedError::Malformed));
        assert_eq!(
            decoder.decode(b"0\r\n\r\n", &mut body),
            Err(ChunkedError::Malformed)
        );
    }

    /// A chunked body from chunk sizes, with optional extensions and trailers.
    fn encode(data: &[u8], sizes: &[usize], ext: bool, trailers: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = data;
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, later) = rest.split_at(size.clamp(1, rest.len()));
            out.extend_from_slice(format!("{:x}", chunk.len()).as_bytes());
            if ext {
                out.extend_from_slice(b" ; n=v;q=\"x;y\"");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
            rest = later;
        }
        out.extend_from_slice(b"0\r\n");
        if trailers {
            out.extend_from_slice(b"x-sum: 1\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    proptest! {
        /// Incremental decoding equals decoding in one piece, for well-formed bodies.
        #[test]
        fn split_well_formed_equals_whole(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            sizes in proptest::collection::vec(1usize..40, 1..8),
            ext in any::<bool>(),
            trailers in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut input = encode(&data, &sizes, ext, trailers);
            let len = input.len();
            input.extend_from_slice(&tail);
            let limits = Limits::default().with_max_body(1024);
            let one = whole(&input, &limits);
            prop_assert_eq!(&one, &Ok((len, data.clone())));
            prop_assert_eq!(split(&input, &cuts, &limits), one);
        }

        /// ... and for anything at all (mutated bodies, garbage, tight limits): the same
        /// result, error included.
        #[test]
        fn split_anything_equals_whole(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            sizes in proptest::collection::vec(1usize..20, 1..4),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            max_body in 0usize..256,
            max_overhead in 0usize..128,
        ) {
            let mut input = encode(&data, &sizes, true, true);
            for (at, byte) in flips {
                let at = at % input.len();
                input[at] = byte;
            }
            let limits = Limits::default()
                .with_max_body(max_body)
                .with_max_chunk_overhead(max_overhead)
                .with_max_chunk_extensions(max_overhead / 2)
                .with_max_trailers(max_overhead / 4);
            prop_assert_eq!(split(&input, &cuts, &limits), whole(&input, &limits));
        }
    }
}
