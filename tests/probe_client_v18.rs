//! qa-client18, round 18: both stacks as a hostile client sees them, through `reqguard-demo
//! serve` (the process a user runs). Answers are read by the strict client
//! (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use util::serve::{field, Serve};
use util::strict::{expect_clean_eof, StrictClient};

/// A request head still incomplete when its time runs out gets `408` + close, with the mio
/// router's explanation, counted `rejected`, on a new connection and on one kept alive after
/// an answer alike; a connection with nothing of a head (never used, or idle after its
/// answer) is closed without a word (RFC 9110 §15.5.9; RFC 9112 §9.5 lets a server close an
/// idle connection, and a `408` there would be read as the answer to a request racing the
/// close). The mio loop answers at `request_timeout`, the hyper adapter at hyper's header read
/// timeout (`Options::idle_timeout`; the demo runs both at the shorter). Before (QA client16,
/// docs/server.md "Not done"), hyper closed a slow head without an answer: an EOF.
fn a_slow_head_gets_408_and_an_idle_connection_an_eof(stack: &str) {
    let serve = Serve::start(
        "",
        &format!("{stack} --idle-timeout-ms 300 --request-timeout-ms 300"),
    );
    let mut fresh = StrictClient::connect(serve.addr);
    fresh.send(b"GET / HTTP/1.1\r\nhost: x\r\n");
    let mut kept = StrictClient::connect(serve.addr);
    kept.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    let first = kept.answer("GET");
    assert_eq!((first.status, first.closes()), (200, false), "{stack}: {first:?}");
    kept.send(b"GET /del");
    let mut silent = StrictClient::connect(serve.addr);
    let mut idle = StrictClient::connect(serve.addr);
    idle.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    let answered = idle.answer("GET");
    assert_eq!(answered.status, 200, "{stack}: {answered:?}");
    for (name, client) in [("fresh", &mut fresh), ("kept", &mut kept)] {
        let late = client.answer("GET");
        assert_eq!(
            (late.status, late.text(), late.closes()),
            (408, "Request Timeout", true),
            "{stack}, {name}: {late:?}"
        );
        assert_eq!(late.field("content-type"), Some("text/plain"), "{stack}: {late:?}");
        client.expect_nothing_more(true, std::time::Duration::ZERO);
    }
    for (name, client) in [("silent", &mut silent), ("idle", &mut idle)] {
        expect_clean_eof(client.reader_mut()).unwrap_or_else(|e| panic!("{stack}, {name}: {e}"));
    }
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "{stack}: {json}");
    assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    assert_eq!(field(&json, "rejected"), 2.0, "{stack}: {json}");
    assert_eq!(field(&json, "served"), 2.0, "{stack}: {json}");
}

#[test]
fn a_slow_head_gets_408_and_an_idle_connection_an_eof_on_mio() {
    a_slow_head_gets_408_and_an_idle_connection_an_eof("--stack mio");
}

#[test]
fn a_slow_head_gets_408_and_an_idle_connection_an_eof_on_hyper() {
    a_slow_head_gets_408_and_an_idle_connection_an_eof("--stack hyper");
}
