//! Hostile-embedder probes of G6 and G9: `mem::forget` and `Rc` cycles caught by the ledger
//! (with the line that minted the guard in leak-check builds), and absurd `Config` values
//! (an error or a clamp, never a panic, an abort or a silent misbehaviour).

use std::cell::RefCell;
use std::rc::Rc;

use reqguard::engines::{Embedded, Heap};
use reqguard::{
    Admitted, Config, ConfigError, Exhaustion, GuardKind, Ledger, RefusalReason, ServerCore,
};

type Core = ServerCore<Embedded<&'static str>>;

fn core(heap: &Heap) -> Core {
    ServerCore::embedded(heap.alloc("server"), Config::default())
}

/// `mem::forget` of a bundle, an activity ref and a saved ticket: each is still counted, the
/// drain stays open, and the report names this file and the minting line.
#[test]
fn mem_forget_is_caught_with_the_minting_line() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let bundle_line = line!() + 1;
    let bundle = live.admit(|_| Ok(())).unwrap();
    let activity_line = line!() + 1;
    let activity = bundle.activity_ref();
    let ticket_line = line!() + 1;
    let ticket = live.ticket().unwrap();
    std::mem::forget(activity);
    std::mem::forget(ticket);
    std::mem::forget(bundle);
    let drain = core.stop();
    assert!(!drain.is_complete());
    assert_eq!(core.ledger().outstanding(GuardKind::Ticket), 2);
    assert_eq!(core.ledger().outstanding(GuardKind::Context), 1);
    assert_eq!(core.ledger().outstanding(GuardKind::ActivityRef), 2);
    assert_eq!(core.ledger().outstanding(GuardKind::Request), 1);
    let report = drain.report().to_string();
    assert!(report.starts_with("drain incomplete"), "{report}");
    if Ledger::tracks_sites() {
        for line in [bundle_line, activity_line, ticket_line] {
            let site = format!("tests/probe_ledger_config.rs:{line}");
            assert!(report.contains(&site), "{site} missing from:\n{report}");
        }
    }
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        core.ledger().assert_quiescent()
    }))
    .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("was never released") || message.contains("were never released"));
}

/// Two requests that keep each other alive through their abort listeners (an `Rc` cycle no
/// type prevents): the ledger sees both, the deadline breaks the cycle, each gets exactly one
/// outcome, the drain completes.
#[test]
fn an_rc_cycle_of_bundles_through_their_listeners_is_seen_then_broken_by_the_deadline() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let a = live.admit(|_| Ok(())).unwrap();
    let b = live.admit(|_| Ok(())).unwrap();
    let ran = Rc::new(RefCell::new(Vec::new()));
    let (ra, rb) = (Rc::clone(&ran), Rc::clone(&ran));
    let a_signal = a.signal().clone();
    a.signal().on_abort(move |reason| {
        ra.borrow_mut().push(("a", reason));
        drop(b);
    });
    a_signal.on_abort(move |reason| {
        rb.borrow_mut().push(("a2", reason));
    });
    // `b` is now owned by `a`'s listener; give `a` to a listener of `a`'s own signal: a cycle.
    let keep_a: Rc<RefCell<Option<Admitted<(), ()>>>> = Rc::new(RefCell::new(Some(a)));
    let ka = Rc::clone(&keep_a);
    a_signal.on_abort(move |_| drop(ka.borrow_mut().take()));
    drop(keep_a);
    drop(live);
    let drain = core.stop();
    assert_eq!(
        drain.outstanding(),
        2,
        "both requests are caught in the cycle"
    );
    let report = drain.escalate();
    assert!(drain.is_complete(), "{report}");
    let outcomes = core.ledger().outcomes();
    assert_eq!(outcomes.total(), 2, "{outcomes:?}");
    assert_eq!(ran.borrow().len(), 2);
    core.ledger().assert_quiescent();
}

/// Absurd pool capacities are refused with an error that says the limit; the limit itself
/// works and reserves nothing.
#[test]
fn absurd_capacities_are_errors_with_plain_words() {
    for absurd in [Config::MAX_POOL_CAPACITY + 1, 1 << 40, usize::MAX] {
        let err = Config::default().with_pool_capacity(absurd).unwrap_err();
        assert_eq!(
            err,
            ConfigError::PoolCapacityTooLarge {
                requested: absurd,
                max: Config::MAX_POOL_CAPACITY
            }
        );
        let words = err.to_string();
        assert!(words.contains(&absurd.to_string()), "{words}");
        assert!(
            words.contains(&Config::MAX_POOL_CAPACITY.to_string()),
            "{words}"
        );
    }
    let config = Config::default()
        .with_pool_capacity(Config::MAX_POOL_CAPACITY)
        .unwrap();
    let heap = Heap::new();
    let core = ServerCore::embedded_with_context::<Vec<u64>>(heap.alloc("s"), config);
    assert_eq!(
        core.pool_metrics().allocated,
        0,
        "nothing reserved up front"
    );
}

/// Prewarm past the capacity is clamped (in the getter and in what is allocated).
#[test]
fn prewarm_past_the_capacity_is_clamped() {
    let config = Config::default()
        .with_pool_capacity(8)
        .unwrap()
        .with_prewarm(usize::MAX);
    assert_eq!(config.prewarm(), 8);
    let heap = Heap::new();
    let core = ServerCore::embedded_with_context::<Vec<u8>>(heap.alloc("s"), config);
    assert_eq!(core.pool_metrics().allocated, 8);
    // Prewarm set before a smaller capacity is clamped too.
    let config = Config::default()
        .with_prewarm(1000)
        .with_pool_capacity(3)
        .unwrap();
    assert_eq!(config.prewarm(), 3);
}

/// A pool of capacity 0: `Refuse` refuses every request with 503 and holds nothing; `Spill`
/// serves every request from the heap. Neither panics nor leaks.
#[test]
fn a_zero_capacity_pool_refuses_or_spills_cleanly() {
    for exhaustion in [Exhaustion::Refuse, Exhaustion::Spill] {
        let heap = Heap::new();
        let config = Config::default()
            .with_pool_capacity(0)
            .unwrap()
            .with_exhaustion(exhaustion)
            .with_prewarm(5);
        let core = ServerCore::embedded_with_context::<String>(heap.alloc("s"), config);
        let live = core.upgrade().unwrap();
        for _ in 0..3 {
            let admitted = live.admit(|c| {
                c.push('x');
                Ok(())
            });
            match (exhaustion, admitted) {
                (Exhaustion::Refuse, Err(refusal)) => {
                    assert_eq!(refusal.reason(), RefusalReason::PoolExhausted);
                    assert_eq!(refusal.status(), 503);
                }
                (Exhaustion::Spill, Ok(bundle)) => {
                    assert!(bundle.is_spilled());
                    assert_eq!(bundle.context(), "x", "a fresh context every time");
                    bundle.complete();
                }
                (e, other) => panic!("{e:?}: {:?}", other.map(|_| ())),
            }
        }
        let metrics = core.pool_metrics();
        assert_eq!((metrics.allocated, metrics.in_use), (0, 0));
        core.ledger().assert_quiescent();
        assert!(core.stop().is_complete());
    }
}

/// Absurd deadlines: one in the past escalates at the first poll; polling with an instant
/// before `stop()` does not panic (no negative durations).
#[test]
fn absurd_deadlines_and_instants_do_not_panic() {
    use std::time::{Duration, Instant};
    let heap = Heap::new();
    let core = core(&heap);
    let earlier = Instant::now();
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    std::thread::sleep(Duration::from_millis(2));
    let drain = core.stop();
    drain.set_deadline(earlier);
    assert!(matches!(
        drain.poll_deadline(earlier),
        reqguard::DrainStatus::Expired(_)
    ));
    assert!(bundle.signal().is_aborted());
    drop(bundle);
    assert!(drain.drain_time().is_some());
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    drain.set_deadline(far);
    assert_eq!(drain.poll_deadline(far), reqguard::DrainStatus::Complete);
}
