//! The admitted bundle: everything one request holds, taken all or nothing, ended with one
//! outcome.

use std::fmt;
use std::panic::Location;

use std::rc::Rc;

use super::outcome::Outcome;
use crate::ledger::Entry;
use crate::pool::{ContextPool, Origin, Recycle};
use crate::server::shared::Shared;
use crate::signal::{AbortSignal, ActivityRef};

/// One admitted request: its ticket, its pooled context, its abort signal with an activity ref,
/// and its request object until the engine takes it. One accounting record: a single ledger
/// entry and a single pointer to the server's shared state (its signal's home). Made only by [`Live::admit`](crate::Live::admit) and
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
/// and counted). Then everything is given back in reverse order of acquisition: request object
/// (if not handed off), activity ref, context (recycled into the pool), ticket.
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
    /// The request's signal; its home is the request's server (ledger, drain).
    signal: AbortSignal,
    pool: Rc<ContextPool<C>>,
    /// `None` only inside `Drop`, after the context went back to the pool.
    slot: Option<Box<C>>,
    /// `None` once handed off (or while `build` runs).
    payload: Option<R>,
    entry: Entry,
    origin: Origin,
    outcome: Outcome,
    /// `build` refused: released without an outcome (it was never admitted).
    refused: bool,
}

impl<C: Recycle, R> Admitted<C, R> {
    /// The bundle around a checked-out context, before `build` runs; `entry` is its ledger
    /// entry in `shared`'s ledger.
    #[inline]
    pub(crate) fn start(
        shared: &Rc<Shared>,
        pool: &Rc<ContextPool<C>>,
        (slot, origin): (Box<C>, Origin),
        entry: Entry,
    ) -> Self {
        let signal = AbortSignal::mint(shared);
        signal.state().add_activity();
        signal.state().set_request_out(true);
        Admitted {
            signal,
            pool: Rc::clone(pool),
            slot: Some(slot),
            payload: None,
            entry,
            origin,
            outcome: Outcome::Dropped,
            refused: true,
        }
    }

    /// Runs `build` on the context: the bundle with its request payload, or a refusal (the
    /// bundle drops and gives everything back without an outcome).
    #[inline]
    pub(crate) fn build(
        mut self,
        build: impl FnOnce(&mut C) -> Result<R, crate::Refusal>,
    ) -> Result<Self, crate::Refusal> {
        // Refused until `build` returns a payload: a panic in it unwinds as a refusal too.
        let payload = build(self.context_mut())?;
        self.refused = false;
        self.payload = Some(payload);
        self.shared().ledger.bundle_request(&self.entry, true);
        Ok(self)
    }

    #[inline]
    fn shared(&self) -> &Rc<Shared> {
        self.signal.home()
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
        &self.signal
    }

    /// Another activity ref on this request's signal, for native work that must keep the
    /// signal alive (a pending body read, a timer). It can only be taken from an admitted
    /// request, so it is always on the request's own server.
    #[track_caller]
    #[inline]
    pub fn activity_ref(&self) -> ActivityRef {
        ActivityRef::mint_owned(self.signal.clone(), Location::caller())
    }

    /// The request payload, until it is handed off.
    #[inline]
    pub fn request(&self) -> Option<&R> {
        self.payload.as_ref()
    }

    /// The request payload, mutably, until it is handed off.
    #[inline]
    pub fn request_mut(&mut self) -> Option<&mut R> {
        self.payload.as_mut()
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
        let payload = self.payload.take()?;
        self.shared().ledger.bundle_request(&self.entry, false);
        Some(payload)
    }

    /// The pooled context.
    #[inline]
    pub fn context(&self) -> &C {
        self.slot.as_deref().expect("a bundle holds its context")
    }

    /// The pooled context, mutably.
    #[inline]
    pub fn context_mut(&mut self) -> &mut C {
        self.slot
            .as_deref_mut()
            .expect("a bundle holds its context")
    }

    /// Whether the pool was exhausted and this request's context lives on the heap.
    #[inline]
    pub fn is_spilled(&self) -> bool {
        self.origin == Origin::Spilled
    }

    /// Leaks the whole bundle: no outcome is recorded, nothing fires, and the ledger keeps
    /// counting its ticket, context, activity ref (and request object) at the admit site.
    pub fn forget(this: Self) {
        std::mem::forget(this);
    }
}

impl<C: Recycle, R> Drop for Admitted<C, R> {
    /// Records the outcome and fires the abort signal unless it is `Completed`; then gives
    /// back the request object, the activity, the context and the ticket, in that order.
    #[inline(always)]
    fn drop(&mut self) {
        let outcome = if self.refused {
            self.shared().ledger.bundle_refused();
            None
        } else {
            Some(self.decide())
        };
        // Dropped with the fields, after everything is given back (no move out of it here).
        let had_request = self.payload.is_some();
        let state = self.signal.state();
        state.remove_activity();
        state.set_request_out(false); // a kept activity ref no longer makes it abortable
        if let Some(slot) = self.slot.take() {
            self.pool.checkin(slot, self.origin);
        }
        self.signal
            .home()
            .release_bundle(&self.entry, had_request, outcome);
    }
}

impl<C: Recycle, R> Admitted<C, R> {
    /// The outcome (the first cause wins: a signal that already fired decided it, so a
    /// completed request's signal never fired), and the abort it fires.
    #[inline]
    fn decide(&self) -> Outcome {
        // Only whether it fired: the reason (24 bytes) is read on the slow path alone.
        if self.outcome == Outcome::Completed && !self.signal.state().is_aborted() {
            return Outcome::Completed; // the common case: nothing fires
        }
        self.decide_slow()
    }

    #[cold]
    #[inline(never)]
    fn decide_slow(&self) -> Outcome {
        match self.signal.reason() {
            Some(reason) => Outcome::after_abort(reason),
            None => {
                if let Some(reason) = self.outcome.abort_reason() {
                    self.signal.abort(reason);
                }
                self.outcome
            }
        }
    }
}

impl<C: Recycle, R: fmt::Debug> fmt::Debug for Admitted<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admitted")
            .field("request", &self.payload)
            .field("signal", &self.signal)
            .field("spilled", &self.is_spilled())
            .finish()
    }
}
