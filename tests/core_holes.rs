//! The ten run-time holes of issue 9, each reproduced against the public API the way a hostile
//! embedder would, and shown closed. Compile-time rules are in tests/ui (trybuild).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Instant;

use reqguard::engines::{Embedded, Heap};
use reqguard::{
    AbortReason, Config, ConfigError, DowngradePolicy, Exhaustion, GuardKind, Live, Recycle,
    RefusalReason, ServerCore,
};

type Core = ServerCore<Embedded<&'static str>>;

fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// Hole 1: a proof of server `a` mints nothing for server `b` (stopped, wrapper collected).
#[test]
fn hole_1_another_servers_proof_mints_nothing_for_it() {
    let heap = Heap::new();
    let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
    let a: Core = ServerCore::embedded(heap.alloc("a"), config);
    let b: Core = ServerCore::embedded(heap.alloc("b"), config);
    let ticket_of_b = b.upgrade().unwrap().ticket().unwrap();
    let drain_b = b.stop();
    heap.collect();
    let live_a = a.upgrade().unwrap();
    let refused = live_a.admit_with(ticket_of_b, |_| Ok(()));
    assert_eq!(refused.unwrap_err().reason(), RefusalReason::OtherServer);
    let c: Core = ServerCore::embedded(heap.alloc("c"), Config::default());
    let refused = live_a.context(c.upgrade().unwrap().ticket().unwrap());
    assert_eq!(refused.unwrap_err().reason(), RefusalReason::OtherServer);
    // The tickets went home: b's drain completed and every ledger is clean.
    assert!(drain_b.is_complete());
    for server in [&a, &b, &c] {
        server.ledger().assert_quiescent();
    }
    assert_eq!(a.pool_metrics().in_use, 0);
}

/// Hole 2: OnDrain holds for every drop order: dropping the core with a request out does not
/// let the collector finalize the wrapper mid-request.
#[test]
fn hole_2_on_drain_survives_dropping_the_core() {
    let heap = Heap::new();
    let wrapper = heap.alloc("server");
    let weak = wrapper.downgrade();
    let core: Core = ServerCore::embedded(wrapper, Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let drain = core.stop();
    drop(core);
    assert_eq!(heap.collect(), 0, "finalized mid-request");
    assert!(!weak.is_finalized());
    bundle.complete();
    assert!(drain.is_complete());
    assert_eq!(heap.collect(), 1, "collectable once the drain completed");
}

/// Hole 2, the other order: the core is dropped without `stop()` while a request is out.
#[test]
fn hole_2_dropping_an_unstopped_core_stops_it_and_keeps_the_wrapper() {
    let heap = Heap::new();
    let wrapper = heap.alloc("server");
    let weak = wrapper.downgrade();
    let core: Core = ServerCore::embedded(wrapper, Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    drop(core);
    assert_eq!(heap.collect(), 0);
    drop(bundle);
    assert_eq!(heap.collect(), 1);
    assert!(weak.is_finalized());
}

/// Hole 3: a proof kept past its callback mints nothing new after `stop()`.
#[test]
fn hole_3_a_kept_proof_mints_nothing_after_stop() {
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let mut kept: Vec<Live<'_, Embedded<&'static str>>> = Vec::new();
    core.with_live(|_live| kept.push(core.upgrade().unwrap()))
        .unwrap();
    let minted = GuardKind::ALL.map(|k| core.ledger().minted(k));
    let _drain = core.stop();
    let proof = &kept[0];
    assert_eq!(
        proof.request(()).unwrap_err().reason(),
        RefusalReason::Stopped
    );
    assert_eq!(proof.ticket().unwrap_err().reason(), RefusalReason::Stopped);
    assert!(proof.admit(|_| Ok(())).is_err());
    assert_eq!(GuardKind::ALL.map(|k| core.ledger().minted(k)), minted);
}

/// Hole 4: escalation aborts every signal even when a listener panics, and says how many did.
#[test]
fn hole_4_a_panicking_listener_does_not_end_escalation() {
    quiet_panics();
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let bundles: Vec<_> = (0..3).map(|_| live.admit(|_| Ok(())).unwrap()).collect();
    assert!(bundles[0].signal().on_abort(|_| panic!("listener panics")));
    let later_ran = Rc::new(Cell::new(0));
    for b in &bundles {
        let ran = Rc::clone(&later_ran);
        b.signal().on_abort(move |_| ran.set(ran.get() + 1));
    }
    let drain = core.stop();
    let now = Instant::now();
    drain.set_deadline(now);
    let reqguard::DrainStatus::Expired(report) = drain.poll_deadline(now) else {
        panic!("expired");
    };
    assert_eq!(report.aborted_signals, 3);
    assert_eq!(report.panicked_listeners, 1);
    assert_eq!(
        later_ran.get(),
        3,
        "the panicking listener's neighbours ran too"
    );
    for b in &bundles {
        assert_eq!(b.signal().reason(), Some(AbortReason::DrainDeadline));
    }
    drop(bundles);
    assert_eq!(drain.report().outcomes.deadline_aborted, 3);
}

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Hole 5: a panicking drain hook loses neither the other hooks nor the wake-ups, and a hook
/// that panics while a handler's panic unwinds does not abort the process.
#[test]
fn hole_5_a_panicking_drain_hook_loses_nothing_and_aborts_nothing() {
    quiet_panics();
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let drain = core.stop();
    let ran = Rc::new(Cell::new(0));
    drain.on_complete(|| panic!("hook panics"));
    let r = Rc::clone(&ran);
    drain.on_complete(move || r.set(r.get() + 1));
    let waker = Arc::new(CountingWaker::default());
    let mut waiting = drain.clone();
    let polled =
        Pin::new(&mut waiting).poll(&mut Context::from_waker(&Waker::from(Arc::clone(&waker))));
    assert!(polled.is_pending());
    // The last ticket drops while the handler's panic unwinds.
    let unwound = catch_unwind(AssertUnwindSafe(move || {
        let _held = bundle;
        panic!("handler panics");
    }));
    assert!(unwound.is_err());
    assert!(drain.is_complete());
    assert_eq!(ran.get(), 1, "the other hook ran");
    assert_eq!(
        waker.0.load(Ordering::SeqCst),
        1,
        "the waiting task was woken"
    );
    assert_eq!(drain.report().panicked_hooks, 1);
}

/// Hole 6: a stopped, drained server mints nothing, and its report's `complete` is honest.
#[test]
fn hole_6_a_drained_server_mints_nothing() {
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let drain = core.stop();
    assert!(drain.is_complete());
    assert!(live.request(()).is_err());
    assert!(live.ticket().is_err());
    assert!(live.admit(|_| Ok(())).is_err());
    let report = drain.report();
    assert!(report.complete && report.outstanding.is_empty());
    core.ledger().assert_quiescent();
}

thread_local! {
    static RECYCLE_PANICS: Cell<bool> = const { Cell::new(false) };
}

#[derive(Default)]
struct Fragile;

impl Recycle for Fragile {
    fn recycle(&mut self) {
        if RECYCLE_PANICS.with(Cell::get) {
            panic!("recycle panics");
        }
    }
}

/// Hole 7: a panicking `Recycle::recycle` costs no capacity.
#[test]
fn hole_7_a_panicking_recycle_costs_no_capacity() {
    quiet_panics();
    let heap = Heap::new();
    let config = Config::default()
        .with_pool_capacity(1)
        .unwrap()
        .with_exhaustion(Exhaustion::Refuse);
    let core = ServerCore::embedded_with_context::<Fragile>(heap.alloc("server"), config);
    let live = core.upgrade().unwrap();
    RECYCLE_PANICS.with(|p| p.set(true));
    live.admit(|_| Ok(())).unwrap().complete(); // recycle panics inside: caught
    RECYCLE_PANICS.with(|p| p.set(false));
    for _ in 0..3 {
        live.admit(|_| Ok(())).expect("capacity kept").complete();
    }
    let metrics = core.pool_metrics();
    assert_eq!((metrics.recycle_panics, metrics.refusals), (1, 0));
    assert_eq!(metrics.allocated, 1);
    core.ledger().assert_quiescent();
}

/// Hole 8: `let _ = bundle.activity_ref();` is harmless: the bundle keeps its own ref. (The
/// compile-time side, `#![deny(let_underscore_drop)]`, is tests/ui/let_underscore_activity_ref.)
#[test]
fn hole_8_an_immediately_dropped_activity_ref_is_useless_not_harmful() {
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    #[allow(let_underscore_drop)]
    let _ = bundle.activity_ref();
    assert!(
        bundle.signal().has_pending_activity(),
        "still found by escalation"
    );
    assert_eq!(core.stop().escalate().aborted_signals, 1);
    drop(bundle);
}

type Reenter = RefCell<Option<Box<dyn FnOnce()>>>;

thread_local! {
    static ON_DEFAULT: Reenter = const { RefCell::new(None) };
}

struct Touchy;

impl Default for Touchy {
    fn default() -> Self {
        if let Some(hook) = ON_DEFAULT.with(|h| h.borrow_mut().take()) {
            hook();
        }
        Touchy
    }
}

impl Recycle for Touchy {
    fn recycle(&mut self) {}
}

/// Hole 9: `C::default()` runs with the free list unborrowed: a `Default` that uses the pool
/// works, and no slot is lost.
#[test]
fn hole_9_a_default_that_touches_the_pool_works_and_loses_nothing() {
    let heap = Heap::new();
    let core = Rc::new(ServerCore::embedded_with_context::<Touchy>(
        heap.alloc("server"),
        Config::default().with_pool_capacity(4).unwrap(),
    ));
    let inner = Rc::clone(&core);
    ON_DEFAULT.with(|h| {
        *h.borrow_mut() = Some(Box::new(move || {
            inner
                .upgrade()
                .unwrap()
                .admit(|_| Ok(()))
                .unwrap()
                .complete();
        }))
    });
    core.upgrade()
        .unwrap()
        .admit(|_| Ok(()))
        .unwrap()
        .complete();
    let metrics = core.pool_metrics();
    assert_eq!((metrics.allocated, metrics.in_use), (2, 0));
    core.ledger().assert_quiescent();
}

/// Hole 10: an absurd capacity is an error, not a panic or an abort; capacity is reserved lazily.
#[test]
fn hole_10_an_absurd_capacity_is_an_error_and_nothing_is_reserved() {
    for absurd in [usize::MAX, 1 << 44, Config::MAX_POOL_CAPACITY + 1] {
        assert!(matches!(
            Config::default().with_pool_capacity(absurd),
            Err(ConfigError::PoolCapacityTooLarge { .. })
        ));
    }
    let heap = Heap::new();
    let config = Config::default()
        .with_pool_capacity(Config::MAX_POOL_CAPACITY)
        .unwrap();
    let core = ServerCore::embedded_with_context::<Vec<u8>>(heap.alloc("server"), config);
    core.upgrade()
        .unwrap()
        .admit(|_| Ok(()))
        .unwrap()
        .complete();
    assert_eq!(core.pool_metrics().allocated, 1);
}

/// Drain waiting like tokio-util: a handle registers one waker however often it is polled, and
/// dropping it deregisters the waker (no list that only grows).
#[test]
fn drain_waiters_deregister_when_dropped() {
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let drain = core.stop();
    let mut handles: Vec<_> = (0..50).map(|_| drain.clone()).collect();
    for handle in &mut handles {
        for _ in 0..3 {
            let waker = Waker::from(Arc::new(CountingWaker::default()));
            assert!(Pin::new(&mut *handle)
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
        }
    }
    assert_eq!(drain.waiters(), 50, "one per polled handle");
    drop(handles);
    assert_eq!(drain.waiters(), 0, "dropped handles deregistered");
    bundle.complete();
    assert!(drain.is_complete());
}
