//! qa-client20, round 20: the stack differences round 19 left (docs/server.md "Not done"), as
//! a hostile client sees them through `reqguard-demo serve` (the process a user runs). Answers
//! are read by the strict client (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::time::Duration;

use util::serve::{field, Serve};
use util::strict::StrictClient;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// How long a test waits to see that nothing more comes on a connection.
const QUIET: Duration = Duration::from_millis(200);

/// Timeouts far past the client's read timeout (`util::READ_TIMEOUT`, 10 s): an answer that
/// waits for one is never read.
const SLOW_TIMEOUTS: &str = "--request-timeout-ms 60000 --idle-timeout-ms 60000";

/// QA client20-1. A request head that grows past `max_head` (8 KiB) without ending is refused
/// as soon as it is, on both stacks, as the mio loops refuse it: `431` when the request line
/// has ended, `414` when the target has not, `501` when the method has not (to a `HEAD`, the
/// explanation's length alone), each with close and counted `rejected`, on a new connection
/// or after an answer. Before, hyper waited for the head's end until its header timeout (here
/// a minute: the client's read timed out) or its 64 KiB buffer was full.
#[test]
fn a_head_past_max_head_is_refused_at_once_on_both_stacks() {
    let cases = util::heads_past_max_head();
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} {SLOW_TIMEOUTS}"));
        let mut rejected = 0.0;
        for (head, method, status, text) in &cases {
            for after_an_answer in [false, true] {
                let shown = format!("{stack}, {status}, after an answer {after_an_answer}");
                let mut client = StrictClient::connect(serve.addr);
                if after_an_answer {
                    client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
                    let first = client.answer("GET");
                    assert_eq!((first.status, first.closes()), (200, false), "{shown}");
                }
                // In two parts: the head is past the limit only with the second.
                let (first, second) = head.as_bytes().split_at(4000);
                client.send(first);
                std::thread::sleep(Duration::from_millis(50));
                client.send(second);
                let refused = client.answer(method);
                assert_eq!(
                    (refused.status, refused.text(), refused.closes()),
                    (*status, *text, true),
                    "{shown}: {refused:?}"
                );
                client.expect_nothing_more(true, QUIET);
                rejected += 1.0;
            }
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), rejected, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 4.0, "{stack}: {json}");
    }
}

/// QA client20-1, what must not be refused: many small requests pipelined in one write (more
/// than `max_head` bytes read before hyper parses the first), health probes (answered without
/// admission) pipelined in pieces past `max_head`, the next one's head in parts after them,
/// and an upload past `max_head` followed by a head in parts, are all served on both stacks,
/// the connection kept. (A first version of the fix counted from the last request's end
/// alone, and ended hyper's reads as it answered the last probe, which the client never got.)
#[test]
fn pipelined_heads_and_uploads_past_max_head_are_served_on_both_stacks() {
    let get =
        "GET / HTTP/1.1\r\nhost: x\r\nx-pad: 0123456789012345678901234567890123456789\r\n\r\n";
    let pipelined = get.repeat(200);
    let body = "b".repeat(20_000);
    let upload = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} {SLOW_TIMEOUTS}"));
        let mut client = StrictClient::connect(serve.addr);
        client.send(pipelined.as_bytes());
        client.send(&get.as_bytes()[..20]);
        for _ in 0..200 {
            let answer = client.answer("GET");
            assert_eq!((answer.status, answer.text()), (200, "hello"), "{stack}");
        }
        std::thread::sleep(Duration::from_millis(50));
        client.send(&get.as_bytes()[20..]);
        let answer = client.answer("GET");
        assert_eq!((answer.status, answer.closes()), (200, false), "{stack}");

        // Health probes are answered without admission: more than `max_head` of them in one
        // write, nothing behind the last, so that hyper waits on the socket as it answers it.
        let probe = "GET /healthz/live HTTP/1.1\r\nhost: x\r\nx-pad: 01234567890123456789\r\n\r\n";
        client.send(probe.repeat(200).as_bytes());
        std::thread::sleep(Duration::from_millis(50));
        client.send(&get.as_bytes()[..20]);
        for _ in 0..200 {
            let answer = client.answer("GET");
            assert_eq!((answer.status, answer.closes()), (200, false), "{stack}");
        }
        std::thread::sleep(Duration::from_millis(50));
        client.send(&get.as_bytes()[20..]);
        let answer = client.answer("GET");
        assert_eq!((answer.status, answer.closes()), (200, false), "{stack}");

        client.send(upload.as_bytes());
        let echoed = client.answer("POST");
        assert_eq!(
            (echoed.status, echoed.text()),
            (200, body.as_str()),
            "{stack}"
        );
        client.send(&get.as_bytes()[..20]);
        std::thread::sleep(Duration::from_millis(50));
        client.send(&get.as_bytes()[20..]);
        let answer = client.answer("GET");
        assert_eq!((answer.status, answer.closes()), (200, false), "{stack}");
        client.expect_nothing_more(false, QUIET);

        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 204.0, "{stack}: {json}");
    }
}
