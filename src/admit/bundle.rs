//! The admitted bundle: everything one request holds, taken all or nothing, ended with one
//! outcome.

use std::fmt;
use std::panic::Location;

use super::outcome::Outcome;
use super::request::RequestObject;
use crate::pool::{Recycle, RequestContext};
use crate::signal::{AbortSignal, ActivityRef};

/// One admitted request: its request object, its signal's activity ref, and its pooled
/// context (which holds its ticket). Made only by [`Live::admit`](crate::Live::admit) and
/// [`Live::admit_with`](crate::Live::admit_with), which take all of it or none.
///
/// # Ending it: one outcome (G8)
///
/// - [`complete`](Admitted::complete): the answer was written. Outcome
///   [`Completed`](Outcome::Completed); the abort signal never fires.
/// - [`end`](Admitted::end)`(outcome)`: the stack ends it otherwise
///   ([`ClientGone`](Outcome::ClientGone) when the connection went away,
///   [`ForceClosed`](Outcome::ForceClosed) when the server closed it at stop). The abort signal
///   fires once, with the outcome's [`AbortReason`](crate::AbortReason).
/// - Dropping it without either (an early return, `?`, a panic unwinding): outcome
///   [`Dropped`](Outcome::Dropped), and the abort signal fires once with
///   [`AbortReason::Dropped`](crate::AbortReason::Dropped).
/// - The first cause wins: once the request's signal has fired (the drain deadline, the stack
///   or user code aborted it), the request ends with the outcome that abort names,
///   [`Outcome::after_abort`], whatever is called afterwards; the deadline's abort makes it
///   [`DeadlineAborted`](Outcome::DeadlineAborted). So a completed request's signal never fired.
///
/// The outcome is counted in the server's [`Ledger::outcomes`](crate::Ledger::outcomes). Abort
/// listeners run before anything is released, each on its own (a panicking listener is caught
/// and counted). Then the guards release in reverse order of acquisition: request object (if
/// not handed off), activity ref, context, ticket.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use reqguard::{AbortReason, Config, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let live = core.upgrade().unwrap();
///
/// let fired = Rc::new(Cell::new(None));
/// let bundle = live.admit(|_ctx| Ok("GET /")).unwrap();
/// let seen = fired.clone();
/// bundle.signal().on_abort(move |reason| seen.set(Some(reason)));
/// bundle.complete(); // answered: the listener never runs
/// assert_eq!(fired.get(), None);
///
/// let bundle = live.admit(|_ctx| Ok("GET /")).unwrap();
/// let seen = fired.clone();
/// bundle.signal().on_abort(move |reason| seen.set(Some(reason)));
/// drop(bundle); // the handler returned early
/// assert_eq!(fired.get(), Some(AbortReason::Dropped));
///
/// let outcomes = core.ledger().outcomes();
/// assert_eq!((outcomes.completed, outcomes.dropped), (1, 1));
/// core.ledger().assert_quiescent();
/// ```
#[must_use = "dropping the bundle ends the request at once, as Outcome::Dropped"]
#[clippy::has_significant_drop]
pub struct Admitted<C: Recycle, R> {
    // Dropped in declaration order after `Drop::drop` records the outcome.
    request: RequestObject<R>,
    activity: ActivityRef,
    context: RequestContext<C>,
    outcome: Outcome,
}

impl<C: Recycle, R> Admitted<C, R> {
    #[inline]
    pub(crate) fn new(
        request: RequestObject<R>,
        activity: ActivityRef,
        context: RequestContext<C>,
    ) -> Self {
        Admitted {
            request,
            activity,
            context,
            outcome: Outcome::Dropped,
        }
    }

    /// The request finished normally (its answer is written): outcome
    /// [`Completed`](Outcome::Completed); its abort signal never fires.
    #[inline]
    pub fn complete(mut self) {
        self.outcome = Outcome::Completed;
    }

    /// The request ends with `outcome`, chosen by the stack: the abort signal fires exactly
    /// once, with [`Outcome::abort_reason`] (not at all for [`Outcome::Completed`], which is
    /// [`complete`](Admitted::complete)).
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{AbortReason, Config, Outcome, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
    /// let signal = bundle.signal().clone();
    /// bundle.end(Outcome::ForceClosed);
    /// assert_eq!(signal.reason(), Some(AbortReason::ForceClosed));
    /// assert_eq!(core.ledger().outcomes().force_closed, 1);
    /// ```
    #[inline]
    pub fn end(mut self, outcome: Outcome) {
        self.outcome = outcome;
    }

    /// The request's abort signal.
    #[inline]
    pub fn signal(&self) -> &AbortSignal {
        self.activity.signal()
    }

    /// Another activity ref on this request's signal, for native work that must keep the
    /// signal alive (a pending body read, a timer). It can only be taken from an admitted
    /// request, so it is always on the request's own server.
    #[track_caller]
    #[inline]
    pub fn activity_ref(&self) -> ActivityRef {
        ActivityRef::mint_owned(self.signal().clone(), Location::caller())
    }

    /// The request payload, until it is handed off.
    #[inline]
    pub fn request(&self) -> Option<&R> {
        self.request.payload()
    }

    /// The request payload, mutably, until it is handed off.
    #[inline]
    pub fn request_mut(&mut self) -> Option<&mut R> {
        self.request.payload_mut()
    }

    /// Passes the request payload to the engine (`request.toJS()`): the ledger stops counting
    /// it; the rest of the bundle stays. `None` if it was already handed off.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, GuardKind, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// let mut bundle = core.upgrade().unwrap().admit(|_| Ok("GET /")).unwrap();
    /// assert_eq!(bundle.hand_off(), Some("GET /"));
    /// assert_eq!(bundle.hand_off(), None);
    /// assert_eq!(core.ledger().outstanding(GuardKind::Request), 0);
    /// bundle.complete();
    /// ```
    #[inline]
    pub fn hand_off(&mut self) -> Option<R> {
        self.request.take()
    }

    /// The pooled context.
    #[inline]
    pub fn context(&self) -> &C {
        &self.context
    }

    /// The pooled context, mutably.
    #[inline]
    pub fn context_mut(&mut self) -> &mut C {
        &mut self.context
    }

    /// The context guard (its ticket, whether it spilled to the heap).
    #[inline]
    pub fn context_guard(&self) -> &RequestContext<C> {
        &self.context
    }

    /// Leaks the whole bundle: no outcome is recorded, nothing fires, and the ledger keeps
    /// counting each of its guards at the admit site.
    pub fn forget(this: Self) {
        std::mem::forget(this);
    }
}

impl<C: Recycle, R> Drop for Admitted<C, R> {
    /// Records the outcome and fires the abort signal unless it is `Completed`; the guards then
    /// release in reverse order of acquisition.
    #[inline]
    fn drop(&mut self) {
        let signal = self.activity.signal();
        // The first cause wins: a signal that already fired decided the outcome (a completed
        // request's signal never fires).
        let outcome = match signal.reason() {
            None => self.outcome,
            Some(reason) => Outcome::after_abort(reason),
        };
        signal.home().ledger.record_outcome(outcome);
        if let Some(reason) = outcome.abort_reason() {
            signal.abort(reason);
        }
    }
}

impl<C: Recycle, R: fmt::Debug> fmt::Debug for Admitted<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admitted")
            .field("request", &self.request)
            .field("activity", &self.activity)
            .field("context", &self.context)
            .finish()
    }
}
