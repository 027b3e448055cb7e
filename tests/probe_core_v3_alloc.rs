//! G7 probes of the one-`Rc` core's recycling paths, counted by a global allocator: a signal
//! that goes back to its server through its weak home (kept past its bundle, held by an
//! activity ref, aborted by user code first, carrying a listener), saved tickets coming back
//! with `admit_with`, refused builds and admissions nested inside `build`. Once warm, none of
//! them allocates.
//!
//! Its own binary without the libtest harness, as tests/core_alloc.rs (whose header says why).

use std::alloc::System;
use std::hint::black_box;

use reqguard::engines::{Embedded, Heap};
use reqguard::{AbortReason, Config, Refusal, RefusalReason, ServerCore};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[path = "util/single_test.rs"]
mod single_test;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Core = ServerCore<Embedded<&'static str>, Vec<u8>>;

const NAME: &str = "signal_recycling_paths_allocate_nothing_once_warm";

/// Heap allocations (and reallocations) made while `f` runs.
fn allocations(f: impl FnOnce()) -> usize {
    single_test::allocations(GLOBAL, f)
}

/// `round` run 1,000 times after 10 warm-up runs: the allocations of the measured runs.
fn warm_allocations(mut round: impl FnMut()) -> usize {
    for _ in 0..10 {
        round();
    }
    allocations(|| {
        for _ in 0..1_000 {
            round();
        }
    })
}

fn main() {
    single_test::main_for(NAME, signal_recycling_paths_allocate_nothing_once_warm);
}

fn signal_recycling_paths_allocate_nothing_once_warm() {
    assert_eq!(allocations(|| drop(black_box(Box::new(7u64)))), 1);
    let heap = Heap::new();
    let config = Config::default().with_pool_capacity(4).unwrap();
    let core: Core = ServerCore::embedded_with_context(heap.alloc("server"), config);
    let live = core.upgrade().unwrap();

    // 1. A signal kept past its bundle, aborted by user code, then let go: back to the spare
    //    list through its weak home, reset.
    let kept_and_aborted = warm_allocations(|| {
        let bundle = live.admit(|ctx| Ok(ctx.len())).unwrap();
        let kept = bundle.signal().clone();
        bundle.complete();
        assert!(kept.abort(AbortReason::ClientDisconnected));
        drop(kept);
    });
    assert_eq!(kept_and_aborted, 0, "kept, aborted, let go");

    // 2. An activity ref kept past its bundle holds the signal; dropping it recycles it.
    let held_by_activity = warm_allocations(|| {
        let bundle = live.admit(|_| Ok(())).unwrap();
        let activity = bundle.activity_ref();
        bundle.complete();
        drop(activity);
    });
    assert_eq!(held_by_activity, 0, "an activity ref kept past its bundle");

    // 3. A listener without captures (a zero-sized box) fired by the bundle's drop: the
    //    listener list keeps its capacity across reuse; unfired on a completed request too.
    let with_listener = warm_allocations(|| {
        let bundle = live.admit(|_| Ok(())).unwrap();
        bundle.signal().on_abort(|_| {});
        drop(bundle);
        let bundle = live.admit(|_| Ok(())).unwrap();
        bundle.signal().on_abort(|_| {});
        bundle.complete();
    });
    assert_eq!(
        with_listener, 0,
        "a capture-free listener, fired and unfired"
    );

    // 4. A saved request coming back (ticket, then admit_with), admitted or refused in build.
    let saved = warm_allocations(|| {
        let ticket = live.ticket().unwrap();
        live.admit_with(ticket, |_| Ok(())).unwrap().complete();
        let ticket = live.ticket().unwrap();
        let refused = live.admit_with(ticket, |_| -> Result<(), Refusal> {
            Err(Refusal::new(RefusalReason::PayloadTooLarge { limit: 0 }))
        });
        assert!(refused.is_err());
    });
    assert_eq!(saved, 0, "saved tickets through admit_with");

    // 5. Admissions nested inside build, up to the pool's capacity, ended in every order.
    let nested = warm_allocations(|| {
        let outer = live
            .admit(|_| {
                let a = live.admit(|_| Ok(1)).unwrap();
                let b = live.admit(|_| Ok(2)).unwrap();
                let c = live.admit(|_| Ok(3)).unwrap();
                drop(b);
                c.complete();
                Ok(a)
            })
            .unwrap();
        let inner = outer.request().is_some();
        assert!(inner);
        drop(outer); // drops the inner bundle with it, after the outer's own release
    });
    assert_eq!(nested, 0, "admissions nested in build");

    // 6. Standalone signals, minted and dropped two at a time.
    let standalone = warm_allocations(|| {
        let (a, b) = (live.signal(), live.signal());
        assert!(!a.same_as(&b));
        drop((a, b));
    });
    assert_eq!(standalone, 0, "standalone signals");

    drop(live);
    core.ledger().assert_quiescent();
    assert_eq!(core.pool_metrics().allocated, 4);
}
