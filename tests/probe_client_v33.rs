//! qa-client33, round 33: what a hostile client sees through `reqguard-demo serve` (the process
//! a user runs) beyond rounds 8 to 32, on both stacks. Answers are read by the strict client
//! (tests/util/strict.rs). The battery that found these: benches/load/qa33_battery.py (round
//! 32's qa32_battery.py with the cases it lacked).
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use util::serve::{field, Serve};
use util::strict::{expect_clean_eof, read_for, StrictClient};

const STACKS: [&str; 2] = ["mio", "hyper"];

/// `"outcomes":{...}`'s field `key` in the exit JSON (the totals' come first).
fn outcome(json: &str, key: &str) -> f64 {
    let outcomes = &json[json.find("\"outcomes\":").expect("outcomes")..];
    field(outcomes, key)
}

/// A newcomer at the limit, answered `connection: close`: its status (`503` while no
/// connection may be evicted yet, `200` once one made room).
fn newcomer_status(serve: &Serve) -> u16 {
    let mut newcomer = StrictClient::connect(serve.addr);
    newcomer.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let answer = newcomer.answer("GET");
    assert!(answer.closes(), "{answer:?}");
    newcomer.expect_nothing_more(true, Duration::ZERO);
    answer.status
}

/// Newcomers at the limit one after another (each waits for its answer: the retry is the
/// event) until one is served: how many were refused `503` before it. A connection is
/// evictable only once it has been silent 100 ms (both stacks): an age, which the retries
/// wait out however slow the machine.
fn refused_until_one_is_served(serve: &Serve) -> usize {
    for refused in 0..500 {
        match newcomer_status(serve) {
            200 => return refused,
            503 => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("a newcomer got {other}"),
        }
    }
    panic!("no newcomer served in 500 tries");
}

/// Until a newcomer at the limit is served (the eviction made room): each connection of
/// `held` (a name, the connection, the answers it already read) then reads nothing more but a
/// clean FIN, or (`answered`) its eviction's `408` + close first. Returns the newcomers refused
/// `503` on the way.
fn evict_for_a_newcomer(
    serve: &Serve,
    stack: &str,
    held: &mut StrictClient,
    answered: bool,
) -> usize {
    util::wait_read_by_server(held.reader_mut().get_ref());
    let refused = refused_until_one_is_served(serve);
    if answered {
        let answer = read_for(held.reader_mut(), "GET")
            .unwrap_or_else(|e| panic!("{stack}: the eviction's answer: {e}"));
        assert_eq!(
            (answer.status, answer.closes()),
            (408, true),
            "{stack}: {answer:?}"
        );
    }
    expect_clean_eof(held.reader_mut()).unwrap_or_else(|e| panic!("{stack}: {e}"));
    refused
}

/// Gap (a). A connection with nothing of a request line, evicted for a newcomer at
/// `max_connections`, is closed without an answer on both stacks: a clean FIN, no bytes. That is
/// one that never sent a byte, one that sent CR and LF bytes alone (the empty lines a server
/// SHOULD ignore before a request line, RFC 9112 §2.2), and one idle after its answer. None sent
/// a request, so there is nothing a `408` would answer (RFC 9110 §15.5.9: the server "did not
/// receive a complete request message"), and RFC 9112 §9.5 lets a server close an idle
/// connection at any time; a client that opened the connection to send on it later reads the
/// close and retries on a new one (RFC 9112 §9.3.1), where an unsolicited `408` is read as the
/// answer to its first request. A head in progress (`GET / HT`) gets `408` + close on both. The
/// exit JSON counts every eviction in `connections_evicted` and the `408` alone in `rejected`,
/// on both stacks. Before, hyper wrote an unsolicited `408` to a connection that had answered
/// nothing (counted `rejected`) where mio closed, and mio answered CR bytes alone `408`.
#[test]
fn a_connection_with_nothing_of_a_request_is_evicted_without_an_answer_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("--stack {stack} --max-connections 1"));
        let mut refused = 0;
        let mut silent = StrictClient::connect(serve.addr);
        util::wait_accepted(silent.reader_mut().get_ref());
        refused += evict_for_a_newcomer(&serve, stack, &mut silent, false);

        let mut empty_lines = StrictClient::connect(serve.addr);
        empty_lines.send(b"\r\n\n\r");
        refused += evict_for_a_newcomer(&serve, stack, &mut empty_lines, false);

        let mut idle = StrictClient::connect(serve.addr);
        idle.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(idle.answer("GET").status, 200, "{stack}");
        idle.send(b"\r\n");
        refused += evict_for_a_newcomer(&serve, stack, &mut idle, false);

        let mut slow_head = StrictClient::connect(serve.addr);
        slow_head.send(b"GET / HT");
        refused += evict_for_a_newcomer(&serve, stack, &mut slow_head, true);

        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "connections_evicted"), 4.0, "{stack}: {json}");
        assert_eq!(
            field(&json, "rejected"),
            1.0,
            "{stack}: the 408 only: {json}"
        );
        assert_eq!(field(&json, "served"), 5.0, "{stack}: {json}");
        assert_eq!(
            field(&json, "connections_refused"),
            refused as f64,
            "{stack}: {json}"
        );
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}

/// Requests to pipeline: each one's bytes and its method.
type Requests<'a> = Vec<(&'a [u8], &'a str)>;

/// `requests` (each a request's bytes and its method) sent in one go from another thread with
/// the client's FIN behind them, the answers read meanwhile: each answer's (status, closes,
/// body length), in order, up to the server's close (a clean FIN).
fn pipelined_then_fin(serve: &Serve, requests: &[(&[u8], &str)]) -> Vec<(u16, bool, usize)> {
    let mut stream = TcpStream::connect(serve.addr).unwrap();
    stream.set_read_timeout(Some(util::READ_TIMEOUT)).unwrap();
    let all: Vec<u8> = requests
        .iter()
        .flat_map(|(r, _)| r.iter().copied())
        .collect();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(&all).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut sent = Vec::new();
    stream.read_to_end(&mut sent).expect("a clean close");
    sender.join().unwrap();
    let mut reader = BufReader::new(&sent[..]);
    let mut answers = Vec::new();
    for (_, method) in requests {
        if reader.buffer().is_empty() && reader.get_ref().is_empty() {
            break;
        }
        let answer = read_for(&mut reader, method).expect("a strict answer");
        answers.push((answer.status, answer.closes(), answer.body.len()));
    }
    let rest = reader.buffer().len() + reader.get_ref().len();
    assert_eq!(rest, 0, "bytes after the last answer");
    answers
}

/// Gap (b). With `--half-close`, every request received whole before the client's FIN is
/// answered, in order, then the connection closes (a clean FIN), on both stacks; the exit JSON
/// counts each `served`, *completed*. The requests wait behind a deferred one (`max_pipeline`,
/// 32, parsed ahead at the FIN), behind answers larger than `max_output` (64 KiB: 2 KiB echoes,
/// the connection paused by back-pressure at the FIN), or both; a request not whole at the FIN
/// (a head cut short) is dropped, and the connection closes after the last whole one's answer.
/// Before, mio parsed nothing after the end of input: only the requests parsed by then were
/// answered (33 of 401 behind a deferred one), hyper served them all.
#[test]
fn with_half_close_every_request_whole_before_the_fin_is_answered_on_both_stacks() {
    const DELAY: &[u8] = b"GET /delay?ms=200 HTTP/1.1\r\nhost: x\r\n\r\n";
    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    const HEAD: &[u8] = b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n";
    let echo = [
        &b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2048\r\n\r\n"[..],
        &[b'e'; 2048],
    ]
    .concat();
    let chunked = b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
                    5\r\nhello\r\n0\r\n\r\n";
    let cut: &[u8] = b"GET / HTTP/1.1\r\nhos";
    // (name, requests, how many are whole)
    let mut cases: Vec<(&str, Requests<'_>, usize)> = Vec::new();
    let mut behind_delay = vec![(DELAY, "GET")];
    behind_delay.extend((0..400).map(|i| {
        if i % 7 == 3 {
            (HEAD, "HEAD")
        } else {
            (GET, "GET")
        }
    }));
    cases.push(("400 behind a deferred one", behind_delay, 401));
    let echoes: Vec<(&[u8], &str)> = (0..200).map(|_| (&echo[..], "POST")).collect();
    cases.push(("200 echoes of 2 KiB", echoes, 200));
    let mut mixed = vec![(DELAY, "GET")];
    for i in 0..300 {
        mixed.push(match i % 3 {
            0 => (&echo[..], "POST"),
            1 => (&chunked[..], "POST"),
            _ => (GET, "GET"),
        });
    }
    mixed.push((cut, "GET"));
    cases.push(("mixed, then a head cut short", mixed, 301));
    for stack in STACKS {
        let serve = Serve::start("", &format!("--stack {stack} --half-close"));
        let mut served = 0;
        for (name, requests, whole) in &cases {
            let answers = pipelined_then_fin(&serve, requests);
            assert_eq!(answers.len(), *whole, "{stack}, {name}: {answers:?}");
            for (i, ((status, closes, len), (request, method))) in
                answers.iter().zip(requests).enumerate()
            {
                // The last answer says `connection: close` when it was made after the FIN was
                // read (pinned in-process below: which one is made after depends on when the
                // server reads the FIN); none before it does.
                let last = i + 1 == *whole;
                assert_eq!(
                    (*status, *closes && !last),
                    (200, false),
                    "{stack}, {name}: answer {i} of {whole}"
                );
                let want = match (*method, request.len()) {
                    ("HEAD", _) => 0,
                    ("POST", n) if n > 1000 => 2048,
                    ("POST", _) => 5,
                    _ => {
                        if request.starts_with(b"GET /delay") {
                            14
                        } else {
                            5
                        }
                    }
                };
                assert_eq!(*len, want, "{stack}, {name}: answer {i}'s body");
            }
            served += whole;
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "served"), served as f64, "{stack}: {json}");
        assert_eq!(
            outcome(&json, "completed"),
            served as f64,
            "{stack}: {json}"
        );
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}

/// Gap (b), in-process (the sans-IO [`Connection`], driven as the mio loop drives it, on a
/// clock of the test's own): 100 requests pipelined behind a deferred one, then the client's
/// end of input while `max_pipeline` (32) holds the rest in the input. Every request is
/// answered in order, and the last answer, made after the end of input, carries `connection:
/// close`; the connection is then done. Before, nothing was parsed after the end of input: 32
/// answers, the last of them closing.
#[test]
fn after_the_clients_end_of_input_the_requests_held_back_are_answered_and_the_last_closes() {
    use reqguard::http::{
        demo_routes, Accounting, Connection, Dispatcher, Guarded, Limits, Router, Routes,
    };
    use std::time::Instant;

    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let limits = Limits::default().with_half_close(true);
    let accounting = Guarded::embedded("server", reqguard::Config::default());
    let mut d = Dispatcher::new(&router, accounting, limits);
    let start = Instant::now();
    let mut connection = Connection::new(start);
    let mut input = b"GET /delay?ms=100 HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
    for i in 0..100 {
        let request = if i % 2 == 0 {
            "GET / HTTP/1.1\r\nhost: x\r\n\r\n"
        } else {
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc"
        };
        input.extend_from_slice(request.as_bytes());
    }
    connection.receive(&mut d, &input, start);
    connection.peer_closed(&mut d);
    assert!(!connection.is_done(), "requests are still to answer");
    /// Writes out all the connection has to write, and resumes it, until it has nothing more.
    fn write_all<'r, A: Accounting>(
        connection: &mut Connection<'r, A::Held>,
        d: &mut Dispatcher<'r, A>,
        now: Instant,
        out: &mut Vec<u8>,
    ) {
        loop {
            let pending = connection.pending_output().len();
            out.extend_from_slice(connection.pending_output());
            connection.consume_output(pending);
            if !connection.resume(d, now) {
                return;
            }
        }
    }
    let mut out = Vec::new();
    write_all(&mut connection, &mut d, start, &mut out);
    let due = start + Duration::from_millis(200);
    connection.on_timer(&mut d, due);
    write_all(&mut connection, &mut d, due, &mut out);
    assert!(connection.is_done(), "{connection:?}");
    let mut reader = BufReader::new(&out[..]);
    let mut answers = Vec::new();
    while !reader.buffer().is_empty() || !reader.get_ref().is_empty() {
        let answer = read_for(&mut reader, "GET").expect("a strict answer");
        answers.push((answer.status, answer.closes(), answer.text().to_owned()));
    }
    assert_eq!(answers.len(), 101);
    assert_eq!(answers[0], (200, false, "delayed 100 ms".to_owned()));
    for (i, answer) in answers[1..].iter().enumerate() {
        let text = if i % 2 == 0 { "hello" } else { "abc" };
        assert_eq!(*answer, (200, i == 99, text.to_owned()), "answer {}", i + 1);
    }
    assert_eq!(d.stats().served, 101);
}
