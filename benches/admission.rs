//! Admission cost per request: the guarded path (reqguard as a runtime uses it) against the same
//! work written by hand the way the PR's code does it, side by side in one criterion group.
//!
//! Per request: upgrade the wrapper, take the bundle (ticket, pooled context, signal with an
//! activity ref, request object), hand the request to the engine, release everything. Also the
//! refusal paths: the wrapper was finalized (upgrade fails) and the server is stopped, both 503.
//!
//! The group's name carries the build profile: `admission/release` by default, and
//! `admission/leak-check` with `--features leak-check` (mint sites recorded in release too).
//!
//! ```text
//! cargo bench --bench admission
//! cargo bench --bench admission --features leak-check
//! ```

// `criterion_group!` makes an undocumented `pub fn`.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{guarded_request, hand_request, Core, Ctx, HandServer, Req, REQ};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use reqguard::engines::Heap;
use reqguard::{Config, DowngradePolicy, Refusal, ServerCore};

const PROFILE: &str = if cfg!(feature = "leak-check") {
    "leak-check"
} else {
    "release"
};

/// The guarded path in two steps, as a saved request takes it: a ticket first, then the rest of
/// the bundle for that ticket (`Live::admit_with`).
#[inline(never)]
fn guarded_steps_request(core: &Core, req: Req) -> u16 {
    let Some(live) = core.upgrade() else {
        return Refusal::WRAPPER_FINALIZED.status();
    };
    let ticket = match live.ticket() {
        Ok(ticket) => ticket,
        Err(refusal) => return refusal.status(),
    };
    let mut bundle = match live.admit_with(ticket, |ctx| {
        ctx.fill(&req);
        Ok(req)
    }) {
        Ok(bundle) => bundle,
        Err(refusal) => return refusal.status(),
    };
    let owned_by_engine = bundle.hand_off();
    black_box((&owned_by_engine, live.wrapper(), bundle.signal()));
    let status = bundle.context().status;
    bundle.complete();
    status
}

fn served_core(heap: &Heap) -> Core {
    ServerCore::embedded_with_context::<Ctx>(
        heap.alloc("server"),
        Config::default().with_prewarm(16),
    )
}

fn bench_admission(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("admission/{PROFILE}"));
    group.throughput(Throughput::Elements(1));

    // Served: the whole bundle is taken and released.
    let heap = Heap::new();
    let core = served_core(&heap);
    let hand = HandServer::new(&heap, 1024, true);
    let hand_rc = HandServer::new(&heap, 1024, false);
    assert_eq!(guarded_request(&core, REQ), 200);
    assert_eq!(guarded_steps_request(&core, REQ), 200);
    assert_eq!(hand_request(&hand, REQ), 200);
    assert_eq!(hand_request(&hand_rc, REQ), 200);

    group.bench_function(BenchmarkId::new("guarded", "served"), |b| {
        b.iter(|| guarded_request(black_box(&core), black_box(REQ)))
    });
    group.bench_function(BenchmarkId::new("hand_written", "served"), |b| {
        b.iter(|| hand_request(black_box(&hand), black_box(REQ)))
    });
    group.bench_function(BenchmarkId::new("guarded_steps", "served"), |b| {
        b.iter(|| guarded_steps_request(black_box(&core), black_box(REQ)))
    });
    group.bench_function(
        BenchmarkId::new("hand_written_rc_per_request", "served"),
        |b| b.iter(|| hand_request(black_box(&hand_rc), black_box(REQ))),
    );
    core.ledger().assert_quiescent();
    assert_eq!(core.pool_metrics().in_use, 0);
    assert_eq!(hand.pending_requests.get(), 0);

    // Refused: the wrapper was finalized after stop() (the PR's crash, now a 503).
    let heap = Heap::new();
    let finalized = ServerCore::embedded_with_context::<Ctx>(
        heap.alloc("server"),
        Config::default().with_downgrade(DowngradePolicy::OnStop),
    );
    let hand_finalized = HandServer::new(&heap, 1024, true);
    let _drain = finalized.stop();
    hand_finalized.stop();
    heap.collect();
    assert_eq!(guarded_request(&finalized, REQ), 503);
    assert_eq!(hand_request(&hand_finalized, REQ), 503);
    group.bench_function(BenchmarkId::new("guarded", "refused_finalized"), |b| {
        b.iter(|| guarded_request(black_box(&finalized), black_box(REQ)))
    });
    group.bench_function(BenchmarkId::new("hand_written", "refused_finalized"), |b| {
        b.iter(|| hand_request(black_box(&hand_finalized), black_box(REQ)))
    });

    // Refused: stopped, wrapper still strong (downgrade on drain): admission is closed.
    let heap = Heap::new();
    let stopped = served_core(&heap);
    let _drain = stopped.stop();
    let hand_stopped = HandServer::new(&heap, 1024, true);
    hand_stopped.stop(); // weak now, as reqguard's wrapper is once its (empty) drain completes
    assert_eq!(guarded_request(&stopped, REQ), 503);
    assert_eq!(hand_request(&hand_stopped, REQ), 503);
    group.bench_function(BenchmarkId::new("guarded", "refused_stopped"), |b| {
        b.iter(|| guarded_request(black_box(&stopped), black_box(REQ)))
    });
    group.bench_function(BenchmarkId::new("hand_written", "refused_stopped"), |b| {
        b.iter(|| hand_request(black_box(&hand_stopped), black_box(REQ)))
    });
    for core in [&finalized, &stopped] {
        core.ledger().assert_quiescent();
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(60);
    targets = bench_admission
}
criterion_main!(benches);
