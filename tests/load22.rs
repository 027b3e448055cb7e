//! Round 22 (load22): the read path's wake-ups and the answers' framing over real sockets, as a
//! client splitting its requests anywhere sees them, on both stacks.
//!
//! The mio loop reads edge-triggered and, after a short read (the socket's queue drained), does
//! not read again until the next readable event; round 22 changed how an answer's framing
//! (HTTP/1.0, `connection: close`, `HEAD`) is kept on the way to the writer (one byte of
//! flags). These pin both: a request split at every byte, its rest sent right after the first
//! part (no wait: it may arrive while the server handles the first), is answered, framed as
//! its request asks, and counted once.
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use util::serve::{field, Serve};
use util::strict::StrictClient;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// Minute timeouts: a slow machine must not turn a wait into a `408`.
const SLOW_TIMEOUTS: &str = "--request-timeout-ms 60000 --idle-timeout-ms 60000";

/// Requests whose answers differ only in their framing, each with the method its answer is
/// read for and what that answer must say: (request, method, keep-alive said, closes).
const FRAMINGS: [(&str, &str, bool, bool); 4] = [
    ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET", false, false),
    (
        "GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
        "GET",
        true,
        false,
    ),
    ("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD", false, false),
    (
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET",
        false,
        true,
    ),
];

/// Two pipelined requests (a kept-alive `GET`, then each framing in turn) split at every byte:
/// the first part, then at once the rest, in two writes (`TCP_NODELAY`: two segments). Every
/// answer comes, in order, strictly framed: the HTTP/1.0 one says `keep-alive`, the `HEAD` one
/// has no body and the same length field, the `close` one closes and nothing follows; the exit
/// JSON counts each answer once and leaks nothing.
#[test]
fn requests_split_anywhere_and_sent_at_once_are_answered_as_framed_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} {SLOW_TIMEOUTS}"));
        let mut served = 0.0;
        for (second, method, keep_alive, closes) in FRAMINGS {
            let first = FRAMINGS[0].0;
            let both = format!("{first}{second}");
            for split in 1..both.len() {
                let shown = format!(
                    "{stack}, {method} keep-alive {keep_alive} closes {closes}, split at {split}"
                );
                let mut client = StrictClient::connect(serve.addr);
                client.send(&both.as_bytes()[..split]);
                client.send(&both.as_bytes()[split..]);
                let a = client.answer("GET");
                assert_eq!((a.status, a.closes()), (200, false), "{shown}");
                assert_eq!(a.text(), "hello", "{shown}");
                let b = client.answer(method);
                assert_eq!(b.status, 200, "{shown}");
                assert_eq!(b.closes(), closes, "{shown}");
                assert_eq!(
                    b.field("connection")
                        .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
                    keep_alive,
                    "{shown}: {b:?}"
                );
                assert_eq!(b.field("content-length"), Some("5"), "{shown}");
                let body: &[u8] = if method == "HEAD" { b"" } else { b"hello" };
                assert_eq!(b.body, body, "{shown}");
                served += 2.0;
                if closes {
                    client.expect_nothing_more(true, std::time::Duration::ZERO);
                }
            }
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "served"), served, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 0.0, "{stack}: {json}");
    }
}
