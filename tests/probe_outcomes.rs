//! Hostile-embedder probes of G8 (one outcome per admitted request) against the public API:
//! exactly one outcome per bundle, the abort fires exactly once for every outcome but
//! `Completed` and never for `Completed`, and the counts agree across `Ledger::outcomes`,
//! `DrainReport` and the drain's own figures. Written from the docs (crate docs step 6,
//! `docs/design.md` outcome table), not from the implementation.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use reqguard::engines::{Embedded, Heap};
use reqguard::{
    AbortReason, Admitted, Config, DrainStatus, GuardKind, Outcome, OutcomeCounts, Refusal,
    RefusalReason, ServerCore,
};

type Core = ServerCore<Embedded<&'static str>>;
type Fired = Rc<RefCell<Vec<AbortReason>>>;
/// A name, a way to end a bundle, the abort it must fire, and the outcome it must count.
type Ending = (
    &'static str,
    fn(Admitted<(), ()>),
    Option<AbortReason>,
    Outcome,
);

fn core(heap: &Heap) -> Core {
    ServerCore::embedded(heap.alloc("server"), Config::default())
}

/// Admits one request and records every abort of its signal.
fn admit_watched(core: &Core) -> (Admitted<(), ()>, Fired) {
    let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    let fired: Fired = Rc::default();
    let seen = Rc::clone(&fired);
    assert!(bundle
        .signal()
        .on_abort(move |reason| seen.borrow_mut().push(reason)));
    (bundle, fired)
}

fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// Every way a stack can end a request, the abort it must fire (none for `Completed`), and
/// the outcome that must be counted.
#[test]
fn each_ending_fires_its_abort_exactly_once_and_completed_never() {
    let heap = Heap::new();
    let core = core(&heap);
    let endings: [Ending; 7] = [
        ("complete", |b| b.complete(), None, Outcome::Completed),
        (
            "end(Completed)",
            |b| b.end(Outcome::Completed),
            None,
            Outcome::Completed,
        ),
        (
            "end(ClientGone)",
            |b| b.end(Outcome::ClientGone),
            Some(AbortReason::ClientDisconnected),
            Outcome::ClientGone,
        ),
        (
            "end(ForceClosed)",
            |b| b.end(Outcome::ForceClosed),
            Some(AbortReason::ForceClosed),
            Outcome::ForceClosed,
        ),
        (
            "end(Dropped)",
            |b| b.end(Outcome::Dropped),
            Some(AbortReason::Dropped),
            Outcome::Dropped,
        ),
        (
            "end(DeadlineAborted)",
            |b| b.end(Outcome::DeadlineAborted),
            Some(AbortReason::DrainDeadline),
            Outcome::DeadlineAborted,
        ),
        ("drop", drop, Some(AbortReason::Dropped), Outcome::Dropped),
    ];
    for (name, end, abort, outcome) in endings {
        let before = core.ledger().outcomes();
        let (bundle, fired) = admit_watched(&core);
        let signal = bundle.signal().clone();
        end(bundle);
        assert_eq!(
            *fired.borrow(),
            abort.into_iter().collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(signal.reason(), abort, "{name}");
        let after = core.ledger().outcomes();
        assert_eq!(after.total(), before.total() + 1, "{name}: one outcome");
        assert_eq!(after.count(outcome), before.count(outcome) + 1, "{name}");
        // An aborted signal is not aborted again by anything.
        if abort.is_some() {
            assert!(!signal.abort(AbortReason::Other("late")), "{name}");
            assert_eq!(fired.borrow().len(), 1, "{name}");
        }
    }
    core.ledger().assert_quiescent();
}

/// The first cause wins, for every reason user code or the stack can abort with before the
/// request ends, whatever ending follows; the listener still runs once.
#[test]
fn an_earlier_abort_decides_the_outcome_whatever_ends_the_bundle() {
    let heap = Heap::new();
    let core = core(&heap);
    let reasons = [
        (AbortReason::ClientDisconnected, Outcome::ClientGone),
        (AbortReason::DrainDeadline, Outcome::DeadlineAborted),
        (AbortReason::ForceClosed, Outcome::ForceClosed),
        (AbortReason::Dropped, Outcome::Dropped),
        (AbortReason::HandlerFailed, Outcome::Dropped),
        (AbortReason::Other("user"), Outcome::Dropped),
    ];
    let endings: [fn(Admitted<(), ()>); 4] = [
        |b| b.complete(),
        |b| b.end(Outcome::ClientGone),
        |b| b.end(Outcome::ForceClosed),
        drop,
    ];
    let mut expected = OutcomeCounts::default();
    for (reason, outcome) in reasons {
        for end in endings {
            let (bundle, fired) = admit_watched(&core);
            assert!(bundle.signal().abort(reason));
            end(bundle);
            assert_eq!(*fired.borrow(), vec![reason], "fired once, first reason");
            match outcome {
                Outcome::ClientGone => expected.client_gone += 1,
                Outcome::DeadlineAborted => expected.deadline_aborted += 1,
                Outcome::ForceClosed => expected.force_closed += 1,
                _ => expected.dropped += 1,
            }
        }
    }
    assert_eq!(core.ledger().outcomes(), expected);
    core.ledger().assert_quiescent();
}

/// G8: "never for completed". A request that completed while native work still holds an
/// activity ref on its signal (taken with `Admitted::activity_ref`, documented for "a pending
/// body read, a timer") must not have its signal fired later by the drain deadline, which is
/// there for the requests still out.
#[test]
fn the_deadline_never_fires_a_completed_requests_signal() {
    let heap = Heap::new();
    let core = core(&heap);
    let (done, done_fired) = admit_watched(&core);
    let still_reading = done.activity_ref(); // e.g. a body read finishing after the answer
    done.complete();
    let (out, out_fired) = admit_watched(&core);
    let drain = core.stop();
    let report = drain.escalate();
    assert_eq!(*out_fired.borrow(), vec![AbortReason::DrainDeadline]);
    assert_eq!(
        *done_fired.borrow(),
        Vec::<AbortReason>::new(),
        "a completed request's abort fired"
    );
    assert_eq!(report.aborted_signals, 1, "only the request still out");
    drop((out, still_reading));
    let outcomes = drain.report().outcomes;
    assert_eq!((outcomes.completed, outcomes.deadline_aborted), (1, 1));
}

/// After a deadline escalation, every later report of the drain (a later poll, `report()`, the
/// awaited report) still shows what the deadline did: `aborted_signals` counts what *that*
/// call aborted (documented on the field), and `outcomes.deadline_aborted` keeps the total.
#[test]
fn after_escalation_the_reports_keep_the_deadlines_total_in_the_outcomes() {
    let heap = Heap::new();
    let core = core(&heap);
    let (a, _) = admit_watched(&core);
    let (b, _) = admit_watched(&core);
    let mut drain = core.stop();
    let now = Instant::now();
    drain.set_deadline(now + Duration::from_millis(10));
    assert!(matches!(poll_once(&mut drain), Poll::Pending));
    let DrainStatus::Expired(expired) = drain.poll_deadline(now + Duration::from_millis(20)) else {
        panic!("expected expiry");
    };
    assert_eq!(expired.aborted_signals, 2);
    let DrainStatus::Expired(later) = drain.poll_deadline(now + Duration::from_millis(30)) else {
        panic!("still out");
    };
    assert_eq!(later.aborted_signals, 0, "escalation runs once");
    drop((a, b));
    let Poll::Ready(awaited) = poll_once(&mut drain) else {
        panic!("drain completes when the aborted requests let go");
    };
    for report in [awaited, drain.report()] {
        assert!(report.complete);
        assert_eq!(report.aborted_signals, 0, "per call, as documented");
        assert_eq!(report.outcomes.deadline_aborted, 2, "the total");
        assert_eq!(report.outcomes.total(), 2);
    }
}

/// When the abort itself lets the last handlers go, `poll_deadline` says `Complete`; the
/// escalation is still visible afterwards in the outcomes.
#[test]
fn an_escalation_that_completes_the_drain_is_still_counted() {
    let heap = Heap::new();
    let core = core(&heap);
    for _ in 0..3 {
        let (bundle, _) = admit_watched(&core);
        let slot: Rc<RefCell<Option<Admitted<(), ()>>>> = Rc::default();
        let own = Rc::clone(&slot);
        // The handler lets go when aborted: the listener drops its own bundle (a cycle through
        // the signal that only the abort breaks).
        bundle
            .signal()
            .on_abort(move |_| drop(own.borrow_mut().take()));
        *slot.borrow_mut() = Some(bundle);
    }
    let drain = core.stop();
    let now = Instant::now();
    drain.set_deadline(now);
    assert_eq!(drain.poll_deadline(now), DrainStatus::Complete);
    let report = drain.report();
    assert!(report.complete);
    assert_eq!(report.outcomes.deadline_aborted, 3);
    assert_eq!(report.outcomes.total(), 3);
    core.ledger().assert_quiescent();
}

/// A refusal is not an admitted request, whichever step refused or panicked: no outcome, no
/// abort, nothing held.
#[test]
fn refused_or_panicking_admissions_have_no_outcome_and_hold_nothing() {
    std::panic::set_hook(Box::new(|_| {}));
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let refused = live.admit::<()>(|_| Err(Refusal::new(RefusalReason::Engine("boom"))));
    assert_eq!(refused.unwrap_err().status(), 500);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        live.admit::<()>(|_| panic!("build panics"))
    }));
    assert!(panicked.is_err());
    let _ = std::panic::take_hook();
    assert_eq!(core.ledger().outcomes().total(), 0);
    core.ledger().assert_quiescent();
    assert_eq!(core.pool_metrics().in_use, 0);
}

/// `Admitted::forget` is the named leak: no outcome, and the ledger names every guard of the
/// bundle; the drain stays incomplete and says what is out.
#[test]
fn a_forgotten_bundle_has_no_outcome_and_the_ledger_names_it() {
    let heap = Heap::new();
    let core = core(&heap);
    let (bundle, fired) = admit_watched(&core);
    Admitted::forget(bundle);
    let drain = core.stop();
    assert!(!drain.is_complete());
    assert_eq!(core.ledger().outcomes().total(), 0);
    for kind in GuardKind::ALL {
        assert_eq!(core.ledger().outstanding(kind), 1, "{kind:?}");
    }
    let report = drain.escalate();
    assert!(!report.complete);
    assert_eq!(report.aborted_signals, 1);
    assert_eq!(*fired.borrow(), vec![AbortReason::DrainDeadline]);
    assert!(
        report.to_string().contains("was never released"),
        "{report}"
    );
}

/// Over a long mixed run, outcomes sum to the bundles admitted, per kind, and the ledger,
/// `DrainReport::outcomes` and the awaited report agree.
#[test]
fn outcomes_sum_to_admitted_bundles_over_a_mixed_run() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let mut expected = OutcomeCounts::default();
    let mut held = Vec::new();
    let mut aborts = 0u64;
    for i in 0..600u32 {
        let bundle = live.admit(|_| Ok(i)).unwrap();
        let counter = Rc::new(Cell::new(0));
        let c = Rc::clone(&counter);
        bundle.signal().on_abort(move |_| c.set(c.get() + 1));
        match i % 6 {
            0 => {
                bundle.complete();
                expected.completed += 1;
            }
            1 => {
                bundle.end(Outcome::ClientGone);
                expected.client_gone += 1;
            }
            2 => {
                bundle.end(Outcome::ForceClosed);
                expected.force_closed += 1;
            }
            3 => {
                drop(bundle);
                expected.dropped += 1;
            }
            _ => held.push((bundle, counter.clone())),
        }
        if i % 6 < 4 {
            aborts += counter.get();
        }
    }
    assert_eq!(aborts, expected.total() - expected.completed);
    drop(live);
    let mut drain = core.stop();
    let report = drain.escalate();
    assert_eq!(report.aborted_signals, held.len());
    for (bundle, counter) in held {
        bundle.complete(); // too late: the deadline decided
        assert_eq!(counter.get(), 1);
        expected.deadline_aborted += 1;
    }
    let Poll::Ready(awaited) = poll_once(&mut drain) else {
        panic!("complete");
    };
    assert_eq!(awaited.outcomes, expected);
    assert_eq!(core.ledger().outcomes(), expected);
    assert_eq!(core.ledger().outcomes().total(), 600);
    core.ledger().assert_quiescent();
}
