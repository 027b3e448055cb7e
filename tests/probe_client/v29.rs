//! qa-client29, round 29: what a hostile client sees through `reqguard-demo serve` (the process
//! a user runs) beyond rounds 8 to 28. Answers are read by the strict client
//! (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::time::Duration;

use util::heads::head_of;
use util::serve::{field, Serve};
use util::strict::StrictClient;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// The default `max_head` of both stacks (`Limits::max_head`, `Options::max_head`).
const MAX_HEAD: usize = 8 * 1024;

/// QA client29-1. `max_head` is a number of bytes on both stacks (docs/server.md, "Limits";
/// `Options::with_max_head`): a head of at most that many bytes is served whatever its shape
/// (bare `LF` line ends, fields without the optional space after the colon), one byte more is
/// `431` + close. The hyper adapter does not see the head's bytes (hyper gives it parsed) and
/// estimated its length as if every line ended in `CRLF` and every field read `name: value`,
/// so it refused such heads of 8,131 to 8,192 bytes `431` where the mio server served them:
/// an `LF`-only head 4 bytes short of the limit, a `name:value` head with 61 fields 61 bytes
/// short of it. Each head is sent alone on its connection, as a client sends one request (a
/// later head of a kept-alive connection is still judged by the estimate on hyper: docs/hyper.md).
#[test]
fn a_head_within_max_head_is_served_whatever_its_line_ends_and_separators_on_both_stacks() {
    let shapes = [("\n", 0), ("\n", 60), ("\r\n", 61)];
    for stack in STACKS {
        let serve = Serve::start("", stack);
        for (eol, fields) in shapes {
            let mut client = StrictClient::connect(serve.addr);
            client.send(&head_of(MAX_HEAD, eol, fields));
            let answer = client.answer("GET");
            assert_eq!(
                (answer.status, answer.text(), answer.closes()),
                (200, "hello", false),
                "{stack}: a {MAX_HEAD}-byte head, eol {eol:?}, {fields} fields: {answer:?}"
            );
            client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
            assert_eq!(
                client.answer("GET").status,
                200,
                "{stack}: the connection serves on"
            );
            client.expect_nothing_more(false, Duration::from_millis(100));

            let mut client = StrictClient::connect(serve.addr);
            client.send(&head_of(MAX_HEAD + 1, eol, fields));
            let answer = client.answer("GET");
            assert_eq!(
                (answer.status, answer.closes()),
                (431, true),
                "{stack}: a head one byte past the limit, eol {eol:?}, {fields} fields: {answer:?}"
            );
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 6.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 3.0, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}

/// QA client29-2. A request that is malformed (`400`: RFC 9112 §3.2 for its `Host`, §3.2.3 and
/// §3.2.4 for its target's form) and also names a transfer coding the server does not decode
/// before `chunked` (`501`, RFC 9112 §6.1's SHOULD) is answered `400` on both stacks: the
/// mio server judges the head before its coding, and the hyper adapter says it checks "in the
/// mio server's order" (src/tokio_hyper/checks.rs). It answered the coding's `501` first: to
/// a request without a `Host`, with two, or with a target in a form its method does not take.
#[test]
fn a_malformed_request_with_an_unknown_coding_is_400_on_both_stacks() {
    const CODING: &str = "transfer-encoding: gzip, chunked\r\n";
    let cases = [
        (format!("POST /echo HTTP/1.1\r\n{CODING}\r\n"), 400),
        (
            format!("POST /echo HTTP/1.1\r\nhost: x\r\nhost: y\r\n{CODING}\r\n"),
            400,
        ),
        (
            format!("POST /echo HTTP/1.1\r\nhost: x y\r\n{CODING}\r\n"),
            400,
        ),
        (format!("POST * HTTP/1.1\r\nhost: x\r\n{CODING}\r\n"), 400),
        (
            format!("POST x:80 HTTP/1.1\r\nhost: x\r\n{CODING}\r\n"),
            400,
        ),
        (
            format!("POST ftp://x/ HTTP/1.1\r\nhost: x\r\n{CODING}\r\n"),
            400,
        ),
        (
            format!("CONNECT /echo HTTP/1.1\r\nhost: x\r\n{CODING}\r\n"),
            400,
        ),
        // Well-formed otherwise: the coding's `501`.
        (
            format!("POST /echo HTTP/1.1\r\nhost: x\r\n{CODING}\r\n"),
            501,
        ),
        (
            format!("POST http://x/echo HTTP/1.1\r\nhost: y\r\n{CODING}\r\n"),
            501,
        ),
    ];
    for stack in STACKS {
        let serve = Serve::start("", stack);
        for (head, status) in &cases {
            let mut client = StrictClient::connect(serve.addr);
            client.send(head.as_bytes());
            let method = head.split(' ').next().unwrap();
            let answer = client.answer(method);
            assert_eq!(
                (answer.status, answer.closes()),
                (*status, true),
                "{stack}: {head:?}: {answer:?}"
            );
            client.expect_nothing_more(true, Duration::ZERO);
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(
            field(&json, "rejected"),
            cases.len() as f64,
            "{stack}: {json}"
        );
        assert_eq!(field(&json, "served"), 0.0, "{stack}: {json}");
    }
}
