//! qa-client17, round 17: both stacks as a hostile client sees them, through `reqguard-demo
//! serve` (the process a user runs). Answers are read by the strict client
//! (tests/util/strict.rs). A test of a difference not fixed yet runs on the stack that is
//! right and is `#[ignore]`d on the other, with the reason (docs/server.md, "Not done").
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::time::Duration;

use util::serve::{field, Serve};
use util::strict::StrictClient;

/// How long a kept-alive connection is watched for stray bytes after its last answer.
const QUIET: Duration = Duration::from_millis(50);

/// Sends `request` on a new connection and reads its one answer: (status, body, closes).
fn one_answer(serve: &Serve, request: &[u8], method: &str) -> (u16, String, bool) {
    let mut client = StrictClient::connect(serve.addr);
    client.send(request);
    let answer = client.answer(method);
    let closes = answer.closes();
    client.expect_nothing_more(closes, QUIET);
    (answer.status, answer.text().to_owned(), closes)
}

/// A health probe sent with a body is answered for its body, as every other request is
/// (docs/server.md: "A request whose body fails is answered for its body, whatever its
/// route"): the mio loop reads the body whole before it answers, so a chunked body that breaks
/// its framing gets `400` + close and one declared past `max_body` `413` + close (`GET` and
/// `POST` alike: the body fails before the method's `405`), both counted `rejected`; a whole
/// body is read and dropped, the probe answered `200`, and the connection serves the request
/// pipelined behind it.
fn a_probe_with_a_body_is_answered_for_its_body(stack: &str) {
    let broken =
        b"GET /healthz/live HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
    let too_large = b"GET /healthz/ready HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\nabc";
    let post_broken =
        b"POST /healthz/live HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
    let post_too_large =
        b"POST /healthz/ready HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\nabc";
    let whole = b"GET /healthz/ready HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
                  3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n";
    let serve = Serve::start("", stack);
    let failing: [(&[u8], &str, u16, &str); 4] = [
        (broken, "GET", 400, "Bad Request"),
        (too_large, "GET", 413, "Content Too Large"),
        (post_broken, "POST", 400, "Bad Request"),
        (post_too_large, "POST", 413, "Content Too Large"),
    ];
    for (request, method, status, text) in failing {
        let shown = String::from_utf8_lossy(request);
        let answer = one_answer(&serve, request, method);
        assert_eq!(answer, (status, text.into(), true), "{stack}: {shown:?}");
    }
    let mut client = StrictClient::connect(serve.addr);
    client.send(whole);
    let probe = client.answer("GET");
    assert_eq!(
        (probe.status, probe.text(), probe.closes()),
        (200, "ready", false),
        "{stack}: {probe:?}"
    );
    let next = client.answer("GET");
    assert_eq!(
        (next.status, next.text(), next.closes()),
        (200, "hello", false),
        "{stack}: {next:?}"
    );
    client.expect_nothing_more(false, QUIET);
    drop(client);
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "{stack}: {json}");
    assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    assert_eq!(field(&json, "rejected"), 4.0, "{stack}: {json}");
}

#[test]
fn a_probe_with_a_body_is_answered_for_its_body_on_mio() {
    a_probe_with_a_body_is_answered_for_its_body("--stack mio");
}

/// On hyper the adapter reads the probe's body within `Options::probe_max_body` and
/// `probe_body_timeout` (the demo's `--max-body`, `--request-timeout-ms`). Before (QA
/// client17-1), it answered the probe from its head and never read the body: `200` + close to
/// the broken and the too large body, `405` + close to the `POST`s, and `200` + close to the
/// whole chunked body (the request behind it lost).
#[test]
fn a_probe_with_a_body_is_answered_for_its_body_on_hyper() {
    a_probe_with_a_body_is_answered_for_its_body("--stack hyper");
}

/// A probe whose body is read whole is answered as one without a body, on both stacks:
/// `OPTIONS` `204` with `allow`, `HEAD` the `GET`'s head, `POST` `405` with `allow`, each
/// with the connection kept for the request pipelined behind it; a body slower than the
/// request timeout gets `408` + close, counted `rejected` (hyper: `Options::probe_body_timeout`,
/// the demo's `--request-timeout-ms`; before QA client17-1's fix, hyper answered every probe
/// here from its head and closed the connection).
fn a_probe_reads_its_body_whatever_its_method(stack: &str) {
    let serve = Serve::start("", &format!("{stack} --request-timeout-ms 300"));
    let mut client = StrictClient::connect(serve.addr);
    client.send(
        b"OPTIONS /healthz/live HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc\
          HEAD /healthz/ready HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
          1\r\na\r\n0\r\n\r\n\
          POST /healthz/live HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nab\
          GET / HTTP/1.1\r\nhost: x\r\n\r\n",
    );
    let options = client.answer("OPTIONS");
    assert_eq!(
        (options.status, options.closes()),
        (204, false),
        "{stack}: {options:?}"
    );
    assert_eq!(
        options.field("allow"),
        Some("GET, HEAD"),
        "{stack}: {options:?}"
    );
    let head = client.answer("HEAD");
    assert_eq!(
        (head.status, head.closes()),
        (200, false),
        "{stack}: {head:?}"
    );
    let post = client.answer("POST");
    assert_eq!(
        (post.status, post.text(), post.closes()),
        (405, "Method Not Allowed", false),
        "{stack}: {post:?}"
    );
    let next = client.answer("GET");
    assert_eq!(
        (next.status, next.text()),
        (200, "hello"),
        "{stack}: {next:?}"
    );
    client.expect_nothing_more(false, QUIET);
    drop(client);
    // Three of ten bytes, then nothing: the request timeout's `408`.
    let slow = b"GET /healthz/live HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc";
    let answer = one_answer(&serve, slow, "GET");
    assert_eq!(answer, (408, "Request Timeout".into(), true), "{stack}");
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "{stack}: {json}");
    assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    assert_eq!(field(&json, "rejected"), 1.0, "{stack}: {json}");
}

#[test]
fn a_probe_reads_its_body_whatever_its_method_on_mio() {
    a_probe_reads_its_body_whatever_its_method("--stack mio");
}

#[test]
fn a_probe_reads_its_body_whatever_its_method_on_hyper() {
    a_probe_reads_its_body_whatever_its_method("--stack hyper");
}
