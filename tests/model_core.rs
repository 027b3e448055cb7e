//! Model-based test of the core: random sequences of request events, checked step by step
//! against a small reference model.
//!
//! Each case builds a [`ServerCore`] with a random small pool (capacity 0 to 3, `Spill` or
//! `Refuse`, a random prewarm) and a random downgrade policy, then runs up to 64 operations:
//! request arrival and admission (random body size against a random limit, random engine error
//! or panic in the build step), deferred completion (the bundle completed, ended as client gone
//! or force-closed, or dropped), hand-off of the request object to the engine, client abort, handler
//! error, handler panic (unwinding through `catch_unwind` with the guards held), a saved request
//! consumed by a refusal, a request saved (a ticket alone) and brought back with
//! `Live::admit_with` (before or after stop, refused by the pool or the build, or past the
//! deadline's escalation: its signal comes aborted) or dropped unadmitted, linked signals (one signal's listener aborts another's, the
//! `AbortSignal.any` pattern, or its own: a listener holding its own signal), handles of a
//! signal kept past its request's end (listeners added and aborts through them), stop, collect,
//! a fake clock with the drain deadline, and explicit escalation. Every abort signal has a
//! listener; "cooperative" handlers drop their whole bundle from it, the others keep running.
//!
//! After every step the model and the core must agree on:
//! - the ledger: outstanding and minted counts per kind (exact, so no guard is released twice or
//!   lost), the outcome counts (one per admitted request, the first cause winning), the report's
//!   total, and the mint sites (the harness's own lines, through
//!   `#[track_caller]`);
//! - the trace of mints and releases of the step (exact order where the order is deterministic,
//!   as a multiset for escalation, whose order follows the core's internal slab);
//! - the pool's metrics (capacity, in use, high water, allocated, spills, refusals) and each
//!   context's origin and cleanliness (a recycled context comes back empty);
//! - the wrapper (strong, weak, finalized), and that nothing is minted after it is finalized;
//! - the drain: complete exactly when the model's outstanding ticket count reaches zero after
//!   `stop()`, its `on_complete` hook run once, its waker woken once, and `poll_deadline` /
//!   `escalate` results (status, aborted count, report);
//! - every signal's state and the listeners fired (each at most once, with the right reason),
//!   and the listeners alive: a request's listeners live at most until its end (run once then,
//!   for every outcome but completed; dropped unrun at the release for completed; refused once
//!   it has ended; none run by an abort through a handle kept past a completed request's end).
//!
//! Cases: 256 by default; set `PROPTEST_CASES` for more (`.ci/fuzz-long` runs 20,000).
//! Shrunk failures found so far are kept as explicit regression tests at the end of this file.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use reqguard::engines::{Embedded, Heap};
use reqguard::{
    AbortReason, AbortSignal, Admitted, Config, DowngradePolicy, Drain, DrainStatus, Exhaustion,
    GuardKind, LedgerEvent, Outcome, PendingTicket, PoolMetrics, Refusal, RefusalReason,
    ServerCore,
};

type Core = ServerCore<Embedded<&'static str>, Vec<u8>>;

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// What goes wrong while the request is built (inside `Live::admit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    EngineError,
    Panic,
}

/// How the stack ends a held bundle other than by completing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    ClientGone,
    ForceClosed,
    /// Dropped without `complete`/`end`.
    Dropped,
}

impl Ending {
    fn outcome(self) -> Outcome {
        match self {
            Ending::ClientGone => Outcome::ClientGone,
            Ending::ForceClosed => Outcome::ForceClosed,
            Ending::Dropped => Outcome::Dropped,
        }
    }
}

/// Which held request an operation picks: an index into the live ones, modulo their count.
type Pick = usize;

#[derive(Clone, Debug)]
enum Op {
    /// A request arrives: upgrade, then admit with a body of `body` bytes against `limit`.
    Arrive {
        body: u8,
        limit: u8,
        fault: Fault,
        cooperative: bool,
    },
    /// The answer is written: `Admitted::complete`.
    Complete(Pick),
    /// The stack ends the bundle otherwise (`Admitted::end`, or a plain drop).
    End(Pick, Ending),
    /// The engine takes the request object (`RequestObject::hand_off`).
    HandOff(Pick),
    /// The client disconnects: the signal is aborted; the handler keeps its bundle unless it is
    /// cooperative.
    ClientAbort(Pick),
    /// The handler fails: abort with `HandlerFailed`, then drop the bundle.
    HandlerError(Pick),
    /// The handler panics while holding its bundle; the panic is caught by the loop.
    HandlerPanic(Pick),
    /// A saved request is given back on a refusal path (`Refusal::consume`).
    Consume(Pick),
    /// The newer of two requests (held, or ended with a handle kept) gets a listener that
    /// aborts the older one (the same one: a listener holding its own signal).
    Link(Pick, Pick),
    /// The handler keeps a handle to its request's signal past the request's end.
    Keep(Pick),
    /// An abort through a kept handle (of a request held or ended).
    LateAbort(Pick),
    /// `server.stop()`; the drain's deadline is `deadline_ms` after now.
    Stop { deadline_ms: u16 },
    /// The engine collects garbage.
    Collect,
    /// The fake clock advances; the loop polls the drain's deadline.
    Tick(u16),
    /// The loop escalates the drain at once.
    Escalate,
    /// A request is saved for later (`Live::ticket`: a pending ticket alone).
    Save,
    /// The newest saved request comes back (`Live::admit_with`, Bun's `onSavedRequest`).
    Resume { fault: Fault, cooperative: bool },
    /// The newest saved request ends without coming back (its ticket dropped).
    DropSaved,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let fault = prop_oneof![
        8 => Just(Fault::None),
        1 => Just(Fault::EngineError),
        1 => Just(Fault::Panic),
    ];
    let ending = prop_oneof![
        Just(Ending::ClientGone),
        Just(Ending::ForceClosed),
        Just(Ending::Dropped)
    ];
    prop_oneof![
        24 => (0u8..40, 8u8..48, fault.clone(), any::<bool>()).prop_map(|(body, limit, fault, cooperative)| {
            Op::Arrive { body, limit, fault, cooperative }
        }),
        10 => any::<Pick>().prop_map(Op::Complete),
        8 => (any::<Pick>(), ending).prop_map(|(i, e)| Op::End(i, e)),
        4 => any::<Pick>().prop_map(Op::HandOff),
        4 => any::<Pick>().prop_map(Op::ClientAbort),
        2 => any::<Pick>().prop_map(Op::HandlerError),
        2 => any::<Pick>().prop_map(Op::HandlerPanic),
        2 => any::<Pick>().prop_map(Op::Consume),
        4 => (any::<Pick>(), any::<Pick>()).prop_map(|(a, b)| Op::Link(a, b)),
        3 => any::<Pick>().prop_map(Op::Keep),
        2 => any::<Pick>().prop_map(Op::LateAbort),
        1 => (0u16..400).prop_map(|deadline_ms| Op::Stop { deadline_ms }),
        4 => Just(Op::Collect),
        4 => (0u16..300).prop_map(Op::Tick),
        2 => Just(Op::Escalate),
        3 => Just(Op::Save),
        3 => (fault, any::<bool>()).prop_map(|(fault, cooperative)| {
            Op::Resume { fault, cooperative }
        }),
        1 => Just(Op::DropSaved),
    ]
}

#[derive(Clone, Debug)]
struct Setup {
    capacity: usize,
    exhaustion: Exhaustion,
    downgrade: DowngradePolicy,
    prewarm: usize,
}

fn setup_strategy() -> impl Strategy<Value = Setup> {
    (
        0usize..4,
        prop_oneof![Just(Exhaustion::Spill), Just(Exhaustion::Refuse)],
        prop_oneof![
            Just(DowngradePolicy::OnStop),
            Just(DowngradePolicy::OnDrain)
        ],
        0usize..5,
    )
        .prop_map(|(capacity, exhaustion, downgrade, prewarm)| Setup {
            capacity,
            exhaustion,
            downgrade,
            prewarm,
        })
}

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wrapper {
    Strong,
    Weak,
    Finalized,
}

#[derive(Clone, Debug)]
struct MReq {
    /// The bundle is held (not ended yet).
    held: bool,
    /// Its request object is in the bundle (not handed off).
    request: bool,
    /// The handler still holds a handle to the signal (dropped with the bundle).
    signal_held: bool,
    spilled: bool,
    aborted: Option<AbortReason>,
    cooperative: bool,
    /// Requests whose signals this one's listeners abort.
    links: Vec<usize>,
    /// The request has ended (its outcome decided, its abort, if any, run).
    ended: bool,
    /// The handler kept a handle to the signal past the request's end.
    kept: bool,
}

impl MReq {
    fn live(&self) -> bool {
        self.held
    }

    /// Whether a listener added now may ever run (`AbortSignal::on_abort` returns `true`): the
    /// signal has not fired and its request has not ended.
    fn takes_listeners(&self) -> bool {
        self.aborted.is_none() && !self.ended
    }

    /// The listeners waiting on its signal: its handler's own and its links' until it fires or
    /// its request ends (a request's listeners live at most until its end).
    fn listeners_alive(&self) -> usize {
        if self.takes_listeners() {
            1 + self.links.len()
        } else {
            0
        }
    }
}

#[derive(Clone, Debug, Default)]
struct MPool {
    free: usize,
    metrics: PoolMetrics,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ArriveOutcome {
    Admitted,
    Refused(RefusalReason),
    Panicked,
}

struct Model {
    setup: Setup,
    stopped: bool,
    drained: bool,
    escalated: bool,
    wrapper: Wrapper,
    minted: [u64; 4],
    outcomes: [u64; 5],
    pool: MPool,
    reqs: Vec<MReq>,
    /// Saved requests: tickets held alone, not admitted yet.
    saved: usize,
    clock: Duration,
    deadline: Option<Duration>,
    /// Ledger events of the current step.
    events: Vec<LedgerEvent>,
    /// Listener firings of the current step.
    fired: Vec<(usize, AbortReason)>,
}

fn kind_index(kind: GuardKind) -> usize {
    GuardKind::ALL.iter().position(|&k| k == kind).unwrap()
}

impl Model {
    fn new(setup: &Setup) -> Self {
        let allocated = setup.prewarm.min(setup.capacity);
        Model {
            setup: setup.clone(),
            stopped: false,
            drained: false,
            escalated: false,
            wrapper: Wrapper::Strong,
            minted: [0; 4],
            outcomes: [0; 5],
            pool: MPool {
                free: allocated,
                metrics: PoolMetrics {
                    capacity: setup.capacity,
                    allocated,
                    ..PoolMetrics::default()
                },
            },
            reqs: Vec::new(),
            saved: 0,
            clock: Duration::ZERO,
            deadline: None,
            events: Vec::new(),
            fired: Vec::new(),
        }
    }

    fn outstanding(&self, kind: GuardKind) -> usize {
        self.reqs
            .iter()
            .filter(|r| match kind {
                GuardKind::Ticket | GuardKind::Context | GuardKind::ActivityRef => r.held,
                GuardKind::Request => r.request,
            })
            .count()
            + if kind == GuardKind::Ticket {
                self.saved
            } else {
                0
            }
    }

    fn total_outstanding(&self) -> usize {
        GuardKind::ALL.iter().map(|&k| self.outstanding(k)).sum()
    }

    fn live_ids(&self) -> Vec<usize> {
        (0..self.reqs.len())
            .filter(|&i| self.reqs[i].live())
            .collect()
    }

    /// The requests whose signal the harness holds a handle to: held, or kept past the end.
    fn reachable_ids(&self) -> Vec<usize> {
        (0..self.reqs.len())
            .filter(|&i| self.reqs[i].live() || self.reqs[i].kept)
            .collect()
    }

    fn kept_ids(&self) -> Vec<usize> {
        (0..self.reqs.len())
            .filter(|&i| self.reqs[i].kept)
            .collect()
    }

    fn mint(&mut self, kind: GuardKind) {
        self.minted[kind_index(kind)] += 1;
        self.events.push(LedgerEvent::Minted(kind));
    }

    fn release(&mut self, kind: GuardKind) {
        self.events.push(LedgerEvent::Released(kind));
    }

    /// Pool checkout; `Some(spilled)` or `None` when refused.
    fn checkout(&mut self) -> Option<bool> {
        let m = &mut self.pool.metrics;
        let spilled = if self.pool.free > 0 {
            self.pool.free -= 1;
            false
        } else if m.allocated < m.capacity {
            m.allocated += 1;
            false
        } else {
            match self.setup.exhaustion {
                Exhaustion::Spill => {
                    m.spills += 1;
                    true
                }
                Exhaustion::Refuse => {
                    m.refusals += 1;
                    return None;
                }
            }
        };
        m.in_use += 1;
        m.high_water = m.high_water.max(m.in_use);
        Some(spilled)
    }

    fn checkin(&mut self, spilled: bool) {
        self.pool.metrics.in_use -= 1;
        if !spilled {
            self.pool.free += 1;
        }
    }

    /// A ticket was released: completes the drain when it was the last one after stop.
    fn ticket_released(&mut self) {
        if self.stopped && self.outstanding(GuardKind::Ticket) == 0 {
            self.complete_drain();
        }
    }

    fn complete_drain(&mut self) {
        if self.drained {
            return;
        }
        self.drained = true;
        if self.setup.downgrade == DowngradePolicy::OnDrain && self.wrapper == Wrapper::Strong {
            self.wrapper = Wrapper::Weak;
        }
    }

    fn arrive(&mut self, body: u8, limit: u8, fault: Fault, cooperative: bool) -> ArriveOutcome {
        if self.wrapper == Wrapper::Finalized {
            return ArriveOutcome::Refused(RefusalReason::WrapperFinalized);
        }
        if self.stopped {
            return ArriveOutcome::Refused(RefusalReason::Stopped);
        }
        // The context first: a refusing pool takes nothing, not even a ticket.
        let Some(spilled) = self.checkout() else {
            return ArriveOutcome::Refused(RefusalReason::PoolExhausted);
        };
        self.mint(GuardKind::Ticket);
        self.build(spilled, body, limit, fault, cooperative, None)
    }

    /// A saved request is saved (its ticket minted alone), unless the server is stopped;
    /// `None` when the wrapper is finalized (no proof).
    fn save(&mut self) -> Option<bool> {
        if self.wrapper == Wrapper::Finalized {
            return None;
        }
        if self.stopped {
            return Some(false);
        }
        self.mint(GuardKind::Ticket);
        self.saved += 1;
        Some(true)
    }

    /// The saved request's ticket drops: the request ends unadmitted (no outcome).
    fn drop_saved(&mut self) {
        self.saved -= 1;
        self.release(GuardKind::Ticket);
        self.ticket_released();
    }

    /// The newest saved request comes back: its ticket takes a context, a signal (aborted when
    /// the deadline has escalated) and its request object, or is released with the refusal.
    fn resume(&mut self, fault: Fault, cooperative: bool) -> ArriveOutcome {
        let refused = if self.wrapper == Wrapper::Finalized {
            Some(RefusalReason::WrapperFinalized) // no proof: the loop drops the ticket
        } else {
            match self.checkout() {
                Some(spilled) => {
                    self.saved -= 1;
                    let born = self.escalated.then_some(AbortReason::DrainDeadline);
                    let outcome = self.build(spilled, 0, 1, fault, cooperative, born);
                    if outcome != ArriveOutcome::Admitted {
                        self.ticket_released();
                    }
                    return outcome;
                }
                None => Some(RefusalReason::PoolExhausted),
            }
        };
        self.drop_saved();
        ArriveOutcome::Refused(refused.unwrap())
    }

    /// `build` on a checked-out context whose ticket is minted: the request is admitted with
    /// its signal aborted by `born` (no listener runs: none was added), or the parts go back.
    fn build(
        &mut self,
        spilled: bool,
        body: u8,
        limit: u8,
        fault: Fault,
        cooperative: bool,
        born: Option<AbortReason>,
    ) -> ArriveOutcome {
        self.mint(GuardKind::Context);
        self.mint(GuardKind::ActivityRef);
        let failed = match fault {
            Fault::EngineError => Some(ArriveOutcome::Refused(RefusalReason::Engine("model"))),
            Fault::Panic => Some(ArriveOutcome::Panicked),
            Fault::None if body > limit => {
                Some(ArriveOutcome::Refused(RefusalReason::PayloadTooLarge {
                    limit: limit as usize,
                }))
            }
            Fault::None => None,
        };
        if let Some(outcome) = failed {
            // Reverse order: activity ref, context (back to the pool), ticket.
            self.release(GuardKind::ActivityRef);
            self.release(GuardKind::Context);
            self.checkin(spilled);
            self.release(GuardKind::Ticket);
            return outcome;
        }
        self.mint(GuardKind::Request);
        self.reqs.push(MReq {
            held: true,
            request: true,
            signal_held: true,
            spilled,
            aborted: born,
            cooperative,
            links: Vec::new(),
            ended: false,
            kept: false,
        });
        if born.is_some() && cooperative {
            // Its handler sees `signal.aborted` (its listener refused) and ends it at once.
            self.drop_all(self.reqs.len() - 1);
        }
        ArriveOutcome::Admitted
    }

    /// The engine takes the request object.
    fn hand_off(&mut self, id: usize) {
        let r = &mut self.reqs[id];
        if r.held && r.request {
            r.request = false;
            self.release(GuardKind::Request);
        }
    }

    /// The bundle ends: the outcome is recorded (the deadline's abort wins), the signal fires
    /// unless completed, then the guards release in reverse order. Its listeners are gone
    /// after it: run by its abort, or (completed) dropped unrun.
    fn end(&mut self, id: usize, outcome: Outcome) {
        if !self.reqs[id].held {
            return;
        }
        self.reqs[id].held = false;
        let outcome = match self.reqs[id].aborted {
            None => outcome,
            Some(reason) => Outcome::after_abort(reason),
        };
        self.outcomes[Outcome::ALL.iter().position(|&o| o == outcome).unwrap()] += 1;
        if let Some(reason) = outcome.abort_reason() {
            self.abort(id, reason);
        }
        self.reqs[id].ended = true;
        self.reqs[id].links.clear();
        if std::mem::take(&mut self.reqs[id].request) {
            self.release(GuardKind::Request);
        }
        self.release(GuardKind::ActivityRef);
        self.release(GuardKind::Context);
        self.checkin(self.reqs[id].spilled);
        self.release(GuardKind::Ticket);
        self.ticket_released();
        self.reqs[id].signal_held = false;
    }

    fn drop_all(&mut self, id: usize) {
        self.end(id, Outcome::Dropped);
    }

    fn abort(&mut self, id: usize, reason: AbortReason) -> bool {
        if self.reqs[id].aborted.is_some() {
            return false;
        }
        self.reqs[id].aborted = Some(reason);
        if self.reqs[id].ended {
            // A handle kept past a completed request's end: marked, no listener runs.
            return true;
        }
        // Listeners in order of registration: the handler's own, then the links (all taken out
        // first: a cooperative handler's ends its request, whose end does not drop them).
        self.fired.push((id, reason));
        let links = std::mem::take(&mut self.reqs[id].links);
        if self.reqs[id].cooperative {
            self.drop_all(id);
        }
        for target in links {
            self.abort(target, reason);
        }
        true
    }

    /// Aborts every signal an activity ref holds; returns the bounds on the count reported.
    fn abort_outstanding(&mut self) -> (usize, usize) {
        let snapshot: Vec<usize> = (0..self.reqs.len())
            .filter(|&i| self.reqs[i].held && self.reqs[i].aborted.is_none())
            .collect();
        // The count depends on the core's order when one snapshot signal's links reach another.
        let reached_from_other = snapshot
            .iter()
            .filter(|&&s| {
                snapshot
                    .iter()
                    .any(|&o| o != s && self.reaches_unaborted(o, s))
            })
            .count();
        for &id in &snapshot {
            self.abort(id, AbortReason::DrainDeadline);
        }
        (snapshot.len() - reached_from_other, snapshot.len())
    }

    fn reaches_unaborted(&self, from: usize, to: usize) -> bool {
        let mut stack = vec![from];
        let mut seen = vec![false; self.reqs.len()];
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            for &t in &self.reqs[n].links {
                if t == to {
                    return true;
                }
                if self.reqs[t].aborted.is_none() {
                    stack.push(t);
                }
            }
        }
        false
    }

    fn stop(&mut self, deadline_ms: u16) -> bool {
        if self.stopped {
            return false;
        }
        self.stopped = true;
        self.deadline = Some(self.clock + Duration::from_millis(deadline_ms.into()));
        if self.setup.downgrade == DowngradePolicy::OnStop {
            self.wrapper = Wrapper::Weak;
        }
        if self.outstanding(GuardKind::Ticket) == 0 {
            self.complete_drain();
        }
        true
    }

    fn collect(&mut self) -> usize {
        if self.wrapper == Wrapper::Weak {
            self.wrapper = Wrapper::Finalized;
            1
        } else {
            0
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: the real core, driven like an event loop would
// ---------------------------------------------------------------------------------------------

/// A held request, as a handler keeps it. Fields drop in declaration order.
#[derive(Default)]
struct Parts {
    bundle: Option<Admitted<Vec<u8>, usize>>,
    signal: Option<AbortSignal>,
}

type Slot = Rc<RefCell<Parts>>;

/// Takes a slot's parts out, so they drop outside the `RefCell` borrow.
fn take_parts(slot: &Slot) -> Parts {
    std::mem::take(&mut *slot.borrow_mut())
}

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Counts the listeners of one request alive: one more while a listener holding it exists.
struct Alive(Rc<Cell<usize>>);

impl Alive {
    fn new(count: &Rc<Cell<usize>>) -> Alive {
        count.set(count.get() + 1);
        Alive(Rc::clone(count))
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

struct Harness {
    heap: Heap,
    core: Core,
    slots: Vec<Slot>,
    /// Per request, a handle to its signal kept past its end (`Op::Keep`).
    kept: Vec<Option<AbortSignal>>,
    /// Per request, how many of its signal's listeners are alive.
    alive: Vec<Rc<Cell<usize>>>,
    fired: Rc<RefCell<Vec<(usize, AbortReason)>>>,
    /// Saved requests' tickets, the newest last.
    saved: Vec<PendingTicket>,
    drain: Option<Drain>,
    /// The handle that awaited the drain (kept, so its waker stays registered).
    drain_wait: Option<Drain>,
    drain_hook_runs: Rc<RefCell<u32>>,
    waker: Arc<CountingWaker>,
    /// Whether the drain future was pending when first polled (so its waker must be woken).
    waker_registered: bool,
    epoch: Instant,
    /// Minted counts when the wrapper was finalized.
    minted_at_finalize: Option<[u64; 4]>,
}

const PANIC_TAG: &str = "model_core: deliberate panic";

/// Keeps deliberate panics out of the test output; other panics print as usual.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let deliberate = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|s| *s == PANIC_TAG);
            if !deliberate {
                default(info);
            }
        }));
    });
}

impl Harness {
    fn new(setup: &Setup) -> Self {
        quiet_deliberate_panics();
        let heap = Heap::new();
        let config = Config::default()
            .with_pool_capacity(setup.capacity)
            .unwrap()
            .with_exhaustion(setup.exhaustion)
            .with_downgrade(setup.downgrade)
            .with_prewarm(setup.prewarm);
        let core = ServerCore::embedded_with_context::<Vec<u8>>(heap.alloc("server"), config);
        core.ledger().start_trace();
        Harness {
            heap,
            core,
            slots: Vec::new(),
            kept: Vec::new(),
            alive: Vec::new(),
            fired: Rc::default(),
            saved: Vec::new(),
            drain: None,
            drain_wait: None,
            drain_hook_runs: Rc::default(),
            waker: Arc::default(),
            waker_registered: false,
            epoch: Instant::now(),
            minted_at_finalize: None,
        }
    }

    fn arrive(
        &mut self,
        id: usize,
        body: u8,
        limit: u8,
        fault: Fault,
        coop: bool,
    ) -> ArriveOutcome {
        let Some(live) = self.core.upgrade() else {
            return ArriveOutcome::Refused(Refusal::WRAPPER_FINALIZED.reason());
        };
        let mut dirty = false;
        let admitted = panic::catch_unwind(AssertUnwindSafe(|| {
            live.admit(|ctx| {
                dirty = !ctx.is_empty();
                match fault {
                    Fault::EngineError => Err(Refusal::new(RefusalReason::Engine("model"))),
                    Fault::Panic => panic::panic_any(PANIC_TAG),
                    Fault::None if body > limit => {
                        Err(Refusal::new(RefusalReason::PayloadTooLarge {
                            limit: limit as usize,
                        }))
                    }
                    Fault::None => {
                        ctx.resize(body.into(), 0xAB);
                        Ok(id)
                    }
                }
            })
        }));
        drop(live);
        assert!(
            !dirty,
            "a pooled context came back with the last request's bytes"
        );
        let bundle = match admitted {
            Err(_) => return ArriveOutcome::Panicked,
            Ok(Err(refusal)) => {
                let status = refusal.status();
                assert!(matches!(status, 413 | 500 | 503), "status {status}");
                return ArriveOutcome::Refused(refusal.reason());
            }
            Ok(Ok(bundle)) => bundle,
        };
        assert_eq!(bundle.context().len(), body as usize);
        assert!(
            self.hold(id, bundle, coop),
            "a fresh or recycled signal must not be aborted"
        );
        ArriveOutcome::Admitted
    }

    /// The handler of the admitted request `id` holds its bundle and listens to its signal
    /// (a cooperative one drops the bundle when it fires, or at once when it has fired:
    /// `if (signal.aborted)`). Returns whether the listener was taken.
    fn hold(&mut self, id: usize, bundle: Admitted<Vec<u8>, usize>, coop: bool) -> bool {
        assert_eq!(bundle.request(), Some(&id));
        let slot: Slot = Rc::default();
        let signal = bundle.signal().clone();
        let (fired, listener_slot) = (Rc::clone(&self.fired), Rc::clone(&slot));
        let alive = Rc::default();
        let token = Alive::new(&alive);
        let listening = signal.on_abort(move |reason| {
            let _alive = token;
            fired.borrow_mut().push((id, reason));
            if coop {
                drop(take_parts(&listener_slot));
            }
        });
        assert_eq!(
            listening,
            !signal.is_aborted(),
            "on_abort on an aborted signal"
        );
        *slot.borrow_mut() = Parts {
            bundle: Some(bundle),
            signal: Some(signal),
        };
        assert_eq!(self.slots.len(), id);
        self.slots.push(Rc::clone(&slot));
        self.kept.push(None);
        self.alive.push(alive);
        if !listening && coop {
            drop(take_parts(&slot));
        }
        listening
    }

    /// A request is saved: `None` when the upgrade fails, `Some(false)` when refused (stopped).
    fn save(&mut self) -> Option<bool> {
        let live = self.core.upgrade()?;
        match live.ticket() {
            Ok(ticket) => {
                self.saved.push(ticket);
                Some(true)
            }
            Err(refusal) => {
                assert_eq!(refusal.reason(), RefusalReason::Stopped);
                Some(false)
            }
        }
    }

    /// The newest saved request comes back with `admit_with` (its ticket dropped when the
    /// upgrade fails); a build without a fault makes the request `id`.
    fn resume(&mut self, id: usize, fault: Fault, coop: bool) -> ArriveOutcome {
        let ticket = self.saved.pop().expect("a saved request");
        let Some(live) = self.core.upgrade() else {
            drop(ticket);
            return ArriveOutcome::Refused(RefusalReason::WrapperFinalized);
        };
        let admitted = panic::catch_unwind(AssertUnwindSafe(|| {
            live.admit_with(ticket, |ctx| {
                assert!(ctx.is_empty(), "a pooled context came back dirty");
                match fault {
                    Fault::EngineError => Err(Refusal::new(RefusalReason::Engine("model"))),
                    Fault::Panic => panic::panic_any(PANIC_TAG),
                    Fault::None => Ok(id),
                }
            })
        }));
        drop(live);
        match admitted {
            Err(_) => ArriveOutcome::Panicked,
            Ok(Err(refusal)) => ArriveOutcome::Refused(refusal.reason()),
            Ok(Ok(bundle)) => {
                self.hold(id, bundle, coop);
                ArriveOutcome::Admitted
            }
        }
    }

    fn signal(&self, id: usize) -> AbortSignal {
        self.slots[id]
            .borrow()
            .signal
            .clone()
            .expect("a live request's handler holds its signal")
    }

    /// A handle to the signal of a request held, or ended with a handle kept.
    fn handle(&self, id: usize) -> AbortSignal {
        match &self.kept[id] {
            Some(kept) => kept.clone(),
            None => self.signal(id),
        }
    }

    /// Ends the bundle `id` with `outcome` (`Dropped`: a plain drop), outside the slot's borrow.
    fn end(&mut self, id: usize, outcome: Outcome) {
        let parts = take_parts(&self.slots[id]);
        if let Some(bundle) = parts.bundle {
            match outcome {
                Outcome::Completed => bundle.complete(),
                Outcome::Dropped => drop(bundle),
                other => bundle.end(other),
            }
        }
    }
}

fn sorted(mut v: Vec<LedgerEvent>) -> Vec<String> {
    let mut s: Vec<String> = v.drain(..).map(|e| format!("{e:?}")).collect();
    s.sort();
    s
}

fn check_step(h: &mut Harness, m: &mut Model, step: usize, op: &dyn fmt::Debug, ordered: bool) {
    let ctx = || format!("after step {step}: {op:?}");
    let ledger = h.core.ledger();

    // The ledger equals the model, kind by kind, outstanding and minted.
    for kind in GuardKind::ALL {
        assert_eq!(
            ledger.outstanding(kind),
            m.outstanding(kind),
            "{kind} outstanding, {}",
            ctx()
        );
        assert_eq!(
            ledger.minted(kind),
            m.minted[kind_index(kind)],
            "{kind} minted, {}",
            ctx()
        );
    }
    let outcomes = ledger.outcomes();
    let counted = Outcome::ALL.map(|o| outcomes.count(o));
    assert_eq!(counted, m.outcomes, "outcomes, {}", ctx());
    let report = ledger.report();
    assert_eq!(report.total(), m.total_outstanding(), "report, {}", ctx());
    if reqguard::Ledger::tracks_sites() {
        for site in report.sites() {
            let at = site.location.expect("sites are tracked");
            assert!(
                at.file().ends_with("model_core.rs"),
                "mint site {at} is not the caller's, {}",
                ctx()
            );
        }
    }

    // The step's mints and releases, in order where the order is the model's to know.
    let trace = ledger.take_trace();
    ledger.start_trace();
    let expected = std::mem::take(&mut m.events);
    if ordered {
        assert_eq!(trace, expected, "ledger trace, {}", ctx());
    } else {
        assert_eq!(sorted(trace), sorted(expected), "ledger trace, {}", ctx());
    }

    // Listeners fired exactly as the model says, each at most once.
    let mut fired = std::mem::take(&mut *h.fired.borrow_mut());
    let mut expected_fired = std::mem::take(&mut m.fired);
    if !ordered {
        fired.sort_by_key(|&(id, r)| (id, format!("{r:?}")));
        expected_fired.sort_by_key(|&(id, r)| (id, format!("{r:?}")));
    }
    assert_eq!(fired, expected_fired, "listeners fired, {}", ctx());

    // The pool.
    assert_eq!(h.core.pool_metrics(), m.pool.metrics, "pool, {}", ctx());

    // Each held request.
    for (id, r) in m.reqs.iter().enumerate() {
        let parts = h.slots[id].borrow();
        assert_eq!(parts.bundle.is_some(), r.held, "req {id} held, {}", ctx());
        assert_eq!(
            parts.bundle.as_ref().is_some_and(|b| b.request().is_some()),
            r.request,
            "req {id} request, {}",
            ctx()
        );
        assert_eq!(
            parts.signal.is_some(),
            r.signal_held,
            "req {id} signal, {}",
            ctx()
        );
        if let Some(b) = &parts.bundle {
            let spilled = b.is_spilled();
            assert_eq!(spilled, r.spilled, "req {id} spilled, {}", ctx());
        }
        for s in parts.signal.iter().chain(&h.kept[id]) {
            assert_eq!(s.reason(), r.aborted, "req {id} signal reason, {}", ctx());
            assert_eq!(
                s.pending_activity(),
                usize::from(r.held),
                "req {id} pending activity, {}",
                ctx()
            );
        }
        assert_eq!(
            h.alive[id].get(),
            r.listeners_alive(),
            "req {id} listeners alive, {}",
            ctx()
        );
    }

    // The wrapper, and nothing minted once it is finalized.
    let cell = h.core.wrapper();
    assert_eq!(
        cell.is_strong(),
        m.wrapper == Wrapper::Strong,
        "strong, {}",
        ctx()
    );
    assert_eq!(
        cell.weak().is_finalized(),
        m.wrapper == Wrapper::Finalized,
        "finalized, {}",
        ctx()
    );
    let minted: [u64; 4] = GuardKind::ALL.map(|k| h.core.ledger().minted(k));
    match h.minted_at_finalize {
        Some(at) => assert_eq!(minted, at, "minted after finalization, {}", ctx()),
        None if m.wrapper == Wrapper::Finalized => h.minted_at_finalize = Some(minted),
        None => {}
    }

    // The drain.
    assert_eq!(h.core.is_stopped(), m.stopped, "stopped, {}", ctx());
    if let Some(drain) = &h.drain {
        assert_eq!(drain.is_complete(), m.drained, "drain complete, {}", ctx());
        assert_eq!(
            drain.outstanding(),
            m.outstanding(GuardKind::Ticket),
            "drain outstanding, {}",
            ctx()
        );
        assert_eq!(
            drain.drain_time().is_some(),
            m.drained,
            "drain time, {}",
            ctx()
        );
        assert_eq!(
            *h.drain_hook_runs.borrow(),
            u32::from(m.drained),
            "hook, {}",
            ctx()
        );
        let wakes = h.waker.0.load(Ordering::SeqCst);
        let expected_wakes = usize::from(m.drained && h.waker_registered);
        assert_eq!(wakes, expected_wakes, "drain waker, {}", ctx());
    }
}

/// Outcome tallies, printed when `MODEL_STATS` is set (to see what the random runs reach).
mod tally {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    static TALLY: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

    pub(super) fn hit(what: impl Into<String>) {
        if std::env::var_os("MODEL_STATS").is_some() {
            *TALLY.lock().unwrap().entry(what.into()).or_default() += 1;
        }
    }

    pub(super) fn print() {
        if std::env::var_os("MODEL_STATS").is_some() {
            for (what, n) in TALLY.lock().unwrap().iter() {
                eprintln!("{n:>9}  {what}");
            }
        }
    }
}

fn pick(ids: &[usize], i: &Pick) -> Option<usize> {
    (!ids.is_empty()).then(|| ids[*i % ids.len()])
}

/// Runs one operation on both sides; returns whether the step's order is deterministic.
fn apply(h: &mut Harness, m: &mut Model, op: &Op) -> bool {
    let live = m.live_ids();
    match op {
        &Op::Arrive {
            body,
            limit,
            fault,
            cooperative,
        } => {
            let id = m.reqs.len();
            let expected = m.arrive(body, limit, fault, cooperative);
            let got = h.arrive(id, body, limit, fault, cooperative);
            assert_eq!(got, expected, "arrival outcome");
            tally::hit(match &got {
                ArriveOutcome::Refused(RefusalReason::PayloadTooLarge { .. }) => {
                    "arrive: 413".into()
                }
                other => format!("arrive: {other:?}"),
            });
        }
        Op::Complete(i) => {
            if let Some(id) = pick(&live, i) {
                m.end(id, Outcome::Completed);
                h.end(id, Outcome::Completed);
            }
        }
        Op::End(i, ending) => {
            if let Some(id) = pick(&live, i) {
                m.end(id, ending.outcome());
                h.end(id, ending.outcome());
            }
        }
        Op::HandOff(i) => {
            if let Some(id) = pick(&live, i) {
                let expected = m.reqs[id].request.then_some(id);
                let got = h.slots[id].borrow_mut().bundle.as_mut().unwrap().hand_off();
                assert_eq!(got, expected, "hand-off");
                m.hand_off(id);
            }
        }
        Op::ClientAbort(i) => {
            if let Some(id) = pick(&live, i) {
                let expected = m.abort(id, AbortReason::ClientDisconnected);
                tally::hit(format!("client abort: fired {expected}"));
                let signal = h.signal(id);
                assert_eq!(signal.abort(AbortReason::ClientDisconnected), expected);
                drop(signal);
            }
        }
        Op::HandlerError(i) => {
            if let Some(id) = pick(&live, i) {
                let expected = m.abort(id, AbortReason::HandlerFailed);
                let signal = h.signal(id);
                assert_eq!(signal.abort(AbortReason::HandlerFailed), expected);
                drop(signal);
                m.drop_all(id);
                drop(take_parts(&h.slots[id]));
            }
        }
        Op::HandlerPanic(i) => {
            if let Some(id) = pick(&live, i) {
                m.drop_all(id);
                let slot = Rc::clone(&h.slots[id]);
                let result = panic::catch_unwind(AssertUnwindSafe(move || {
                    let _held = take_parts(&slot); // dropped while unwinding
                    panic::panic_any(PANIC_TAG);
                }));
                assert!(result.is_err());
            }
        }
        Op::Consume(i) => {
            if let Some(id) = pick(&live, i) {
                m.drop_all(id);
                let refusal = Refusal::WRAPPER_FINALIZED.consume(take_parts(&h.slots[id]));
                assert_eq!(refusal.status(), 503);
            }
        }
        Op::Link(a, b) => {
            let reachable = m.reachable_ids();
            if let (Some(a), Some(b)) = (pick(&reachable, a), pick(&reachable, b)) {
                // Edges go from newer to older, or to itself (a listener holding its own
                // signal: a cycle only its request's end or abort breaks).
                let (newer, older) = (a.max(b), a.min(b));
                let target = h.handle(older);
                let expected = m.reqs[newer].takes_listeners();
                let token = Alive::new(&h.alive[newer]);
                let added = h.handle(newer).on_abort(move |reason| {
                    let _alive = token;
                    target.abort(reason);
                });
                assert_eq!(added, expected, "link added");
                tally::hit(format!(
                    "link: added {expected}, to itself {}, newer ended {}",
                    newer == older,
                    m.reqs[newer].ended
                ));
                if expected {
                    m.reqs[newer].links.push(older);
                }
            }
        }
        Op::Keep(i) => {
            if let Some(id) = pick(&live, i) {
                m.reqs[id].kept = true;
                h.kept[id] = Some(h.signal(id));
            }
        }
        Op::LateAbort(i) => {
            if let Some(id) = pick(&m.kept_ids(), i) {
                let reason = AbortReason::Other("late");
                tally::hit(format!("late abort: ended {}", m.reqs[id].ended));
                let expected = m.abort(id, reason);
                let kept = h.kept[id].clone().expect("kept");
                assert_eq!(kept.abort(reason), expected, "late abort fired");
            }
        }
        &Op::Stop { deadline_ms } => {
            let first = m.stop(deadline_ms);
            let drain = h.core.stop();
            if first {
                drain.set_deadline(h.epoch + m.deadline.unwrap());
                let runs = Rc::clone(&h.drain_hook_runs);
                drain.on_complete(move || *runs.borrow_mut() += 1);
                let waker = Waker::from(Arc::clone(&h.waker));
                let mut fut = drain.clone();
                let polled = std::pin::Pin::new(&mut fut).poll(&mut Context::from_waker(&waker));
                assert_eq!(polled.is_ready(), m.drained);
                h.waker_registered = polled.is_pending();
                assert_eq!(drain.waiters(), usize::from(polled.is_pending()));
                h.drain = Some(drain);
                h.drain_wait = Some(fut);
            }
            assert!(h.core.drain().is_some());
        }
        Op::Collect => {
            let expected = m.collect();
            tally::hit(format!(
                "collect: {expected} finalized, {} tickets out",
                m.outstanding(GuardKind::Ticket)
            ));
            assert_eq!(h.heap.collect(), expected, "objects collected");
            assert_eq!(
                h.core.upgrade().is_none(),
                m.wrapper == Wrapper::Finalized,
                "upgrade after collect"
            );
        }
        &Op::Tick(ms) => {
            m.clock += Duration::from_millis(ms.into());
            if let Some(drain) = h.drain.clone() {
                let now = h.epoch + m.clock;
                let expected_pending = !m.drained && now < h.epoch + m.deadline.unwrap();
                let first_expiry = !m.drained && !expected_pending && !m.escalated;
                let bounds = if first_expiry {
                    m.escalated = true;
                    m.abort_outstanding()
                } else {
                    (0, 0)
                };
                let status = drain.poll_deadline(now);
                tally::hit(match &status {
                    DrainStatus::Complete => "poll_deadline: complete".to_string(),
                    DrainStatus::Pending { .. } => "poll_deadline: pending".to_string(),
                    DrainStatus::Expired(r) => {
                        format!("poll_deadline: expired, {} aborted", r.aborted_signals)
                    }
                });
                match status {
                    DrainStatus::Complete => assert!(m.drained, "complete too early"),
                    DrainStatus::Pending { outstanding } => {
                        assert!(expected_pending, "pending past the deadline");
                        assert_eq!(outstanding, m.outstanding(GuardKind::Ticket));
                    }
                    DrainStatus::Expired(report) => {
                        assert!(!m.drained && !expected_pending, "expired wrongly");
                        check_report(&report, m, bounds);
                    }
                }
                return false;
            }
        }
        Op::Save => {
            let expected = m.save();
            assert_eq!(h.save(), expected, "saved");
            tally::hit(format!("save: {expected:?}"));
        }
        &Op::Resume { fault, cooperative } => {
            if m.saved > 0 {
                let id = m.reqs.len();
                let born_aborted = m.escalated;
                let expected = m.resume(fault, cooperative);
                let got = h.resume(id, fault, cooperative);
                assert_eq!(got, expected, "resumed outcome");
                tally::hit(format!(
                    "resume: {got:?}, stopped {}, escalated {born_aborted}",
                    m.stopped
                ));
            }
        }
        Op::DropSaved => {
            if m.saved > 0 {
                m.drop_saved();
                drop(h.saved.pop());
            }
        }
        Op::Escalate => {
            if let Some(drain) = h.drain.clone() {
                m.escalated = true;
                let bounds = m.abort_outstanding();
                let report = drain.escalate();
                tally::hit(format!(
                    "escalate: {} aborted, bounds {bounds:?}",
                    report.aborted_signals
                ));
                assert_eq!(report.complete, m.drained);
                check_report_counts(&report, m, bounds);
                return false;
            }
        }
    }
    true
}

fn check_report(report: &reqguard::DrainReport, m: &Model, bounds: (usize, usize)) {
    assert!(!report.complete);
    assert_eq!(report.drain_time, None);
    check_report_counts(report, m, bounds);
}

fn check_report_counts(report: &reqguard::DrainReport, m: &Model, (lo, hi): (usize, usize)) {
    assert!(
        (lo..=hi).contains(&report.aborted_signals),
        "aborted {} not in {lo}..={hi}",
        report.aborted_signals
    );
    assert_eq!(report.outstanding.total(), m.total_outstanding());
}

/// Runs `ops`, then shuts down: stop, complete everything, collect. Checks every step.
fn run(setup: &Setup, ops: &[Op]) {
    let mut m = Model::new(setup);
    let mut h = Harness::new(setup);
    for (step, op) in ops.iter().enumerate() {
        let ordered = apply(&mut h, &mut m, op);
        check_step(&mut h, &mut m, step, op, ordered);
    }
    // Shutdown: stop, let every handler finish, collect.
    // The deadline passes: escalation aborts what is still out; cooperative handlers let go.
    let tail = [Op::Stop { deadline_ms: 0 }, Op::Tick(1000)];
    for op in &tail {
        let ordered = apply(&mut h, &mut m, op);
        check_step(&mut h, &mut m, ops.len(), op, ordered);
    }
    // Every saved request comes back past the deadline (its signal aborted), unless the
    // wrapper was finalized (its ticket drops).
    while m.saved > 0 {
        let op = Op::Resume {
            fault: Fault::None,
            cooperative: false,
        };
        let ordered = apply(&mut h, &mut m, &op);
        check_step(&mut h, &mut m, ops.len(), &op, ordered);
    }
    for id in m.live_ids() {
        m.end(id, Outcome::Completed);
        h.end(id, Outcome::Completed);
        check_step(
            &mut h,
            &mut m,
            ops.len() + 1,
            &format_args!("shutdown: complete {id}"),
            true,
        );
    }
    assert!(m.drained);
    let op = Op::Collect;
    let ordered = apply(&mut h, &mut m, &op);
    check_step(&mut h, &mut m, ops.len() + 2, &op, ordered);
    assert_eq!(m.wrapper, Wrapper::Finalized);
    h.core.ledger().assert_quiescent();
    assert_eq!(h.core.pool_metrics().in_use, 0);
    // A late request on a kept-alive connection: 503, nothing taken.
    let late = Op::Arrive {
        body: 0,
        limit: 1,
        fault: Fault::None,
        cooperative: false,
    };
    let ordered = apply(&mut h, &mut m, &late);
    check_step(&mut h, &mut m, ops.len() + 3, &late, ordered);
    tally::hit(format!(
        "case: {} ops, {:?}",
        ops.len() / 16 * 16,
        setup.exhaustion
    ));
    drop(h.slots);
    drop(h.kept);
    for (id, alive) in h.alive.iter().enumerate() {
        assert_eq!(alive.get(), 0, "req {id}: listeners alive at the end");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        max_shrink_iters: 4096,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/model_core.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn core_matches_model(setup in setup_strategy(), ops in prop::collection::vec(op_strategy(), 0..64)) {
        run(&setup, &ops);
    }
}

#[test]
fn zz_print_tally() {
    // Runs last only with --test-threads=1; the tally is for eyes, not for assertions.
    tally::print();
}

// ---------------------------------------------------------------------------------------------
// Regression cases: shrunk failures, kept as plain tests (their seeds are also in
// tests/proptest-regressions/model_core.txt, which proptest replays first)
// ---------------------------------------------------------------------------------------------

/// Found by the model on its first run: a signal whose listener held the last handle to another
/// signal (the `AbortSignal.any` pattern). Recycling the first signal reset it inside the
/// borrow of the spare list; dropping the listener recycled the second signal, which borrowed
/// the spare list again: "RefCell already borrowed", a panic inside `Drop` (an abort if it
/// happens while unwinding). Fixed in `Shared::recycle_signal` by resetting outside the borrow.
#[test]
fn regression_listener_holding_the_last_handle_of_another_signal() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let older = live.signal();
    let newer = live.signal();
    let target = older.clone();
    assert!(newer.on_abort(move |reason| {
        target.abort(reason);
    }));
    drop(older); // the listener now holds the older signal's last handle
    drop(newer); // recycling `newer` drops its listener, which recycles `older`
                 // Both were recycled reset: the next two signals are clean and distinct.
    let (a, b) = (live.signal(), live.signal());
    assert!(!a.same_as(&b));
    assert!(!a.is_aborted() && !b.is_aborted());
    assert!(!a.has_pending_activity() && !b.has_pending_activity());
    core.ledger().assert_quiescent();
}

/// The same bug as found through the model: a request's signal linked to an older request's,
/// then both handlers finish, the older first.
#[test]
fn regression_model_linked_requests_complete_in_order() {
    let (setup, arrive) = plain(2);
    let ops = [arrive.clone(), arrive.clone(), arrive, Op::Link(0, 2)];
    run(&setup, &ops);
}

/// A spilling pool of `capacity` under `OnStop`, and an arrival admitted without fault.
fn plain(capacity: usize) -> (Setup, Op) {
    let setup = Setup {
        capacity,
        exhaustion: Exhaustion::Spill,
        downgrade: DowngradePolicy::OnStop,
        prewarm: 0,
    };
    let arrive = Op::Arrive {
        body: 0,
        limit: 8,
        fault: Fault::None,
        cooperative: false,
    };
    (setup, arrive)
}

/// Round 26 (found by qa-embed25): a listener holding its own request's signal on a request
/// that completes was a cycle nothing broke (its signal never fires, G8): the listeners stayed
/// alive for good. Then, through a handle kept past the end, a listener added (refused now) and
/// an abort (which runs none).
#[test]
fn regression_model_a_listener_holding_its_own_signal_on_a_completed_request() {
    let (setup, arrive) = plain(1);
    run(&setup, &[arrive.clone(), Op::Link(0, 0), Op::Complete(0)]);
    let kept = [
        arrive,
        Op::Keep(0),
        Op::Complete(0),
        Op::Link(0, 0),
        Op::LateAbort(0),
    ];
    run(&setup, &kept);
}

/// Round 27 (QA embed26-2, found by qa-embed26): a saved request brought back with `admit_with`
/// past the deadline's escalation got an unaborted signal, which later polls never aborted:
/// `[Save]` alone (the shutdown brings it back after its `Tick`) and a cooperative handler,
/// which ends its request at once on the aborted signal it is given.
#[test]
fn regression_model_a_saved_request_brought_back_past_the_deadline() {
    let (setup, _) = plain(0);
    run(&setup, &[Op::Save]);
    let resume = Op::Resume {
        fault: Fault::None,
        cooperative: true,
    };
    let stop = Op::Stop { deadline_ms: 5 };
    run(&setup, &[Op::Save, Op::Save, stop, Op::Tick(10), resume]);
}
