//! Scale: nothing in the accounting may be linear in outstanding requests.
//!
//! - `scale/outstanding/*`: one request admitted and released while K others are outstanding,
//!   K = 1 .. 10,000, with the pool capacity growing with K (K + 1, prewarmed), guarded and by
//!   hand. The cost per request must stay flat.
//! - `scale/past_capacity/*`: the same with the pool capacity fixed at 1,024, so past it the
//!   pool spills each new context to the heap (`Exhaustion::Spill`).
//! - `drain/*`: the time from the first to the last of N tickets dropping after `stop()`, the
//!   drain completing on the last; the throughput is per ticket. Guarded and by hand.
//! - Bytes per guard and per pooled context, printed (`size_of`; the heap side of a pooled
//!   context is measured by `benches/allocations.rs`).
//!
//! ```text
//! cargo bench --bench scale
//! ```

// `criterion_group!` makes an undocumented `pub fn`.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::mem::size_of;
use std::time::{Duration, Instant};

use common::{guarded_request, hand_request, App, Core, Ctx, HandBundle, HandServer, Req, REQ};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use reqguard::engines::{Embedded, Heap};
use reqguard::{
    AbortSignal, ActivityRef, Admitted, Config, Live, PendingTicket, RequestContext, RequestObject,
    ServerCore,
};

const OUTSTANDING: [usize; 5] = [1, 10, 100, 1_000, 10_000];

fn core_with(heap: &Heap, capacity: usize) -> Core {
    ServerCore::embedded_with_context(
        heap.alloc("server"),
        Config::default()
            .with_pool_capacity(capacity)
            .unwrap()
            .with_prewarm(capacity),
    )
}

fn hold(core: &Core, k: usize) -> Vec<Admitted<Ctx, Req>> {
    let live = core.upgrade().expect("serving");
    (0..k)
        .map(|_| {
            live.admit(|ctx| {
                ctx.fill(&REQ);
                Ok(REQ)
            })
            .expect("admitted")
        })
        .collect()
}

fn hand_hold(server: &HandServer, k: usize) -> Vec<HandBundle> {
    (0..k)
        .map(|_| server.prepare(REQ).expect("admitted"))
        .collect()
}

fn bench_outstanding(c: &mut Criterion) {
    for (name, fixed_capacity) in [
        ("scale/outstanding", None),
        ("scale/past_capacity", Some(1024)),
    ] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        for k in OUTSTANDING {
            let capacity = fixed_capacity.unwrap_or(k + 1);
            let heap = Heap::new();
            let core = core_with(&heap, capacity);
            let held = hold(&core, k);
            group.bench_function(BenchmarkId::new("guarded", k), |b| {
                b.iter(|| guarded_request(black_box(&core), black_box(REQ)))
            });
            let hand = HandServer::new(&heap, capacity, true);
            let hand_held = hand_hold(&hand, k);
            group.bench_function(BenchmarkId::new("hand_written", k), |b| {
                b.iter(|| hand_request(black_box(&hand), black_box(REQ)))
            });
            assert_eq!(core.ledger().outstanding(reqguard::GuardKind::Ticket), k);
            drop(held);
            core.ledger().assert_quiescent();
            for bundle in hand_held {
                hand.finish(bundle);
            }
        }
        group.finish();
    }
}

fn bench_drain(c: &mut Criterion) {
    let mut group = c.benchmark_group("drain");
    // Each iteration first builds N outstanding requests (not timed, but criterion plans its
    // iteration count from the timed part only): keep the measured time short so the run stays
    // bounded (about 2 s per case).
    group.sample_size(10);
    group.measurement_time(Duration::from_millis(200));
    group.warm_up_time(Duration::from_millis(100));
    for n in OUTSTANDING {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("guarded", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let heap = Heap::new();
                    let core = core_with(&heap, n);
                    let held = hold(&core, n);
                    let drain = core.stop();
                    assert_eq!(drain.outstanding(), n);
                    let start = Instant::now();
                    drop(black_box(held));
                    let done = drain.is_complete();
                    total += start.elapsed();
                    assert!(done);
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new("hand_written", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let heap = Heap::new();
                    let hand = HandServer::new(&heap, n, true);
                    let held = hand_hold(&hand, n);
                    hand.stop();
                    let start = Instant::now();
                    for bundle in black_box(held) {
                        hand.finish(bundle);
                    }
                    let done = hand.drained.get();
                    total += start.elapsed();
                    assert!(done);
                }
                total
            })
        });
    }
    group.finish();
}

fn print_sizes(_: &mut Criterion) {
    println!("bytes (size_of, this build):");
    let rows: [(&str, usize); 9] = [
        (
            "Live<'_, Embedded<_>, Ctx> (the proof)",
            size_of::<Live<'static, Embedded<App>, Ctx>>(),
        ),
        ("PendingTicket", size_of::<PendingTicket>()),
        (
            "RequestContext<Ctx> (holds its ticket)",
            size_of::<RequestContext<Ctx>>(),
        ),
        ("AbortSignal (handle)", size_of::<AbortSignal>()),
        (
            "ActivityRef (holds a signal handle)",
            size_of::<ActivityRef>(),
        ),
        ("RequestObject<Req>", size_of::<RequestObject<Req>>()),
        (
            "Admitted<Ctx, Req> (the whole bundle)",
            size_of::<Admitted<Ctx, Req>>(),
        ),
        ("Req (the payload)", size_of::<Req>()),
        ("Ctx (the pooled context, on the heap)", size_of::<Ctx>()),
    ];
    for (what, bytes) in rows {
        println!("  {bytes:>4}  {what}");
    }
    println!(
        "  {:>4}  pool slot in the free list (Box<Ctx>), plus the boxed Ctx above",
        size_of::<Box<Ctx>>()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = print_sizes, bench_outstanding, bench_drain
}
criterion_main!(benches);
