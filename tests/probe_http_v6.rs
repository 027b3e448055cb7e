//! QA probes of the servers as a hostile client sees them (round 6), over real sockets: what the
//! held-out battery of clients and attack tools does to `serve`, each finding a test that failed
//! before its fix.
//!
//! - Out of file descriptors (`EMFILE`), connections that sit idle or trickle a head in
//!   (slowloris) are evicted as at `max_connections`: they must not hold every descriptor until
//!   their timeouts while newcomers wait in the kernel's backlog.
#![cfg(feature = "server")]

mod util;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::serve::{field, Serve};
use util::strict::StrictClient;
use util::Client;

/// A slowloris that holds more connections than the server has descriptors, and queues more in
/// the kernel's backlog ahead of a newcomer, does not lock the newcomer out until the request
/// timeout: out of descriptors, the loop evicts the connection reading its head the longest
/// (`408` + close, as at `max_connections`, without the linger: its descriptor is what is short)
/// and takes the next connection from the backlog. Before, accepting only paused and retried,
/// so the newcomer waited until the slow heads' request timeout (30 s here) freed descriptors.
#[test]
fn out_of_descriptors_the_slowest_head_makes_room_for_a_newcomer() {
    // About a dozen descriptors are the server's own: some 20 are left for connections, and
    // some 40 slow heads wait in the backlog ahead of the newcomer.
    let serve = Serve::start(
        "ulimit -n 32 &&",
        "--max-connections 1000 --request-timeout-ms 30000",
    );
    let slow: Vec<TcpStream> = (0..60)
        .map(|_| {
            let mut stream = TcpStream::connect(serve.addr).expect("the kernel backlog accepts");
            stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
            stream
        })
        .collect();
    // Older than the 100 ms a connection must have held its slot to be evicted.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let stream = TcpStream::connect(serve.addr).expect("the kernel backlog accepts");
    let mut newcomer = Client::from_stream(stream, Duration::from_secs(8));
    newcomer.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let answer = newcomer.answer();
    let waited = started.elapsed();
    assert!(
        answer.as_ref().is_ok_and(|a| a.status == 200),
        "after {waited:?}: {answer:?}"
    );
    assert!(
        waited < Duration::from_millis(1500),
        "served after {waited:?}"
    );
    drop(slow);
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "{json}");
    assert!(field(&json, "connections_evicted") >= 1.0, "{json}");
    assert!(field(&json, "accept_backoffs") >= 1.0, "{json}");
    assert_eq!(field(&json, "leaked"), 0.0, "{json}");
}

/// `HEAD /` then `GET /` on one kept-alive connection, both read strictly, then a clean close
/// and SIGTERM: both requests were answered, so both end *completed* (G8), and none fires its
/// abort signal as *client gone*.
fn answered_head_requests_end_completed(stack: &str) {
    let serve = Serve::start("", stack);
    let mut client = StrictClient::connect(serve.addr);
    client.send(b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n");
    let head = client.answer("HEAD");
    assert_eq!(
        (head.status, head.field("content-length")),
        (200, Some("5"))
    );
    assert_eq!(client.answer("GET").body, b"hello");
    client.send(b"HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert!(client.answer("HEAD").closes());
    client.expect_nothing_more(true, Duration::ZERO);
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "{json}");
    assert_eq!(field(&json, "completed"), 3.0, "{stack}: {json}");
    assert_eq!(field(&json, "client_gone"), 0.0, "{stack}: {json}");
}

#[test]
fn mio_ends_answered_head_requests_completed() {
    answered_head_requests_end_completed("");
}

/// Hyper never polls the body of an answer to `HEAD` (it writes the head and drops the body);
/// `GuardedBody` took that drop for a client gone before it knew the answer has no body.
#[cfg(feature = "hyper")]
#[test]
fn hyper_ends_answered_head_requests_completed() {
    answered_head_requests_end_completed("--stack hyper");
}
