//! Bun issue 22809 / PR 28246, end to end on real sockets: stop the server, collect its
//! wrapper, then send a request on a connection that was kept alive. Bun crashed (a null
//! unwrap, then a leaking 503); here the answer is a 503 with `Connection: close`, or a closed
//! connection, never a crash, and the ledger ends at zero.
#![cfg(feature = "server")]

mod util;

use std::time::Duration;

use reqguard::http::{demo_routes, Guarded, Limits, ServerBuilder};
use reqguard::{Config, DowngradePolicy};
use util::Client;

fn limits() -> Limits {
    // Idle connections stay open after stop long enough for the late request to arrive; the
    // drain deadline bounds the test if something goes wrong.
    Limits::default()
        .with_stop_linger(Duration::from_secs(20))
        .with_drain_timeout(Duration::from_secs(20))
}

#[test]
fn request_on_kept_alive_connection_after_stop_and_collect_is_503() {
    let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
    let running = ServerBuilder::new()
        .limits(limits())
        .spawn(move || Guarded::embedded("server", config), demo_routes)
        .unwrap();
    let mut kept = Vec::new();
    for _ in 0..3 {
        let mut client = Client::connect(running.addr());
        let answer = client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!((answer.status, answer.text()), (200, "hello"));
        assert!(!answer.closes());
        kept.push(client);
    }

    // Stop: the wrapper is downgraded and the heap collects it before this returns.
    assert!(running.stop_handle().stop_and_wait(Duration::from_secs(10)));

    for client in &mut kept {
        let answer = client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(answer.status, 503);
        assert!(answer.closes(), "a refusal closes the connection");
        assert!(client.is_closed_by_server());
    }
    let report = running.join().unwrap();
    assert_eq!(report.stats.refused_finalized, 3, "{report}");
    assert_eq!(report.stats.served, 3);
    assert_eq!(report.leaked, 0, "{}", report.leaks);
    assert!(report.leaks.is_empty());
    assert!(report.drain_time.is_some());
}

#[test]
fn with_downgrade_on_drain_the_late_request_is_refused_as_stopping() {
    let running = ServerBuilder::new()
        .limits(limits())
        .spawn(
            || Guarded::embedded("server", Config::default()),
            demo_routes,
        )
        .unwrap();
    let mut client = Client::connect(running.addr());
    assert_eq!(
        client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").status,
        200
    );
    assert!(running.stop_handle().stop_and_wait(Duration::from_secs(10)));
    let answer = client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!((answer.status, answer.closes()), (503, true));
    drop(client);
    let report = running.join().unwrap();
    // Drained at once (nothing in flight): the wrapper went weak and was collected then, so the
    // late request may find either "stopped" or "finalized"; both are refusals holding nothing.
    assert_eq!(report.stats.refused, 1);
    assert_eq!(report.leaked, 0, "{}", report.leaks);
}

#[test]
fn in_flight_request_finishes_after_the_wrapper_is_collected() {
    let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
    let running = ServerBuilder::new()
        .limits(limits())
        .spawn(move || Guarded::embedded("server", config), demo_routes)
        .unwrap();
    let mut slow = Client::connect(running.addr());
    slow.send(b"GET /delay?ms=200 HTTP/1.1\r\nhost: x\r\n\r\n");
    // Make sure the delayed request is admitted before the stop.
    let mut probe = Client::connect(running.addr());
    assert_eq!(
        probe.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").status,
        200
    );
    drop(probe);
    assert!(running.stop_handle().stop_and_wait(Duration::from_secs(10)));
    let answer = slow.answer().unwrap();
    assert_eq!((answer.status, answer.text()), (200, "delayed 200 ms"));
    assert!(answer.closes(), "answers after stop close their connection");
    let report = running.join().unwrap();
    assert_eq!(report.stats.served, 2);
    assert_eq!(report.stats.aborted, 0);
    assert!(!report.drain_deadline_hit);
    assert_eq!(report.leaked, 0, "{}", report.leaks);
}
