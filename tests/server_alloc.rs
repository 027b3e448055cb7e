//! G7 for the server path: once warm, the sans-IO session parses, admits, dispatches and
//! answers with no heap allocation per request, pipelined and deferred answers included.
//!
//! Its own test binary without the libtest harness (`harness = false` in Cargo.toml), for the
//! reason given in `tests/core_alloc.rs`: a global allocation counter cannot tell threads apart.

use std::alloc::System;
use std::time::Duration;

use reqguard::http::{demo_routes, Guarded, Limits, Router, Routes, Session, Unaccounted};
use reqguard::Config;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Requests of every kind the demo routes answer: plain, keep-alive echo with a length and
/// chunked, 404, a deferred answer with a pipelined one behind it.
const MIX: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /missing HTTP/1.1\r\nhost: x\r\n\r\n",
    b"GET /delay?ms=1 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
];

fn round<A: reqguard::http::Accounting>(session: &mut Session<'_, A>) -> usize {
    let mut answered = 0;
    for request in MIX {
        session.feed(request);
        session.advance(Duration::from_millis(1));
        answered += session.pending_output().len();
        session.clear_output();
    }
    answered
}

fn allocations_per_round<A: reqguard::http::Accounting>(accounting: A) -> usize {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let mut session = Session::new(&router, accounting, Limits::default());
    for _ in 0..64 {
        assert!(round(&mut session) > 0); // warm: buffers, pool, signals, ledger slab
    }
    let region = Region::new(GLOBAL);
    for _ in 0..1_000 {
        assert!(round(&mut session) > 0);
    }
    let stats = region.change();
    assert_eq!(session.stats().served, 1_064 * 6);
    if let Some(ledger) = session.ledger() {
        ledger.assert_quiescent();
    }
    stats.allocations + stats.reallocations
}

/// Large bodies one after another on one connection: a 64 KiB echo with a length, then a
/// 100 KiB chunked one. Once warm, the buffers they need are kept, not given back and grown
/// again for each request.
fn allocations_per_large_round() -> usize {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let accounting = Guarded::embedded("server", Config::default());
    let mut session = Session::new(&router, accounting, Limits::default());
    let body = vec![b'x'; 64 * 1024];
    let mut length = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    length.extend_from_slice(&body);
    let mut chunked =
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..100 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend_from_slice(&body[..1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let large_round = |session: &mut Session<'_, _>| {
        for request in [&length, &chunked] {
            session.feed(request);
            session.advance(Duration::from_millis(1));
            assert!(session.pending_output().len() > 64 * 1024);
            session.clear_output();
        }
    };
    for _ in 0..4 {
        large_round(&mut session);
    }
    let region = Region::new(GLOBAL);
    for _ in 0..100 {
        large_round(&mut session);
    }
    let stats = region.change();
    assert_eq!(session.stats().served, 104 * 2);
    stats.allocations + stats.reallocations
}

#[path = "util/single_test.rs"]
mod single_test;

fn main() {
    single_test::main_for_each(&[
        (
            "server_zero_allocations_per_request_once_warm",
            server_zero_allocations_per_request_once_warm,
        ),
        (
            "large_bodies_one_after_another_reuse_their_buffers",
            large_bodies_one_after_another_reuse_their_buffers,
        ),
    ]);
}

fn server_zero_allocations_per_request_once_warm() {
    let guarded = allocations_per_round(Guarded::embedded("server", Config::default()));
    assert_eq!(guarded, 0, "guarded: heap allocations in 1,000 warm rounds");
    let plain = allocations_per_round(Unaccounted::new());
    assert_eq!(
        plain, 0,
        "unaccounted: heap allocations in 1,000 warm rounds"
    );
}

fn large_bodies_one_after_another_reuse_their_buffers() {
    let large = allocations_per_large_round();
    assert_eq!(
        large, 0,
        "heap allocations in 100 warm rounds of large bodies"
    );
}
