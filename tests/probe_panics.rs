//! Hostile-embedder probes: user callbacks that panic (abort listeners, drain hooks, wakers,
//! `Recycle::recycle`, `Default`, handlers). The docs promise that the mechanism finishes its
//! own work first and runs each callback on its own: a panic is caught and counted, the others
//! still run, nothing is lost and the process is not aborted.

use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use reqguard::engines::{Embedded, Heap};
use reqguard::{AbortReason, Config, Exhaustion, GuardKind, Outcome, Recycle, ServerCore};

#[path = "util/quiet.rs"]
mod quiet;
use quiet::quiet_panics;

type Core = ServerCore<Embedded<&'static str>>;

/// A panic payload whose own `Drop` panics: what `catch_unwind`'s caller gets back and must
/// not drop carelessly (std documents that dropping a payload may panic again).
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("the payload's drop panics too");
    }
}

fn panic_with_a_bad_payload() -> ! {
    std::panic::panic_any(PanicsOnDrop)
}

/// Every listener of every signal runs and the counts stay right when listeners panic, with
/// the bundle ended each way.
#[test]
fn panicking_listeners_are_counted_and_skip_nothing_for_every_ending() {
    quiet_panics();
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let ran = Rc::new(Cell::new(0));
    for round in 0..4 {
        let bundle = live.admit(|_| Ok(())).unwrap();
        for i in 0..3 {
            let ran = Rc::clone(&ran);
            bundle.signal().on_abort(move |_| {
                ran.set(ran.get() + 1);
                if i != 1 {
                    panic!("listener {i} panics");
                }
            });
        }
        match round {
            0 => drop(bundle),
            1 => bundle.end(Outcome::ClientGone),
            2 => {
                assert!(bundle.signal().abort(AbortReason::HandlerFailed));
                bundle.complete();
            }
            _ => bundle.end(Outcome::ForceClosed),
        }
    }
    assert_eq!(ran.get(), 12, "every listener ran once");
    let drain = core.stop();
    let report = drain.report();
    assert!(report.complete);
    assert_eq!(report.panicked_listeners, 8);
    assert_eq!(report.outcomes.total(), 4);
    core.ledger().assert_quiescent();
}

/// A listener whose panic payload panics again when dropped: still caught, the other
/// listeners still run, the bundle still releases everything.
#[test]
fn a_listener_panic_whose_payload_panics_on_drop_is_still_contained() {
    quiet_panics();
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let later = Rc::new(Cell::new(false));
    bundle.signal().on_abort(|_| panic_with_a_bad_payload());
    let l = Rc::clone(&later);
    bundle.signal().on_abort(move |_| l.set(true));
    let drain = core.stop();
    let escaped = catch_unwind(AssertUnwindSafe(move || drop(bundle)));
    assert_eq!(core.pool_metrics().in_use, 0, "the context went back");
    assert!(drain.is_complete(), "the request ended");
    assert!(later.get(), "the next listener ran");
    assert_eq!(core.ledger().outcomes().dropped, 1);
    core.ledger().assert_quiescent();
    assert!(
        escaped.is_ok(),
        "the listener's panic escaped the bundle's drop"
    );
}

/// A payload whose drop panics with another such payload, forever: containing it must end
/// (the payload is leaked after a few rounds) and the bundle still releases everything.
#[test]
fn a_payload_that_panics_on_every_drop_is_contained_and_does_not_loop() {
    quiet_panics();
    struct Forever;
    impl Drop for Forever {
        fn drop(&mut self) {
            std::panic::panic_any(Forever);
        }
    }
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    bundle.signal().on_abort(|_| std::panic::panic_any(Forever));
    let escaped = catch_unwind(AssertUnwindSafe(move || drop(bundle)));
    assert!(escaped.is_ok());
    assert_eq!(core.ledger().outcomes().dropped, 1);
    assert_eq!(core.stop().report().panicked_listeners, 1);
    core.ledger().assert_quiescent();
}

/// The same payload from a drain hook: the other hooks still run and the OnDrain downgrade
/// still happens.
#[test]
fn a_hook_panic_whose_payload_panics_on_drop_is_still_contained() {
    quiet_panics();
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let drain = core.stop();
    drain.on_complete(|| panic_with_a_bad_payload());
    let ran = Rc::new(Cell::new(false));
    let r = Rc::clone(&ran);
    drain.on_complete(move || r.set(true));
    let escaped = catch_unwind(AssertUnwindSafe(move || bundle.complete()));
    assert!(
        escaped.is_ok(),
        "the hook's panic escaped the last ticket's drop"
    );
    assert!(ran.get(), "the other hook ran");
    assert_eq!(drain.report().panicked_hooks, 1);
}

/// The same payload from `Recycle::recycle`: the slot is not lost.
#[test]
fn a_recycle_panic_whose_payload_panics_on_drop_is_still_contained() {
    quiet_panics();
    #[derive(Default)]
    struct Bad;
    impl Recycle for Bad {
        fn recycle(&mut self) {
            panic_with_a_bad_payload()
        }
    }
    let heap = Heap::new();
    let config = Config::default()
        .with_pool_capacity(1)
        .unwrap()
        .with_exhaustion(Exhaustion::Refuse);
    let core = ServerCore::embedded_with_context::<Bad>(heap.alloc("server"), config);
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let escaped = catch_unwind(AssertUnwindSafe(move || bundle.complete()));
    assert_eq!(core.ledger().outcomes().completed, 1, "the request ended");
    core.ledger().assert_quiescent();
    let metrics = core.pool_metrics();
    assert_eq!((metrics.in_use, metrics.recycle_panics), (0, 1));
    assert!(escaped.is_ok(), "recycle's panic escaped the bundle");
}

/// A `Default` that panics: the panic reaches the admitting callback (user code failed), but
/// nothing is held, the pool is not shrunk, and the next admission works.
#[test]
fn a_panicking_default_holds_nothing_and_costs_no_capacity() {
    quiet_panics();
    thread_local!(static FAIL: Cell<bool> = const { Cell::new(false) });
    struct Flaky;
    impl Default for Flaky {
        fn default() -> Self {
            if FAIL.with(Cell::get) {
                panic!("default panics");
            }
            Flaky
        }
    }
    impl Recycle for Flaky {
        fn recycle(&mut self) {}
    }
    for exhaustion in [Exhaustion::Refuse, Exhaustion::Spill] {
        let heap = Heap::new();
        let config = Config::default()
            .with_pool_capacity(1)
            .unwrap()
            .with_exhaustion(exhaustion);
        let core = ServerCore::embedded_with_context::<Flaky>(heap.alloc("server"), config);
        let live = core.upgrade().unwrap();
        FAIL.with(|f| f.set(true));
        assert!(catch_unwind(AssertUnwindSafe(|| live.admit(|_| Ok(())))).is_err());
        FAIL.with(|f| f.set(false));
        core.ledger().assert_quiescent();
        assert_eq!(core.pool_metrics().in_use, 0);
        let first = live.admit(|_| Ok(())).unwrap();
        assert!(!first.is_spilled(), "the pooled slot is still there");
        // Spilling contexts also run `Default`.
        if exhaustion == Exhaustion::Spill {
            FAIL.with(|f| f.set(true));
            assert!(catch_unwind(AssertUnwindSafe(|| live.admit(|_| Ok(())))).is_err());
            FAIL.with(|f| f.set(false));
            assert_eq!(core.ledger().outstanding(GuardKind::Ticket), 1);
            assert_eq!(core.pool_metrics().in_use, 1);
        }
        first.complete();
        assert_eq!(core.ledger().outcomes().total(), 1);
        core.ledger().assert_quiescent();
    }
}

struct PanickyWaker {
    woken: AtomicUsize,
}

impl Wake for PanickyWaker {
    fn wake(self: Arc<Self>) {
        self.woken.fetch_add(1, Ordering::SeqCst);
        panic!("the waker panics");
    }
}

/// A waker is user code too (an executor's). One that panics when the drain completes must
/// not cost the drain hooks (the OnDrain downgrade, `server.stop()`'s promise) nor the other
/// waiting tasks.
#[test]
fn a_panicking_waker_costs_no_hook_and_no_other_wake_up() {
    quiet_panics();
    let heap = Heap::new();
    let wrapper = heap.alloc("server");
    let weak = wrapper.downgrade();
    let core: Core = ServerCore::embedded(wrapper, Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let drain = core.stop();
    let bad = Arc::new(PanickyWaker {
        woken: AtomicUsize::new(0),
    });
    let good = Arc::new(PanickyWaker {
        woken: AtomicUsize::new(0),
    });
    let mut first = drain.clone();
    let mut second = drain.clone();
    let bad_waker = Waker::from(Arc::clone(&bad));
    assert!(Pin::new(&mut first)
        .poll(&mut Context::from_waker(&bad_waker))
        .is_pending());
    let hook_ran = Rc::new(Cell::new(false));
    let h = Rc::clone(&hook_ran);
    drain.on_complete(move || h.set(true));
    // The second waiter is a well-behaved task: count without panicking.
    let counting = Waker::from(Arc::new(Counting(Arc::clone(&good))));
    assert!(Pin::new(&mut second)
        .poll(&mut Context::from_waker(&counting))
        .is_pending());
    let escaped = catch_unwind(AssertUnwindSafe(move || bundle.complete()));
    assert!(drain.is_complete());
    assert_eq!(bad.woken.load(Ordering::SeqCst), 1);
    assert_eq!(
        good.woken.load(Ordering::SeqCst),
        1,
        "the other task was woken"
    );
    assert!(hook_ran.get(), "the drain hook ran");
    assert_eq!(heap.collect(), 1, "the OnDrain downgrade happened");
    assert!(weak.is_finalized());
    assert!(
        escaped.is_ok(),
        "the waker's panic escaped the last ticket's drop"
    );
}

struct Counting(Arc<PanickyWaker>);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.woken.fetch_add(1, Ordering::SeqCst);
    }
}

/// A handler panics while its bundle and a standalone ticket are live, and every user callback
/// on the way out panics too (listener, recycle, hook): the process is not aborted, every count
/// is right.
#[test]
fn a_handler_panic_with_every_callback_panicking_on_the_way_out() {
    quiet_panics();
    thread_local!(static ARMED: Cell<bool> = const { Cell::new(false) });
    #[derive(Default)]
    struct Bad;
    impl Recycle for Bad {
        fn recycle(&mut self) {
            if ARMED.with(Cell::get) {
                panic!("recycle panics");
            }
        }
    }
    let heap = Heap::new();
    let core = ServerCore::embedded_with_context::<Bad>(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let bundle = live.admit(|_| Ok(())).unwrap();
    bundle.signal().on_abort(|_| panic!("listener panics"));
    drop(live);
    let drain = core.stop();
    drain.on_complete(|| panic!("hook panics"));
    ARMED.with(|a| a.set(true));
    let unwound = catch_unwind(AssertUnwindSafe(move || {
        let _in_handler = bundle;
        panic!("handler panics");
    }));
    ARMED.with(|a| a.set(false));
    assert!(unwound.is_err());
    let report = drain.report();
    assert!(report.complete);
    assert_eq!(report.outcomes.dropped, 1);
    assert_eq!((report.panicked_listeners, report.panicked_hooks), (1, 1));
    assert_eq!(core.pool_metrics().recycle_panics, 1);
    core.ledger().assert_quiescent();
}

/// A context whose `Drop` panics, spilled to the heap (the pool was exhausted): freeing it is
/// user code run inside the bundle's release. The request must still end (outcome counted,
/// drain complete, ledger clean), as it does when `recycle` panics.
#[test]
fn a_spilled_context_whose_drop_panics_still_ends_its_request() {
    quiet_panics();
    #[derive(Default)]
    struct Brittle;
    impl Drop for Brittle {
        fn drop(&mut self) {
            panic!("the context's drop panics");
        }
    }
    impl Recycle for Brittle {
        fn recycle(&mut self) {}
    }
    let heap = Heap::new();
    let config = Config::default()
        .with_pool_capacity(0)
        .unwrap()
        .with_exhaustion(Exhaustion::Spill);
    let core = ServerCore::embedded_with_context::<Brittle>(heap.alloc("server"), config);
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    assert!(bundle.is_spilled());
    let drain = core.stop();
    let escaped = catch_unwind(AssertUnwindSafe(move || bundle.complete()));
    assert_eq!(core.ledger().outcomes().completed, 1, "the request ended");
    assert!(drain.is_complete(), "the drain completed");
    core.ledger().assert_quiescent();
    assert_eq!(core.pool_metrics().in_use, 0);
    assert!(escaped.is_ok(), "the context's panic escaped the bundle");
}
