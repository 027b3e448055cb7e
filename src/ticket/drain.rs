//! The drain: completes when the last ticket drops after `stop()`.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::admit::OutcomeCounts;
use crate::ledger::{LeakReport, Ledger};
use crate::server::shared::Shared;
use crate::signal::AbortReason;

/// Waits for a stopped server's last pending request, returned by
/// [`ServerCore::stop`](crate::ServerCore::stop).
///
/// It completes exactly when the last [`PendingTicket`](crate::PendingTicket) drops (at once if
/// none is out). Use it from a plain event loop with [`is_complete`](Drain::is_complete) and
/// [`poll_deadline`](Drain::poll_deadline), or `.await` it (it is a `Future` that needs no
/// particular runtime). A deadline escalates: it aborts the signals of the requests still out,
/// then reports them, so the loop can force-close their connections.
///
/// The drain holds the server's shared state alive, as do all guards: the server core lives
/// until the drain completes.
///
/// Awaiting it registers the task's waker once per handle; dropping the handle (or the drain
/// completing) deregisters it, so abandoned waits leave nothing behind. Cloning gives a handle
/// that has not waited yet.
///
/// Awaiting it does not escalate: the future has no timer (it needs no particular runtime),
/// so a deadline set with [`set_deadline`](Drain::set_deadline) is acted on only by
/// [`poll_deadline`](Drain::poll_deadline) or [`escalate`](Drain::escalate). A request that
/// never ends (a forgotten ticket) keeps a bare `.await` waiting forever: race it against
/// your runtime's timer and escalate when that fires (the hyper adapter does).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use reqguard::{Config, DrainStatus, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let live = core.upgrade().unwrap();
/// let bundle = live.admit(|_ctx| Ok("GET /")).unwrap();
/// drop(live);
///
/// let drain = core.stop();
/// let start = Instant::now();
/// drain.set_deadline(start + Duration::from_secs(5));
/// assert!(matches!(drain.poll_deadline(start), DrainStatus::Pending { outstanding: 1 }));
///
/// // The deadline passes: the request's signal is aborted and the report names it.
/// match drain.poll_deadline(start + Duration::from_secs(6)) {
///     DrainStatus::Expired(report) => assert_eq!(report.aborted_signals, 1),
///     other => panic!("expected expiry, got {other:?}"),
/// }
/// assert!(bundle.signal().is_aborted());
/// drop(bundle); // the handler lets go
/// assert!(drain.is_complete());
/// ```
#[must_use = "a drain does nothing unless polled or awaited"]
pub struct Drain {
    shared: Rc<Shared>,
    /// This handle's slot in the drain's waiter list, once it has been polled while pending.
    waiter: Cell<Option<usize>>,
}

/// Where a [`Drain`] stands, from [`Drain::poll_deadline`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainStatus {
    /// The last ticket has dropped.
    Complete,
    /// Tickets are still out and the deadline (if any) has not passed.
    Pending {
        /// Pending-request tickets still out.
        outstanding: usize,
    },
    /// The deadline passed: the signals of what was still out were aborted (on the first such
    /// poll only) and this is what was out.
    Expired(DrainReport),
}

/// What a drain found: whether it completed, how long it took, and what is still out.
///
/// # Examples
///
/// A stop with one request out, reported before and after its answer:
///
/// ```
/// use reqguard::{engines::Heap, Config, ServerCore};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let request = core.upgrade().unwrap().admit(|_ctx| Ok("GET /slow")).unwrap();
/// let drain = core.stop();
///
/// let report = drain.report();
/// assert!(!report.complete && report.drain_time.is_none());
/// assert_eq!(report.outstanding.total(), 4); // ticket, context, signal activity, request object
/// assert!(report.to_string().starts_with("drain incomplete"));
///
/// request.complete(); // its answer is written
/// let report = drain.report();
/// assert!(report.complete && report.drain_time.is_some());
/// assert_eq!((report.outcomes.completed, report.outstanding.total()), (1, 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Whether the last ticket has dropped.
    pub complete: bool,
    /// From `stop()` to the last ticket dropping, once complete.
    pub drain_time: Option<Duration>,
    /// Signals that *this* escalation aborted: the first expired
    /// [`poll_deadline`](Drain::poll_deadline) or an [`escalate`](Drain::escalate) call. Zero in
    /// later polls, in [`report`](Drain::report) and in the awaited report, even after a
    /// deadline; the requests they ended are counted in `outcomes.deadline_aborted` (all but
    /// one whose own `build` refused after the abort: it was never admitted, so it has no
    /// outcome). A request an earlier signal's listener ended is not aborted. A saved request
    /// admitted after the escalation ([`Live::admit_with`](crate::Live::admit_with)) comes
    /// with its signal aborted and is not counted here; its outcome is.
    pub aborted_signals: usize,
    /// How the server's admitted requests ended so far, per outcome.
    pub outcomes: OutcomeCounts,
    /// Abort listeners of this server's signals that panicked so far (caught; the other
    /// listeners and every other signal were still aborted).
    pub panicked_listeners: u64,
    /// Drain hooks ([`Drain::on_complete`]) that panicked (caught; the others still ran), the
    /// servers' own hooks of the embedder's that panicked (`Guarded::after_stop` and
    /// `after_drain`, `HyperServer::after_stop` and `after_drain`: each caught, the others still
    /// ran; QA embed33-3), and the wrapper's downgrade if it panicked (an engine's finalizer, at stop or at the drain's
    /// end as the [`DowngradePolicy`](crate::DowngradePolicy) says; caught, the stop went on).
    pub panicked_hooks: u64,
    /// Guards still outstanding, with their mint sites in leak-check mode.
    pub outstanding: LeakReport,
}

impl fmt::Display for DrainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.drain_time {
            Some(t) if self.complete => write!(f, "drain complete in {t:?}")?,
            _ => write!(f, "drain incomplete")?,
        }
        if self.aborted_signals > 0 {
            write!(f, "; deadline aborted {} signal(s)", self.aborted_signals)?;
        }
        if self.outcomes.total() > 0 {
            write!(f, "; outcomes: {}", self.outcomes)?;
        }
        if self.panicked_listeners + self.panicked_hooks > 0 {
            write!(
                f,
                "; {} abort listener(s) and {} drain hook(s) panicked",
                self.panicked_listeners, self.panicked_hooks
            )?;
        }
        if !self.outstanding.is_empty() {
            write!(f, ":\n{}", self.outstanding)?;
        }
        Ok(())
    }
}

impl Drain {
    pub(crate) fn new(shared: Rc<Shared>) -> Self {
        Drain {
            shared,
            waiter: Cell::new(None),
        }
    }

    /// Whether the last pending request has ended.
    pub fn is_complete(&self) -> bool {
        self.shared.drain.is_drained()
    }

    /// Pending-request tickets still out.
    pub fn outstanding(&self) -> usize {
        self.shared.tickets_out()
    }

    /// Time from `stop()` to completion, once complete.
    pub fn drain_time(&self) -> Option<Duration> {
        let drain = &self.shared.drain;
        Some(drain.drained_at()? - drain.stopped_at()?)
    }

    /// The server's ledger, to see what is still out.
    pub fn ledger(&self) -> &Ledger {
        &self.shared.ledger
    }

    /// Sets the instant after which [`poll_deadline`](Drain::poll_deadline) escalates.
    pub fn set_deadline(&self, deadline: Instant) {
        self.shared.drain.set_deadline(deadline);
    }

    /// The deadline, if one is set.
    pub fn deadline(&self) -> Option<Instant> {
        self.shared.drain.deadline()
    }

    /// Checks the drain against its deadline at `now`, escalating the first time it has passed.
    ///
    /// An event loop calls this on each turn (or from its timer) after `stop()`. The deadline
    /// aborts the signal of every admitted request still out, as [`escalate`](Drain::escalate)
    /// does, even when some of their listeners panic (see
    /// [`DrainReport::panicked_listeners`]).
    ///
    /// The escalation runs once, on the first poll past the deadline; later polls abort
    /// nothing. A saved request admitted after it ([`Live::admit_with`](crate::Live::admit_with))
    /// comes with its signal already aborted (`DrainDeadline`, its outcome *deadline aborted*),
    /// so no request out past the deadline is left unaborted.
    pub fn poll_deadline(&self, now: Instant) -> DrainStatus {
        if self.is_complete() {
            return DrainStatus::Complete;
        }
        match self.deadline() {
            Some(deadline) if now >= deadline => {
                let aborted = if self.shared.drain.start_escalation() {
                    self.abort_outstanding()
                } else {
                    0
                };
                if self.is_complete() {
                    // Aborting let the last handlers go.
                    return DrainStatus::Complete;
                }
                DrainStatus::Expired(self.report_with(aborted))
            }
            _ => DrainStatus::Pending {
                outstanding: self.outstanding(),
            },
        }
    }

    /// Aborts, with [`AbortReason::DrainDeadline`], the signal of every admitted request still
    /// out (an activity ref kept past its request's end keeps that signal alive, not the
    /// request: it is not aborted), and reports what is out after the listeners ran. Does not
    /// wait for the deadline. It counts as the deadline's escalation: a later
    /// [`poll_deadline`](Drain::poll_deadline) does not escalate again, and a saved request
    /// admitted after it ([`Live::admit_with`](crate::Live::admit_with)) comes with its signal
    /// aborted. Called again, it aborts whatever is out then.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{AbortReason, Config, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// let live = core.upgrade().unwrap();
    /// let out = live.admit(|_| Ok(())).unwrap(); // its handler still runs at the deadline
    /// let answered = live.admit(|_| Ok(())).unwrap();
    /// let kept = answered.activity_ref(); // native work that outlives its request
    /// let answered_signal = answered.signal().clone();
    /// answered.complete();
    /// drop(live);
    ///
    /// let drain = core.stop();
    /// let report = drain.escalate();
    /// assert_eq!(report.aborted_signals, 1);
    /// assert_eq!(out.signal().reason(), Some(AbortReason::DrainDeadline));
    /// assert!(!answered_signal.is_aborted()); // its request had ended
    /// drop((out, kept));
    /// assert!(drain.is_complete());
    /// assert_eq!(core.ledger().outcomes().deadline_aborted, 1);
    /// ```
    pub fn escalate(&self) -> DrainReport {
        self.shared.drain.start_escalation();
        let aborted = self.abort_outstanding();
        self.report_with(aborted)
    }

    fn abort_outstanding(&self) -> usize {
        // Listeners may drop activity refs: collect first, abort unborrowed. Each listener runs
        // on its own, so a panicking one stops neither its signal's others nor later signals.
        let signals = self.shared.signals.with_activity();
        let mut aborted = 0;
        for signal in &signals {
            // An earlier signal's listener may have ended this request since (completed it,
            // dropped its last activity ref): its signal is no longer the deadline's to fire.
            if !(signal.is_request_out() && signal.has_activity()) {
                continue;
            }
            if let Some(panicked) = signal.abort(AbortReason::DrainDeadline) {
                aborted += 1;
                self.shared.signals.count_listener_panics(panicked);
            }
        }
        aborted
    }

    /// What the drain has found so far.
    pub fn report(&self) -> DrainReport {
        self.report_with(0)
    }

    fn report_with(&self, aborted_signals: usize) -> DrainReport {
        DrainReport {
            complete: self.is_complete(),
            drain_time: self.drain_time(),
            aborted_signals,
            outcomes: self.shared.ledger.outcomes(),
            panicked_listeners: self.shared.signals.listener_panics(),
            panicked_hooks: self.shared.drain.hook_panics(),
            outstanding: self.shared.ledger.report(),
        }
    }

    /// Runs `hook` when the drain completes (now, if it has): resolve `server.stop()`'s promise here.
    ///
    /// Hooks run after every waiting task has been woken, each on its own: one that panics is
    /// counted in [`DrainReport::panicked_hooks`] and the others still run. A hook is `FnOnce`:
    /// one that panics drops what it captured while its panic unwinds, so a capture whose `Drop`
    /// panics too aborts the process (Rust's rule, before any catch; docs/design.md, "Callbacks
    /// that own a panicking `Drop`").
    pub fn on_complete(&self, hook: impl FnOnce() + 'static) {
        self.shared.drain.on_drained(Box::new(move || {
            hook();
            0
        }));
    }

    /// As [`on_complete`](Drain::on_complete), for a server's own hooks (`after_drain`), which
    /// run the embedder's callbacks each caught: `hook` says how many of them panicked, counted
    /// in [`DrainReport::panicked_hooks`] (QA embed33-3: they were counted nowhere).
    #[cfg(any(feature = "server", feature = "hyper"))]
    pub(crate) fn on_complete_counted(&self, hook: impl FnOnce() -> u64 + 'static) {
        self.shared.drain.on_drained(Box::new(hook));
    }

    /// Counts `panicked` of a server's own hooks of the embedder's (`after_stop`, `after_drain`
    /// run by the server itself), which panicked, caught, in [`DrainReport::panicked_hooks`].
    #[cfg(any(feature = "server", feature = "hyper"))]
    pub(crate) fn count_hook_panics(&self, panicked: u64) {
        self.shared.drain.count_hook_panics(panicked);
    }

    /// Tasks whose wakers the drain holds now (one per polled, pending, undropped handle).
    pub fn waiters(&self) -> usize {
        self.shared.drain.waiter_count()
    }
}

impl Clone for Drain {
    /// Another handle to the same drain; it has not waited yet.
    fn clone(&self) -> Self {
        Drain::new(Rc::clone(&self.shared))
    }
}

impl Drop for Drain {
    /// Deregisters this handle's waker, if it was waiting.
    fn drop(&mut self) {
        if let Some(slot) = self.waiter.take() {
            self.shared.drain.deregister(slot);
        }
    }
}

impl Future for Drain {
    type Output = DrainReport;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DrainReport> {
        if self.is_complete() {
            // Completion emptied the waiter list: this handle's slot is gone.
            self.waiter.set(None);
            return Poll::Ready(self.report());
        }
        let slot = self.shared.drain.register(self.waiter.get(), cx.waker());
        self.waiter.set(Some(slot));
        if self.is_complete() {
            // The executor's waker clone (user code) let the drain complete: no wake-up comes.
            self.shared.drain.deregister(slot);
            self.waiter.set(None);
            return Poll::Ready(self.report());
        }
        Poll::Pending
    }
}

impl fmt::Debug for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("complete", &self.is_complete())
            .field("outstanding", &self.outstanding())
            .finish()
    }
}
