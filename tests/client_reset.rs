//! A client that resets its connection after reading every answer keeps them `served`, on both
//! stacks, over a real socket (`benches/load/qa14_resets.py`; docs/server.md "Undelivered
//! answers"). At a reset the kernel drops the socket's send queue, so only the answers the
//! client's TCP acknowledged got there: `src/unsent.rs` reads those bytes by `TCP_INFO`, which
//! the kernel keeps after the reset. Before, the look-up went by `sock_diag`, which no longer
//! finds a reset socket, and the fallback counted every answer of a connection with small
//! answers `undelivered` (100 of 100 here; `wrk -c1000`, which ends its run by resetting busy
//! connections: 170,190 of 325,126 where wrk had read about 318,000).
//!
//! And a client that sends a request and closes (FIN, not a half-close it reads after) has
//! that answer `undelivered`: it meets the client's reset. The mio loop, seeing the FIN before
//! it wrote the answer, closed at once and counted it `served`; it now waits for the client's
//! TCP to acknowledge or reset (`acknowledged_or_gone` in src/http/server.rs).
#![cfg(all(feature = "server", feature = "hyper", target_os = "linux"))]

mod util;

use std::io::Write;
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

/// `client` against the mio demo server, then its stop: `served`, `undelivered`, outcomes.
fn on_mio(client: fn(SocketAddr)) -> (u64, u64, OutcomeCounts) {
    let running = util::demo_server(Limits::default());
    client(running.addr());
    let report = running.stop().unwrap();
    (
        report.stats.served,
        report.stats.undelivered,
        report.outcomes,
    )
}

/// The same on the hyper demo server.
fn on_hyper(client: fn(SocketAddr)) -> (u64, u64, OutcomeCounts) {
    let server = HyperThread::spawn(|core| HyperServer::new(core, tokio_hyper::demo_routes()));
    client(server.addr);
    let report = server.stop();
    (
        report.stats.served,
        report.stats.undelivered,
        report.outcomes,
    )
}

#[test]
fn mio_answers_read_before_a_clients_reset_stay_served() {
    let (served, undelivered, outcomes) = on_mio(read_every_answer_then_reset);
    assert_read_answers_served(served, undelivered, &outcomes);
}

#[test]
fn hyper_answers_read_before_a_clients_reset_stay_served() {
    let (served, undelivered, outcomes) = on_hyper(read_every_answer_then_reset);
    assert_read_answers_served(served, undelivered, &outcomes);
}

/// `ANSWERS` requests on one connection, each answer read whole, then one more request and a
/// close at once: its answer comes to a closed socket, whose TCP resets the connection. The
/// last request is corked (`TCP_CORK`), so it leaves with the FIN, after the close: the answer
/// cannot reach the socket before it is closed (which would acknowledge it). Waits until the
/// server's socket of it is gone from the kernel's table (the reset reached it).
fn read_every_answer_then_close_after_a_request(addr: SocketAddr) {
    let mut client = util::Client::connect(addr);
    for _ in 0..ANSWERS {
        let answer = client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    let mut stream = client.stream().try_clone().unwrap();
    let local = stream.local_addr().unwrap();
    socket2::SockRef::from(&stream).set_tcp_cork(true).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    drop((stream, client));
    // A reset socket leaves the kernel's table.
    util::wait_until("the reset to reach the server's socket", || {
        util::tcp_socket(addr.port(), local.port()).is_none()
    });
}

/// The `ANSWERS` read are `served` (at most the last one not, as above), the one the reset met
/// is not.
fn assert_only_read_answers_served(served: u64, undelivered: u64, outcomes: &OutcomeCounts) {
    let counted = (served, undelivered);
    assert_eq!(served + undelivered, ANSWERS + 1, "{counted:?}");
    assert!(
        undelivered >= 1,
        "{counted:?}: the last answer met the client's reset"
    );
    assert!(served >= ANSWERS - 1, "{counted:?}: read whole");
    assert_eq!(outcomes.completed, ANSWERS + 1, "{outcomes:?}");
}

#[test]
fn mio_an_answer_to_a_client_that_closed_first_is_undelivered() {
    let (served, undelivered, outcomes) = on_mio(read_every_answer_then_close_after_a_request);
    assert_only_read_answers_served(served, undelivered, &outcomes);
}

#[test]
fn hyper_an_answer_to_a_client_that_closed_first_is_undelivered() {
    let (served, undelivered, outcomes) = on_hyper(read_every_answer_then_close_after_a_request);
    assert_only_read_answers_served(served, undelivered, &outcomes);
}

/// A request, then a half-close (RFC 9112 §9.6 lets a client close its sending side and read
/// on): the answer is read whole, and counted `served`. The mio loop's wait for the
/// acknowledgement of answers written after a client's FIN must end in delivered here, not
/// lose or hold the answer.
fn request_then_half_close(addr: SocketAddr) {
    let mut client = util::Client::connect(addr);
    client.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    client.stream().shutdown(std::net::Shutdown::Write).unwrap();
    let answer = client
        .answer()
        .expect("the answer to a half-closed request");
    assert_eq!((answer.status, answer.text()), (200, "hello"));
    assert!(client.is_closed_by_server(), "then the server closes");
}

#[test]
fn answers_to_a_half_closed_client_are_served_on_both_stacks() {
    for (stack, (served, undelivered, outcomes)) in [
        ("mio", on_mio(request_then_half_close)),
        ("hyper", on_hyper(request_then_half_close)),
    ] {
        assert_eq!((served, undelivered), (1, 0), "{stack}");
        assert_eq!((outcomes.completed, outcomes.total()), (1, 1), "{stack}");
    }
}
