//! Hostile-embedder probes of the released-where-ended bundle and the signal kept beside its
//! context (44a70ab, 1f8bb8a): `complete()`/`end()` release the bundle where they are called,
//! and a signal nobody else holds that never fired stays in the pool's free list beside its
//! context, for the next bundle to take in the same pop.
//!
//! What must hold (docs of `Admitted`, `AbortSignal`, `Drain`, `Outcome`; G5, G8): a signal is
//! reused only once nobody can observe or abort it, always reset (no reason, no listener, one
//! activity); the next request never sees an old reason or runs an old listener; the deadline
//! aborts exactly the requests still out, never an idle pooled signal; one outcome per request;
//! the ledger, the report and the pool's figures agree at every step; a panicking `recycle` or
//! context `Drop`, spills, refusals, prewarm, saved tickets and re-entrant hooks change none of
//! that. Most pools here hold one context, so the next request pops the very slot (and signal)
//! the last one gave back.

#[path = "util/ledger_check.rs"]
mod ledger_check;
use ledger_check::check_ledger;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reqguard::engines::{Embedded, Heap};
use reqguard::{
    AbortReason, AbortSignal, ActivityRef, Admitted, Config, DowngradePolicy, DrainStatus,
    Exhaustion, GuardKind, Ledger, Outcome, PendingTicket, Recycle, Refusal, RefusalReason,
    ServerCore,
};

#[path = "util/quiet.rs"]
mod quiet;
use quiet::quiet_panics;

type Core = ServerCore<Embedded<&'static str>>;
type Bundle = Admitted<(), ()>;
type Live<'a> = reqguard::Live<'a, Embedded<&'static str>>;

fn core_with(heap: &Heap, capacity: usize, exhaustion: Exhaustion) -> Core {
    let config = Config::default()
        .with_pool_capacity(capacity)
        .unwrap()
        .with_exhaustion(exhaustion);
    ServerCore::embedded(heap.alloc("server"), config)
}

/// A server whose pool holds one context: every request pops the slot the last one gave back.
fn solo(heap: &Heap) -> Core {
    core_with(heap, 1, Exhaustion::Spill)
}

fn admit(core: &Core) -> Bundle {
    core.upgrade().unwrap().admit(|_| Ok(())).unwrap()
}

/// A counter of listener runs, and a listener that adds `by` to it.
fn counter() -> Rc<Cell<u32>> {
    Rc::new(Cell::new(0))
}

fn add(ran: &Rc<Cell<u32>>, by: u32) -> impl FnOnce(AbortReason) + 'static {
    let ran = Rc::clone(ran);
    move |_| ran.set(ran.get() + by)
}

/// The signal of a request that was just admitted looks brand new: no reason, only the
/// bundle's own activity, and an abort runs the listeners added now and nothing older.
fn assert_fresh(bundle: &Bundle) {
    let signal = bundle.signal();
    assert_eq!(
        signal.reason(),
        None,
        "an old reason leaked into a new request"
    );
    assert_eq!(signal.pending_activity(), 1, "old activity leaked");
}

/// A saved request admitted once the deadline has escalated comes with its signal aborted by
/// it (QA embed26-2): `DrainDeadline`, one activity (its own), and no listener taken.
fn assert_born_past_the_deadline(bundle: &Bundle) {
    let signal = bundle.signal();
    assert_eq!(signal.reason(), Some(AbortReason::DrainDeadline));
    assert_eq!(signal.pending_activity(), 1, "old activity leaked");
    assert!(!signal.on_abort(|_| panic!("a listener ran on an aborted signal")));
}

/// Ends `bundle` with a listener of its own, and checks only that listener ran, once, with the
/// outcome's reason (or not at all for `Completed`).
fn end_checking_listeners(bundle: Bundle, outcome: Outcome) {
    let ran = counter();
    assert!(bundle.signal().on_abort(add(&ran, 1)));
    let signal = bundle.signal().clone();
    bundle.end(outcome);
    let expected = u32::from(outcome != Outcome::Completed);
    assert_eq!(ran.get(), expected, "listeners of {outcome:?}");
    assert_eq!(signal.reason(), outcome.abort_reason());
}

// ---------------------------------------------------------------------------------------------
// The next request's signal is fresh, however the last one ended.

/// Every way a request ends on a one-context pool, each followed by the next request on the
/// same slot: its signal is fresh, listeners of the last request never run again, and the
/// outcomes add up. Ends: complete, complete with an unfired listener, a user abort then
/// complete, end(ClientGone), end(ForceClosed), end(Completed), a drop, hand_off then complete.
#[test]
fn the_next_request_gets_a_fresh_signal_however_the_last_one_ended() {
    let heap = Heap::new();
    let core: Core = solo(&heap);
    let stale = counter();
    let live = core.upgrade().unwrap();
    for round in 0..3 {
        for way in 0..8 {
            let bundle = live.admit(|_| Ok(())).unwrap();
            assert_fresh(&bundle);
            assert!(!bundle.is_spilled(), "one request at a time fits the pool");
            match way {
                0 => bundle.complete(),
                1 => {
                    assert!(bundle.signal().on_abort(add(&stale, 1)));
                    bundle.complete();
                }
                2 => {
                    assert!(bundle.signal().on_abort(add(&stale, 1_000)));
                    assert!(bundle.signal().abort(AbortReason::ClientDisconnected));
                    bundle.complete(); // the first cause wins: ClientGone
                }
                3 => bundle.end(Outcome::ClientGone),
                4 => bundle.end(Outcome::ForceClosed),
                5 => bundle.end(Outcome::Completed),
                6 => drop(bundle),
                _ => {
                    let mut bundle = bundle;
                    assert_eq!(bundle.hand_off(), Some(()));
                    bundle.complete();
                }
            }
            check_ledger(core.ledger());
            assert!(core.ledger().is_quiescent(), "round {round} way {way}");
            assert_eq!(core.pool_metrics().in_use, 0);
        }
    }
    // Only the user aborts ran a listener (1,000 each); the unfired ones were dropped.
    assert_eq!(stale.get(), 3_000);
    // The next request after all that: its abort runs its own listener only.
    end_checking_listeners(live.admit(|_| Ok(())).unwrap(), Outcome::ClientGone);
    assert_eq!(stale.get(), 3_000);
    let o = core.ledger().outcomes();
    // complete, listener, completed-after-nothing, hand_off: 4 per round, and end(Completed).
    assert_eq!(o.completed, 3 * 4);
    assert_eq!(o.client_gone, 3 * 2 + 1);
    assert_eq!((o.force_closed, o.dropped, o.deadline_aborted), (3, 3, 0));
    assert_eq!(core.pool_metrics().allocated, 1);
    core.ledger().assert_quiescent();
}

// ---------------------------------------------------------------------------------------------
// A handle that outlives its request is never handed to the next one.

/// Where user code keeps a request's signal past its end.
#[derive(Clone, Copy, Debug)]
enum Holder {
    /// A plain clone.
    Clone,
    /// The signal of an activity ref kept past the request (a pending body read).
    ActivityRef,
    /// A clone captured by a listener of another request's signal, which never fires.
    OtherListener,
    /// A clone its own listener captured and stashed when the request was aborted.
    OwnListenerAfterAbort,
    /// A clone taken inside the next request's `build`, just before the old one completes there.
    InsideBuild,
}

const HOLDERS: [Holder; 5] = [
    Holder::Clone,
    Holder::ActivityRef,
    Holder::OtherListener,
    Holder::OwnListenerAfterAbort,
    Holder::InsideBuild,
];

/// What keeps a request's signal alive after it ended, to let go of at the end.
type Kept = (AbortSignal, Vec<Box<dyn std::any::Any>>);

/// Ends the request `old` while `holder` keeps its signal: returns the kept signal and what
/// must stay alive to keep holding it. The pool has one context, so the next request pops the
/// slot `old` gave back.
fn end_while_held(core: &Core, old: Bundle, holder: Holder) -> Kept {
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    let signal = match holder {
        Holder::Clone => {
            let s = old.signal().clone();
            old.complete();
            s
        }
        Holder::ActivityRef => {
            let activity: ActivityRef = old.activity_ref();
            let s = activity.signal().clone();
            keep.push(Box::new(activity));
            old.complete();
            s
        }
        Holder::OtherListener => {
            // A request that outlives `old` (spilled: the pool's one context is `old`'s).
            let other = admit(core);
            let captured = old.signal().clone();
            other.signal().on_abort(move |_| drop(captured));
            let s = old.signal().clone();
            old.complete();
            keep.push(Box::new(other));
            s
        }
        Holder::OwnListenerAfterAbort => {
            let stash: Rc<RefCell<Option<AbortSignal>>> = Rc::default();
            let (into, own) = (Rc::clone(&stash), old.signal().clone());
            old.signal()
                .on_abort(move |_| *into.borrow_mut() = Some(own));
            old.end(Outcome::ClientGone);
            let s = stash.borrow_mut().take().expect("the listener ran");
            assert_eq!(s.reason(), Some(AbortReason::ClientDisconnected));
            s
        }
        Holder::InsideBuild => {
            let old = RefCell::new(Some(old));
            let taken = RefCell::new(None);
            let live = core.upgrade().unwrap();
            let next = live
                .admit(|_| {
                    let old = old.borrow_mut().take().unwrap();
                    *taken.borrow_mut() = Some(old.signal().clone());
                    old.complete(); // the slot goes back while `next` is being built
                    Ok(())
                })
                .unwrap();
            let s = taken.into_inner().unwrap();
            assert!(!next.signal().same_as(&s));
            next.complete();
            s
        }
    };
    (signal, keep)
}

/// A request's signal held past its end (a clone, an activity ref, another request's listener,
/// its own listener, a clone taken inside the next `build`): the next requests on the same slot
/// never get it; their aborts do not reach it, its abort does not reach them, its listener
/// never runs for them, and a reason it got stays (it is not reset under its holder).
#[test]
fn a_signal_held_past_its_request_is_never_handed_to_the_next() {
    for holder in HOLDERS {
        let heap = Heap::new();
        let core: Core = solo(&heap);
        let (held, keep) = end_while_held(&core, admit(&core), holder);
        let held_reason = held.reason();
        let ran = counter();
        // Its request has ended: a listener is refused (round 26: a request's listeners live
        // at most until its end), and dropped unrun.
        assert!(!held.on_abort(add(&ran, 1)));
        for _ in 0..3 {
            let next = admit(&core);
            assert_fresh(&next);
            assert!(
                !next.signal().same_as(&held),
                "{holder:?}: handed to the next request"
            );
            next.end(Outcome::ClientGone);
            assert_eq!(
                held.reason(),
                held_reason,
                "{holder:?}: the next abort reached it"
            );
            assert_eq!(ran.get(), 0, "{holder:?}");
        }
        // The held signal's own abort reaches no request.
        let next = admit(&core);
        if held_reason.is_none() {
            assert!(held.abort(AbortReason::DrainDeadline));
            assert_eq!(ran.get(), 0, "a listener ran after its request's end");
        }
        assert_eq!(
            next.signal().reason(),
            None,
            "{holder:?}: the held abort reached it"
        );
        next.complete();
        drop(keep);
        drop(held);
        // Let go: requests go on with fresh signals, and everything is back.
        for _ in 0..3 {
            let next = admit(&core);
            assert_fresh(&next);
            next.complete();
        }
        check_ledger(core.ledger());
        core.ledger().assert_quiescent();
        assert_eq!(core.pool_metrics().in_use, 0);
    }
}

/// Listeners added to a request's signal and never fired, then the request completes: none of
/// them runs, for it or any later request, and each is dropped (its captures freed) by the time
/// the next request has its signal.
#[test]
fn unfired_listeners_are_dropped_not_carried_to_the_next_request() {
    let heap = Heap::new();
    let core: Core = solo(&heap);
    let ran = counter();
    let token = Rc::new(());
    let bundle = admit(&core);
    for _ in 0..5 {
        let t = Rc::clone(&token);
        assert!(bundle.signal().on_abort(move |_| {
            drop(t);
            panic!("an old listener ran for a later request")
        }));
    }
    assert!(bundle.signal().on_abort(add(&ran, 1)));
    bundle.complete();
    assert_eq!(
        Rc::strong_count(&token),
        1,
        "the listeners were dropped with the request"
    );
    for outcome in [Outcome::ClientGone, Outcome::Dropped, Outcome::ForceClosed] {
        end_checking_listeners(admit(&core), outcome);
    }
    assert_eq!(ran.get(), 0);
    core.ledger().assert_quiescent();
}

// ---------------------------------------------------------------------------------------------
// The drain deadline: exactly the requests still out.

/// Pooled signals kept beside idle contexts, live requests some of which took a kept signal,
/// then the deadline: it aborts exactly the live ones (a kept signal reused by a live request
/// included), never an idle pooled one; the report and the outcomes say so; a saved ticket
/// admitted afterwards pops a kept signal and gets it fresh.
#[test]
fn the_deadline_aborts_exactly_the_live_requests_never_a_pooled_signal() {
    for use_poll in [false, true] {
        let heap = Heap::new();
        let core = core_with(&heap, 4, Exhaustion::Refuse);
        let live = core.upgrade().unwrap();
        let first: Vec<Bundle> = (0..4).map(|_| live.admit(|_| Ok(())).unwrap()).collect();
        let mut first = first.into_iter();
        let (a, b, c, d) = (
            first.next().unwrap(),
            first.next().unwrap(),
            first.next().unwrap(),
            first.next().unwrap(),
        );
        a.complete();
        b.complete(); // two signals kept beside their contexts
        let e = live.admit(|_| Ok(())).unwrap(); // takes a kept one
        let f = live.admit(|_| Ok(())).unwrap(); // and the other
        assert_fresh(&e);
        assert_fresh(&f);
        e.complete(); // kept again, idle
        let saved: PendingTicket = live.ticket().unwrap();
        let out = [c, d, f];
        let fired = counter();
        for bundle in &out {
            bundle.signal().on_abort(add(&fired, 1));
        }
        drop(live);
        let drain = core.stop();
        let aborted = if use_poll {
            let now = Instant::now();
            drain.set_deadline(now);
            match drain.poll_deadline(now + Duration::from_millis(1)) {
                DrainStatus::Expired(report) => {
                    assert_eq!(
                        report.outstanding.total(),
                        drain.ledger().total_outstanding()
                    );
                    report.aborted_signals
                }
                other => panic!("expected expiry, got {other:?}"),
            }
        } else {
            drain.escalate().aborted_signals
        };
        assert_eq!(aborted, 3, "exactly the three requests out");
        assert_eq!(fired.get(), 3);
        for bundle in &out {
            assert_eq!(bundle.signal().reason(), Some(AbortReason::DrainDeadline));
        }
        // The saved request comes back after the deadline (which fired exactly the three out,
        // no idle pooled signal): it pops an idle slot, and comes aborted by the deadline.
        let late = core
            .upgrade()
            .unwrap()
            .admit_with(saved, |_| Ok(()))
            .unwrap();
        assert_born_past_the_deadline(&late);
        late.complete(); // too late: the deadline decided
        for bundle in out {
            bundle.complete(); // too late: the deadline decided
        }
        assert!(drain.is_complete());
        let o = core.ledger().outcomes();
        assert_eq!((o.completed, o.deadline_aborted, o.total()), (3, 4, 7));
        assert_eq!(drain.report().outcomes, o);
        check_ledger(core.ledger());
        core.ledger().assert_quiescent();
    }
}

/// A `build` that stops the server and escalates while its own request (which popped a kept
/// signal) is pending: the deadline aborts that request's signal; once admitted it ends as
/// `DeadlineAborted` whatever is called; a later saved request gets a signal on the slot that
/// the deadline aborted (it has escalated), and ends `DeadlineAborted` too.
#[test]
fn build_escalates_on_a_request_that_took_a_kept_signal() {
    let heap = Heap::new();
    let core = core_with(&heap, 1, Exhaustion::Refuse);
    let live = core.upgrade().unwrap();
    live.admit(|_| Ok(())).unwrap().complete(); // kept beside the only context
    let saved = live.ticket().unwrap();
    let report = RefCell::new(None);
    let bundle = live
        .admit(|_| {
            *report.borrow_mut() = Some(core.stop().escalate());
            Ok(())
        })
        .unwrap();
    let report = report.into_inner().unwrap();
    assert_eq!(report.aborted_signals, 1);
    assert_eq!(bundle.signal().reason(), Some(AbortReason::DrainDeadline));
    bundle.complete();
    let late = live.admit_with(saved, |_| Ok(())).unwrap();
    assert_born_past_the_deadline(&late);
    late.complete();
    let o = core.ledger().outcomes();
    assert_eq!((o.deadline_aborted, o.completed), (2, 1));
    assert!(core.drain().unwrap().is_complete());
    core.ledger().assert_quiescent();
}

// ---------------------------------------------------------------------------------------------
// Re-entrancy during a release.

/// A drain hook that runs inside the release of the last request (its signal kept, or given to
/// the spare list before the hook runs: spilled contexts) and re-enters the server: it cannot
/// admit (stopped), a standalone signal it mints is fresh and its own (the ending request's
/// handle is not reused under the hook), and the books are right afterwards.
#[test]
fn a_drain_hook_reenters_during_the_last_release() {
    for capacity in [0, 1] {
        for outcome in [Outcome::Completed, Outcome::ClientGone] {
            let heap = Heap::new();
            let core = Rc::new(core_with(&heap, capacity, Exhaustion::Spill));
            let last = admit(&core);
            let last_signal = last.signal().clone();
            let drain = core.stop();
            drop(last_signal); // the request's own handle is the last again
            let minted: Rc<RefCell<Option<AbortSignal>>> = Rc::default();
            let refused = Rc::new(Cell::new(None));
            let (c, m, r) = (Rc::clone(&core), Rc::clone(&minted), Rc::clone(&refused));
            drain.on_complete(move || {
                let live = c.upgrade().expect("not collected");
                r.set(live.admit(|_| Ok(())).err().map(|e| e.reason()));
                let signal = live.signal();
                assert_eq!(signal.reason(), None, "a minted signal comes reset");
                assert_eq!(signal.pending_activity(), 0);
                *m.borrow_mut() = Some(signal);
            });
            last.end(outcome);
            assert!(drain.is_complete());
            assert_eq!(refused.get(), Some(RefusalReason::Stopped));
            let minted = minted.borrow_mut().take().unwrap();
            // The hook's signal is its own: aborting it reaches nothing else, once.
            let ran = counter();
            assert!(minted.on_abort(add(&ran, 1)));
            assert!(minted.abort(AbortReason::ForceClosed));
            assert!(!minted.abort(AbortReason::DrainDeadline));
            assert_eq!(ran.get(), 1);
            assert_eq!(core.ledger().outcomes().total(), 1);
            assert_eq!(drain.report().panicked_hooks, 0);
            check_ledger(core.ledger());
            core.ledger().assert_quiescent();
        }
    }
}

/// An abort listener, run while its request ends (`end`, or a drop), admits and completes
/// requests of the same server (which pop the slots and signals other requests gave back) and
/// stops the server: each request has one outcome, every signal handed out is fresh, and the
/// drain completes with the last release.
#[test]
fn a_listener_admits_and_completes_requests_while_its_own_is_released() {
    for drop_it in [false, true] {
        let heap = Heap::new();
        let core = Rc::new(core_with(&heap, 2, Exhaustion::Spill));
        admit(&core).complete();
        admit(&core).complete(); // both contexts idle, each with a kept signal
        let outer = admit(&core);
        let c = Rc::clone(&core);
        let fresh = Rc::new(Cell::new(true));
        let f = Rc::clone(&fresh);
        outer.signal().on_abort(move |_| {
            for _ in 0..3 {
                let nested = admit(&c);
                f.set(f.get() && nested.signal().reason().is_none());
                f.set(f.get() && nested.signal().pending_activity() == 1);
                nested.complete();
            }
            drop(c.stop());
        });
        if drop_it {
            drop(outer);
        } else {
            outer.end(Outcome::ClientGone);
        }
        assert!(fresh.get(), "a nested request got a used signal");
        let o = core.ledger().outcomes();
        assert_eq!(o.completed, 2 + 3);
        assert_eq!(o.client_gone + o.dropped, 1);
        assert!(core.drain().unwrap().is_complete());
        let m = core.pool_metrics();
        assert_eq!((m.in_use, m.allocated), (0, 2));
        check_ledger(core.ledger());
        core.ledger().assert_quiescent();
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile contexts: a panicking recycle or Drop while a signal is kept.

thread_local! {
    static RECYCLE_PANICS: Cell<bool> = const { Cell::new(false) };
    static DROP_PANICS: Cell<bool> = const { Cell::new(false) };
    static DROPS: Cell<u32> = const { Cell::new(0) };
}

#[derive(Default)]
struct Hostile(u32);

impl Recycle for Hostile {
    fn recycle(&mut self) {
        self.0 = 0;
        if RECYCLE_PANICS.with(Cell::get) {
            panic!("recycle panics");
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        DROPS.with(|d| d.set(d.get() + 1));
        if DROP_PANICS.with(Cell::get) && !std::thread::panicking() {
            panic!("context drop panics");
        }
    }
}

type HostileCore = ServerCore<Embedded<&'static str>, Hostile>;

fn hostile(heap: &Heap, capacity: usize) -> HostileCore {
    let config = Config::default().with_pool_capacity(capacity).unwrap();
    ServerCore::embedded_with_context(heap.alloc("server"), config)
}

fn set(flag: &'static std::thread::LocalKey<Cell<bool>>, on: bool) {
    flag.with(|f| f.set(on));
}

/// `recycle` panics (and then the context's `Drop` too) while a completed request gives back
/// its context with a signal fit to keep: the release finishes, the context is freed and
/// uncounted, the signal is not lost to the books, and the next request gets a fresh context
/// and a fresh signal.
#[test]
fn recycle_and_drop_panic_while_a_signal_would_be_kept() {
    quiet_panics();
    for also_drop in [false, true] {
        let heap = Heap::new();
        let core = hostile(&heap, 1);
        let live = core.upgrade().unwrap();
        let bundle = live
            .admit(|ctx| {
                ctx.0 = 9;
                Ok(())
            })
            .unwrap();
        set(&RECYCLE_PANICS, true);
        set(&DROP_PANICS, also_drop);
        bundle.complete();
        set(&RECYCLE_PANICS, false);
        set(&DROP_PANICS, false);
        let m = core.pool_metrics();
        assert_eq!((m.in_use, m.allocated, m.recycle_panics), (0, 0, 1));
        assert_eq!(core.ledger().outcomes().completed, 1);
        check_ledger(core.ledger());
        for outcome in [Outcome::ClientGone, Outcome::Completed, Outcome::Dropped] {
            let next = live.admit(|ctx| Ok(ctx.0)).unwrap();
            assert_eq!(next.request(), Some(&0), "a fresh context");
            assert_eq!(next.signal().reason(), None);
            assert_eq!(next.signal().pending_activity(), 1);
            let ran = counter();
            next.signal().on_abort(add(&ran, 1));
            next.end(outcome);
            assert_eq!(ran.get(), u32::from(outcome != Outcome::Completed));
        }
        assert_eq!(core.pool_metrics().allocated, 1);
        core.ledger().assert_quiescent();
    }
}

/// Spilled contexts whose `Drop` panics, on a pool of capacity 0 and 1, each spilled request's
/// signal fit to keep: the release finishes, the signal is fresh for the next request, and
/// dropping the core with kept signals in the pool (contexts whose `Drop` panics) panics
/// nowhere and frees every context.
#[test]
fn spilled_and_pooled_context_drops_panic_with_signals_kept() {
    quiet_panics();
    for capacity in [0, 1] {
        let heap = Heap::new();
        let core = hostile(&heap, capacity);
        let live = core.upgrade().unwrap();
        DROPS.with(|d| d.set(0));
        for _ in 0..3 {
            let a = live.admit(|_| Ok(())).unwrap();
            let b = live.admit(|_| Ok(())).unwrap();
            assert!(b.is_spilled());
            assert_eq!(a.is_spilled(), capacity == 0);
            assert_eq!(b.signal().reason(), None);
            assert_eq!(b.signal().pending_activity(), 1);
            set(&DROP_PANICS, true);
            b.complete();
            a.complete();
            set(&DROP_PANICS, false);
        }
        let m = core.pool_metrics();
        assert_eq!(m.spills, if capacity == 0 { 6 } else { 3 });
        assert_eq!((m.in_use, m.allocated), (0, capacity));
        let spilled_drops = DROPS.with(Cell::get);
        assert_eq!(
            u64::from(spilled_drops),
            m.spills,
            "each spilled context freed once"
        );
        assert_eq!(core.ledger().outcomes().completed, 6);
        core.ledger().assert_quiescent();
        drop(live);
        set(&DROP_PANICS, true);
        drop(core); // the pooled context (if any) and its kept signal are freed here
        set(&DROP_PANICS, false);
        heap.collect();
        assert_eq!(heap.live_objects(), 0);
        let pooled = u32::try_from(capacity).unwrap();
        assert_eq!(
            DROPS.with(Cell::get),
            spilled_drops + pooled,
            "the pooled one at the end"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Standalone contexts, refusals, capacity, prewarm, saved tickets.

/// A standalone `RequestContext` pops the slot a completed bundle gave back with its signal:
/// the signal becomes a spare again and the next bundle (which pops the slot without one) gets
/// a fresh signal; a stop while the standalone context is out waits for it.
#[test]
fn a_standalone_context_pops_a_slot_with_a_kept_signal() {
    let heap = Heap::new();
    let core = solo(&heap);
    let live = core.upgrade().unwrap();
    for _ in 0..3 {
        live.admit(|_| Ok(())).unwrap().complete();
        let ctx = live.context(live.ticket().unwrap()).unwrap();
        assert!(!ctx.is_spilled());
        let bundle = live.admit(|_| Ok(())).unwrap(); // spilled: the slot is the context's
        assert!(bundle.is_spilled());
        assert_fresh(&bundle);
        drop(ctx);
        end_checking_listeners(bundle, Outcome::ClientGone);
        let again = live.admit(|_| Ok(())).unwrap();
        assert!(!again.is_spilled());
        assert_fresh(&again);
        end_checking_listeners(again, Outcome::Completed);
    }
    let ctx = live.context(live.ticket().unwrap()).unwrap();
    let drain = core.stop();
    assert_eq!(drain.outstanding(), 1);
    drop(ctx);
    assert!(drain.is_complete());
    let m = core.pool_metrics();
    assert_eq!((m.in_use, m.allocated), (0, 1));
    core.ledger().assert_quiescent();
}

/// `Exhaustion::Refuse` at capacity 1 while the slot is out, then after it came back with its
/// signal: the refusal takes nothing (no ticket, no outcome), the next admission takes the slot.
/// A `build` that refuses or panics on a popped kept signal gives everything back and the next
/// request still gets a fresh signal.
#[test]
fn refuse_capacity_and_refused_builds_on_a_kept_signal() {
    quiet_panics();
    let heap = Heap::new();
    let core = core_with(&heap, 1, Exhaustion::Refuse);
    let live = core.upgrade().unwrap();
    let held = live.admit(|_| Ok(())).unwrap();
    let tickets = core.ledger().minted(GuardKind::Ticket);
    let err = live.admit(|_| Ok(())).unwrap_err();
    assert_eq!(err.reason(), RefusalReason::PoolExhausted);
    assert_eq!(err.status(), 503);
    assert_eq!(
        core.ledger().minted(GuardKind::Ticket),
        tickets,
        "a refusal mints nothing"
    );
    assert_eq!(
        live.context(live.ticket().unwrap()).unwrap_err().reason(),
        RefusalReason::PoolExhausted
    );
    held.complete();
    // The kept signal is popped by builds that refuse and panic.
    let refused = live.admit(|_| -> Result<(), Refusal> {
        Err(Refusal::new(RefusalReason::PayloadTooLarge { limit: 1 }))
    });
    assert_eq!(refused.unwrap_err().status(), 413);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        core.upgrade()
            .unwrap()
            .admit(|_| -> Result<(), Refusal> { panic!("build panics") })
            .map(drop)
    }));
    assert!(panicked.is_err());
    check_ledger(core.ledger());
    assert!(core.ledger().is_quiescent());
    end_checking_listeners(live.admit(|_| Ok(())).unwrap(), Outcome::ForceClosed);
    end_checking_listeners(live.admit(|_| Ok(())).unwrap(), Outcome::Completed);
    let m = core.pool_metrics();
    assert_eq!((m.in_use, m.allocated, m.refusals), (0, 1, 2));
    let o = core.ledger().outcomes();
    assert_eq!((o.completed, o.force_closed, o.total()), (2, 1, 3));
    core.ledger().assert_quiescent();
}

/// Capacity 0: `Refuse` refuses everything (nothing minted, nothing counted as an outcome);
/// `Spill` serves every request from the heap, each with a fresh signal.
#[test]
fn capacity_zero_refuses_or_spills_every_request() {
    let heap = Heap::new();
    let refusing = core_with(&heap, 0, Exhaustion::Refuse);
    let live = refusing.upgrade().unwrap();
    for _ in 0..3 {
        let err = live.admit(|_| Ok(())).unwrap_err();
        assert_eq!(err.reason(), RefusalReason::PoolExhausted);
    }
    assert_eq!(refusing.ledger().minted(GuardKind::Ticket), 0);
    assert_eq!(refusing.ledger().outcomes().total(), 0);
    assert_eq!(refusing.pool_metrics().refusals, 3);
    refusing.ledger().assert_quiescent();

    let spilling = core_with(&heap, 0, Exhaustion::Spill);
    let live = spilling.upgrade().unwrap();
    for outcome in [Outcome::Completed, Outcome::ClientGone, Outcome::Completed] {
        let bundle = live.admit(|_| Ok(())).unwrap();
        assert!(bundle.is_spilled());
        assert_fresh(&bundle);
        end_checking_listeners(bundle, outcome);
    }
    let m = spilling.pool_metrics();
    assert_eq!((m.spills, m.allocated, m.in_use), (3, 0, 0));
    spilling.ledger().assert_quiescent();
}

/// A prewarmed pool: its contexts exist before the first request and carry no signal yet;
/// requests take signals, give them back beside the contexts, and the pool never grows.
#[test]
fn a_prewarmed_pool_serves_with_fresh_signals_and_does_not_grow() {
    let heap = Heap::new();
    let config = Config::default()
        .with_pool_capacity(4)
        .unwrap()
        .with_prewarm(8);
    let core: Core = ServerCore::embedded(heap.alloc("server"), config);
    assert_eq!(core.pool_metrics().allocated, 4);
    let live = core.upgrade().unwrap();
    for round in 0..4 {
        let bundles: Vec<Bundle> = (0..4).map(|_| live.admit(|_| Ok(())).unwrap()).collect();
        for (i, bundle) in bundles.into_iter().enumerate() {
            assert_fresh(&bundle);
            assert!(!bundle.is_spilled());
            let outcome = if (i + round) % 2 == 0 {
                Outcome::Completed
            } else {
                Outcome::ClientGone
            };
            end_checking_listeners(bundle, outcome);
        }
    }
    let m = core.pool_metrics();
    assert_eq!((m.allocated, m.high_water, m.spills), (4, 4, 0));
    let o = core.ledger().outcomes();
    assert_eq!((o.completed, o.client_gone), (8, 8));
    core.ledger().assert_quiescent();
}

/// Saved tickets brought back with `admit_with` after stop, one at a time on a one-context
/// pool: each pops the slot (and signal) the last gave back, gets it fresh, and the drain
/// completes with the last one; a saved ticket refused by the exhausted pool ends its request
/// (the drain counts it), and one of another server is refused without touching this pool.
#[test]
fn saved_tickets_come_back_on_kept_signals_after_stop() {
    let heap = Heap::new();
    let core = core_with(&heap, 1, Exhaustion::Refuse);
    let other = solo(&heap);
    let live = core.upgrade().unwrap();
    live.admit(|_| Ok(())).unwrap().complete();
    let saved: Vec<PendingTicket> = (0..4).map(|_| live.ticket().unwrap()).collect();
    let foreign = other.upgrade().unwrap().ticket().unwrap();
    let drain = core.stop();
    assert_eq!(
        live.admit_with(foreign, |_| Ok(())).unwrap_err().reason(),
        RefusalReason::OtherServer
    );
    let mut saved = saved.into_iter();
    let first = live.admit_with(saved.next().unwrap(), |_| Ok(())).unwrap();
    // The pool is exhausted: the second saved request is refused and ends.
    let err = live
        .admit_with(saved.next().unwrap(), |_| Ok(()))
        .unwrap_err();
    assert_eq!(err.reason(), RefusalReason::PoolExhausted);
    assert_eq!(drain.outstanding(), 3);
    end_checking_listeners(first, Outcome::Completed);
    for (i, ticket) in saved.enumerate() {
        let bundle = live.admit_with(ticket, |_| Ok(())).unwrap();
        assert_fresh(&bundle);
        assert!(!drain.is_complete());
        let outcome = if i == 0 {
            Outcome::ClientGone
        } else {
            Outcome::Completed
        };
        end_checking_listeners(bundle, outcome);
    }
    assert!(drain.is_complete());
    let o = core.ledger().outcomes();
    assert_eq!((o.completed, o.client_gone, o.total()), (3, 1, 4));
    core.ledger().assert_quiescent();
    other.ledger().assert_quiescent();
}

// ---------------------------------------------------------------------------------------------
// The core dropped while signals sit in its pool (run under valgrind / ASan: see the notes).

/// Signals kept beside idle contexts, spare signals, a clone and an activity ref user code
/// still holds, a bundle still out: the core is dropped, the last request ends afterwards (the
/// pool is freed inside that release), the heap is collected, and then the user's handles are
/// used and dropped. Nothing panics, the wrapper is finalized, the handles still work.
#[test]
fn the_core_dropped_with_signals_in_its_pool() {
    for drop_order in 0..2 {
        let heap = Heap::new();
        let config = Config::default()
            .with_pool_capacity(3)
            .unwrap()
            .with_downgrade(DowngradePolicy::OnDrain);
        let core: Core = ServerCore::embedded(heap.alloc("server"), config);
        let live = core.upgrade().unwrap();
        let first: Vec<Bundle> = (0..3).map(|_| live.admit(|_| Ok(())).unwrap()).collect();
        let mut first = first.into_iter();
        first.next().unwrap().complete(); // kept beside its context
        first.next().unwrap().complete(); // kept beside its context
        first.next().unwrap().end(Outcome::ClientGone); // a spare; its context has none
        let held = live.admit(|_| Ok(())).unwrap(); // the context without one: the spare
        let clone = held.signal().clone();
        let activity = held.activity_ref();
        let out = live.admit(|_| Ok(())).unwrap(); // a context with a kept signal
        assert_fresh(&out);
        held.complete(); // its context goes back without the (held) signal
        drop(live);
        assert_eq!(core.ledger().outstanding(GuardKind::Ticket), 1);
        assert_eq!(core.ledger().outstanding(GuardKind::ActivityRef), 2);
        // One idle context still has its kept signal when the core goes.
        drop(core);
        if drop_order == 0 {
            out.complete(); // frees the pool and its kept signals inside this release
            drop(activity);
        } else {
            drop(activity);
            drop(out);
        }
        heap.collect();
        assert_eq!(heap.live_objects(), 0);
        let ran = counter();
        assert!(
            !clone.on_abort(add(&ran, 1)),
            "added after its request's end"
        );
        assert!(clone.abort(AbortReason::ForceClosed));
        assert_eq!(ran.get(), 0);
        drop(clone);
    }
}

/// The leak report of a bundle forgotten on a reused slot names its admit site, once, and the
/// counts agree with it; the deadline still finds and aborts the forgotten request's signal.
#[test]
fn a_forgotten_bundle_on_a_reused_slot_is_reported_and_aborted() {
    let heap = Heap::new();
    let core = solo(&heap);
    admit(&core).complete();
    let forgotten = admit(&core);
    let signal = forgotten.signal().clone();
    Admitted::forget(forgotten);
    check_ledger(core.ledger());
    assert_eq!(core.ledger().outstanding(GuardKind::Ticket), 1);
    if Ledger::tracks_sites() {
        let report = core.ledger().report();
        let text = report.to_string();
        assert!(text.contains("probe_core_v4.rs"), "{text}");
    }
    let report = core.stop().escalate();
    assert_eq!(report.aborted_signals, 1);
    assert_eq!(signal.reason(), Some(AbortReason::DrainDeadline));
    assert!(!report.complete);
    assert_eq!(
        report.outcomes.total(),
        1,
        "no outcome invented for the forgotten one"
    );
}

// ---------------------------------------------------------------------------------------------
// Random interleavings against a model of every signal handed out.

/// A small xorshift generator: the seeds are fixed, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// What the model knows of one admitted request's signal: the reason it must have, the
/// listener counters that must have run once (fired) or never (not fired), those dropped unrun
/// at their request's completion (round 26: a request's listeners live at most until its
/// end), and whether that request has ended (no listener is added then).
#[derive(Default)]
struct SignalModel {
    reason: Option<AbortReason>,
    listeners: Vec<Rc<Cell<u32>>>,
    unrun: Vec<Rc<Cell<u32>>>,
    ended: bool,
}

/// The model: requests by id, what user code holds, and the outcomes it expects.
#[derive(Default)]
struct Model {
    signals: Vec<SignalModel>,
    live: Vec<(usize, Bundle)>,
    held: Vec<(usize, AbortSignal)>,
    activity: Vec<ActivityRef>,
    contexts: Vec<reqguard::RequestContext<()>>,
    saved: Vec<PendingTicket>,
    /// Stopped, and the deadline escalated with the stop.
    stopped: bool,
    outcomes: [u64; 5],
}

const REASONS: [AbortReason; 4] = [
    AbortReason::ClientDisconnected,
    AbortReason::DrainDeadline,
    AbortReason::ForceClosed,
    AbortReason::Other("user"),
];

impl Model {
    /// `id`'s signal fires with `reason` (unless it already fired): from now on each of its
    /// listeners must have run once.
    fn fire(&mut self, id: usize, reason: AbortReason) {
        let signal = &mut self.signals[id];
        if signal.reason.is_none() {
            signal.reason = Some(reason);
        }
    }

    /// The request `at` in `live` ends with `outcome` (`None`: dropped).
    fn end(&mut self, at: usize, outcome: Option<Outcome>) {
        let (id, bundle) = self.live.swap_remove(at);
        let outcome = outcome.unwrap_or(Outcome::Dropped);
        let decided = match self.signals[id].reason {
            Some(reason) => Outcome::after_abort(reason),
            None => outcome,
        };
        if let Some(reason) = decided.abort_reason() {
            self.fire(id, reason);
        }
        let signal = &mut self.signals[id];
        if signal.reason.is_none() {
            let unrun = std::mem::take(&mut signal.listeners);
            signal.unrun.extend(unrun);
        }
        signal.ended = true;
        self.outcomes[Outcome::ALL.iter().position(|o| *o == decided).unwrap()] += 1;
        match outcome {
            Outcome::Dropped => drop(bundle),
            Outcome::Completed => bundle.complete(),
            other => bundle.end(other),
        }
    }

    /// Every handle user code holds agrees with the model, and so do the listeners and books.
    fn check(&self, core: &Core, seed: u64, step: usize) {
        for (id, held) in &self.held {
            assert_eq!(
                held.reason(),
                self.signals[*id].reason,
                "seed {seed} step {step}: request {id}'s held signal"
            );
        }
        for (id, bundle) in &self.live {
            assert_eq!(
                bundle.signal().reason(),
                self.signals[*id].reason,
                "seed {seed}"
            );
        }
        for (id, signal) in self.signals.iter().enumerate() {
            let expected = u32::from(signal.reason.is_some());
            for listener in &signal.listeners {
                assert_eq!(
                    listener.get(),
                    expected,
                    "seed {seed} step {step}: {id}'s listener"
                );
            }
            for listener in &signal.unrun {
                assert_eq!(
                    listener.get(),
                    0,
                    "seed {seed} step {step}: {id}'s, after its end"
                );
            }
        }
        let counts = core.ledger().outcomes();
        let got: Vec<u64> = Outcome::ALL.iter().map(|o| counts.count(*o)).collect();
        assert_eq!(got, self.outcomes, "seed {seed} step {step}: outcomes");
        check_ledger(core.ledger());
    }
}

/// Random sequences of admissions (on small pools that spill or refuse), every way to end a
/// request, clones held and dropped, user aborts through held clones, listeners on live and
/// held signals, activity refs and standalone contexts: each admitted request's signal is new
/// to it (no held handle is the same signal, no reason, one activity), every held handle keeps
/// exactly its own request's reason, every listener runs once if and only if its own signal
/// fired while its request was out (one added after the end is refused), and the outcomes and
/// the books match the model after every step.
#[test]
fn random_interleavings_never_hand_out_a_signal_someone_holds() {
    for seed in 1..=300u64 {
        let heap = Heap::new();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let exhaustion = [Exhaustion::Spill, Exhaustion::Refuse][rng.below(2)];
        let core = core_with(&heap, rng.below(4), exhaustion);
        let live = core.upgrade().unwrap();
        let mut m = Model::default();
        for step in 0..120 {
            random_step(&mut rng, &mut m, &live, seed);
            m.check(&core, seed, step);
        }
        while !m.live.is_empty() {
            m.end(0, Some(Outcome::Completed));
        }
        m.held.clear();
        m.activity.clear();
        m.contexts.clear();
        m.saved.clear();
        m.check(&core, seed, usize::MAX);
        if m.stopped {
            assert!(core.drain().unwrap().is_complete(), "seed {seed}");
        }
        core.ledger().assert_quiescent();
    }
}

fn random_step(rng: &mut Rng, m: &mut Model, live: &Live<'_>, seed: u64) {
    match rng.below(16) {
        0 | 1 | 2 | 12 => admit_step(rng, m, live, seed),
        3 | 4 if !m.live.is_empty() => {
            let at = rng.below(m.live.len());
            let outcome = [
                Some(Outcome::Completed),
                Some(Outcome::Completed),
                Some(Outcome::ClientGone),
                Some(Outcome::ForceClosed),
                None,
            ][rng.below(5)];
            m.end(at, outcome);
        }
        5 if !m.live.is_empty() => {
            let (id, bundle) = &m.live[rng.below(m.live.len())];
            m.held.push((*id, bundle.signal().clone()));
        }
        6 if !m.held.is_empty() => {
            let at = rng.below(m.held.len());
            m.held.swap_remove(at);
        }
        7 if !m.held.is_empty() => {
            let (id, held) = &m.held[rng.below(m.held.len())];
            let id = *id;
            let reason = REASONS[rng.below(REASONS.len())];
            let fired = held.abort(reason);
            assert_eq!(fired, m.signals[id].reason.is_none(), "seed {seed}");
            m.fire(id, reason);
        }
        8 => listen_step(rng, m, seed),
        9 if !m.live.is_empty() => {
            let (_, bundle) = &m.live[rng.below(m.live.len())];
            m.activity.push(bundle.activity_ref());
        }
        10 if !m.activity.is_empty() => {
            let at = rng.below(m.activity.len());
            drop(m.activity.swap_remove(at));
        }
        13 if !m.stopped => m.saved.push(live.ticket().unwrap()),
        14 if !m.stopped && rng.below(8) == 0 => deadline_step(m, live, seed),
        11 if !m.stopped => {
            if m.contexts.is_empty() || rng.below(2) == 0 {
                if let Ok(ctx) = live.context(live.ticket().unwrap()) {
                    m.contexts.push(ctx);
                }
            } else {
                m.contexts.pop();
            }
        }
        _ => {}
    }
}

/// Admits a request (a saved ticket's, after stop always): its signal must be new to it, and
/// aborted by the deadline once it has escalated (the stop here escalates at once).
fn admit_step(rng: &mut Rng, m: &mut Model, live: &Live<'_>, seed: u64) {
    if m.live.len() >= 6 {
        return;
    }
    let admitted = match m.saved.pop() {
        Some(ticket) if m.stopped || rng.below(2) == 0 => live.admit_with(ticket, |_| Ok(())),
        Some(ticket) => {
            m.saved.push(ticket);
            live.admit(|_| Ok(()))
        }
        None => live.admit(|_| Ok(())),
    };
    let Ok(bundle) = admitted else {
        return; // refused (pool, or stopped): nothing taken
    };
    for (id, held) in &m.held {
        assert!(
            !bundle.signal().same_as(held),
            "seed {seed}: a new request got request {id}'s signal, still held"
        );
    }
    let born = m.stopped.then_some(AbortReason::DrainDeadline);
    assert_eq!(bundle.signal().reason(), born, "seed {seed}: a used reason");
    assert_eq!(bundle.signal().pending_activity(), 1, "seed {seed}");
    m.signals.push(SignalModel {
        reason: born,
        ..SignalModel::default()
    });
    m.live.push((m.signals.len() - 1, bundle));
}

/// A listener on a live request's signal, or on a held one (of a request that may have ended).
fn listen_step(rng: &mut Rng, m: &mut Model, seed: u64) {
    let target = if !m.live.is_empty() && rng.below(2) == 0 {
        let (id, bundle) = &m.live[rng.below(m.live.len())];
        Some((*id, bundle.signal().clone()))
    } else if !m.held.is_empty() {
        let (id, held) = &m.held[rng.below(m.held.len())];
        Some((*id, held.clone()))
    } else {
        None
    };
    if let Some((id, signal)) = target {
        let ran = counter();
        let added = signal.on_abort(add(&ran, 1));
        let takes = m.signals[id].reason.is_none() && !m.signals[id].ended;
        assert_eq!(added, takes, "seed {seed}");
        if added {
            m.signals[id].listeners.push(ran);
        }
    }
}

/// Stop and the deadline: exactly the requests still out whose signal has not fired.
fn deadline_step(m: &mut Model, live: &Live<'_>, seed: u64) {
    let expected = m
        .live
        .iter()
        .filter(|(id, _)| m.signals[*id].reason.is_none())
        .count();
    let report = live.core().stop().escalate();
    m.stopped = true;
    assert_eq!(
        report.aborted_signals, expected,
        "seed {seed}: the deadline"
    );
    let ids: Vec<usize> = m.live.iter().map(|(id, _)| *id).collect();
    for id in ids {
        m.fire(id, AbortReason::DrainDeadline);
    }
}

// ---------------------------------------------------------------------------------------------
// The payload drops after the release.

/// What a request payload holds: the server (its `Drop` admits and ends a request there), its
/// own request's activity ref, or a clone of its own request's signal.
enum Payload {
    Reenters(Rc<Core>, Rc<Cell<bool>>),
    // Held only to be dropped with the payload.
    Activity(#[allow(dead_code)] Option<ActivityRef>),
    OwnSignal(#[allow(dead_code)] Option<AbortSignal>),
}

impl Drop for Payload {
    fn drop(&mut self) {
        if let Payload::Reenters(core, fresh) = self {
            // Dropped after its bundle released everything: pops the slot (and the signal
            // kept beside it) that bundle just gave back.
            let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
            let signal = bundle.signal();
            fresh.set(signal.reason().is_none() && signal.pending_activity() == 1);
            bundle.end(Outcome::ClientGone);
        }
    }
}

/// A payload whose `Drop` (after its bundle's release) admits and ends a request on the same
/// one-slot server, holds its own request's activity ref, or a clone of its own signal: every
/// way a request ends, the nested request gets a fresh signal, nothing is counted twice, and
/// the next requests still get fresh signals.
#[test]
fn a_payload_dropped_after_the_release_reenters_or_holds_its_signal() {
    for (kind, outcome) in (0..3).flat_map(|k| {
        [Outcome::Completed, Outcome::ClientGone, Outcome::Dropped].map(move |o| (k, o))
    }) {
        let heap = Heap::new();
        let core = Rc::new(solo(&heap));
        let fresh = Rc::new(Cell::new(false));
        let live = core.upgrade().unwrap();
        let mut bundle = live.admit(|_| Ok(Payload::Activity(None))).unwrap();
        let payload = match kind {
            0 => Payload::Reenters(Rc::clone(&core), Rc::clone(&fresh)),
            1 => Payload::Activity(Some(bundle.activity_ref())),
            _ => Payload::OwnSignal(Some(bundle.signal().clone())),
        };
        *bundle.request_mut().unwrap() = payload;
        match outcome {
            Outcome::Dropped => drop(bundle),
            other => bundle.end(other),
        }
        if kind == 0 {
            assert!(
                fresh.get(),
                "{outcome:?}: the nested request's signal was used"
            );
        }
        let o = core.ledger().outcomes();
        assert_eq!(
            o.total(),
            1 + u64::from(kind == 0),
            "kind {kind} {outcome:?}"
        );
        check_ledger(core.ledger());
        core.ledger().assert_quiescent();
        for _ in 0..2 {
            end_checking_listeners(admit(&core), Outcome::ClientGone);
        }
        assert_eq!(core.pool_metrics().in_use, 0);
        drop(live);
        core.ledger().assert_quiescent();
    }
}

// ---------------------------------------------------------------------------------------------
// A storm of re-entry inside one release.

/// Inside request A's release (`end(ClientGone)` fires its listener), the listener stops the
/// server and escalates; the deadline fires B, whose listener completes C (still on the
/// deadline's list) and admits and completes D with a saved ticket (D pops a slot with a kept
/// signal). The deadline counts B alone; C's signal never fires (completed); D, admitted while
/// the escalation runs, and a later saved request E come with their signals aborted by the
/// deadline (QA embed26-2) and end `DeadlineAborted` though completed; each request has its
/// one outcome and the drain completes with the last.
#[test]
fn a_release_that_escalates_while_listeners_complete_and_admit() {
    let heap = Heap::new();
    let core = Rc::new(core_with(&heap, 4, Exhaustion::Refuse));
    let live = core.upgrade().unwrap();
    for _ in 0..2 {
        admit(&core).complete(); // slots with kept signals
    }
    let (a, b) = (admit(&core), admit(&core));
    let c: Rc<RefCell<Option<Bundle>>> = Rc::new(RefCell::new(Some(admit(&core))));
    let c_signal = c.borrow().as_ref().unwrap().signal().clone();
    let saved = Rc::new(RefCell::new(vec![
        live.ticket().unwrap(),
        live.ticket().unwrap(),
    ]));
    let d_signal: Rc<RefCell<Option<AbortSignal>>> = Rc::default();
    let (core_b, saved_b, c_b, d_b) = (
        Rc::clone(&core),
        Rc::clone(&saved),
        Rc::clone(&c),
        Rc::clone(&d_signal),
    );
    b.signal().on_abort(move |reason| {
        assert_eq!(reason, AbortReason::DrainDeadline);
        c_b.borrow_mut().take().unwrap().complete();
        let ticket = saved_b.borrow_mut().pop().unwrap();
        let d = core_b
            .upgrade()
            .unwrap()
            .admit_with(ticket, |_| Ok(()))
            .unwrap();
        assert_born_past_the_deadline(&d);
        *d_b.borrow_mut() = Some(d.signal().clone());
        d.complete();
    });
    let report = Rc::new(RefCell::new(None));
    let (core_a, report_a) = (Rc::clone(&core), Rc::clone(&report));
    a.signal().on_abort(move |_| {
        *report_a.borrow_mut() = Some(core_a.stop().escalate());
    });
    a.end(Outcome::ClientGone);
    let report = report.borrow_mut().take().unwrap();
    assert_eq!(
        report.aborted_signals, 1,
        "B alone: C was completed, A had fired"
    );
    assert_eq!(
        c_signal.reason(),
        None,
        "a completed request's signal fired"
    );
    assert_eq!(
        d_signal.borrow().as_ref().unwrap().reason(),
        Some(AbortReason::DrainDeadline)
    );
    assert_eq!(b.signal().reason(), Some(AbortReason::DrainDeadline));
    b.complete();
    let last = saved.borrow_mut().pop().unwrap();
    let e = live.admit_with(last, |_| Ok(())).unwrap();
    assert_born_past_the_deadline(&e);
    let drain = core.drain().unwrap();
    assert!(!drain.is_complete());
    e.complete();
    assert!(drain.is_complete());
    let o = core.ledger().outcomes();
    assert_eq!(
        (o.completed, o.client_gone, o.deadline_aborted, o.total()),
        (2 + 1, 1, 3, 7)
    );
    check_ledger(core.ledger());
    core.ledger().assert_quiescent();
}

// ---------------------------------------------------------------------------------------------
// The order of the release, as `Admitted`'s docs give it.

/// A payload that records, when it is dropped, whether its request's ticket was still out.
struct RecordsTicket(Rc<Core>, Rc<Cell<Option<usize>>>);

impl Drop for RecordsTicket {
    fn drop(&mut self) {
        self.1
            .set(Some(self.0.ledger().outstanding(GuardKind::Ticket)));
    }
}

/// `Admitted`'s docs: "everything is given back in reverse order of acquisition: request
/// object (if not handed off), activity ref, context (recycled into the pool), ticket". So a
/// request object still held by the bundle is gone before the ticket, hence before the drain
/// completes and its hooks run (where a runtime resolves `server.stop()` and may tear its
/// engine down). Every way the last request ends, after stop.
#[test]
fn the_request_object_is_given_back_before_the_ticket() {
    for outcome in [Outcome::Completed, Outcome::ClientGone, Outcome::Dropped] {
        let heap = Heap::new();
        let core = Rc::new(solo(&heap));
        let seen = Rc::new(Cell::new(None));
        let bundle = core
            .upgrade()
            .unwrap()
            .admit(|_| Ok(RecordsTicket(Rc::clone(&core), Rc::clone(&seen))))
            .unwrap();
        let drain = core.stop();
        let dropped_before_hook = Rc::new(Cell::new(None));
        let (s, d) = (Rc::clone(&seen), Rc::clone(&dropped_before_hook));
        drain.on_complete(move || d.set(Some(s.get().is_some())));
        match outcome {
            Outcome::Dropped => drop(bundle),
            other => bundle.end(other),
        }
        assert!(drain.is_complete());
        assert_eq!(
            dropped_before_hook.get(),
            Some(true),
            "{outcome:?}: the drain hook ran while the request object was still alive"
        );
        assert_eq!(
            seen.get(),
            Some(1),
            "{outcome:?}: the ticket was gone first"
        );
    }
}
