//! A connection over the hyper adapter's limit reads its `503` and then a clean end of stream,
//! as on the mio server (tests/server_framing.rs
//! `a_connection_over_the_limit_reads_its_503_not_a_reset`): a client that sent more than the
//! adapter read must not get a reset, which on a real link can discard the `503` before the
//! client reads it (RFC 9112 §9.6).
#![cfg(feature = "hyper")]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use reqguard::tokio_hyper::{self, HyperServer, Options};
use util::hyper_thread::HyperThread;

mod util;

#[test]
fn a_connection_over_the_limit_reads_its_503_then_a_clean_end() {
    let server = HyperThread::spawn(|core| {
        HyperServer::new(core, tokio_hyper::demo_routes())
            .options(Options::default().with_max_connections(2))
    });
    let addr = server.addr;
    // Two requests in their handler hold both slots.
    let holders: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut held = TcpStream::connect(addr).unwrap();
            held.write_all(b"GET /delay?ms=3000 HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
            held
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        let mut over = TcpStream::connect(addr).unwrap();
        over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request =
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3000\r\n\r\n".to_vec();
        request.resize(request.len() + 3000, b'x');
        // The adapter may close before all of it is sent: that is not what is checked.
        let _ = over.write_all(&request);
        let mut answer = Vec::new();
        let end = over.read_to_end(&mut answer).map_err(|e| e.kind());
        outcomes.push((
            String::from_utf8_lossy(&answer[..answer.len().min(32)]).into_owned(),
            end,
        ));
    }
    drop(holders);
    let _ = server.stop();
    for (answer, end) in &outcomes {
        assert!(answer.starts_with("HTTP/1.1 503 "), "{outcomes:?}");
        assert!(
            end.is_ok() && *end != Err(ErrorKind::ConnectionReset),
            "{outcomes:?}"
        );
    }
}
