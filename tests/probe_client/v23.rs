//! qa-client23, round 23: what round 22 left (docs/server.md "Not done"), and what a hostile
//! client sees beyond it, through `reqguard-demo serve` (the process a user runs). Answers are
//! read by the strict client (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::io::Write;

use util::serve::{
    all_threads_stopped, field, held_until_its_head_is_whole_then_refused, reset, send_signal,
    Serve,
};
use util::strict::{expect_clean_eof, StrictClient};

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// Sends `bytes` on `client`, ignoring a failure: the server may have answered and closed
/// after an earlier part (its linger reads and drops the rest, or the client's write meets a
/// reset after it), and the answer is read after.
fn send_regardless(client: &mut StrictClient, bytes: &[u8]) {
    let _ = client.reader_mut().get_mut().write_all(bytes);
}

/// QA client23-1. A malformed HTTP version (RFC 9112 §2.3: `HTTP-version = HTTP-name "/" DIGIT
/// "." DIGIT`) makes a malformed request line: `400` + close on both stacks, whether the line
/// arrives in one write or split after the major digit. A well-formed version of another major
/// (`HTTP/2.0`, `HTTP/3.0`, `HTTP/0.9`) is `505` on mio (RFC 9110 §15.6.6; hyper answers every
/// version it does not read `400`, docs/hyper.md). Before, mio answered `505` to every
/// version whose first digit was not 1, malformed or not (`HTTP/2`, `HTTP/02.0`, `HTTP/3.`),
/// decided on that digit alone so that the answer would not depend on the split; it is now
/// decided once the version and its line end are whole, or at the first byte that breaks the
/// grammar. The exit JSON counts each answer `rejected`.
#[test]
fn a_malformed_version_is_400_and_another_major_505_however_the_line_is_split_on_both_stacks() {
    let malformed = [
        "HTTP/2",
        "HTTP/02.0",
        "HTTP/3.",
        "HTTP/00.9",
        "HTTP/01.1",
        "HTTP/2.0x",
        "HTTP/22",
        "HTTP/2.0 ",
    ];
    let other_majors = ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9"];
    for stack in STACKS {
        let serve = Serve::start("", stack);
        let mut answered = 0;
        let mut served = 0;
        let cases = malformed
            .iter()
            .map(|v| (v, 400))
            .chain(other_majors.iter().map(|v| {
                let status = if stack == "--stack mio" { 505 } else { 400 };
                (v, status)
            }));
        for (version, status) in cases {
            let request = format!("GET / {version}\r\nhost: x\r\n\r\n");
            // Whole, then split after the major digit (what mio decided on), the server
            // having read the first part (another process: util::wait_read_by_server; an
            // answer on another connection did not say so on hyper, each connection its own
            // task); the request on another connection is one `served` counts.
            for split in [None, Some("GET / HTTP/".len() + 1)] {
                let shown = format!("{stack}: {request:?} split at {split:?}");
                let mut client = StrictClient::connect(serve.addr);
                match split {
                    None => client.send(request.as_bytes()),
                    Some(at) => {
                        client.send(&request.as_bytes()[..at]);
                        util::wait_read_by_server(client.reader_mut().get_ref());
                        let mut other = StrictClient::connect(serve.addr);
                        other.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
                        assert_eq!(other.answer("GET").status, 200, "{shown}");
                        served += 1;
                        send_regardless(&mut client, &request.as_bytes()[at..]);
                    }
                }
                let answer = client.answer("GET");
                assert_eq!(
                    (answer.status, answer.closes()),
                    (status, true),
                    "{shown}: {answer:?}"
                );
                answered += 1;
            }
        }
        let mut serve = serve;
        send_signal(serve.child.id(), "TERM");
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        assert_eq!(
            field(&json, "rejected"),
            f64::from(answered),
            "{stack}: {json}"
        );
        assert_eq!(field(&json, "served"), f64::from(served), "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}

/// QA client23-2. A refusal is counted in `refused` once the socket has taken its `503` whole,
/// on both stacks: a connection whose client reset it before the server could write the `503`
/// counts none. Ten kept-alive connections each send a request during the drain while the
/// server is paused (`SIGSTOP`), then five close (FIN) and five reset; the server goes on
/// (`SIGCONT`) and meets each request with the client's end behind it: five `503`s go into
/// their sockets (the clients' kernels answer them with resets, but the socket took them) and
/// five cannot be written. Before, mio counted all ten (it counted a refusal when it decided
/// it), hyper five (round 22, docs/server.md "Not done").
#[test]
fn a_refusal_whose_503_the_socket_never_took_is_not_counted_on_either_stack() {
    for stack in STACKS {
        let serve = Serve::start(
            "",
            &format!("{stack} --idle-linger-ms 60000 --drain-timeout-ms 60000"),
        );
        let mut kept: Vec<StrictClient> = (0..10)
            .map(|_| {
                let mut client = StrictClient::connect(serve.addr);
                client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
                let answer = client.answer("GET");
                assert_eq!((answer.status, answer.closes()), (200, false), "{stack}");
                client
            })
            .collect();
        let pid = serve.child.id();
        send_signal(pid, "TERM");
        // The stop has begun once a newcomer is refused (a request before it is served).
        let (mut served, mut refused_read) = (10, 0);
        util::wait_until("a newcomer refused 503", || {
            let mut client = StrictClient::connect(serve.addr);
            client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
            let answer = client.answer("GET");
            match answer.status {
                200 => served += 1,
                503 => refused_read += 1,
                other => panic!("{stack}: {other}"),
            }
            answer.status == 503
        });
        send_signal(pid, "STOP");
        util::wait_until("every thread of the server stopped", || {
            all_threads_stopped(pid)
        });
        for (at, mut client) in kept.drain(..).enumerate() {
            client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
            let stream = client.reader_mut().get_ref().try_clone().unwrap();
            if at % 2 == 1 {
                reset(stream);
            }
            drop(client);
        }
        send_signal(pid, "CONT");
        let mut serve = serve;
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "served"), f64::from(served), "{stack}: {json}");
        assert_eq!(
            field(&json, "refused"),
            f64::from(refused_read + 5),
            "{stack}: the five 503s the sockets took, and the newcomers': {json}"
        );
        assert_eq!(field(&json, "rejected"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}

/// QA client23-3. A connection silent since its accept, spared by the stop's keep-alive step
/// (a client that had just connected is sending its request), whose first bytes come after
/// that step, is a head in progress as one begun before it: kept to the drain deadline on both
/// stacks, refused `503` + close (counted `refused`) once whole. Before, hyper took it for a
/// silent connection at its close step and answered it `503` about a second after the drain,
/// while its client was still sending its head (the head never read, the `503` counted in no
/// refusal); mio keeps it to the drain deadline.
#[test]
fn a_head_begun_after_the_stops_keep_alive_step_is_kept_to_the_deadline_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start(
            "",
            &format!(
                "{stack} --idle-linger-ms 100 --drain-timeout-ms 8000 \
                 --request-timeout-ms 60000 --idle-timeout-ms 60000"
            ),
        );
        let mut idle = StrictClient::connect(serve.addr);
        idle.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(idle.answer("GET").status, 200, "{stack}");
        let mut fresh = StrictClient::connect(serve.addr);
        // Accepted once a request sent after it on another connection is answered.
        let mut other = StrictClient::connect(serve.addr);
        other.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        assert_eq!(other.answer("GET").status, 200, "{stack}");
        send_signal(serve.child.id(), "TERM");
        // The stop's keep-alive step has passed once the idle connection is closed: the fresh
        // one, silent, was spared there.
        expect_clean_eof(idle.reader_mut()).unwrap_or_else(|e| panic!("{stack}, idle: {e}"));
        fresh.send(b"GET / HTTP/1.1\r\nhost: x\r\n");
        held_until_its_head_is_whole_then_refused(stack, serve, &mut fresh);
    }
}
