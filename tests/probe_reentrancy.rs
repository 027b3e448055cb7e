//! Hostile-embedder probes: user code re-entering the core from its own callbacks. A bundle
//! dropped or completed inside its own abort listener, `stop()` or admission inside a listener
//! or a drain hook, the core dropped inside a hook or a listener. Each must keep one outcome per
//! request, complete the drain exactly once, and leave the ledger clean.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use reqguard::engines::{Embedded, Heap};
use reqguard::{
    AbortReason, Admitted, Config, DowngradePolicy, DrainStatus, Outcome, RefusalReason, ServerCore,
};

type Core = ServerCore<Embedded<&'static str>>;
type Slot = Rc<RefCell<Option<Admitted<(), ()>>>>;

fn core(heap: &Heap) -> Core {
    ServerCore::embedded(heap.alloc("server"), Config::default())
}

/// A bundle parked in a slot whose abort listener takes it out and ends it with `end`: the
/// handler reacting to its own request's abort.
fn park(bundle: Admitted<(), ()>, end: fn(Admitted<(), ()>)) -> Slot {
    let slot: Slot = Rc::default();
    let own = Rc::clone(&slot);
    bundle.signal().on_abort(move |_| {
        let taken = own.borrow_mut().take();
        if let Some(bundle) = taken {
            end(bundle);
        }
    });
    *slot.borrow_mut() = Some(bundle);
    slot
}

/// User code aborts a parked request; its listener ends the bundle every way. The abort's
/// reason decides the outcome, the listener ran once, nothing is left.
#[test]
fn a_bundle_ended_inside_its_own_abort_listener() {
    let heap = Heap::new();
    let core = core(&heap);
    let endings: [fn(Admitted<(), ()>); 4] = [
        |b| b.complete(),
        |b| b.end(Outcome::ForceClosed),
        |b| b.end(Outcome::Completed),
        drop,
    ];
    for end in endings {
        let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
        let signal = bundle.signal().clone();
        let slot = park(bundle, end);
        assert!(signal.abort(AbortReason::ClientDisconnected));
        assert!(slot.borrow().is_none());
    }
    let outcomes = core.ledger().outcomes();
    assert_eq!((outcomes.client_gone, outcomes.total()), (4, 4));
    core.ledger().assert_quiescent();
}

/// The drain deadline aborts parked requests whose listeners end them: the drain completes
/// from inside the escalation, the outcomes are all `DeadlineAborted`, and the hooks ran once.
#[test]
fn the_deadline_ends_parked_requests_from_their_listeners() {
    let heap = Heap::new();
    let core = core(&heap);
    let slots: Vec<Slot> = (0..5)
        .map(|i| {
            let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
            park(bundle, if i % 2 == 0 { |b| b.complete() } else { drop })
        })
        .collect();
    let drain = core.stop();
    let hooks = Rc::new(Cell::new(0));
    let h = Rc::clone(&hooks);
    drain.on_complete(move || h.set(h.get() + 1));
    let now = Instant::now();
    drain.set_deadline(now);
    assert_eq!(drain.poll_deadline(now), DrainStatus::Complete);
    assert_eq!(drain.poll_deadline(now), DrainStatus::Complete);
    assert!(slots.iter().all(|s| s.borrow().is_none()));
    assert_eq!(hooks.get(), 1);
    assert_eq!(core.ledger().outcomes().deadline_aborted, 5);
    core.ledger().assert_quiescent();
}

/// `stop()` called from the abort listener of the last request, while its bundle is being
/// dropped: the drain completes once that bundle is released, not before, and its hooks run.
#[test]
fn stop_inside_the_listener_of_the_last_request() {
    let heap = Heap::new();
    let core = Rc::new(core(&heap));
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let seen = Rc::new(RefCell::new(None));
    let (c, s) = (Rc::clone(&core), Rc::clone(&seen));
    bundle.signal().on_abort(move |_| {
        let drain = c.stop();
        *s.borrow_mut() = Some((drain.is_complete(), drain.outstanding()));
        drain.on_complete(|| {});
    });
    drop(bundle);
    assert_eq!(
        *seen.borrow(),
        Some((false, 1)),
        "inside the listener the request is still out"
    );
    let drain = core.drain().expect("stopped");
    assert!(drain.is_complete());
    assert_eq!(core.ledger().outcomes().dropped, 1);
    core.ledger().assert_quiescent();
}

/// Admitting from an abort listener: while the server runs it is a new request with its own
/// outcome; from a listener the deadline runs, the server is stopped and it is refused.
#[test]
fn admitting_inside_a_listener() {
    let heap = Heap::new();
    let core = Rc::new(core(&heap));
    let inner: Slot = Rc::default();
    let refused = Rc::new(Cell::new(None));
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let (c, slot) = (Rc::clone(&core), Rc::clone(&inner));
    bundle.signal().on_abort(move |_| {
        *slot.borrow_mut() = Some(c.upgrade().unwrap().admit(|_| Ok(())).unwrap());
    });
    drop(bundle); // fires Dropped, and the listener admits a second request
    let second = inner
        .borrow_mut()
        .take()
        .expect("admitted inside the listener");
    let (c, r) = (Rc::clone(&core), Rc::clone(&refused));
    second.signal().on_abort(move |_| {
        r.set(
            c.upgrade()
                .unwrap()
                .admit(|_| Ok(()))
                .err()
                .map(|e| e.reason()),
        );
    });
    let drain = core.stop();
    drain.escalate();
    assert_eq!(refused.get(), Some(RefusalReason::Stopped));
    drop(second);
    assert!(drain.is_complete());
    let outcomes = core.ledger().outcomes();
    assert_eq!((outcomes.dropped, outcomes.deadline_aborted), (1, 1));
    core.ledger().assert_quiescent();
}

/// A drain hook that calls `stop()` again, admits, registers another hook and reads the
/// report: nothing is admitted, the late hook runs at once, the drain completed once.
#[test]
fn a_drain_hook_that_stops_admits_and_hooks_again() {
    let heap = Heap::new();
    let core = Rc::new(core(&heap));
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let saved = core.upgrade().unwrap().ticket().unwrap();
    let drain = core.stop();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (c, l) = (Rc::clone(&core), Rc::clone(&log));
    drain.on_complete(move || {
        let again = c.stop();
        l.borrow_mut()
            .push(format!("complete={}", again.is_complete()));
        let refused = c
            .upgrade()
            .map(|live| live.admit(|_| Ok(())).err().map(|e| e.reason()));
        l.borrow_mut().push(format!("{refused:?}"));
        let l2 = Rc::clone(&l);
        again.on_complete(move || l2.borrow_mut().push("late hook".into()));
        l.borrow_mut()
            .push(format!("outcomes={}", again.report().outcomes.total()));
    });
    bundle.complete();
    assert!(log.borrow().is_empty(), "a saved ticket is still out");
    drop(saved);
    assert_eq!(
        *log.borrow(),
        vec![
            "complete=true".to_string(),
            "Some(Some(Stopped))".into(),
            "late hook".into(),
            "outcomes=1".into()
        ]
    );
    core.ledger().assert_quiescent();
}

/// The core moved into its own drain hook (its last owner) and dropped there, with the
/// `OnDrain` wrapper: the wrapper goes once the drain completed, and nothing is left.
#[test]
fn the_core_dropped_inside_its_own_drain_hook() {
    for policy in [DowngradePolicy::OnDrain, DowngradePolicy::OnStop] {
        let heap = Heap::new();
        let wrapper = heap.alloc("server");
        let weak = wrapper.downgrade();
        let core: Core = ServerCore::embedded(wrapper, Config::default().with_downgrade(policy));
        let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
        let drain = core.stop();
        let dropped = Rc::new(Cell::new(false));
        let d = Rc::clone(&dropped);
        drain.on_complete(move || {
            drop(core);
            d.set(true);
        });
        if policy == DowngradePolicy::OnDrain {
            assert_eq!(heap.collect(), 0, "finalized mid-request");
        }
        bundle.complete();
        assert!(dropped.get());
        assert!(drain.is_complete());
        assert_eq!(heap.collect(), 1, "{policy:?}");
        assert!(weak.is_finalized());
        assert_eq!(drain.report().outcomes.completed, 1);
        assert!(drain.ledger().is_quiescent());
    }
}

/// The last owner of the core is an abort listener that drops it while the bundle is being
/// dropped (the core was never stopped): dropping it stops the server, the wrapper stays until
/// the request is released, and the drain still completes.
#[test]
fn the_core_dropped_inside_an_abort_listener() {
    let heap = Heap::new();
    let wrapper = heap.alloc("server");
    let weak = wrapper.downgrade();
    let core: Core = ServerCore::embedded(wrapper, Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let probe = bundle.signal().clone();
    let held = Rc::new(RefCell::new(Some(core)));
    let h = Rc::clone(&held);
    let collected_inside = Rc::new(Cell::new(usize::MAX));
    let (ci, hp) = (Rc::clone(&collected_inside), heap.clone());
    bundle.signal().on_abort(move |_| {
        drop(h.borrow_mut().take());
        ci.set(hp.collect());
    });
    drop(bundle);
    assert_eq!(
        collected_inside.get(),
        0,
        "finalized while its request was still being released"
    );
    assert!(held.borrow().is_none());
    assert_eq!(heap.collect(), 1);
    assert!(weak.is_finalized());
    assert_eq!(probe.reason(), Some(AbortReason::Dropped));
}

/// A listener that drops a *different* request's bundle: that request still gets exactly one
/// outcome and one abort, and both are counted.
#[test]
fn a_listener_ending_another_request() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let other = live.admit(|_| Ok(())).unwrap();
    let other_fired = Rc::new(Cell::new(0));
    let f = Rc::clone(&other_fired);
    other.signal().on_abort(move |_| f.set(f.get() + 1));
    let other_slot = Rc::new(RefCell::new(Some(other)));
    let first = live.admit(|_| Ok(())).unwrap();
    let o = Rc::clone(&other_slot);
    first.signal().on_abort(move |_| {
        let taken = o.borrow_mut().take();
        if let Some(bundle) = taken {
            bundle.end(Outcome::ClientGone);
        }
    });
    first.end(Outcome::ForceClosed);
    assert_eq!(other_fired.get(), 1);
    let outcomes = core.ledger().outcomes();
    assert_eq!((outcomes.force_closed, outcomes.client_gone), (1, 1));
    drop(live);
    assert!(core.stop().is_complete());
    core.ledger().assert_quiescent();
}

thread_local! {
    /// What the pool's user code (`Default`, `Recycle::recycle`) does when it next runs.
    static ON_POOL_CALL: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
}

#[derive(Default)]
struct Reentrant;

impl reqguard::Recycle for Reentrant {
    fn recycle(&mut self) {
        if let Some(call) = ON_POOL_CALL.with(|c| c.borrow_mut().take()) {
            call();
        }
    }
}

type PoolCore = ServerCore<Embedded<&'static str>, Reentrant>;

/// `Recycle::recycle` re-enters the server while the last request is being released: it admits
/// another request (the pool must not be borrowed), then stops the server. Both requests end
/// with one outcome, the drain completes exactly when the second is released, no slot is lost.
#[test]
fn a_recycle_that_admits_and_stops() {
    let heap = Heap::new();
    let core: Rc<PoolCore> = Rc::new(ServerCore::embedded_with_context(
        heap.alloc("server"),
        Config::default().with_pool_capacity(1).unwrap(),
    ));
    let second: Rc<RefCell<Option<Admitted<Reentrant, ()>>>> = Rc::default();
    let (c, s) = (Rc::clone(&core), Rc::clone(&second));
    ON_POOL_CALL.with(|call| {
        *call.borrow_mut() = Some(Box::new(move || {
            let bundle = c.upgrade().unwrap().admit(|_| Ok(())).unwrap();
            *s.borrow_mut() = Some(bundle);
            let drain = c.stop();
            assert!(!drain.is_complete(), "two requests are out inside recycle");
        }))
    });
    core.upgrade()
        .unwrap()
        .admit(|_| Ok(()))
        .unwrap()
        .complete();
    let drain = core.drain().expect("recycle stopped it");
    assert!(!drain.is_complete(), "the second request is out");
    second.borrow_mut().take().unwrap().complete();
    assert!(drain.is_complete());
    assert_eq!(core.ledger().outcomes().completed, 2);
    let metrics = core.pool_metrics();
    assert_eq!((metrics.in_use, metrics.recycle_panics), (0, 0));
    assert!(
        metrics.allocated <= 1 + metrics.spills as usize,
        "{metrics:?}"
    );
    core.ledger().assert_quiescent();
}

/// A waker (an executor's code) that re-enters the drain while it completes: it polls the
/// drain it was registered for (ready at once), drops another waiting handle, and registers a
/// hook. Every waiter is woken once, every hook runs once, no waker is kept.
#[test]
fn wakers_that_reenter_the_completing_drain() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Wake, Waker};

    struct Reenter {
        drain: RefCell<Option<reqguard::Drain>>,
        other: RefCell<Option<reqguard::Drain>>,
        woken: Cell<u32>,
        hooked: Rc<Cell<u32>>,
        ready: Cell<bool>,
    }
    // The drain is `!Send`: this waker lives and is woken on this thread only, through a
    // thread-local, which is how a single-threaded executor's waker reaches its task.
    thread_local!(static TASK: RefCell<Option<Rc<Reenter>>> = const { RefCell::new(None) });
    struct LocalWaker;
    impl Wake for LocalWaker {
        fn wake(self: std::sync::Arc<Self>) {
            let task = TASK.with(|t| t.borrow().clone()).expect("task");
            task.woken.set(task.woken.get() + 1);
            drop(task.other.borrow_mut().take()); // another waiting handle goes away
                                                  // Both handles share this waker: the first wake re-polls and hooks, the second
                                                  // finds nothing left to do.
            let Some(mut drain) = task.drain.borrow_mut().take() else {
                return;
            };
            let waker = Waker::noop();
            task.ready.set(matches!(
                Pin::new(&mut drain).poll(&mut Context::from_waker(waker)),
                Poll::Ready(_)
            ));
            let hooked = Rc::clone(&task.hooked);
            drain.on_complete(move || hooked.set(hooked.get() + 1));
        }
    }

    let heap = Heap::new();
    let core = core(&heap);
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let drain = core.stop();
    let task = Rc::new(Reenter {
        drain: RefCell::new(Some(drain.clone())),
        other: RefCell::new(Some(drain.clone())),
        woken: Cell::new(0),
        hooked: Rc::new(Cell::new(0)),
        ready: Cell::new(false),
    });
    TASK.with(|t| *t.borrow_mut() = Some(Rc::clone(&task)));
    let waker = Waker::from(std::sync::Arc::new(LocalWaker));
    for slot in [&task.drain, &task.other] {
        let mut guard = slot.borrow_mut();
        let handle = guard.as_mut().unwrap();
        assert!(Pin::new(handle)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
    }
    assert_eq!(drain.waiters(), 2);
    bundle.complete();
    assert!(drain.is_complete());
    assert_eq!(
        task.woken.get(),
        2,
        "both registered handles were woken once"
    );
    assert!(task.ready.get(), "polled from inside wake: ready");
    assert_eq!(
        task.hooked.get(),
        1,
        "a hook registered inside wake ran once"
    );
    assert_eq!(drain.waiters(), 0);
    TASK.with(|t| t.borrow_mut().take());
}

/// `stop()` and the deadline's escalation called from inside `build`, while the request is half
/// admitted: the request is already counted (the drain waits for it), its signal is the
/// deadline's to abort, and it ends once, as `DeadlineAborted`, whatever the handler calls.
#[test]
fn stop_and_escalate_from_inside_build() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let mut seen = None;
    let bundle = live
        .admit(|_| {
            let drain = core.stop();
            let report = drain.escalate();
            seen = Some((
                drain.is_complete(),
                drain.outstanding(),
                report.aborted_signals,
            ));
            Ok(())
        })
        .expect("the request was in admission before stop");
    assert_eq!(
        seen,
        Some((false, 1, 1)),
        "(complete, outstanding, aborted)"
    );
    assert_eq!(bundle.signal().reason(), Some(AbortReason::DrainDeadline));
    bundle.complete();
    let drain = core.drain().unwrap();
    assert!(drain.is_complete());
    let outcomes = core.ledger().outcomes();
    assert_eq!((outcomes.deadline_aborted, outcomes.total()), (1, 1));
    assert_eq!(
        live.admit(|_| Ok(())).unwrap_err().reason(),
        RefusalReason::Stopped
    );
    core.ledger().assert_quiescent();
}
