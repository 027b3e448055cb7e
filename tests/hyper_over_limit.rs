//! A connection over the hyper adapter's limit reads its `503` and then a clean end of stream,
//! as on the mio server (tests/server_framing.rs
//! `a_connection_over_the_limit_reads_its_503_not_a_reset`): a client that sent more than the
//! adapter read must not get a reset, which on a real link can discard the `503` before the
//! client reads it (RFC 9112 §9.6).
#![cfg(feature = "hyper")]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use reqguard::engines::{Embedded, Heap};
use reqguard::tokio_hyper::{self, HyperServer, Options};
use reqguard::{Config, ServerCore};

#[test]
fn a_connection_over_the_limit_reads_its_503_then_a_clean_end() {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = thread::spawn(move || {
        let heap = Heap::new();
        let core: ServerCore<Embedded<&'static str>> =
            ServerCore::embedded(heap.alloc("server"), Config::default());
        let server = HyperServer::new(core, tokio_hyper::demo_routes())
            .options(Options::default().max_connections(2));
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let stop = async {
            let _ = stopped.await;
        };
        tokio_hyper::run(server, loopback, |a| addr_tx.send(a).unwrap(), stop)
            .expect("bind 127.0.0.1:0")
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
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
    let _ = stop.send(());
    let _ = server.join();
    for (answer, end) in &outcomes {
        assert!(answer.starts_with("HTTP/1.1 503 "), "{outcomes:?}");
        assert!(
            end.is_ok() && *end != Err(ErrorKind::ConnectionReset),
            "{outcomes:?}"
        );
    }
}
