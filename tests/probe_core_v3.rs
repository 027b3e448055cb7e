//! Hostile-embedder probes of the one-`Rc` core (af0bc1c, 30904b9, 27cbc45): a bundle holds
//! only its pool, a signal holds only a weak handle to its server and goes back to the spare
//! list when its last handle drops, a bundle's parts are minted before `build` runs and held in
//! a scope guard, and the ledger derives the bundles out from counters. Each probe checks the
//! counts, the report and the outcomes at every step: one outcome per admitted request, the
//! signal fired for every outcome but completed, nothing negative, report == counts.

#[path = "util/ledger_check.rs"]
mod ledger_check;
use ledger_check::check_ledger;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use reqguard::engines::{Embedded, Heap};
use reqguard::{
    AbortReason, AbortSignal, ActivityRef, Admitted, Config, DowngradePolicy, Exhaustion,
    GuardKind, Ledger, Outcome, PendingTicket, Recycle, Refusal, RefusalReason, ServerCore,
};

#[path = "util/quiet.rs"]
mod quiet;
use quiet::quiet_panics;

type Core = ServerCore<Embedded<&'static str>>;
type Bundle = Admitted<(), ()>;
type Slot = Rc<RefCell<Option<Bundle>>>;

fn core(heap: &Heap) -> Core {
    ServerCore::embedded(heap.alloc("server"), Config::default())
}

fn admit(core: &Core) -> Bundle {
    core.upgrade().unwrap().admit(|_| Ok(())).unwrap()
}

/// A value whose `Drop` panics (a listener's capture, or a panic payload).
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("drop panics");
        }
    }
}

/// A value whose `Drop` runs a closure: a listener's capture that re-enters the server when
/// the listener is dropped without running.
struct OnDrop(Option<Box<dyn FnOnce()>>);

impl OnDrop {
    fn new(f: impl FnOnce() + 'static) -> Self {
        OnDrop(Some(Box::new(f)))
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Signals kept past their bundle and their server.

/// A clone of a request's signal kept after its bundle completed, its core dropped and the heap
/// collected: in every order of abort, on_abort and drop the signal still works (an abort marks
/// it; no listener is added after its request's end, round 26: a request's listeners live at
/// most until its end), and nothing reaches the dead server.
#[test]
fn a_signal_outlives_its_bundle_and_its_server_in_every_order() {
    quiet_panics();
    // 0: abort, then on_abort (refused), then drop; 1: on_abort, abort, drop;
    // 2: on_abort with a panicking listener, abort, drop; 3: drop with a listener pending.
    for order in 0..4 {
        let heap = Heap::new();
        let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
        let core: Core = ServerCore::embedded(heap.alloc("server"), config);
        let bundle = admit(&core);
        let kept = bundle.signal().clone();
        bundle.complete();
        assert_eq!(core.ledger().outcomes().completed, 1);
        core.ledger().assert_quiescent();
        drop(core);
        heap.collect();
        assert_eq!(heap.live_objects(), 0);

        let ran = Rc::new(Cell::new(0));
        let count = |ran: &Rc<Cell<i32>>| {
            let ran = Rc::clone(ran);
            move |_| ran.set(ran.get() + 1)
        };
        match order {
            0 => {
                assert!(kept.abort(AbortReason::ClientDisconnected));
                assert!(!kept.on_abort(count(&ran)));
                assert_eq!(ran.get(), 0);
            }
            1 => {
                assert!(!kept.on_abort(count(&ran)));
                assert!(kept.abort(AbortReason::ClientDisconnected));
                assert!(!kept.abort(AbortReason::DrainDeadline));
                assert_eq!(ran.get(), 0);
            }
            2 => {
                assert!(!kept.on_abort(|_| panic!("listener panics")));
                assert!(!kept.on_abort(count(&ran)));
                assert!(kept.abort(AbortReason::ClientDisconnected));
                assert_eq!(ran.get(), 0, "a listener added after the end ran");
            }
            _ => {
                assert!(!kept.on_abort(count(&ran)));
            }
        }
        assert_eq!(kept.pending_activity(), 0);
        let other = kept.clone();
        drop(kept);
        drop(other);
        assert!(ran.get() <= 1);
    }
}

/// A signal kept past its bundle (server alive) goes back to the spare list when its last
/// handle drops, reset: the next request's signal has no reason, one activity, and the old
/// listener never runs again (nor at a user abort after its completed request's end: a
/// request's listeners live at most until its end, round 26).
#[test]
fn a_kept_signal_is_reused_reset_when_its_last_handle_drops() {
    let heap = Heap::new();
    let config = Config::default().with_pool_capacity(1).unwrap();
    let core: Core = ServerCore::embedded(heap.alloc("server"), config);
    let ran = Rc::new(Cell::new(0));
    let bundle = admit(&core);
    let kept = bundle.signal().clone();
    let r = Rc::clone(&ran);
    kept.on_abort(move |_| r.set(r.get() + 1));
    bundle.complete();
    assert!(
        kept.abort(AbortReason::ClientDisconnected),
        "a user abort after the request"
    );
    assert_eq!(ran.get(), 0);
    // An unfired listener too, on a second kept signal.
    let bundle = admit(&core);
    let kept2 = bundle.signal().clone();
    let r = Rc::clone(&ran);
    kept2.on_abort(move |_| r.set(r.get() + 100));
    bundle.complete();
    drop((kept, kept2));
    for _ in 0..3 {
        let bundle = admit(&core);
        assert_eq!(bundle.signal().reason(), None);
        assert_eq!(bundle.signal().pending_activity(), 1);
        drop(bundle); // fires Dropped: no old listener may run
    }
    assert_eq!(ran.get(), 0);
    let outcomes = core.ledger().outcomes();
    assert_eq!((outcomes.completed, outcomes.dropped), (2, 3));
    core.ledger().assert_quiescent();
}

/// A signal whose server is gone while its listener panics on a user-called abort: the panic
/// is caught (the weak home fails, so it is counted nowhere), nothing crashes.
#[test]
fn a_panicking_listener_on_a_signal_whose_server_is_gone() {
    quiet_panics();
    let heap = Heap::new();
    let core = core(&heap);
    let kept = core.upgrade().unwrap().signal();
    kept.on_abort(|_| panic!("listener panics"));
    drop(core);
    heap.collect();
    assert!(kept.abort(AbortReason::ClientDisconnected));
    assert!(kept.is_aborted());
}

/// A panicking listener fired by a bundle's drop after the core was dropped: the bundle keeps
/// the server's state, so the panic is still counted in the drain's report.
#[test]
fn a_listener_panic_after_the_core_dropped_is_counted() {
    quiet_panics();
    let heap = Heap::new();
    let core = core(&heap);
    let bundle = admit(&core);
    bundle.signal().on_abort(|_| panic!("listener panics"));
    let drain = core.stop();
    drop(core);
    heap.collect();
    drop(bundle);
    assert!(drain.is_complete());
    let report = drain.report();
    assert_eq!(report.panicked_listeners, 1);
    assert_eq!((report.outcomes.dropped, report.outcomes.total()), (1, 1));
    assert!(report.outstanding.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The deadline's escalation and listeners that end other requests.

/// The deadline aborts the requests still out. An earlier request's abort listener completes a
/// later request (the handler answers it), before the escalation reaches its signal: that
/// request ended `Completed`, so its signal must never fire (G8) and the escalation must not
/// count it.
#[test]
fn escalation_skips_a_request_completed_by_an_earlier_listener() {
    let heap = Heap::new();
    let core = core(&heap);
    let first = admit(&core);
    let later: Slot = Rc::new(RefCell::new(Some(admit(&core))));
    let fired = Rc::new(Cell::new(None));
    let seen = Rc::clone(&fired);
    later
        .borrow()
        .as_ref()
        .unwrap()
        .signal()
        .on_abort(move |reason| seen.set(Some(reason)));
    let parked = Rc::clone(&later);
    first.signal().on_abort(move |_| {
        let bundle = parked.borrow_mut().take();
        bundle.unwrap().complete();
    });
    let drain = core.stop();
    let report = drain.escalate();
    let outcomes = core.ledger().outcomes();
    assert_eq!(outcomes.completed, 1, "the later request completed");
    assert_eq!(fired.get(), None, "a completed request's signal fired");
    assert_eq!(
        report.aborted_signals, 1,
        "only the first request was aborted"
    );
    drop(first);
    assert!(drain.is_complete());
    assert_eq!(core.ledger().outcomes().deadline_aborted, 1);
    core.ledger().assert_quiescent();
}

/// An earlier request's listener drops a later request (outcome `Dropped`, its signal fires
/// once with `Dropped`); the escalation then finds it already aborted and does not count it.
#[test]
fn escalation_after_a_listener_dropped_a_later_request() {
    let heap = Heap::new();
    let core = core(&heap);
    let first = admit(&core);
    let later: Slot = Rc::new(RefCell::new(Some(admit(&core))));
    let fired = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::clone(&fired);
    later
        .borrow()
        .as_ref()
        .unwrap()
        .signal()
        .on_abort(move |reason| seen.borrow_mut().push(reason));
    let parked = Rc::clone(&later);
    first
        .signal()
        .on_abort(move |_| drop(parked.borrow_mut().take()));
    let drain = core.stop();
    let report = drain.escalate();
    assert_eq!(*fired.borrow(), [AbortReason::Dropped]);
    assert_eq!(report.aborted_signals, 1);
    first.complete();
    assert!(drain.is_complete());
    let outcomes = core.ledger().outcomes();
    assert_eq!(
        (
            outcomes.dropped,
            outcomes.deadline_aborted,
            outcomes.total()
        ),
        (1, 1, 2)
    );
    check_ledger(core.ledger());
    core.ledger().assert_quiescent();
}

// ---------------------------------------------------------------------------------------------
// Listeners dropped unfired (the request completed) whose drop re-enters the server.

/// A completed request's unfired listener holds a capture whose `Drop` admits and completes a
/// new request, stops the server and drops the last request still out (the drain completes
/// inside the signal's recycling). Every request ends once, the drain completes once.
#[test]
fn an_unfired_listener_drop_admits_stops_and_ends_the_last_request() {
    let heap = Heap::new();
    let core = Rc::new(core(&heap));
    let last: Slot = Rc::new(RefCell::new(Some(admit(&core))));
    let hooked = Rc::new(Cell::new(0));
    let bundle = admit(&core);
    let (c, parked, h) = (Rc::clone(&core), Rc::clone(&last), Rc::clone(&hooked));
    let capture = OnDrop::new(move || {
        admit(&c).complete();
        let drain = c.stop();
        let h2 = Rc::clone(&h);
        drain.on_complete(move || h2.set(h2.get() + 1));
        assert!(!drain.is_complete());
        check_ledger(c.ledger());
        drop(parked.borrow_mut().take());
        assert!(drain.is_complete());
        check_ledger(c.ledger());
    });
    bundle.signal().on_abort(move |_| drop(capture));
    bundle.complete();
    assert!(last.borrow().is_none());
    assert_eq!(hooked.get(), 1);
    let outcomes = core.ledger().outcomes();
    assert_eq!((outcomes.completed, outcomes.dropped), (2, 1));
    assert_eq!(core.pool_metrics().in_use, 0);
    core.ledger().assert_quiescent();
    // Stopped: admission is refused, holding nothing.
    assert_eq!(
        core.upgrade()
            .unwrap()
            .admit(|_| Ok(()))
            .unwrap_err()
            .reason(),
        RefusalReason::Stopped
    );
    core.ledger().assert_quiescent();
}

/// A completed request's unfired listener whose capture panics when dropped: the listener is
/// user code like any other callback (src/callback.rs: "a panic inside a `Drop` that runs while
/// another panic unwinds never aborts the process"), so the panic must not escape `complete()`,
/// and the accounting must be whole.
#[test]
fn an_unfired_listener_whose_drop_panics_does_not_escape_complete() {
    quiet_panics();
    let heap = Heap::new();
    let core = core(&heap);
    let bundle = admit(&core);
    let capture = PanicsOnDrop;
    bundle.signal().on_abort(move |_| drop(capture));
    let escaped = catch_unwind(AssertUnwindSafe(|| bundle.complete())).is_err();
    // Whatever happened, the request was released with one outcome.
    assert_eq!(core.ledger().outcomes().completed, 1);
    assert_eq!(core.pool_metrics().in_use, 0);
    core.ledger().assert_quiescent();
    assert!(!escaped, "the listener's drop panic escaped complete()");
}

/// The same capture on a signal handle the user keeps (no bundle): dropping the last handle
/// recycles the signal and drops the listener. The accounting is whole and the signal is still
/// reusable, whether or not the panic escapes (checked separately above).
#[test]
fn a_kept_signal_whose_listener_drop_panics_leaves_the_spare_list_sound() {
    quiet_panics();
    let heap = Heap::new();
    let config = Config::default().with_pool_capacity(2).unwrap();
    let core: Core = ServerCore::embedded(heap.alloc("server"), config);
    let bundle = admit(&core);
    let kept = bundle.signal().clone();
    let capture = PanicsOnDrop;
    kept.on_abort(move |_| drop(capture));
    let _ = catch_unwind(AssertUnwindSafe(|| bundle.complete()));
    let _ = catch_unwind(AssertUnwindSafe(|| drop(kept)));
    for _ in 0..4 {
        let bundle = admit(&core);
        assert_eq!(bundle.signal().reason(), None);
        assert_eq!(bundle.signal().pending_activity(), 1);
        drop(bundle);
    }
    let outcomes = core.ledger().outcomes();
    assert_eq!((outcomes.completed, outcomes.dropped), (1, 4));
    core.ledger().assert_quiescent();
}

// ---------------------------------------------------------------------------------------------
// Linked signals across servers (`AbortSignal.any`-style).

/// Server A's request forwards its abort to server B's request's signal (its listener holds the
/// last handle of it). In each order of B's end, B's core dropping, the heap collecting and A's
/// end, each request ends once, B's signal fires at most once, and both ledgers are clean.
#[test]
fn a_listener_forwards_its_abort_to_another_servers_signal() {
    for order in 0..5 {
        let heap = Heap::new();
        let a = core(&heap);
        let b = core(&heap);
        let a_bundle = admit(&a);
        let b_bundle = admit(&b);
        let b_fired = Rc::new(RefCell::new(Vec::new()));
        let seen = Rc::clone(&b_fired);
        b_bundle
            .signal()
            .on_abort(move |reason| seen.borrow_mut().push(reason));
        let linked = b_bundle.signal().clone();
        a_bundle.signal().on_abort(move |reason| {
            linked.abort(reason);
            drop(linked); // the last handle of B's signal, maybe of a server already gone
        });
        match order {
            0 => {
                // B ends first and its server goes away; then A is dropped: fires into B's,
                // whose listener went with its completed request (round 26).
                b_bundle.complete();
                b.ledger().assert_quiescent();
                drop(b);
                heap.collect();
                drop(a_bundle);
                assert!(b_fired.borrow().is_empty());
            }
            1 => {
                // A completes: its listener is dropped unfired with B's signal in it.
                a_bundle.complete();
                b_bundle.complete();
                assert!(b_fired.borrow().is_empty());
                assert_eq!(b.ledger().outcomes().completed, 1);
                b.ledger().assert_quiescent();
            }
            2 => {
                // A is aborted while B is out: B's request ends as ClientGone.
                assert!(a_bundle.signal().abort(AbortReason::ClientDisconnected));
                b_bundle.complete();
                a_bundle.complete();
                assert_eq!(*b_fired.borrow(), [AbortReason::ClientDisconnected]);
                assert_eq!(b.ledger().outcomes().client_gone, 1);
                assert_eq!(a.ledger().outcomes().client_gone, 1);
                b.ledger().assert_quiescent();
            }
            3 => {
                // B ends first, then A completes: A's unfired listener holds the last handle
                // of B's signal, which goes back to B's spare list while A's signal is being
                // recycled; B's next requests get it reset.
                b_bundle.complete();
                a_bundle.complete();
                assert!(b_fired.borrow().is_empty());
                for _ in 0..3 {
                    let again = admit(&b);
                    assert_eq!(again.signal().reason(), None);
                    assert_eq!(again.signal().pending_activity(), 1);
                    drop(again);
                }
                assert!(b_fired.borrow().is_empty(), "an old listener ran on reuse");
                let o = b.ledger().outcomes();
                assert_eq!((o.completed, o.dropped), (1, 3));
                b.ledger().assert_quiescent();
            }
            _ => {
                // Both servers stop; A's deadline fires B's request through the link.
                let drain_a = a.stop();
                let drain_b = b.stop();
                assert_eq!(drain_a.escalate().aborted_signals, 1);
                assert_eq!(*b_fired.borrow(), [AbortReason::DrainDeadline]);
                assert_eq!(drain_b.escalate().aborted_signals, 0, "B's already fired");
                drop((a_bundle, b_bundle));
                assert!(drain_a.is_complete() && drain_b.is_complete());
                assert_eq!(b.ledger().outcomes().deadline_aborted, 1);
                b.ledger().assert_quiescent();
            }
        }
        assert!(b_fired.borrow().len() <= 1);
        assert_eq!(a.ledger().outcomes().total(), 1);
        check_ledger(a.ledger());
        a.ledger().assert_quiescent();
    }
}

/// Two requests of two servers whose listeners hold each other's signals (a cycle of signals,
/// not of guards): both complete, their releases drop the listeners (round 26; before, the
/// cycle kept two signals alive), the ledgers are clean, and both cores drop without trouble;
/// then the same cycle, aborted, breaks itself.
#[test]
fn a_cycle_of_signals_across_two_servers() {
    for abort_first in [false, true] {
        let heap = Heap::new();
        let a = core(&heap);
        let b = core(&heap);
        let (x, y) = (admit(&a), admit(&b));
        let (x_sig, y_sig) = (x.signal().clone(), y.signal().clone());
        y.signal().on_abort(move |r| {
            x_sig.abort(r);
        });
        x.signal().on_abort(move |r| {
            y_sig.abort(r);
        });
        if abort_first {
            assert!(x.signal().abort(AbortReason::ClientDisconnected));
            assert!(y.signal().is_aborted());
        }
        x.complete();
        y.complete();
        let (oa, ob) = (a.ledger().outcomes(), b.ledger().outcomes());
        if abort_first {
            assert_eq!((oa.client_gone, ob.client_gone), (1, 1));
        } else {
            assert_eq!((oa.completed, ob.completed), (1, 1));
        }
        a.ledger().assert_quiescent();
        b.ledger().assert_quiescent();
        drop((a, b));
        heap.collect();
    }
}

/// A kept signal's listener holds the only handle to its own server core: dropping the kept
/// signal (its last handle) recycles it into that server, whose core the listener's drop ends
/// in the middle of the recycling. The wrapper goes only then. (A signal of no request: one of
/// a completed request refuses listeners since round 26.)
#[test]
fn the_last_signal_handle_drops_its_own_server_core() {
    for fire in [false, true] {
        let heap = Heap::new();
        let core = Rc::new(core(&heap));
        let kept = core.upgrade().unwrap().signal();
        core.ledger().assert_quiescent();
        let held = Rc::clone(&core);
        kept.on_abort(move |_| held.ledger().assert_quiescent());
        drop(core);
        assert_eq!(
            heap.collect(),
            0,
            "the listener keeps the core and its wrapper"
        );
        if fire {
            assert!(kept.abort(AbortReason::ClientDisconnected));
        }
        drop(kept);
        assert_eq!(heap.collect(), 1, "the core went with the listener");
        assert_eq!(heap.live_objects(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// `build`: panics, re-entrancy, counts while the bundle is half admitted.

/// `build` panics with a payload whose own `Drop` panics: the scope guard gives everything
/// back while unwinding (context, activity, ticket), no outcome is recorded, a refused bundle
/// is counted as minted but never as a request, and a stopped server's drain completes.
#[test]
fn build_panics_with_a_payload_that_panics_on_drop() {
    quiet_panics();
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let parked = admit(&core);
    let saved = live.ticket().unwrap(); // a request saved before stop, coming back after
    let drain = core.stop();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let _ = live.admit_with(saved, |_| -> Result<(), Refusal> {
            std::panic::panic_any(PanicsOnDrop)
        });
    }));
    // The caller owns the payload: dropping it would panic again (std's catch_unwind docs).
    std::mem::forget(caught.unwrap_err());
    assert_eq!(
        core.pool_metrics().in_use,
        1,
        "only the parked request's context"
    );
    assert_eq!(core.ledger().outstanding(GuardKind::Ticket), 1);
    assert_eq!(core.ledger().outcomes().total(), 0);
    check_ledger(core.ledger());
    parked.complete();
    assert!(drain.is_complete());
    assert_eq!(core.ledger().outcomes().total(), 1);
    core.ledger().assert_quiescent();
}

/// Inside `build` the half-admitted request is counted whole: one ticket, context, activity ref
/// and request object; the report says the same, minted counts include it; after a refusal
/// the request object was never minted and nothing is out.
#[test]
fn counts_and_report_agree_inside_build() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    for refuse in [false, true] {
        let result = live.admit(|_| {
            let ledger = core.ledger();
            check_ledger(ledger);
            for kind in GuardKind::ALL {
                assert_eq!(ledger.outstanding(kind), 1, "{kind:?} inside build");
            }
            assert_eq!(ledger.report().total(), 4);
            assert_eq!(core.pool_metrics().in_use, 1);
            if refuse {
                return Err(Refusal::new(RefusalReason::PayloadTooLarge { limit: 1 }));
            }
            Ok(())
        });
        assert_eq!(result.is_err(), refuse);
        if let Ok(bundle) = result {
            check_ledger(core.ledger());
            bundle.complete();
        }
        check_ledger(core.ledger());
        core.ledger().assert_quiescent();
    }
    let ledger = core.ledger();
    assert_eq!(ledger.minted(GuardKind::Ticket), 2);
    assert_eq!(ledger.minted(GuardKind::Context), 2);
    assert_eq!(ledger.minted(GuardKind::ActivityRef), 2);
    assert_eq!(
        ledger.minted(GuardKind::Request),
        1,
        "the refused one got no request"
    );
    assert_eq!(ledger.outcomes().total(), 1);
}

/// `build` admits other requests re-entrantly until the pool (Refuse, capacity 3) is exhausted,
/// drops a request admitted earlier, and reads the ledger at each step; the outer request is
/// admitted with the context it was built in.
#[test]
fn build_admits_until_the_pool_is_exhausted_and_drops_another_bundle() {
    let heap = Heap::new();
    let config = Config::default()
        .with_pool_capacity(3)
        .unwrap()
        .with_exhaustion(Exhaustion::Refuse);
    let core: ServerCore<Embedded<&'static str>, Vec<u8>> =
        ServerCore::embedded_with_context(heap.alloc("server"), config);
    let live = core.upgrade().unwrap();
    let earlier = RefCell::new(Some(live.admit(|_| Ok(0)).unwrap()));
    let outer = live
        .admit(|ctx| {
            ctx.push(1);
            let inner = live
                .admit(|inner_ctx| {
                    inner_ctx.push(2);
                    // Three contexts out: earlier, outer, inner.
                    let refused = live.admit(|_| Ok(9)).unwrap_err();
                    assert_eq!(refused.reason(), RefusalReason::PoolExhausted);
                    check_ledger(core.ledger());
                    Ok(2)
                })
                .unwrap();
            assert_eq!(core.ledger().outstanding(GuardKind::Ticket), 3);
            drop(earlier.borrow_mut().take());
            inner.complete();
            assert_eq!(core.pool_metrics().in_use, 1, "only the outer context");
            check_ledger(core.ledger());
            Ok(1)
        })
        .unwrap();
    assert_eq!(outer.context(), &[1]);
    assert_eq!(outer.request(), Some(&1));
    outer.complete();
    let metrics = core.pool_metrics();
    assert_eq!(
        (metrics.in_use, metrics.high_water, metrics.refusals),
        (0, 3, 1)
    );
    let outcomes = core.ledger().outcomes();
    assert_eq!((outcomes.completed, outcomes.dropped), (2, 1));
    core.ledger().assert_quiescent();
}

/// `build` stops the server, registers a panicking drain hook and a counting one, then fails
/// (refused) or panics: the refusal releases the last request, so the drain completes while
/// the scope guard runs (inside the unwinding for a panic); the hook's panic is caught and
/// counted, the other hook runs, no outcome is recorded.
#[test]
fn build_stops_the_server_then_fails_or_panics() {
    quiet_panics();
    for panics in [false, true] {
        let heap = Heap::new();
        let core = core(&heap);
        let live = core.upgrade().unwrap();
        let ran = Rc::new(Cell::new(0));
        let result = catch_unwind(AssertUnwindSafe(|| {
            live.admit(|_| -> Result<(), Refusal> {
                let drain = core.stop();
                drain.on_complete(|| panic!("hook panics"));
                let r = Rc::clone(&ran);
                drain.on_complete(move || r.set(r.get() + 1));
                assert!(!drain.is_complete(), "the request in build holds it");
                if panics {
                    panic!("build panics");
                }
                Err(Refusal::new(RefusalReason::PayloadTooLarge { limit: 0 }))
            })
            .map(|_| ())
        }));
        assert_eq!(result.is_err(), panics);
        let drain = core.drain().unwrap();
        assert!(drain.is_complete());
        let report = drain.report();
        assert_eq!((report.panicked_hooks, ran.get()), (1, 1));
        assert_eq!(report.outcomes.total(), 0);
        assert!(report.outstanding.is_empty());
        core.ledger().assert_quiescent();
    }
}

/// `build` escalates (stop, then the deadline) and then refuses: the escalation aborted the
/// half-admitted request's signal, but the request was never admitted, so no outcome exists.
/// `DrainReport::aborted_signals` says 1 while `outcomes.deadline_aborted` stays 0: recorded
/// here as the behaviour, against the field's doc ("the total is in outcomes.deadline_aborted").
#[test]
fn build_escalates_then_refuses() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let mut aborted = None;
    let refused = live.admit(|_| -> Result<(), Refusal> {
        aborted = Some(core.stop().escalate().aborted_signals);
        Err(Refusal::new(RefusalReason::PayloadTooLarge { limit: 0 }))
    });
    assert!(refused.is_err());
    assert_eq!(aborted, Some(1));
    let drain = core.drain().unwrap();
    assert!(drain.is_complete());
    assert_eq!(core.ledger().outcomes().deadline_aborted, 0);
    core.ledger().assert_quiescent();
}

// ---------------------------------------------------------------------------------------------
// The pool: user `Default` and `Recycle` that panic or re-enter, on the refusal path.

thread_local! {
    /// What the hostile context does next: panic in `recycle`, panic in `default`, or admit
    /// (and complete) a request of `REENTER`'s server from inside `recycle`.
    static MODE: Cell<u8> = const { Cell::new(0) };
    static REENTER: RefCell<Option<Rc<HostileCore>>> = const { RefCell::new(None) };
}

const CALM: u8 = 0;
const RECYCLE_PANICS: u8 = 1;
const DEFAULT_PANICS: u8 = 2;
const RECYCLE_ADMITS: u8 = 3;

struct Hostile(u32);

impl Default for Hostile {
    fn default() -> Self {
        if MODE.with(Cell::get) == DEFAULT_PANICS {
            panic!("default panics");
        }
        Hostile(0)
    }
}

impl Recycle for Hostile {
    fn recycle(&mut self) {
        self.0 = 0;
        match MODE.with(Cell::get) {
            RECYCLE_PANICS => panic!("recycle panics"),
            RECYCLE_ADMITS => {
                MODE.with(|m| m.set(CALM));
                let core = REENTER.with(|r| r.borrow().clone()).unwrap();
                let live = core.upgrade().unwrap();
                // Every slot is out or being recycled: the nested admission spills or is
                // refused, as the pool's policy says; either way it ends here.
                if let Ok(bundle) = live.admit(|ctx| {
                    ctx.0 = 7;
                    Ok(())
                }) {
                    bundle.complete();
                }
            }
            _ => {}
        }
    }
}

type HostileCore = ServerCore<Embedded<&'static str>, Hostile>;

fn hostile_core(heap: &Heap, exhaustion: Exhaustion) -> HostileCore {
    let config = Config::default()
        .with_pool_capacity(2)
        .unwrap()
        .with_exhaustion(exhaustion);
    ServerCore::embedded_with_context(heap.alloc("server"), config)
}

/// `Recycle::recycle` panics while a refused bundle (build failed) gives its context back: the
/// refusal still completes, the context is freed and uncounted, the next admission makes a
/// fresh one, the drain completes.
#[test]
fn recycle_panics_on_the_refusal_path() {
    quiet_panics();
    let heap = Heap::new();
    let core = hostile_core(&heap, Exhaustion::Refuse);
    let live = core.upgrade().unwrap();
    let keep = live.admit(|_| Ok(())).unwrap();
    MODE.with(|m| m.set(RECYCLE_PANICS));
    let refused = live.admit(|ctx| -> Result<(), Refusal> {
        ctx.0 = 1;
        Err(Refusal::new(RefusalReason::PayloadTooLarge { limit: 0 }))
    });
    MODE.with(|m| m.set(CALM));
    assert_eq!(refused.unwrap_err().status(), 413);
    let m = core.pool_metrics();
    assert_eq!((m.in_use, m.allocated, m.recycle_panics), (1, 1, 1));
    check_ledger(core.ledger());
    assert_eq!(core.ledger().outcomes().total(), 0);
    let second = live.admit(|ctx| Ok(ctx.0)).unwrap();
    assert_eq!(second.request(), Some(&0), "a fresh context");
    let drain = core.stop();
    second.complete();
    keep.complete();
    assert!(drain.is_complete());
    assert_eq!(core.pool_metrics().allocated, 2);
    core.ledger().assert_quiescent();
}

/// `Default` panics when the pool makes a fresh context, and when it spills: the admission
/// panics before anything is minted (no ticket, no outcome), the pool's counts are unchanged.
#[test]
fn default_panics_when_a_context_is_made_or_spilled() {
    quiet_panics();
    for exhaustion in [Exhaustion::Refuse, Exhaustion::Spill] {
        let heap = Heap::new();
        let core = hostile_core(&heap, exhaustion);
        let live = core.upgrade().unwrap();
        let kept: Vec<_> = (0..2).map(|_| live.admit(|_| Ok(())).unwrap()).collect();
        // Full: Refuse refuses without calling Default; Spill calls it and it panics.
        MODE.with(|m| m.set(DEFAULT_PANICS));
        let before = core.ledger().minted(GuardKind::Ticket);
        let result = catch_unwind(AssertUnwindSafe(|| live.admit(|_| Ok(())).map(drop)));
        match exhaustion {
            Exhaustion::Refuse => {
                assert_eq!(
                    result.unwrap().unwrap_err().reason(),
                    RefusalReason::PoolExhausted
                )
            }
            _ => assert!(result.is_err(), "Default's panic reaches the caller"),
        }
        MODE.with(|m| m.set(CALM));
        assert_eq!(
            core.ledger().minted(GuardKind::Ticket),
            before,
            "nothing minted"
        );
        let m = core.pool_metrics();
        assert_eq!((m.in_use, m.allocated, m.spills), (2, 2, 0));
        check_ledger(core.ledger());
        drop(kept);
        // A fresh pool whose first Default panics (nothing allocated yet).
        let fresh = hostile_core(&heap, exhaustion);
        MODE.with(|m| m.set(DEFAULT_PANICS));
        let result = catch_unwind(AssertUnwindSafe(|| {
            fresh.upgrade().unwrap().admit(|_| Ok(())).map(drop)
        }));
        MODE.with(|m| m.set(CALM));
        assert!(result.is_err());
        let m = fresh.pool_metrics();
        assert_eq!((m.in_use, m.allocated), (0, 0));
        fresh
            .upgrade()
            .unwrap()
            .admit(|_| Ok(()))
            .unwrap()
            .complete();
        fresh.ledger().assert_quiescent();
        assert_eq!(core.ledger().outcomes().dropped, 2);
        core.ledger().assert_quiescent();
    }
}

/// `Recycle::recycle` admits and completes a request of its own server while its context is
/// being given back (by a completed bundle and by a refused one): the nested request spills or
/// is refused by the full pool, ends once, and the pool's figures add up afterwards.
#[test]
fn recycle_admits_a_request_of_its_own_server() {
    for exhaustion in [Exhaustion::Refuse, Exhaustion::Spill] {
        for refuse_outer in [false, true] {
            let heap = Heap::new();
            let core = Rc::new(hostile_core(&heap, exhaustion));
            REENTER.with(|r| *r.borrow_mut() = Some(Rc::clone(&core)));
            let live = core.upgrade().unwrap();
            let other = live.admit(|_| Ok(())).unwrap();
            MODE.with(|m| m.set(RECYCLE_ADMITS));
            let outer = live.admit(|_| {
                if refuse_outer {
                    return Err(Refusal::new(RefusalReason::PayloadTooLarge { limit: 0 }));
                }
                Ok(())
            });
            if let Ok(outer) = outer {
                outer.complete();
            }
            assert_eq!(MODE.with(Cell::get), CALM, "recycle re-entered once");
            let m = core.pool_metrics();
            assert_eq!((m.in_use, m.allocated), (1, 2));
            let nested_ran = exhaustion == Exhaustion::Spill;
            assert_eq!(m.spills, u64::from(nested_ran));
            assert_eq!(m.refusals, u64::from(!nested_ran));
            let expected = u64::from(!refuse_outer) + u64::from(nested_ran);
            assert_eq!(core.ledger().outcomes().completed, expected);
            check_ledger(core.ledger());
            other.complete();
            drop(live);
            core.ledger().assert_quiescent();
            REENTER.with(|r| r.borrow_mut().take());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Forgotten bundles, saved tickets of other servers.

/// Bundles leaked with `Admitted::forget` and `mem::forget`, then stop, the deadline and the
/// drain: the leaks stay counted at their mint site, the escalation aborts their signals (their
/// listeners run once), no outcome is invented for them, the drain stays pending and says so.
#[test]
fn forgotten_bundles_then_stop_escalate_and_drain() {
    let heap = Heap::new();
    let core = core(&heap);
    let fired = Rc::new(Cell::new(0));
    let live = core.upgrade().unwrap();
    for i in 0..3 {
        let mut bundle = live.admit(|_| Ok(())).unwrap();
        let f = Rc::clone(&fired);
        bundle.signal().on_abort(move |_| f.set(f.get() + 1));
        if i == 0 {
            let _ = bundle.hand_off();
        }
        if i == 2 {
            std::mem::forget(bundle);
        } else {
            Admitted::forget(bundle);
        }
        check_ledger(core.ledger());
    }
    let done = admit(&core);
    done.complete();
    let drain = core.stop();
    assert_eq!(drain.outstanding(), 3);
    let report = drain.escalate();
    assert_eq!(report.aborted_signals, 3);
    assert_eq!(fired.get(), 3);
    assert_eq!(drain.escalate().aborted_signals, 0, "fired once");
    assert!(!report.complete);
    assert_eq!(report.outcomes.total(), 1);
    assert_eq!(core.ledger().outstanding(GuardKind::Request), 2);
    assert_eq!(core.ledger().outstanding(GuardKind::Ticket), 3);
    // Every leak has its mint site (this file) in leak-check builds.
    if Ledger::tracks_sites() {
        let sites = report.outstanding.sites();
        assert!(sites
            .iter()
            .all(|s| s.location.unwrap().file().ends_with("probe_core_v3.rs")));
    }
    assert_eq!(report.outstanding.total(), 3 * 3 + 2);
    check_ledger(core.ledger());
    assert!(report.to_string().contains("drain incomplete"));
}

/// `admit_with` given a ticket of another server (running, stopped, or whose core is gone): it
/// is refused as `OtherServer`, the ticket goes back to its own server (whose drain completes),
/// and this server mints nothing.
#[test]
fn admit_with_a_ticket_of_another_server() {
    for state in 0..3 {
        let heap = Heap::new();
        let a = core(&heap);
        let b = core(&heap);
        let ticket = b.upgrade().unwrap().ticket().unwrap();
        let drain_b = (state > 0).then(|| b.stop());
        if state == 2 {
            drop(b);
            heap.collect();
        }
        let live = a.upgrade().unwrap();
        let refused = live.admit_with(ticket, |_| Ok(())).unwrap_err();
        assert_eq!(refused.reason(), RefusalReason::OtherServer);
        if let Some(drain) = &drain_b {
            assert!(drain.is_complete());
            assert!(drain.ledger().is_quiescent());
        }
        for kind in GuardKind::ALL {
            assert_eq!(a.ledger().minted(kind), 0, "{kind:?}");
        }
        assert_eq!(a.pool_metrics().in_use, 0);
        a.ledger().assert_quiescent();
    }
}

// ---------------------------------------------------------------------------------------------
// Thousands of admissions in a seeded random interleaving, checked at every step.

/// A small xorshift generator: the interleaving is the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One request the model holds: its bundle and how many times its own listener fired.
struct Held {
    bundle: Admitted<Vec<u8>, u32>,
    fired: Rc<Cell<u32>>,
}

/// What the model expects of one server.
#[derive(Default)]
struct Expect {
    outcomes: [u64; 5],
    refused_builds: u64,
    /// Bundles that reached `build` through `admit_with` (their ticket was minted before).
    from_tickets: u64,
    /// Standalone tickets minted (some later joined a bundle).
    tickets: u64,
    activity_refs: u64,
}

struct World {
    core: ServerCore<Embedded<&'static str>, Vec<u8>>,
    held: Vec<Held>,
    refs: Vec<ActivityRef>,
    kept: Vec<AbortSignal>,
    saved: Vec<PendingTicket>,
    /// Listener counters of every request ever admitted, with whether it must have fired.
    listeners: Vec<(Rc<Cell<u32>>, Option<bool>)>,
    expect: Expect,
    /// The drain deadline has escalated: a saved request admitted now comes aborted.
    escalated: bool,
}

impl World {
    fn new(heap: &Heap, exhaustion: Exhaustion, capacity: usize) -> Self {
        let config = Config::default()
            .with_pool_capacity(capacity)
            .unwrap()
            .with_exhaustion(exhaustion);
        World {
            core: ServerCore::embedded_with_context(heap.alloc("server"), config),
            held: Vec::new(),
            refs: Vec::new(),
            kept: Vec::new(),
            saved: Vec::new(),
            listeners: Vec::new(),
            expect: Expect::default(),
            escalated: false,
        }
    }

    fn admit(&mut self, rng: &mut Rng) {
        let live = self.core.upgrade().unwrap();
        let how = rng.below(8);
        let stopped = self.core.is_stopped();
        let saved = (!self.saved.is_empty() && (stopped || rng.below(3) == 0))
            .then(|| self.saved.swap_remove(rng.below(self.saved.len())));
        let with_ticket = saved.is_some();
        let full = self.core.pool_metrics().in_use == self.core.pool_metrics().capacity;
        let build = |ctx: &mut Vec<u8>| {
            assert!(ctx.is_empty(), "a recycled context is clear");
            ctx.push(1);
            match how {
                0 => Err(Refusal::new(RefusalReason::PayloadTooLarge { limit: 0 })),
                1 => panic!("build panics"),
                _ => Ok(how as u32),
            }
        };
        let result = catch_unwind(AssertUnwindSafe(|| match saved {
            Some(ticket) => live.admit_with(ticket, build),
            None => live.admit(build),
        }));
        let refused_by_pool =
            matches!(&result, Ok(Err(r)) if r.reason() == RefusalReason::PoolExhausted);
        assert!(
            !stopped || with_ticket,
            "after stop only saved requests come back"
        );
        if with_ticket && !refused_by_pool {
            self.expect.from_tickets += 1;
        }
        match result {
            Err(_) => self.expect.refused_builds += 1,
            Ok(Err(refusal)) if refusal.reason() == RefusalReason::PoolExhausted => {
                assert!(full, "refused with room in the pool");
            }
            Ok(Err(_)) => self.expect.refused_builds += 1,
            Ok(Ok(bundle)) => {
                // Past the deadline's escalation a saved request comes aborted (QA embed26-2).
                let born = self.escalated.then_some(AbortReason::DrainDeadline);
                assert_eq!(bundle.signal().reason(), born, "a reused signal is reset");
                assert_eq!(bundle.signal().pending_activity(), 1);
                let fired = Rc::new(Cell::new(0));
                let f = Rc::clone(&fired);
                if !bundle.signal().on_abort(move |_| f.set(f.get() + 1)) {
                    fired.set(1); // its handler sees it aborted (`signal.aborted`)
                }
                if rng.below(10) == 0 {
                    bundle.signal().on_abort(|_| panic!("listener panics"));
                }
                self.listeners.push((Rc::clone(&fired), None));
                self.held.push(Held { bundle, fired });
            }
        }
    }

    /// Ends a random held request with a random ending; returns the outcome it must get.
    fn end(&mut self, rng: &mut Rng) {
        if self.held.is_empty() {
            return;
        }
        let Held { bundle, fired } = self.held.swap_remove(rng.below(self.held.len()));
        let chosen = [
            Outcome::Completed,
            Outcome::ClientGone,
            Outcome::ForceClosed,
            Outcome::Dropped,
        ][rng.below(4)];
        let expected = match bundle.signal().reason() {
            Some(reason) => Outcome::after_abort(reason),
            None => chosen,
        };
        match chosen {
            Outcome::Completed => bundle.complete(),
            Outcome::Dropped => drop(bundle),
            other => bundle.end(other),
        }
        self.expect.outcomes[Outcome::ALL.iter().position(|&o| o == expected).unwrap()] += 1;
        let must_fire = expected != Outcome::Completed;
        let slot = self
            .listeners
            .iter_mut()
            .find(|(f, _)| Rc::ptr_eq(f, &fired))
            .unwrap();
        slot.1 = Some(must_fire);
        assert_eq!(fired.get(), u32::from(must_fire), "{expected:?}");
    }

    fn step(&mut self, rng: &mut Rng) {
        match rng.below(14) {
            0..=3 => self.admit(rng),
            4..=6 => self.end(rng),
            7 if !self.held.is_empty() => {
                let i = rng.below(self.held.len());
                let _ = self.held[i].bundle.hand_off();
            }
            8 if !self.held.is_empty() => {
                let i = rng.below(self.held.len());
                self.refs.push(self.held[i].bundle.activity_ref());
                self.expect.activity_refs += 1;
            }
            9 if !self.refs.is_empty() => drop(self.refs.swap_remove(rng.below(self.refs.len()))),
            10 if !self.held.is_empty() => {
                let i = rng.below(self.held.len());
                if rng.below(2) == 0 {
                    self.kept.push(self.held[i].bundle.signal().clone());
                } else {
                    self.held[i]
                        .bundle
                        .signal()
                        .abort(AbortReason::ClientDisconnected);
                }
            }
            11 if !self.kept.is_empty() => drop(self.kept.swap_remove(rng.below(self.kept.len()))),
            12 => {
                self.saved
                    .push(self.core.upgrade().unwrap().ticket().unwrap());
                self.expect.tickets += 1;
            }
            13 if !self.saved.is_empty() => {
                drop(self.saved.swap_remove(rng.below(self.saved.len())));
            }
            _ => {}
        }
        self.check();
    }

    fn check(&self) {
        let ledger = self.core.ledger();
        check_ledger(ledger);
        let out = self.held.len();
        let with_request = self
            .held
            .iter()
            .filter(|h| h.bundle.request().is_some())
            .count();
        assert_eq!(
            ledger.outstanding(GuardKind::Ticket),
            out + self.saved.len()
        );
        assert_eq!(ledger.outstanding(GuardKind::Context), out);
        assert_eq!(
            ledger.outstanding(GuardKind::ActivityRef),
            out + self.refs.len()
        );
        assert_eq!(ledger.outstanding(GuardKind::Request), with_request);
        let counts = ledger.outcomes();
        for (i, &o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(counts.count(o), self.expect.outcomes[i], "{o:?}");
        }
        let ended: u64 = self.expect.outcomes.iter().sum();
        // Every bundle that reached `build` ended, is out, or was refused there.
        let bundles = ended + out as u64 + self.expect.refused_builds;
        let e = &self.expect;
        assert_eq!(
            ledger.minted(GuardKind::Ticket),
            bundles - e.from_tickets + e.tickets
        );
        assert_eq!(ledger.minted(GuardKind::Context), bundles);
        assert_eq!(
            ledger.minted(GuardKind::ActivityRef),
            bundles + e.activity_refs
        );
        assert_eq!(
            ledger.minted(GuardKind::Request),
            bundles - e.refused_builds
        );
        let m = self.core.pool_metrics();
        assert_eq!(m.in_use, out);
        assert!(m.allocated <= m.capacity && m.high_water >= m.in_use);
        for h in &self.held {
            assert!(h.fired.get() <= 1);
        }
        for (fired, must) in &self.listeners {
            if let Some(must) = must {
                assert_eq!(fired.get(), u32::from(*must));
            }
        }
    }

    /// Ends everything, stops, and checks the drain and the leftovers.
    fn finish(mut self, rng: &mut Rng) {
        let drain = self.core.stop();
        if rng.below(2) == 0 {
            // The deadline aborts exactly the requests still out and not yet aborted.
            let not_aborted = self.held.iter().filter(|h| h.fired.get() == 0).count();
            let report = drain.escalate();
            self.escalated = true;
            assert_eq!(report.aborted_signals, not_aborted);
            assert!(self.held.iter().all(|h| h.fired.get() == 1));
        }
        while !self.held.is_empty() {
            self.end(rng);
            self.check();
        }
        // Saved requests come back after stop (admit_with works then), or are let go.
        while !self.saved.is_empty() {
            self.admit(rng);
            self.check();
            while !self.held.is_empty() {
                self.end(rng);
            }
            self.check();
        }
        assert!(drain.is_complete(), "every request ended");
        self.refs.clear();
        self.kept.clear();
        self.check();
        self.core.ledger().assert_quiescent();
        assert_eq!(self.core.pool_metrics().in_use, 0);
    }
}

/// Two servers (a refusing pool of 4, a spilling pool of 3), 3,000 random steps each round:
/// admissions that succeed, refuse or panic; endings of every kind; hand-offs; activity refs;
/// kept signal clones; user aborts; panicking listeners. After every step the ledger, the
/// report, the outcomes and the pool agree with the model, each listener fired once exactly
/// when its request did not complete, and a reused signal is always reset.
#[test]
fn random_interleavings_keep_the_books_straight() {
    quiet_panics();
    for seed in [0x9E37_79B9_7F4A_7C15_u64, 0x2545_F491_4F6C_DD1D, 7] {
        let mut rng = Rng(seed);
        let heap = Heap::new();
        let mut worlds = [
            World::new(&heap, Exhaustion::Refuse, 4),
            World::new(&heap, Exhaustion::Spill, 3),
        ];
        for _ in 0..3_000 {
            let w = rng.below(2);
            worlds[w].step(&mut rng);
        }
        let [refusing, spilling] = worlds;
        assert!(
            refusing.core.pool_metrics().refusals > 0,
            "the pool was exhausted"
        );
        assert!(spilling.core.pool_metrics().spills > 0, "the pool spilled");
        refusing.finish(&mut rng);
        spilling.finish(&mut rng);
    }
}

// ---------------------------------------------------------------------------------------------
// Listener panics with hostile payloads; a listener that holds its own request's activity.

/// Abort listeners that panic with a payload whose `Drop` panics too, fired by a bundle's drop,
/// by `end`, by a user abort and by the deadline: each is caught and counted once, the other
/// listeners run, every request ends once.
#[test]
fn listeners_panic_with_payloads_that_panic_on_drop() {
    quiet_panics();
    let heap = Heap::new();
    let core = core(&heap);
    let ran = Rc::new(Cell::new(0));
    let mut bundles: Vec<Bundle> = (0..4).map(|_| admit(&core)).collect();
    for bundle in &bundles {
        bundle
            .signal()
            .on_abort(|_| std::panic::panic_any(PanicsOnDrop));
        let r = Rc::clone(&ran);
        bundle.signal().on_abort(move |_| r.set(r.get() + 1));
    }
    drop(bundles.pop()); // Dropped
    bundles.pop().unwrap().end(Outcome::ClientGone);
    assert!(bundles[0].signal().abort(AbortReason::ClientDisconnected));
    let drain = core.stop();
    let report = drain.escalate(); // the last one
    assert_eq!(report.aborted_signals, 1);
    assert_eq!(report.panicked_listeners, 4);
    assert_eq!(ran.get(), 4);
    drop(bundles);
    assert!(drain.is_complete());
    let o = core.ledger().outcomes();
    assert_eq!(
        (o.dropped, o.client_gone, o.deadline_aborted, o.total()),
        (1, 2, 1, 4)
    );
    core.ledger().assert_quiescent();
}

/// A listener that holds an activity ref of its own request (an `Rc` cycle through a guard,
/// which no type prevents): the request completes, the drain completes (the ref is not a
/// ticket), the deadline does not fire it. Before round 26 the cycle stayed, and the ledger
/// named the ref at its mint site (G6); now the completed request's release drops its
/// listeners unrun, and the ref with them: the ledger is quiescent.
#[test]
fn a_listener_holding_its_own_activity_ref_is_released_with_its_completed_request() {
    let heap = Heap::new();
    let core = core(&heap);
    let bundle = admit(&core);
    let activity = bundle.activity_ref();
    let fired = Rc::new(Cell::new(false));
    let f = Rc::clone(&fired);
    bundle.signal().on_abort(move |_| {
        drop(activity);
        f.set(true);
    });
    bundle.complete();
    let drain = core.stop();
    assert!(drain.is_complete());
    assert_eq!(drain.escalate().aborted_signals, 0);
    assert!(!fired.get());
    assert_eq!(core.ledger().outstanding(GuardKind::ActivityRef), 0);
    check_ledger(core.ledger());
    core.ledger().assert_quiescent();
}

thread_local! {
    /// The server a `ReentrantDefault` admits into while the pool makes it, once.
    static DEFAULT_INTO: RefCell<Option<Rc<DefaultCore>>> = const { RefCell::new(None) };
    static DEFAULT_ADMITTED: Cell<Option<Result<(), RefusalReason>>> = const { Cell::new(None) };
}

/// A context whose `Default` admits (and completes) a request of its server, the first time.
struct ReentrantDefault;

impl Default for ReentrantDefault {
    fn default() -> Self {
        if let Some(core) = DEFAULT_INTO.with(|d| d.borrow_mut().take()) {
            let result = core
                .upgrade()
                .unwrap()
                .admit(|_| Ok(()))
                .map(Admitted::complete);
            DEFAULT_ADMITTED.with(|a| a.set(Some(result.map_err(|r| r.reason()))));
        }
        ReentrantDefault
    }
}

impl Recycle for ReentrantDefault {
    fn recycle(&mut self) {}
}

type DefaultCore = ServerCore<Embedded<&'static str>, ReentrantDefault>;

/// `Default` re-enters the pool while it makes the first context of a refusing pool of one:
/// the slot being made is the pool's only one, so the nested admission must be refused (or at
/// least the pool must not end up holding more contexts than its capacity: `allocated <=
/// capacity`, src/pool/slots.rs invariant 1).
#[test]
fn default_reentering_the_pool_does_not_exceed_its_capacity() {
    let heap = Heap::new();
    let config = Config::default()
        .with_pool_capacity(1)
        .unwrap()
        .with_exhaustion(Exhaustion::Refuse);
    let core: Rc<DefaultCore> = Rc::new(ServerCore::embedded_with_context(
        heap.alloc("server"),
        config,
    ));
    DEFAULT_INTO.with(|d| *d.borrow_mut() = Some(Rc::clone(&core)));
    let outer = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let nested = DEFAULT_ADMITTED.with(Cell::take);
    outer.complete();
    let m = core.pool_metrics();
    core.ledger().assert_quiescent();
    assert!(
        m.allocated <= m.capacity,
        "{} contexts in a pool of {} (nested admission: {nested:?})",
        m.allocated,
        m.capacity
    );
    assert_eq!(nested, Some(Err(RefusalReason::PoolExhausted)));
}

/// A panicking listener on a user-called abort reaches its server through the signal's weak
/// home: counted in the drain's report when the server is alive, for a standalone signal (a
/// signal kept past its completed bundle refuses the listener since round 26).
#[test]
fn a_user_abort_counts_listener_panics_through_the_weak_home() {
    quiet_panics();
    let heap = Heap::new();
    let core = core(&heap);
    let bundle = admit(&core);
    let kept = bundle.signal().clone();
    bundle.complete();
    let standalone = core.upgrade().unwrap().signal();
    for signal in [&kept, &standalone] {
        let added = signal.on_abort(|_| panic!("listener panics"));
        assert_eq!(added, signal.same_as(&standalone));
        assert!(signal.abort(AbortReason::ClientDisconnected));
    }
    let drain = core.stop();
    assert!(drain.is_complete());
    assert_eq!(drain.report().panicked_listeners, 1);
    assert_eq!(
        core.ledger().outcomes().completed,
        1,
        "a user abort after the end"
    );
    core.ledger().assert_quiescent();
}

/// An activity ref kept past its request, its core dropped and its heap collected: it keeps
/// the server's state (the drain and the ledger still answer), its signal is not the
/// deadline's, and dropping it last releases it and recycles its signal into that state.
#[test]
fn an_activity_ref_outlives_its_request_and_its_core() {
    let heap = Heap::new();
    let core = core(&heap);
    let bundle = admit(&core);
    let activity = bundle.activity_ref();
    let drain = core.stop();
    bundle.complete();
    assert!(
        drain.is_complete(),
        "an activity ref is not a pending request"
    );
    drop(core);
    heap.collect();
    assert_eq!(drain.escalate().aborted_signals, 0);
    assert!(!activity.signal().is_aborted());
    assert_eq!(drain.ledger().outstanding(GuardKind::ActivityRef), 1);
    check_ledger(drain.ledger());
    drop(activity);
    drain.ledger().assert_quiescent();
    assert_eq!(drain.report().outcomes.completed, 1);
}
