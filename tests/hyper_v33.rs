//! hypercost33, round 33: the hyper adapter's answers-close flag, one per connection (set on
//! every open connection when the server turns unready, at the register of one accepted
//! later, and at a client's half-close), through `reqguard-demo serve` over real sockets, on
//! both stacks. Answers are read by the strict client (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::time::Duration;

use util::serve::{field, send_signal, Serve};
use util::strict::StrictClient;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// A connection kept alive from before the stop: once the unready step has begun, the
/// handler's answer to its next request says `connection: close` and the connection closes,
/// as a connection's accepted during the step does. On hyper the answer asks its
/// connection's flag, which the step sets on every connection open at that moment (before
/// round 33 it asked the server's tally itself; this pins the flag's setting on the
/// connections already open).
#[test]
fn a_connection_open_before_the_unready_step_gets_a_closing_answer_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} --unready-ms 60000"));
        let mut kept = StrictClient::connect(serve.addr);
        kept.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        let first = kept.answer("GET");
        assert_eq!(
            (first.status, first.text(), first.closes()),
            (200, "hello", false),
            "{stack}: {first:?}"
        );
        // The connection is accepted and served: the stop begins with it open and idle.
        send_signal(serve.child.id(), "TERM");
        util::wait_until("the unready step (readiness 503)", || {
            matches!(util::try_get(serve.addr, "/healthz/ready"), Ok((503, _)))
        });
        // A connection accepted during the step: its answer closes.
        let mut late = StrictClient::connect(serve.addr);
        late.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        let answer = late.answer("GET");
        assert_eq!(
            (answer.status, answer.text(), answer.closes()),
            (200, "hello", true),
            "{stack}: late {answer:?}"
        );
        late.expect_nothing_more(true, Duration::ZERO);
        // The connection open before the step: its answer closes too.
        kept.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        let answer = kept.answer("GET");
        assert_eq!(
            (answer.status, answer.text(), answer.closes()),
            (200, "hello", true),
            "{stack}: kept {answer:?}"
        );
        kept.expect_nothing_more(true, Duration::ZERO);
        let (json, _) = serve.signal_and_wait("TERM");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}
