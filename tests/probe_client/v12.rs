//! qa-client12, round 12: both stacks as a hostile client sees them, through `reqguard-demo
//! serve` (the process a user runs). Each test fails on the main it was written against and
//! passes after its fix; answers are read by the strict client (tests/util/strict.rs: status
//! line, field syntax, one `content-length`, one IMF-fixdate `date`, exact body, nothing after
//! `connection: close` but a clean FIN). The battery the tests came from is in
//! benches/load/qa12_*.py.
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

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

/// RFC 9112 §9.3, §9.6: an answer that ends its connection says `connection: close`; to an
/// HTTP/1.0 client that asked for `keep-alive` it must not also say `keep-alive`. On hyper
/// every closing answer to such a request said `connection: close, keep-alive`: the adapter's
/// (or a route's) `close` plus the `keep-alive` hyper appends for an HTTP/1.0 peer that asked
/// for it (its `fix_keep_alive` looks for `keep-alive` only), then the connection closed.
/// A strict parser takes `close` (it wins), but clients that look for `keep-alive` do not:
/// `ab -k` (HTTP/1.0, `Connection: Keep-Alive`) against `serve --stack hyper --unready-ms`
/// after SIGTERM counted 1,004 of 2,000 requests failed (each reuse of a closed connection),
/// 0 on mio. The adapter now hands hyper such an answer as HTTP/1.0 (which hyper writes for an
/// HTTP/1.0 peer anyway), and hyper then closes without adding `keep-alive`.
#[test]
fn a_closing_answer_to_an_http_1_0_keep_alive_request_says_close_alone_on_both_stacks() {
    fn connection_tokens(answer: &util::strict::Strict) -> Vec<String> {
        answer
            .fields
            .iter()
            .filter(|(name, _)| name == "connection")
            .flat_map(|(_, value)| value.split(','))
            .map(|token| token.trim().to_ascii_lowercase())
            .collect()
    }
    fn ask(addr: std::net::SocketAddr, request: &str, status: u16, case: &str) {
        let mut client = StrictClient::connect(addr);
        client.send(request.as_bytes());
        let answer = client.answer("GET");
        assert_eq!(answer.status, status, "{case}: {answer:?}");
        assert_eq!(connection_tokens(&answer), ["close"], "{case}: {answer:?}");
        client.expect_nothing_more(true, Duration::ZERO);
    }
    const KEEP: &str = "connection: keep-alive\r\n";
    for stack in STACKS {
        // The unready step outlasts whatever a loaded machine takes between the readiness
        // probe and the unready `GET` (3 s before: a window the `GET` had to fit in); a
        // second signal ends it (the force step, nothing out).
        let serve = Serve::start("", &format!("{stack} --unready-ms 60000"));
        // The adapter's own refusal (two `Host` fields), a route's (a length over the limit).
        let two_hosts = format!("GET / HTTP/1.0\r\n{KEEP}host: a\r\nhost: b\r\n\r\n");
        ask(serve.addr, &two_hosts, 400, &format!("{stack} two hosts"));
        let too_long = format!("POST /echo HTTP/1.0\r\n{KEEP}content-length: 2000000\r\n\r\n");
        ask(serve.addr, &too_long, 413, &format!("{stack} 413"));
        // Unready: keep-alive is off, every answer closes.
        util::serve::send_signal(serve.child.id(), "TERM");
        // The unready step begun: its readiness probe answers `503`.
        util::wait_until("the unready step (readiness 503)", || {
            matches!(util::try_get(serve.addr, "/healthz/ready"), Ok((503, _)))
        });
        let get = format!("GET / HTTP/1.0\r\n{KEEP}\r\n");
        ask(serve.addr, &get, 200, &format!("{stack} unready GET"));
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
    }
}
