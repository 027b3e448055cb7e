//! Admission strategies: every request through reqguard's guards, or (benchmark baseline only)
//! the same work with no accounting at all.
//!
//! The server is generic over [`Accounting`] and monomorphized, so [`Unaccounted`] costs nothing
//! and the throughput benchmark compares the guarded path against plain serving.

use std::any::Any;
use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::admit::{GuardedHeld, KeptBundle, Outcome, OutcomeCounts, Refusal, RefusalReason};
use crate::callback::{call_caught, caught, forget_none};
use crate::engines::{Embedded, Handle, Heap};
use crate::ledger::{LeakReport, Ledger};
use crate::pool::{PoolMetrics, Recycle};
use crate::server::{Config, ServerCore};
use crate::signal::{AbortReason, AbortSignal};
use crate::ticket::{Drain, DrainStatus};
use crate::wrapper::{Engine, Live};

/// Where a graceful stop stands, from [`Accounting::poll_stop`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopStatus {
    /// Every admitted request has ended.
    Complete,
    /// Requests are still in flight and the deadline has not passed.
    Pending,
    /// The deadline passed with requests in flight; `aborted` signals were aborted by this poll.
    Expired {
        /// Signals aborted by this poll (zero after the first expired poll).
        aborted: usize,
    },
}

/// What the accounting found at the end of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountingReport {
    /// Guards still outstanding (0 unless something leaked; always 0 when unaccounted).
    pub leaked: usize,
    /// The leaked guards with their mint sites.
    pub leaks: LeakReport,
    /// From stop to the last admitted request ending.
    pub drain_time: Option<Duration>,
    /// The context pool's figures (guarded only).
    pub pool: Option<PoolMetrics>,
    /// How the admitted requests ended, per outcome (all zero when unaccounted).
    pub outcomes: OutcomeCounts,
}

/// How the server admits a request and accounts for it until its response is written.
///
/// [`Guarded`] is the real thing (upgrade, then the reqguard bundle); [`Unaccounted`] is a
/// benchmark baseline. The server calls, per request: [`admit`](Accounting::admit) after the
/// request is parsed and before the handler runs, and [`end`](Accounting::end) with the
/// request's [`Outcome`]: `Completed` when the response is written, `Dropped` when the handler panicked, `ClientGone` when the connection
/// went away, `ForceClosed` when the server closed it.
///
/// # Panics
///
/// A panic in [`admit`](Accounting::admit) (a [`Guarded`]'s [`ScopeProvider`] included),
/// [`stop`](Accounting::stop), [`poll_stop`](Accounting::poll_stop),
/// [`report`](Accounting::report) or [`ledger`](Accounting::ledger) (a loop group's stop ladder
/// reads it at each step) is caught and counted in
/// [`Stats::panics`](crate::http::Stats::panics), and the server goes on: a panicking
/// `admit` is the request's `500` and `Connection: close` (counted refused; whatever it had
/// taken was dropped by the unwinding: a `Guarded` bundle ends [`Outcome::Dropped`]); after a
/// panicking `stop` the server's drain deadline rules; a panicking `poll_stop` reads as
/// `Complete` when nothing is in flight, else `Pending`; a panicking `report`, as empty figures;
/// a panicking `ledger`, as none. The figures are the implementation's to get right: a group
/// sums its loops' reports saturating, and a ledger that goes backwards between two reads
/// (another core's each time) makes a step's `ended` count zero, not a wrapped-around count.
/// An implementation that can fail answers with a [`Refusal`] instead.
///
/// The per-request calls (`signal`, `this`, `handled`, `end`, and `read_ended` once per read)
/// are caught too, and counted, unless the implementation says they
/// cannot panic ([`MAY_PANIC`](Accounting::MAY_PANIC) `false`, as [`Guarded`] and
/// [`Unaccounted`] do: the catch costs instructions on every request): a panicking `signal` or
/// `this` reads as `None`, `handled` and `read_ended` as done, and `end` as ended (the
/// request was answered, its `Held` dropped by the unwinding). Set it `false` only
/// if they cannot panic: `this` is then read when a handler asks for it, inside the handler's
/// call (its panic is the handler's: that request is answered `500`), and a panic in the
/// others unwinds out of the loop's turn, which
/// [`Server::run`](crate::http::Server::run) catches once around all its turns (no cost per
/// request): it counts the panic in [`Stats::panics`](crate::http::Stats::panics), closes
/// every connection open at that moment (it cannot tell which one the panic left half-done:
/// each request on them ends once, *force closed* unless its signal fired first) and serves
/// on. In a [`Session`](crate::http::Session) the panic reaches the caller of the session's
/// method.
///
/// # Examples
///
/// The calls the server makes, through any accounting:
///
/// ```
/// use std::time::{Duration, Instant};
/// use reqguard::http::{Accounting, Guarded, StopStatus, Unaccounted};
/// use reqguard::{Config, Outcome};
///
/// /// One request, as the server serves it: admit, call the handler, write the answer.
/// fn serve_one<A: Accounting>(accounting: &mut A) -> u16 {
///     let held = match accounting.admit() {
///         Ok(held) => held,
///         Err(refusal) => return refusal.status(), // 503, holding nothing
///     };
///     accounting.handled(); // the handler returned
///     A::end(held, Outcome::Completed); // its answer is written
///     accounting.read_ended(); // the connection's pass over its input is done
///     200
/// }
///
/// let mut guarded = Guarded::embedded("server", Config::default());
/// assert_eq!(serve_one(&mut guarded), 200);
/// assert_eq!(serve_one(&mut Unaccounted::new()), 200); // the benchmark baseline
///
/// let now = Instant::now();
/// guarded.stop(now + Duration::from_secs(5));
/// assert_eq!(serve_one(&mut guarded), 503); // late: refused
/// assert_eq!(guarded.poll_stop(now, 0), StopStatus::Complete);
/// let report = guarded.report();
/// assert_eq!((report.outcomes.completed, report.leaked), (1, 0));
/// ```
pub trait Accounting {
    /// What an admitted request holds until its response is written.
    type Held;

    /// Whether the per-request calls ([`signal`](Accounting::signal),
    /// [`this`](Accounting::this), [`handled`](Accounting::handled), [`end`](Accounting::end),
    /// [`read_ended`](Accounting::read_ended)) may panic, so that the server must catch them
    /// (some instructions per request). True by default; [`Guarded`] and [`Unaccounted`] say
    /// `false`: theirs run no user code uncaught, but for the drop of the engine's strong
    /// handle (the handler's `this`, let go in `read_ended`), which [`Engine`]'s contract says
    /// must not panic. An implementation that says `false` and panics there costs the loop
    /// every connection open at that moment (see [`Accounting`]'s `# Panics`).
    const MAY_PANIC: bool = true;

    /// Admits one request: upgrade first, then take everything, or refuse holding nothing.
    ///
    /// # Errors
    ///
    /// The [`Refusal`] to answer with (503 and `Connection: close`).
    fn admit(&mut self) -> Result<Self::Held, Refusal>;

    /// The request's abort signal, if this accounting has signals.
    fn signal(held: &Self::Held) -> Option<&AbortSignal>;

    /// Ends an admitted request with `outcome` (see [`Admitted::end`](crate::Admitted::end)); the default drops it.
    fn end(held: Self::Held, outcome: Outcome) {
        let _ = outcome;
        drop(held);
    }

    /// Sealed: what the server calls to end a request it admitted through `self` and answered
    /// within the same call (a request answered at once), with the accounting that admitted it
    /// at hand. Nothing outside the crate can call it nor override it: its last parameter is of
    /// a type no one outside the crate can name (as `std` seals `Error::type_id`), so `held` is
    /// always one `self` admitted (the dispatcher stays borrowed from the admission to this
    /// call: its accounting cannot be swapped meanwhile). It is [`end`](Accounting::end) for
    /// every accounting but [`Guarded`], which gives the bundle's pooled slot back to its own
    /// server core's pool with the slot's handle on the pool kept in it, for the next request
    /// (no count down here, nor up at the next admission; invariant 7 of the pool's slots).
    #[doc(hidden)]
    #[inline(always)]
    fn end_here(&self, held: Self::Held, outcome: Outcome, _: AdmittedHere) {
        Self::end(held, outcome);
    }

    /// Sealed: whether the accounting keeps the bundles of the requests the server dispatches
    /// ([`keep_here`](Accounting::keep_here)), so that the `Held` the server gets for a
    /// request is an empty stand-in, with nothing to end: the dispatch lets it go at once and
    /// holds nothing across the handler's call. `false` for every accounting but [`Guarded`]
    /// with the server's context, `()`.
    #[doc(hidden)]
    #[inline(always)]
    fn keeps(_: AdmittedHere) -> bool
    where
        Self: Sized,
    {
        false
    }

    /// Sealed: the bundle kept in this pass renewed for the request about to be dispatched
    /// (its own request ends *completed*, this one is minted into it), or `None`: the server
    /// admits the request. `None` for every accounting but [`Guarded`], which keeps the bundle
    /// of the request the server dispatches ([`keep_here`](Accounting::keep_here)) and after
    /// its answer for the next request of the same pass over the input, ending it at the
    /// pass's end ([`read_ended`](Accounting::read_ended)); its `Some` is an empty stand-in,
    /// the bundle staying where it is kept. Nothing outside the crate can call these sealed
    /// methods nor override them: their last parameter is of a type no one outside the crate
    /// can name, as [`end_here`](Accounting::end_here)'s.
    #[doc(hidden)]
    #[inline(always)]
    fn renew_here(&mut self, _: AdmittedHere) -> Option<Self::Held> {
        None
    }

    /// Sealed: `held`, just admitted through `self` for the request being dispatched, kept
    /// by the accounting (an empty stand-in returned) or returned as it is (every accounting
    /// but [`Guarded`]).
    #[doc(hidden)]
    #[inline(always)]
    fn keep_here(&mut self, held: Self::Held, _: AdmittedHere) -> Self::Held {
        held
    }

    /// Sealed: the signal of the request being dispatched, whose bundle is `held`, for its
    /// handler's [`Request`](crate::http::Request): [`signal`](Accounting::signal) of `held`
    /// for every accounting but [`Guarded`] with the server's context, which keeps the bundle
    /// and lends its signal when the handler asks ([`signal_lent`](Accounting::signal_lent)):
    /// `None` here.
    #[doc(hidden)]
    #[inline(always)]
    fn signal_here<'a>(&'a self, held: &'a Self::Held, _: AdmittedHere) -> Option<&'a AbortSignal> {
        Self::signal(held)
    }

    /// Sealed: a pass over a connection's input begins (the reading loop's start, before
    /// its first request). Nothing for every accounting but [`Guarded`], whose bundle kept
    /// from an earlier pass (one a panic unwound out of) is not renewed from here.
    #[doc(hidden)]
    #[inline(always)]
    fn pass_begins(&mut self, _: AdmittedHere) {}

    /// Sealed: the signal of the request being dispatched whose bundle the accounting keeps
    /// ([`keep_here`](Accounting::keep_here)), lent to its handler
    /// ([`Request::signal`](crate::http::Request::signal), read through the request's
    /// [`this_source`](Accounting::this_source) when a handler asks): `None` for every
    /// accounting but [`Guarded`] with the server's context, whose dispatch gives the handler
    /// no signal of its own (so a request whose handler does not ask pays nothing for it).
    #[doc(hidden)]
    #[inline(always)]
    fn signal_lent(&self, _: ThisAsked) -> Option<&AbortSignal> {
        None
    }

    /// Sealed: the bundle of the request being dispatched, which the accounting keeps
    /// ([`keeps`](Accounting::keeps)) and the request is parked (deferred, or queued behind
    /// another answer): taken out. Never called for an accounting that keeps none.
    #[doc(hidden)]
    #[inline(always)]
    fn take_kept_here(&mut self, _: AdmittedHere) -> Self::Held {
        unreachable!("a bundle taken from an accounting that keeps none")
    }

    /// Sealed: the handler of the request being dispatched panicked, and the request has no
    /// signal of its own ([`signal_here`](Accounting::signal_here) gave none): its bundle,
    /// which the accounting keeps, ends *dropped* (its signal aborted) when it ends, before
    /// the next request's admission or at the pass's end; it is not renewed. Nothing for
    /// every accounting but [`Guarded`] with the server's context. No user code runs between
    /// the panic and that end (the rest of the dispatch writes the `500`).
    #[doc(hidden)]
    #[inline(always)]
    fn handler_panicked(&self, _: AdmittedHere) {}

    /// Sealed: the bundle of the request being dispatched, which is parked (deferred, or
    /// queued behind another answer): `held`, or the one kept for it, taken out.
    #[doc(hidden)]
    #[inline(always)]
    fn take_kept(&mut self, held: Self::Held, _: AdmittedHere) -> Self::Held {
        held
    }

    /// The wrapper the last admitted request's handler is called with, its `this`
    /// ([`Request::this`](crate::http::Request::this)), until [`handled`](Accounting::handled)
    /// ([`Guarded`]: until [`read_ended`](Accounting::read_ended)). `None` unless the
    /// accounting has one.
    ///
    /// The server calls it when a handler asks ([`Request::this`](crate::http::Request::this)),
    /// within the handler's call (a panic there is the handler's: its request is answered
    /// `500`), unless [`MAY_PANIC`](Accounting::MAY_PANIC): then once per request before the
    /// handler's call, caught (see `# Panics` above).
    fn this(&self) -> Option<&dyn Any> {
        None
    }

    /// Sealed: where the server's [`Request::this`](crate::http::Request::this) reads `this`
    /// from when a handler asks, so a request whose handler does not ask pays nothing for it:
    /// [`this`](Accounting::this) itself for every accounting but [`Unaccounted`], which has
    /// none. Nothing outside the crate can call it nor override it (its parameter is of a type
    /// no one outside the crate can name, as [`end_here`](Accounting::end_here)'s).
    #[doc(hidden)]
    #[inline(always)]
    fn this_source(&self, _: ThisAsked) -> Option<&dyn ThisSource>
    where
        Self: Sized,
    {
        Some(self)
    }

    /// The handler of the last admitted request has returned: `this` may be let go, so a
    /// deferred request does not keep the wrapper alive (a runtime's promise holds what it
    /// captured). [`Guarded`] keeps it until [`read_ended`](Accounting::read_ended) instead.
    fn handled(&mut self) {}

    /// The connection has answered (or parked) every request it could parse in this pass over
    /// its input: work done once per pass goes here. [`Guarded`] lets go of the handler's
    /// `this` here, which the next request of the same pass (a pipeline) was admitted with,
    /// without another upgrade. Called at the end of every pass, whether it admitted anything
    /// or not: each read ([`Connection::receive`](crate::http::Connection::receive), each read
    /// of the loop's connections), and each [`resume`](crate::http::Connection::resume) and
    /// [`on_timer`](crate::http::Connection::on_timer), whose pass may admit requests with no
    /// read (input that back-pressure or the pipeline limit held back: QA embed20-4). Caught
    /// like the per-request calls when [`MAY_PANIC`](Accounting::MAY_PANIC).
    fn read_ended(&mut self) {}

    /// Stops admission; in-flight requests may finish until `deadline`.
    fn stop(&mut self, deadline: Instant);

    /// Checks the stop at `now`; `in_flight` is the server's own count of admitted requests.
    /// The server's own deadline and count rule: past the deadline given to
    /// [`stop`](Accounting::stop), it takes `Pending` as `Expired` (the loop ends all the
    /// same); before it, `Expired` as `Pending` (requests in flight have until the deadline);
    /// and `Complete` with requests in flight as `Pending`.
    fn poll_stop(&mut self, now: Instant, in_flight: usize) -> StopStatus;

    /// The ledger, if requests are accounted.
    fn ledger(&self) -> Option<&Ledger>;

    /// The end-of-run figures.
    fn report(&self) -> AccountingReport;
}

mod seal {
    use std::any::Any;

    use crate::signal::AbortSignal;

    /// Seals [`Accounting::this_source`](super::Accounting::this_source), as
    /// [`AdmittedHere`] seals `end_here`: made by the server alone, where it builds a
    /// request.
    #[allow(unreachable_pub)] // unnameable outside the crate: that is what seals the method
    #[derive(Debug)]
    pub struct ThisAsked(());

    impl ThisAsked {
        #[inline(always)]
        pub(crate) const fn new() -> Self {
            ThisAsked(())
        }
    }

    /// Where a request's `this` is read from when its handler asks: the accounting
    /// ([`Accounting::this`](super::Accounting::this), called then), or its value read before
    /// the handler's call ([`ThisRead`]).
    #[allow(unreachable_pub)] // unnameable outside the crate
    pub trait ThisSource {
        /// The handler's `this`, now.
        fn this_now(&self) -> Option<&dyn Any>;

        /// The request's signal, when the dispatch gave the request none of its own (an
        /// accounting that keeps the bundle: [`Accounting::signal_lent`]).
        fn signal_now(&self) -> Option<&AbortSignal> {
            None
        }
    }

    impl<A: super::Accounting> ThisSource for A {
        #[inline]
        fn this_now(&self) -> Option<&dyn Any> {
            self.this()
        }

        #[inline]
        fn signal_now(&self) -> Option<&AbortSignal> {
            self.signal_lent(ThisAsked::new())
        }
    }

    /// A `this` read before the handler's call (an accounting whose `this` may panic: the
    /// read is caught).
    pub(crate) struct ThisRead<'a>(pub(crate) Option<&'a dyn Any>);

    impl ThisSource for ThisRead<'_> {
        #[inline]
        fn this_now(&self) -> Option<&dyn Any> {
            self.0
        }
    }

    impl std::fmt::Debug for dyn ThisSource + '_ {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.this_now().fmt(f)
        }
    }

    /// Seals [`Accounting::end_here`](super::Accounting::end_here): only the crate can make
    /// one, and no one outside it can name the type, so no one else can call the method nor
    /// override it. Made where the server ends a request it admitted through the same
    /// accounting within the same borrow of its dispatcher (the request answered at once).
    #[allow(unreachable_pub)] // unnameable outside the crate: that is what seals the method
    #[derive(Debug)]
    pub struct AdmittedHere(());

    impl AdmittedHere {
        /// The caller ends, through the accounting it admitted the request with, a request
        /// admitted within the same borrow of the dispatcher.
        #[inline(always)]
        pub(crate) const fn new() -> Self {
            AdmittedHere(())
        }
    }
}

pub(crate) use seal::{AdmittedHere, ThisAsked, ThisRead, ThisSource};

/// `accounting.admit()`, with a panic caught (user code: an embedder's accounting, or the
/// [`ScopeProvider`] inside [`Guarded`]'s) and answered as [`Refusal::PANICKED`] (`500`,
/// counted refused and in [`Stats::panics`](crate::http::Stats::panics); a `Guarded` bundle
/// taken before the panic ends [`Outcome::Dropped`]), so it never unwinds into the loop.
#[inline(always)]
pub(crate) fn admit_caught<A: Accounting>(accounting: &mut A) -> Result<A::Held, Refusal> {
    caught(|| accounting.admit()).unwrap_or(Err(Refusal::PANICKED))
}

/// Runs `call`, one of `A`'s per-request calls: caught when [`Accounting::MAY_PANIC`] (its
/// value, or `default` with `panics` counted), straight otherwise (no cost).
#[inline(always)]
pub(crate) fn per_request<A: Accounting, R>(
    panics: &mut u64,
    default: R,
    call: impl FnOnce() -> R,
) -> R {
    if !A::MAY_PANIC {
        return call();
    }
    caught(call).unwrap_or_else(|| {
        *panics += 1;
        default
    })
}

/// Ends `held` with `outcome` ([`Accounting::end`]), caught when [`Accounting::MAY_PANIC`] (a
/// panic counted in `panics`: the request has ended, its `Held` dropped by the unwinding): a
/// request parked in its connection (queued, deferred, dropped with it), which may outlive the
/// accounting that admitted it in the dispatcher ([`Dispatcher::accounting_mut`]
/// (crate::http::Dispatcher::accounting_mut) lets the embedder swap it). Not [`per_request`]
/// with `held` moved into its closure: that costs the guarded server 22 instructions per
/// request (callgrind, depth 16: 794.6 -> 816.6).
#[inline(always)]
pub(crate) fn end_request<A: Accounting>(held: A::Held, outcome: Outcome, panics: &mut u64) {
    if A::MAY_PANIC {
        if caught(|| A::end(held, outcome)).is_none() {
            *panics += 1;
        }
    } else {
        A::end(held, outcome);
    }
}

/// As [`end_request`], through [`Accounting::end_here`] on `accounting`: a request `accounting`
/// admitted within the same borrow of the dispatcher (`here` says so), answered at once.
#[inline(always)]
pub(crate) fn end_request_here<A: Accounting>(
    accounting: &A,
    held: A::Held,
    outcome: Outcome,
    here: AdmittedHere,
    panics: &mut u64,
) {
    if A::MAY_PANIC {
        if caught(|| accounting.end_here(held, outcome, here)).is_none() {
            *panics += 1;
        }
    } else {
        accounting.end_here(held, outcome, here);
    }
}

/// The outcome of a request whose connection the server gives up on with `reason`: the client
/// went away ([`Outcome::ClientGone`]) or the server closed it ([`Outcome::ForceClosed`]: at the
/// stop deadline, or behind a `Connection: close` answer). A request the drain deadline already
/// aborted stays [`Outcome::DeadlineAborted`] (the first cause wins).
pub(crate) fn ended_by(reason: AbortReason) -> Outcome {
    match reason {
        AbortReason::ClientDisconnected => Outcome::ClientGone,
        _ => Outcome::ForceClosed,
    }
}

/// Gives the engine scope an upgrade needs ([`Engine::Scope`]).
///
/// The embedded engine needs none ([`NoScope`]). An engine that does (v8's `HandleScope`, a
/// QuickJS `Ctx`) implements this on something holding its runtime, entering the engine for the
/// duration of `f`; see `docs/server.md`. A panic in `with_scope` is a panic of
/// [`Guarded`]'s `admit`: the request is answered `500` and the server goes on (see
/// [`Accounting`]'s `# Panics`).
///
/// # Examples
///
/// An engine whose "scope" is an upgrade counter, plugged into the server's accounting:
///
/// ```
/// use std::rc::{Rc, Weak};
/// use std::time::Instant;
/// use reqguard::http::{Accounting, Guarded, ScopeProvider};
/// use reqguard::{Config, DowngradePolicy, Engine, Refusal, ServerCore};
///
/// struct Counting;
/// impl Engine for Counting {
///     type Strong = Rc<&'static str>;
///     type Weak = Weak<&'static str>;
///     type Scope<'s> = u32; // what an upgrade needs: here, a counter it bumps
///     fn downgrade(_: &mut u32, strong: &Self::Strong) -> Self::Weak {
///         Rc::downgrade(strong)
///     }
///     fn upgrade(upgrades: &mut u32, weak: &Self::Weak) -> Option<Self::Strong> {
///         *upgrades += 1;
///         weak.upgrade()
///     }
/// }
///
/// /// Owns the "runtime" and enters it for each upgrade.
/// struct Runtime { upgrades: u32 }
/// impl ScopeProvider<Counting> for Runtime {
///     fn with_scope<R>(&mut self, f: impl FnOnce(&mut u32) -> R) -> R {
///         f(&mut self.upgrades)
///     }
/// }
///
/// let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
/// let core: ServerCore<Counting> = ServerCore::new(&mut 0, Rc::new("server"), config);
/// let mut accounting = Guarded::new(core, Runtime { upgrades: 0 });
/// drop(accounting.admit().unwrap());
/// assert_eq!(accounting.scope_provider().upgrades, 0); // held strongly: no engine upgrade
///
/// accounting.stop(Instant::now()); // downgrades: the `Rc` is freed
/// assert_eq!(accounting.admit().unwrap_err(), Refusal::WRAPPER_FINALIZED);
/// assert_eq!(accounting.scope_provider().upgrades, 1); // upgraded inside the provider's scope
/// ```
pub trait ScopeProvider<E: Engine> {
    /// Runs `f` inside the engine.
    fn with_scope<R>(&mut self, f: impl FnOnce(&mut E::Scope<'_>) -> R) -> R;
}

/// The scope provider of engines whose scope is `()`, such as [`Embedded`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoScope;

impl<T: 'static> ScopeProvider<Embedded<T>> for NoScope {
    #[inline(always)]
    fn with_scope<R>(&mut self, f: impl FnOnce(&mut ()) -> R) -> R {
        f(&mut ())
    }
}

/// Hooks chained: each run returns how many of them panicked (each caught).
type Hook = Box<dyn FnMut() -> u64>;

/// `first` (if any), then `then`, each on its own: a panic in one is caught (the panic hook
/// has reported it) and does not keep the other from running nor unwind into the loop; the
/// chain's run says how many panicked, counted in the core's
/// [`DrainReport::panicked_hooks`](crate::DrainReport::panicked_hooks) (QA embed33-3).
fn chain(first: Option<Hook>, then: impl FnMut() + 'static) -> Hook {
    let mut hooks = Chain {
        first,
        then: Some(Box::new(then)),
    };
    Box::new(move || hooks.run())
}

/// Two hooks, run in turn and dropped in turn, each on its own.
struct Chain {
    /// The hooks set before (a chain).
    first: Option<Hook>,
    then: Option<Box<dyn FnMut()>>,
}

impl Chain {
    /// Runs both; how many of the embedder's hooks panicked.
    fn run(&mut self) -> u64 {
        let mut panicked = 0;
        if let Some(first) = self.first.as_mut() {
            panicked += caught(first).unwrap_or(1);
        }
        if let Some(then) = self.then.as_mut() {
            panicked += u64::from(call_caught(then));
        }
        panicked
    }
}

/// What a hook captured is the embedder's, and its `Drop` may panic: each hook is dropped
/// caught, so one's panic never unwinds through the other's drop (two such panics aborted the
/// process: QA embed16-6).
impl Drop for Chain {
    fn drop(&mut self) {
        let (first, then) = (self.first.take(), self.then.take());
        call_caught(move || drop(first));
        call_caught(move || drop(then));
    }
}

/// Every request through reqguard: upgrade the wrapper, then [`Live::admit`](crate::Live::admit).
///
/// Generic over the engine holding the wrapper (`E`), the scope provider an upgrade needs
/// (`S`), and the pooled context type (`C`). Hooks run right after stop (collect the wrapper
/// there for the PR's scenario) and once the drain completes.
///
/// # Examples
///
/// ```
/// use reqguard::http::{Accounting, Guarded};
/// use reqguard::{Config, DowngradePolicy};
///
/// let mut guarded = Guarded::embedded("server", Config::default().with_downgrade(DowngradePolicy::OnStop));
/// let held = guarded.admit().unwrap();
/// // a ticket, a pooled context, a signal activity ref and a request object:
/// assert_eq!(guarded.ledger().unwrap().total_outstanding(), 4);
/// drop(held);
/// guarded.stop(std::time::Instant::now()); // downgrades and collects the wrapper
/// assert_eq!(guarded.admit().unwrap_err().status(), 503);
/// assert_eq!(guarded.report().leaked, 0);
/// ```
pub struct Guarded<E: Engine, S: ScopeProvider<E>, C: Recycle = ()> {
    /// The bundle of the pass's last request answered at once, for the next request of the
    /// same pass (`keep_here`, `renew_here`); ended at the pass's end. First: it goes before
    /// the core.
    kept: KeptBundle<C>,
    core: ServerCore<E, C>,
    scope: S,
    /// The wrapper while a handler runs: its `this`.
    this: Option<E::Strong>,
    drain: Option<Drain>,
    after_stop: Option<Hook>,
    after_drain: Option<Hook>,
}

impl<E: Engine, S: ScopeProvider<E>, C: Recycle> Guarded<E, S, C> {
    /// Admission through `core`, upgrading inside `scope`.
    pub fn new(core: ServerCore<E, C>, scope: S) -> Self {
        Guarded {
            kept: KeptBundle::new(),
            core,
            scope,
            this: None,
            drain: None,
            after_stop: None,
            after_drain: None,
        }
    }

    /// Runs `hook` right after [`ServerCore::stop`] (e.g. a garbage collection), after any
    /// hook set before (such as [`embedded`](Guarded::embedded)'s collection). A hook that
    /// panics is caught, and counted in the core's
    /// [`DrainReport::panicked_hooks`](crate::DrainReport::panicked_hooks): the others run and
    /// the stop goes on.
    pub fn after_stop(mut self, hook: impl FnMut() + 'static) -> Self {
        self.after_stop = Some(chain(self.after_stop.take(), hook));
        self
    }

    /// Runs `hook` once, when the drain has completed (e.g. a garbage collection), after any
    /// hook set before (such as [`embedded`](Guarded::embedded)'s collection). A hook that
    /// panics is caught, and counted in the core's
    /// [`DrainReport::panicked_hooks`](crate::DrainReport::panicked_hooks) (QA embed33-3): the
    /// others run and the loop ends as it would have. A server that
    /// ends its stop before the drain completes (a request admitted through
    /// [`core`](Guarded::core), out of every connection, still out past the deadline) leaves
    /// the hook to the drain: it runs when that request ends (QA embed32-1), where the
    /// embedder lets it go (inside a QuickJS `Context::with`, a hook that takes the
    /// runtime's lock, `Runtime::run_gc`, panics: caught and counted in
    /// [`DrainReport::panicked_hooks`](crate::DrainReport::panicked_hooks)).
    pub fn after_drain(mut self, hook: impl FnMut() + 'static) -> Self {
        self.after_drain = Some(chain(self.after_drain.take(), hook));
        self
    }

    /// The server core. A [`stop`](ServerCore::stop) through it before the server runs
    /// closes admission only: every request is refused `503` + `Connection: close`, and the
    /// server runs until its own stop (QA embed18-6).
    pub fn core(&self) -> &ServerCore<E, C> {
        // The renewals a pipeline's requests made are in the ledger before anyone reads it.
        self.kept.flush(&self.core.shared().ledger);
        &self.core
    }

    /// The scope provider.
    pub fn scope_provider(&mut self) -> &mut S {
        &mut self.scope
    }
}

impl<T: 'static> Guarded<Embedded<T>, NoScope> {
    /// The server's wrapper `wrapper` on a fresh embedded [`Heap`]. The heap is collected right
    /// after stop when `config` downgrades on stop (the PR's scenario), and after the drain
    /// either way, so the wrapper is really finalized.
    pub fn embedded(wrapper: T, config: Config) -> Self {
        Guarded::embedded_on(&Heap::new(), wrapper, config)
    }

    /// As [`embedded`](Guarded::embedded), on a given heap.
    pub fn embedded_on(heap: &Heap, wrapper: T, config: Config) -> Self {
        let handle: Handle<T> = heap.alloc(wrapper);
        let guarded = Guarded::new(ServerCore::embedded(handle, config), NoScope);
        let on_drain = heap.clone();
        let guarded = guarded.after_drain(move || {
            on_drain.collect();
        });
        if config.downgrade() == crate::DowngradePolicy::OnStop {
            let on_stop = heap.clone();
            guarded.after_stop(move || {
                on_stop.collect();
            })
        } else {
            guarded
        }
    }
}

/// `Guarded`'s `this` while its `ScopeProvider` runs: let go if the provider panics (it is
/// forgotten when the scope returns). Not `scopeguard::guard` with `ScopeGuard::into_inner`:
/// that shape costs the guarded server 6 instructions per request (callgrind, mio depth 16,
/// 674.2 -> 680.2, docs/benchmarks-history.md round 21).
struct LetGoOnUnwind<'a, T>(&'a mut Option<T>);

impl<T> Drop for LetGoOnUnwind<'_, T> {
    #[cold]
    fn drop(&mut self) {
        *self.0 = None;
    }
}

/// The handler's `this` is the strong handle the proof holds
/// ([`Live::wrapper`](crate::Live::wrapper)), kept from the upgrade until the connection's
/// read is all handled ([`read_ended`](Accounting::read_ended)): the requests pipelined in one
/// read are admitted with one upgrade. In the mio server (not through `admit`, which an
/// embedder driving `Guarded` itself calls), they share one bundle too: the next request of a
/// read takes the bundle of the one answered before it, as it is, while the ledger is plain and
/// that bundle's signal untouched and not lent to a handler (one ledger count for the answered
/// request's *completed* and the next one's mint); the bundle kept last ends *completed* at
/// `read_ended` (or at `stop`). The handler gets that signal when it asks (`signal_lent`).
impl<E: Engine, S: ScopeProvider<E>, C: Recycle> Accounting for Guarded<E, S, C>
where
    E::Strong: 'static,
{
    type Held = GuardedHeld<C>;
    // `end` runs the embedder's code (listeners, `Recycle`, hooks) caught in the core;
    // `read_ended` drops `E::Strong`, which the `Engine` contract says must not panic.
    const MAY_PANIC: bool = false;

    #[inline(always)]
    fn admit(&mut self) -> Result<Self::Held, Refusal> {
        let core = &self.core;
        // Let go if the `ScopeProvider` panics, before its closure runs or after: as a
        // refusal lets it go (QA embed21-2). Forgotten on return: nothing on the common path.
        let this = LetGoOnUnwind(&mut self.this);
        let admitted = self.scope.with_scope(|scope| {
            // The strong handle the last request of the same read was admitted with (its
            // `this`, kept until `read_ended`) is the proof again while the ledger is plain:
            // not stopped, so the wrapper cell is still strong and an upgrade would only clone
            // it. Else (the first request of a read, a stop, a trace) upgrade first: a
            // finalized wrapper is a 503 that has taken nothing.
            if this.0.is_none() || !core.shared().ledger.is_plain() {
                // Kept from before a stop or a trace: let go first.
                if let Some(kept) = this.0.take() {
                    drop(kept);
                }
                let live = core.upgrade_in(scope).ok_or(Refusal::WRAPPER_FINALIZED)?;
                // Not an assignment, whose drop would test the field again (let go above).
                forget_none(this.0.replace(live.into_wrapper()));
            }
            // Admitted with the strong handle where it is kept, for the whole admission (not
            // moved into a proof and back): a refusal lets it go.
            match Live::admit_guarded(core, Location::caller()) {
                Ok(held) => Ok(held),
                Err(refusal) => {
                    *this.0 = None;
                    Err(refusal)
                }
            }
        });
        std::mem::forget(this);
        admitted
    }

    fn signal(held: &Self::Held) -> Option<&AbortSignal> {
        held.signal_in_slot()
    }

    #[inline(always)]
    fn end(held: Self::Held, outcome: Outcome) {
        held.end(outcome);
    }

    /// The bundle's slot goes back to the core's pool with its handle on the pool kept in
    /// it (invariant 7 of the pool's slots): the core outlives this call, and its drop takes
    /// the handle back, so the pool never outlives the core and its last bundle. The bundle is
    /// one this core admitted (the seal: only the server calls this, for a request admitted
    /// through `self` within the same borrow), so its slot is the pool's own: no compare.
    #[inline(always)]
    fn end_here(&self, held: Self::Held, outcome: Outcome, _: AdmittedHere) {
        held.end_in(self.core.pool(), outcome);
    }

    #[inline(always)]
    fn keeps(_: AdmittedHere) -> bool {
        C::SKIPPED.0
    }

    /// Renewed on the kept bundle's one flag (`KeptBundle::renew`, invariant 3: found with the
    /// ledger plain and its signal untouched at the pass's second request,
    /// `KeptBundle::renew_admitted`, and its signal not lent since); else a kept bundle ends
    /// here, out of line, and the request is admitted. `this` is the one the renewed bundle's request was admitted with, kept until
    /// `read_ended`. Only with the server's context, `()` (`Recycle::SKIPPED`): a renewal
    /// skips the context's recycling, which for `()` does nothing; any other context is
    /// recycled between two requests (nothing is kept).
    #[inline(always)]
    fn renew_here(&mut self, _: AdmittedHere) -> Option<Self::Held> {
        if !C::SKIPPED.0 {
            return None;
        }
        // Renewable (invariant 3 of `KeptBundle`), or just admitted and found fresh (once
        // per pass, at its second request). The renewal counted beside the flags, not in
        // the ledger (invariant 5 of `KeptBundle`): no load of the ledger's address.
        if self.kept.renew() {
            debug_assert!(
                self.core.shared().ledger.is_plain(),
                "renewable with the ledger not plain"
            );
            return Some(GuardedHeld::none());
        }
        cold();
        if self.kept.renew_admitted(&self.core.shared().ledger) {
            debug_assert!(self.this.is_some(), "renewed with no `this`");
            debug_assert!(
                self.core.shared().ledger.is_plain(),
                "renewed with the ledger not plain"
            );
            return Some(GuardedHeld::none());
        }
        if self.kept.keeps() {
            self.not_renewed();
        }
        None
    }

    #[inline(always)]
    fn pass_begins(&mut self, _: AdmittedHere) {
        self.kept.pass_begins();
    }

    #[inline]
    fn signal_lent(&self, _: ThisAsked) -> Option<&AbortSignal> {
        if !C::SKIPPED.0 {
            return None;
        }
        self.kept.lend_signal()
    }

    #[inline(always)]
    fn take_kept_here(&mut self, _: AdmittedHere) -> Self::Held {
        self.kept.take_parked().unwrap_or_else(GuardedHeld::none)
    }

    #[inline(always)]
    fn handler_panicked(&self, _: AdmittedHere) {
        if C::SKIPPED.0 {
            self.kept.handler_panicked();
        }
    }

    #[inline(always)]
    fn keep_here(&mut self, held: Self::Held, _: AdmittedHere) -> Self::Held {
        if !C::SKIPPED.0 {
            return held;
        }
        self.kept.keep(held);
        GuardedHeld::none()
    }

    #[inline(always)]
    fn signal_here<'a>(&'a self, held: &'a Self::Held, _: AdmittedHere) -> Option<&'a AbortSignal> {
        if !C::SKIPPED.0 {
            return held.signal_in_slot();
        }
        // Lent when the handler asks (`signal_lent`).
        None
    }

    #[inline(always)]
    fn take_kept(&mut self, held: Self::Held, _: AdmittedHere) -> Self::Held {
        if !C::SKIPPED.0 {
            return held;
        }
        held.forget_empty();
        self.kept.take().unwrap_or_else(GuardedHeld::none)
    }

    fn this(&self) -> Option<&dyn Any> {
        self.this.as_ref().map(|this| this as &dyn Any)
    }

    /// `this` is kept for the next request of the same pass over the input (see `admit`),
    /// and let go when the pass's requests are all handled, at a stop, or when an admission is
    /// refused or panics (its [`ScopeProvider`] panicking before or after it runs the
    /// admission: the unwinding drops it).
    #[inline]
    fn read_ended(&mut self) {
        self.end_kept();
        self.this = None;
    }

    fn stop(&mut self, deadline: Instant) {
        // No handler runs now: a bundle kept for the read's next request (only if a panic
        // unwound out of the read's pass) ends first, its request answered; the renewals
        // not yet in the ledger go there (the drain reads it).
        self.end_kept();
        self.kept.flush(&self.core.shared().ledger);
        // A `this` kept for the read's next request (or left by an `admit` without
        // `read_ended`) must not keep the wrapper alive past the downgrade.
        self.this = None;
        if self.drain.is_some() {
            return;
        }
        let drain = self.core.stop();
        drain.set_deadline(deadline);
        let drain = self.drain.insert(drain);
        if let Some(hook) = self.after_stop.as_mut() {
            // Each caught; those that panicked counted by the core (QA embed33-3).
            drain.count_hook_panics(hook());
        }
    }

    fn poll_stop(&mut self, now: Instant, _in_flight: usize) -> StopStatus {
        let Some(drain) = &self.drain else {
            return StopStatus::Pending;
        };
        match drain.poll_deadline(now) {
            DrainStatus::Complete => {
                if let Some(mut hook) = self.after_drain.take() {
                    // Run now (the drain is complete; each hook caught, those that panicked
                    // counted: QA embed33-3), then dropped: what the hooks captured is the
                    // embedder's, and a `Drop` of it may panic too.
                    drain.on_complete_counted(move || {
                        let panicked = hook();
                        drop(hook);
                        panicked
                    });
                }
                StopStatus::Complete
            }
            DrainStatus::Pending { .. } => StopStatus::Pending,
            DrainStatus::Expired(report) => StopStatus::Expired {
                aborted: report.aborted_signals,
            },
        }
    }

    fn ledger(&self) -> Option<&Ledger> {
        Some(self.core().ledger())
    }

    fn report(&self) -> AccountingReport {
        let ledger = self.core().ledger();
        AccountingReport {
            leaked: ledger.total_outstanding(),
            leaks: ledger.report(),
            drain_time: self.drain.as_ref().and_then(Drain::drain_time),
            pool: Some(self.core.pool_metrics()),
            outcomes: ledger.outcomes(),
        }
    }
}

/// Marks its caller's path as rare (an empty cold function: the branch into it is laid out
/// out of the way, and the registers kept for the other).
#[cold]
#[inline]
fn cold() {}

impl<E: Engine, S: ScopeProvider<E>, C: Recycle> Guarded<E, S, C> {
    /// A kept bundle `renew_here` cannot renew ends *completed* (unless its signal fired
    /// first: the first cause wins), its slot back in the pool for the admission. Out of
    /// line: off a pipeline's common path.
    #[cold]
    #[inline(never)]
    fn not_renewed(&mut self) {
        self.end_kept();
    }

    /// The bundle kept in this pass, if any, ends *completed* (unless its signal fired), or
    /// *dropped* if its handler panicked.
    #[inline]
    fn end_kept(&mut self) {
        self.kept.end_kept_in(self.core.pool());
    }
}

/// QA embed32-1. The `after_drain` hooks run "once, when the drain has completed", and
/// [`poll_stop`](Accounting::poll_stop) runs them when it finds it complete; a server that
/// returned at its deadline with a request still out of every connection (one the embedder
/// admitted through [`core`](Guarded::core): a runtime's `server.fetch()`, a saved request)
/// polls no more, and dropped them unrun though that drain completed once the request ended
/// (a runtime's `server.stop()` promise never resolved). Handed to the drain now: they run when
/// it completes (at once if it has), each caught; dropped unrun (caught, with the drain's
/// state) only if it never does (a leak). Once per server, off the request path.
impl<E: Engine, S: ScopeProvider<E>, C: Recycle> Drop for Guarded<E, S, C> {
    fn drop(&mut self) {
        // The ledger may outlive the accounting (a drain the embedder holds reads it).
        self.kept.flush(&self.core.shared().ledger);
        if let (Some(drain), Some(hook)) = (self.drain.as_ref(), self.after_drain.take()) {
            // `Chain` runs each hook caught (those that panicked counted by the drain: QA
            // embed33-3), and drops each caught with the closure.
            drain.on_complete_counted(hook);
        }
    }
}

impl<E: Engine, S: ScopeProvider<E>, C: Recycle> fmt::Debug for Guarded<E, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("core", self.core())
            .field("drain", &self.drain)
            .field("after_stop_set", &self.after_stop.is_some())
            .field("after_drain_set", &self.after_drain.is_some())
            .finish_non_exhaustive()
    }
}

/// **Benchmark baseline only**: the same server work with no upgrade, no ticket, no pooled
/// context, no signal and no ledger. It exists so the throughput benchmark can show what the
/// guards cost; a server built on it has every bug the guards prevent.
///
/// # Examples
///
/// ```
/// use reqguard::http::{Accounting, Unaccounted};
///
/// let mut plain = Unaccounted::new();
/// assert!(plain.admit().is_ok());
/// plain.stop(std::time::Instant::now());
/// assert_eq!(plain.admit().unwrap_err().status(), 503);
/// ```
#[derive(Debug, Default)]
pub struct Unaccounted {
    stopped_at: Option<Instant>,
    deadline: Option<Instant>,
    drained_at: Option<Instant>,
}

impl Unaccounted {
    /// A baseline admitting everything until stopped.
    pub fn new() -> Self {
        Unaccounted::default()
    }
}

impl Accounting for Unaccounted {
    type Held = ();
    const MAY_PANIC: bool = false;

    #[inline]
    fn admit(&mut self) -> Result<(), Refusal> {
        if self.stopped_at.is_some() {
            return Err(Refusal::new(RefusalReason::Stopped));
        }
        Ok(())
    }

    fn signal(_: &()) -> Option<&AbortSignal> {
        None
    }

    /// No `this`: nothing for a handler to ask.
    #[inline(always)]
    fn this_source(&self, _: ThisAsked) -> Option<&dyn ThisSource> {
        None
    }

    fn stop(&mut self, deadline: Instant) {
        if self.stopped_at.is_none() {
            self.stopped_at = Some(Instant::now());
            self.deadline = Some(deadline);
        }
    }

    fn poll_stop(&mut self, now: Instant, in_flight: usize) -> StopStatus {
        if self.stopped_at.is_none() {
            return StopStatus::Pending;
        }
        if in_flight == 0 {
            self.drained_at.get_or_insert(now);
            return StopStatus::Complete;
        }
        match self.deadline {
            Some(deadline) if now >= deadline => StopStatus::Expired { aborted: 0 },
            _ => StopStatus::Pending,
        }
    }

    fn ledger(&self) -> Option<&Ledger> {
        None
    }

    fn report(&self) -> AccountingReport {
        AccountingReport {
            drain_time: self
                .drained_at
                .zip(self.stopped_at)
                .map(|(d, s)| d.saturating_duration_since(s)),
            ..AccountingReport::default()
        }
    }
}
