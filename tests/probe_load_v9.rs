//! QA load round 9: what the load runs (wrk, ab, h2load beside plain hyper and a raw mio
//! server; /work/notes/qa-load9.md) found, each over real sockets, small and bounded.
#![cfg(feature = "server")]

mod util;

use std::time::Duration;

use reqguard::http::{demo_routes, Guarded, Limits, Running, ServerBuilder};
use reqguard::Config;
use util::strict::StrictClient;

fn start(max_connections: usize) -> Running {
    ServerBuilder::new()
        .limits(Limits::default().max_connections(max_connections))
        .spawn(
            || Guarded::embedded("server", Config::default()),
            demo_routes,
        )
        .unwrap()
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
        std::thread::sleep(Duration::from_millis(150)); // another process: let it accept
        send_signal(serve.child.id(), "TERM");
        std::thread::sleep(Duration::from_millis(100)); // the drain has begun
        early.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        let answer = early.answer();
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        let answer = answer.unwrap_or_else(|e| panic!("{stack}: no answer ({e}): {json}"));
        assert_eq!((answer.status, answer.closes()), (503, true), "{stack}");
    }
}
