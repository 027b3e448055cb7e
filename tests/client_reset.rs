//! A client that resets its connection after reading every answer keeps them `served`, on both
//! stacks, over a real socket (`benches/load/qa14_resets.py`; docs/server.md "Undelivered
//! answers"). At a reset the kernel drops the socket's send queue, so only the answers the
//! client's TCP acknowledged got there: `src/unsent.rs` reads those bytes by `TCP_INFO`, which
//! the kernel keeps after the reset. Before, the look-up went by `sock_diag`, which no longer
//! finds a reset socket, and the fallback counted every answer of a connection with small
//! answers `undelivered` (100 of 100 here; `wrk -c1000`, which ends its run by resetting busy
//! connections: 170,190 of 325,126 where wrk had read about 318,000).
#![cfg(all(feature = "server", feature = "hyper", target_os = "linux"))]

mod util;

use std::net::SocketAddr;
use std::time::Duration;

use reqguard::http::Limits;
use reqguard::tokio_hyper::{self, HyperServer};
use reqguard::OutcomeCounts;
use util::hyper_thread::HyperThread;

/// Answers read on the connection before its reset.
const ANSWERS: u64 = 100;

/// `ANSWERS` requests on one connection, each answer read whole, then a reset (`SO_LINGER` 0).
fn read_every_answer_then_reset(addr: SocketAddr) {
    let mut client = util::Client::connect(addr);
    for _ in 0..ANSWERS {
        let answer = client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    socket2::SockRef::from(client.stream())
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// Every answer counted once, and at most the last one `undelivered`: the client's TCP may
/// hold back its acknowledgement (a delayed ACK) until the reset, which carries it, and a
/// reset is not read as an acknowledgement. All `ANSWERS` requests ended *completed*.
fn assert_read_answers_served(served: u64, undelivered: u64, outcomes: &OutcomeCounts) {
    let counted = (served, undelivered);
    assert_eq!(served + undelivered, ANSWERS, "{counted:?}");
    assert!(
        served >= ANSWERS - 1,
        "{counted:?}: read whole, reset after"
    );
    assert_eq!(outcomes.completed, ANSWERS, "{outcomes:?}");
    assert_eq!(outcomes.total(), ANSWERS, "{outcomes:?}");
}

#[test]
fn mio_answers_read_before_a_clients_reset_stay_served() {
    let running = util::demo_server(Limits::default());
    read_every_answer_then_reset(running.addr());
    let report = running.stop().unwrap();
    let stats = &report.stats;
    assert_read_answers_served(stats.served, stats.undelivered, &report.outcomes);
}

#[test]
fn hyper_answers_read_before_a_clients_reset_stay_served() {
    let server = HyperThread::spawn(|core| HyperServer::new(core, tokio_hyper::demo_routes()));
    read_every_answer_then_reset(server.addr);
    let report = server.stop();
    let stats = &report.stats;
    assert_read_answers_served(stats.served, stats.undelivered, &report.outcomes);
}
