//! The ledger's words (G6) for what no type rules out: a stuck drain, `mem::forget`, an `Rc`
//! cycle. The expected mint sites are computed with `line!()`.
//!
//! Mint sites are recorded in debug builds and with the `leak-check` feature; in a plain release
//! build the same tests check the site-less wording.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use reqguard::engines::{Embedded, Heap};
use reqguard::{
    ActivityRef, Config, DowngradePolicy, GuardKind, Ledger, PendingTicket, RefusalReason,
    RequestContext, RequestObject, ServerCore,
};

type Core = ServerCore<Embedded<&'static str>, Vec<u8>>;

fn core(heap: &Heap) -> Core {
    ServerCore::embedded_with_context::<Vec<u8>>(
        heap.alloc("server"),
        Config::default().with_downgrade(DowngradePolicy::OnStop),
    )
}

/// "N <kind(s)> minted at tests/core_ledger.rs:LINE was/were never released", or the site-less
/// wording when this build records no sites.
fn words(count: usize, kind: GuardKind, line: u32) -> String {
    let verb = if count == 1 { "was" } else { "were" };
    if Ledger::tracks_sites() {
        format!(
            "{count} {} minted at {}:{line} {verb} never released",
            kind.noun(count),
            file!()
        )
    } else {
        format!(
            "{count} {} {verb} never released (build with debug assertions or the `leak-check` \
             feature to see where)",
            kind.noun(count)
        )
    }
}

#[test]
fn a_stuck_drain_names_the_ticket_and_where_it_was_minted() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let line = line!() + 1;
    let ticket = live.ticket().unwrap();
    drop(live);
    let drain = core.stop();
    assert!(!drain.is_complete());

    let expected = words(1, GuardKind::Ticket, line);
    assert_eq!(core.ledger().report().to_string(), expected);
    assert_eq!(
        drain.report().to_string(),
        format!("drain incomplete:\n{expected}")
    );
    if Ledger::tracks_sites() {
        assert_eq!(
            expected,
            format!(
                "1 pending-request ticket minted at tests/core_ledger.rs:{line} was never released"
            )
        );
    }

    // assert_quiescent panics with the same words.
    let panic = catch_unwind(AssertUnwindSafe(|| core.ledger().assert_quiescent())).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert_eq!(*message, format!("ledger is not quiescent:\n{expected}"));

    drop(ticket);
    assert!(drain.is_complete());
    assert_eq!(
        core.ledger().report().to_string(),
        "no guard is outstanding"
    );
}

#[test]
fn mem_forget_of_a_whole_bundle_is_reported_per_kind_at_the_admit_site() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let line = line!() + 1;
    let bundle = live.admit(|ctx| Ok(ctx.len())).unwrap();
    std::mem::forget(bundle);
    let expected = [
        GuardKind::Ticket,
        GuardKind::Context,
        GuardKind::ActivityRef,
        GuardKind::Request,
    ]
    .map(|k| words(1, k, line))
    .join("\n");
    assert_eq!(core.ledger().report().to_string(), expected);
    assert_eq!(core.ledger().total_outstanding(), 4);
    drop(live);
    assert!(
        !core.stop().is_complete(),
        "a forgotten ticket holds the drain forever"
    );
}

#[test]
fn the_named_escape_hatches_are_reported_like_mem_forget() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let bundle = live.admit(|_| Ok(())).unwrap();
    let signal = bundle.signal().clone();
    let ticket_line = line!() + 1;
    PendingTicket::forget(live.ticket().unwrap());
    let context_line = line!() + 1;
    let context = live.context(live.ticket().unwrap()).unwrap();
    RequestContext::forget(context);
    let ref_line = line!() + 1;
    ActivityRef::forget(bundle.activity_ref());
    bundle.complete();
    let request_line = line!() + 1;
    RequestObject::forget(live.request(()).unwrap());
    let expected = if Ledger::tracks_sites() {
        [
            words(1, GuardKind::Ticket, ticket_line),
            words(1, GuardKind::Ticket, context_line),
            words(1, GuardKind::Context, context_line),
            words(1, GuardKind::ActivityRef, ref_line),
            words(1, GuardKind::Request, request_line),
        ]
        .join("\n")
    } else {
        // Without sites, the two tickets are one line.
        [
            words(2, GuardKind::Ticket, 0),
            words(1, GuardKind::Context, 0),
            words(1, GuardKind::ActivityRef, 0),
            words(1, GuardKind::Request, 0),
        ]
        .join("\n")
    };
    assert_eq!(core.ledger().report().to_string(), expected);
    assert!(
        signal.has_pending_activity(),
        "a forgotten ref keeps the signal busy"
    );
}

#[test]
fn tickets_caught_in_an_rc_cycle_are_reported_together() {
    struct Node {
        _ticket: PendingTicket,
        next: RefCell<Option<Rc<Node>>>,
    }
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let mut nodes = Vec::new();
    let line = line!() + 2;
    for _ in 0..2 {
        let ticket = live.ticket().unwrap();
        nodes.push(Rc::new(Node {
            _ticket: ticket,
            next: RefCell::new(None),
        }));
    }
    *nodes[0].next.borrow_mut() = Some(Rc::clone(&nodes[1]));
    *nodes[1].next.borrow_mut() = Some(Rc::clone(&nodes[0]));
    drop(nodes); // a cycle: nothing is dropped
    assert_eq!(
        core.ledger().report().to_string(),
        words(2, GuardKind::Ticket, line)
    );
    if Ledger::tracks_sites() {
        assert!(core
            .ledger()
            .report()
            .to_string()
            .starts_with("2 pending-request tickets minted at tests/core_ledger.rs:"));
    }
}

/// A realistic cycle: a handler keeps its request alive from its own signal's abort listener.
/// The ledger names it; the drain deadline breaks it (the abort runs the listener).
#[test]
fn an_activity_ref_captured_by_its_own_signal_listener_is_reported_then_broken_by_escalation() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let line = line!() + 1;
    let bundle = live.admit(|_| Ok(())).unwrap();
    drop(live);
    let signal = bundle.signal().clone();
    let held = RefCell::new(Some(bundle));
    signal.on_abort(move |_| drop(held.borrow_mut().take()));
    drop(signal); // bundle -> activity ref -> signal -> listener -> bundle
    assert_eq!(core.ledger().total_outstanding(), 4);
    let report = core.ledger().report().to_string();
    assert!(
        report.contains(&words(1, GuardKind::ActivityRef, line)),
        "{report}"
    );

    let drain = core.stop();
    assert!(!drain.is_complete());
    let after = drain.escalate();
    assert_eq!(after.aborted_signals, 1);
    assert!(after.complete, "{after}");
    core.ledger().assert_quiescent();
}

#[test]
fn counts_per_kind_and_minted_totals() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let a = live.admit(|_| Ok(())).unwrap();
    let b = live.admit(|_| Ok(())).unwrap();
    for kind in GuardKind::ALL {
        assert_eq!(core.ledger().outstanding(kind), 2, "{kind}");
        assert_eq!(core.ledger().minted(kind), 2, "{kind}");
    }
    drop((a, b));
    assert!(core.ledger().is_quiescent());
    assert_eq!(core.ledger().minted(GuardKind::Ticket), 2);
}
/// A ticket of one server handed to another server's `Live::context` or `Live::admit_with` (a
/// runtime with two `Bun.serve` instances) is refused: request-scoped guards come only from the
/// proof's own server. The ticket goes back to its own server; neither pool lends a context.
#[test]
fn a_ticket_from_another_server_is_refused_and_goes_home() {
    let heap = Heap::new();
    let (a, b) = (core(&heap), core(&heap));
    let live_b = b.upgrade().unwrap();
    let refused = live_b.context(a.upgrade().unwrap().ticket().unwrap());
    assert_eq!(refused.unwrap_err().reason(), RefusalReason::OtherServer);
    let refused = live_b.admit_with(a.upgrade().unwrap().ticket().unwrap(), |_| Ok(()));
    assert_eq!(refused.unwrap_err().reason(), RefusalReason::OtherServer);
    assert_eq!((a.pool_metrics().in_use, b.pool_metrics().in_use), (0, 0));
    a.ledger().assert_quiescent();
    b.ledger().assert_quiescent();
    assert!(a.stop().is_complete());
}

/// While `build` runs, the bundle is one entry holding all four guards: the counts and the
/// report agree (every outstanding guard at the admit site), and a refusal gives all four back.
#[test]
fn counts_and_report_agree_while_build_runs() {
    let heap = Heap::new();
    let core = core(&heap);
    let live = core.upgrade().unwrap();
    let agree = |ledger: &Ledger| {
        let report = ledger.report();
        for kind in GuardKind::ALL {
            let reported: usize = report
                .sites()
                .iter()
                .filter(|s| s.kind == kind)
                .map(|s| s.count)
                .sum();
            assert_eq!(reported, ledger.outstanding(kind), "{kind}: {report}");
            assert_eq!(reported, 1, "{kind}: {report}");
        }
        if Ledger::tracks_sites() {
            assert!(
                report.sites().iter().all(|s| s.location.is_some()),
                "{report}"
            );
        }
    };
    let refused = live.admit(|_| -> Result<(), _> {
        agree(core.ledger());
        Err(reqguard::Refusal::new(RefusalReason::PayloadTooLarge {
            limit: 1,
        }))
    });
    assert!(refused.is_err());
    core.ledger().assert_quiescent();
    let bundle = live
        .admit(|_| {
            agree(core.ledger());
            Ok(())
        })
        .unwrap();
    agree(core.ledger());
    bundle.complete();
    core.ledger().assert_quiescent();
}
