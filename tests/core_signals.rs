//! Abort signals: listeners fire at most once, signals are recycled when nobody holds them,
//! and a stale handle kept by user code is never recycled under it.

#[path = "util/runtime.rs"]
mod runtime;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use reqguard::engines::Heap;
use reqguard::{AbortReason, AbortSignal, Config, DowngradePolicy, GuardKind, ServerCore};
use runtime::{Behavior, FakeServer, Req};

fn counter() -> (Rc<Cell<u32>>, impl FnOnce(AbortReason) + 'static) {
    let count = Rc::new(Cell::new(0));
    let c = Rc::clone(&count);
    (count, move |_| c.set(c.get() + 1))
}

#[test]
fn listeners_fire_once_and_late_listeners_are_refused() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let signal = live.signal();
    let (first, listener) = counter();
    assert!(signal.on_abort(listener));
    let (second, listener) = counter();
    assert!(
        signal.clone().on_abort(listener),
        "a clone is the same signal"
    );

    assert!(signal.abort(AbortReason::ClientDisconnected));
    assert!(!signal.abort(AbortReason::DrainDeadline));
    assert_eq!((first.get(), second.get()), (1, 1));
    assert_eq!(signal.reason(), Some(AbortReason::ClientDisconnected));

    let (late, listener) = counter();
    assert!(
        !signal.on_abort(listener),
        "already aborted: not registered"
    );
    assert_eq!(late.get(), 0, "and not run either");
}

#[test]
fn a_listener_may_touch_its_own_signal() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let signal = live.signal();
    let runs = Rc::new(Cell::new(0));
    let (inner_runs, inner) = counter();
    let (s, r) = (signal.clone(), Rc::clone(&runs));
    signal.on_abort(move |_| {
        r.set(r.get() + 1);
        assert!(s.is_aborted());
        assert!(
            !s.abort(AbortReason::Other("again")),
            "no second abort from inside"
        );
        assert!(!s.on_abort(inner), "no listener added after the abort");
    });
    assert!(signal.abort(AbortReason::HandlerFailed));
    assert_eq!((runs.get(), inner_runs.get()), (1, 0));
}

#[test]
fn activity_refs_count_pending_work_and_release_on_drop() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let bundle = live.admit(|_| Ok(())).unwrap();
    let signal = bundle.signal().clone();
    let a = bundle.activity_ref();
    let b = bundle.activity_ref();
    assert_eq!(signal.pending_activity(), 3); // the bundle's own, and two more
    assert_eq!(core.ledger().outstanding(GuardKind::ActivityRef), 3);
    assert!(a.signal().same_as(&signal));
    drop(a);
    bundle.complete();
    assert!(signal.has_pending_activity());
    drop(b);
    assert!(!signal.has_pending_activity());
    core.ledger().assert_quiescent();
}

/// A recycled signal comes back reset: not aborted, no listener of its last use, no activity.
#[test]
fn recycled_signals_are_reset() {
    let server = FakeServer::new(Config::default());
    server.behavior.set(Behavior::Defer);
    let id = server.on_request(Req::get("/a")).deferred.unwrap();
    assert!(server.on_client_abort(id));
    assert_eq!(server.abort_listener_runs.get(), 1);
    // Let go of the last handle so the signal can be recycled.
    drop(server.last_signal.borrow_mut().take());

    for round in 0..50 {
        let id = server.on_request(Req::get("/b")).deferred.unwrap();
        let signal = server.last_signal.borrow().clone().unwrap();
        assert!(!signal.is_aborted(), "round {round}");
        assert_eq!(signal.pending_activity(), 1, "only this request's ref");
        drop(signal);
        assert!(server.finish(id));
    }
    assert_eq!(
        server.abort_listener_runs.get(),
        1,
        "no old listener ran again"
    );
    drop(server.last_signal.borrow_mut().take());
    server.core.ledger().assert_quiescent();
}

/// User code may keep a request's `AbortSignal` (JS holds `request.signal`) long after the
/// request ended. That signal must keep its state, and later requests must get other signals.
/// Its listener, added while the request was out, went with the request's end (it completed:
/// a request's listeners live at most until its end, round 26).
#[test]
fn a_stale_signal_held_by_user_code_is_not_recycled_under_it() {
    let server = FakeServer::new(Config::default());
    server.behavior.set(Behavior::Defer);
    let id = server.on_request(Req::get("/kept")).deferred.unwrap();
    let stale: AbortSignal = server.last_signal.borrow_mut().take().unwrap();
    let (stale_listener_runs, listener) = counter();
    assert!(stale.on_abort(listener));
    assert!(server.finish(id)); // the request ends; user code still holds `stale`
    assert!(!stale.has_pending_activity());

    let mut later: Vec<AbortSignal> = Vec::new();
    for _ in 0..20 {
        let id = server.on_request(Req::get("/next")).deferred.unwrap();
        let signal = server.last_signal.borrow_mut().take().unwrap();
        assert!(
            !signal.same_as(&stale),
            "a held signal is never handed out again"
        );
        assert!(later.iter().all(|s| !s.same_as(&signal)));
        signal.abort(AbortReason::ClientDisconnected);
        assert!(server.finish(id));
        later.push(signal);
    }
    assert_eq!(
        stale_listener_runs.get(),
        0,
        "other requests' aborts do not reach it"
    );
    assert!(!stale.is_aborted());

    // Aborting the stale signal marks it, and runs no listener (its request completed).
    assert!(stale.abort(AbortReason::Other("user code")));
    assert_eq!(stale_listener_runs.get(), 0);
    assert_eq!(stale.reason(), Some(AbortReason::Other("user code")));
    assert!(later
        .iter()
        .all(|s| s.reason() == Some(AbortReason::ClientDisconnected)));

    // And a request after all that gets a fresh signal, not the stale one.
    later.clear();
    let id = server.on_request(Req::get("/after")).deferred.unwrap();
    let fresh = server.last_signal.borrow_mut().take().unwrap();
    assert!(!fresh.same_as(&stale) && !fresh.is_aborted());
    assert_eq!(stale.reason(), Some(AbortReason::Other("user code")));
    assert!(server.finish(id));
    drop((fresh, stale));
    server.core.ledger().assert_quiescent();
}

/// Regression: a listener holding the last handle of *another* signal of the same server.
/// Recycling the first signal resets it, which drops the listener, which recycles the second
/// signal: the spare list must not be borrowed across the reset ("already borrowed" panic in
/// `Drop`, an abort).
#[test]
fn recycling_a_signal_whose_listener_holds_another_signal() {
    let heap = Heap::new();
    let core = ServerCore::embedded(
        heap.alloc("server"),
        Config::default().with_downgrade(DowngradePolicy::OnStop),
    );
    let live = core.upgrade().unwrap();
    let parent = live.signal();
    let child = live.signal(); // e.g. the signal of a sub-request the handler started
    let fired = Rc::new(RefCell::new(None));
    let f = Rc::clone(&fired);
    parent.on_abort(move |reason| {
        child.abort(reason);
        *f.borrow_mut() = child.reason();
    });
    drop(parent); // never aborted: recycled, its listener (and `child`) dropped on reset
    assert!(fired.borrow().is_none());

    // Both signals went back to the pool and come out reset.
    let a = live.signal();
    let b = live.signal();
    assert!(!a.is_aborted() && !b.is_aborted());
    assert!(!a.same_as(&b));
    core.ledger().assert_quiescent();
}

/// A signal is not a guard: a handle kept after its request ended and after its server is
/// gone still works (abort; no listener is added after its request's end, round 26), so does a
/// signal of no request (listeners, a panicking listener caught), and dropping them frees them.
#[test]
fn a_signal_outlives_its_server() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let bundle = live.admit(|_| Ok(())).unwrap();
    let held = bundle.signal().clone();
    let alone = live.signal();
    drop(live);
    bundle.complete();
    assert!(
        !held.is_aborted(),
        "a completed request's signal never fires"
    );

    // The server goes away with every guard; the handles stay usable.
    core.ledger().assert_quiescent();
    drop(core);
    heap.collect();
    let (fired, listener) = counter();
    assert!(!held.on_abort(listener), "added after its request's end");
    assert!(held.abort(AbortReason::ClientDisconnected));
    assert_eq!(fired.get(), 0);
    assert_eq!(held.reason(), Some(AbortReason::ClientDisconnected));
    drop(held);
    let (fired, listener) = counter();
    assert!(alone.on_abort(listener));
    assert!(alone.on_abort(|_| panic!("a listener panics after its server is gone")));
    assert!(alone.abort(AbortReason::ClientDisconnected));
    assert_eq!(fired.get(), 1);
    drop(alone);
}
