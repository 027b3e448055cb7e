//! `Transfer-Encoding` (RFC 9112 §6.1, §7): the rule both HTTP stacks judge a request's
//! transfer codings by, so the mio server and the hyper adapter answer them alike.
//!
//! A pure function over a field value: no allocation, no state.

/// What a request's one `Transfer-Encoding` field value says about its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codings {
    /// `chunked` alone (empty list elements aside): the body is read.
    Chunked,
    /// Codings before a final `chunked` (`gzip, chunked`): the body can be framed but not
    /// decoded; RFC 9112 §6.1: a server SHOULD answer `501`.
    UnknownBeforeChunked,
    /// A list whose last coding is not `chunked` (the body's length cannot be known: `400` and
    /// close, a MUST of RFC 9112 §6.3), that applies `chunked` twice (§7: a sender MUST NOT),
    /// or holds something other than a coding name (a token): `400`.
    Invalid,
}

/// Judges one `Transfer-Encoding` field value. Empty list elements are ignored (`chunked,`:
/// RFC 9110 §5.6.1 asks recipients to); a coding's parameters (`gzip;q=1`) are not accepted.
/// Elements are trimmed as `Connection`'s tokens are (`trim_ascii`: a parsed field value holds
/// no whitespace but SP and HTAB).
pub(crate) fn codings(value: &[u8]) -> Codings {
    if value.eq_ignore_ascii_case(b"chunked") {
        return Codings::Chunked;
    }
    let mut elements = value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|element| !element.is_empty());
    let Some(mut last) = elements.next() else {
        return Codings::Invalid;
    };
    let mut before = false;
    for element in elements {
        if last.eq_ignore_ascii_case(b"chunked") || !last.iter().all(|&b| is_tchar(b)) {
            return Codings::Invalid;
        }
        (last, before) = (element, true);
    }
    match (last.eq_ignore_ascii_case(b"chunked"), before) {
        (true, false) => Codings::Chunked,
        (true, true) => Codings::UnknownBeforeChunked,
        (false, _) => Codings::Invalid,
    }
}

/// `tchar` of RFC 9110 §5.6.2.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_last_frames_a_coding_before_it_is_unknown_and_empty_elements_are_ignored() {
        for chunked in [
            "chunked",
            "CHUNKED",
            "chunked,",
            ", chunked",
            " ,chunked , ,",
        ] {
            assert_eq!(codings(chunked.as_bytes()), Codings::Chunked, "{chunked:?}");
        }
        for unknown in [
            "gzip, chunked",
            "gzip,chunked",
            "x-custom , ,chunked",
            "br, gzip, chunked",
        ] {
            assert_eq!(
                codings(unknown.as_bytes()),
                Codings::UnknownBeforeChunked,
                "{unknown:?}"
            );
        }
        for invalid in [
            "gzip",
            "chunked, gzip",
            "chunked, chunked",
            "chunked;q=1",
            "gzip;q=1, chunked",
            "\"gzip\", chunked",
            "gzip\x0b, chunked",
            ",",
            "",
        ] {
            assert_eq!(codings(invalid.as_bytes()), Codings::Invalid, "{invalid:?}");
        }
    }
}
