//! G7 probes of the signal kept beside its context (1f8bb8a), counted by a global allocator: a
//! signal moves between a context's free-list slot and the spare list (a standalone context
//! pops a slot with one, a fired signal cannot stay, a clone or an activity ref held past the
//! request, a refused build pops one, saved tickets), with every outcome, at and past the
//! pool's capacity. Once warm, none of it allocates; a spilled request allocates its context
//! and nothing else (no signal).
//!
//! Its own binary without the libtest harness, as tests/core_alloc.rs (whose header says why).

use std::alloc::System;
use std::hint::black_box;

use reqguard::engines::{Embedded, Heap};
use reqguard::{
    AbortReason, Admitted, Config, Exhaustion, Outcome, Refusal, RefusalReason, ServerCore,
};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use word_ctx::Ctx;

#[path = "util/single_test.rs"]
mod single_test;
#[path = "util/word_ctx.rs"]
mod word_ctx;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Core = ServerCore<Embedded<&'static str>, Ctx>;
type Bundle = Admitted<Ctx, ()>;

const NAME: &str = "kept_signals_move_without_allocating_once_warm";
const ROUNDS: usize = 1_000;

fn main() {
    single_test::main_for(NAME, kept_signals_move_without_allocating_once_warm);
}

/// `round` run `ROUNDS` times after 20 warm-up runs: the allocations of the measured runs.
fn warm_allocations(mut round: impl FnMut()) -> usize {
    for _ in 0..20 {
        round();
    }
    single_test::allocations(GLOBAL, || {
        for _ in 0..ROUNDS {
            round();
        }
    })
}

fn core(heap: &Heap, capacity: usize, exhaustion: Exhaustion) -> Core {
    let config = Config::default()
        .with_pool_capacity(capacity)
        .unwrap()
        .with_exhaustion(exhaustion);
    ServerCore::embedded_with_context(heap.alloc("server"), config)
}

/// Ends `bundle` the `i`-th way: complete, client gone, dropped, a user abort then complete,
/// end(ForceClosed), a capture-free listener then complete.
fn end_the(i: usize, bundle: Bundle) {
    match i % 6 {
        0 => bundle.complete(),
        1 => bundle.end(Outcome::ClientGone),
        2 => drop(bundle),
        3 => {
            assert!(bundle.signal().abort(AbortReason::ClientDisconnected));
            bundle.complete();
        }
        4 => bundle.end(Outcome::ForceClosed),
        _ => {
            bundle.signal().on_abort(|_| {}); // a zero-sized box: no allocation
            bundle.complete();
        }
    }
}

fn kept_signals_move_without_allocating_once_warm() {
    assert_eq!(
        single_test::allocations(GLOBAL, || drop(black_box(Box::new(7u64)))),
        1
    );
    let heap = Heap::new();
    let pool = core(&heap, 4, Exhaustion::Refuse);
    let live = pool.upgrade().unwrap();

    // 1. One request at a time, ending every way in turn: the slot's signal stays beside it,
    //    or goes to the spare list and comes back from it.
    let mut i = 0;
    let every_way = warm_allocations(|| {
        i += 1;
        let bundle = live.admit(|ctx| {
            ctx.0 += 1;
            Ok(())
        });
        end_the(i, bundle.unwrap());
    });
    assert_eq!(every_way, 0, "one at a time, every outcome");

    // 2. The pool full (4 out), ended in a rotating mix of outcomes and orders.
    let mut j = 0;
    let full = warm_allocations(|| {
        j += 1;
        let a = live.admit(|_| Ok(())).unwrap();
        let b = live.admit(|_| Ok(())).unwrap();
        let c = live.admit(|_| Ok(())).unwrap();
        let d = live.admit(|_| Ok(())).unwrap();
        assert!(live.admit(|_| Ok(())).is_err(), "Refuse: the pool is full");
        let ends = [a, b, c, d];
        for (k, bundle) in ends.into_iter().enumerate() {
            end_the(j + k, bundle);
        }
    });
    assert_eq!(full, 0, "the pool full, mixed outcomes");

    // 3. A standalone context pops a slot with a kept signal (the signal becomes a spare);
    //    a bundle admitted meanwhile takes another slot, and the spare if its slot has none.
    let standalone = warm_allocations(|| {
        live.admit(|_| Ok(())).unwrap().complete();
        let ctx = live.context(live.ticket().unwrap()).unwrap();
        let bundle = live.admit(|_| Ok(())).unwrap();
        bundle.complete();
        drop(ctx);
        let again = live.admit(|_| Ok(())).unwrap();
        again.end(Outcome::ClientGone);
    });
    assert_eq!(
        standalone, 0,
        "standalone contexts on slots with kept signals"
    );

    // 4. A clone and an activity ref held past the request, then let go; a refused build and a
    //    saved ticket popping slots with kept signals.
    let held = warm_allocations(|| {
        let bundle = live.admit(|_| Ok(())).unwrap();
        let clone = bundle.signal().clone();
        let activity = bundle.activity_ref();
        bundle.complete();
        let next = live.admit(|_| Ok(())).unwrap();
        next.complete();
        drop((clone, activity));
        let refused = live.admit(|_| -> Result<(), Refusal> {
            Err(Refusal::new(RefusalReason::PayloadTooLarge { limit: 0 }))
        });
        assert!(refused.is_err());
        let ticket = live.ticket().unwrap();
        live.admit_with(ticket, |_| Ok(())).unwrap().complete();
    });
    assert_eq!(held, 0, "held handles, refused builds, saved tickets");
    drop(live);
    pool.ledger().assert_quiescent();
    assert_eq!(pool.pool_metrics().allocated, 4);

    // 5. Past the capacity (Spill): three requests at once that complete, on pools of 2 and 1.
    //    A spilled one allocates its context's box; its signal goes to the spare list, which
    //    holds as many as the pool: with 2, the one spilled signal comes back from it (a box per
    //    round, nothing else); with 1, two spill and one of their signals finds the spare list
    //    full (at most a box each and one signal per round: 1f8bb8a halved that, the pooled
    //    request's signal no longer competes for the spare list).
    for (capacity, bound) in [(2, 1), (1, 3)] {
        let spilling = core(&heap, capacity, Exhaustion::Spill);
        let live = spilling.upgrade().unwrap();
        let spills_before = spilling.pool_metrics().spills;
        let spilled = warm_allocations(|| {
            let a = live.admit(|_| Ok(())).unwrap();
            let b = live.admit(|_| Ok(())).unwrap();
            let c = live.admit(|_| Ok(())).unwrap();
            assert!(c.is_spilled());
            c.complete();
            b.complete();
            a.complete();
        });
        let per_round = 3 - capacity;
        let spills = spilling.pool_metrics().spills - spills_before;
        assert_eq!(spills as usize, (ROUNDS + 20) * per_round);
        assert!(
            spilled >= ROUNDS * per_round,
            "each spill allocates its box"
        );
        assert!(
            spilled <= ROUNDS * bound,
            "capacity {capacity}: {spilled} allocations in {ROUNDS} rounds"
        );
        drop(live);
        spilling.ledger().assert_quiescent();
    }
}
