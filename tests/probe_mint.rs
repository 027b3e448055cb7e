//! Hostile-embedder probes of G1 at run time: minting with another server's guard, with a proof
//! kept past its callback, after `stop()` and after the drain. The docs promise (CHANGELOG,
//! docs/design.md hole rows 1, 3, 6): a foreign ticket is refused (`OtherServer`) and sent home;
//! after `stop()` a kept proof mints nothing that is not tied to an already-admitted request.

use std::cell::RefCell;
use std::rc::Rc;

use reqguard::engines::{Embedded, Heap};
use reqguard::{
    Config, DowngradePolicy, Exhaustion, GuardKind, Live, Refusal, RefusalReason, ServerCore,
};

type Core = ServerCore<Embedded<&'static str>>;

fn minted(core: &Core) -> [u64; 4] {
    GuardKind::ALL.map(|k| core.ledger().minted(k))
}

/// A ticket of server `b`, in each state `b` can be in, handed to `a` (whose context type
/// differs): refused `OtherServer`; `a` mints nothing; `b`'s request ends (its drain completes).
#[test]
fn a_foreign_ticket_is_refused_in_every_state_of_its_server() {
    for state in ["running", "stopped", "collected", "core dropped"] {
        let heap = Heap::new();
        let a = ServerCore::embedded_with_context::<Vec<u8>>(heap.alloc("a"), Config::default());
        let config_b = Config::default().with_downgrade(DowngradePolicy::OnStop);
        let b: Core = ServerCore::embedded(heap.alloc("b"), config_b);
        let ticket_of_b = b.upgrade().unwrap().ticket().unwrap();
        let drain_b = (state != "running").then(|| b.stop());
        if state == "collected" || state == "core dropped" {
            heap.collect();
        }
        let b = (state != "core dropped").then_some(b);
        let before = GuardKind::ALL.map(|k| a.ledger().minted(k));
        let live_a = a.upgrade().unwrap();
        let refused = live_a.admit_with(ticket_of_b, |ctx| {
            ctx.push(1);
            Ok(())
        });
        assert_eq!(
            refused.unwrap_err().reason(),
            RefusalReason::OtherServer,
            "{state}"
        );
        assert_eq!(
            GuardKind::ALL.map(|k| a.ledger().minted(k)),
            before,
            "{state}"
        );
        a.ledger().assert_quiescent();
        assert_eq!(a.pool_metrics().in_use, 0);
        assert_eq!(a.ledger().outcomes().total(), 0);
        if let Some(drain) = drain_b {
            assert!(
                drain.is_complete(),
                "{state}: b's request went home and ended"
            );
            assert!(drain.ledger().is_quiescent(), "{state}");
        }
        if let Some(b) = b {
            b.ledger().assert_quiescent();
        }
    }
}

/// `Live::context` with a foreign ticket is refused the same way, and a refusal that consumes
/// it sends it home too.
#[test]
fn a_foreign_ticket_for_a_context_is_refused_and_sent_home() {
    let heap = Heap::new();
    let a: Core = ServerCore::embedded(heap.alloc("a"), Config::default());
    let b: Core = ServerCore::embedded(heap.alloc("b"), Config::default());
    let live_a = a.upgrade().unwrap();
    let refused = live_a.context(b.upgrade().unwrap().ticket().unwrap());
    assert_eq!(refused.unwrap_err().reason(), RefusalReason::OtherServer);
    let saved = b.upgrade().unwrap().ticket().unwrap();
    let drain_b = b.stop();
    assert!(!drain_b.is_complete());
    let _ = Refusal::WRAPPER_FINALIZED.consume(saved);
    assert!(drain_b.is_complete());
    a.ledger().assert_quiescent();
    b.ledger().assert_quiescent();
}

/// A proof kept past its callback (through the outer borrow of the core, which compiles) mints
/// nothing new after `stop()`, nor after the drain; the ledger's minted counts do not move.
#[test]
fn a_kept_proof_mints_nothing_after_stop_nor_after_the_drain() {
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let mut kept: Vec<Live<'_, Embedded<&'static str>>> = Vec::new();
    core.with_live(|_| kept.push(core.upgrade().unwrap()))
        .unwrap();
    let proof = kept.pop().unwrap();
    let mut bundle = Some(proof.admit(|_| Ok(())).unwrap());
    let drain = core.stop();
    for phase in ["stopped", "drained"] {
        let before = minted(&core);
        assert_eq!(
            proof.ticket().unwrap_err().reason(),
            RefusalReason::Stopped,
            "{phase}"
        );
        assert_eq!(
            proof.request(1u8).unwrap_err().reason(),
            RefusalReason::Stopped
        );
        assert_eq!(
            proof.admit(|_| Ok(())).unwrap_err().reason(),
            RefusalReason::Stopped,
            "{phase}"
        );
        assert_eq!(minted(&core), before, "{phase}: something was minted");
        if let Some(bundle) = bundle.take() {
            bundle.end(reqguard::Outcome::ForceClosed);
            assert!(drain.is_complete());
            assert!(drain.report().outstanding.is_empty());
        }
    }
    core.ledger().assert_quiescent();
    assert_eq!(core.ledger().outcomes().force_closed, 1);
}

/// A core leaked to `'static` gives a `Live<'static>` that can be stored across callbacks in
/// a thread-local (docs/design.md: safe, but do not): after `stop()` it mints nothing.
#[test]
fn a_static_proof_in_a_thread_local_mints_nothing_after_stop() {
    thread_local! {
        static KEPT: RefCell<Option<Live<'static, Embedded<&'static str>>>> =
            const { RefCell::new(None) };
    }
    let heap = Heap::new();
    let core: &'static Core = Box::leak(Box::new(ServerCore::embedded(
        heap.alloc("server"),
        Config::default(),
    )));
    KEPT.with(|k| *k.borrow_mut() = core.upgrade());
    let drain = core.stop();
    assert!(drain.is_complete());
    KEPT.with(|k| {
        let kept = k.borrow();
        let proof = kept.as_ref().unwrap();
        assert!(proof.ticket().is_err());
        assert!(proof.admit(|_| Ok(())).is_err());
        assert!(proof.request(()).is_err());
    });
    core.ledger().assert_quiescent();
    KEPT.with(|k| k.borrow_mut().take());
}

/// What a kept proof may still do after `stop()` is tied to an admitted request: a saved
/// ticket becomes a bundle (`admit_with`) or a context (`Live::context`), and the drain waits
/// for it. When `build` or the pool refuses, the saved request ends and the drain completes.
#[test]
fn after_stop_only_saved_requests_are_served_and_their_refusals_end_them() {
    let heap = Heap::new();
    let config = Config::default()
        .with_pool_capacity(1)
        .unwrap()
        .with_exhaustion(Exhaustion::Refuse);
    let core: Core = ServerCore::embedded(heap.alloc("server"), config);
    let live = core.upgrade().unwrap();
    let saved: Vec<_> = (0..4).map(|_| live.ticket().unwrap()).collect();
    let mut saved = saved.into_iter();
    let drain = core.stop();
    assert_eq!(drain.outstanding(), 4);
    // Served after stop: it was admitted before.
    let bundle = live.admit_with(saved.next().unwrap(), |_| Ok(())).unwrap();
    // The pool (capacity 1) refuses the next one: the saved request ends.
    let refused = live.admit_with(saved.next().unwrap(), |_| Ok(()));
    assert_eq!(refused.unwrap_err().reason(), RefusalReason::PoolExhausted);
    assert_eq!(drain.outstanding(), 3);
    bundle.complete();
    // `build` refuses: the saved request ends without an outcome.
    let refused = live.admit_with::<()>(saved.next().unwrap(), |_| {
        Err(Refusal::new(RefusalReason::Engine("x")))
    });
    assert_eq!(refused.unwrap_err().status(), 500);
    assert_eq!(drain.outstanding(), 1);
    let context = live.context(saved.next().unwrap()).unwrap();
    assert!(!drain.is_complete());
    drop(context);
    assert!(drain.is_complete());
    assert_eq!(
        core.ledger().outcomes().total(),
        1,
        "only the admitted bundle has an outcome"
    );
    core.ledger().assert_quiescent();
    assert_eq!(core.pool_metrics().in_use, 0);
}

/// Signals minted by a kept proof after the drain are not guards: they hold nothing and keep
/// nothing out (the ledger and the drain do not move), even with listeners attached.
#[test]
fn a_signal_minted_after_the_drain_holds_nothing() {
    let heap = Heap::new();
    let core: Core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let drain = core.stop();
    let signal = live.signal();
    let fired = Rc::new(RefCell::new(0));
    let f = Rc::clone(&fired);
    signal.on_abort(move |_| *f.borrow_mut() += 1);
    assert!(!signal.has_pending_activity());
    assert!(
        drain.escalate().aborted_signals == 0,
        "not pending: not the deadline's business"
    );
    assert_eq!(*fired.borrow(), 0);
    assert!(drain.is_complete());
    core.ledger().assert_quiescent();
}
