//! qa-client27, round 27: what a hostile client sees through `reqguard-demo serve` beyond
//! rounds 8 to 26. Answers are read by the strict client (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use util::serve::{
    close_steps_answered, each_gets_the_deadlines_503, field, steps_answered, Serve,
};
use util::small_window::{echo, small_window_client};
use util::strict::{connect_each, read_for, StrictClient};

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// The stop's timing for both runs: the deadline's `503` comes 500 ms after the stop, the force
/// step 500 ms after that; no request timeout before them (10 s by default, which a loaded
/// machine can spend before the stop: a probe's body was answered `408`).
const STOP_FLAGS: &str =
    "--stack hyper --drain-timeout-ms 500 --force-after-ms 500 --request-timeout-ms 60000";

/// A health probe whose body is still coming at the drain deadline (answered `503` + close).
const PROBE_BODY_COMING: &[u8] =
    b"POST /healthz/live HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc";

/// Everything the server sent on `stream` until its FIN.
fn all_sent(mut stream: TcpStream) -> Vec<u8> {
    let mut sent = Vec::new();
    stream.read_to_end(&mut sent).expect("read to the FIN");
    sent
}

/// How many bytes of its answers the server gets into a [`small_window_client`]'s socket
/// (the client's receive buffer and the server's send buffer) while the client reads nothing:
/// an echo far larger, stopped and force-closed, delivers exactly that many.
fn socket_capacity() -> usize {
    let serve = Serve::start("", STOP_FLAGS);
    let mut stream = small_window_client(serve.addr);
    stream.write_all(&echo(400_000)).unwrap();
    // The echo read whole: its answer written in that turn, as far as the socket takes it.
    util::wait_read_by_server(&stream);
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "{json}");
    let capacity = all_sent(stream).len();
    assert!(
        capacity < 300_000,
        "the socket took the whole echo: {capacity} bytes"
    );
    capacity
}

/// What one connection of [`a_probes_deadline_503_is_counted_once_written_whole_not_when_made`]
/// read: its echo's answer whole or not, then the probe's `503` whole or not.
#[derive(Debug, PartialEq)]
enum Read503 {
    /// The echo's answer was cut: the probe behind it was never read (hyper reads the next
    /// request once an answer is all in the socket).
    EchoCut,
    /// The echo whole and the `503` whole, then a clean FIN.
    Whole,
    /// The echo whole, the `503` cut or missing: made at the deadline, but the socket was full
    /// and the force step closed it before hyper wrote it all.
    Cut,
}

fn read_503(sent: &[u8], body_len: usize) -> Read503 {
    let mut reader = BufReader::new(sent);
    let Ok(echoed) = read_for(&mut reader, "POST") else {
        return Read503::EchoCut;
    };
    assert_eq!((echoed.status, echoed.body.len()), (200, body_len));
    match read_for(&mut reader, "POST") {
        Ok(answer) => {
            assert_eq!((answer.status, answer.closes()), (503, true), "{answer:?}");
            assert!(reader.buffer().is_empty(), "bytes after the close");
            Read503::Whole
        }
        Err(_) => Read503::Cut,
    }
}

/// QA client26-2 over a socket (a unit test pinned `Conn`'s side only: round 26's review put
/// `Probing::poll` back to counting when made, and every test passed). A health probe whose
/// body is still coming at the drain deadline gets the deadline's `503` + close, counted in
/// the last step's `answered` once hyper has written it whole, never when made: one the
/// socket cannot take before the force step is no answer, and mio counts its own only once
/// the socket took it (docs/server.md, Stop). Each connection here holds an echo's answer
/// just under, at or just past what its socket takes unread ([`socket_capacity`]), then the
/// probe: past it, the probe is never read; at it, the `503` is made and stuck; under it, the
/// `503` is written. `answered` must be the `503`s that arrived whole.
#[test]
fn a_probes_deadline_503_is_counted_once_written_whole_not_when_made() {
    let capacity = socket_capacity();
    let mut serve = Serve::start("", STOP_FLAGS);
    // The echo's answer head is about 130 bytes, the `503` about 150: from 600 bytes under the
    // capacity to the capacity, in steps of 10, some of each kind.
    let bodies: Vec<usize> = (0..=60).map(|step| capacity - 600 + step * 10).collect();
    let clients: Vec<TcpStream> = bodies
        .iter()
        .map(|&body_len| {
            let mut stream = small_window_client(serve.addr);
            stream.write_all(&echo(body_len)).unwrap();
            stream.write_all(PROBE_BODY_COMING).unwrap();
            stream
        })
        .collect();
    // Every echo read whole (another process), so admitted, and its answer begun: an echo
    // unread at the stop was refused `503` (an 800 ms sleep stood here). The probe behind it
    // may stay unread (hyper reads it once the echo's answer is all in the socket), so only
    // the echo is awaited; a probe that can be read is read in the same turn, long before the
    // deadline (500 ms after the stop).
    for stream in &clients {
        util::reads::wait_read_but(stream, PROBE_BODY_COMING.len() as u64);
        util::wait_until("the echo's answer to begin", || {
            !util::open_and_silent(stream)
        });
    }
    util::serve::send_signal(serve.child.id(), "TERM");
    let (json, ok) = serve.json_and_status();
    assert!(ok, "{json}");
    assert_eq!(field(&json, "leaked"), 0.0, "{json}");
    let read: Vec<Read503> = clients
        .into_iter()
        .zip(&bodies)
        .map(|(stream, &body_len)| read_503(&all_sent(stream), body_len))
        .collect();
    let count = |kind: Read503| read.iter().filter(|&r| *r == kind).count();
    let (whole, cut) = (count(Read503::Whole), count(Read503::Cut));
    assert!(
        whole > 0 && cut > 0,
        "capacity {capacity}: each kind needed, read {read:?}"
    );
    assert_eq!(
        close_steps_answered(&json),
        whole as f64,
        "capacity {capacity}, read {read:?}: {json}"
    );
}

/// A request not whole at the drain deadline, one of each kind, with its method: a body still
/// coming (by length to a `404`, chunked to a `405`, after an `Expect` whose `100` came), a head
/// in progress, a health probe's body (`HEAD`: its `503` has no body).
const NOT_WHOLE: [(&str, &[u8]); 5] = [
    (
        "GET",
        b"GET /nope HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabcde",
    ),
    (
        "PUT",
        b"PUT /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
    ),
    (
        "POST",
        b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ntransfer-encoding: chunked\r\n\r\n",
    ),
    ("GET", b"GET / HTTP/1.1\r\nhost: x\r\nx-pending: 1\r\n"),
    (
        "HEAD",
        b"HEAD /healthz/live HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc",
    ),
];

/// The health probe and the head in progress are answered by each stack's last step (hyper:
/// no request admitted), the routes' bodies by the route on hyper (`served`).
const HYPER_UNADMITTED: usize = 2;

/// QA client27-1. A request not whole at the drain deadline gets the deadline's `503` +
/// close there (docs/server.md, the ladder; QA client25-1 made hyper do so), also while a
/// handler that ignores its abort holds the drain past the deadline. On mio the close step
/// gave that `503` (after the drain, with nothing out) but the force step came first when a
/// request was still out, and closed every connection without a word: the body's client, the
/// head's, and one told `100 Continue` (RFC 9110 §10.1.1: a final status must follow) read an
/// EOF 4 s later. Now the abort step answers them, counted in its `answered`.
#[test]
fn a_request_not_whole_at_the_deadline_gets_its_503_while_a_handler_holds_the_drain() {
    for stack in STACKS {
        // The request timeout out of the way (10 s by default: a loaded machine spent it on
        // the reads awaited before the stop, and a head was answered 408, not the deadline's
        // 503).
        let flags = format!(
            "--idle-linger-ms 100 --drain-timeout-ms 500 --force-after-ms 4000 \
             --request-timeout-ms 60000 --idle-timeout-ms 60000 {stack}"
        );
        let mut serve = Serve::start("", &flags);
        let mut held = StrictClient::connect(serve.addr);
        held.send(b"GET /delay?ms=20000 HTTP/1.1\r\nhost: x\r\n\r\n");
        let mut clients = connect_each(serve.addr, &NOT_WHOLE);
        // Every head read: all each client sent read by the server (another process:
        // util::wait_read_by_server), the held request admitted.
        util::wait_read_by_server(held.reader_mut().get_ref());
        for (_, client) in &mut clients {
            util::wait_read_by_server(client.reader_mut().get_ref());
        }
        // At the deadline (500 ms), not at the force step (4.5 s).
        each_gets_the_deadlines_503(&serve, &mut clients, Duration::from_millis(3500), stack);
        held.expect_nothing_more(true, Duration::ZERO); // forced: no answer, a FIN
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        let all = NOT_WHOLE.len() as f64;
        let (served, abort, close) = (
            field(&json, "served"),
            steps_answered(&json, "abort"),
            close_steps_answered(&json),
        );
        if stack == "--stack mio" {
            // None admitted (a request is, once whole): all answered by the abort step.
            assert_eq!((served, abort, close), (0.0, all, 0.0), "{stack}: {json}");
        } else {
            let unadmitted = HYPER_UNADMITTED as f64;
            assert_eq!(
                (served, abort + close),
                (all - unadmitted, unadmitted),
                "{stack}: {json}"
            );
        }
    }
}
