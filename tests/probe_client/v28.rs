//! qa-client28, round 28: what a hostile client sees through `reqguard-demo serve` (the process
//! a user runs) beyond rounds 8 to 27. Answers are read by the strict client
//! (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

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

/// A request that ends its connection (a `close` among its `Connection` options, in any case or
/// field, or HTTP/1.0 without `keep-alive`), then `GET /panic` pipelined behind it in the same
/// write, and the method of the first.
const CLOSING_THEN_PANIC: [(&str, &[u8]); 10] = [
    (
        "GET",
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ),
    (
        "GET",
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: Close\r\n\r\n",
    ),
    (
        "GET",
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: foo,, CLOSE\r\n\r\n",
    ),
    (
        "GET",
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\nconnection: close\r\n\r\n",
    ),
    (
        "GET",
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close, keep-alive\r\n\r\n",
    ),
    ("GET", b"GET /delay?ms=50 HTTP/1.0\r\n\r\n"),
    (
        "POST",
        b"POST /echo HTTP/1.0\r\nconnection: keep-alive, close\r\ncontent-length: 1\r\n\r\nx",
    ),
    (
        "HEAD",
        b"HEAD /delay?ms=50 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ),
    (
        "GET",
        b"GET /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ),
    (
        "OPTIONS",
        b"OPTIONS * HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ),
];

/// Pins what qa-client28 checked: RFC 9112 §9.6, a server that receives a `close` option MUST
/// NOT process any further request on that connection. The mio server parses ahead (up to
/// `max_pipeline` requests), so the `GET /panic` pipelined behind each closing request is
/// already in its input: it must be answered by nothing, its handler never called (`panics`
/// stays 0), on both stacks; the closing request's answer says `close` and a FIN follows.
#[test]
fn no_request_behind_a_closing_one_is_processed_on_either_stack() {
    for stack in STACKS {
        let serve = Serve::start("", stack);
        for (i, (method, request)) in CLOSING_THEN_PANIC.iter().enumerate() {
            let mut client = StrictClient::connect(serve.addr);
            let mut bytes = request.to_vec();
            bytes.extend_from_slice(b"GET /panic HTTP/1.1\r\nhost: x\r\n\r\n");
            client.send(&bytes);
            let answer = client.answer(method);
            // hyper answers HTTP/1.0 in HTTP/1.0, whose answers close unless they say
            // `keep-alive` (docs/hyper.md); every other answer here says `close`.
            let closes = answer.closes() || answer.version == "HTTP/1.0";
            assert!(
                closes && answer.field("connection") != Some("keep-alive"),
                "{stack}, case {i}: {answer:?}"
            );
            client.expect_nothing_more(true, std::time::Duration::ZERO);
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "panics"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}

/// Targets around each demo route and health probe path: the paths, one byte short or past
/// them, a trailing `/`, another case, a query, a fragment, dot segments, percent-encoding.
const TARGETS: [&str; 30] = [
    "/",
    "//",
    "/?",
    "/?x",
    "/#f",
    "/echo",
    "/echo/",
    "/echo?",
    "/echox",
    "/ech",
    "/Echo",
    "/echo#a",
    "/echo;x",
    "/delay?ms=1",
    "/delay",
    "/delay/",
    "/dela",
    "/panic/",
    "/panicky",
    "/healthz/live",
    "/healthz/live/",
    "/healthz/livee",
    "/healthz/liv",
    "/healthz/ready?x",
    "/healthz/readyy",
    "/healthz",
    "/HEALTHZ/live",
    "/a/../echo",
    "/%65cho",
    "/12345678",
];

/// Methods: the routes', the other RFC 9110 ones, one a byte short or past a known one (the
/// mio router compares a method of up to 8 bytes as one word), and one in lowercase.
const METHODS: [&str; 13] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "GE", "GETX", "POSTPOST",
    "OPTIONSX", "get",
];

/// Pins what qa-client28 checked: both stacks answer every method on every target alike,
/// field for field (in any order) but `date` (status, reason, `allow`, `content-type`, `content-length`,
/// `connection`) and byte for byte in the body, the requests of one method pipelined on one
/// connection (each with a 2-byte body where the method may carry one), read strictly.
#[test]
fn both_stacks_route_every_method_and_target_alike() {
    let answers: Vec<Vec<(String, util::strict::Strict)>> = STACKS
        .iter()
        .map(|stack| {
            let serve = Serve::start("", stack);
            let answers = METHODS
                .iter()
                .flat_map(|method| route_each_target(&serve, method))
                .collect();
            let (json, ok) = serve.signal_and_wait("TERM");
            assert!(ok, "{stack}: {json}");
            assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
            answers
        })
        .collect();
    assert_eq!(answers[0].len(), answers[1].len());
    for ((request, mio), (_, hyper)) in answers[0].iter().zip(&answers[1]) {
        assert_eq!(mio, hyper, "{request}");
    }
}

/// `method` on each of [`TARGETS`], pipelined on one connection: (request line, answer
/// without its `date`) for each.
fn route_each_target(serve: &Serve, method: &str) -> Vec<(String, util::strict::Strict)> {
    let (length, body) = if matches!(method, "GET" | "HEAD") {
        ("", "")
    } else {
        ("content-length: 2\r\n", "ab")
    };
    let mut client = StrictClient::connect(serve.addr);
    let requests: String = TARGETS
        .iter()
        .map(|target| format!("{method} {target} HTTP/1.1\r\nhost: x\r\n{length}\r\n{body}"))
        .collect();
    client.send(requests.as_bytes());
    TARGETS
        .iter()
        .map(|target| {
            let mut answer = client.answer(method);
            assert!(
                answer.field("date").is_some(),
                "{method} {target}: {answer:?}"
            );
            // The order of fields of different names is not significant (RFC 9110 §5.3).
            answer.fields.retain(|(name, _)| name != "date");
            answer.fields.sort();
            (format!("{method} {target}"), answer)
        })
        .collect()
}
