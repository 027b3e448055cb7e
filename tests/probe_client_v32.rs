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
