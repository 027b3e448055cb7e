//! Context pool backends, checkout + fill + recycle + release, at 1, 64 and 1,024 outstanding:
//!
//! - `object_pool_try_pull`: object-pool 0.6's `Pool::try_pull` (a guard borrowing the pool);
//! - `object_pool_pull`: `Pool::pull(fallback)`, which grows the pool past its capacity;
//! - `object_pool_pull_owned`: `Arc<Pool>::pull_owned`, the only form whose guard can outlive a
//!   borrow of the pool, as reqguard's `RequestContext` must;
//! - `reqguard_context`: reqguard's `!Sync` pool through `Live::context(live.ticket())`, so
//!   this figure also holds a ticket and two ledger entries: the pool alone costs less;
//! - `free_list_by_hand`: the same free list without guards (what the pool does inside);
//! - `box_per_request`: no pool, `Box::new` per request (its buffers allocate every time too).
//!
//! ```text
//! cargo bench --bench pool
//! ```

// `criterion_group!` makes an undocumented `pub fn`.
#![allow(missing_docs)]

mod common;

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use common::{App, Ctx, HandPool, REQ};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use reqguard::engines::{Embedded, Heap};
use reqguard::{Config, Recycle, RequestContext, ServerCore};

const CAPACITY: usize = 1024;
const OUTSTANDING: [usize; 3] = [1, 64, 1024];

fn bench_pool(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool");

    let op = object_pool::Pool::new(CAPACITY, Ctx::default);
    let op_arc = Arc::new(object_pool::Pool::new(CAPACITY, Ctx::default));
    let heap = Heap::new();
    let core: ServerCore<Embedded<App>, Ctx> = ServerCore::embedded_with_context(
        heap.alloc("server"),
        Config::default()
            .with_pool_capacity(CAPACITY)
            .unwrap()
            .with_prewarm(CAPACITY),
    );
    let hand: HandPool = HandPool::new(CAPACITY);
    {
        let warm: Vec<_> = (0..CAPACITY).map(|_| hand.get()).collect();
        for (ctx, pooled) in warm {
            hand.put(ctx, pooled);
        }
    }

    for n in OUTSTANDING {
        group.throughput(Throughput::Elements(n as u64));

        let held = RefCell::new(Vec::with_capacity(n));
        group.bench_function(BenchmarkId::new("object_pool_try_pull", n), |b| {
            b.iter(|| {
                let mut held = held.borrow_mut();
                for _ in 0..n {
                    let mut ctx = op.try_pull().expect("within capacity");
                    ctx.fill(black_box(&REQ));
                    held.push(ctx);
                }
                for mut ctx in held.drain(..) {
                    black_box(ctx.status);
                    ctx.recycle();
                }
            })
        });
        drop(held);

        let held = RefCell::new(Vec::with_capacity(n));
        group.bench_function(BenchmarkId::new("object_pool_pull", n), |b| {
            b.iter(|| {
                let mut held = held.borrow_mut();
                for _ in 0..n {
                    let mut ctx = op.pull(Ctx::default);
                    ctx.fill(black_box(&REQ));
                    held.push(ctx);
                }
                for mut ctx in held.drain(..) {
                    black_box(ctx.status);
                    ctx.recycle();
                }
            })
        });
        drop(held);

        let mut held = Vec::with_capacity(n);
        group.bench_function(BenchmarkId::new("object_pool_pull_owned", n), |b| {
            b.iter(|| {
                for _ in 0..n {
                    let mut ctx = op_arc.pull_owned(Ctx::default);
                    ctx.fill(black_box(&REQ));
                    held.push(ctx);
                }
                for mut ctx in held.drain(..) {
                    black_box(ctx.status);
                    ctx.recycle();
                }
            })
        });

        let mut held: Vec<RequestContext<Ctx>> = Vec::with_capacity(n);
        group.bench_function(BenchmarkId::new("reqguard_context", n), |b| {
            let live = core.upgrade().expect("serving");
            b.iter(|| {
                for _ in 0..n {
                    let ticket = live.ticket().expect("serving");
                    let mut ctx = live.context(ticket).expect("spills, never refuses");
                    ctx.fill(black_box(&REQ));
                    held.push(ctx);
                }
                for ctx in held.drain(..) {
                    black_box(ctx.status); // recycled by the pool on drop
                }
            })
        });

        let mut held = Vec::with_capacity(n);
        group.bench_function(BenchmarkId::new("free_list_by_hand", n), |b| {
            b.iter(|| {
                for _ in 0..n {
                    let (mut ctx, pooled) = hand.get();
                    ctx.fill(black_box(&REQ));
                    held.push((ctx, pooled));
                }
                for (ctx, pooled) in held.drain(..) {
                    black_box(ctx.status);
                    hand.put(ctx, pooled);
                }
            })
        });

        let mut held = Vec::with_capacity(n);
        group.bench_function(BenchmarkId::new("box_per_request", n), |b| {
            b.iter(|| {
                for _ in 0..n {
                    let mut ctx = Box::<Ctx>::default();
                    ctx.fill(black_box(&REQ));
                    held.push(ctx);
                }
                for ctx in held.drain(..) {
                    black_box(ctx.status);
                }
            })
        });
    }
    group.finish();

    // Facts for the decision, printed once: object-pool's `pull(fallback)` grows past capacity,
    // reqguard's pool spills (frees past capacity) and keeps its capacity.
    let over = 2 * CAPACITY;
    let grown = {
        let pulled: Vec<_> = (0..over).map(|_| op.pull(Ctx::default)).collect();
        drop(pulled);
        op.len()
    };
    let live = core.upgrade().expect("serving");
    let held: Vec<_> = (0..over)
        .map(|_| {
            live.context(live.ticket().expect("serving"))
                .expect("spills")
        })
        .collect();
    let spilled = held.iter().filter(|c| c.is_spilled()).count();
    drop(held);
    let metrics = core.pool_metrics();
    println!(
        "pool facts: after {over} outstanding with capacity {CAPACITY}: object-pool pull(fallback) \
         keeps {grown} objects; reqguard spilled {spilled} and keeps {} (high water {})",
        metrics.allocated, metrics.high_water
    );
    drop(live);
    core.ledger().assert_quiescent();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    targets = bench_pool
}
criterion_main!(benches);
