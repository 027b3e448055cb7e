//! review21, round 21: the hyper adapter's count of head bytes against `max_head` (QA
//! client21-1, -2 and its follow-up: the client's FIN after a head, a request body's end
//! beginning or crediting the count) as a hostile client sees it through `reqguard-demo serve`.
//! Pins: each passes on both stacks; none found a defect.
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::time::Duration;

use util::serve::{field, Serve};
use util::strict::StrictClient;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// Timeouts far past the client's read timeout (`util::READ_TIMEOUT`, 10 s): an answer that
/// waits for one is never read.
const SLOW_TIMEOUTS: &str = "--request-timeout-ms 60000 --idle-timeout-ms 60000";

/// Many requests pipelined in one write, past `max_head` together, then the client's FIN (the
/// count against `max_head` holds them all when the end of input comes): every one is
/// answered, and what follows them gets what it earned: a head past `max_head` its `431` +
/// close, an unfinished head a clean close; the counts are what the client read.
#[test]
fn requests_past_max_head_together_then_the_fin_are_all_answered_on_both_stacks() {
    let probe = "GET /healthz/live HTTP/1.1\r\nhost: x\r\nx-pad: 01234567890123456789\r\n\r\n";
    let get = "GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    let long = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-long: {}\r\n\r\n",
        "a".repeat(9000)
    );
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} {SLOW_TIMEOUTS}"));
        let (mut served, mut rejected) = (0.0, 0.0);
        for (what, n, tail) in [
            (probe, 300, ""),
            (get, 400, ""),
            (probe, 300, long.as_str()),
            (get, 400, long.as_str()),
            (get, 400, "GET /x HTTP/1.1\r\nho"),
        ] {
            let shown = format!("{stack}, {n} x {what:.20} then {tail:.20}");
            let mut client = StrictClient::connect(serve.addr);
            client.send(format!("{}{tail}", what.repeat(n)).as_bytes());
            client.send_fin();
            for i in 0..n {
                let answer = client.answer("GET");
                assert_eq!(
                    (answer.status, answer.closes()),
                    (200, false),
                    "{shown}: {i}"
                );
            }
            if what == get {
                served += n as f64; // the probes are answered before admission
            }
            if tail == long {
                let refused = client.answer("GET");
                assert_eq!((refused.status, refused.closes()), (431, true), "{shown}");
                rejected += 1.0;
            }
            client.expect_nothing_more(true, Duration::ZERO);
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "served"), served, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), rejected, "{stack}: {json}");
    }
}

/// An upload whose body is past `max_head` and ends in bytes that read as a request, sent in
/// two writes (with a length, and chunked), then a request, with and without the client's FIN
/// behind it: the body is read whole by `/echo` and never parsed as a request, on both stacks
/// (the count against `max_head` must not take a body for a head, review20's smuggling case).
#[test]
fn a_body_that_reads_as_a_request_is_never_answered_as_one_on_both_stacks() {
    let smuggled = "GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n";
    let filler = "z".repeat(20_000);
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} {SLOW_TIMEOUTS}"));
        for chunked in [false, true] {
            for fin in [false, true] {
                let shown = format!("{stack}, chunked {chunked}, FIN {fin}");
                let mut client = StrictClient::connect(serve.addr);
                let (first, second) = if chunked {
                    (
                        format!(
                            "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
                             {:x}\r\n{filler}\r\n",
                            filler.len()
                        ),
                        format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len()),
                    )
                } else {
                    (
                        format!(
                            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{filler}",
                            filler.len() + smuggled.len()
                        ),
                        smuggled.to_owned(),
                    )
                };
                client.send(first.as_bytes());
                // Apart, so that the server reads the body's end on its own: the first part read
                // (the server's socket empty) before the second is sent.
                util::wait_read_by_server(client.reader_mut().get_ref());
                client.send(second.as_bytes());
                let echoed = client.answer("POST");
                assert_eq!(
                    (echoed.status, echoed.body.len()),
                    (200, filler.len() + smuggled.len()),
                    "{shown}"
                );
                client.send(b"GET /after HTTP/1.1\r\nhost: x\r\n\r\n");
                if fin {
                    client.send_fin();
                }
                let after = client.answer("GET");
                assert_eq!(after.status, 404, "{shown}: {after:?}");
                client.expect_nothing_more(fin, Duration::from_millis(200));
            }
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 8.0, "{stack}: {json}");
    }
}

/// Chunked uploads whose framing alone (4,000 one-byte chunks: 20 KB the count does not give
/// back at the body's end) is past `max_head`, the next head begun in the same write and
/// trickled in over three writes, then a request: each answered in order, the connection
/// kept, three rounds on one connection, on both stacks (an over-count only makes hyper's
/// own buffer judged: within the limit, it goes back to hyper).
#[test]
fn chunked_framing_past_max_head_then_a_trickled_head_is_served_on_both_stacks() {
    let mut upload =
        String::from("POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n");
    for i in 0..4000u32 {
        upload.push_str(&format!("1\r\n{}\r\n", char::from(b'a' + (i % 26) as u8)));
    }
    upload.push_str("0\r\n\r\nGET /a");
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} {SLOW_TIMEOUTS}"));
        let mut client = StrictClient::connect(serve.addr);
        for round in 0..3 {
            let shown = format!("{stack}, round {round}");
            client.send(upload.as_bytes());
            let echoed = client.answer("POST");
            assert_eq!((echoed.status, echoed.body.len()), (200, 4000), "{shown}");
            // Each part of the trickled head read (the server's socket empty) before the next.
            util::wait_read_by_server(client.reader_mut().get_ref());
            client.send(b"bc HTTP/1.1\r\nhost");
            util::wait_read_by_server(client.reader_mut().get_ref());
            client.send(b": x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n");
            assert_eq!(client.answer("GET").status, 404, "{shown}");
            let last = client.answer("GET");
            assert_eq!((last.status, last.closes()), (200, false), "{shown}");
        }
        client.expect_nothing_more(false, Duration::from_millis(200));
        drop(client);
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 9.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 0.0, "{stack}: {json}");
    }
}
