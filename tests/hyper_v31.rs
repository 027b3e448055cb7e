//! hyper31, round 31: the hyper adapter's head limit on later heads of a connection (QA
//! client30-2) and its force step (QA client30-1), through `reqguard-demo serve` over real
//! sockets, on both stacks where they should agree. Answers are read by the strict client
//! (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::Duration;

use util::heads::head_of;
use util::serve::{field, send_signal, Serve};
use util::small_window::{echo, small_window_client};
use util::strict::{read_for, StrictClient};

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// The default `max_head` of both stacks (`Limits::max_head`, `Options::max_head`).
const MAX_HEAD: usize = 8 * 1024;

/// The shapes of a head whose estimate (as written with `CRLF` and `: `) is past its bytes
/// (bare `LF` line ends, `name:value` fields), and a canonical one.
const SHAPES: [(&str, usize); 3] = [("\n", 0), ("\n", 60), ("\r\n", 61)];

/// A `GET /` (or, `after_body`, a `POST /echo` of 100 KB) answered and read on a new
/// connection, then (after a pause, so that the server has read all it was sent and waits)
/// `head` sent on the same connection: its answer's status and whether it closes.
fn later_head(
    serve: &Serve,
    head: &[u8],
    dribbled_from: Option<usize>,
    after_body: bool,
) -> (u16, bool) {
    let mut client = StrictClient::connect(serve.addr);
    if after_body {
        client.send(&echo(100_000));
        assert_eq!(client.answer("POST").status, 200);
    } else {
        client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(client.answer("GET").status, 200);
    }
    sleep(Duration::from_millis(20));
    match dribbled_from {
        None => client.send(head),
        Some(at) => {
            client.send(&head[..at]);
            for byte in &head[at..] {
                sleep(Duration::from_millis(2));
                // The server may refuse and close before the last byte: a failed write is fine.
                if client.reader_mut().get_mut().write_all(&[*byte]).is_err() {
                    break;
                }
            }
        }
    }
    let answer = client.answer("GET");
    (answer.status, answer.closes())
}

/// QA client30-2, kept-alive part (lead 2 of round 30), at the limit and one past it. A later
/// head of a kept-alive connection (after a small `GET`, or after a 100 KB body, which hyper
/// reads in reads larger than `max_head`) is judged by its bytes on both stacks, whatever its shape:
/// exactly `max_head` bytes is served (hyper answered `431` to the `LF` shapes: it judged them
/// by their estimate, its count of bytes holding the request before), one more is `431` +
/// close (the count begins again at the new head, never after its first byte).
#[test]
fn a_later_head_at_max_head_is_served_and_one_byte_more_is_431_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", stack);
        let mut failed = Vec::new();
        for (eol, fields) in SHAPES {
            for (len, want) in [(MAX_HEAD, (200, false)), (MAX_HEAD + 1, (431, true))] {
                for after_body in [false, true] {
                    let got = later_head(&serve, &head_of(len, eol, fields), None, after_body);
                    if got != want {
                        failed.push(format!(
                            "{eol:?} {fields} fields, {len} bytes, after a body {after_body}: {got:?}"
                        ));
                    }
                }
            }
        }
        assert!(failed.is_empty(), "{stack}: {failed:#?}");
    }
}

/// The count of a later head's bytes is never begun again inside the head: a head sent after a
/// kept-alive answer, all but its last 100 bytes at once and then one byte per write past
/// `max_head` (each read waits for the next byte), is `431` + close on both stacks, as soon as
/// it is past the limit (not served, and not held until a timeout or hyper's 64 KiB buffer).
#[test]
fn a_later_head_dribbled_past_max_head_is_431_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", stack);
        for (eol, fields) in SHAPES {
            let head = head_of(MAX_HEAD + 60, eol, fields);
            let got = later_head(&serve, &head, Some(MAX_HEAD - 40), false);
            assert_eq!(got, (431, true), "{stack}: {eol:?} {fields} fields");
        }
    }
}

/// A head begun in the same write as the request before it, that request still in its handler
/// (`GET /delay`): hyper holds the head's first part in its buffer and reads nothing while the
/// request is out, so the count is not begun again under it. The rest of the head comes after
/// the answer: `max_head + 1` bytes in all is `431` + close on both stacks, never served.
#[test]
fn a_pipelined_head_buffered_while_a_request_is_out_is_counted_whole_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", stack);
        for (eol, fields) in SHAPES {
            let head = head_of(MAX_HEAD + 1, eol, fields);
            let mut client = StrictClient::connect(serve.addr);
            let first = b"GET /delay?ms=200 HTTP/1.1\r\nhost: x\r\n\r\n";
            client.send(&[&first[..], &head[..4000]].concat());
            assert_eq!(client.answer("GET").status, 200, "{stack}");
            sleep(Duration::from_millis(20));
            client.send(&head[4000..]);
            let answer = client.answer("GET");
            assert_eq!(
                (answer.status, answer.closes()),
                (431, true),
                "{stack}: {eol:?} {fields} fields"
            );
        }
    }
}

/// QA client30-2, pipelined part. A head in the same write as requests before it is judged by
/// its bytes on both stacks, whatever its shape: exactly `max_head` bytes is served, one more
/// is `431` + close. Before it, in one write: a small `GET /`, a `POST /echo` with a body, or
/// another head of the same size and shape. On hyper, these were `431` at `max_head` for the
/// `LF` shapes (judged by their estimate: the count of bytes read held the requests read with
/// them); the count now never passes `max_head` while hyper reads a head, and hyper's buffer
/// is judged by its bytes when it holds the limit and the head goes on.
#[test]
fn a_pipelined_head_at_max_head_is_served_and_one_byte_more_is_431_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", stack);
        let mut failed = Vec::new();
        for (eol, fields) in SHAPES {
            for (len, want) in [(MAX_HEAD, (200, false)), (MAX_HEAD + 1, (431, true))] {
                let big = head_of(len, eol, fields);
                let small = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
                let twice = head_of(MAX_HEAD, eol, fields);
                for (name, first, method) in [
                    ("GET", small, "GET"),
                    ("POST", echo(3000), "POST"),
                    ("same shape", twice, "GET"),
                ] {
                    let mut client = StrictClient::connect(serve.addr);
                    client.send(&[first, big.clone()].concat());
                    let answer = client.answer(method);
                    assert_eq!(answer.status, 200, "{stack} {name}: {answer:?}");
                    let answer = client.answer("GET");
                    let got = (answer.status, answer.closes());
                    if got != want {
                        failed.push(format!(
                            "{eol:?} {fields} fields, after {name}, {len} bytes: {got:?}"
                        ));
                    }
                }
            }
        }
        assert!(failed.is_empty(), "{stack}: {failed:#?}");
    }
}

/// Everything the server sent on `stream` until its FIN (or a reset: what came before it).
fn all_sent(mut stream: TcpStream) -> Vec<u8> {
    let mut sent = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return sent,
            Ok(n) => sent.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether `sent` is a whole `200` echo of `body_len` bytes, then the `503` + close of the
/// head begun behind it, and nothing after them.
fn echo_then_503(sent: &[u8], body_len: usize) -> bool {
    let mut reader = BufReader::new(sent);
    let echoed = match read_for(&mut reader, "POST") {
        Ok(echoed) => (echoed.status, echoed.body.len()) == (200, body_len),
        Err(_) => false,
    };
    let refused = match read_for(&mut reader, "GET") {
        Ok(answer) => (answer.status, answer.closes()) == (503, true),
        Err(_) => false,
    };
    echoed && refused && reader.buffer().is_empty() && reader.get_ref().is_empty()
}

/// The stop of the force-step probes: the deadline 500 ms after SIGTERM, the force step 500 ms
/// after it; echoes up to 4 MB; no send rate rule (the clients read nothing for a while).
const FORCE_FLAGS: &str = "--drain-timeout-ms 500 --force-after-ms 500 --min-send-rate 0 \
                           --idle-timeout-ms 20000 --max-body 4000000";

/// The echoes of the force-step probes: each far more than a [`small_window_client`]'s socket
/// takes unread (a few tens of KiB), so each is still being written at the force step.
const ECHOES: [usize; 3] = [200_000, 600_000, 3_000_000];

/// `serve` on `stack` with a `GET /delay` that outlasts the drain (so the stop reaches its
/// force step by time) and one [`small_window_client`] per echo of [`ECHOES`], each answered,
/// a head begun behind it (`GET /` without its end), and reading nothing yet. SIGTERM; returns once the force step has closed the delayed
/// request's connection (no answer on it), with the echoes' connections.
fn echoes_held_at_the_force_step(stack: &str) -> (Serve, Vec<TcpStream>) {
    let serve = Serve::start("", &format!("{FORCE_FLAGS} {stack}"));
    let mut held = TcpStream::connect(serve.addr).unwrap();
    held.set_read_timeout(Some(util::READ_TIMEOUT)).unwrap();
    held.write_all(b"GET /delay?ms=20000 HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let clients: Vec<TcpStream> = ECHOES
        .iter()
        .map(|&body_len| {
            let mut stream = small_window_client(serve.addr);
            stream.write_all(&echo(body_len)).unwrap();
            stream
        })
        .collect();
    // Before the signal: the delayed request admitted (read), and every echo answered (both
    // stacks read a body whole before the answer's first byte): its client has that byte.
    util::wait_read_by_server(&held);
    for client in &clients {
        util::wait_until("the echo's answer begun", || !util::open_and_silent(client));
    }
    for mut client in &clients {
        client.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
    }
    // Each head begun is in the server's socket: read at once, or (an echo past the stack's
    // output bound still being written) once the echo is written, after the force step.
    for client in &clients {
        util::wait_sent(client);
    }
    send_signal(serve.child.id(), "TERM");
    let mut rest = Vec::new();
    let _ = held.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{stack}: the delayed request answered");
    (serve, clients)
}

/// QA client30-1 on hyper (the mio loops' force step was fixed in round 30). Answers computed
/// before the stop's force step are sent after it: three echoes, each far more than its
/// client's socket takes unread, are read whole once the force step has closed the connection
/// of the request still out (a `GET /delay` its handler has not answered: it alone is ended,
/// with no answer), each followed by the drain deadline's `503` + close to the head begun
/// behind it, as soon as the echo is written. The exit JSON says so: one connection
/// force-closed, no answer undelivered, the echoes `served`. Before, hyper's force step
/// aborted every connection's task, and each echo was cut, counted `undelivered` (3 of 3);
/// and, the echoes let go, a head behind one waited unanswered for the close linger's end.
#[test]
fn answers_computed_before_the_force_step_are_read_whole_after_it_on_both_stacks() {
    for stack in STACKS {
        let (mut serve, clients) = echoes_held_at_the_force_step(stack);
        let readers: Vec<_> = clients
            .into_iter()
            .map(|stream| std::thread::spawn(move || all_sent(stream)))
            .collect();
        let whole: Vec<bool> = readers
            .into_iter()
            .zip(ECHOES)
            .map(|(reader, body_len)| echo_then_503(&reader.join().unwrap(), body_len))
            .collect();
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        assert_eq!(whole, [true; 3], "{stack}: {json}");
        assert_eq!(
            (
                field(&json, "force_closed"),
                field(&json, "undelivered"),
                field(&json, "served"),
                field(&json, "leaked"),
            ),
            (1.0, 0.0, 3.0, 0.0),
            "{stack}: {json}"
        );
    }
}

/// What the force step leaves to go out is bounded: a second SIGTERM after it closes every
/// connection at once (the echoes, not read yet, are cut: each counted `undelivered`, none
/// `served`), as at any step on both stacks. The clients begin to read a second after the
/// second signal, long before the close linger's 5 s would end: had the second signal been
/// ignored, they would have read their echoes whole.
#[test]
fn a_second_signal_after_the_force_step_closes_at_once_on_both_stacks() {
    for stack in STACKS {
        let (mut serve, clients) = echoes_held_at_the_force_step(stack);
        send_signal(serve.child.id(), "TERM");
        let (json, ok) = serve.json_and_status();
        sleep(Duration::from_secs(1));
        let whole: Vec<bool> = clients
            .into_iter()
            .zip(ECHOES)
            .map(|(stream, body_len)| echo_then_503(&all_sent(stream), body_len))
            .collect();
        assert!(ok, "{stack}: {json}");
        assert_eq!(whole, [false; 3], "{stack}: {json}");
        assert_eq!(
            (
                field(&json, "undelivered"),
                field(&json, "served"),
                field(&json, "leaked")
            ),
            (3.0, 0.0, 0.0),
            "{stack}: {json}"
        );
    }
}

/// And bounded without a second signal: a client that never reads its echo holds its
/// connection past the force step only for the close linger's limit (5 s), then it is closed,
/// its echo counted `undelivered`, and `serve` exits.
#[test]
fn an_answer_never_read_is_held_only_for_the_close_linger_on_both_stacks() {
    for stack in STACKS {
        let (mut serve, clients) = echoes_held_at_the_force_step(stack);
        let (json, ok) = serve.json_and_status(); // the clients still read nothing
        assert!(ok, "{stack}: {json}");
        assert_eq!(
            (field(&json, "undelivered"), field(&json, "served")),
            (3.0, 0.0),
            "{stack}: {json}"
        );
        drop(clients);
    }
}
