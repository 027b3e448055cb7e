//! Allocation probes of the core's hot paths after the cost work of issue 9 item 4, counted by
//! a global allocator (tests/core_alloc.rs's way: no libtest harness, whose threads would be
//! counted too).
//!
//! 1. Nothing leaks, in release builds too: the values an assignment replaces where the code's
//!    state says there are none (the free list's top and a slot's `next`, a checked-out slot's
//!    kept signal, a slot's lease) are forgotten, not dropped (`forget_none`, checked by a
//!    `debug_assert` only). A round of hostile sequences (user code re-entering from
//!    `C::default`, `Recycle::recycle`, a spilled context's `Drop`, a payload's `Drop`, abort
//!    listeners and drain hooks; panics in `Default` and `recycle`; spills, refusals,
//!    standalone contexts, stale signals, saved tickets, stops, escalation, a core dropped with
//!    requests out) must give back every byte it allocated: a slot, signal or lease forgotten
//!    while it held something would not be.
//! 2. G7 on the noted path: once stopped, saved tickets admitted at places in turn, their
//!    releases (the drain's check on each) and the stop's refusals allocate nothing once warm;
//!    a new place's first admission makes its row (leak-check mode), the next ones nothing.

use std::alloc::System;
use std::cell::Cell;
use std::rc::Rc;

use reqguard::engines::{Embedded, Heap};
use reqguard::{
    Admitted, Config, Exhaustion, Ledger, Outcome, PendingTicket, Recycle, Refusal, RefusalReason,
    ServerCore,
};
use stats_alloc::{Region, Stats, StatsAlloc, INSTRUMENTED_SYSTEM};

#[path = "util/hooks.rs"]
mod hooks;
#[path = "util/quiet.rs"]
mod quiet;
use hooks::{clear_hooks, run_hook, set_hook, Hook, ON_DEFAULT, ON_DROP, ON_RECYCLE};
#[path = "util/single_test.rs"]
mod single_test;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const NAME: &str = "hostile_rounds_free_everything_and_warm_paths_allocate_nothing";

fn main() {
    single_test::main_for(NAME, || {
        quiet::quiet_panics();
        hostile_rounds_free_everything();
        the_noted_path_allocates_nothing_once_warm();
        eight_places_on_two_servers_allocate_nothing_once_warm();
    });
}

// ---------------------------------------------------------------------------------------------
// A hostile context: counted, able to run a hook of the test's in `Default`, `recycle` and
// `Drop`, or to panic in `Default` and `recycle`.

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PANIC_DEFAULT: Cell<bool> = const { Cell::new(false) };
    static PANIC_RECYCLE: Cell<bool> = const { Cell::new(false) };
    static PANIC_DROP: Cell<bool> = const { Cell::new(false) };
}

/// A context with a buffer, so a context leaked with its slot is seen in bytes too.
struct Ctx(Vec<u8>);

impl Default for Ctx {
    fn default() -> Self {
        if PANIC_DEFAULT.with(|p| p.replace(false)) {
            panic!("default panics");
        }
        run_hook(&ON_DEFAULT);
        LIVE.with(|l| l.set(l.get() + 1));
        Ctx(Vec::with_capacity(32))
    }
}

impl Recycle for Ctx {
    fn recycle(&mut self) {
        self.0.clear();
        run_hook(&ON_RECYCLE);
        if PANIC_RECYCLE.with(|p| p.replace(false)) {
            panic!("recycle panics");
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        LIVE.with(|l| l.set(l.get() - 1));
        run_hook(&ON_DROP);
        if PANIC_DROP.with(|p| p.replace(false)) {
            panic!("drop panics");
        }
    }
}

/// A payload that runs a hook when dropped.
#[derive(Default)]
struct Payload(Option<Hook>);

impl Drop for Payload {
    fn drop(&mut self) {
        if let Some(hook) = self.0.take() {
            hook();
        }
    }
}

type Core = ServerCore<Embedded<&'static str>, Ctx>;
type Bundle = Admitted<Ctx, Payload>;

fn server(heap: &Heap, capacity: usize, exhaustion: Exhaustion, prewarm: usize) -> Rc<Core> {
    let config = Config::default()
        .with_pool_capacity(capacity)
        .unwrap()
        .with_exhaustion(exhaustion)
        .with_prewarm(prewarm);
    Rc::new(ServerCore::embedded_with_context(
        heap.alloc("server"),
        config,
    ))
}

fn admit(core: &Core) -> Result<Bundle, Refusal> {
    core.upgrade().unwrap().admit(|ctx| {
        ctx.0.extend_from_slice(b"request");
        Ok(Payload::default())
    })
}

fn in_out(core: &Rc<Core>) -> impl FnOnce() + 'static {
    let core = Rc::clone(core);
    move || {
        admit(&core).unwrap().complete();
        let live = core.upgrade().unwrap();
        drop(live.context(live.ticket().unwrap()).unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Every byte back.

/// User code re-entering the pool from `Default`, `recycle` and a spilled context's `Drop`, and
/// panicking in `Default` and `recycle`, with kept signals moving between slots.
fn reentrant_pool(heap: &Heap) {
    let core = server(heap, 2, Exhaustion::Spill, 0);
    set_hook(&ON_DEFAULT, in_out(&core));
    let a = admit(&core).unwrap(); // made while another request goes in and out
    set_hook(&ON_RECYCLE, in_out(&core));
    a.complete(); // recycled while another goes in and out
    let (b, c) = (admit(&core).unwrap(), admit(&core).unwrap());
    let spilled = admit(&core).unwrap();
    assert!(spilled.is_spilled());
    set_hook(&ON_DROP, in_out(&core));
    drop(spilled); // the spilled context's Drop re-enters
    let spilled = admit(&core).unwrap();
    assert!(spilled.is_spilled());
    spilled.complete(); // its fresh signal goes to the spares, the context is freed
    PANIC_RECYCLE.with(|p| p.set(true));
    b.end(Outcome::ClientGone); // lost: its signal goes to the spares
    PANIC_DEFAULT.with(|p| p.set(true));
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| admit(&core)));
    assert!(refused.is_err(), "Default panicked");
    let live = core.upgrade().unwrap();
    let ctx = live.context(live.ticket().unwrap()).unwrap(); // takes a kept signal
    drop((c, ctx));
    clear_hooks();
    core.ledger().assert_quiescent();
}

/// Payload drops, listeners and stale signals; refusals of a full pool; saved tickets.
fn signals_and_refusals(heap: &Heap) {
    let core = server(heap, 2, Exhaustion::Refuse, 2);
    let live = core.upgrade().unwrap();
    let saved = live.ticket().unwrap();
    let inner = in_out(&core);
    let mut a = live.admit(|_| Ok(Payload(Some(Box::new(inner))))).unwrap();
    let stale = a.signal().clone(); // held past the release: not kept beside the context
    let b = admit(&core).unwrap();
    let listened = Rc::new(Cell::new(0));
    let seen = Rc::clone(&listened);
    b.signal().on_abort(move |_| seen.set(seen.get() + 1));
    assert_eq!(
        admit(&core).map(drop).unwrap_err().reason(),
        RefusalReason::PoolExhausted
    );
    let refused = live.admit_with(saved, |_| Ok(Payload::default()));
    assert_eq!(
        refused.map(drop).unwrap_err().reason(),
        RefusalReason::PoolExhausted
    );
    drop(b); // the listener runs
    assert_eq!(listened.get(), 1);
    let payload = a.hand_off().unwrap();
    a.complete();
    drop(payload); // runs `inner`: a request in and out after its own bundle went
    drop(stale);
    let too_large = Refusal::new(RefusalReason::PayloadTooLarge { limit: 0 });
    assert!(live.admit(|_| Err::<Payload, _>(too_large)).is_err());
    drop(live);
    core.ledger().assert_quiescent();
}

/// Stops with requests out, escalation, saved tickets after stop, drain hooks re-entering
/// another server, and a core dropped before its requests end.
fn stops_and_drains(heap: &Heap) {
    let (one, two) = (
        server(heap, 2, Exhaustion::Spill, 1),
        server(heap, 1, Exhaustion::Spill, 0),
    );
    let live = one.upgrade().unwrap();
    let saved = live.ticket().unwrap();
    let out: Vec<Bundle> = (0..3).map(|_| admit(&one).unwrap()).collect();
    drop(live);
    let drain = one.stop();
    drain.on_complete(in_out(&two));
    let report = drain.escalate();
    assert_eq!(report.aborted_signals, 3);
    let late = one
        .upgrade()
        .unwrap()
        .admit_with(saved, |_| Ok(Payload::default()))
        .unwrap();
    let one_weak = Rc::downgrade(&one);
    drop(one); // the core handle goes; its requests keep the server
    assert!(one_weak.upgrade().is_none());
    drop(out);
    assert!(!drain.is_complete());
    late.complete(); // admitted past the escalation: its signal came aborted (QA embed26-2)
    assert!(drain.is_complete());
    assert_eq!(drain.report().outcomes.deadline_aborted, 4);
    let two_out = admit(&two).unwrap();
    drop(two); // stopped by its drop, one request out
    drop(two_out);
    drop(drain);
}

/// Panics in a spilled context's `Drop`, a payload's `Drop`, an abort listener and a drain hook,
/// and in a pooled context's `Drop` when the pool is freed; after stop, with a trace on.
fn panics_everywhere(heap: &Heap) {
    let core = server(heap, 1, Exhaustion::Spill, 0);
    let live = core.upgrade().unwrap();
    let pooled = admit(&core).unwrap();
    let spilled = live
        .admit(|_| Ok(Payload(Some(Box::new(|| panic!("payload drop panics"))))))
        .unwrap();
    assert!(spilled.is_spilled());
    spilled.signal().on_abort(|_| panic!("listener panics"));
    let drain = core.stop();
    drain.on_complete(|| panic!("hook panics"));
    core.ledger().start_trace();
    PANIC_DROP.with(|p| p.set(true));
    drop(spilled); // listener, payload and the spilled context's Drop all panic
    assert!(!PANIC_DROP.with(Cell::get), "the spilled context was freed");
    pooled.end(Outcome::ForceClosed);
    assert!(drain.is_complete());
    assert_eq!(drain.report().panicked_hooks, 1);
    assert_eq!(core.ledger().take_trace().len(), 8);
    drop(live);
    PANIC_DROP.with(|p| p.set(true));
    drop(core); // the pooled context's Drop panics as the pool is freed
    assert!(!PANIC_DROP.with(Cell::get), "the pool was freed");
    drop(drain);
}

fn hostile_round() {
    let heap = Heap::new();
    reentrant_pool(&heap);
    signals_and_refusals(&heap);
    stops_and_drains(&heap);
    panics_everywhere(&heap);
    clear_hooks();
    assert_eq!(LIVE.with(Cell::get), 0, "every context made is freed");
}

/// Bytes and blocks still allocated of what `stats` counted (a reallocation's growth or
/// shrinking is counted in `bytes_allocated` or `bytes_deallocated` already).
fn net(stats: Stats) -> (isize, isize) {
    let bytes = stats.bytes_allocated as isize - stats.bytes_deallocated as isize;
    let blocks = stats.allocations as isize - stats.deallocations as isize;
    (bytes, blocks)
}

fn hostile_rounds_free_everything() {
    hostile_round(); // warm: thread-locals, the panic machinery
    for round in 0..3 {
        let region = Region::new(GLOBAL);
        hostile_round();
        let stats = region.change();
        assert!(stats.allocations > 0, "the round ran");
        assert_eq!(
            net(stats),
            (0, 0),
            "round {round}: bytes and blocks not given back (release build: {}): {stats:?}",
            !cfg!(debug_assertions)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The noted path (stopped) allocates nothing once warm.

const ROUNDS: usize = 500;
const WARM: usize = 20;

fn site_one(
    live: &reqguard::Live<'_, Embedded<&'static str>, Ctx>,
    saved: PendingTicket,
) -> Bundle {
    live.admit_with(saved, |_| Ok(Payload::default())).unwrap()
}

fn site_two(
    live: &reqguard::Live<'_, Embedded<&'static str>, Ctx>,
    saved: PendingTicket,
) -> Bundle {
    live.admit_with(saved, |_| Ok(Payload::default())).unwrap()
}

fn the_noted_path_allocates_nothing_once_warm() {
    let heap = Heap::new();
    let core = server(&heap, 4, Exhaustion::Refuse, 0);
    let live = core.upgrade().unwrap();
    let mut saved: Vec<PendingTicket> = (0..3 * (ROUNDS + WARM) + 2)
        .map(|_| live.ticket().unwrap())
        .collect();
    let last = saved.pop().unwrap();
    let drain = core.stop();
    let mut round = |i: usize| {
        let a = site_one(&live, saved.pop().unwrap());
        let mut b = site_two(&live, saved.pop().unwrap());
        assert_eq!(
            admit(&core).map(drop).unwrap_err().reason(),
            RefusalReason::Stopped
        );
        assert!(live.ticket().is_err());
        let refused = live.admit_with(saved.pop().unwrap(), |_| {
            Err::<Payload, _>(Refusal::new(RefusalReason::Engine("refused")))
        });
        assert!(refused.is_err());
        if i.is_multiple_of(2) {
            assert!(b.hand_off().is_some());
        }
        b.complete();
        a.end(Outcome::ForceClosed);
    };
    for i in 0..WARM {
        round(i);
    }
    let allocations = single_test::allocations(GLOBAL, || {
        for i in 0..ROUNDS {
            round(i);
        }
    });
    assert_eq!(
        allocations,
        0,
        "stopped: saved tickets admitted and released, refusals (sites tracked: {})",
        Ledger::tracks_sites()
    );
    // A new place's first admission makes its row; the next admission there, nothing.
    let new_place = |saved: PendingTicket| live.admit_with(saved, |_| Ok(Payload::default()));
    let first = single_test::allocations(GLOBAL, || {
        new_place(saved.pop().unwrap()).unwrap().complete()
    });
    let second = single_test::allocations(GLOBAL, || new_place(last).unwrap().complete());
    assert_eq!(second, 0, "a place's second admission");
    assert_eq!(
        first > 0,
        Ledger::tracks_sites(),
        "a place's first admission makes its row when sites are tracked ({first} allocations)"
    );
    assert!(saved.is_empty());
    assert!(drain.is_complete());
    core.ledger().assert_quiescent();
}

// ---------------------------------------------------------------------------------------------
// 3. Eight places in turn on two servers (the plain path): every mint misses its ledger's
//    last-site cache, and the rows of one server are not the other's.

type LiveCtx<'a> = reqguard::Live<'a, Embedded<&'static str>, Ctx>;

fn admit_at(live: &LiveCtx<'_>, place: usize) -> Bundle {
    let build = |_: &mut Ctx| Ok(Payload::default());
    match place {
        0 => live.admit(build),
        1 => live.admit(build),
        2 => live.admit(build),
        3 => live.admit(build),
        4 => live.admit(build),
        5 => live.admit(build),
        6 => live.admit(build),
        _ => live.admit(build),
    }
    .unwrap()
}

fn eight_places_on_two_servers_allocate_nothing_once_warm() {
    let heap = Heap::new();
    let cores = [
        server(&heap, 8, Exhaustion::Refuse, 0),
        server(&heap, 8, Exhaustion::Spill, 8),
    ];
    let lives = [cores[0].upgrade().unwrap(), cores[1].upgrade().unwrap()];
    let mut held: Vec<Bundle> = Vec::with_capacity(16);
    let mut round = |i: usize| {
        for place in 0..8 {
            // Places in a different order each round, servers in turn.
            let place = (place * 3 + i) % 8;
            held.push(admit_at(&lives[place % 2], place));
            held.push(admit_at(&lives[1 - place % 2], place));
        }
        held.rotate_left(i % 16);
        for (k, mut bundle) in held.drain(..).enumerate() {
            if k % 3 == 0 {
                assert!(bundle.hand_off().is_some());
            }
            match k % 4 {
                0 => bundle.complete(),
                1 => bundle.end(Outcome::ClientGone),
                _ => drop(bundle),
            }
        }
    };
    for i in 0..WARM {
        round(i);
    }
    let allocations = single_test::allocations(GLOBAL, || {
        for i in 0..ROUNDS {
            round(i);
        }
    });
    assert_eq!(
        allocations,
        0,
        "eight places, two servers (sites tracked: {})",
        Ledger::tracks_sites()
    );
    for core in &cores {
        core.ledger().assert_quiescent();
        assert_eq!(core.pool_metrics().allocated, 8);
    }
}
