//! The admitted bundle: everything one request holds, taken all or nothing, ended with one
//! outcome.

use std::fmt;
use std::panic::Location;

use std::rc::Rc;

use super::outcome::Outcome;
use crate::callback::{call_caught, forget_none};
use crate::ledger::BundleEntry;
use crate::pool::{ContextPool, Origin, Recycle, Slot};
use crate::server::shared::Shared;
use crate::signal::{AbortSignal, ActivityRef};

/// One admitted request: its ticket, its pooled context, its abort signal with an activity ref,
/// and its request object until the engine takes it. One accounting record: a single ledger
/// entry and a single `Rc` (the server's pool, which holds the server's shared state), kept in
/// the pooled slot with the context, so the bundle is one pointer beside its payload. Made
/// only by [`Live::admit`](crate::Live::admit) and [`Live::admit_with`](crate::Live::admit_with),
/// which take all of it or none: it exists only whole.
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
/// and counted). The request's own activity on its signal ends with it: from here the drain
/// deadline no longer aborts the signal, and [`AbortSignal::pending_activity`] counts only the
/// activity refs taken from the bundle. Then everything else is given back in reverse order of
/// acquisition: request object (if not handed off; its `Drop` runs on its own, a panic there is
/// caught), context (recycled into the pool), ticket (which may complete the drain and run its
/// hooks).
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
    /// The pooled slot: the context, the signal, the server's pool and the ledger entry, so
    /// the bundle is one pointer beside its payload. `None` once released (the slot went back
    /// to the pool).
    slot: Option<Box<Slot<C>>>,
    /// `None` once handed off.
    payload: Option<R>,
}

/// A bundle while `build` runs: minted (ticket, context, signal with its activity), not yet
/// admitted. [`Live::admit`](crate::Live::admit) holds it in a scope guard that
/// [`refuse`](Parts::refuse)s it unless `build` succeeds and it becomes an [`Admitted`].
pub(crate) struct Parts<C> {
    /// A checked-out slot holding its pool's handle and the bundle's ledger entry.
    slot: Box<Slot<C>>,
}

impl<C: Recycle> Parts<C> {
    /// The parts around a slot checked out of `pool`; `entry` is the bundle's ledger entry.
    #[inline(always)]
    pub(crate) fn mint(
        pool: &Rc<ContextPool<C>>,
        mut slot: Box<Slot<C>>,
        entry: BundleEntry,
    ) -> Self {
        // The signal kept beside the context (every slot holds one: invariant 6 of the
        // pool's slots). The request's own activity (invariant 2 of `SignalState`).
        slot.signal.state().set_request_out(true);
        // The bundle's handle on its pool (G5): the slot kept it when a release through the
        // server's own accounting gave it back (invariant 7 of the pool's slots: a pipeline's
        // requests take and give it with no count), else a new one.
        if slot.pool.is_none() {
            // Nothing to drop: not an assignment, whose drop would read the field again
            // (the count's increment may alias it, for the compiler).
            forget_none(slot.pool.replace(Rc::clone(pool)));
        }
        slot.entry = entry;
        Parts { slot }
    }

    /// The context for `build` to fill.
    #[inline]
    pub(crate) fn context_mut(&mut self) -> &mut C {
        &mut self.slot.context
    }

    /// `build` made the request payload: the admitted bundle, built where it is returned (the
    /// caller records it in the ledger, [`Ledger::bundle_built`](crate::Ledger)).
    #[inline]
    pub(crate) fn admit<R>(self, payload: R) -> Admitted<C, R> {
        Admitted {
            slot: Some(self.slot),
            payload: Some(payload),
        }
    }

    /// The admitted bundle of [`Guarded`](crate::http::Guarded), which makes no payload: its
    /// request object is counted with it until it ends, as an [`Admitted`]'s not handed off.
    #[cfg(feature = "server")]
    #[inline]
    pub(crate) fn admit_bare(self) -> super::GuardedHeld<C> {
        super::GuardedHeld::new(self.slot)
    }

    /// `build` refused or panicked: everything goes back in reverse order (activity, context,
    /// ticket), without an outcome: the request was never admitted.
    #[cold]
    #[inline(never)]
    pub(crate) fn refuse(self) {
        let mut slot = self.slot;
        let Some(pool) = slot.pool.take() else {
            return; // never: a part's slot holds its pool's handle
        };
        let entry = std::mem::take(&mut slot.entry);
        slot.signal.state().set_request_out(false);
        // `build` may have escalated a drain that listed (and aborted) the signal: as good as
        // new again before it stays beside the context.
        renew_signal(&mut slot, pool.home());
        pool.checkin(slot);
        pool.home().release_refused_bundle(&entry);
    }
}

impl<C: Recycle, R> Admitted<C, R> {
    /// The slot; `None` only inside `release`, which consumes the bundle.
    #[inline]
    fn slot(&self) -> &Slot<C> {
        self.slot.as_deref().expect("a bundle holds its slot")
    }

    /// The request's signal, in the slot from the mint to the release (every slot holds
    /// one: nothing to test).
    #[inline]
    fn own_signal(&self) -> &AbortSignal {
        &self.slot().signal
    }

    #[inline]
    fn shared(&self) -> &Rc<Shared> {
        self.slot()
            .pool
            .as_ref()
            .expect("a bundle's slot holds its pool's handle")
            .home()
    }

    /// The request finished normally (its answer is written): outcome
    /// [`Completed`](Outcome::Completed); its abort signal never fires.
    #[inline]
    pub fn complete(mut self) {
        self.release(Outcome::Completed);
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
    #[inline(always)]
    pub fn end(mut self, outcome: Outcome) {
        self.release(outcome);
    }

    /// Whether `signal` is this request's abort signal: for an adapter that keeps a handle of
    /// its request's signal to tell that request's bundle from another's in one compare. A
    /// signal's state goes to another request only once no handle of it is left, so while the
    /// caller holds `signal` no other bundle's signal is it, whatever was released meanwhile
    /// (the pooled slot is not such an identity: a released bundle's slot is the next
    /// admission's at once). False once released.
    #[cfg(feature = "hyper")]
    #[inline]
    pub(crate) fn has_signal(&self, signal: &AbortSignal) -> bool {
        self.slot
            .as_deref()
            .is_some_and(|slot| slot.signal.same_as(signal))
    }

    /// The request's abort signal.
    #[inline]
    pub fn signal(&self) -> &AbortSignal {
        self.own_signal()
    }

    /// Another activity ref on this request's signal, for native work that must keep the
    /// signal alive (a pending body read, a timer). It can only be taken from an admitted
    /// request, so it is always on the request's own server.
    #[track_caller]
    #[inline]
    pub fn activity_ref(&self) -> ActivityRef {
        ActivityRef::mint_owned(self.signal().clone(), self.shared(), Location::caller())
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
        // Returned as taken (not unwrapped and wrapped again: a copy of the payload fewer).
        let payload = self.payload.take();
        if payload.is_some() {
            self.shared().ledger.bundle_hand_off(&self.slot().entry);
        }
        payload
    }

    /// The pooled context.
    #[inline]
    pub fn context(&self) -> &C {
        &self.slot().context
    }

    /// The pooled context, mutably.
    #[inline]
    pub fn context_mut(&mut self) -> &mut C {
        &mut self
            .slot
            .as_deref_mut()
            .expect("a bundle holds its slot")
            .context
    }

    /// Whether the pool was exhausted and this request's context lives on the heap.
    #[inline]
    pub fn is_spilled(&self) -> bool {
        self.slot().origin == Origin::Spilled
    }

    /// Leaks the whole bundle: no outcome is recorded, nothing fires, and the ledger keeps
    /// counting its ticket, context, activity ref (and request object) at the admit site. Its
    /// pooled slot (and the server it holds) stays allocated.
    pub fn forget(this: Self) {
        std::mem::forget(this);
    }
}

impl<C: Recycle, R> Drop for Admitted<C, R> {
    /// A bundle dropped without [`complete`](Admitted::complete) or [`end`](Admitted::end)
    /// ends as [`Outcome::Dropped`] (out of line: those two release it where they are called,
    /// and leave nothing to drop: the slot went back to the pool, the payload was taken).
    #[inline(always)]
    fn drop(&mut self) {
        if self.slot.is_some() {
            self.release_dropped();
        }
    }
}

impl<C: Recycle, R> Admitted<C, R> {
    #[cold]
    #[inline(never)]
    fn release_dropped(&mut self) {
        self.release(Outcome::Dropped);
    }

    /// Records the outcome (`outcome`, unless the signal fired first) and fires the abort
    /// signal unless it is `Completed`; ends the request's activity on it; then gives back the
    /// request object (if not handed off), the context and the ticket, in that order. Once:
    /// the slot is taken. The slot goes back without its handle on the pool, which is let go
    /// after it (the release of the bundle that may be the server's last).
    #[inline(always)]
    fn release(&mut self, outcome: Outcome) {
        let Some(slot) = self.slot.take() else {
            return; // released already
        };
        release_owned(slot, &mut self.payload, outcome);
    }
}

/// The release of a bundle's `slot` into its own pool, whose handle the slot holds: the slot
/// goes back without it, and the handle is let go after it (the release of the bundle that
/// may be the server's last).
#[inline(always)]
pub(super) fn release_owned<C: Recycle, R>(
    mut slot: Box<Slot<C>>,
    payload: &mut Option<R>,
    outcome: Outcome,
) {
    let Some(pool) = slot.pool.take() else {
        return; // never: an admitted slot holds its pool's handle
    };
    release_slot(&pool, slot, payload, outcome);
    drop(pool);
}

/// The release of a bundle's `slot` into `pool`, its own (see `Admitted::release`), the slot
/// holding its handle on the pool or not (invariant 7 of the pool's slots); `payload` is the
/// bundle's request object, if not handed off.
#[inline(always)]
pub(super) fn release_slot<C: Recycle, R>(
    pool: &ContextPool<C>,
    mut slot: Box<Slot<C>>,
    payload: &mut Option<R>,
    outcome: Outcome,
) {
    let entry = std::mem::take(&mut slot.entry);
    let state = slot.signal.state();
    // Read once: nothing below touches an untouched signal (touching needs a handle, and
    // the escalation skips a request no longer out), and only a release or a reset clears
    // the flag.
    let touched = state.is_touched();
    // Completed and never fired (nearly always): nothing fires, and the signal may be kept.
    // Else the first cause decides the outcome, out of line. An untouched signal never
    // fired (invariant 6 of `SignalState`): one load tells the common case.
    if outcome != Outcome::Completed || (touched && state.is_aborted()) {
        release_unclean(pool, slot, &entry, payload.take(), outcome);
        return;
    }
    // The request has ended, and its own activity on the signal with it (invariant 2 of
    // `SignalState`): no escalation may fire its signal from here (the payload's `Drop`
    // below is user code, which may escalate the drain; a completed request's signal never
    // fires), and a kept activity ref no longer makes it abortable.
    state.set_request_out(false);
    // Everything goes back in reverse order of acquisition, the request object first: its
    // `Drop` is user code (an engine object), run on its own so that a panic there cannot
    // skip the rest, and before the ticket, whose release may complete the drain.
    let had_request = drop_payload(payload.take());
    // Untouched (no handle was cloned from it, no listener added, no escalation listed it:
    // invariant 6 of `SignalState`): nearly always on the mio server. Nobody else holds the
    // signal and it is as good as new, without reading its handle count or listeners
    // (nothing that ran since the check above can fire it without a handle: the escalation
    // skips a request no longer out), so it stays beside the context (in the slot) for the
    // next request. A touched one (the hyper adapter's handler holds a clone) by the full
    // check, inline: kept when nobody else holds it any more and no listener waits.
    // An untouched signal's slot is a pooled one (invariant 8 of the pool's slots: a
    // spilled slot's signal is touched from its checkout): checked in without reading its
    // origin.
    if touched {
        if Rc::strong_count(state) != 1 || !state.is_fresh() {
            release_unkept(pool, slot, &entry, had_request, Outcome::Completed);
            return;
        }
        state.untouch();
        pool.checkin(slot);
    } else {
        pool.checkin_pooled(slot);
    }
    pool.home()
        .release_bundle(&entry, had_request, Outcome::Completed);
}

/// [`release_slot`] of the bundle `Guarded` kept for a pipeline (its request object held, its
/// request answered): *completed*, unless `dropped` (asked only if the signal was touched, off
/// the common path): its handler panicked, which marked the signal touched
/// (`KeptBundle::handler_panicked`). The untouched release, nearly every one, tests nothing
/// more than [`release_slot`]'s.
#[cfg(feature = "server")]
#[inline(always)]
pub(super) fn release_kept<C: Recycle>(
    pool: &ContextPool<C>,
    mut slot: Box<Slot<C>>,
    dropped: impl FnOnce() -> bool,
) {
    if slot.signal.state().is_touched() && dropped() {
        let entry = std::mem::take(&mut slot.entry);
        release_unclean(pool, slot, &entry, Some(()), Outcome::Dropped);
        return;
    }
    release_slot(pool, slot, &mut Some(()), Outcome::Completed);
}

/// Drops a request object not handed off (user code, caught): whether there was one.
#[inline(always)]
fn drop_payload<R>(payload: Option<R>) -> bool {
    match payload {
        Some(payload) => {
            call_caught(move || drop(payload));
            true
        }
        None => false,
    }
}

/// A release whose request did not complete cleanly (it ends otherwise, or its signal fired
/// first): the outcome decided (and its abort fired), the request's own activity ended, the
/// request object dropped; then the signal stays beside the context if nobody else holds it
/// and it is as good as new (the full check: its handle count, whether it fired, its
/// listeners), else [`release_unkept`].
#[cold]
#[inline(never)]
fn release_unclean<C: Recycle, R>(
    pool: &ContextPool<C>,
    slot: Box<Slot<C>>,
    entry: &BundleEntry,
    payload: Option<R>,
    outcome: Outcome,
) {
    let outcome = decide_slow(&slot.signal, outcome);
    slot.signal.state().set_request_out(false);
    let had_request = drop_payload(payload);
    let state = slot.signal.state();
    if Rc::strong_count(state) != 1 || !state.is_fresh() {
        release_unkept(pool, slot, entry, had_request, outcome);
        return;
    }
    state.untouch();
    pool.checkin(slot);
    pool.home().release_bundle(entry, had_request, outcome);
}

/// The rest of a release whose signal cannot stay beside its context as it is (another handle
/// holds it, it fired, or a listener waits): made as good as new first ([`renew_signal`]).
#[cold]
#[inline(never)]
fn release_unkept<C: Recycle>(
    pool: &ContextPool<C>,
    mut slot: Box<Slot<C>>,
    entry: &BundleEntry,
    had_request: bool,
    outcome: Outcome,
) {
    let home = pool.home();
    renew_signal(&mut slot, home);
    pool.checkin(slot);
    home.release_bundle(entry, had_request, outcome);
}

/// The slot's signal made as good as new before the slot goes back (invariant 3 of the pool's
/// slots: reset, no other handle): reset in place when nobody else holds it (its listeners
/// dropped, each caught, as the spare list's reset does), else left to its other handles
/// (its listeners let go if it never fired) and swapped for a spare, or a new one (the old
/// one goes to the spares when its last handle drops).
#[cold]
#[inline(never)]
fn renew_signal<C>(slot: &mut Slot<C>, home: &Rc<Shared>) {
    let state = slot.signal.state();
    if Rc::strong_count(state) == 1 {
        state.reset();
    } else {
        if !state.is_aborted() {
            // Its request ended unaborted: its listeners live at most until then (invariant 1
            // of `SignalState`), and one holding the signal must not keep it (and itself)
            // alive for good.
            state.let_listeners_go();
        }
        drop(std::mem::replace(&mut slot.signal, AbortSignal::mint(home)));
    }
}

/// The outcome when the request did not complete cleanly (the first cause wins: a signal that
/// already fired decided it, so a completed request's signal never fired), and the abort it
/// fires. The release reads only whether the signal fired first: the reason (24 bytes) is read
/// here alone.
#[cold]
#[inline(never)]
fn decide_slow(signal: &AbortSignal, outcome: Outcome) -> Outcome {
    match signal.reason() {
        Some(reason) => Outcome::after_abort(reason),
        None => {
            if let Some(reason) = outcome.abort_reason() {
                signal.abort(reason);
            }
            outcome
        }
    }
}

impl<C: Recycle, R: fmt::Debug> fmt::Debug for Admitted<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admitted")
            .field("request", &self.payload)
            .field("signal", &self.slot.as_ref().map(|slot| &slot.signal))
            .field(
                "spilled",
                &self
                    .slot
                    .as_ref()
                    .map(|slot| slot.origin == Origin::Spilled),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use crate::engines::Heap;
    use crate::{Config, Outcome, ServerCore};

    /// A signal aborted through the bundle's own handle (no clone, no listener) is touched by
    /// the abort (invariant 6 of `SignalState`, round 23): the release's one-flag check then
    /// still finds that it fired, so the request ends with the abort's outcome (not
    /// *completed*) and the fired signal is not handed to the next request. It fails when the
    /// abort leaves the flag down.
    #[test]
    fn a_signal_aborted_through_its_own_handle_is_not_a_clean_completion() {
        let heap = Heap::new();
        let config = Config::default().with_pool_capacity(1).unwrap();
        let core = ServerCore::embedded(heap.alloc("server"), config);
        let live = core.upgrade().unwrap();
        let a = live.admit(|_| Ok(())).unwrap();
        a.signal().abort(crate::AbortReason::ClientDisconnected);
        assert!(a.signal().state().is_touched(), "the abort touched it");
        a.complete(); // the first cause wins: client gone
        let outcomes = core.ledger().outcomes();
        assert_eq!((outcomes.completed, outcomes.client_gone), (0, 1));
        let b = live.admit(|_| Ok(())).unwrap();
        assert!(
            !b.signal().is_aborted(),
            "a fired signal stayed in the slot"
        );
        assert!(!b.signal().state().is_touched());
        b.complete();
        assert_eq!(core.ledger().outcomes().completed, 1);
        core.ledger().assert_quiescent();
    }

    /// Every slot holds a signal (invariant 6 of the pool's slots, round 24): one that fired
    /// with no other handle is reset where it is and stays for the next bundle, as good as new
    /// (its listener dropped, never run for the next request); one another handle holds is left
    /// to that handle, untouched by the release, and the slot gets a spare. A pin of what main
    /// did through the spare list (the same signal came back from it, reset): it fails when the
    /// release leaves the fired signal as it is, and when it resets one another handle holds.
    #[test]
    fn a_signal_that_cannot_stay_as_it_is_is_reset_in_place_or_swapped() {
        let heap = Heap::new();
        let config = Config::default().with_pool_capacity(1).unwrap();
        let core = ServerCore::embedded(heap.alloc("server"), config);
        let live = core.upgrade().unwrap();
        let ran = Rc::new(std::cell::Cell::new(0u32));
        let state = |b: &crate::Admitted<(), ()>| Rc::as_ptr(b.signal().state());

        // Fired, a listener left, nobody else holding it: reset in place.
        let a = live.admit(|_| Ok(())).unwrap();
        let first = state(&a);
        let r = Rc::clone(&ran);
        a.signal().on_abort(move |_| r.set(r.get() + 1));
        a.end(Outcome::ClientGone);
        assert_eq!(ran.get(), 1, "the abort ran its listener once");
        let b = live.admit(|_| Ok(())).unwrap();
        assert_eq!(
            state(&b),
            first,
            "reset where it is, kept beside its context"
        );
        assert!(!b.signal().is_aborted(), "kept without its reset");
        assert!(b.signal().state().is_fresh() && !b.signal().state().is_touched());
        assert_eq!(b.signal().pending_activity(), 1);
        let r = Rc::clone(&ran);
        b.signal().on_abort(move |_| r.set(r.get() + 10));
        b.complete();
        assert_eq!(ran.get(), 1, "a completed request's listener ran");

        // Fired and held elsewhere: left to its holder, the slot gets another one.
        let c = live.admit(|_| Ok(())).unwrap();
        let held = c.signal().clone();
        c.end(Outcome::ForceClosed);
        assert_eq!(held.reason(), Some(crate::AbortReason::ForceClosed));
        let d = live.admit(|_| Ok(())).unwrap();
        assert!(
            !d.signal().same_as(&held),
            "a signal another handle holds stayed"
        );
        assert!(!d.signal().is_aborted() && d.signal().state().is_fresh());
        assert_eq!(
            held.reason(),
            Some(crate::AbortReason::ForceClosed),
            "the release reset a signal another handle holds"
        );
        d.complete();
        drop(held); // its last handle: to the spares, reset
        let spare = live.signal();
        assert!(!spare.is_aborted() && spare.state().is_fresh());
        drop(spare);
        let outcomes = core.ledger().outcomes();
        assert_eq!(
            (
                outcomes.completed,
                outcomes.client_gone,
                outcomes.force_closed
            ),
            (2, 1, 1)
        );
        core.ledger().assert_quiescent();
    }

    /// A refused build gives its slot back with the signal as good as new (round 24: the slot
    /// keeps it). Here `build` stops the server and lets its drain deadline pass, which aborts
    /// the request's signal (its request is out while `build` runs), then refuses: the slot
    /// holds a signal that never fired (it fails when the refusal leaves the aborted one
    /// there), and the saved request admitted after the stop, in the same slot, has it aborted
    /// by the escalation that already ran (QA embed26-2), not an old abort.
    #[test]
    fn a_refused_build_leaves_its_slot_a_signal_as_good_as_new() {
        let heap = Heap::new();
        let config = Config::default().with_pool_capacity(1).unwrap();
        let core = ServerCore::embedded(heap.alloc("server"), config);
        let live = core.upgrade().unwrap();
        let saved = live.ticket().unwrap();
        let drain = std::cell::RefCell::new(None);
        let refused = live.admit(|_| {
            let stopping = core.stop();
            stopping.set_deadline(std::time::Instant::now());
            let status = stopping.poll_deadline(std::time::Instant::now());
            *drain.borrow_mut() = Some((stopping, status));
            Err::<(), _>(crate::Refusal::new(crate::RefusalReason::Stopped))
        });
        assert!(refused.is_err());
        let (stopping, status) = drain.into_inner().unwrap();
        assert!(
            matches!(status, crate::DrainStatus::Expired(ref r) if r.aborted_signals == 1),
            "the escalation aborted the building request's signal: {status:?}"
        );
        let slot = core.pool().checkout().unwrap(); // the slot the refusal gave back
        assert!(slot.signal.state().is_fresh(), "the aborted signal stayed");
        core.pool().checkin(slot);
        let bundle = live.admit_with(saved, |_| Ok(())).unwrap();
        let reason = bundle.signal().reason();
        assert_eq!(reason, Some(crate::AbortReason::DrainDeadline));
        bundle.complete();
        assert!(stopping.is_complete());
        assert_eq!(core.ledger().outcomes().deadline_aborted, 1);
        core.ledger().assert_quiescent();
    }

    /// The signal stays in its pooled slot from one bundle to the next while nobody else holds
    /// it (round 22): the next bundle has it with no move; one another handle holds, or that
    /// fired, leaves the slot, and the next bundle's is fresh. Each assertion fails when the
    /// release keeps a signal it must not, or never keeps one.
    #[test]
    fn a_signal_nobody_else_holds_stays_in_its_slot() {
        let heap = Heap::new();
        let config = Config::default().with_pool_capacity(1).unwrap();
        let core = ServerCore::embedded(heap.alloc("server"), config);
        let live = core.upgrade().unwrap();
        let state = |b: &crate::Admitted<(), ()>| Rc::as_ptr(b.signal().state());

        let a = live.admit(|_| Ok(())).unwrap();
        let first = state(&a);
        a.complete();
        // Not a spare: a signal minted now is another one.
        let other = live.signal();
        assert_ne!(Rc::as_ptr(other.state()), first, "went to the spares");
        let b = live.admit(|_| Ok(())).unwrap();
        assert_eq!(state(&b), first, "kept in the slot");
        drop(other);
        let held = b.signal().clone(); // another handle: it must not go to the next request
        b.complete();
        let c = live.admit(|_| Ok(())).unwrap();
        assert_ne!(
            state(&c),
            first,
            "a signal another handle holds stayed in the slot"
        );
        assert!(c.signal().state().is_fresh() && !c.signal().is_aborted());
        c.end(Outcome::ClientGone); // fired: not kept
        let c = live.admit(|_| Ok(())).unwrap();
        let kept = state(&c);
        drop(c.signal().clone()); // touched, then let go: as good as new (round 23's inline check)
        assert!(c.signal().state().is_touched());
        c.complete();
        let other = live.signal(); // a spare: not the kept one
        assert_ne!(Rc::as_ptr(other.state()), kept, "went to the spares");
        let c = live.admit(|_| Ok(())).unwrap();
        assert_eq!(state(&c), kept, "a signal touched and let go left the slot");
        drop(other);
        assert!(
            !c.signal().state().is_touched(),
            "kept without its touched bit cleared"
        );
        c.complete();
        let d = live.admit(|_| Ok(())).unwrap();
        assert!(
            !d.signal().is_aborted(),
            "a fired signal stayed in the slot"
        );
        assert_eq!(d.signal().pending_activity(), 1);
        d.complete();
        assert!(!held.is_aborted(), "completed: never fired");
        drop(held);
        let outcomes = core.ledger().outcomes();
        assert_eq!((outcomes.completed, outcomes.client_gone), (5, 1));
        core.ledger().assert_quiescent();
    }
}
