//! The hyper stack against the hostile-client battery (notes/qa.md): what hyper 1.x lets through
//! and the mio server refuses is refused before admission (`src/tokio_hyper/checks.rs`), and the
//! demo routes answer `HEAD`, `405` and unknown methods as the mio router does. Every answer is
//! read by the strict client of tests/util/strict.rs.
#![cfg(feature = "hyper")]

mod util;

use std::net::SocketAddr;
use std::time::Duration;

use reqguard::tokio_hyper::{demo_routes, HyperServer};
use util::hyper_thread::HyperThread;
use util::strict::StrictClient;

const QUIET: Duration = Duration::from_millis(150);

/// The demo routes on hyper, on their own thread, until stopped.
fn spawn_demo() -> HyperThread {
    HyperThread::spawn(|core| HyperServer::new(core, demo_routes()))
}

/// Sends `request` followed by a pipelined `GET /smuggled`; expects one `400` that closes.
fn expect_400_close(addr: SocketAddr, request: &str) {
    let mut client = StrictClient::connect(addr);
    client.send(request.as_bytes());
    client.send(b"GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n");
    let answer = client.answer("POST");
    assert_eq!(answer.status, 400, "{request:?}: {answer:?}");
    assert!(answer.closes(), "{request:?}: {answer:?}");
    client.expect_nothing_more(true, QUIET);
}

#[test]
fn framing_hyper_would_trust_is_a_400_that_closes() {
    let server = spawn_demo();
    let addr = server.addr;
    let post = "POST /echo HTTP/1.1\r\nhost: x\r\n";
    // Transfer-Encoding twice, and chunked twice (`gzip, chunked` is 501: probe_client::v8).
    expect_400_close(
        addr,
        &format!("{post}transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"),
    );
    expect_400_close(
        addr,
        &format!("{post}transfer-encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    );
    // A broken chunked body is the client's fault: 400 + close, not a handler's 500.
    expect_400_close(
        addr,
        &format!("{post}transfer-encoding: chunked\r\n\r\n-1\r\n\r\n"),
    );
    expect_400_close(
        addr,
        &format!("{post}transfer-encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n"),
    );
    let report = server.stop();
    assert_eq!(report.leaked, 0);
}

/// RFC 9112 §3: a target longer than the server parses is `414`, not the `431` hyper gives when
/// its buffer overflows; a head over the limit is `431`. Both close, and a pipelined request
/// behind them is not served.
#[test]
fn a_long_target_is_414_and_a_long_head_431_as_on_mio() {
    let server = spawn_demo();
    let addr = server.addr;
    let cases = [
        (
            format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(9 * 1024)),
            414,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
                "b".repeat(9 * 1024)
            ),
            431,
        ),
    ];
    for (request, status) in cases {
        let mut client = StrictClient::connect(addr);
        client.send(request.as_bytes());
        client.send(b"GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n");
        let answer = client.answer("GET");
        assert_eq!(answer.status, status, "{answer:?}");
        assert!(answer.closes(), "{answer:?}");
        client.expect_nothing_more(true, QUIET);
    }
    let report = server.stop();
    assert_eq!((report.leaked, report.stats.served), (0, 0));
}

#[test]
fn http11_host_is_required_once_and_valid() {
    let server = spawn_demo();
    let addr = server.addr;
    expect_400_close(addr, "GET / HTTP/1.1\r\n\r\n");
    expect_400_close(addr, "GET / HTTP/1.1\r\nhost: x\r\nhost: y\r\n\r\n");
    expect_400_close(addr, "GET / HTTP/1.1\r\nhost: a b\r\n\r\n");
    let mut client = StrictClient::connect(addr);
    client.send(b"GET / HTTP/1.1\r\nhost: [::1]:8080\r\n\r\n");
    assert_eq!(client.answer("GET").status, 200);
    let mut old = StrictClient::connect(addr);
    old.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(old.answer("GET").status, 200);
    assert_eq!(server.stop().leaked, 0);
}

/// RFC 9110 §8.3: content comes with its `Content-Type`; the demo's text answers carry
/// `text/plain` as the mio router's do, its echo `application/octet-stream`.
#[test]
fn text_answers_say_their_content_type_as_the_mio_router() {
    let server = spawn_demo();
    let addr = server.addr;
    let mut client = StrictClient::connect(addr);
    client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    let hello = client.answer("GET");
    assert_eq!(
        (hello.status, hello.field("content-type")),
        (200, Some("text/plain"))
    );
    client.send(b"GET /delay HTTP/1.1\r\nhost: x\r\n\r\n");
    let bad = client.answer("GET");
    assert_eq!(
        (bad.status, bad.field("content-type")),
        (400, Some("text/plain"))
    );
    client.send(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nxyz");
    let echo = client.answer("POST");
    assert_eq!(echo.field("content-type"), Some("application/octet-stream"));
    assert_eq!(server.stop().leaked, 0);
}

#[test]
fn head_405_and_unknown_methods_answer_as_the_mio_router() {
    let server = spawn_demo();
    let addr = server.addr;
    let mut client = StrictClient::connect(addr);
    client.send(b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n");
    let head = client.answer("HEAD");
    assert_eq!(
        (head.status, head.field("content-length")),
        (200, Some("5"))
    );
    assert_eq!(client.answer("GET").text(), "hello");
    client.send(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n");
    let not_allowed = client.answer("GET");
    assert_eq!(not_allowed.status, 405);
    assert_eq!(not_allowed.field("allow"), Some("POST"));
    client.send(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(client.answer("POST").field("allow"), Some("GET, HEAD"));
    client.send(b"BREW / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(client.answer("BREW").status, 501);
    client.expect_nothing_more(false, QUIET);
    assert_eq!(server.stop().leaked, 0);
}

/// `OPTIONS` as on the mio router (RFC 9110 §9.3.7): `204` with the resource's methods in
/// `allow`, every route's for `*`, `404` for no resource; the answer has no body.
#[test]
fn options_answer_as_the_mio_router() {
    let server = spawn_demo();
    let addr = server.addr;
    let mut client = StrictClient::connect(addr);
    for (target, allow) in [
        ("*", "GET, HEAD, POST"),
        ("/", "GET, HEAD"),
        ("/echo", "POST"),
    ] {
        client.send(format!("OPTIONS {target} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes());
        let answer = client.answer("OPTIONS");
        assert_eq!(
            (answer.status, answer.field("allow")),
            (204, Some(allow)),
            "{target}: {answer:?}"
        );
        assert_eq!(answer.text(), "", "{target}");
    }
    client.send(b"OPTIONS /nowhere HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(client.answer("OPTIONS").status, 404);
    client.expect_nothing_more(false, QUIET);
    assert_eq!(server.stop().leaked, 0);
}

/// A chunked body no route reads (`404`, `405`, a `GET` route, a panicking handler) is read
/// past, as a `Content-Length` one is: the connection is kept and the request pipelined behind
/// it answered, as on the mio stack (tests/probe_http_v4.rs has the mio twin). The demo drops
/// the head of a request it answers at once, but keeps its body until the answer is taken:
/// dropped before hyper read it, a chunked body made hyper close after the answer.
#[test]
fn an_unread_chunked_body_keeps_the_connection_and_the_request_behind_it() {
    let server = spawn_demo();
    let addr = server.addr;
    for (line, status) in [
        ("POST /nope", 404),
        ("POST /", 405),
        ("GET /", 200),
        ("PUT /echo", 405),
        ("GET /panic", 500),
    ] {
        let mut client = StrictClient::connect(addr);
        client.send(
            format!(
                "{line} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
                 3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"
            )
            .as_bytes(),
        );
        let first = client.answer("POST");
        assert_eq!((first.status, first.closes()), (status, false), "{line}");
        let next = client.answer("GET");
        assert_eq!((next.status, next.text()), (200, "hello"), "{line}");
    }
    assert_eq!(server.stop().leaked, 0);
}
