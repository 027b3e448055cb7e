//! qa-client32, round 32: what a hostile client sees through `reqguard-demo serve` (the process
//! a user runs) beyond rounds 8 to 31. Answers are read by the strict client
//! (tests/util/strict.rs). The battery that found these: benches/load/qa32_battery.py.
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::io::{BufRead, BufReader, Read, Write};

use util::serve::{field, Serve};
use util::small_window::small_window_client;
use util::strict::read_for;

const STACKS: [&str; 2] = ["mio", "hyper"];

/// Requests that ask for an upgrade (or a tunnel) the server does not take, then a `POST /echo`
/// that closes: a `CONNECT` (`501`, the connection kept) before it, or the echo itself with an
/// `Upgrade` field.
const ASKING_FOR_AN_UPGRADE: [(&str, &str); 2] = [
    (
        "CONNECT",
        "CONNECT x:80 HTTP/1.1\r\nhost: x:80\r\n\r\n\
         POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\n",
    ),
    (
        "",
        "POST /echo HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade, close\r\n",
    ),
];

const ECHO_LEN: usize = 256 * 1024;
/// What the client sends after its requests, unread by a server done reading: more than the
/// server's socket queues unread, so a close without the linger resets the connection.
const MORE: usize = 4_000_000;

/// A connection on which a request asked for an upgrade ends as any other the server closes:
/// its last answer whole, then a FIN, what the client still sends read and dropped (RFC 9112
/// §9.6), QA client32-1. hyper 1.x arms an upgrade for every `CONNECT` and every HTTP/1.1
/// request with an `Upgrade` field and never disarms it when the answer is not a `101` (or a
/// `2xx` to `CONNECT`): at the connection's end it returned without flushing its buffer or
/// shutting the write side down (its `Dispatched::Upgrade`, for a server that takes upgrades),
/// so the adapter closed the socket as an aborted one: a reset, no linger. A client with a
/// small receive window (the answer still in the server's hands at the close) that sent on
/// read 47 to 133 KiB of a 256 KiB echo answer with `connection: close`, then the reset, on
/// hyper, after either request; the mio server delivered it whole, then its FIN.
#[test]
fn a_connection_that_asked_for_an_upgrade_closes_without_losing_its_last_answer_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("--stack {stack}"));
        for (first, requests) in ASKING_FOR_AN_UPGRADE {
            let case = format!("{stack}, {}", &requests[..requests.find(' ').unwrap() + 6]);
            let stream = small_window_client(serve.addr);
            let mut request = requests.as_bytes().to_vec();
            request.extend_from_slice(format!("content-length: {ECHO_LEN}\r\n\r\n").as_bytes());
            request.resize(request.len() + ECHO_LEN, b'e');
            request.resize(request.len() + MORE, b'm');
            // The client's window is small: it sends from a thread while this one reads.
            let mut sender = stream.try_clone().unwrap();
            let sending = std::thread::spawn(move || sender.write_all(&request));
            let mut reader = BufReader::new(stream);
            if !first.is_empty() {
                let answer = read_for(&mut reader, first).expect("the first answer");
                assert_eq!((answer.status, answer.closes()), (501, false), "{case}");
            }
            let mut rest = Vec::new();
            let end = reader.read_to_end(&mut rest);
            let sent = sending.join().unwrap();
            let read = rest.len();
            let end = match end {
                Ok(_) => "a FIN".to_string(),
                Err(e) => e.to_string(),
            };
            let mut rest = BufReader::new(&rest[..]);
            let echo = read_for(&mut rest, "POST").unwrap_or_else(|e| {
                panic!("{case}: the echo answer cut at {read} bytes, then {end}: {e}")
            });
            assert_eq!(
                (echo.status, echo.body.len(), echo.closes(), end.as_str()),
                (200, ECHO_LEN, true, "a FIN"),
                "{case}"
            );
            assert!(echo.body.iter().all(|&b| b == b'e'), "{case}");
            assert!(
                rest.fill_buf().unwrap().is_empty(),
                "{case}: bytes after the close"
            );
            sent.unwrap_or_else(|e| panic!("{case}: the server reset while the client sent: {e}"));
        }
        let (json, clean) = serve.signal_and_wait("TERM");
        assert!(clean, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}

/// A `POST /echo` of `body` bytes asking for an upgrade (and to close, if `close`), sent whole
/// from a thread while this one reads: (the answer's status, whether the server closed with a
/// FIN after it and nothing more, the sender's outcome).
fn upload_asking_for_an_upgrade(
    serve: &Serve,
    body: usize,
    close: bool,
) -> (u16, bool, std::io::Result<()>) {
    let stream = std::net::TcpStream::connect(serve.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let connection = if close { "upgrade, close" } else { "upgrade" };
    let mut request = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: {connection}\r\n\
         content-length: {body}\r\n\r\n"
    )
    .into_bytes();
    request.resize(request.len() + body, b'u');
    let mut sender = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || sender.write_all(&request));
    let mut reader = BufReader::new(stream);
    let answer = read_for(&mut reader, "POST").expect("an answer");
    assert!(answer.closes(), "{answer:?}");
    let mut rest = Vec::new();
    let clean = reader.read_to_end(&mut rest).is_ok() && rest.is_empty();
    (answer.status, clean, sending.join().unwrap())
}

/// The same on a server's own refusals of an upload that asked for an upgrade: its `413` (a
/// declared length over `max_body`, answered before the body is read), and in the drain its
/// `503`, end with a FIN and the linger, as without the `Upgrade` field
/// (`an_upload_refused_413_before_its_body_is_read_ends_cleanly_not_reset`). On hyper both
/// reset the connection while the client still sent its body (a client that stops at the
/// failed write, as curl's "Send failure", never reads the answer), and the drain's `503`,
/// counted when hyper shuts the socket, was not counted at all: `refused` 0 for a `503` the
/// client read (QA client32-1).
#[test]
fn refused_uploads_that_asked_for_an_upgrade_end_cleanly_and_are_counted_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("--stack {stack}"));
        let (status, clean, sent) = upload_asking_for_an_upgrade(&serve, 4_000_000, false);
        assert_eq!((status, clean), (413, true), "{stack}: before the stop");
        sent.unwrap_or_else(|e| panic!("{stack}: reset while the client sent its body: {e}"));
        // A request in its handler holds the drain open (its answer read at the end).
        let mut holding = util::strict::StrictClient::connect(serve.addr);
        holding.send(b"GET /delay?ms=3000 HTTP/1.1\r\nhost: x\r\n\r\n");
        // Another process: read is admitted. Without the wait the signal could be handled
        // before the head was read, and the holding request was refused `503` (CI, stop 40).
        util::wait_read_by_server(holding.reader_mut().get_ref());
        util::serve::send_signal(serve.child.id(), "TERM");
        // Until the drain has begun (admission closed), an upload within `max_body` that says
        // `close` is echoed; in the drain it is refused `503` (on hyper at its head, the body
        // still coming).
        let mut refused = 0;
        for _ in 0..200 {
            let (status, clean, sent) = upload_asking_for_an_upgrade(&serve, 800_000, true);
            assert!(clean, "{stack}: {status} not followed by a clean FIN");
            sent.unwrap_or_else(|e| panic!("{stack}: {status}: reset while sending: {e}"));
            if status == 503 {
                refused += 1;
                break;
            }
            assert_eq!(status, 200, "{stack}");
        }
        assert_eq!(refused, 1, "{stack}: no 503 in the drain");
        assert_eq!(holding.answer("GET").status, 200, "{stack}");
        let mut serve = serve;
        let (json, clean) = serve.json_and_status();
        assert!(clean, "{stack}: {json}");
        assert_eq!(field(&json, "refused"), 1.0, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}

/// And on hyper's own `400` (a head it cannot parse: a NUL in a field name) behind a request
/// that asked for an upgrade: on hyper, where that `400` once ended the connection the same
/// way, the client sending on (4 MB behind the bad head) was reset; now the `400`, then a FIN,
/// what follows read and dropped, as after a bad head on a connection that never asked.
#[test]
fn a_bad_head_behind_a_request_that_asked_for_an_upgrade_ends_cleanly_on_both_stacks() {
    const MORE: usize = 4_000_000;
    for stack in STACKS {
        let serve = Serve::start("", &format!("--stack {stack}"));
        for (first, method) in [
            (
                "GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
                "GET",
            ),
            ("CONNECT x:80 HTTP/1.1\r\nhost: x:80\r\n\r\n", "CONNECT"),
        ] {
            let stream = std::net::TcpStream::connect(serve.addr).unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut request = first.as_bytes().to_vec();
            request.extend_from_slice(b"GET / HTTP/1.1\r\nhost: x\r\nx\0y: z\r\n\r\n");
            request.resize(request.len() + MORE, b'm');
            let mut sender = stream.try_clone().unwrap();
            let sending = std::thread::spawn(move || sender.write_all(&request));
            let mut reader = BufReader::new(stream);
            let answer = read_for(&mut reader, method).expect("the first answer");
            assert!(!answer.closes(), "{stack} {method}: {answer:?}");
            let bad = read_for(&mut reader, "GET").expect("the bad head's answer");
            assert_eq!((bad.status, bad.closes()), (400, true), "{stack} {method}");
            let mut rest = Vec::new();
            let end = reader.read_to_end(&mut rest);
            assert!(
                end.is_ok() && rest.is_empty(),
                "{stack} {method}: after the 400: {end:?}, {} bytes",
                rest.len()
            );
            sending
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("{stack} {method}: reset while the client sent: {e}"));
        }
        let (json, clean) = serve.signal_and_wait("TERM");
        assert!(clean, "{stack}: {json}");
        assert_eq!(field(&json, "rejected"), 2.0, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}
