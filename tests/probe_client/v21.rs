//! qa-client21, round 21: the stack differences round 20 left (docs/server.md "Not done"), as
//! a hostile client sees them through `reqguard-demo serve` (the process a user runs). Answers
//! are read by the strict client (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::time::Duration;

use util::serve::{field, Serve};
use util::strict::StrictClient;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// Timeouts far past the client's read timeout (`util::READ_TIMEOUT`, 10 s): an answer that
/// waits for one is never read.
const SLOW_TIMEOUTS: &str = "--request-timeout-ms 60000 --idle-timeout-ms 60000";

/// Reads the refusal of a head past `max_head` (`status` with `text`, `Connection: close`)
/// and then the connection's clean close, strictly.
fn expect_refused(client: &mut StrictClient, method: &str, status: u16, text: &str, shown: &str) {
    let refused = client.answer(method);
    assert_eq!(
        (refused.status, refused.text(), refused.closes()),
        (status, text, true),
        "{shown}: {refused:?}"
    );
    client.expect_nothing_more(true, Duration::ZERO);
}

/// QA client21-1. A head past `max_head` followed at once by the client's FIN (`printf ... |
/// nc -q 5`, a Python client that shuts its write side after sending) is refused as one that
/// waits: the client reads its `431` (`414`, `501`) + close, counted `rejected`, on a new
/// connection or after an answer, on both stacks. Before, hyper read on to the end of input
/// without a read that waited (where the adapter counts the head against `max_head`) and closed
/// the connection unanswered on the incomplete head (mio answers it).
#[test]
fn a_head_past_max_head_then_the_clients_fin_is_answered_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} {SLOW_TIMEOUTS}"));
        let mut rejected = 0.0;
        let mut served = 0.0;
        for (head, method, status, text) in &util::heads_past_max_head() {
            for after_an_answer in [false, true] {
                let shown = format!("{stack}, {status}, after an answer {after_an_answer}");
                let mut client = StrictClient::connect(serve.addr);
                if after_an_answer {
                    client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
                    let first = client.answer("GET");
                    assert_eq!((first.status, first.closes()), (200, false), "{shown}");
                    served += 1.0;
                }
                client.send(head.as_bytes());
                client.send_fin();
                expect_refused(&mut client, method, *status, text, &shown);
                rejected += 1.0;
            }
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), rejected, "{stack}: {json}");
        assert_eq!(field(&json, "served"), served, "{stack}: {json}");
    }
}

/// QA client21-2. After a request with a body on its connection (read by every demo route:
/// `/echo` with a length or chunked, small and past `max_head`, `GET /`, `/delay`, a `404`, a
/// health probe), a head past `max_head` is refused at once on both stacks, as on a new
/// connection, whether it waits for more or the client's FIN follows it. Before, hyper took
/// its bytes for the body it might still read and waited for its header timeout (here a
/// minute: the client's read timed out).
#[test]
fn a_head_past_max_head_after_a_request_with_a_body_is_refused_at_once_on_both_stacks() {
    let upload = "b".repeat(30_000);
    let befores: [(String, &str, u16); 7] = [
        (
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc".into(),
            "POST",
            200,
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{upload}",
                upload.len()
            ),
            "POST",
            200,
        ),
        (
            "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                .into(),
            "POST",
            200,
        ),
        (
            "GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello".into(),
            "GET",
            200,
        ),
        (
            "GET /delay?ms=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello".into(),
            "GET",
            200,
        ),
        (
            "POST /nope HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello".into(),
            "POST",
            404,
        ),
        (
            "GET /healthz/live HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello".into(),
            "GET",
            200,
        ),
    ];
    let heads = util::heads_past_max_head();
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} {SLOW_TIMEOUTS}"));
        let mut rejected = 0.0;
        for (before, before_method, before_status) in &befores {
            for (head, method, status, text) in [&heads[0], &heads[3]] {
                for fin in [false, true] {
                    let shown = format!("{stack}, {before:.30}, {status} {method}, FIN {fin}");
                    let mut client = StrictClient::connect(serve.addr);
                    client.send(before.as_bytes());
                    let first = client.answer(before_method);
                    assert_eq!(
                        (first.status, first.closes()),
                        (*before_status, false),
                        "{shown}"
                    );
                    // In two parts: the head is past the limit only with the second.
                    let (first, second) = head.as_bytes().split_at(4000);
                    client.send(first);
                    std::thread::sleep(Duration::from_millis(50));
                    client.send(second);
                    if fin {
                        client.send_fin();
                    }
                    expect_refused(&mut client, method, *status, text, &shown);
                    rejected += 1.0;
                }
            }
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), rejected, "{stack}: {json}");
        // Every route's answer but the health probe's (answered before admission).
        assert_eq!(field(&json, "served"), 24.0, "{stack}: {json}");
    }
}

/// QA client21-3. The stop reaches a connection while an answer is on its way (an 8 MiB echo
/// its client has not read: a 4 KiB receive buffer), and the client has sent, behind it, a
/// head counted past `max_head` but within it (8,200 bytes of empty lines, which the limit does
/// not count, then an unfinished head). Once the client reads the answer, the head is kept
/// through the drain and answered `503` + close at the drain deadline, on both stacks, as the
/// mio loops' close step answers it. Before, hyper gave the head back to a new hyper connection
/// without keeping it (the count's path, not the stop's), so the deadline passed it by and the
/// force step closed it unanswered.
#[test]
fn a_head_given_back_after_an_answer_the_stop_waited_for_gets_503_at_the_deadline_on_both_stacks() {
    use std::io::{BufReader, Write};
    use util::strict::read_for;

    // Past what the server's socket takes (`tcp_wmem` lets it grow to 4 MiB): hyper holds the
    // rest, its write waiting for the socket.
    let body = vec![b'e'; 8 << 20];
    for stack in STACKS {
        let serve = Serve::start(
            "",
            &format!(
                "{stack} {SLOW_TIMEOUTS} --max-body 8388608 --idle-linger-ms 100 --drain-timeout-ms 2000 --force-after-ms 2000"
            ),
        );
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&serve.addr.into()).unwrap();
        let mut stream: std::net::TcpStream = socket.into();
        stream.set_read_timeout(Some(util::READ_TIMEOUT)).unwrap();
        let ports = (serve.addr.port(), stream.local_addr().unwrap().port());
        let head = format!(
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        // The answer is on its way: the server's socket holds bytes the client has not taken.
        util::wait_until("the echo fills the server's socket", || {
            util::tcp_socket(ports.0, ports.1).is_some_and(|(_, unsent, _)| unsent > 0)
        });
        let mut behind = "\r\n".repeat(4100).into_bytes();
        behind.extend_from_slice(b"GET / HTTP/1.1\r\nhost: x\r\n");
        stream.write_all(&behind).unwrap();
        // In the server's socket (acknowledged; the server reads it only once its answer is
        // out), where a 200 ms sleep stood.
        util::wait_until("the head behind delivered", || {
            util::tcp_socket(ports.1, ports.0).is_some_and(|(_, unsent, _)| unsent == 0)
        });
        // A kept-alive connection idle at the stop: closed at the stop's keep-alive step.
        let mut idle = StrictClient::connect(serve.addr);
        idle.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(idle.answer("GET").status, 200, "{stack}");
        util::serve::send_signal(serve.child.id(), "TERM");
        // Past the stop's keep-alive step once the idle connection is closed (a 500 ms sleep
        // stood here): the stop has reached the connections, this one's answer still on its
        // way.
        util::strict::expect_clean_eof(idle.reader_mut())
            .unwrap_or_else(|e| panic!("{stack}, idle: {e}"));
        let mut reader = BufReader::new(stream);
        let echoed = read_for(&mut reader, "POST").expect("the echo");
        assert_eq!(
            (echoed.status, echoed.text().len(), echoed.closes()),
            (200, body.len(), false),
            "{stack}"
        );
        let refused = read_for(&mut reader, "GET").expect("an answer at the drain deadline");
        assert_eq!(
            (refused.status, refused.closes()),
            (503, true),
            "{stack}: {refused:?}"
        );
        util::strict::expect_clean_eof(&mut reader).expect("a clean close");
        let mut serve = serve;
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        // The echo, and the idle connection's request.
        assert_eq!(field(&json, "served"), 2.0, "{stack}: {json}");
    }
}

/// QA client21-2, pipelined: a request with a body and, in the same write, a head past
/// `max_head` behind it (`/echo` with a length or chunked, `GET /` with a body, a health probe
/// with one), with or without the client's FIN after them: the request is answered, then the
/// head refused at once (`431` + close), on both stacks. The body's bytes go back to the count
/// when its route has read it, but not the head's read with them (a first version of the fix
/// began the count again there and forgot them: the head waited for hyper's header timeout).
#[test]
fn a_head_past_max_head_pipelined_behind_a_request_with_a_body_is_refused_at_once_on_both_stacks() {
    let (head, _, status, text) = &util::heads_past_max_head()[0];
    let befores: [(&str, &str); 4] = [
        (
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc",
            "POST",
        ),
        (
            "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "POST",
        ),
        (
            "GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi",
            "GET",
        ),
        (
            "GET /healthz/live HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi",
            "GET",
        ),
    ];
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} {SLOW_TIMEOUTS}"));
        let mut rejected = 0.0;
        for (before, before_method) in befores {
            for fin in [false, true] {
                let shown = format!("{stack}, {before:.30}, FIN {fin}");
                let mut client = StrictClient::connect(serve.addr);
                client.send(format!("{before}{head}").as_bytes());
                if fin {
                    client.send_fin();
                }
                let first = client.answer(before_method);
                assert_eq!((first.status, first.closes()), (200, false), "{shown}");
                let refused = client.answer("GET");
                assert_eq!(
                    (refused.status, refused.text(), refused.closes()),
                    (*status, *text, true),
                    "{shown}: {refused:?}"
                );
                client.expect_nothing_more(true, Duration::ZERO);
                rejected += 1.0;
            }
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), rejected, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 6.0, "{stack}: {json}");
    }
}
