//! QA probes, round 25 (scratch).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use reqguard::engines::Heap;
use reqguard::{
    AbortReason, Config, DowngradePolicy, DrainStatus, Engine, Outcome, Recycle, ServerCore,
};

thread_local! {
    static ON_CLONE: RefCell<Option<Box<dyn Fn()>>> = RefCell::new(None);
}

/// A strong handle whose `Clone` runs a callback of the embedder's (an engine that does
/// bookkeeping on every new reference).
struct Noisy(Rc<()>);

impl Clone for Noisy {
    fn clone(&self) -> Self {
        let hook = ON_CLONE.with(|h| h.borrow_mut().take());
        if let Some(hook) = hook {
            hook();
        }
        Noisy(Rc::clone(&self.0))
    }
}

struct NoisyEngine;

impl Engine for NoisyEngine {
    type Strong = Noisy;
    type Weak = std::rc::Weak<()>;
    type Scope<'s> = ();

    fn downgrade(_: &mut (), strong: &Noisy) -> Self::Weak {
        Rc::downgrade(&strong.0)
    }

    fn upgrade(_: &mut (), weak: &Self::Weak) -> Option<Noisy> {
        weak.upgrade().map(Noisy)
    }
}

fn on_next_clone(hook: impl Fn() + 'static) {
    ON_CLONE.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
}

/// An engine whose strong handle's `Clone` (its code, run by every upgrade while the server
/// holds its wrapper) stops the server, directly or from an upgrade of its own: the stop's
/// downgrade panicked "already borrowed" (the upgrade held the cell while cloning), was caught
/// and counted as a panicked hook, and the cell kept the wrapper strong for good, under both
/// policies: the wrapper was never let go (QA embed25-1). Now the upgrade yields its clone and
/// the cell lets its own handle go when the clone returns.
#[test]
fn a_strong_handle_whose_clone_stops_the_server_still_lets_the_wrapper_go() {
    for policy in [DowngradePolicy::OnStop, DowngradePolicy::OnDrain] {
        for nested in [false, true] {
            let wrapper = Rc::new(());
            let weak = Rc::downgrade(&wrapper);
            let core: Rc<ServerCore<NoisyEngine>> = Rc::new(ServerCore::new(
                &mut (),
                Noisy(wrapper),
                Config::default().with_downgrade(policy),
            ));
            let c = Rc::clone(&core);
            let stop = move || drop(c.stop());
            if nested {
                let c = Rc::clone(&core);
                on_next_clone(move || {
                    let stop = stop.clone();
                    on_next_clone(stop);
                    let inner = c.upgrade().expect("not finalized while an upgrade holds it");
                    assert!(inner.admit(|_| Ok(())).is_err(), "admitted after stop");
                });
            } else {
                on_next_clone(stop);
            }
            let live = core.upgrade().expect("strong when the upgrade began");
            assert!(live.admit(|_| Ok(())).is_err(), "admitted after stop");
            assert!(!core.wrapper().is_strong(), "{policy:?}: kept strong");
            assert_eq!(weak.strong_count(), 1, "only the proof holds it now");
            drop(live);
            assert!(core.upgrade().is_none(), "{policy:?}: the wrapper is gone");
            let drain = core.drain().expect("stopped");
            assert!(drain.is_complete());
            assert_eq!(drain.report().panicked_hooks, 0, "{policy:?}, nested {nested}");
            core.ledger().assert_quiescent();
            ON_CLONE.with(|h| h.borrow_mut().take());
        }
    }
}

thread_local! {
    static ON_RECYCLE: RefCell<Option<Box<dyn Fn()>>> = RefCell::new(None);
}

#[derive(Default)]
struct Ctx(u32);

impl Recycle for Ctx {
    fn recycle(&mut self) {
        self.0 = 0;
        let hook = ON_RECYCLE.with(|h| h.borrow_mut().take());
        if let Some(hook) = hook {
            hook();
        }
    }
}

/// `Recycle::recycle` of the last request's context admits another request, completes it, and
/// stops the server: every request one outcome, the drain complete once, hooks once.
#[test]
fn a_recycle_that_admits_and_stops() {
    let heap = Heap::new();
    let core = Rc::new(ServerCore::embedded_with_context::<Ctx>(
        heap.alloc("server"),
        Config::default().with_pool_capacity(1).unwrap(),
    ));
    let c = Rc::clone(&core);
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = Rc::clone(&log);
    ON_RECYCLE.with(|h| {
        *h.borrow_mut() = Some(Box::new(move || {
            let live = c.upgrade().unwrap();
            let inner = live.admit(|ctx| {
                ctx.0 = 7;
                Ok(())
            });
            l.borrow_mut().push(format!("inner admitted {}", inner.is_ok()));
            if let Ok(b) = inner {
                l.borrow_mut().push(format!("spilled {}", b.is_spilled()));
                b.complete();
            }
            drop(live);
            let drain = c.stop();
            let l2 = Rc::clone(&l);
            drain.on_complete(move || l2.borrow_mut().push("drained".into()));
            l.borrow_mut().push(format!("complete {}", drain.is_complete()));
        }));
    });
    let b = core.upgrade().unwrap().admit(|ctx| { ctx.0 = 1; Ok(()) }).unwrap();
    b.complete();
    println!("{:?}", log.borrow());
    assert_eq!(log.borrow().last().map(String::as_str), Some("drained"));
    let m = core.pool_metrics();
    println!("{m:?}");
    assert_eq!(m.in_use, 0);
    assert_eq!(core.ledger().outcomes().completed, 2);
    core.ledger().assert_quiescent();
}

/// A payload's `Drop` escalates the drain while its completed request is released.
#[test]
fn a_payload_drop_that_escalates() {
    struct Payload(Rc<RefCell<Option<reqguard::Drain>>>, Rc<Cell<usize>>);
    impl Drop for Payload {
        fn drop(&mut self) {
            if let Some(d) = self.0.borrow().as_ref() {
                self.1.set(d.escalate().aborted_signals);
            }
        }
    }
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let slot = Rc::new(RefCell::new(None));
    let aborted = Rc::new(Cell::new(99));
    let live = core.upgrade().unwrap();
    let a = live.admit(|_| Ok(Payload(Rc::clone(&slot), Rc::clone(&aborted)))).unwrap();
    let b = live.admit(|_| Ok(Payload(Rc::new(RefCell::new(None)), Rc::new(Cell::new(0))))).unwrap();
    let sa = a.signal().clone();
    let sb = b.signal().clone();
    drop(live);
    *slot.borrow_mut() = Some(core.stop());
    a.complete();
    assert_eq!(sa.reason(), None);
    assert_eq!(sb.reason(), Some(AbortReason::DrainDeadline));
    assert_eq!(aborted.get(), 1);
    b.complete();
    let o = core.ledger().outcomes();
    assert_eq!((o.completed, o.deadline_aborted), (1, 1));
    slot.borrow_mut().take();
    core.ledger().assert_quiescent();
    let _ = (Outcome::Completed, Instant::now(), DrainStatus::Complete);
}
