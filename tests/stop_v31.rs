//! stop31, round 31: a lone mio `Server` (`ServerBuilder::spawn`, not a loop group) ends its
//! stop at the drain deadline as a group's ladder ends it at its force and close steps
//! (src/http/server/ending.rs): only what is still out ends; every answer already computed is
//! sent, in order, the last with `connection: close` (issue 10, row 10; docs/server.md, "Stop").
//! Answers are read by the strict client (tests/util/strict.rs).
#![cfg(feature = "server")]

mod util;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqguard::http::Limits;
use util::small_window::small_window_client;
use util::strict::{read_for, Strict};
use util::wait_read_by_server;

/// A `POST /echo` of `body_len` bytes of `fill`: each echo its own byte, so the order the
/// answers come in shows.
fn echo_of(body_len: usize, fill: u8) -> Vec<u8> {
    let mut request =
        format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {body_len}\r\n\r\n")
            .into_bytes();
    request.resize(request.len() + body_len, fill);
    request
}

/// Everything the server sent on `stream` until its FIN; a reset fails the test (the close
/// after the last answer must be clean).
fn all_sent(mut stream: TcpStream) -> Vec<u8> {
    let mut sent = Vec::new();
    stream
        .read_to_end(&mut sent)
        .expect("a clean FIN, not a reset");
    sent
}

/// The answers in `sent`, strictly read, then nothing.
fn answers(sent: &[u8], methods: &[&str]) -> Vec<Strict> {
    let mut reader = BufReader::new(sent);
    let answers: Vec<Strict> = methods
        .iter()
        .map(|method| read_for(&mut reader, method).expect("a whole answer"))
        .collect();
    assert!(
        reader.buffer().is_empty() && reader.get_ref().is_empty(),
        "bytes after the last answer"
    );
    answers
}

/// Echoes far larger than what a small-window client's socket takes unread.
const ECHO: usize = 200_000;

/// A lone server at its drain deadline: a client reading slowly has three echoes computed and a
/// `GET /delay` still out behind them, another an echo computed and a head in progress behind
/// it, a third an echo computed and nothing behind it, a fourth is idle after its answer, a
/// fifth holds a `GET /delay` alone (its end tells the test the deadline has come). Every echo
/// arrives whole and in order; the slow reader's delayed request alone ends (its connection
/// closed once the echoes before it are written); the head in progress gets `503` + close after
/// its echo; the connection idle after its echo, and the idle one, close with a clean FIN;
/// nothing leaked, nothing undelivered. On main's src the deadline closed every connection at
/// once: the echoes cut (a reset or a FIN mid-answer), no `503` to the head in progress.
#[test]
fn a_lone_servers_deadline_ends_only_what_is_out_and_sends_every_answer_computed() {
    let limits = Limits::default()
        .with_drain_timeout(Duration::from_millis(500))
        .with_stop_linger(Duration::from_secs(60))
        .with_idle_timeout(Duration::from_secs(60))
        .with_request_timeout(Duration::from_secs(60))
        .with_min_send_rate(0)
        .with_max_output(4 << 20);
    let running = util::demo_server(limits);
    let addr = running.addr();

    let mut idle = util::strict::StrictClient::connect(addr);
    idle.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(idle.answer("GET").status, 200);

    let mut held = TcpStream::connect(addr).unwrap();
    held.set_read_timeout(Some(util::READ_TIMEOUT)).unwrap();
    held.write_all(b"GET /delay?ms=30000 HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();

    let mut slow = small_window_client(addr);
    let fills = [b'a', b'b', b'c'];
    let mut pipeline: Vec<u8> = fills.iter().flat_map(|&f| echo_of(ECHO, f)).collect();
    pipeline.extend_from_slice(b"GET /delay?ms=30000 HTTP/1.1\r\nhost: x\r\n\r\n");
    slow.write_all(&pipeline).unwrap();

    let mut begun = small_window_client(addr);
    begun.write_all(&echo_of(ECHO, b'd')).unwrap();
    begun.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();

    let mut alone = small_window_client(addr);
    alone.write_all(&echo_of(ECHO, b'e')).unwrap();

    for client in [&held, &slow, &begun, &alone] {
        wait_read_by_server(client);
    }
    let stop = running.stop_handle();
    let report = std::thread::spawn(move || running.stop());
    assert!(stop.stop_and_wait(util::WAIT_BOUND), "the stop began");

    // The held request's connection ends at the deadline, without an answer: the slow readers
    // begin reading only then.
    let mut rest = Vec::new();
    held.read_to_end(&mut rest).expect("a FIN");
    assert!(rest.is_empty(), "the delayed request answered");

    let readers: Vec<_> = [slow, begun, alone]
        .into_iter()
        .map(|stream| std::thread::spawn(move || all_sent(stream)))
        .collect();
    let mut sent = readers.into_iter().map(|r| r.join().unwrap());

    let slow = answers(&sent.next().unwrap(), &["POST", "POST", "POST"]);
    for (answer, fill) in slow.iter().zip(fills) {
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.body,
            vec![fill; ECHO],
            "the echoes whole and in order"
        );
    }
    let begun = answers(&sent.next().unwrap(), &["POST", "GET"]);
    assert_eq!(begun[0].body, vec![b'd'; ECHO]);
    assert_eq!((begun[1].status, begun[1].closes()), (503, true));
    // Idle once its echo is written: closed as an idle connection is, a clean FIN.
    let alone = answers(&sent.next().unwrap(), &["POST"]);
    assert_eq!(alone[0].body, vec![b'e'; ECHO]);

    // Idle (its stop linger longer than the drain): closed at the deadline, a clean FIN, as its
    // idle linger would close it (a loop group's close step answers it `503` instead: its
    // listener was open through the drain).
    idle.expect_nothing_more(true, Duration::from_secs(10));

    let report = report.join().unwrap().expect("the report");
    assert!(report.drain_deadline_hit, "{report}");
    assert_eq!(report.leaked, 0, "{}", report.leaks);
    // The two connections with a request out, and only they, ended by the deadline.
    assert_eq!(report.force_closed, 2, "{report}");
    assert_eq!(
        (report.stats.served, report.stats.undelivered),
        (6, 0),
        "{report}"
    );
    let o = report.outcomes;
    assert_eq!(
        (o.completed, o.deadline_aborted, o.total()),
        (6, 2, 8),
        "{report}"
    );
}
