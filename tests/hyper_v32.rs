//! hyper32, round 32: the hyper adapter's leftovers where it differed from the mio server,
//! through `reqguard-demo serve` over real sockets, on both stacks where they should agree.
//! Answers are read by the strict client (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::time::Duration;

use util::serve::{field, outcome, Serve};
use util::strict::{read_all_for, StrictClient};

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// Item (c). With `--half-close`, the answer to a request in its handler when the client shut
/// its write side says `connection: close` on both stacks (RFC 9112 section 9.6: the server
/// closes after it), then the connection closes cleanly. Before, hyper's said nothing (hyper,
/// with its own `half_close` on, never read the end of input while the request was out), and
/// closed after it all the same. Also with a body whole before the end of input (`POST /echo`).
#[test]
fn with_half_close_the_answer_to_a_half_closed_client_says_close_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} --half-close"));
        for request in [
            &b"GET /delay?ms=300 HTTP/1.1\r\nhost: x\r\n\r\n"[..],
            b"GET /delay?ms=300 HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello",
        ] {
            let mut client = StrictClient::connect(serve.addr);
            client.send(request);
            client.send_fin();
            let answer = client.answer("GET");
            assert_eq!(
                (answer.status, answer.text(), answer.closes()),
                (200, "delayed 300 ms", true),
                "{stack}: {answer:?}"
            );
            client.expect_nothing_more(true, Duration::ZERO);
        }
        serve.term_clean(stack);
    }
}

/// `requests` pipelined `GET /` behind a `GET /delay?ms=300`, sent in one go with the client's
/// FIN behind them, the answers read once all is sent: every answer that came, in order, up to
/// the server's close.
fn pipelined_then_fin(serve: &Serve, requests: usize) -> Vec<(u16, bool)> {
    let mut all = b"GET /delay?ms=300 HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
    for _ in 0..requests {
        all.extend_from_slice(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    }
    let sent = util::send_all_then_fin(serve.addr, all);
    read_all_for(&sent, "GET")
        .iter()
        .map(|answer| (answer.status, answer.closes()))
        .collect()
}

/// Item (d), hyper's side. With `--half-close`, requests pipelined behind one in its handler,
/// received before the client's FIN and not yet read by hyper (its buffer and the socket hold
/// them: hyper reads one request at a time), are all served in order at the FIN, the last
/// answer with `connection: close` (item c); the exit JSON counts each `served`, *completed*.
/// 400 of them are more than hyper's 64 KiB buffer holds at once. (The mio loops parse at most
/// `max_pipeline`, 32, ahead and drop the rest at the end of input: docs/server.md, limits
/// table, `half_close`; not changed here.)
#[test]
fn with_half_close_pipelined_requests_before_the_fin_are_all_served_in_order_on_hyper() {
    let serve = Serve::start("", "--stack hyper --half-close");
    for requests in [3, 400, 3000] {
        let answers = pipelined_then_fin(&serve, requests);
        let mut want = vec![(200, false); requests + 1];
        want[requests] = (200, true);
        assert_eq!(answers.len(), want.len(), "{requests} pipelined");
        assert_eq!(answers, want, "{requests} pipelined");
    }
    let json = serve.term_clean("hyper");
    assert_eq!(field(&json, "served"), 3406.0, "{json}");
    assert_eq!(outcome(&json, "completed"), 3406.0, "{json}");
}

/// Item (a). A client that waits for `100 Continue`, then sends a chunked body whose chunk size
/// takes it past `max_body` (and waits): `413` + close at the size line on both stacks, counted
/// `rejected` (never `served`), the connection closed cleanly after it. Before, hyper's routes
/// waited for the chunk's data (hyper hands a route data only): `408` at the body timeout,
/// here 30 s, past the client's 10 s read timeout. On every route that reads a body (`/echo`,
/// and `GET /`, `/delay`, `/panic`, which read and drop it), for one chunk past the limit and
/// for a second chunk that takes the body past it.
#[test]
fn a_chunk_size_past_max_body_after_100_continue_is_413_at_once_on_both_stacks() {
    let bodies: [&[u8]; 2] = [b"7d0\r\nabc", b"200\r\n"];
    for stack in STACKS {
        let serve = Serve::start(
            "",
            &format!("{stack} --max-body 1000 --request-timeout-ms 30000"),
        );
        let mut refused = 0.0;
        for (method, path) in [
            ("POST", "/echo"),
            ("GET", "/"),
            ("GET", "/delay?ms=10"),
            ("GET", "/panic"),
        ] {
            for body in bodies {
                let mut client = StrictClient::connect(serve.addr);
                client.send(
                    format!(
                        "{method} {path} HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n\
                         transfer-encoding: chunked\r\n\r\n"
                    )
                    .as_bytes(),
                );
                let go_on = client.answer(method);
                assert_eq!(go_on.status, 100, "{stack} {method} {path}");
                if body == b"200\r\n" {
                    // 512 bytes within the limit, then 768 more past it.
                    client.send(&[&b"200\r\n"[..], &[b'a'; 512], b"\r\n300\r\nabc"].concat());
                } else {
                    client.send(body);
                }
                let answer = client.answer(method);
                assert_eq!(
                    (answer.status, answer.closes()),
                    (413, true),
                    "{stack} {method} {path}: {answer:?}"
                );
                client.expect_nothing_more(true, Duration::ZERO);
                refused += 1.0;
            }
        }
        let json = serve.term_clean(stack);
        assert_eq!(
            (field(&json, "rejected"), field(&json, "served")),
            (refused, 0.0),
            "{stack}: {json}"
        );
    }
}
