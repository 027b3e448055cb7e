//! qa-client28, round 28: what a hostile client sees through `reqguard-demo serve` (the process
//! a user runs) beyond rounds 8 to 27. Answers are read by the strict client
//! (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use util::serve::{field, Serve};
use util::strict::StrictClient;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// QA client28-1. A client that asked for `100 Continue` may wait for it before it sends its
/// body (RFC 9110 §10.1.1), and a request pipelined behind an answer not yet made gets its
/// `100` only once that answer is written (answers go in order: docs/server.md). The time the
/// server holds the `100` back is the server's, not the client's: the body is timed from the
/// `100`. The mio server timed it from the head's first byte, so a `GET /delay` in its
/// handler for longer than `--request-timeout-ms` made the client that waited as asked get
/// `408` + close instead of its `100` (hyper, which reads the next head only once the answer
/// before it is written, served it).
#[test]
fn a_client_waiting_for_a_withheld_100_is_not_timed_out_on_either_stack() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} --request-timeout-ms 1000"));
        let mut client = StrictClient::connect(serve.addr);
        // The delay outlasts the request timeout; the `POST`'s body waits for its `100`.
        client.send(
            b"GET /delay?ms=1600 HTTP/1.1\r\nhost: x\r\n\r\n\
              POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n",
        );
        let delayed = client.answer("GET");
        assert_eq!(
            (delayed.status, delayed.text()),
            (200, "delayed 1600 ms"),
            "{stack}: {delayed:?}"
        );
        let interim = client.answer("POST");
        assert_eq!(interim.status, 100, "{stack}: {interim:?}");
        client.send(b"abc");
        let echoed = client.answer("POST");
        assert_eq!(
            (echoed.status, echoed.text(), echoed.closes()),
            (200, "abc", false),
            "{stack}: {echoed:?}"
        );
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 2.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}
