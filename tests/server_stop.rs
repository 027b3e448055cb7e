//! Stopping over real sockets: abort on client disconnect, a drain that hits its deadline, a
//! stop from the loop (a handler) and from another thread, and the unaccounted baseline.
#![cfg(feature = "server")]

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqguard::http::{
    demo_routes, Guarded, Limits, Reply, Request, Response, Router, ServerBuilder, Unaccounted,
};
use reqguard::{AbortReason, Config};
use util::{get, wait_until, Client};

/// Demo routes plus `GET /hang`, which never answers by itself and counts its signal's aborts
/// by reason (client gone, drain deadline).
fn routes_with_hang(aborts: Arc<[AtomicUsize; 2]>) -> impl FnOnce(&mut Router<'_>) + Send {
    move |router| {
        demo_routes(router);
        router.route(
            "GET",
            "/hang",
            move |req: &Request<'_>, _: &mut Response<'_>| {
                let aborts = Arc::clone(&aborts);
                let signal = req.signal().expect("guarded requests have a signal");
                assert!(signal.on_abort(move |reason| {
                    let slot = match reason {
                        AbortReason::ClientDisconnected => 0,
                        _ => 1,
                    };
                    aborts[slot].fetch_add(1, Ordering::SeqCst);
                }));
                Reply::After {
                    delay: Duration::from_secs(3600),
                    token: 0,
                }
            },
        );
        router.route(
            "POST",
            "/stop",
            |_: &Request<'_>, res: &mut Response<'_>| {
                res.stop_server();
                res.write(b"stopping");
                Reply::Now
            },
        );
    }
}

#[test]
fn a_client_disconnect_aborts_its_requests_signal_and_releases_its_guards() {
    let aborts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let running = ServerBuilder::new()
        .spawn(
            || Guarded::embedded("server", Config::default()),
            routes_with_hang(Arc::clone(&aborts)),
        )
        .unwrap();
    let mut client = Client::connect(running.addr());
    client.send(b"GET /hang HTTP/1.1\r\nhost: x\r\n\r\n");
    // The request is admitted when the next one on another connection has been answered.
    assert_eq!(get(running.addr(), "/").status, 200);
    drop(client);
    wait_until("the abort listener to run", || {
        aborts[0].load(Ordering::SeqCst) == 1
    });
    let report = running.stop().unwrap();
    assert_eq!(report.stats.aborted, 1);
    assert_eq!(aborts[1].load(Ordering::SeqCst), 0);
    assert!(!report.drain_deadline_hit);
    // G8: the hanging request ended as client gone, the answered one as completed.
    assert_eq!(
        (report.outcomes.client_gone, report.outcomes.completed),
        (1, 1)
    );
    assert!(
        report.to_json().contains("\"client_gone\":1"),
        "{}",
        report.to_json()
    );
    assert_eq!(report.leaked, 0, "{}", report.leaks);
}

/// A request and the client's FIN close behind it, often read in one wake-up: the server must
/// still see the end of input (a short read does not end the reading then), so the request is
/// aborted as client gone, not left hanging until a timeout.
#[test]
fn a_request_sent_with_the_clients_fin_is_aborted_when_the_fin_is_read() {
    let aborts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let running = ServerBuilder::new()
        .spawn(
            || Guarded::embedded("server", Config::default()),
            routes_with_hang(Arc::clone(&aborts)),
        )
        .unwrap();
    for round in 1..=20 {
        let mut client = Client::connect(running.addr());
        client.send(b"GET /hang HTTP/1.1\r\nhost: x\r\n\r\n");
        client.stream().shutdown(std::net::Shutdown::Write).unwrap();
        // Promptly: well before the idle timeout (5 s), which would close it anyway.
        let until = Instant::now() + Duration::from_secs(2);
        while aborts[0].load(Ordering::SeqCst) < round {
            assert!(
                Instant::now() < until,
                "round {round}: the FIN was not read"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let report = running.stop().unwrap();
    assert_eq!(report.outcomes.client_gone, 20, "{report}");
    assert_eq!(report.leaked, 0, "{}", report.leaks);
}

#[test]
fn a_drain_that_hits_its_deadline_aborts_and_force_closes() {
    let aborts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let running = ServerBuilder::new()
        .limits(Limits::default().with_drain_timeout(Duration::from_millis(100)))
        .spawn(
            || Guarded::embedded("server", Config::default()),
            routes_with_hang(Arc::clone(&aborts)),
        )
        .unwrap();
    let mut hanging = Client::connect(running.addr());
    hanging.send(b"GET /hang HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(get(running.addr(), "/").status, 200);
    let report = running.stop().unwrap();
    assert!(report.drain_deadline_hit, "{report}");
    assert_eq!(report.stats.aborted, 1);
    assert_eq!(report.force_closed, 1);
    assert_eq!(
        aborts[1].load(Ordering::SeqCst),
        1,
        "aborted by the deadline"
    );
    // The deadline aborted it before the force close: the first cause wins.
    assert_eq!(report.outcomes.deadline_aborted, 1, "{report}");
    assert_eq!(report.outcomes.force_closed, 0, "{report}");
    assert_eq!(aborts[0].load(Ordering::SeqCst), 0);
    assert_eq!(report.leaked, 0, "{}", report.leaks);
    // The connection was closed without an answer.
    assert!(hanging.answer().is_err());
}

#[test]
fn a_connection_lingering_after_its_last_answer_is_not_counted_force_closed() {
    let running = ServerBuilder::new()
        .limits(Limits::default().with_drain_timeout(Duration::from_millis(100)))
        .spawn(
            || Guarded::embedded("server", Config::default()),
            demo_routes,
        )
        .unwrap();
    let mut lingering = Client::connect(running.addr());
    let answer = lingering.request("GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((answer.status, answer.closes()), (200, true));
    // The server's FIN: it lingers now (500 ms, past the drain's 100) while this side is open.
    assert!(lingering.is_closed_by_server());
    let report = running.stop().unwrap();
    assert_eq!(report.force_closed, 0, "it was closed already: {report}");
    assert_eq!(report.outcomes.completed, 1, "{report}");
    assert_eq!(report.leaked, 0, "{}", report.leaks);
}

#[test]
fn a_handler_can_stop_the_server_from_the_loop() {
    let aborts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let running = ServerBuilder::new()
        .spawn(
            || Guarded::embedded("server", Config::default()),
            routes_with_hang(aborts),
        )
        .unwrap();
    let mut client = Client::connect(running.addr());
    let answer = client.request("POST /stop HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!((answer.status, answer.text()), (200, "stopping"));
    assert!(client.is_closed_by_server());
    // Nobody called the stop handle: the loop stopped itself.
    let report = running.join().unwrap();
    assert_eq!(report.stats.served, 1);
    assert_eq!(report.leaked, 0);
}

#[test]
fn stop_handles_are_send_and_stop_from_another_thread() {
    let running = ServerBuilder::new()
        .spawn(
            || Guarded::embedded("server", Config::default()),
            demo_routes,
        )
        .unwrap();
    let stop = running.stop_handle();
    std::thread::spawn(move || stop.stop()).join().unwrap();
    let report = running.join().unwrap();
    assert_eq!(report.leaked, 0);
    assert!(report.drain_time.is_some());
}

#[test]
fn the_unaccounted_baseline_serves_the_same_answers() {
    let running = ServerBuilder::new()
        .limits(Limits::default().with_drain_timeout(Duration::from_millis(100)))
        .spawn(Unaccounted::new, demo_routes)
        .unwrap();
    let mut client = Client::connect(running.addr());
    assert_eq!(
        client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").text(),
        "hello"
    );
    let echo = client.request("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi");
    assert_eq!(echo.text(), "hi");
    assert_eq!(
        client
            .request("GET /panic HTTP/1.1\r\nhost: x\r\n\r\n")
            .status,
        500
    );
    client.send(b"GET /delay?ms=60000 HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(get(running.addr(), "/").status, 200);
    let report = running.stop().unwrap();
    assert_eq!(report.stats.served, 4);
    assert!(report.drain_deadline_hit);
    assert_eq!(report.stats.aborted, 1);
    assert!(report.pool.is_none(), "no pool, no ledger");
}
