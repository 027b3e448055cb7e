//! qa-client15, round 15: both stacks as a hostile client sees them, through `reqguard-demo
//! serve` (the process a user runs). Each test fails on the main it was written against and
//! passes after its fix; answers are read by the strict client (tests/util/strict.rs: status
//! line, field syntax, one `content-length`, one IMF-fixdate `date`, exact body, nothing after
//! `connection: close` but a clean FIN). The battery the tests came from is in
//! benches/load/qa15_*.py.
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::net::TcpStream;
use std::time::Duration;

use util::serve::{field, send_signal, Serve};
use util::strict::StrictClient;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// Waits until every thread of process `pid` is stopped by `SIGSTOP`, so that what the test
/// connects meanwhile waits in the listener's backlog. The process's own state (its main
/// thread's, /proc/PID/stat) said `T` while another thread (hyper's accept loop, a tokio
/// worker) could still run and accept.
fn wait_stopped(pid: u32) {
    util::wait_until("every thread of the server stopped", || {
        util::serve::all_threads_stopped(pid)
    });
}

/// Docs/server.md, "Accept": at `max_connections` a newcomer gets `503` only when no connection
/// can make room. Clients that connect and go at once (a load balancer's TCP health checks, a
/// port scan, a client that gave up) wait in the listener's backlog with their FIN or reset
/// behind them, and the loop accepted the whole backlog before reading any of them: once the
/// slots were full of connections accepted in that same turn (none silent for the 100 ms an
/// eviction asks, none read yet), every newcomer behind them got `503` + close, though their
/// clients were gone and their slots free as soon as read. 12 threads connecting and closing
/// next to 12 threads making one request per connection (never more than 24 connections open
/// on the client's side, 1,024 slots): 215 of 4,800 requests `503` on mio, 4 to 96 on hyper
/// (benches/load/qa15_burst.py). Here, deterministically:
/// the server stopped (`SIGSTOP`), 20 clients connect and close (half by FIN, half by reset),
/// one more sends a request, the server goes on, with 8 slots. Now the loop reads what it
/// accepted before refusing anyone (mio: the newcomer and the backlog wait a turn; hyper: the
/// accept loop yields to their tasks): the request is served, no connection refused, none
/// evicted (no `408` to a client gone).
#[test]
fn clients_gone_in_the_backlog_do_not_lock_a_newcomer_out_on_either_stack() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} --max-connections 8"));
        let pid = serve.child.id();
        send_signal(pid, "STOP");
        wait_stopped(pid);
        for i in 0..20 {
            let gone = TcpStream::connect(serve.addr).expect("connect");
            if i % 2 == 1 {
                socket2::SockRef::from(&gone)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
            drop(gone); // FIN, or a reset
        }
        let mut newcomer = StrictClient::connect(serve.addr);
        newcomer.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        send_signal(pid, "CONT");
        let answer = newcomer.answer("GET");
        assert_eq!(
            (answer.status, answer.text(), answer.closes()),
            (200, "hello", false),
            "{stack}: {answer:?}"
        );
        newcomer.expect_nothing_more(false, Duration::from_millis(50));
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(field(&json, "leaked"), 0.0, "{stack}: {json}");
        assert_eq!(field(&json, "served"), 1.0, "{stack}: {json}");
        for key in ["connections_refused", "connections_evicted", "rejected"] {
            assert_eq!(field(&json, key), 0.0, "{stack} {key}: {json}");
        }
    }
}
