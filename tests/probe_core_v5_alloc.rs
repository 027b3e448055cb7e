//! G7 probes of the bundle in its slot and the leak-check rows per mint site (18586a7,
//! 454b548, 66537bd), counted by a global allocator. Bundles minted at several places in turn
//! (each mint misses the ledger's last-site cache), handed off or not, refused by `build`,
//! made from saved tickets, beside standalone contexts and tickets minted at the same places,
//! released in every order: once warm, none of it allocates, with mint sites tracked (debug
//! builds, `leak-check`) or not. A prewarmed pool's contexts are not made again.
//!
//! Its own binary without the libtest harness, as tests/core_alloc.rs (whose header says why).

use std::alloc::System;
use std::hint::black_box;

use reqguard::engines::{Embedded, Heap};
use reqguard::{
    Admitted, Config, Exhaustion, Ledger, Outcome, PendingTicket, Refusal, RefusalReason,
    ServerCore,
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
type Live<'a> = reqguard::Live<'a, Embedded<&'static str>, Ctx>;
type Bundle = Admitted<Ctx, u32>;

const NAME: &str = "mint_sites_and_slots_allocate_nothing_once_warm";
const ROUNDS: usize = 1_000;

fn main() {
    single_test::main_for(NAME, mint_sites_and_slots_allocate_nothing_once_warm);
}

/// `round` run `ROUNDS` times after 20 warm-up runs: the allocations of the measured runs.
fn warm_allocations(mut round: impl FnMut(usize)) -> usize {
    for i in 0..20 {
        round(i);
    }
    single_test::allocations(GLOBAL, || {
        for i in 0..ROUNDS {
            round(i);
        }
    })
}

fn core(heap: &Heap, capacity: usize, exhaustion: Exhaustion, prewarm: usize) -> Core {
    let config = Config::default()
        .with_pool_capacity(capacity)
        .unwrap()
        .with_exhaustion(exhaustion)
        .with_prewarm(prewarm);
    ServerCore::embedded_with_context(heap.alloc("server"), config)
}

// Four places that admit, and one that mints a bundle and a ticket together.
#[track_caller]
fn both(live: &Live<'_>) -> (Bundle, PendingTicket) {
    (live.admit(|_| Ok(4)).unwrap(), live.ticket().unwrap())
}

fn site_one(live: &Live<'_>) -> Bundle {
    live.admit(|_| Ok(1)).unwrap()
}

fn site_two(live: &Live<'_>) -> Bundle {
    live.admit(|_| Ok(2)).unwrap()
}

fn site_three(live: &Live<'_>, saved: PendingTicket) -> Bundle {
    live.admit_with(saved, |_| Ok(3)).unwrap()
}

fn refused_at_site_four(live: &Live<'_>) {
    let too_large = Refusal::new(RefusalReason::PayloadTooLarge { limit: 0 });
    let refused = live.admit(|_| -> Result<u32, Refusal> { Err(too_large) });
    assert_eq!(refused.unwrap_err(), too_large);
}

fn mint_sites_and_slots_allocate_nothing_once_warm() {
    assert_eq!(
        single_test::allocations(GLOBAL, || drop(black_box(Box::new(7u64)))),
        1
    );
    let heap = Heap::new();
    let server = core(&heap, 8, Exhaustion::Refuse, 0);
    let live = server.upgrade().unwrap();

    // 1. Sites in turn, so every mint misses the last-site cache; hand-offs, a refused build,
    //    a saved ticket coming back, a standalone context; released in a rotating order.
    let rotating = warm_allocations(|i| {
        let saved = live.ticket().unwrap();
        let mut a = site_one(&live);
        let b = site_two(&live);
        refused_at_site_four(&live);
        let (mut c, ticket) = both(&live);
        let d = site_three(&live, saved);
        let ctx = live.context(ticket).unwrap();
        if i % 2 == 0 {
            assert_eq!(a.hand_off(), Some(1));
        }
        assert_eq!(c.hand_off(), Some(4));
        match i % 3 {
            0 => {
                a.complete();
                drop(ctx);
                b.end(Outcome::ClientGone);
                drop((c, d));
            }
            1 => {
                drop(d);
                c.complete();
                drop((ctx, b));
                a.end(Outcome::ForceClosed);
            }
            _ => {
                drop((ctx, c, b));
                d.complete();
                drop(a);
            }
        }
    });
    assert_eq!(
        rotating,
        0,
        "sites in turn (sites tracked: {})",
        Ledger::tracks_sites()
    );
    server.ledger().assert_quiescent();

    // 2. A prewarmed pool at capacity, all slots out at once then back: nothing is made again.
    let warm = core(&heap, 16, Exhaustion::Refuse, 16);
    let live = warm.upgrade().unwrap();
    let mut held: Vec<Bundle> = Vec::with_capacity(16);
    let all_out = warm_allocations(|i| {
        for _ in 0..16 {
            held.push(site_one(&live));
        }
        assert!(live.admit(|_| Ok(0)).is_err(), "Refuse: the pool is full");
        // Back in an order that changes each round: the free list's order changes too.
        held.rotate_left(i % 16);
        for bundle in held.drain(..) {
            bundle.complete();
        }
    });
    assert_eq!(all_out, 0, "a prewarmed pool, all out and back");
    let metrics = warm.pool_metrics();
    assert_eq!(
        (metrics.allocated, metrics.high_water, metrics.in_use),
        (16, 16, 0)
    );
    warm.ledger().assert_quiescent();
}
