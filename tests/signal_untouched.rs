//! Round 20 of the cost work (docs/benchmarks-history.md): a released bundle keeps its signal
//! beside its context for the next request when the signal is as good as new (it never fired,
//! nobody else holds it, no listener waits on it). A signal nothing touched since its reset (no
//! handle was cloned from it, no listener added, no drain escalation listed it) is known to be so
//! without counting its handles or reading its listener list; every one of those paths marks it
//! touched, and a touched signal is checked in full. These tests pin each path: a signal kept by
//! user code, or one with a listener, is never handed to the next request (so it never fires for a
//! request it does not belong to: G8), a listener added and taken back leaves it reusable, and the
//! escalation's own list keeps a signal from being reused under it (G5).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use reqguard::engines::Heap;
use reqguard::{AbortReason, AbortSignal, Config, Outcome, PendingTicket, ServerCore};

/// One pooled context: every bundle takes the same slot, and with it the signal kept beside
/// it when that signal is fresh.
fn core_of_one(heap: &Heap) -> ServerCore<reqguard::engines::Embedded<&'static str>> {
    let config = Config::default().with_pool_capacity(1).unwrap();
    ServerCore::embedded(heap.alloc("server"), config)
}

#[test]
fn a_signal_cloned_and_kept_past_completion_is_not_reused_and_never_fires() {
    let heap = Heap::new();
    let core = core_of_one(&heap);
    let live = core.upgrade().unwrap();
    let first = live.admit(|_| Ok(())).unwrap();
    let kept = first.signal().clone();
    first.complete();
    // The next request on the same slot gets another signal: the kept one is not fresh.
    let second = live.admit(|_| Ok(())).unwrap();
    assert!(!second.signal().same_as(&kept));
    drop(second); // ends Dropped: its own signal fires
    assert_eq!(
        kept.reason(),
        None,
        "a completed request's signal never fires"
    );
    // The same once the clone is gone: the signal is fresh again and reusable.
    drop(kept);
    let third = live.admit(|_| Ok(())).unwrap();
    assert_eq!(third.signal().reason(), None);
    third.complete();
    assert_eq!(core.ledger().outcomes().completed, 2);
    assert_eq!(core.ledger().outcomes().dropped, 1);
    core.ledger().assert_quiescent();
}

#[test]
fn a_signal_with_a_listener_is_not_reused_and_its_listener_never_runs() {
    let heap = Heap::new();
    let core = core_of_one(&heap);
    let live = core.upgrade().unwrap();
    let ran = Rc::new(Cell::new(0u32));
    let first = live.admit(|_| Ok(())).unwrap();
    let r = Rc::clone(&ran);
    // Through the bundle's own handle: no clone, only the listener marks it.
    assert!(first.signal().on_abort(move |_| r.set(r.get() + 1)));
    first.complete();
    for _ in 0..3 {
        let next = live.admit(|_| Ok(())).unwrap();
        next.end(Outcome::ClientGone); // fires this request's signal
    }
    assert_eq!(ran.get(), 0, "the completed request's listener ran");
    core.ledger().assert_quiescent();
}

#[test]
fn an_activity_ref_kept_past_completion_keeps_its_signal_out_of_reuse() {
    let heap = Heap::new();
    let core = core_of_one(&heap);
    let live = core.upgrade().unwrap();
    let first = live.admit(|_| Ok(())).unwrap();
    let activity = first.activity_ref();
    first.complete();
    let second = live.admit(|_| Ok(())).unwrap();
    assert!(!second.signal().same_as(activity.signal()));
    assert_eq!(second.signal().pending_activity(), 1);
    second.end(Outcome::ForceClosed);
    assert_eq!(activity.signal().reason(), None);
    drop(activity);
    core.ledger().assert_quiescent();
}

/// A signal that was touched and is fresh again by the time its request ends (its clone
/// dropped) is checked in full, found fresh, and kept (untouched again); one with a clone kept
/// or a listener leaves the slot and is reset. Each request sees a reset signal, and no
/// listener of a completed request ever runs.
#[test]
fn a_signal_touched_then_let_go_is_kept_and_reset_for_each_request() {
    let heap = Heap::new();
    let core = core_of_one(&heap);
    let live = core.upgrade().unwrap();
    let bundle = live.admit(|_| Ok(())).unwrap();
    drop(bundle.signal().clone());
    bundle.complete();
    let fired = Rc::new(Cell::new(0u32));
    for round in 0..4 {
        let bundle = live.admit(|_| Ok(())).unwrap();
        assert_eq!(bundle.signal().reason(), None, "round {round}");
        assert_eq!(bundle.signal().pending_activity(), 1, "round {round}");
        if round == 1 {
            // Its clone outlives the release: this signal leaves the slot.
            let kept = bundle.signal().clone();
            bundle.complete();
            assert_eq!(kept.reason(), None);
            continue;
        }
        let f = Rc::clone(&fired);
        assert!(bundle.signal().on_abort(move |_| f.set(f.get() + 1)));
        bundle.complete();
    }
    // The listeners of completed requests never ran, and none was left for a later request.
    let last = live.admit(|_| Ok(())).unwrap();
    last.end(Outcome::ClientGone);
    assert_eq!(fired.get(), 0);
    core.ledger().assert_quiescent();
}

/// The drain's escalation lists the signals it will abort (it holds each while it runs the
/// listeners of the ones before): one of them whose request a listener completes in the
/// meantime must not be reused by a request admitted there, whose signal this escalation then
/// aborted (the count would say 2). The request admitted during the escalation comes with its
/// signal aborted, as a saved request admitted once the escalation has begun does (QA
/// embed26-2), which this escalation's count leaves out: it ends *deadline aborted*.
#[test]
fn a_signal_the_escalation_listed_is_not_reused_while_it_runs() {
    let heap = Heap::new();
    let config = Config::default().with_pool_capacity(2).unwrap();
    let core = Rc::new(ServerCore::embedded(heap.alloc("server"), config));
    let live = core.upgrade().unwrap();
    let saved: PendingTicket = live.ticket().unwrap();
    let first = live.admit(|_| Ok(())).unwrap();
    let second = Rc::new(RefCell::new(Some(live.admit(|_| Ok(())).unwrap())));
    drop(live);
    let admitted: Rc<RefCell<Option<AbortSignal>>> = Rc::default();
    let saved = RefCell::new(Some(saved));
    let (c, s, a) = (Rc::clone(&core), Rc::clone(&second), Rc::clone(&admitted));
    let held = Rc::new(RefCell::new(Vec::new()));
    let h = Rc::clone(&held);
    // The first request's listener completes the second request, then admits the saved one
    // on the slot the second request gave back.
    first.signal().on_abort(move |_| {
        if let Some(bundle) = s.borrow_mut().take() {
            bundle.complete();
        }
        let live = c.upgrade().unwrap();
        let ticket = saved.borrow_mut().take().unwrap();
        let bundle = live.admit_with(ticket, |_| Ok(())).unwrap();
        *a.borrow_mut() = Some(bundle.signal().clone());
        h.borrow_mut().push(bundle);
    });
    let drain = core.stop();
    drain.set_deadline(Instant::now());
    let report = drain.escalate();
    assert_eq!(
        report.aborted_signals, 1,
        "the first request only: the second ended before its turn"
    );
    let admitted = admitted.borrow_mut().take().unwrap();
    assert_eq!(
        admitted.reason(),
        Some(AbortReason::DrainDeadline),
        "a request admitted during the escalation"
    );
    assert_eq!(first.signal().reason(), Some(AbortReason::DrainDeadline));
    first.complete();
    for bundle in held.borrow_mut().drain(..) {
        bundle.complete();
    }
    drop(admitted);
    let outcomes = core.ledger().outcomes();
    assert_eq!(outcomes.deadline_aborted, 2);
    assert_eq!(outcomes.completed, 1);
    assert!(drain.is_complete());
    core.ledger().assert_quiescent();
}

/// A request's own activity on its signal is its `request_out` flag (one count up and down
/// per request fewer): pending while the request is out, it ends with the request's outcome,
/// before the request object is dropped. Activity refs taken from the bundle count on their
/// own, as before.
#[test]
fn a_requests_own_activity_ends_with_its_outcome() {
    /// A request object that reads its request's signal's pending activity when dropped.
    struct Payload {
        signal: Rc<RefCell<Option<AbortSignal>>>,
        seen: Rc<Cell<Option<usize>>>,
    }
    impl Drop for Payload {
        fn drop(&mut self) {
            if let Some(signal) = self.signal.borrow().as_ref() {
                self.seen.set(Some(signal.pending_activity()));
            }
        }
    }
    let heap = Heap::new();
    let core = core_of_one(&heap);
    let live = core.upgrade().unwrap();
    let shared: Rc<RefCell<Option<AbortSignal>>> = Rc::default();
    let seen = Rc::new(Cell::new(None));
    let bundle = live
        .admit(|_| {
            Ok(Payload {
                signal: Rc::clone(&shared),
                seen: Rc::clone(&seen),
            })
        })
        .unwrap();
    let signal = bundle.signal().clone();
    *shared.borrow_mut() = Some(signal.clone());
    assert_eq!(signal.pending_activity(), 1, "the request's own");
    let activity = bundle.activity_ref();
    assert_eq!(signal.pending_activity(), 2);
    bundle.complete();
    assert_eq!(
        seen.get(),
        Some(1),
        "in the request object's Drop, after the outcome: the activity ref alone"
    );
    assert_eq!(signal.pending_activity(), 1);
    drop(activity);
    assert!(!signal.has_pending_activity());
    drop(shared.borrow_mut().take());
    drop(signal);
    assert_eq!(core.ledger().outcomes().completed, 1);
    core.ledger().assert_quiescent();
}

/// A spilled context's signal is touched from its checkout (invariant 8 of the pool's slots,
/// round 28): a release that finds its signal untouched checks its slot in as a pooled one,
/// without reading its origin, so a spilled slot must never look untouched. Completed with
/// nothing else touching its signal, a spilled context still goes back to the heap, and the
/// next request past the capacity spills again. It fails when the spill's checkout leaves the
/// flag down (debug builds: the pooled check-in's assertion; release builds: the spilled slot
/// kept in the pool and handed out again, not counted as a spill).
#[test]
fn a_spilled_context_completed_untouched_goes_back_to_the_heap() {
    let heap = Heap::new();
    let config = Config::default()
        .with_pool_capacity(1)
        .unwrap()
        .with_exhaustion(reqguard::Exhaustion::Spill);
    let core = ServerCore::embedded(heap.alloc("server"), config);
    let live = core.upgrade().unwrap();
    for round in 1..=3u64 {
        let pooled = live.admit(|_| Ok(())).unwrap();
        let spilled = live.admit(|_| Ok(())).unwrap();
        assert!(!pooled.is_spilled(), "round {round}");
        assert!(spilled.is_spilled(), "round {round}");
        spilled.complete();
        pooled.complete();
        let pool = core.pool_metrics();
        assert_eq!(
            (pool.in_use, pool.allocated, pool.spills),
            (0, 1, round),
            "round {round}: the spilled context went back to the heap, counted"
        );
    }
    assert_eq!(core.ledger().outcomes().completed, 6);
    core.ledger().assert_quiescent();
}
