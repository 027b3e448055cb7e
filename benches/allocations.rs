//! Heap allocations per request in steady state, counted by a counting global allocator
//! (`stats_alloc`: the crate forbids `unsafe`, so the allocator wrapper comes from a crate).
//!
//! Prints a table and fails (exit 1) if a warm admission allocates. Not a criterion bench: the
//! figures are counts, not times. Criterion's command-line arguments are ignored.
//!
//! With the `server` feature it also counts the whole HTTP request path (client and server in
//! this process; the client side allocates nothing per request, so the count is the server's),
//! guarded and unaccounted, and the heap bytes the server keeps per idle keep-alive connection
//! (user space only: the kernel's socket buffers are not on this heap).
//!
//! ```text
//! cargo bench --bench allocations
//! cargo bench --bench allocations --features leak-check
//! cargo bench --bench allocations --features server
//! ```

mod common;

use std::alloc::System;
use std::hint::black_box;

use common::{guarded_request, hand_request, Core, Ctx, HandServer, Req, REQ};
use reqguard::engines::Heap;
use reqguard::{Admitted, Config, DowngradePolicy, ServerCore};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const WARM: usize = 1_000;
const MEASURED: usize = 100_000;
const PROFILE: &str = if cfg!(feature = "leak-check") {
    "leak-check"
} else {
    "release"
};

/// Allocations (including reallocations) per call of `f` once warm.
fn per_request(mut f: impl FnMut() -> u16, expect: u16) -> f64 {
    for _ in 0..WARM {
        assert_eq!(f(), expect);
    }
    let region = Region::new(GLOBAL);
    for _ in 0..MEASURED {
        black_box(f());
    }
    let change = region.change();
    (change.allocations + change.reallocations) as f64 / MEASURED as f64
}

/// Heap bytes per request while `n` are outstanding at once on a fresh server core (the pool,
/// the signal spares and the slabs grow; the core itself is counted, amortized over `n`), and
/// what stays allocated per request after all are released (the pool and spare signals keep it
/// for the next requests).
fn bytes_per_context(n: usize) -> (f64, f64) {
    let region = Region::new(GLOBAL);
    let heap = Heap::new();
    let core: Core = ServerCore::embedded_with_context(
        heap.alloc("server"),
        Config::default().with_pool_capacity(n).unwrap(),
    );
    let live = core.upgrade().expect("serving");
    let held: Vec<_> = (0..n)
        .map(|_| {
            live.admit(|ctx| {
                ctx.fill(&REQ);
                Ok(REQ)
            })
            .expect("admitted")
        })
        .collect();
    let vec_bytes = held.capacity() * std::mem::size_of::<Admitted<Ctx, Req>>();
    let held_change = region.change();
    drop(held);
    drop(live);
    let after = region.change();
    let cold = (held_change.bytes_allocated as f64 + held_change.bytes_reallocated as f64
        - vec_bytes as f64)
        / n as f64;
    let retained = (after.bytes_allocated as f64 - after.bytes_deallocated as f64
        + after.bytes_reallocated as f64)
        / n as f64;
    core.ledger().assert_quiescent();
    (cold, retained)
}

fn main() {
    let heap = Heap::new();
    let core: Core = ServerCore::embedded_with_context(heap.alloc("server"), Config::default());
    let hand = HandServer::new(&heap, 1024, true);
    let hand_rc = HandServer::new(&heap, 1024, false);

    let finalized_heap = Heap::new();
    let finalized: Core = ServerCore::embedded_with_context(
        finalized_heap.alloc("server"),
        Config::default().with_downgrade(DowngradePolicy::OnStop),
    );
    let _drain = finalized.stop();
    finalized_heap.collect();
    let stopped: Core = ServerCore::embedded_with_context(heap.alloc("server"), Config::default());
    let _drain2 = stopped.stop();

    let rows = [
        (
            "guarded, served",
            per_request(|| guarded_request(&core, REQ), 200),
        ),
        (
            "hand-written, served",
            per_request(|| hand_request(&hand, REQ), 200),
        ),
        (
            "hand-written, new Rc signal per request (Bun's AbortSignal.new())",
            per_request(|| hand_request(&hand_rc, REQ), 200),
        ),
        (
            "guarded, refused (wrapper finalized)",
            per_request(|| guarded_request(&finalized, REQ), 503),
        ),
        (
            "guarded, refused (stopped)",
            per_request(|| guarded_request(&stopped, REQ), 503),
        ),
    ];
    println!("allocations per request, steady state ({PROFILE} build, {MEASURED} requests after {WARM} warm-up):");
    for (what, n) in &rows {
        println!("  {n:>6.3}  {what}");
    }
    core.ledger().assert_quiescent();

    println!("heap bytes per outstanding request (pooled context, signal, ledger and slab slots):");
    for n in [64, 1024, 10_000] {
        let (cold, retained) = bytes_per_context(n);
        println!("  {n:>6} outstanding: {cold:>6.1} B allocated each while held, {retained:>6.1} B kept each after release (pool and spare signals)");
    }

    #[cfg(feature = "server")]
    http::report();

    let guarded_admission = [rows[0].1, rows[3].1, rows[4].1];
    if guarded_admission.iter().any(|&n| n != 0.0) {
        eprintln!("FAIL: a warm guarded admission allocates: {guarded_admission:?}");
        std::process::exit(1);
    }
}

#[cfg(feature = "server")]
mod http {
    use std::time::Duration;

    use reqguard::http::{Accounting, Guarded, Unaccounted};
    use reqguard::Config;
    use stats_alloc::Region;

    use super::common::client::{answer_len, bench_limits, connect, Pipeline, Srv};
    use super::GLOBAL;

    /// Allocations per request over one keep-alive connection, `depth` pipelined, once warm.
    fn per_request<A: Accounting + 'static>(make: fn() -> A, depth: usize) -> f64 {
        let srv = Srv::start(make, bench_limits());
        let mut streams = connect(srv.addr, 1);
        let len = answer_len(&mut streams[0]);
        let mut pipeline = Pipeline::new(depth, len);
        for _ in 0..200 {
            pipeline.round(&mut streams).expect("round");
        }
        let rounds = 2_000;
        let region = Region::new(GLOBAL);
        for _ in 0..rounds {
            pipeline.round(&mut streams).expect("round");
        }
        let change = region.change();
        drop(streams);
        let report = srv.finish();
        assert_eq!(report.leaked, 0);
        (change.allocations + change.reallocations) as f64 / (rounds * depth) as f64
    }

    /// Heap bytes the server keeps per idle keep-alive connection that has served one request.
    fn bytes_per_idle_connection(n: usize) -> f64 {
        let srv = Srv::start(
            || Guarded::embedded("server", Config::default()),
            bench_limits(),
        );
        // Warm the server's own tables a little first, so they are not charged to the first
        // connections only.
        drop(connect(srv.addr, 1));
        std::thread::sleep(Duration::from_millis(50));
        let region = Region::new(GLOBAL);
        let mut streams = connect(srv.addr, n);
        for s in &mut streams {
            answer_len(s); // the client's scratch buffers are freed again at once
        }
        std::thread::sleep(Duration::from_millis(100)); // let the loop settle
        let change = region.change();
        let client_vec = streams.capacity() * std::mem::size_of::<std::net::TcpStream>();
        let kept = change.bytes_allocated as f64 - change.bytes_deallocated as f64
            + change.bytes_reallocated as f64
            - client_vec as f64;
        drop(streams);
        let report = srv.finish();
        assert_eq!(report.leaked, 0);
        kept / n as f64
    }

    pub(super) fn report() {
        println!("allocations per request, whole HTTP request path (GET /, one keep-alive connection, 2,000 rounds after 200 warm-up):");
        for depth in [1, 16] {
            let guarded = per_request(|| Guarded::embedded("server", Config::default()), depth);
            let plain = per_request(Unaccounted::new, depth);
            println!("  depth {depth:>2}: guarded {guarded:.3}, unaccounted {plain:.3}");
        }
        println!("heap bytes kept by the server per idle keep-alive connection (after one request each):");
        for n in [100, 1_000] {
            println!(
                "  {n:>5} connections: {:.0} B each",
                bytes_per_idle_connection(n)
            );
        }
    }
}
