//! Hostile-embedder probes of the drain and the `OnDrain` promise (G5, hole 2): "the server
//! core lives until the drain completes", "with `DowngradePolicy::OnDrain` the wrapper stays
//! strong until the requests still out have ended, whatever is dropped first". Every order of
//! dropping the core, the drain handle, an admitted bundle and a saved ticket is tried, with a
//! collection after each step, and with and without an explicit `stop()`.

use std::any::Any;
use std::cell::Cell;
use std::rc::Rc;

use reqguard::engines::{Embedded, Heap};
use reqguard::{AbortReason, Config, DowngradePolicy, GuardKind, RefusalReason, ServerCore};

type Core = ServerCore<Embedded<&'static str>>;

/// One of the four things an embedder holds while a request is out; dropping it is the test.
struct Held {
    _thing: Box<dyn Any>,
    /// Whether it keeps a request out (a bundle, a saved ticket).
    request: bool,
}

fn held(thing: impl Any, request: bool) -> Option<Held> {
    Some(Held {
        _thing: Box::new(thing),
        request,
    })
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            all.push(p);
        }
    }
    all
}

/// Every drop order of {core, drain handle, bundle, saved ticket}, with a collection after each
/// drop: the wrapper is never finalized while a request is out, it is collectable once none
/// is, the hooks run exactly once, and the outcome is counted once.
#[test]
fn on_drain_holds_for_every_drop_order() {
    let orders = permutations(4);
    assert_eq!(orders.len(), 24);
    for explicit_stop in [true, false] {
        for order in &orders {
            let case = format!("stop={explicit_stop} order={order:?}");
            let heap = Heap::new();
            let wrapper = heap.alloc("server");
            let weak = wrapper.downgrade();
            let core: Core = ServerCore::embedded(wrapper, Config::default());
            let live = core.upgrade().unwrap();
            let bundle = live.admit(|_| Ok(())).unwrap();
            let saved = live.ticket().unwrap();
            drop(live);
            let hooks = Rc::new(Cell::new(0));
            let signal = bundle.signal().clone();
            let drain = if explicit_stop {
                let drain = core.stop();
                let h = Rc::clone(&hooks);
                drain.on_complete(move || h.set(h.get() + 1));
                Some(drain)
            } else {
                None
            };
            let mut held: Vec<Option<Held>> = vec![
                held(core, false),
                held(drain, false),
                held(bundle, true),
                held(saved, true),
            ];
            for &i in order {
                drop(held[i].take());
                let out = held.iter().flatten().any(|h| h.request);
                let collected = heap.collect();
                if out {
                    assert_eq!(collected, 0, "{case}: finalized with a request out");
                    assert!(!weak.is_finalized(), "{case}");
                }
            }
            heap.collect();
            assert!(weak.is_finalized(), "{case}: the wrapper was never let go");
            if explicit_stop {
                assert_eq!(hooks.get(), 1, "{case}: the drain hook ran once");
            }
            assert_eq!(signal.reason(), Some(AbortReason::Dropped), "{case}");
        }
    }
}

/// The drain's report stays readable through a handle that outlived the core, the bundle and
/// the wrapper, and it is the same report as before they went.
#[test]
fn a_drain_handle_outlives_everything_and_still_reports() {
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let drain = core.stop();
    drop(core);
    let mid = drain.report();
    assert!(!mid.complete);
    assert_eq!(drain.ledger().outstanding(GuardKind::Ticket), 1);
    bundle.complete();
    assert_eq!(heap.collect(), 1);
    let report = drain.report();
    assert!(report.complete && report.drain_time.is_some());
    assert_eq!(report.outcomes.completed, 1);
    assert!(report.outstanding.is_empty());
    assert!(drain.ledger().is_quiescent());
}

/// With `OnStop` the wrapper may be finalized mid-request (documented). The request in flight
/// still ends with its outcome and releases everything; a new request is refused with 503.
#[test]
fn on_stop_finalizes_mid_request_but_the_request_still_ends_cleanly() {
    let heap = Heap::new();
    let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
    let core: Core = ServerCore::embedded(heap.alloc("server"), config);
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let drain = core.stop();
    assert_eq!(heap.collect(), 1);
    assert!(core.upgrade().is_none());
    assert_eq!(
        core.with_live(|_| ()).unwrap_err().reason(),
        RefusalReason::WrapperFinalized
    );
    bundle.complete();
    assert!(drain.is_complete());
    assert_eq!(core.ledger().outcomes().completed, 1);
    core.ledger().assert_quiescent();
}

/// Dropping the core of a server that was never stopped, with nothing out: the wrapper is let
/// go at once (the drain completes at the implicit stop).
#[test]
fn dropping_an_idle_core_lets_the_wrapper_go() {
    for policy in [DowngradePolicy::OnDrain, DowngradePolicy::OnStop] {
        let heap = Heap::new();
        let wrapper = heap.alloc("server");
        let weak = wrapper.downgrade();
        let core: Core = ServerCore::embedded(wrapper, Config::default().with_downgrade(policy));
        drop(core);
        assert_eq!(heap.collect(), 1, "{policy:?}");
        assert!(weak.is_finalized());
    }
}

/// `stop()` many times and `drain()` from the core all name one drain: one completion, one
/// run of each hook, the same figures.
#[test]
fn every_drain_handle_is_the_same_drain() {
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    assert!(core.drain().is_none(), "no drain before stop");
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let first = core.stop();
    let second = core.stop();
    let third = core.drain().unwrap();
    let runs = Rc::new(Cell::new(0));
    for handle in [&first, &second, &third] {
        let r = Rc::clone(&runs);
        handle.on_complete(move || r.set(r.get() + 1));
    }
    drop(bundle);
    assert_eq!(runs.get(), 3);
    for handle in [&first, &second, &third] {
        assert!(handle.is_complete());
        assert_eq!(handle.drain_time(), first.drain_time());
        assert_eq!(handle.report().outcomes.dropped, 1);
    }
}
