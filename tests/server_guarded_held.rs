//! Round 27 of the cost work (docs/benchmarks-history.md, "Round 27 (the guard)"): `Guarded`'s
//! `Held` is a [`GuardedHeld`], the bundle of an `Admitted` without a payload (an `Admitted<C, ()>`
//! carried a flag saying whether its `()` was handed off, made and stored at every admission). It
//! is one pointer, and it accounts as the `Admitted` did: a request object counted with it until it
//! ends, one outcome, its signal fired once unless completed.
#![cfg(feature = "server")]

use std::mem::size_of;

use reqguard::http::{Accounting, Guarded, GuardedHeld, NoScope};
use reqguard::{AbortReason, Admitted, Config, Exhaustion, GuardKind, Outcome, RefusalReason};

type Embedded = reqguard::engines::Embedded<&'static str>;

/// `Guarded`'s `Held` is named, and is one pointer: no payload, nor its flag.
#[test]
fn guardeds_held_is_one_pointer() {
    fn named(held: <Guarded<Embedded, NoScope> as Accounting>::Held) -> GuardedHeld {
        held
    }
    let mut guarded = Guarded::embedded("server", Config::default());
    named(guarded.admit().unwrap()).complete();
    assert_eq!(size_of::<GuardedHeld>(), size_of::<usize>());
    assert!(size_of::<Admitted<(), ()>>() > size_of::<GuardedHeld>());
}

/// Each way a `GuardedHeld` ends, counted as an `Admitted`'s: its request object counted
/// until then (4 guards out: ticket, context, activity, request), one outcome, the signal
/// fired once with the outcome's reason unless it completed, and nothing left.
#[test]
fn a_guarded_held_ends_once_with_its_request_object() {
    let mut guarded = Guarded::embedded("server", Config::default());
    let held = guarded.admit().unwrap();
    assert_eq!(guarded_ledger_counts(&guarded), (4, 1));
    let signal = held.signal().clone();
    held.complete();
    assert_eq!(guarded_ledger_counts(&guarded), (0, 0));
    assert_eq!(
        signal.reason(),
        None,
        "a completed request's signal never fires"
    );
    drop(signal);

    let held = guarded.admit().unwrap();
    let signal = held.signal().clone();
    let activity = held.activity_ref();
    held.end(Outcome::ClientGone);
    assert_eq!(signal.reason(), Some(AbortReason::ClientDisconnected));
    drop((activity, signal));

    let held = guarded.admit().unwrap();
    let signal = held.signal().clone();
    drop(held); // an early return: dropped
    assert_eq!(signal.reason(), Some(AbortReason::Dropped));
    drop(signal);

    let outcomes = guarded.ledger().unwrap().outcomes();
    assert_eq!(
        (outcomes.completed, outcomes.client_gone, outcomes.dropped),
        (1, 1, 1)
    );
    guarded.ledger().unwrap().assert_quiescent();
    assert_eq!(guarded.report().leaked, 0);
}

/// Round 30: the admission's cold first steps (the free list empty, the server stopped) refuse
/// with a two-value enum of their own, turned into the `Refusal` inside the inlined admission
/// (so it knows no refusal reads as its `Ok`). Each keeps its reason, through `Guarded` (the mio
/// server's path) and `Live::admit` (the core's): the pool exhausted under `Refuse` is
/// `PoolExhausted`, a stop through the core (not `Guarded::stop`, which refuses before the
/// core is asked) is `Stopped`; both `503`, holding nothing.
#[test]
fn the_admissions_cold_refusals_keep_their_reasons() {
    let config = Config::default()
        .with_pool_capacity(1)
        .unwrap()
        .with_exhaustion(Exhaustion::Refuse);
    let mut guarded = Guarded::embedded("server", config);
    let held = guarded.admit().unwrap();
    let refused = guarded.admit().unwrap_err();
    assert_eq!(
        (refused.reason(), refused.status()),
        (RefusalReason::PoolExhausted, 503)
    );
    let live = guarded.core().upgrade().unwrap();
    let refused = live.admit(|_| Ok(())).unwrap_err();
    assert_eq!(refused.reason(), RefusalReason::PoolExhausted);
    drop(live);
    // The one admitted, nothing more.
    assert_eq!(guarded_ledger_counts(&guarded), (4, 1));
    // Stopped through the core while `held` is out: the drain waits for it, and the cold
    // path's refusal is the stop's.
    let drain = guarded.core().stop();
    let refused = guarded.admit().unwrap_err();
    assert_eq!(
        (refused.reason(), refused.status()),
        (RefusalReason::Stopped, 503)
    );
    assert_eq!(guarded_ledger_counts(&guarded), (4, 1));
    held.complete();
    assert!(drain.is_complete());
    guarded.ledger().unwrap().assert_quiescent();
}

/// Guards out in all, and request objects out.
fn guarded_ledger_counts(guarded: &Guarded<Embedded, NoScope>) -> (usize, usize) {
    let ledger = guarded.ledger().unwrap();
    (
        ledger.total_outstanding(),
        ledger.outstanding(GuardKind::Request),
    )
}
