//! Round 21's load checks, over real sockets on 127.0.0.1 (benches/load/load21.py found them;
//! docs/benchmarks-history.md, 9g). Every wait is bounded.
#![cfg(feature = "hyper")]

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use reqguard::engines::Handle;
use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Options};
use util::hyper_thread::HyperThread;
use util::Client;

/// QA load21-1: at `max_connections`, a newcomer that an idle connection can make room for is
/// served at once on hyper, as on the mio loops. Before, the accept loop first yielded to the
/// connections it had accepted and not read yet, up to four turns of every ready task, and only
/// then evicted: under a flood of silent connections (`benches/load/load21.py rghyper ka:1000
/// --attack flood`: wrk's 1,000 connections beside 1,600 held silent, 1,024 slots) each
/// newcomer waited four turns of every busy connection, and wrk's p99 was 0.8-2 s against mio's
/// 25-46 ms (0.11-0.14 s after).
///
/// Counted in turns, not timed: the server's thread is held inside a handler (`/block`) while
/// two newcomers reach its accept queue, `B` (`/open`: from its handler on, a task on the
/// server's `LocalSet` counts the turns) and `C` (`/close`: answers the count). The limit is 3
/// (a silent connection `A`, old enough to evict, the blocking one, `B`), so `C` needs `A`'s
/// slot. Accepted in the same turn, `B` and `C` are read in the same turn after: 0 turns
/// counted (1 allowed). Before, 3 or more: the yields came between them.
#[test]
fn at_the_limit_an_evictable_connection_makes_room_without_waiting_turns_on_hyper() {
    let (blocked_tx, blocked) = mpsc::channel::<()>();
    let (go, go_rx) = mpsc::channel::<()>();
    let server = HyperThread::spawn(move |core| {
        let go_rx = Rc::new(RefCell::new(Some(go_rx)));
        let open = Rc::new(Cell::new(false));
        let closed = Rc::new(Cell::new(false));
        let turns = Rc::new(Cell::new(0_u64));
        let handler = move |_: Handle<&'static str>, request: Request<Incoming>, bundle: Bundle| {
            let mut body = String::from("ok");
            match request.uri().path() {
                "/block" => {
                    // The whole thread waits here: nothing else runs, the listener's queue fills.
                    blocked_tx.send(()).unwrap();
                    if let Some(go) = go_rx.borrow_mut().take() {
                        let _ = go.recv_timeout(Duration::from_secs(20));
                    }
                }
                "/open" if !closed.get() => {
                    open.set(true);
                    let (open, turns) = (Rc::clone(&open), Rc::clone(&turns));
                    tokio::task::spawn_local(async move {
                        while open.get() {
                            turns.set(turns.get() + 1);
                            tokio::task::yield_now().await;
                        }
                    });
                }
                "/close" => {
                    closed.set(true);
                    open.set(false);
                    body = turns.get().to_string();
                }
                _ => {}
            }
            async move {
                let body = Full::new(Bytes::from(body));
                Ok::<_, HandlerError>(bundle.respond(Response::new(body)))
            }
        };
        HyperServer::new(core, handler).options(
            Options::default()
                .with_max_connections(3)
                .with_stop_linger(Duration::from_millis(100)),
        )
    });
    let addr = server.addr;
    // `A`, silent: accepted before `D`'s request is read (the queue is taken in order).
    let a = Client::connect(addr);
    let mut d = Client::connect(addr);
    d.send(b"GET /block HTTP/1.1\r\nhost: x\r\n\r\n");
    blocked
        .recv_timeout(Duration::from_secs(10))
        .expect("the server's thread to block");
    // `A` becomes evictable 100 ms after its accept; the server waits meanwhile.
    std::thread::sleep(Duration::from_millis(300));
    let mut b = Client::connect(addr);
    b.send(b"GET /open HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut c = Client::connect(addr);
    c.send(b"GET /close HTTP/1.1\r\nhost: x\r\n\r\n");
    go.send(()).unwrap();
    assert_eq!(d.answer().expect("D's answer").status, 200);
    assert_eq!(b.answer().expect("B's answer").status, 200);
    let answer = c.answer().expect("C's answer");
    assert_eq!(answer.status, 200, "C was served, not refused");
    let turns: u64 = answer.text().parse().expect("a count");
    assert!(
        turns <= 1,
        "{turns} turns of the loop passed between B's and C's handlers: the newcomer waited"
    );
    // `A` made room: closed without an answer (it never sent a byte, so there is no request to
    // answer `408`: round 33, as on the mio loops; it got an unsolicited `408` before).
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut a.stream(), &mut rest).expect("A closed cleanly");
    assert!(
        rest.is_empty(),
        "A got {:?}",
        String::from_utf8_lossy(&rest)
    );
    let report = server.stop();
    assert_eq!(report.stats.connections_evicted, 1, "{report}");
    assert_eq!(report.stats.connections_refused, 0, "{report}");
    assert_eq!(report.leaked, 0, "{report}");
}

/// QA load21-2: the `503`s a stop's end gives connections with nothing out (a head still in
/// progress, a connection silent since its accept) are counted in the close step's `answered`
/// on hyper too, so the `503`s clients see are `refused` + `connections_refused` + the close
/// steps' `answered` on both stacks (docs/server.md, "Loop groups"). Before, hyper's step
/// said 0: `benches/load/qa12_stop.py hyper`, clients read 38 `503`s, the JSON had 18.
#[cfg(feature = "server")]
#[test]
fn the_503s_of_the_stops_end_are_in_the_close_steps_answered_on_both_stacks() {
    use util::serve::{close_steps_answered, field, send_signal, Serve};
    use util::strict::StrictClient;
    for stack in ["--stack mio", "--stack hyper"] {
        let serve = Serve::start(
            "",
            &format!(
                "{stack} --loops 2 --idle-linger-ms 100 --request-timeout-ms 30000 \
                 --idle-timeout-ms 30000 --drain-timeout-ms 1000 --force-after-ms 20000"
            ),
        );
        let mut kept = StrictClient::connect(serve.addr);
        kept.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(kept.answer("GET").status, 200, "{stack}");
        kept.send(b"GET / HTTP/1.1\r\nhost: x\r\n");
        let mut fresh = StrictClient::connect(serve.addr);
        fresh.send(b"GET / HTTP/1.1\r\nhost: x\r\n");
        let mut silent = [0; 3].map(|_| StrictClient::connect(serve.addr));
        // Each is accepted (answered on its own connection) before the signal.
        for _ in 0..4 {
            let mut probe = StrictClient::connect(serve.addr);
            probe.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            assert_eq!(probe.answer("GET").status, 200, "{stack}");
        }
        // The probes' answers said nothing of the other loop (`SO_REUSEPORT` hashes each
        // connection to one): before the signal, each head begun is read (one not read yet is
        // an idle connection's) and every silent connection accepted by its loop.
        for client in [&mut kept, &mut fresh] {
            util::wait_read_by_server(client.reader_mut().get_ref());
        }
        for client in &mut silent {
            util::wait_accepted(client.reader_mut().get_ref());
        }
        send_signal(serve.child.id(), "TERM");
        let mut seen = 0;
        for mut client in [kept, fresh].into_iter().chain(silent) {
            let answer = client.answer("GET");
            assert_eq!(
                (answer.status, answer.closes()),
                (503, true),
                "{stack}: {answer:?}"
            );
            seen += 1;
        }
        let mut serve = serve;
        let (json, ok) = serve.json_and_status();
        assert!(ok, "{stack}: {json}");
        let counted = field(&json, "refused")
            + field(&json, "connections_refused")
            + close_steps_answered(&json);
        assert_eq!(counted, f64::from(seen), "{stack}: {json}");
    }
}
