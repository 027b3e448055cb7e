//! qa-client12, round 12: both stacks as a hostile client sees them, through `reqguard-demo
//! serve` (the process a user runs). Each test fails on the main it was written against and
//! passes after its fix; answers are read by the strict client (tests/util/strict.rs: status
//! line, field syntax, one `content-length`, one IMF-fixdate `date`, exact body, nothing after
//! `connection: close` but a clean FIN). The battery the tests came from is in
//! benches/load/qa12_*.py.
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::time::Duration;

use util::serve::{field, Serve};
use util::strict::StrictClient;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// RFC 9112 §7.1.2, §2.2: a trailer field line ends with CRLF; a bare LF inside the trailer
/// section (`0\r\nx: 1\n\r\n`) is a framing error. A recipient that ends the section there (a
/// proxy that takes LF for a line end, as §2.2 lets it) forwards what follows as the next
/// request. hyper's chunked decoder reads the section up to the next CRLF CRLF instead, and
/// httparse then takes the LF for the section's end: the request pipelined behind (here a
/// `GET /`) was swallowed as trailer bytes, the `POST` answered `200` with keep-alive, and the
/// `GET` never (its client waits; a proxy in front would pair the next client's answer with
/// it: a response-queue desync). Plain hyper (benches/plain_hyper_echo.rs) does the same. The
/// mio stack answers `400` + close. hyper reports only the fields before the LF, so nothing
/// in its trailers tells the two apart; the demo routes now end the connection after any
/// request with a trailer section (`connection: close`), so nothing after a trailer section
/// is read as a request or silently eaten on a connection that stays open.
#[test]
fn a_bare_lf_inside_a_trailer_section_swallows_no_request_on_either_stack() {
    for stack in STACKS {
        let serve = Serve::start("", stack);
        // `/echo` collects the body; `/` and `/nope` drain it before answering.
        for (method, target) in [("POST", "/echo"), ("GET", "/"), ("POST", "/nope")] {
            for trailers in ["x: 1\n\r\n", "x: 1\r\ny: 2\n\r\n", "x: 1\n\n\r\n"] {
                let mut client = StrictClient::connect(serve.addr);
                client.send(
                    format!(
                        "{method} {target} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
                         3\r\nabc\r\n0\r\n{trailers}GET / HTTP/1.1\r\nhost: x\r\n\r\n"
                    )
                    .as_bytes(),
                );
                let answer = client.answer(method);
                let case = format!("{stack} {method} {target} {trailers:?}: {answer:?}");
                assert!([200, 400, 404].contains(&answer.status), "{case}: status");
                // Whatever its status, the answer ends the connection: no request is read
                // out of the trailer section, none is eaten on a connection kept open.
                assert!(answer.closes(), "{case}: the connection must close");
                client.expect_nothing_more(true, Duration::ZERO);
            }
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}
