//! qa-client16, round 16: both stacks as a hostile client sees them, through `reqguard-demo
//! serve` (the process a user runs). Each test fails on the main it was written against and
//! passes after its fix; answers are read by the strict client (tests/util/strict.rs: status
//! line, field syntax, one `content-length`, one IMF-fixdate `date`, exact body, nothing after
//! `connection: close` but a clean FIN). The battery the tests came from is in
//! benches/load/qa16_*.py.
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::time::{Duration, Instant};

use util::serve::{field, Serve};
use util::strict::StrictClient;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// How long a kept-alive connection is watched for stray bytes after its last answer.
const QUIET: Duration = Duration::from_millis(50);

/// Sends `request` on a new connection and reads its one answer: (status, body, closes).
fn one_answer(serve: &Serve, request: &[u8]) -> (u16, String, bool) {
    let mut client = StrictClient::connect(serve.addr);
    client.send(request);
    let answer = client.answer("GET");
    let closes = answer.closes();
    client.expect_nothing_more(closes, QUIET);
    (answer.status, answer.text().to_owned(), closes)
}

/// RFC 9112 §3.2: a server MUST answer `400` to a request whose `Host` has an invalid value,
/// and RFC 3986 §3.2.2 makes a bracketed host an IPv6 address or an IPvFuture (`v1.x`),
/// nothing else. Both stacks judge a `Host` (and an absolute-form target's authority) by one
/// rule (src/authority.rs), which took any hex digits, colons, dots and letters between the
/// brackets: `[zz]`, `[::1::2]`, `[1.2.3.4]` and `http://[zz]/` were served `200 hello` on
/// both (benches/load/qa16_conformance.py). Now `400` + close; real literals are served.
#[test]
fn a_bracketed_host_that_is_no_ip_literal_is_400_on_both_stacks() {
    let refused: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nhost: [zz]\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: [::1::2]:80\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: [1.2.3.4]\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: [vz.x]\r\n\r\n",
        b"GET http://[zz]/ HTTP/1.1\r\nhost: x\r\n\r\n",
    ];
    let served: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nhost: [::1]:8080\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: [::ffff:192.0.2.1]\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: [v1.fe80::a+en1]\r\n\r\n",
        b"GET http://[2001:db8::7]:80/ HTTP/1.1\r\nhost: [2001:db8::7]:80\r\n\r\n",
    ];
    for stack in STACKS {
        let serve = Serve::start("", stack);
        for request in refused {
            let shown = String::from_utf8_lossy(request);
            let (status, _, closes) = one_answer(&serve, request);
            assert_eq!((status, closes), (400, true), "{stack}: {shown:?}");
        }
        for request in served {
            let shown = String::from_utf8_lossy(request);
            let answer = one_answer(&serve, request);
            assert_eq!(answer, (200, "hello".into(), false), "{stack}: {shown:?}");
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(
            field(&json, "served"),
            served.len() as f64,
            "{stack}: {json}"
        );
        assert_eq!(
            field(&json, "rejected"),
            refused.len() as f64,
            "{stack}: {json}"
        );
    }
}

/// The mio server calls a handler once its request's body is whole, so `GET /panic` with a
/// body that breaks its chunked framing gets `400` + close (counted `rejected`) and one over
/// `max_body` `413` + close. hyper's `/panic` panicked before reading its body: a broken
/// body got the panic's `500` without `connection: close`, then hyper closed the connection
/// (it cannot read past the body), and a 2 MB declared body got the `500` too. Now the hyper
/// route reads and drops the body first, as the other routes that do not use it do: the same
/// answers on both stacks. A panic behind a whole body is still the `500` on a connection that
/// goes on serving.
#[test]
fn get_panic_answers_a_body_that_fails_for_its_body_on_both_stacks() {
    let broken = b"GET /panic HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
    let too_large = b"GET /panic HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\nabc";
    let whole = b"GET /panic HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
                  3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n";
    for stack in STACKS {
        let serve = Serve::start("", stack);
        let (status, body, closes) = one_answer(&serve, broken);
        assert_eq!(
            (status, body.as_str(), closes),
            (400, "Bad Request", true),
            "{stack}"
        );
        let (status, body, closes) = one_answer(&serve, too_large);
        assert_eq!(
            (status, body.as_str(), closes),
            (413, "Content Too Large", true),
            "{stack}"
        );
        let mut client = StrictClient::connect(serve.addr);
        client.send(whole);
        let panicked = client.answer("GET");
        assert_eq!(
            (panicked.status, panicked.closes()),
            (500, false),
            "{stack}: {panicked:?}"
        );
        let next = client.answer("GET");
        assert_eq!(
            (next.status, next.text(), next.closes()),
            (200, "hello", false),
            "{stack}"
        );
        client.expect_nothing_more(false, QUIET);
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 2.0, "{stack}: {json}");
        assert_eq!(field(&json, "panics"), 1.0, "{stack}: {json}");
    }
}

/// At `max_connections` a connection still reading its head is evicted for a newcomer with
/// `408` + close (docs/server.md, "Accept"; docs/hyper.md). The mio loop's `408` explains
/// itself (`Request Timeout`, `content-type: text/plain`; RFC 9110 §15.5: a server SHOULD),
/// as every other error answer of both stacks does; the hyper adapter's was empty
/// (`content-length: 0`, benches/load/qa16_onebyte.py). Now both send the same answer,
/// read strictly, and count it `rejected` once.
#[test]
fn an_evicted_heads_408_explains_itself_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} --max-connections 1"));
        let mut slow = StrictClient::connect(serve.addr);
        slow.send(b"GET / HT");
        // A head is evictable once silent for 100 ms as the server saw it; a newcomer before
        // that (a slow machine, valgrind) is refused `503` + close: try again, bounded.
        std::thread::sleep(Duration::from_millis(100));
        let by = Instant::now() + util::READ_TIMEOUT;
        loop {
            let mut newcomer = StrictClient::connect(serve.addr);
            newcomer.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let answer = newcomer.answer("GET");
            if answer.status == 200 {
                assert_eq!(answer.text(), "hello", "{stack}");
                break;
            }
            assert_eq!(
                (answer.status, answer.closes()),
                (503, true),
                "{stack}: {answer:?}"
            );
            assert!(Instant::now() < by, "{stack}: no newcomer served");
            std::thread::sleep(Duration::from_millis(20));
        }
        let evicted = slow.answer("GET");
        let shown = format!("{stack}: {evicted:?}");
        assert_eq!(
            (evicted.status, evicted.text(), evicted.closes()),
            (408, "Request Timeout", true),
            "{shown}"
        );
        assert_eq!(evicted.field("content-type"), Some("text/plain"), "{shown}");
        slow.expect_nothing_more(true, QUIET);
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 1.0, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 1.0, "{stack}: {json}");
    }
}

/// RFC 9110 §10.1.1: the `Expect` value is case-insensitive, and a server MAY answer `417` to an
/// expectation other than `100-continue`. Both stacks: `100-CONTINUE` with the body still to
/// come gets its `100`, then the answer; an unknown expectation (`foo`, or `100-continue, foo`)
/// is ignored: no `100`, the request served once its body comes, the connection kept. (A
/// guarantee found holding in round 16, benches/load/qa16_conformance.py; not a fix.)
#[test]
fn expectations_are_case_insensitive_and_unknown_ones_ignored_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", stack);
        let mut client = StrictClient::connect(serve.addr);
        client.send(
            b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-CONTINUE\r\ncontent-length: 3\r\n\r\n",
        );
        let interim = client.answer("POST");
        assert_eq!(interim.status, 100, "{stack}: {interim:?}");
        client.send(b"abc");
        let echoed = client.answer("POST");
        assert_eq!(
            (echoed.status, echoed.text(), echoed.closes()),
            (200, "abc", false),
            "{stack}"
        );
        for unknown in ["foo", "100-continue, foo"] {
            let head = format!(
                "POST /echo HTTP/1.1\r\nhost: x\r\nexpect: {unknown}\r\ncontent-length: 3\r\n\r\n"
            );
            client.send(head.as_bytes());
            // No `100` comes: the body is sent only after a quiet moment, then the answer is
            // the first thing read (a `100` before it would fail the status check).
            client.expect_nothing_more(false, QUIET);
            client.send(b"xyz");
            let answer = client.answer("POST");
            let shown = format!("{stack} {unknown:?}: {answer:?}");
            assert_eq!(
                (answer.status, answer.text(), answer.closes()),
                (200, "xyz", false),
                "{shown}"
            );
        }
        client.expect_nothing_more(false, QUIET);
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 3.0, "{stack}: {json}");
    }
}
