//! Hostile-embedder probes of the core's hot paths after the cost work of issue 9 item 4
//! (305f1e0 `forget_none`, cedb382 a bundle's ledger entry as its mint site's row, c60f68c and
//! cd17d35 `Ledger::is_plain` with the admission's plain and noted paths, b336cb7).
//!
//! What must hold (G2, G5, G6, G8; the docs of `Ledger::start_trace`, `Live::admit`,
//! `Live::admit_with`, `Drain`, `Admitted`): nothing is admitted after stop (a saved ticket
//! excepted); the drain completes exactly when the last ticket goes, and its hooks run once,
//! then; a trace records every mint and release made while it is on, and of a guard minted
//! before it started, its release only (a bundle whose `build` is running counts as minted);
//! the ledger's counts and report agree, row by row; every context, signal and slot made is
//! freed once, in release builds too (where `forget_none` checks nothing). Public API only.
//!
//! The allocation side (G7, and the net allocation of hostile sequences in release builds) is
//! in tests/probe_core_v6_alloc.rs.

#[path = "util/hooks.rs"]
mod hooks;
#[path = "util/ledger_check.rs"]
mod ledger_check;
#[path = "util/quiet.rs"]
mod quiet;
use hooks::{run_hook, set_hook, Hook, ON_DEFAULT, ON_RECYCLE};

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::Instant;

use ledger_check::check_ledger;
use quiet::quiet_panics;
use reqguard::engines::{Embedded, Heap};
use reqguard::{
    AbortReason, Admitted, Config, Drain, DrainStatus, Exhaustion, GuardKind, Ledger, LedgerEvent,
    Outcome, PendingTicket, Recycle, Refusal, RefusalReason, RequestContext, ServerCore,
};

use GuardKind::{ActivityRef as A, Context as C, Request as R, Ticket as T};
use LedgerEvent::{Minted, Released};

// ---------------------------------------------------------------------------------------------
// A hostile context and payload: counted, and able to run a hook of the test's (re-entering the
// server) inside `Default`, `recycle` and `Drop`.

thread_local! {
    /// Contexts made and not dropped yet.
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn live_contexts() -> i64 {
    LIVE.with(Cell::get)
}

#[derive(Debug)]
struct Ctx {
    dirty: bool,
}

impl Default for Ctx {
    fn default() -> Self {
        run_hook(&ON_DEFAULT);
        LIVE.with(|l| l.set(l.get() + 1));
        Ctx { dirty: false }
    }
}

impl Recycle for Ctx {
    fn recycle(&mut self) {
        self.dirty = false;
        run_hook(&ON_RECYCLE);
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        LIVE.with(|l| l.set(l.get() - 1));
    }
}

/// A request payload that runs a hook of the test's when it is dropped.
#[derive(Default)]
struct Payload(Option<Hook>);

impl Payload {
    fn on_drop(hook: impl FnOnce() + 'static) -> Self {
        Payload(Some(Box::new(hook)))
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        if let Some(hook) = self.0.take() {
            hook();
        }
    }
}

type Core = ServerCore<Embedded<&'static str>, Ctx>;
type Bundle = Admitted<Ctx, Payload>;

fn server(heap: &Heap, capacity: usize, exhaustion: Exhaustion, prewarm: usize) -> Rc<Core> {
    let config = Config::default()
        .with_pool_capacity(capacity)
        .unwrap()
        .with_exhaustion(exhaustion)
        .with_prewarm(prewarm);
    Rc::new(ServerCore::embedded_with_context::<Ctx>(
        heap.alloc("server"),
        config,
    ))
}

fn admit(core: &Core) -> Result<Bundle, Refusal> {
    core.upgrade().unwrap().admit(|ctx| {
        assert!(!ctx.dirty, "a context handed out unrecycled");
        ctx.dirty = true;
        Ok(Payload::default())
    })
}

/// The trace of one bundle minted and released while the trace is on.
const WHOLE_BUNDLE: [LedgerEvent; 8] = [
    Minted(T),
    Minted(C),
    Minted(A),
    Minted(R),
    Released(R),
    Released(A),
    Released(C),
    Released(T),
];

/// The trace of a bundle's release alone (with its request object).
const RELEASE_ONLY: [LedgerEvent; 4] = [Released(R), Released(A), Released(C), Released(T)];

// ---------------------------------------------------------------------------------------------
// User code between the admission's check of `is_plain` and its mint: `C::default`, when the free
// list is empty (bug 1 of notes/qa-core6.md: the plain path read the flag before `C::default`
// ran; fixed in bb161e9, where an admission that makes a context takes the noted path).

/// `C::default` starts a trace while `admit` makes the context (a fresh pool: the free list is
/// empty; spilled too). The bundle is minted after the trace started, so the trace records it
/// whole (`start_trace`: "every mint and release"); `admit` must not panic, and the pool must
/// keep its figures.
#[test]
fn a_default_that_starts_a_trace_mid_admission_is_traced_whole() {
    quiet_panics();
    for exhaustion in [Exhaustion::Refuse, Exhaustion::Spill] {
        let heap = Heap::new();
        // Capacity 0 with Spill: the context is spilled, made by `C::default` all the same.
        let capacity = usize::from(exhaustion == Exhaustion::Refuse);
        let core = server(&heap, capacity, exhaustion, 0);
        let hooked = Rc::clone(&core);
        set_hook(&ON_DEFAULT, move || hooked.ledger().start_trace());
        let admitted = catch_unwind(AssertUnwindSafe(|| admit(&core)));
        let bundle = admitted
            .unwrap_or_else(|_| panic!("{exhaustion:?}: admit panicked after Default traced"))
            .unwrap();
        bundle.complete();
        let trace = core.ledger().take_trace();
        assert_eq!(trace, WHOLE_BUNDLE, "{exhaustion:?}");
        let metrics = core.pool_metrics();
        assert_eq!(metrics.in_use, 0, "{exhaustion:?}: {metrics:?}");
        assert_eq!(
            metrics.allocated, capacity,
            "{exhaustion:?}: a context lost: {metrics:?}"
        );
        check_ledger(core.ledger());
        core.ledger().assert_quiescent();
        assert_eq!(core.ledger().outcomes().completed, 1);
    }
}

/// `C::default` starts, takes, or takes and restarts the trace while a context is made, for
/// `admit` and `admit_with`: whatever is minted after a trace started is in it, whole (the
/// request object's mint in the trace that has the rest of the bundle's), and nothing minted
/// while no trace is on is recorded later.
#[test]
fn a_default_that_starts_or_takes_a_trace_on_either_admission() {
    // (with a saved ticket, a trace on at admission, what Default does, the trace expected)
    let saved_bundle: &[LedgerEvent] = &[
        Minted(C),
        Minted(A),
        Minted(R),
        Released(R),
        Released(A),
        Released(C),
        Released(T),
    ];
    let cases: [(bool, bool, &str, &[LedgerEvent]); 6] = [
        (false, false, "start", &WHOLE_BUNDLE),
        (true, false, "start", saved_bundle),
        (false, true, "take", &[]),
        (true, true, "take", &[]),
        (false, true, "restart", &WHOLE_BUNDLE),
        (true, true, "restart", saved_bundle),
    ];
    for (with_ticket, traced, what, expected) in cases {
        let heap = Heap::new();
        let core = server(&heap, 2, Exhaustion::Refuse, 0);
        let live = core.upgrade().unwrap();
        let saved = with_ticket.then(|| live.ticket().unwrap());
        if traced {
            core.ledger().start_trace();
        }
        let hooked = Rc::clone(&core);
        set_hook(&ON_DEFAULT, move || {
            if what != "start" {
                hooked.ledger().take_trace();
            }
            if what != "take" {
                hooked.ledger().start_trace();
            }
        });
        let build = |_: &mut Ctx| Ok(Payload::default());
        let bundle = match saved {
            Some(ticket) => live.admit_with(ticket, build),
            None => live.admit(build),
        };
        bundle.unwrap().complete();
        let case = format!("ticket {with_ticket}, traced {traced}, Default does {what}");
        assert_eq!(core.ledger().take_trace(), expected, "{case}");
        assert_eq!(core.pool_metrics().allocated, 1, "{case}");
        core.ledger().assert_quiescent();
    }
}

/// `C::default` stops the server while `admit` makes the context (the ledger plain when the
/// admission began): refused as stopped, the context kept, nothing minted, the drain complete at
/// once.
#[test]
fn a_default_that_stops_the_server_while_a_context_is_made() {
    let heap = Heap::new();
    let core = server(&heap, 2, Exhaustion::Spill, 0);
    let hooked = Rc::clone(&core);
    let drain: Rc<RefCell<Option<Drain>>> = Rc::default();
    let kept = Rc::clone(&drain);
    set_hook(&ON_DEFAULT, move || {
        *kept.borrow_mut() = Some(hooked.stop())
    });
    let refused = admit(&core).map(drop).unwrap_err();
    assert_eq!(refused.reason(), RefusalReason::Stopped);
    assert!(drain.borrow().as_ref().unwrap().is_complete());
    assert_eq!(core.ledger().minted(T), 0);
    assert_eq!(core.pool_metrics().in_use, 0);
    check_ledger(core.ledger());
}

// ---------------------------------------------------------------------------------------------
// What a trace started or restarted while `build` runs records (`Ledger::start_trace`: "a bundle
// whose `build` is running counts as minted: its request object's mint is not recorded").

/// The same trace, started inside `build`, for the three ways a bundle is admitted: by `admit`
/// while the ledger is plain, by `admit` while a trace is on (taken and started again inside
/// `build`), and by `admit_with` (a saved ticket). The bundle was minted before the trace
/// started, so the trace records its release only, whichever way it came in.
#[test]
fn a_trace_started_inside_build_records_the_release_only_for_every_admission() {
    let heap = Heap::new();
    let core = server(&heap, 4, Exhaustion::Refuse, 4);
    let live = core.upgrade().unwrap();
    let start_in_build = |_: &mut Ctx| {
        core.ledger().start_trace();
        Ok(Payload::default())
    };
    // Plain.
    live.admit(start_in_build).unwrap().complete();
    let plain = core.ledger().take_trace();
    // Noted (a trace on at admission), restarted inside build.
    core.ledger().start_trace();
    let restart = |_: &mut Ctx| {
        core.ledger().take_trace();
        core.ledger().start_trace();
        Ok(Payload::default())
    };
    live.admit(restart).unwrap().complete();
    let restarted = core.ledger().take_trace();
    // A saved ticket.
    let saved = live.ticket().unwrap();
    live.admit_with(saved, start_in_build).unwrap().complete();
    let saved = core.ledger().take_trace();
    let traces = [
        ("admit, plain", plain),
        ("admit, a trace restarted in build", restarted),
        ("admit_with, trace started in build", saved),
    ];
    for (how, trace) in &traces {
        assert_eq!(trace, &RELEASE_ONLY, "{how}: every trace: {traces:?}");
    }
    core.ledger().assert_quiescent();
}

/// A trace taken inside `build` ends before the request object is made: the trace holds the
/// bundle's mint without its request object's, for `admit` and `admit_with` alike.
#[test]
fn a_trace_taken_inside_build_ends_before_the_request_object() {
    let heap = Heap::new();
    let core = server(&heap, 4, Exhaustion::Refuse, 4);
    let live = core.upgrade().unwrap();
    let taken = RefCell::new(Vec::new());
    let take_in_build = |_: &mut Ctx| {
        taken.borrow_mut().push(core.ledger().take_trace());
        Ok(Payload::default())
    };
    core.ledger().start_trace();
    live.admit(take_in_build).unwrap().complete();
    let saved = live.ticket().unwrap();
    core.ledger().start_trace();
    live.admit_with(saved, take_in_build).unwrap().complete();
    let taken = taken.into_inner();
    assert_eq!(taken[0], [Minted(T), Minted(C), Minted(A)]);
    assert_eq!(taken[1], [Minted(C), Minted(A)]);
    assert!(core.ledger().take_trace().is_empty());
    core.ledger().assert_quiescent();
}

// ---------------------------------------------------------------------------------------------
// User code inside the last request's release stops the server: the release reads `is_plain`
// after that code ran and the bundle was counted out, so it must still complete the drain.

/// Where user code runs inside a bundle's release.
#[derive(Clone, Copy, Debug)]
enum Inside {
    Listener,
    Payload,
    Recycle,
}

/// The last request out is released, and user code inside its release stops the server (and
/// starts a trace): the drain completes by the end of that release, its hook runs once with no
/// ticket out, nothing is admitted after, and the trace holds the release alone.
#[test]
fn a_stop_from_inside_the_last_release_completes_the_drain_there() {
    for inside in [Inside::Listener, Inside::Payload, Inside::Recycle] {
        let heap = Heap::new();
        let core = server(&heap, 2, Exhaustion::Refuse, 2);
        let drain: Rc<RefCell<Option<Drain>>> = Rc::default();
        let hook_runs = Rc::new(Cell::new(0));
        let stop = {
            let (core, drain, runs) = (Rc::clone(&core), Rc::clone(&drain), Rc::clone(&hook_runs));
            move || {
                let d = core.stop();
                let weak = Rc::downgrade(&core);
                d.on_complete(move || {
                    let out = weak.upgrade().map_or(0, |c| c.ledger().outstanding(T));
                    assert_eq!(out, 0);
                    runs.set(runs.get() + 1);
                });
                core.ledger().start_trace();
                *drain.borrow_mut() = Some(d);
            }
        };
        let live = core.upgrade().unwrap();
        let mut stop = Some(stop);
        let payload = match inside {
            Inside::Payload => Payload::on_drop(stop.take().unwrap()),
            _ => Payload::default(),
        };
        let bundle = live.admit(move |_| Ok(payload)).unwrap();
        match (inside, stop) {
            (Inside::Listener, Some(stop)) => assert!(bundle.signal().on_abort(move |_| stop())),
            (Inside::Recycle, Some(stop)) => set_hook(&ON_RECYCLE, stop),
            _ => {}
        }
        drop(bundle); // Dropped: the listener runs, the payload drops, the context is recycled
        let drain = drain
            .borrow_mut()
            .take()
            .expect("user code stopped the server");
        assert!(drain.is_complete(), "{inside:?}: the last request went");
        assert_eq!(hook_runs.get(), 1, "{inside:?}");
        assert_eq!(
            live.admit(|_| Ok(Payload::default()))
                .map(drop)
                .unwrap_err()
                .reason(),
            RefusalReason::Stopped
        );
        assert_eq!(core.ledger().take_trace(), RELEASE_ONLY, "{inside:?}");
        core.ledger().assert_quiescent();
        assert_eq!(core.ledger().outcomes().dropped, 1);
    }
}

/// `build` stops the server (`Live::admit`: "a `stop()` from inside it waits for it"), on the
/// plain path and on the noted one (a trace on): a nested admission is refused, the request
/// being built is admitted (or refused by `build`, or `build` panics), and the drain completes
/// when it goes, not before.
#[test]
fn a_stop_from_inside_build_waits_for_the_request_being_built() {
    quiet_panics();
    for (traced, ending) in [false, true]
        .into_iter()
        .flat_map(|t| [(t, 0), (t, 1), (t, 2)])
    {
        let heap = Heap::new();
        let core = server(&heap, 2, Exhaustion::Refuse, 1);
        let live = core.upgrade().unwrap();
        if traced {
            core.ledger().start_trace();
        }
        let drain = RefCell::new(None);
        let built = catch_unwind(AssertUnwindSafe(|| {
            live.admit(|_| {
                *drain.borrow_mut() = Some(core.stop());
                let nested = live.admit(|_| Ok(Payload::default())).map(drop);
                assert_eq!(nested.unwrap_err().reason(), RefusalReason::Stopped);
                assert!(!drain.borrow().as_ref().unwrap().is_complete());
                match ending {
                    0 => Ok(Payload::default()),
                    1 => Err(Refusal::new(RefusalReason::Engine("refused in build"))),
                    _ => panic!("build panics"),
                }
            })
        }));
        let drain = drain.into_inner().expect("build ran");
        let case = format!("traced {traced}, ending {ending}");
        match built {
            Ok(Ok(bundle)) => {
                assert!(!drain.is_complete(), "{case}: the admitted request is out");
                bundle.complete();
            }
            Ok(Err(refusal)) => assert_eq!(refusal.status(), 500, "{case}"),
            Err(_) => assert_eq!(ending, 2, "{case}"),
        }
        assert!(drain.is_complete(), "{case}: the request went");
        let trace = core.ledger().take_trace();
        let expected: &[LedgerEvent] = match (traced, ending) {
            (false, _) => &[],
            (true, 0) => &WHOLE_BUNDLE,
            (true, _) => &[
                Minted(T),
                Minted(C),
                Minted(A),
                Released(A),
                Released(C),
                Released(T),
            ],
        };
        assert_eq!(trace, expected, "{case}");
        assert_eq!(core.pool_metrics().in_use, 0, "{case}");
        core.ledger().assert_quiescent();
    }
}

/// A bundle moved into its own signal's abort listener (a cycle through the signal) is ended by
/// the escalation that fires it, from inside that abort: outcome `DeadlineAborted`, the drain
/// completes there (its hook once), the trace holds the release, and the context is back in the
/// pool. The same bundle never fired stays out, reported at its place.
#[test]
fn a_bundle_ended_inside_its_own_signals_abort() {
    let heap = Heap::new();
    let core = server(&heap, 2, Exhaustion::Refuse, 2);
    let contexts = live_contexts();
    let live = core.upgrade().unwrap();
    for _ in 0..2 {
        let bundle = admit(&core).unwrap();
        let signal = bundle.signal().clone();
        let cell = RefCell::new(Some(bundle));
        assert!(signal.on_abort(move |reason| {
            assert_eq!(reason, AbortReason::DrainDeadline);
            drop(cell.borrow_mut().take()); // ends its own request
        }));
    }
    drop(live);
    assert_eq!(
        core.ledger().outstanding(T),
        2,
        "held by their own listeners"
    );
    let drain = core.stop();
    let runs = Rc::new(Cell::new(0));
    let seen = Rc::clone(&runs);
    drain.on_complete(move || seen.set(seen.get() + 1));
    core.ledger().start_trace();
    let report = drain.escalate();
    assert_eq!(report.aborted_signals, 2);
    assert!(report.complete && drain.is_complete());
    assert_eq!(runs.get(), 1);
    assert_eq!(
        core.ledger().take_trace(),
        [RELEASE_ONLY, RELEASE_ONLY].concat()
    );
    assert_eq!(core.ledger().outcomes().deadline_aborted, 2);
    assert_eq!(core.pool_metrics().in_use, 0);
    core.ledger().assert_quiescent();
    drop(core);
    drop(drain);
    assert_eq!(
        live_contexts(),
        contexts - 2,
        "both contexts freed with the pool"
    );
}

/// While `build` runs, the bundle is counted whole (its request object's slot included) and the
/// ledger's counts and report agree (`Ledger::bundle_built`), whichever path minted it: plain
/// (a free slot), noted (a context to make, a trace on), or a saved ticket after stop.
#[test]
fn the_books_agree_while_build_runs_on_every_path() {
    for path in ["plain", "made", "traced", "saved after stop"] {
        let heap = Heap::new();
        // Two prewarmed contexts: one for the holding request, one free for this one.
        let prewarm = if path == "made" { 0 } else { 2 };
        let core = server(&heap, 2, Exhaustion::Refuse, prewarm);
        let live = core.upgrade().unwrap();
        let saved = live.ticket().unwrap();
        let holding = admit(&core).unwrap(); // one request out already
        match path {
            "traced" => core.ledger().start_trace(),
            "saved after stop" => drop(core.stop()),
            _ => {}
        }
        let ledger = core.ledger();
        let inside = |_: &mut Ctx| {
            // Out: the saved ticket, the holding bundle and this one (whose ticket is the saved
            // one when it came with it).
            let tickets = if path == "saved after stop" { 2 } else { 3 };
            assert_eq!(ledger.outstanding(T), tickets, "{path}");
            assert_eq!(ledger.outstanding(C), 2, "{path}");
            assert_eq!(ledger.outstanding(R), 2, "{path}: the request slot counts");
            check_ledger(ledger);
            Ok(Payload::default())
        };
        let (bundle, saved) = match path {
            "saved after stop" => (live.admit_with(saved, inside).unwrap(), None),
            _ => (live.admit(inside).unwrap(), Some(saved)),
        };
        drop((bundle, holding, saved));
        ledger.take_trace();
        check_ledger(ledger);
        ledger.assert_quiescent();
    }
}

/// A drain hook of one server re-enters another: it releases that server's last request (whose
/// own drain completes there, once) and admits into a third, still plain, server.
#[test]
fn a_drain_hook_that_completes_another_servers_drain() {
    let heap = Heap::new();
    let cores = [0, 1, 2].map(|_| server(&heap, 2, Exhaustion::Refuse, 0));
    let first = admit(&cores[0]).unwrap();
    let second = admit(&cores[1]).unwrap();
    let drains = [cores[0].stop(), cores[1].stop()];
    let runs = Rc::new(Cell::new(0));
    let seen = Rc::clone(&runs);
    drains[1].on_complete(move || seen.set(seen.get() + 1));
    let third = Rc::clone(&cores[2]);
    let admitted_in_hook = Rc::new(Cell::new(false));
    let admitted = Rc::clone(&admitted_in_hook);
    drains[0].on_complete(move || {
        second.complete();
        let bundle = admit(&third).expect("the third server is not stopped");
        admitted.set(true);
        bundle.complete();
    });
    assert!(!drains[1].is_complete());
    first.complete();
    assert!(drains[0].is_complete() && drains[1].is_complete());
    assert!(admitted_in_hook.get());
    assert_eq!(runs.get(), 1);
    for core in &cores {
        core.ledger().assert_quiescent();
        assert_eq!(core.ledger().outcomes().completed, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Every order of stop, trace, admission, saved tickets, releases and escalation, on two servers,
// against a model; some releases run another step from inside an abort listener.

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A bundle out, as the model sees it.
struct Out {
    bundle: Bundle,
    with_request: bool,
    /// Its signal fired (the deadline): its outcome is `DeadlineAborted` whatever ends it.
    aborted: bool,
}

/// One server and what the model expects of it.
struct Side {
    core: Rc<Core>,
    drain: Option<Drain>,
    /// Runs of the drain's hook, and whether each saw no ticket out.
    hook_runs: Rc<Cell<u32>>,
    hook_saw_tickets: Rc<Cell<bool>>,
    out: Vec<Out>,
    saved: Vec<PendingTicket>,
    /// Standalone contexts, each holding a saved ticket.
    contexts: Vec<RequestContext<Ctx>>,
    /// The trace expected while one is on.
    trace: Option<Vec<LedgerEvent>>,
    outcomes: [u64; 5],
    /// The pool's capacity when it refuses once exhausted (`None`: it spills).
    refuse_at: Option<usize>,
    /// Requests the exhausted pool refused.
    refusals: u64,
    /// The drain escalated (by `escalate` or the deadline).
    escalated: bool,
    /// Every guard minted (standalone or in a bundle), by kind.
    minted: Vec<GuardKind>,
}

impl Side {
    fn new(heap: &Heap, exhaustion: Exhaustion) -> Self {
        Side {
            core: server(heap, 2, exhaustion, 0),
            drain: None,
            hook_runs: Rc::default(),
            hook_saw_tickets: Rc::default(),
            out: Vec::new(),
            saved: Vec::new(),
            contexts: Vec::new(),
            trace: None,
            outcomes: [0; 5],
            refuse_at: (exhaustion == Exhaustion::Refuse).then_some(2),
            refusals: 0,
            escalated: false,
            minted: Vec::new(),
        }
    }

    fn stopped(&self) -> bool {
        self.drain.is_some()
    }

    /// The pool is exhausted and refuses: the next checkout is refused (and counted).
    fn refuses(&mut self) -> bool {
        let in_use = self.out.len() + self.contexts.len();
        let full = self.refuse_at.is_some_and(|cap| in_use >= cap);
        self.refusals += u64::from(full);
        full
    }

    /// `events` happened (each step notes exactly its mints and releases): counted, and traced
    /// if a trace is on.
    fn note(&mut self, events: &[LedgerEvent]) {
        for event in events {
            if let Minted(kind) = event {
                self.minted.push(*kind);
            }
        }
        if let Some(trace) = &mut self.trace {
            trace.extend_from_slice(events);
        }
    }

    fn stop(&mut self) {
        let drain = self.core.stop();
        if self.drain.is_none() {
            let (runs, saw) = (
                Rc::clone(&self.hook_runs),
                Rc::clone(&self.hook_saw_tickets),
            );
            let core: Weak<Core> = Rc::downgrade(&self.core);
            drain.on_complete(move || {
                runs.set(runs.get() + 1);
                let out = core.upgrade().map_or(0, |c| c.ledger().outstanding(T));
                saw.set(saw.get() || out != 0);
            });
            self.drain = Some(drain);
        }
    }

    /// The model's side of a bundle's release with `asked`; returns the real outcome expected.
    fn released(&mut self, out: &Out, asked: Outcome) {
        let outcome = if out.aborted {
            Outcome::DeadlineAborted
        } else {
            asked
        };
        self.outcomes[Outcome::ALL.iter().position(|&o| o == outcome).unwrap()] += 1;
        if out.with_request {
            self.note(&[Released(R)]);
        }
        self.note(&[Released(A), Released(C), Released(T)]);
    }

    fn check(&self, step: &str) {
        let ledger = self.core.ledger();
        let with_request = self.out.iter().filter(|o| o.with_request).count();
        let tickets = self.out.len() + self.saved.len() + self.contexts.len();
        let contexts = self.out.len() + self.contexts.len();
        assert_eq!(ledger.outstanding(T), tickets, "{step}: tickets");
        assert_eq!(ledger.outstanding(C), contexts, "{step}: contexts");
        assert_eq!(ledger.outstanding(A), self.out.len(), "{step}: activity");
        assert_eq!(ledger.outstanding(R), with_request, "{step}: requests");
        assert_eq!(self.core.pool_metrics().in_use, contexts, "{step}");
        assert_eq!(self.core.pool_metrics().refusals, self.refusals, "{step}");
        assert_eq!(self.core.is_stopped(), self.stopped(), "{step}");
        let complete = self.stopped() && tickets == 0;
        if let Some(drain) = &self.drain {
            assert_eq!(drain.is_complete(), complete, "{step}: drain");
        }
        assert_eq!(
            self.hook_runs.get(),
            u32::from(complete),
            "{step}: hook runs"
        );
        assert!(
            !self.hook_saw_tickets.get(),
            "{step}: the hook ran with tickets out"
        );
        for kind in GuardKind::ALL {
            let minted = self.minted.iter().filter(|&&k| k == kind).count() as u64;
            assert_eq!(ledger.minted(kind), minted, "{step}: {kind:?} minted");
        }
        let real = ledger.outcomes();
        let real: Vec<u64> = Outcome::ALL.iter().map(|&o| real.count(o)).collect();
        assert_eq!(real, self.outcomes, "{step}: outcomes");
        check_ledger(ledger);
    }
}

/// What a listener does, re-entering from inside another bundle's release.
enum Nested {
    Complete(usize, Out),
    Stop(usize),
    StartTrace(usize),
    TakeTrace(usize),
}

struct World {
    sides: [Side; 2],
    rng: Rng,
    log: Vec<String>,
}

impl World {
    fn step(&mut self) {
        let s = self.rng.below(2);
        let op = self.rng.below(16);
        self.log.push(format!("{s}:{op}"));
        match op {
            0 | 1 => self.admit(s),
            2 => self.ticket(s),
            3 => self.admit_with(s),
            4 => self.refused_build(s),
            5..=7 => self.release(s),
            8 => {
                if let Some(ticket) = self.sides[s].saved.pop() {
                    self.sides[s].note(&[Released(T)]);
                    drop(ticket);
                }
            }
            9 => self.sides[s].stop(),
            10 => {
                self.sides[s].core.ledger().start_trace();
                self.sides[s].trace = Some(Vec::new());
            }
            11 => self.take_trace(s),
            12 => self.escalate(s),
            13 => self.release_with_listener(s),
            14 => self.standalone_context(s),
            _ => {
                let side = &mut self.sides[s];
                if !side.contexts.is_empty() {
                    let i = self.rng.below(side.contexts.len());
                    side.note(&[Released(C), Released(T)]);
                    drop(side.contexts.swap_remove(i));
                }
            }
        }
        let step = format!("after {:?}", self.log);
        self.sides[0].check(&step);
        self.sides[1].check(&step);
    }

    fn admit(&mut self, s: usize) {
        let side = &mut self.sides[s];
        let refused = match side.stopped() {
            true => Some(RefusalReason::Stopped),
            false => side.refuses().then_some(RefusalReason::PoolExhausted),
        };
        match admit(&side.core) {
            Ok(bundle) => {
                assert_eq!(refused, None, "admitted");
                side.note(&[Minted(T), Minted(C), Minted(A), Minted(R)]);
                side.out.push(Out {
                    bundle,
                    with_request: true,
                    aborted: false,
                });
            }
            Err(refusal) => assert_eq!(Some(refusal.reason()), refused),
        }
    }

    fn ticket(&mut self, s: usize) {
        let side = &mut self.sides[s];
        match side.core.upgrade().unwrap().ticket() {
            Ok(ticket) => {
                assert!(!side.stopped(), "a ticket after stop");
                side.note(&[Minted(T)]);
                side.saved.push(ticket);
            }
            Err(refusal) => assert!(side.stopped(), "refused before stop: {refusal:?}"),
        }
    }

    fn admit_with(&mut self, s: usize) {
        let foreign = self.rng.below(5) == 0;
        let other = Rc::clone(&self.sides[1 - s].core);
        let side = &mut self.sides[s];
        let Some(ticket) = side.saved.pop() else {
            return;
        };
        if foreign {
            // Another server's proof: refused, the ticket goes home and its request ends.
            let refused = other
                .upgrade()
                .unwrap()
                .admit_with(ticket, |_| Ok::<_, Refusal>(Payload::default()));
            let refusal = refused.map(drop).unwrap_err();
            assert_eq!(refusal.reason(), RefusalReason::OtherServer);
            side.note(&[Released(T)]);
            return;
        }
        let admitted = side
            .core
            .upgrade()
            .unwrap()
            .admit_with(ticket, |_| Ok(Payload::default()));
        if side.refuses() {
            let refusal = admitted.map(drop).unwrap_err();
            assert_eq!(refusal.reason(), RefusalReason::PoolExhausted);
            side.note(&[Released(T)]); // the ticket goes: the request ends
            return;
        }
        let bundle = admitted.expect("a saved ticket is admitted, stopped or not");
        side.note(&[Minted(C), Minted(A), Minted(R)]);
        // Past the escalation, its signal comes aborted by it (QA embed26-2).
        let born = side.escalated.then_some(AbortReason::DrainDeadline);
        assert_eq!(bundle.signal().reason(), born, "a saved request's signal");
        side.out.push(Out {
            bundle,
            with_request: true,
            aborted: side.escalated,
        });
    }

    /// A saved ticket's standalone context (`Live::context`), stopped or not.
    fn standalone_context(&mut self, s: usize) {
        let side = &mut self.sides[s];
        let Some(ticket) = side.saved.pop() else {
            return;
        };
        let context = side.core.upgrade().unwrap().context(ticket);
        if side.refuses() {
            let refusal = context.map(drop).unwrap_err();
            assert_eq!(refusal.reason(), RefusalReason::PoolExhausted);
            side.note(&[Released(T)]);
            return;
        }
        side.note(&[Minted(C)]);
        side.contexts
            .push(context.expect("a saved ticket's context"));
    }

    fn refused_build(&mut self, s: usize) {
        let side = &mut self.sides[s];
        let engine = Refusal::new(RefusalReason::Engine("refused in build"));
        let live = side.core.upgrade().unwrap();
        let saved = match self.rng.below(2) {
            0 => side.saved.pop(),
            _ => None,
        };
        if let Some(ticket) = saved {
            let refused = live.admit_with(ticket, |_| Err::<Payload, _>(engine));
            if side.refuses() {
                let refusal = refused.map(drop).unwrap_err();
                assert_eq!(refusal.reason(), RefusalReason::PoolExhausted);
                side.note(&[Released(T)]);
                return;
            }
            assert_eq!(refused.map(drop), Err(engine));
            side.note(&[Minted(C), Minted(A), Released(A), Released(C), Released(T)]);
        } else {
            let refused = live.admit(|_| Err::<Payload, _>(engine)).map(drop);
            if side.stopped() {
                assert_eq!(refused.unwrap_err().reason(), RefusalReason::Stopped);
            } else if side.refuses() {
                assert_eq!(refused.unwrap_err().reason(), RefusalReason::PoolExhausted);
            } else {
                assert_eq!(refused, Err(engine));
                side.note(&WHOLE_BUNDLE[..3]);
                side.note(&[Released(A), Released(C), Released(T)]);
            }
        }
    }

    fn release(&mut self, s: usize) {
        let how = self.rng.below(4);
        let side = &mut self.sides[s];
        if side.out.is_empty() {
            return;
        }
        let i = self.rng.below(side.out.len());
        let mut out = side.out.swap_remove(i);
        if how == 3 && out.with_request {
            assert!(out.bundle.hand_off().is_some());
            assert!(out.bundle.hand_off().is_none());
            out.with_request = false;
            side.note(&[Released(R)]);
            side.out.push(out);
            return;
        }
        let asked = [Outcome::Completed, Outcome::ClientGone, Outcome::Dropped][how.min(2)];
        side.released(&out, asked);
        match asked {
            Outcome::Completed => out.bundle.complete(),
            Outcome::Dropped => drop(out.bundle),
            other => out.bundle.end(other),
        }
    }

    fn take_trace(&mut self, s: usize) {
        let side = &mut self.sides[s];
        let real = side.core.ledger().take_trace();
        assert_eq!(
            real,
            side.trace.take().unwrap_or_default(),
            "trace after {:?}",
            self.log
        );
    }

    /// `escalate`, or `poll_deadline` past a deadline (which escalates the first time only).
    fn escalate(&mut self, s: usize) {
        let by_deadline = self.rng.below(2) == 0;
        let side = &mut self.sides[s];
        let Some(drain) = &side.drain else {
            return;
        };
        let fresh = side.out.iter().filter(|o| !o.aborted).count();
        let tickets = side.out.len() + side.saved.len() + side.contexts.len();
        let aborts = !by_deadline || !side.escalated;
        if by_deadline {
            let now = Instant::now();
            drain.set_deadline(now);
            match drain.poll_deadline(now) {
                DrainStatus::Complete => assert_eq!(tickets, 0, "complete with tickets out"),
                DrainStatus::Expired(report) => {
                    assert!(tickets > 0, "expired with no ticket out");
                    let expected = if aborts { fresh } else { 0 };
                    assert_eq!(report.aborted_signals, expected, "deadline's aborts");
                }
                pending => panic!("a past deadline is pending: {pending:?}"),
            }
        } else {
            let report = drain.escalate();
            assert_eq!(
                report.aborted_signals, fresh,
                "escalation aborts each held signal once"
            );
        }
        if aborts && tickets > 0 {
            side.escalated = true;
            for out in &mut side.out {
                out.aborted = true;
            }
        }
    }

    /// Drops a bundle whose abort listener runs another step first (any server's).
    fn release_with_listener(&mut self, s: usize) {
        let other = self.rng.below(2);
        let what = self.rng.below(4);
        let side = &mut self.sides[s];
        let Some(pos) = side.out.iter().position(|o| !o.aborted) else {
            return;
        };
        let out = side.out.swap_remove(pos);
        let nested = match what {
            0 if !self.sides[other].out.is_empty() => {
                let j = self.rng.below(self.sides[other].out.len());
                Nested::Complete(other, self.sides[other].out.swap_remove(j))
            }
            0 | 1 => Nested::Stop(other),
            2 => Nested::StartTrace(other),
            _ => Nested::TakeTrace(other),
        };
        // The model, in the order the real release runs: the listener's step, then the release.
        let mut taken_expected = None;
        match &nested {
            Nested::Complete(k, inner) => self.sides[*k].released(inner, Outcome::Completed),
            Nested::Stop(_) => {}
            Nested::StartTrace(k) => self.sides[*k].trace = Some(Vec::new()),
            Nested::TakeTrace(k) => taken_expected = Some(self.sides[*k].trace.take()),
        }
        self.sides[s].released(&out, Outcome::Dropped);
        let cores = [
            Rc::clone(&self.sides[0].core),
            Rc::clone(&self.sides[1].core),
        ];
        let drains: Rc<RefCell<Vec<Drain>>> = Rc::default();
        let (listener_drains, taken_cell) = (Rc::clone(&drains), Rc::new(RefCell::new(None)));
        let listener_taken = Rc::clone(&taken_cell);
        let nested_step = match nested {
            Nested::Complete(_, inner) => Box::new(move || inner.bundle.complete()) as Hook,
            Nested::Stop(k) => Box::new(move || listener_drains.borrow_mut().push(cores[k].stop())),
            Nested::StartTrace(k) => Box::new(move || cores[k].ledger().start_trace()),
            Nested::TakeTrace(k) => Box::new(move || {
                *listener_taken.borrow_mut() = Some(cores[k].ledger().take_trace());
            }),
        };
        let registered = out.bundle.signal().on_abort(move |reason| {
            assert_eq!(reason, AbortReason::Dropped);
            nested_step();
        });
        assert!(registered);
        drop(out.bundle);
        if let Some(expected) = taken_expected {
            let real = taken_cell.borrow_mut().take().expect("the listener ran");
            assert_eq!(
                real,
                expected.unwrap_or_default(),
                "trace taken in a listener"
            );
        }
        // A stop from the listener: the model's drain handle and hook, as a direct stop would.
        for k in 0..2 {
            if self.sides[k].core.is_stopped() && !self.sides[k].stopped() {
                self.sides[k].stop();
            }
        }
        drop(drains);
    }

    /// Ends everything: every saved ticket and bundle goes; both drains complete.
    fn finish(mut self) {
        for s in 0..2 {
            self.sides[s].stop();
            while !self.sides[s].out.is_empty() {
                self.release(s);
            }
            self.sides[s].saved.clear();
            self.sides[s].contexts.clear();
            let step = format!("at the end of {:?}", self.log);
            self.sides[s].check(&step);
            assert!(self.sides[s].drain.as_ref().unwrap().is_complete());
            self.sides[s].core.ledger().take_trace();
            self.sides[s].core.ledger().assert_quiescent();
        }
    }
}

#[test]
fn every_order_of_stop_trace_admission_and_release_on_two_servers_matches_the_model() {
    for seed in 1..=600u64 {
        let heap = Heap::new();
        let mut world = World {
            sides: [
                Side::new(&heap, Exhaustion::Spill),
                Side::new(&heap, Exhaustion::Refuse),
            ],
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            log: Vec::new(),
        };
        for _ in 0..40 {
            world.step();
        }
        world.finish();
        assert_eq!(live_contexts(), 0, "seed {seed}: a context not freed");
    }
}

// ---------------------------------------------------------------------------------------------
// Leak-check rows (cedb382): a bundle's entry is its mint site's row, shared, with a last-site
// cache. Many places, both admissions, both paths (plain, and noted: tracing or stopped), two
// servers minting at the same places in turn, bundles forgotten, refused, handed off.

type LiveCtx<'a> = reqguard::Live<'a, Embedded<&'static str>, Ctx>;

/// `admit` at one of eight places: (the place's line, what `admit` returned).
fn admit_at(live: &LiveCtx<'_>, place: usize, refuse: bool) -> (u32, Result<Bundle, Refusal>) {
    let build = move |_: &mut Ctx| match refuse {
        true => Err(Refusal::new(RefusalReason::Engine("refused in build"))),
        false => Ok(Payload::default()),
    };
    match place {
        0 => (line!(), live.admit(build)),
        1 => (line!(), live.admit(build)),
        2 => (line!(), live.admit(build)),
        3 => (line!(), live.admit(build)),
        4 => (line!(), live.admit(build)),
        5 => (line!(), live.admit(build)),
        6 => (line!(), live.admit(build)),
        _ => (line!(), live.admit(build)),
    }
}

/// `admit_with` at one of four places.
fn admit_with_at(
    live: &LiveCtx<'_>,
    place: usize,
    ticket: PendingTicket,
    refuse: bool,
) -> (u32, Result<Bundle, Refusal>) {
    let build = move |_: &mut Ctx| match refuse {
        true => Err(Refusal::new(RefusalReason::Engine("refused in build"))),
        false => Ok(Payload::default()),
    };
    match place {
        0 => (line!(), live.admit_with(ticket, build)),
        1 => (line!(), live.admit_with(ticket, build)),
        2 => (line!(), live.admit_with(ticket, build)),
        _ => (line!(), live.admit_with(ticket, build)),
    }
}

/// The report's bundle rows as (kind, line, count), sorted: the saved tickets (`saved` of them,
/// minted at `TICKET_LINE`, or unlocated when sites are not tracked) are taken out.
fn bundle_rows(ledger: &Ledger, saved: usize) -> Vec<(GuardKind, u32, usize)> {
    let ticket_line = match Ledger::tracks_sites() {
        true => TICKET_LINE.with(Cell::get),
        false => 0,
    };
    let mut rows: Vec<_> = ledger
        .report()
        .sites()
        .iter()
        .map(|s| (s.kind, s.location.map_or(0, |l| l.line()), s.count))
        .map(
            |(kind, line, count)| match kind == T && line == ticket_line {
                true => (kind, line, count - saved),
                false => (kind, line, count),
            },
        )
        .filter(|row| row.2 > 0)
        .collect();
    rows.sort();
    rows
}

thread_local! {
    static TICKET_LINE: Cell<u32> = const { Cell::new(0) };
}

fn saved_ticket(live: &LiveCtx<'_>) -> Option<PendingTicket> {
    TICKET_LINE.with(|l| l.set(line!() + 1));
    live.ticket().ok()
}

/// One server's bundles by place, as the report must show them.
#[derive(Default)]
struct Rows {
    /// (line, with its request object) of each bundle out, forgotten ones included.
    out: Vec<(u32, bool)>,
}

impl Rows {
    fn expected(&self) -> Vec<(GuardKind, u32, usize)> {
        let mut rows: Vec<(GuardKind, u32, usize)> = Vec::new();
        let mut add = |kind, line, n| match rows.iter_mut().find(|r| r.0 == kind && r.1 == line) {
            Some(row) => row.2 += n,
            None => rows.push((kind, line, n)),
        };
        for &(line, with_request) in &self.out {
            let line = if Ledger::tracks_sites() { line } else { 0 };
            for kind in [T, C, A] {
                add(kind, line, 1);
            }
            if with_request {
                add(R, line, 1);
            }
        }
        rows.sort();
        rows
    }
}

#[test]
fn leak_rows_stay_exact_across_places_paths_and_two_servers() {
    for seed in 1..=150u64 {
        let heap = Heap::new();
        let cores = [
            server(&heap, 3, Exhaustion::Spill, 0),
            server(&heap, 2, Exhaustion::Refuse, 1),
        ];
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut rows = [Rows::default(), Rows::default()];
        let mut held: [Vec<(u32, Bundle)>; 2] = Default::default();
        let mut saved: [Vec<PendingTicket>; 2] = Default::default();
        let mut log = Vec::new();
        for _ in 0..60 {
            let s = rng.below(2);
            let op = rng.below(10);
            log.push((s, op));
            let core = &cores[s];
            let live = core.upgrade().unwrap();
            match op {
                0..=2 => {
                    let refuse = rng.below(4) == 0;
                    let (line, admitted) = admit_at(&live, rng.below(8), refuse);
                    if let Ok(bundle) = admitted {
                        rows[s].out.push((line, true));
                        held[s].push((line, bundle));
                    }
                }
                3 => {
                    if let Some(ticket) = saved[s].pop() {
                        let place = rng.below(4);
                        let refuse = rng.below(4) == 0;
                        if let (line, Ok(bundle)) = admit_with_at(&live, place, ticket, refuse) {
                            rows[s].out.push((line, true));
                            held[s].push((line, bundle));
                        }
                    }
                }
                4 => saved[s].extend(saved_ticket(&live)),
                5 | 6 if !held[s].is_empty() => {
                    let i = rng.below(held[s].len());
                    let (line, mut bundle) = held[s].swap_remove(i);
                    let with_request = bundle.request().is_some();
                    // This place's bundles are alike in the rows but for their request object.
                    let pos = rows[s].out.iter().position(|r| *r == (line, with_request));
                    let pos = pos.expect("the model holds the bundle");
                    if op == 5 && bundle.hand_off().is_some() {
                        rows[s].out[pos].1 = false;
                        held[s].push((line, bundle));
                    } else {
                        rows[s].out.swap_remove(pos);
                        bundle.complete();
                    }
                }
                7 if !held[s].is_empty() && rng.below(3) == 0 => {
                    let i = rng.below(held[s].len());
                    Admitted::forget(held[s].swap_remove(i).1); // stays in its row for good
                }
                8 => {
                    core.ledger().take_trace();
                    if rng.below(2) == 0 {
                        core.ledger().start_trace();
                    }
                }
                9 if rng.below(4) == 0 => drop(core.stop()),
                _ => {}
            }
            for k in 0..2 {
                assert_eq!(
                    bundle_rows(cores[k].ledger(), saved[k].len()),
                    rows[k].expected(),
                    "server {k} after {log:?}"
                );
                check_ledger(cores[k].ledger());
            }
        }
    }
}
