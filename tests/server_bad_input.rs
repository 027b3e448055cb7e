//! Bad input over real sockets: each gets a clear answer, the loop keeps serving, and nothing
//! leaks. Also keep-alive, pipelining, chunked bodies, HTTP/1.0 and a panicking handler.
#![cfg(feature = "server")]

mod util;

use std::time::Duration;

use reqguard::http::{Limits, Running, ServerReport};
use util::{get, Client};

fn start(limits: Limits) -> Running {
    util::demo_server(limits)
}

fn finish(running: Running) -> ServerReport {
    let report = running.stop().unwrap();
    assert_eq!(report.leaked, 0, "{}", report.leaks);
    report
}

/// Sends `request` on a fresh connection and expects `status`, `Connection: close` and EOF.
fn rejected(running: &Running, request: &[u8], status: u16) {
    let mut client = Client::connect(running.addr());
    client.send(request);
    let answer = client.answer().expect("an answer before the close");
    assert_eq!(answer.status, status, "{answer:?}");
    assert!(answer.closes());
    assert!(client.is_closed_by_server());
    // The loop keeps serving.
    assert_eq!(get(running.addr(), "/").status, 200);
}

#[test]
fn malformed_request_line_or_headers_get_400() {
    let running = start(Limits::default());
    rejected(
        &running,
        b"GET / HTTP/1.1\r\nhost: x\r\nBad Header\r\n\r\n",
        400,
    );
    rejected(&running, b"G@T / HTTP/1.1\r\nhost: x\r\n\r\n", 400);
    rejected(&running, b"GET / HTTP/x.1\r\n\r\n", 400); // HTTP/9.1: 505 (probe_client::v8)
    rejected(
        &running,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
        400,
    );
    rejected(
        &running,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        400,
    );
    let report = finish(running);
    assert_eq!(report.stats.rejected, 5);
    assert_eq!(report.stats.served, 5);
}

#[test]
fn headers_over_the_limit_get_431() {
    let running = start(Limits::default().with_max_head(1024));
    let mut request = b"GET / HTTP/1.1
host: x
x-big: "
        .to_vec();
    request.extend(std::iter::repeat_n(b'a', 2000));
    request.extend_from_slice(b"\r\n\r\n");
    rejected(&running, &request, 431);
    // Too many headers is the same answer.
    let mut many = b"GET / HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    rejected(&running, &many, 431);
    assert_eq!(finish(running).stats.rejected, 2);
}

#[test]
fn body_over_the_limit_gets_413() {
    let running = start(Limits::default().with_max_body(16));
    rejected(
        &running,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 17\r\n\r\n",
        413,
    );
    rejected(
        &running,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n11\r\n",
        413,
    );
    // At the limit is fine.
    let mut client = Client::connect(running.addr());
    let answer = client
        .request("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 16\r\n\r\n0123456789abcdef");
    assert_eq!((answer.status, answer.text()), (200, "0123456789abcdef"));
    let report = finish(running);
    assert_eq!(report.stats.rejected, 2);
}

#[test]
fn a_client_too_slow_to_send_its_headers_gets_408_and_close() {
    let running = start(Limits::default().with_request_timeout(Duration::from_millis(100)));
    let mut client = Client::connect(running.addr());
    client.send(b"GET / HTTP/1.1\r\nhost: slow");
    let answer = client.answer().unwrap();
    assert_eq!((answer.status, answer.closes()), (408, true));
    assert!(client.is_closed_by_server());
    assert_eq!(finish(running).stats.rejected, 1);
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_timeout() {
    let running = start(Limits::default().with_idle_timeout(Duration::from_millis(100)));
    let mut client = Client::connect(running.addr());
    assert_eq!(
        client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").status,
        200
    );
    // No answer, no request: the server closes it silently.
    assert!(client.is_closed_by_server());
    let report = finish(running);
    assert_eq!((report.stats.served, report.stats.rejected), (1, 0));
}

#[test]
fn connections_over_the_limit_get_503_and_close() {
    let running = start(Limits::default().with_max_connections(2));
    // Requests in their handlers hold both slots (idle connections would be evicted).
    let mut first = Client::connect(running.addr());
    let mut second = Client::connect(running.addr());
    first.send(b"GET /delay?ms=60000 HTTP/1.1\r\nhost: x\r\n\r\n");
    second.send(b"GET /delay?ms=60000 HTTP/1.1\r\nhost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(20));
    let mut third = Client::connect(running.addr());
    let answer = third.answer().unwrap();
    assert_eq!((answer.status, answer.closes()), (503, true));
    assert!(third.is_closed_by_server());
    // A slot frees: new connections are served again.
    drop(first);
    util::wait_until("a new connection to be served", || {
        let mut client = Client::connect(running.addr());
        client.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        client.answer().is_ok_and(|a| a.status == 200)
    });
    drop(second);
    let report = finish(running);
    assert!(report.stats.connections_refused >= 1);
}

#[test]
fn a_panicking_handler_gets_500_and_the_loop_keeps_serving() {
    let running = start(Limits::default());
    let mut client = Client::connect(running.addr());
    let answer = client.request("GET /panic HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(answer.status, 500);
    assert!(
        !answer.closes(),
        "the connection survives its handler's panic"
    );
    assert_eq!(
        client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").text(),
        "hello"
    );
    assert_eq!(get(running.addr(), "/").status, 200);
    drop(client);
    let report = finish(running);
    assert_eq!((report.stats.panics, report.stats.served), (1, 3));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let running = start(Limits::default());
    let mut client = Client::connect(running.addr());
    // A deferred answer first: the ones behind it must wait for it.
    client.send(
        b"GET /delay?ms=50 HTTP/1.1\r\nhost: x\r\n\r\n\
          POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\none\
          GET /nope HTTP/1.1\r\nhost: x\r\n\r\n\
          POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n\
          GET / HTTP/1.1\r\nhost: x\r\n\r\n",
    );
    let answers: Vec<_> = (0..5).map(|_| client.answer().unwrap()).collect();
    let got: Vec<_> = answers.iter().map(|a| (a.status, a.text())).collect();
    assert_eq!(
        got,
        [
            (200, "delayed 50 ms"),
            (200, "one"),
            (404, "Not Found"),
            (200, "two"),
            (200, "hello")
        ]
    );
    drop(client);
    assert_eq!(finish(running).stats.served, 5);
}

#[test]
fn http10_closes_unless_kept_alive_and_wrong_methods_get_405() {
    let running = start(Limits::default());
    let mut client = Client::connect(running.addr());
    let answer = client.request("GET / HTTP/1.0\r\n\r\n");
    assert_eq!((answer.status, answer.closes()), (200, true));
    assert!(client.is_closed_by_server());

    let mut client = Client::connect(running.addr());
    let answer = client.request("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n");
    assert_eq!(answer.header("connection"), Some("keep-alive"));
    assert_eq!(
        client
            .request("POST / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
            .status,
        405
    );
    drop(client);
    finish(running);
}

#[test]
fn partial_reads_and_large_bodies_with_partial_writes() {
    let running = start(Limits::default().with_max_body(4 * 1024 * 1024));
    let mut client = Client::connect(running.addr());
    // A request arriving in pieces, on separate loop turns.
    for piece in [&b"GET / HT"[..], b"TP/1.1\r\nhost: x", b"\r\n", b"\r\n"] {
        client.send(piece);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(client.answer().unwrap().text(), "hello");
    // An echo larger than the socket buffers: the server's writes stop at `WouldBlock` and
    // resume on the writable event.
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut request = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let writer = {
        let mut stream = client.stream().try_clone().unwrap();
        std::thread::spawn(move || std::io::Write::write_all(&mut stream, &request))
    };
    let answer = client.answer().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(answer.status, 200);
    assert!(answer.body == body, "the echo differs");
    // The connection is still good.
    assert_eq!(
        client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").text(),
        "hello"
    );
    drop(client);
    assert_eq!(finish(running).stats.served, 3);
}

#[test]
fn expect_100_continue_gets_an_interim_answer() {
    let running = start(Limits::default());
    let mut client = Client::connect(running.addr());
    client.send(
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n",
    );
    let interim = client.answer().unwrap();
    assert_eq!(interim.status, 100);
    client.send(b"ping");
    assert_eq!(client.answer().unwrap().text(), "ping");
    drop(client);
    finish(running);
}
