//! G7: no heap allocation per request once the server is warm, counted by a global allocator.
//!
//! Its own test binary (the allocator is global) without the libtest harness (`harness =
//! false` in Cargo.toml): the harness's own thread allocates now and then (printing, timers),
//! and a global counter cannot tell threads apart, so this binary runs its one test on the
//! main thread with no other thread alive. The counter is `stats_alloc` (our crate forbids
//! `unsafe`, and a `GlobalAlloc` impl needs it). Debug builds also record every guard's mint
//! site in a slab: that must be allocation-free when warm as well, and this test runs in debug
//! builds under `cargo test`.

use std::alloc::System;
use std::hint::black_box;

use reqguard::engines::{Embedded, Heap};
use reqguard::{Admitted, Config, DowngradePolicy, Exhaustion, Refusal, RefusalReason, ServerCore};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[path = "util/single_test.rs"]
mod single_test;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Core = ServerCore<Embedded<&'static str>, Vec<u8>>;

const BODY: &[u8] = b"{\"hello\":\"world\"}";

/// Heap allocations (and reallocations) made while `f` runs.
fn allocations(f: impl FnOnce()) -> usize {
    single_test::allocations(GLOBAL, f)
}

/// One request the way a runtime serves it: upgrade, admit, hand the request to the engine,
/// end the request.
fn serve_one(core: &Core) -> Result<usize, Refusal> {
    let live = core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?;
    let bundle: Admitted<Vec<u8>, (&'static str, usize)> = live.admit(|ctx| {
        ctx.extend_from_slice(BODY);
        Ok(("GET /", ctx.len()))
    })?;
    let mut bundle = bundle;
    let (method, len) = bundle.hand_off().expect("admitted with its request"); // request.toJS()
    black_box((method, bundle.context(), bundle.signal().is_aborted()));
    bundle.complete();
    Ok(len)
}

fn core(heap: &Heap, config: Config) -> Core {
    ServerCore::embedded_with_context::<Vec<u8>>(heap.alloc("server"), config)
}

const NAME: &str = "zero_allocations_per_request_once_warm";

fn main() {
    single_test::main_for(NAME, zero_allocations_per_request_once_warm);
}

fn zero_allocations_per_request_once_warm() {
    // 0. The counter works: a deliberate allocation is seen, exactly.
    assert_eq!(
        allocations(|| drop(black_box(Vec::<u8>::with_capacity(64)))),
        1
    );
    assert_eq!(allocations(|| drop(black_box(Box::new(7u64)))), 1);

    // 1. One request at a time, 10,000 times, after a short warm-up.
    let heap = Heap::new();
    let server = core(&heap, Config::default().with_pool_capacity(64).unwrap());
    let cold = allocations(|| {
        serve_one(&server).unwrap();
    });
    assert!(
        cold > 0,
        "the first request warms the pool (context, signal, slabs)"
    );
    for _ in 0..100 {
        serve_one(&server).unwrap();
    }
    let mut served = 0;
    let warm = allocations(|| {
        for _ in 0..10_000 {
            served += serve_one(&server).unwrap();
        }
    });
    assert_eq!(served, 10_000 * BODY.len(), "every request ran");
    assert_eq!(warm, 0, "allocations in 10,000 warm requests");
    assert_eq!(server.ledger().minted(reqguard::GuardKind::Ticket), 10_101);
    server.ledger().assert_quiescent();

    // 2. Overlapping requests (16 in flight at once), warm after the first round.
    let mut in_flight = Vec::with_capacity(16);
    let mut round = |core: &Core| {
        let live = core.upgrade().unwrap();
        for _ in 0..16 {
            let bundle = live
                .admit(|ctx| {
                    ctx.extend_from_slice(BODY);
                    Ok(())
                })
                .unwrap();
            in_flight.push(bundle);
        }
        in_flight.clear(); // ends all 16 (drops in push order)
    };
    round(&server);
    assert_eq!(
        allocations(|| {
            for _ in 0..500 {
                round(&server);
            }
        }),
        0,
        "allocations in 500 rounds of 16 overlapping requests"
    );
    assert_eq!(server.pool_metrics().high_water, 16);

    // 3. The refusal paths allocate nothing (G4).
    //    a. The pool refuses.
    let refusing = core(
        &heap,
        Config::default()
            .with_pool_capacity(2)
            .unwrap()
            .with_exhaustion(Exhaustion::Refuse),
    );
    let live = refusing.upgrade().unwrap();
    let held = [
        live.admit(|_| Ok(())).unwrap(),
        live.admit(|_| Ok(())).unwrap(),
    ];
    let _ = live.admit(|_| Ok(())); // warm the refusal path once
    let refused = allocations(|| {
        for _ in 0..1_000 {
            let r = live.admit(|_| Ok(())).unwrap_err();
            assert_eq!(r.reason(), RefusalReason::PoolExhausted);
        }
    });
    assert_eq!(refused, 0, "allocations in 1,000 pool refusals");
    drop((held, live));
    //    b. Body too large, refused from inside admit after the pool slot was taken. The
    //       first admission at a new place in the program makes that place's leak-check row
    //       (debug builds, `leak-check`): warm it once, as a server's first request does.
    let refuse_too_large = || {
        let live = server.upgrade().unwrap();
        let r = live
            .admit(|_| -> Result<(), Refusal> {
                Err(Refusal::new(RefusalReason::PayloadTooLarge { limit: 8 }))
            })
            .unwrap_err();
        assert_eq!(r.status(), 413);
    };
    refuse_too_large();
    let too_large = allocations(|| {
        for _ in 0..1_000 {
            refuse_too_large();
        }
    });
    assert_eq!(too_large, 0, "allocations in 1,000 413 refusals");
    //    c. Stopped, then finalized: 503 without minting anything.
    let heap2 = Heap::new();
    let stopping = core(
        &heap2,
        Config::default().with_downgrade(DowngradePolicy::OnStop),
    );
    serve_one(&stopping).unwrap();
    let drain = stopping.stop();
    assert!(drain.is_complete());
    let stopped = allocations(|| {
        for _ in 0..1_000 {
            assert_eq!(
                serve_one(&stopping).unwrap_err().reason(),
                RefusalReason::Stopped
            );
        }
    });
    assert_eq!(
        stopped, 0,
        "allocations in 1,000 refusals of a stopped server"
    );
    heap2.collect();
    let finalized = allocations(|| {
        for _ in 0..1_000 {
            assert_eq!(serve_one(&stopping), Err(Refusal::WRAPPER_FINALIZED));
        }
    });
    assert_eq!(finalized, 0, "allocations in 1,000 503s after finalization");

    // 4. A signal user code still holds is not recycled: with one request at a time the server
    //    has one signal (in the pooled slot: every slot holds one, round 24), so when user code
    //    holds it at the release the slot gets a new one: one allocation, at that release. A
    //    signal that fired with nobody else holding it is reset where it is: the requests after
    //    allocate nothing. Once let go, the held one is recycled, and a signal minted then
    //    comes from the spares.
    let heap3 = Heap::new();
    let solo = core(&heap3, Config::default());
    for _ in 0..10 {
        serve_one(&solo).unwrap();
    }
    let live = solo.upgrade().unwrap();
    // One place admits them all (in leak-check mode each place has its ledger row, made by its
    // first admission: this one).
    let admit = || live.admit(|_| Ok(())).unwrap();
    drop(admit());
    let mut kept = None;
    assert_eq!(
        allocations(|| {
            let bundle = admit();
            kept = Some(bundle.signal().clone());
            drop(bundle);
        }),
        1,
        "one new signal for the slot at the release, nothing else"
    );
    let kept = kept.unwrap();
    let one_request = || {
        let bundle = admit();
        assert!(!bundle.signal().same_as(&kept));
        drop(bundle);
    };
    assert_eq!(
        allocations(one_request),
        0,
        "a fired signal nobody else holds is reset where it is"
    );
    assert_eq!(allocations(one_request), 0, "and again");
    drop(kept); // user code lets go: that signal is recycled (the spare list's first buffer)
    assert_eq!(
        allocations(|| {
            let spare = live.signal();
            assert!(!spare.is_aborted());
            drop(spare);
        }),
        0,
        "a signal minted now comes from the spares"
    );
    drop(live);
    solo.ledger().assert_quiescent();
    server.ledger().assert_quiescent();
    stopping.ledger().assert_quiescent();
}
