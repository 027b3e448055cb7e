//! Shared checks for the fuzz targets: response well-formedness and quiet deliberate panics.

use std::sync::Once;

/// The statuses the reference server may answer with.
const ALLOWED: &[u16] = &[
    100, 200, 204, 400, 404, 405, 408, 413, 414, 431, 500, 501, 503, 505,
];

/// How many body bytes follow a final answer's head: none for `204` and `304`, none for an
/// answer to `HEAD` (its `content-length` is kept, and the next answer or the end follows at
/// once), else `length`.
fn body_len(status: u16, length: usize, after_head: &[u8]) -> usize {
    let head_only = after_head.is_empty() || after_head.starts_with(b"HTTP/1.");
    if matches!(status, 204 | 304) || (length > 0 && head_only) {
        0
    } else {
        length
    }
}

/// One parsed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Whether it carried `connection: close`.
    pub close: bool,
}

/// Parses `out` as a sequence of complete, well-formed HTTP/1.x responses and returns them.
///
/// # Panics
///
/// On anything else: a malformed or partial response, an unexpected status, a missing or wrong
/// `content-length`, or bytes after a `connection: close` answer.
pub fn check_responses(mut out: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while !out.is_empty() {
        if let Some(last) = answers.last() {
            let last: &Answer = last;
            assert!(
                !last.close,
                "bytes after a `connection: close` answer: {:?}",
                String::from_utf8_lossy(&out[..out.len().min(200)])
            );
        }
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "not a complete response head ({other:?}): {:?}",
                String::from_utf8_lossy(&out[..out.len().min(200)])
            ),
        };
        let status = response.code.expect("a complete head has a code");
        assert!(ALLOWED.contains(&status), "unexpected status {status}");
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| std::str::from_utf8(h.value).expect("ASCII header value"))
        };
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if status < 200 {
            // An interim answer (`100 Continue`): no body, and the final answer follows.
            out = &out[head..];
            answers.push(Answer {
                status,
                close: false,
            });
            continue;
        }
        let length: usize = match header("content-length") {
            None if status == 204 => 0,
            None => panic!("every final answer but 204 has a content-length"),
            Some(v) => v.parse().expect("content-length is a number"),
        };
        let length = body_len(status, length, &out[head..]);
        assert!(
            out.len() >= head + length,
            "body cut short: {} of {length} bytes",
            out.len() - head
        );
        out = &out[head + length..];
        answers.push(Answer { status, close });
    }
    answers
}

/// Whether `split` (the answers to an input in small reads) is `whole` (the same input in one
/// read), or `whole` cut after an answer `split` gives with `connection: close` added: a
/// request with `Expect: 100-continue` that no handler takes is answered at once, and the
/// connection closed, when its head arrives before its body (RFC 9110 §10.1.1), as the `100`
/// is sent only then. Both without their `100`s ([`without_interim`]).
pub fn same_or_closed_early(whole: &[u8], split: &[u8]) -> bool {
    const CLOSE: &[u8] = b"connection: close\r\n";
    if whole == split {
        return true;
    }
    let same = whole.iter().zip(split).take_while(|(a, b)| a == b).count();
    let (whole, split) = (&whole[same..], &split[same..]);
    // `split` says close where `whole`'s head ends; the rest of `split` (the head's end and
    // that answer's body) is what `whole` has there, and nothing follows it.
    split.starts_with(CLOSE)
        && whole.starts_with(b"\r\n")
        && whole.starts_with(&split[CLOSE.len()..])
}

/// `out` without its interim `1xx` answers (which depend on how the request arrived), and with
/// every `date` value blanked (it depends on when).
pub fn without_interim(out: &[u8]) -> Vec<u8> {
    const CONTINUE: &[&[u8]] = &[
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.0 100 Continue\r\n\r\n",
    ];
    let mut rest = out;
    let mut kept = Vec::with_capacity(out.len());
    'outer: while !rest.is_empty() {
        for interim in CONTINUE {
            if let Some(after) = rest.strip_prefix(*interim) {
                rest = after;
                continue 'outer;
            }
        }
        // Copy one final answer: head, then `content-length` bytes of body.
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = response.parse(rest) else {
            kept.extend_from_slice(rest);
            break;
        };
        let length = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
            .unwrap_or(0);
        let length = body_len(response.code.unwrap_or(0), length, &rest[head..]);
        let end = (head + length).min(rest.len());
        let start = kept.len();
        kept.extend_from_slice(&rest[..end]);
        if let Some(at) = kept[start..start + head]
            .windows(8)
            .position(|w| w == b"\r\ndate: ")
        {
            let value = start + at + 8;
            kept[value..value + 29].fill(b'-');
        }
        rest = &rest[end..];
    }
    kept
}

/// Lets the demo's deliberate handler panic (`GET /panic`) be caught by the server, as in
/// production; any other panic still aborts the fuzzer (libfuzzer-sys's hook).
pub fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !message.contains("panics on purpose") {
                fuzzer_hook(info);
            }
        }));
    });
}

pub mod script;
pub mod session;
pub mod split;
