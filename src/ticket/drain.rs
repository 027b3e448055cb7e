//! The drain: completes when the last ticket drops after `stop()`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::core::shared::Shared;
use crate::ledger::{LeakReport, Ledger};
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
#[derive(Clone)]
#[must_use = "a drain does nothing unless polled or awaited"]
pub struct Drain {
    shared: Rc<Shared>,
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainReport {
    /// Whether the last ticket has dropped.
    pub complete: bool,
    /// From `stop()` to the last ticket dropping, once complete.
    pub drain_time: Option<Duration>,
    /// Signals aborted by escalation (zero unless the deadline passed).
    pub aborted_signals: usize,
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
        if !self.outstanding.is_empty() {
            write!(f, ":\n{}", self.outstanding)?;
        }
        Ok(())
    }
}

impl Drain {
    pub(crate) fn new(shared: Rc<Shared>) -> Self {
        Drain { shared }
    }

    /// Whether the last pending request has ended.
    pub fn is_complete(&self) -> bool {
        self.shared.drained_at().is_some()
    }

    /// Pending-request tickets still out.
    pub fn outstanding(&self) -> usize {
        self.shared.tickets_out()
    }

    /// Time from `stop()` to completion, once complete.
    pub fn drain_time(&self) -> Option<Duration> {
        Some(self.shared.drained_at()? - self.shared.stopped_at()?)
    }

    /// The server's ledger, to see what is still out.
    pub fn ledger(&self) -> &Ledger {
        &self.shared.ledger
    }

    /// Sets the instant after which [`poll_deadline`](Drain::poll_deadline) escalates.
    pub fn set_deadline(&self, deadline: Instant) {
        self.shared.deadline.set(Some(deadline));
    }

    /// The deadline, if one is set.
    pub fn deadline(&self) -> Option<Instant> {
        self.shared.deadline.get()
    }

    /// Checks the drain against its deadline at `now`, escalating the first time it has passed.
    ///
    /// An event loop calls this on each turn (or from its timer) after `stop()`.
    pub fn poll_deadline(&self, now: Instant) -> DrainStatus {
        if self.is_complete() {
            return DrainStatus::Complete;
        }
        match self.deadline() {
            Some(deadline) if now >= deadline => {
                let aborted = if self.shared.escalated.replace(true) {
                    0
                } else {
                    self.abort_outstanding()
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

    /// Aborts, with [`AbortReason::DrainDeadline`], every signal that an activity ref still holds,
    /// and reports what is out after the listeners ran. Does not wait for the deadline.
    pub fn escalate(&self) -> DrainReport {
        self.shared.escalated.set(true);
        let aborted = self.abort_outstanding();
        self.report_with(aborted)
    }

    fn abort_outstanding(&self) -> usize {
        // Listeners may drop activity refs: collect first, abort unborrowed.
        let signals = self.shared.signals_with_activity();
        signals
            .iter()
            .filter(|s| s.abort(AbortReason::DrainDeadline))
            .count()
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
            outstanding: self.shared.ledger.report(),
        }
    }

    /// Runs `hook` when the drain completes (now, if it has): resolve `server.stop()`'s promise here.
    pub fn on_complete(&self, hook: impl FnOnce() + 'static) {
        self.shared.on_drained(Box::new(hook));
    }
}

impl Future for Drain {
    type Output = DrainReport;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DrainReport> {
        if self.is_complete() {
            return Poll::Ready(self.report());
        }
        self.shared.set_waker(cx.waker());
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
