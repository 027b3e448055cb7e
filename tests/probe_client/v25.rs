//! qa-client25, round 25: what a hostile client sees through `reqguard-demo serve` (the process
//! a user runs) beyond rounds 8 to 24. Answers are read by the strict client
//! (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::time::Duration;

use util::serve::{close_steps_answered, each_gets_the_deadlines_503, field, Serve};
use util::strict::connect_each;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// A request whose body is still coming, one for each way a demo route or a health probe waits
/// for a body: its method, and its head with part of its body (or none).
const BODIES_COMING: [(&str, &[u8]); 8] = [
    (
        "POST",
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabcde",
    ),
    (
        "POST",
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n",
    ),
    (
        "POST",
        b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 10\r\n\r\n",
    ),
    (
        "GET",
        b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc",
    ),
    (
        "GET",
        b"GET /delay?ms=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc",
    ),
    (
        "GET",
        b"GET /panic HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc",
    ),
    (
        "DELETE",
        b"DELETE /nope HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n",
    ),
    (
        "POST",
        b"POST /healthz/live HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc",
    ),
];

/// QA client25-1. A request whose body is still coming at the drain deadline gets the
/// deadline's `503` + `connection: close` there, then a clean FIN, on both stacks: the rule
/// the docs give (a request not whole when the deadline is taken gets the deadline's `503`),
/// as the mio loops answer it. On hyper, which admits a request at its head, the demo route
/// waiting for the body went on waiting through the deadline's abort of its signal, and the
/// force step (here 6 s later) closed the connection without a word (the request counted
/// *deadline aborted*); a `100 Continue` sent before made that a broken promise (RFC 9110
/// §10.1.1: a final status must follow). So was a health probe's (answered without admission:
/// no signal to abort).
#[test]
fn a_request_whose_body_is_still_coming_at_the_drain_deadline_gets_its_503_on_both_stacks() {
    for stack in STACKS {
        // The request timeout out of the way (10 s by default: a loaded machine spent it on
        // the reads awaited before the stop, and the bodies were answered 408, not the
        // deadline's 503).
        let flags = format!(
            "--drain-timeout-ms 500 --force-after-ms 6000 --request-timeout-ms 60000 \
             --idle-timeout-ms 60000 {stack}"
        );
        let mut serve = Serve::start("", &flags);
        let mut clients = connect_each(serve.addr, &BODIES_COMING);
        // Every head read and its route waiting for the body: all each client sent read by the
        // server (another process: util::wait_read_by_server).
        for (_, client) in &mut clients {
            util::wait_read_by_server(client.reader_mut().get_ref());
        }
        // At the deadline (500 ms), long before the force step (6.5 s).
        each_gets_the_deadlines_503(&serve, &mut clients, Duration::from_millis(4000), stack);
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 0.0, "{stack}: {json}");
        // Each `503` counted once, as each stack counts such a request (docs/hyper.md, QA
        // client25-1): on mio none is admitted (a request is, once its body is whole) and all
        // are in the close step's `answered`; on hyper a route's request, admitted at its head,
        // ends *deadline aborted* and its `503` is `served` (answered after the deadline's
        // abort), and a health probe's (no request admitted) is in the last step's `answered`.
        let all = BODIES_COMING.len() as f64;
        let probes = BODIES_COMING
            .iter()
            .filter(|(_, bytes)| bytes.windows(9).any(|w| w == b" /healthz"))
            .count() as f64;
        let (served, answered) = (field(&json, "served"), close_steps_answered(&json));
        if stack == "--stack hyper" {
            assert_eq!(
                (served, answered),
                (all - probes, probes),
                "{stack}: {json}"
            );
            assert_eq!(
                field(&json, "answered_after_abort"),
                served,
                "{stack}: {json}"
            );
            assert_eq!(field(&json, "deadline_aborted"), served, "{stack}: {json}");
        } else {
            assert_eq!((served, answered), (0.0, all), "{stack}: {json}");
        }
    }
}
