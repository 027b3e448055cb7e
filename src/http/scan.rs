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
use crate::authority::REG_NAME;

/// What the scan knows of a field's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Name {
    /// `Host`, whose value is reg-name bytes alone (so a valid authority: the scan checked it).
    PlainHost,
    /// `Host`, with a value the full authority rule must check.
    Host,
    /// Any name, `Host` included: the reader looks at it.
    Unknown,
}

/// What reads each field as the scan finds it.
pub(crate) trait TakeField {
    /// Takes in the field `field` of the head at the start of `buf`, named as `name` says.
    fn take(&mut self, buf: &[u8], field: &HeaderSpan, name: Name);
}

/// Reads nothing.
impl TakeField for () {
    fn take(&mut self, _: &[u8], _: &HeaderSpan, _: Name) {}
}

/// The request line of a scanned head, as ranges into the input, and the head's length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestLine {
    pub(crate) method: Range<usize>,
    pub(crate) target: Range<usize>,
    pub(crate) http10: bool,
    /// The head's length, its final CRLF included.
    pub(crate) len: usize,
    /// How many header fields it has (in the first slots).
    pub(crate) fields: usize,
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

/// `host: ` (the name lowercased, its colon and the usual single space) as the low 6 bytes of a
/// little-endian word, and the mask of those bytes.
const HOST_SP: u64 = u64::from_le_bytes(*b"host: \0\0");
const SIX: u64 = 0xFFFF_FFFF_FFFF;

/// `HTTP/1.1` and `HTTP/1.0` as little-endian words.
const HTTP_11: u64 = u64::from_le_bytes(*b"HTTP/1.1");
const HTTP_10: u64 = u64::from_le_bytes(*b"HTTP/1.0");

/// Scans the head at the start of `buf` if it has the common shape, its fields into the first
/// `slots` (as many as there are slots at most), each also handed to `take` as it is scanned
/// (so the caller reads them while they are at hand, not in a second pass). `None`: not that
/// shape, or not complete in `buf`; the slots and what `take` saw are then meaningless and
/// httparse must parse the head.
#[inline]
pub(crate) fn scan(
    buf: &[u8],
    slots: &mut [HeaderSpan],
    take: &mut impl TakeField,
) -> Option<RequestLine> {
    let method = 0..method_end(buf)?;
    let target = method.end + 1..target_end(buf, method.end + 1)?;
    if target.is_empty() || buf[target.end] != b' ' {
        return None;
    }
    // `HTTP/1.1` or `HTTP/1.0`, then CRLF: one 8-byte compare (a second for `HTTP/1.0`) and
    // one 2-byte compare. (The version masked to `HTTP/1.`, then its last byte looked at, cost
    // 6 instructions more a request, callgrind.)
    let at = target.end + 1;
    let line_end = buf.get(at..)?.first_chunk::<10>()?;
    let http10 = match u64::from_le_bytes(*line_end.first_chunk::<8>()?) {
        HTTP_11 => false,
        HTTP_10 => true,
        _ => return None,
    };
    if line_end[8..] != *b"\r\n" {
        return None;
    }
    let mut at = at + 10;
    let mut fields = 0;
    // The first field outside the loop when it is `Host` and its usual single space (most
    // clients send it first, many alone): after a plain value the head may end, found without
    // the loop's turn.
    if word_at(buf, at).is_some_and(|word| (word & SIX) | 0x2020_2020 == HOST_SP) {
        let (host, next, name) = host_field(buf, at, at + 4, at + 6)?;
        let slot = slots.first_mut()?;
        *slot = host;
        take.take(buf, slot, name);
        (fields, at) = (1, next);
        if name == Name::PlainHost && buf.get(at..at.wrapping_add(2)) == Some(b"\r\n") {
            return Some(RequestLine {
                method,
                target,
                http10,
                len: at + 2,
                fields,
            });
        }
    }
    loop {
        if *buf.get(at)? == b'\r' {
            return (*buf.get(at + 1)? == b'\n').then_some(RequestLine {
                method,
                target,
                http10,
                len: at + 2,
                fields,
            });
        }
        let (field, next, name) = field(buf, at)?;
        // No slot left: httparse decides (`431` past the most fields a head may have).
        let slot = slots.get_mut(fields)?;
        *slot = field;
        take.take(buf, slot, name);
        fields += 1;
        at = next;
    }
}

/// Where the method at the start of `buf` ends, followed by its SP: `GET ` in one compare,
/// any other by [`run`] and a look at the byte it stops at. `None`: no method, or no SP after
/// it.
#[inline(always)]
fn method_end(buf: &[u8]) -> Option<usize> {
    if buf.get(..4) == Some(b"GET ") {
        return Some(3);
    }
    let end = run(buf, 0, upper, &TOKEN)?;
    (end > 0 && buf[end] == b' ').then_some(end)
}

/// Where the run of `allowed` bytes from `from` ends (the first byte not allowed), `None` if
/// it reaches the end of `buf`. Eight bytes at a time while `fast` finds nothing in them; the
/// table decides the byte it flags, and the rest.
///
/// `fast` is a SWAR test: it sets the high bit of every byte of the word outside a subset of
/// `allowed` (it may set it for a byte inside too, which only costs a table look-up). So every
/// byte before the first one flagged is allowed. `below` and `above` never miss a byte: a
/// borrow or carry from a lower byte only ever adds flags.
#[inline(always)]
fn run(buf: &[u8], from: usize, fast: fn(u64) -> u64, allowed: &[bool; 256]) -> Option<usize> {
    run_until(buf, from, fast, allowed, None)
}

/// [`run`] of a target's bytes: [`visible`] flags exactly the bytes outside [`TARGET`], so the
/// first byte it flags ends the run without a look at the table.
#[inline(always)]
fn target_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(word) = word_at(buf, at) {
        let flagged = visible(word);
        if flagged != 0 {
            return Some(at + (flagged.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    while TARGET[usize::from(*buf.get(at)?)] {
        at += 1;
    }
    Some(at)
}

/// [`run`] for a run that usually ends at its line's CR (a `Host` value): the byte the word
/// test flags is compared with CR before the table is looked at. `allowed` must not hold CR.
#[inline(always)]
fn run_to_cr(
    buf: &[u8],
    from: usize,
    fast: fn(u64) -> u64,
    allowed: &[bool; 256],
) -> Option<usize> {
    debug_assert!(!allowed[usize::from(b'\r')]);
    run_until(buf, from, fast, allowed, Some(b'\r'))
}

/// [`run`], ending also at `end` (a byte `allowed` does not hold), which is tested first.
#[inline(always)]
fn run_until(
    buf: &[u8],
    from: usize,
    fast: fn(u64) -> u64,
    allowed: &[bool; 256],
    end: Option<u8>,
) -> Option<usize> {
    let mut at = from;
    loop {
        while let Some(word) = word_at(buf, at) {
            let flagged = fast(word);
            if flagged != 0 {
                at += (flagged.trailing_zeros() / 8) as usize;
                break;
            }
            at += 8;
        }
        let byte = *buf.get(at)?;
        if end == Some(byte) || !allowed[usize::from(byte)] {
            return Some(at);
        }
        at += 1;
    }
}

/// The 8 bytes of `buf` from `at` as a little-endian word, if there are 8.
#[inline(always)]
fn word_at(buf: &[u8], at: usize) -> Option<u64> {
    // Against the last place a word starts: one compare per word (`len - 8` is the same for
    // every word of a run), and the slice's own checks follow from it.
    if at > buf.len().checked_sub(8)? {
        return None;
    }
    let word: &[u8; 8] = buf[at..at + 8].try_into().ok()?;
    Some(u64::from_le_bytes(*word))
}

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// Flags the bytes under `n` (at most `0x7F`): exactly, up to the first one.
#[inline(always)]
fn below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS
}

/// Flags the bytes over `n` (under `0x80`): exactly, up to the first one.
#[inline(always)]
fn above(word: u64, n: u8) -> u64 {
    (word.wrapping_add(ONES * u64::from(0x7F - n)) | word) & HIGHS
}

/// Flags the bytes that are not `A` to `Z` (the usual methods).
fn upper(word: u64) -> u64 {
    below(word, b'A') | above(word, b'Z')
}

/// Flags the bytes that are not visible ASCII (a target).
fn visible(word: u64) -> u64 {
    below(word, 0x21) | above(word, 0x7E)
}

/// Flags the bytes that are not SP or visible ASCII (a field value; HTAB goes to the table).
fn text(word: u64) -> u64 {
    below(word, 0x20) | above(word, 0x7E)
}

/// Flags the bytes that are not letters or `-` (the usual field names; a digit goes to the
/// table).
fn name(word: u64) -> u64 {
    let lower = word | (ONES * 0x20);
    let not_letter = below(lower, b'a') | above(lower, b'z');
    // A byte is `-` when it is zero after the XOR; the zero test is exact in every byte (no
    // carry crosses a byte), so no byte is taken for a `-` that is not one.
    let x = word ^ (ONES * u64::from(b'-'));
    let not_dash = ((x & !HIGHS).wrapping_add(!HIGHS) | x) & HIGHS;
    not_letter & not_dash
}

/// Where the field name at `at` ends (the first byte not in it, a colon), where its value's
/// leading whitespace may begin, and whether it is `Host`. `Host`, which every request has
/// (most clients send it first), in one compare: its four letters in any case (setting bit 5
/// maps only `H`/`h`, `O`/`o`, `S`/`s`, `T`/`t` onto them), then the colon as it is, and the
/// usual single space after it in the same compare. `None`: no name, or no colon after it.
#[inline(always)]
fn name_end(buf: &[u8], at: usize) -> Option<(usize, usize, bool)> {
    const HOST: u32 = u32::from_le_bytes(*b"host");
    match word_at(buf, at) {
        // Its four letters in one compare first: any other name costs no more.
        Some(word) if word as u32 | 0x2020_2020 == HOST && (word >> 32) as u8 == b':' => {
            let start = if (word >> 40) as u8 == b' ' {
                at + 6
            } else {
                at + 5
            };
            Some((at + 4, start, true))
        }
        _ => {
            let end = run(buf, at, name, &TOKEN)?;
            (end > at && buf[end] == b':').then_some((end, end + 1, false))
        }
    }
}

/// Flags the bytes that are not lowercase letters or digits (the usual host names; every other
/// reg-name byte goes to the table).
fn lower_or_digit(word: u64) -> u64 {
    let not_lower = below(word, b'a') | above(word, b'z');
    let not_digit = below(word, b'0') | above(word, b'9');
    not_lower & not_digit
}

/// One `name: value` CRLF line at `at`; the field, where the next line starts, and what is
/// known of its name. The value is without its leading and trailing SP and HTAB, as httparse
/// gives it (an empty value is the empty range at its CR).
#[inline(always)]
fn field(buf: &[u8], at: usize) -> Option<(HeaderSpan, usize, Name)> {
    let (end, start, is_host) = name_end(buf, at)?;
    if is_host {
        return host_field(buf, at, end, start);
    }
    let start = skip_whitespace(buf, start)?;
    let cr = run_to_cr(buf, start, text, &VALUE)?;
    trimmed_field(buf, at..end, start, cr, Name::Unknown)
}

/// [`field`] for a `Host` whose name ends at `end`, its value's leading whitespace from
/// `start`. Its value is read as reg-name bytes first (a subset of the value's): one pass both
/// scans it and, when it ends right at its CR, finds it a valid authority with nothing to trim.
/// Before any leading whitespace is skipped: the usual single space is behind `start` already,
/// and SP and HTAB are not reg-name bytes, so a run that goes anywhere had none.
#[inline(always)]
fn host_field(
    buf: &[u8],
    at: usize,
    end: usize,
    start: usize,
) -> Option<(HeaderSpan, usize, Name)> {
    // Lowercase letters and digits 8 at a time (`lower_or_digit` flags exactly the first byte
    // that is neither): a usual host name ends at its line's CRLF, looked for right there.
    let mut word_end = start;
    while let Some(word) = word_at(buf, word_end) {
        let flagged = lower_or_digit(word);
        if flagged != 0 {
            word_end += (flagged.trailing_zeros() / 8) as usize;
            break;
        }
        word_end += 8;
    }
    // (`word_end` is within `buf`, or one past it: `+ 2` cannot overflow.)
    if buf.get(word_end..word_end + 2) == Some(b"\r\n") {
        let value = HeaderSpan::new(at..end, start..word_end);
        return Some((value, word_end + 2, Name::PlainHost));
    }
    // Any other reg-name byte, or fewer than 8 bytes left: byte by byte from there.
    let reg_end = run_to_cr(buf, word_end, lower_or_digit, &REG_NAME)?;
    if buf[reg_end] == b'\r' {
        let value = HeaderSpan::new(at..end, start..reg_end);
        return Some((value, line_end(buf, reg_end)?, Name::PlainHost));
    }
    // Stopped at its first byte: maybe whitespace, skipped; the value is then checked whole as
    // an authority (`Name::Host`), as one with a port or an IP literal is.
    let start = if reg_end == start {
        skip_whitespace(buf, start)?
    } else {
        start
    };
    let cr = run(buf, reg_end.max(start), text, &VALUE)?;
    trimmed_field(buf, at..end, start, cr, Name::Host)
}

/// The field named at `name` whose value runs from `start` to its line's CR at `cr`, without
/// its trailing SP and HTAB; where the next line starts; `kind`.
#[inline(always)]
fn trimmed_field(
    buf: &[u8],
    name: Range<usize>,
    start: usize,
    cr: usize,
    kind: Name,
) -> Option<(HeaderSpan, usize, Name)> {
    let next = line_end(buf, cr)?;
    // A value's run stops at every control byte but HTAB, so the only ASCII whitespace it
    // holds is SP and HTAB: the whitespace `trim_ascii_end` trims.
    let value_end = start + buf.get(start..cr)?.trim_ascii_end().len();
    Some((HeaderSpan::new(name, start..value_end), next, kind))
}

/// Where the SP and HTAB from `at` end: the usual single SP before a value in one compare.
#[inline(always)]
fn skip_whitespace(buf: &[u8], mut at: usize) -> Option<usize> {
    if let Some(&[b' ', next]) = buf.get(at..at.wrapping_add(2)) {
        if !matches!(next, b' ' | b'\t') {
            return Some(at + 1);
        }
    }
    while matches!(*buf.get(at)?, b' ' | b'\t') {
        at += 1;
    }
    Some(at)
}

/// Where the next line starts when the byte at `cr` ends this one with CRLF.
#[inline(always)]
fn line_end(buf: &[u8], cr: usize) -> Option<usize> {
    (buf.get(cr..cr.wrapping_add(2))? == b"\r\n").then_some(cr + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields as `(name, value)`.
    type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;

    fn scanned(input: &[u8]) -> Option<(RequestLine, Fields<'_>)> {
        let mut slots = [HeaderSpan::EMPTY; 4];
        let line = scan(input, &mut slots, &mut ())?;
        let fields = slots[..line.fields]
            .iter()
            .map(|s| (&input[s.name.range()], &input[s.value.range()]))
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

    /// The version is read by comparing its 8 bytes with `HTTP/1.1` and `HTTP/1.0`: a version
    /// one byte away from either (every byte value at every place) is declined, so httparse
    /// and the version rules after it decide (`HTTP/1.2` read as HTTP/1.1, `HTTP/2.0` a `505`,
    /// anything else a `400`); the two are read as what they say.
    #[test]
    fn the_version_is_taken_only_when_it_is_http_1_1_or_1_0() {
        for base in [b"HTTP/1.1", b"HTTP/1.0"] {
            for at in 0..8 {
                for byte in 0..=u8::MAX {
                    let mut version = *base;
                    version[at] = byte;
                    let input = [b"GET / ", &version[..], b"\r\nHost: x\r\n\r\n"].concat();
                    let line = scanned(&input).map(|(line, _)| line.http10);
                    let expected = match &version {
                        b"HTTP/1.1" => Some(false),
                        b"HTTP/1.0" => Some(true),
                        _ => None,
                    };
                    assert_eq!(line, expected, "{:?}", String::from_utf8_lossy(&version));
                }
            }
        }
    }

    /// Each SWAR test flags the first byte outside its subset, and no byte before it but (for
    /// `name`, which combines three ranges) bytes inside the subset (all pairs of bytes, at
    /// every position, between bytes inside it).
    #[test]
    fn the_word_tests_find_the_first_byte_outside() {
        type Class = (fn(u64) -> u64, fn(u8) -> bool, u8, bool);
        let classes: [Class; 5] = [
            (upper, |b| b.is_ascii_uppercase(), b'G', true),
            (visible, |b| (0x21..=0x7E).contains(&b), b'/', true),
            (text, |b| (0x20..=0x7E).contains(&b), b' ', true),
            (name, |b| b.is_ascii_alphabetic() || b == b'-', b'-', false),
            (
                lower_or_digit,
                |b| b.is_ascii_lowercase() || b.is_ascii_digit(),
                b'a',
                false,
            ),
        ];
        for (test, inside, filler, exact) in classes {
            for at in 0..7 {
                for pair in 0..=u16::MAX {
                    let mut word = [filler; 8];
                    word[at..at + 2].copy_from_slice(&pair.to_le_bytes());
                    let first = word.iter().position(|&b| !inside(b)).unwrap_or(8);
                    let flagged = test(u64::from_le_bytes(word));
                    if first < 8 {
                        assert!(flagged & (0x80 << (8 * first)) != 0, "{word:?}");
                    }
                    let lowest = (flagged.trailing_zeros() / 8) as usize;
                    assert!(lowest <= first && (!exact || lowest == first), "{word:?}");
                }
            }
        }
    }

    /// A `Host` value is found plain (a valid authority, no further check) exactly when it is
    /// reg-name bytes alone: a visible byte outside them (`/`, found by the differential test
    /// when the word test let it through) leaves it to the full rule.
    #[test]
    fn a_host_is_plain_when_its_value_is_reg_name_bytes_alone() {
        struct Plain(Vec<bool>);
        impl TakeField for Plain {
            fn take(&mut self, _: &[u8], _: &HeaderSpan, name: Name) {
                self.0.push(name == Name::PlainHost);
            }
        }
        for (value, plain) in [
            ("bench", true),
            ("", true),
            ("Ex-a.mple_9~!$&'()*+,;=", true),
            ("a.very-long.host-name.example", true),
            ("h/x", false),
            ("a:80", false),
            ("[::1]", false),
            ("a%41", false),
            ("a b", false),
            ("a\t", false), // the full rule then reads the value without its whitespace
            ("a@b", false),
        ] {
            let input = format!("GET / HTTP/1.1\r\nhOsT: {value}\r\nX: {value}\r\n\r\n");
            let mut seen = Plain(Vec::new());
            scan(input.as_bytes(), &mut [HeaderSpan::EMPTY; 4], &mut seen).unwrap();
            assert_eq!(seen.0, [plain, false], "{value:?}");
        }
    }

    /// `Host` is read with any whitespace after its colon (the usual single space is matched
    /// with the name), and its value is the same.
    #[test]
    fn a_host_is_read_whatever_the_space_after_its_colon() {
        for line in ["Host:x", "Host: x", "host:  x", "HOST:\tx", "hoSt: \t x \t"] {
            let input = format!("GET / HTTP/1.1\r\n{line}\r\n\r\n");
            let (_, fields) = scanned(input.as_bytes()).unwrap();
            assert_eq!(fields, [(&line.as_bytes()[..4], &b"x"[..])], "{line:?}");
        }
        assert_eq!(scanned(b"GET / HTTP/1.1\r\nHost :x\r\n\r\n"), None);
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
