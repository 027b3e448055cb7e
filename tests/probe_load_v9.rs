//! QA load round 9: what the load runs (wrk, ab, h2load beside plain hyper and a raw mio
//! server; /work/notes/qa-load9.md) found, each over real sockets, small and bounded.
#![cfg(feature = "server")]

mod util;

use std::time::Duration;

use reqguard::http::{Limits, Running};
use util::strict::StrictClient;

fn start(max_connections: usize) -> Running {
    util::demo_server(Limits::default().with_max_connections(max_connections))
}

/// `ab -c 1000` (connection per request) against the default 1,024 slots: 2,425 of 30,000
/// connections were refused `503` (ab: 11,409 non-2xx of 41,519) while plain hyper and the
/// hyper stack refused none. A connection the server has answered and closed (its FIN sent)
/// lingers up to 500 ms for the client's FIN, and kept its slot: at capacity a newcomer was
/// refused instead of that slot being taken back. It is done; it makes room first.
#[test]
fn connections_answered_and_closed_do_not_hold_slots_newcomers_need() {
    const SLOTS: usize = 4;
    let running = start(SLOTS);
    // Each slot: answered with `connection: close`, closed by the server (EOF read), but the
    // client has not closed its side yet: the server lingers for its FIN.
    let mut done: Vec<StrictClient> = (0..SLOTS)
        .map(|_| {
            let mut client = StrictClient::connect(running.addr());
            client.send(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
            let answer = client.answer("GET");
            assert_eq!((answer.status, answer.closes()), (200, true));
            client.expect_nothing_more(true, Duration::ZERO);
            client
        })
        .collect();
    // Newcomers within the linger (500 ms): served, not refused.
    for i in 0..SLOTS {
        let mut newcomer = StrictClient::connect(running.addr());
        newcomer.send(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n");
        let answer = newcomer.answer("GET");
        assert_eq!(
            answer.status, 200,
            "newcomer {i} refused while {SLOTS} slots were held by connections already closed: {answer:?}"
        );
        done.push(newcomer);
    }
    let report = running.stop().unwrap();
    assert_eq!(report.leaked, 0, "{}", report.leaks);
    assert_eq!(report.stats.connections_refused, 0);
    assert_eq!(report.stats.served, 2 * SLOTS as u64);
}

/// SIGTERM under connection-per-request load (64 clients, each connecting, sending `GET /`
/// with `connection: close`, reading, reconnecting): the hyper stack closed 18 to 27
/// connections per run without an answer, each just accepted with its request on the way
/// (the client read EOF 1 to 9 ms after the signal); the mio stack answered every one (`503`
/// and close, or `200`). hyper's graceful shutdown closes a connection that has read nothing
/// yet; on mio a connection silent since accepted keeps its idle timeout through the drain
/// (and is answered `503` at the close). Now on hyper too: it does not hold the drain, its
/// request is answered `503` + close, and the close step ends it if it stays silent.
#[cfg(feature = "hyper")]
#[test]
fn a_request_on_a_connection_accepted_before_sigterm_is_answered_on_both_stacks() {
    use util::serve::{send_signal, Serve};
    use util::Client;
    for stack in ["--stack mio", "--stack hyper"] {
        let mut serve = Serve::start("", stack);
        let mut early = Client::connect(serve.addr);
        util::wait_accepted(early.stream()); // another process: accepted before the stop
        send_signal(serve.child.id(), "TERM");
        wait_until_the_drain_has_begun(serve.addr);
        early.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        let answer = early.answer();
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        let answer = answer.unwrap_or_else(|e| panic!("{stack}: no answer ({e}): {json}"));
        assert_eq!((answer.status, answer.closes()), (503, true), "{stack}");
    }
}

/// SIGTERM while uploads arrive (32 clients, keep-alive `POST /echo` of 256 KiB sent in 4
/// pieces 20 ms apart, `--idle-linger-ms 200`): on the hyper stack 3 to 4 clients per run
/// lost the `503` their late request was refused with (broken pipe: reset while still
/// sending), the mio stack none. The refused connection lingers to read and drop the rest of
/// the body, but the process exited once the drain was done, closing it under the client
/// (which resets the connection and may discard the unread `503`). The stop now lets such
/// lingering connections finish (their client's FIN, or the 500 ms linger) before it returns.
#[cfg(feature = "hyper")]
#[test]
fn a_503_refusing_an_upload_during_the_drain_is_not_reset_by_the_exit() {
    use std::io::Write;
    use util::serve::{send_signal, Serve};
    use util::Client;
    for stack in ["--stack mio", "--stack hyper"] {
        let mut serve = Serve::start("", &format!("{stack} --idle-linger-ms 1000"));
        let mut stream = std::net::TcpStream::connect(serve.addr).unwrap();
        let mut client = Client::from_stream(stream.try_clone().unwrap(), Duration::from_secs(5));
        client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(
            client.answer().expect("before the stop").status,
            200,
            "{stack}"
        );
        send_signal(serve.child.id(), "TERM");
        wait_until_the_drain_has_begun(serve.addr);
        const BODY: usize = 256 * 1024;
        client.send(
            format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {BODY}\r\n\r\n").as_bytes(),
        );
        // The rest of the body keeps coming while the server answers and its drain ends, in 4
        // pieces 20 ms apart: well within the 500 ms a closed connection lingers after its last
        // answer left (16 pieces 10 ms apart once took longer on a loaded machine, and the
        // linger's end reset the last one).
        const PIECE: usize = BODY / 4;
        let mut sent = 0;
        while sent < BODY {
            if stream.write_all(&[b'z'; PIECE]).is_err() {
                break; // reset: the answer may be lost (asserted below)
            }
            sent += PIECE;
            std::thread::sleep(Duration::from_millis(20));
        }
        let answer = client.answer();
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        let answer =
            answer.unwrap_or_else(|e| panic!("{stack}: the 503 was lost ({e}), {sent} bytes sent"));
        assert_eq!((answer.status, answer.closes()), (503, true), "{stack}");
        // A client that stops at a failed write (curl: "Send failure: Broken pipe") never
        // reads the answer: the body must go out whole, not be reset.
        assert_eq!(sent, BODY, "{stack}: reset after {sent} bytes of the body");
    }
}

/// Waits until a `serve` process signalled to stop has begun its drain: its readiness probe
/// turns `503` (on both stacks, from the drain's first turn), or a probe finds the listener
/// closed (the stop is past its drain).
#[cfg(feature = "hyper")]
fn wait_until_the_drain_has_begun(addr: std::net::SocketAddr) {
    util::wait_until("the drain to begin (readiness 503)", || {
        matches!(util::try_get(addr, "/healthz/ready"), Ok((503, _)) | Err(_))
    });
}
