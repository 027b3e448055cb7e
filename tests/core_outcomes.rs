//! G8: every admitted request ends with exactly one outcome, counted in the ledger and the
//! drain report; the abort signal fires once for every outcome but `Completed`, never for it.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use reqguard::engines::{Embedded, Heap};
use reqguard::{
    AbortReason, Admitted, Config, DrainStatus, Outcome, OutcomeCounts, Refusal, RefusalReason,
    ServerCore,
};

type Core = ServerCore<Embedded<&'static str>>;

fn core(heap: &Heap) -> Core {
    ServerCore::embedded(heap.alloc("server"), Config::default())
}

/// Admits a request whose signal records every listener run.
fn admit(core: &Core) -> (Admitted<(), ()>, Rc<RefCell<Vec<AbortReason>>>) {
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let log = Rc::clone(&fired);
    assert!(bundle.signal().on_abort(move |r| log.borrow_mut().push(r)));
    (bundle, fired)
}

#[test]
fn completed_never_fires_its_signal() {
    let heap = Heap::new();
    let core = core(&heap);
    let (bundle, fired) = admit(&core);
    bundle.complete();
    assert!(fired.borrow().is_empty());
    let expected = OutcomeCounts {
        completed: 1,
        ..OutcomeCounts::default()
    };
    assert_eq!(core.ledger().outcomes(), expected);
    core.ledger().assert_quiescent();
}

#[test]
fn each_ending_fires_once_with_the_reason_that_names_it() {
    let heap = Heap::new();
    let core = core(&heap);
    for (outcome, reason) in [
        (Outcome::ClientGone, AbortReason::ClientDisconnected),
        (Outcome::ForceClosed, AbortReason::ForceClosed),
        (Outcome::Dropped, AbortReason::Dropped),
    ] {
        let (bundle, fired) = admit(&core);
        let signal = bundle.signal().clone();
        bundle.end(outcome);
        assert_eq!(*fired.borrow(), [reason], "{outcome}");
        assert!(!signal.abort(AbortReason::Other("again")), "fired once");
        assert_eq!(core.ledger().outcomes().count(outcome), 1, "{outcome}");
    }
    assert_eq!(core.ledger().outcomes().total(), 3);
    core.ledger().assert_quiescent();
}

#[test]
fn a_dropped_bundle_fires_dropped_on_return_and_on_panic() {
    let heap = Heap::new();
    let core = core(&heap);
    let (bundle, fired) = admit(&core);
    let early_return = |_b: Admitted<(), ()>| -> Result<(), Refusal> {
        Err(Refusal::new(RefusalReason::Engine("handler threw")))
    };
    assert!(early_return(bundle).is_err());
    assert_eq!(*fired.borrow(), [AbortReason::Dropped]);

    let (bundle, fired) = admit(&core);
    let unwound = catch_unwind(AssertUnwindSafe(move || {
        let _held = bundle;
        panic!("handler panicked");
    }));
    assert!(unwound.is_err());
    assert_eq!(*fired.borrow(), [AbortReason::Dropped]);
    assert_eq!(core.ledger().outcomes().dropped, 2);
    core.ledger().assert_quiescent();
}

#[test]
fn the_drain_deadline_decides_first_whatever_the_stack_calls_later() {
    let heap = Heap::new();
    let core = core(&heap);
    let (completed_late, fired_a) = admit(&core);
    let (gone_late, fired_b) = admit(&core);
    let drain = core.stop();
    let start = Instant::now();
    drain.set_deadline(start);
    let DrainStatus::Expired(report) = drain.poll_deadline(start + Duration::from_millis(1)) else {
        panic!("the deadline passed with two requests out");
    };
    assert_eq!(report.aborted_signals, 2);
    completed_late.complete();
    gone_late.end(Outcome::ClientGone);
    assert_eq!(*fired_a.borrow(), [AbortReason::DrainDeadline]);
    assert_eq!(*fired_b.borrow(), [AbortReason::DrainDeadline]);
    let report = drain.report();
    assert!(report.complete);
    assert_eq!(
        report.outcomes,
        OutcomeCounts {
            deadline_aborted: 2,
            ..OutcomeCounts::default()
        }
    );
}

#[test]
fn a_refusal_is_not_an_admitted_request() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let refused = live.admit(|_| -> Result<(), Refusal> {
        Err(Refusal::new(RefusalReason::PayloadTooLarge { limit: 1 }))
    });
    assert_eq!(refused.unwrap_err().status(), 413);
    assert_eq!(core.ledger().outcomes().total(), 0);
    core.ledger().assert_quiescent();
}

#[test]
fn one_outcome_per_admitted_request_over_a_mixed_run() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let mut admitted = 0;
    for i in 0..40u64 {
        let bundle = live.admit(|_| Ok(i)).unwrap();
        admitted += 1;
        match i % 4 {
            0 => bundle.complete(),
            1 => bundle.end(Outcome::ClientGone),
            2 => bundle.end(Outcome::Completed),
            _ => drop(bundle),
        }
    }
    let counts = core.ledger().outcomes();
    assert_eq!(counts.total(), admitted);
    assert_eq!(
        (counts.completed, counts.client_gone, counts.dropped),
        (20, 10, 10)
    );
    let report = core.stop().report();
    assert_eq!(report.outcomes, counts);
}
