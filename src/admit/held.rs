//! The bundle of a request the server's own accounting admitted: an [`Admitted`] without a
//! payload.

use std::cell::Cell;
use std::fmt;
use std::panic::Location;
use std::rc::Rc;

use super::bundle::{release_kept, release_owned, release_slot};
use super::outcome::Outcome;
use crate::ledger::Ledger;
use crate::pool::{ContextPool, Origin, Recycle, Slot};
use crate::signal::{AbortSignal, ActivityRef};

#[cfg(doc)]
use super::Admitted;

/// What a request [`Guarded`](crate::http::Guarded) admitted holds until its answer is
/// written: `Guarded`'s [`Accounting::Held`](crate::http::Accounting::Held). The same bundle as
/// an [`Admitted`] (a ticket, a pooled context, an abort signal with its request's activity,
/// and its request object, counted in the ledger until the request ends) but without a
/// payload: the server makes none and never hands one off, so there is none to carry (an
/// `Admitted<C, ()>` carries a flag saying whether its `()` was handed off).
///
/// It ends as an [`Admitted`] does, with one outcome (G8): [`complete`](GuardedHeld::complete)
/// (the answer was written: its signal never fires), [`end`](GuardedHeld::end) with another
/// outcome (its signal fires once), or dropped (*dropped*, its signal fires once); the first
/// cause wins. An accounting that wraps `Guarded` names it as its own `Held`, or holds it
/// beside its own state.
///
/// # Examples
///
/// ```
/// use reqguard::http::{Accounting, Guarded, GuardedHeld};
/// use reqguard::{AbortReason, Config, Outcome};
///
/// let mut guarded = Guarded::embedded("server", Config::default());
/// let held: GuardedHeld = guarded.admit().unwrap();
/// // a ticket, a pooled context, a signal activity ref and a request object:
/// assert_eq!(guarded.ledger().unwrap().total_outstanding(), 4);
/// let signal = held.signal().clone();
/// held.end(Outcome::ClientGone);
/// assert_eq!(signal.reason(), Some(AbortReason::ClientDisconnected));
///
/// drop(guarded.admit().unwrap()); // the handler returned early
/// let outcomes = guarded.ledger().unwrap().outcomes();
/// assert_eq!((outcomes.client_gone, outcomes.dropped), (1, 1));
/// assert_eq!(guarded.report().leaked, 0);
/// ```
#[must_use = "dropping it ends the request at once, as Outcome::Dropped"]
#[clippy::has_significant_drop]
pub struct GuardedHeld<C: Recycle = ()> {
    /// The pooled slot, as in an [`Admitted`]; `None` once released.
    slot: Option<Box<Slot<C>>>,
}

/// The ledger counts a request object with every `GuardedHeld` until it ends: its payload, had
/// it one, would never have been handed off.
const WITH_REQUEST: Option<()> = Some(());

impl<C: Recycle> GuardedHeld<C> {
    /// The bundle around `slot`, just admitted ([`Parts::admit_bare`](super::Parts)).
    #[inline(always)]
    pub(super) fn new(slot: Box<Slot<C>>) -> Self {
        GuardedHeld { slot: Some(slot) }
    }

    /// The slot; `None` only inside a release, which consumes the bundle.
    #[inline]
    fn slot(&self) -> &Slot<C> {
        self.slot.as_deref().expect("a bundle holds its slot")
    }

    /// The request's abort signal: aborted when its request ends otherwise than completed
    /// (see [`Admitted`]), or by the drain's deadline while the request is out.
    #[inline]
    pub fn signal(&self) -> &AbortSignal {
        &self.slot().signal
    }

    /// The request's abort signal as an `Option` (always `Some` until the release): for
    /// `Guarded`'s `Accounting::signal`, without `slot`'s `expect` and its panic path.
    #[inline]
    pub(crate) fn signal_in_slot(&self) -> Option<&AbortSignal> {
        self.slot.as_deref().map(|slot| &slot.signal)
    }

    /// Another activity ref on this request's signal, for native work that must keep the
    /// signal alive (a pending body read, a timer): as [`Admitted::activity_ref`].
    #[track_caller]
    #[inline]
    pub fn activity_ref(&self) -> ActivityRef {
        let slot = self.slot();
        let pool = slot
            .pool
            .as_ref()
            .expect("a bundle's slot holds its pool's handle");
        ActivityRef::mint_owned(slot.signal.clone(), pool.home(), Location::caller())
    }

    /// No bundle: what a [`KeptBundle`] holds when it keeps none, and the mio server's
    /// stand-in for the bundle `Guarded` keeps (its `Drop` and its release do nothing).
    #[inline(always)]
    pub(crate) const fn none() -> Self {
        GuardedHeld { slot: None }
    }

    /// Lets go of a stand-in (`none`), which holds nothing.
    #[inline(always)]
    pub(crate) fn forget_empty(self) {
        debug_assert!(self.slot.is_none(), "a bundle let go of as a stand-in");
        std::mem::forget(self);
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

    /// The request finished normally (its answer is written): outcome
    /// [`Completed`](Outcome::Completed); its abort signal never fires (unless it fired
    /// before: the first cause wins).
    #[inline]
    pub fn complete(self) {
        self.end(Outcome::Completed);
    }

    /// The request ends with `outcome`: its abort signal fires exactly once, with
    /// [`Outcome::abort_reason`] (not at all for [`Outcome::Completed`], which is
    /// [`complete`](GuardedHeld::complete)); as [`Admitted::end`].
    #[inline(always)]
    pub fn end(self, outcome: Outcome) {
        // Released where it lies: the release takes the slot first thing, and nothing else
        // is left for `Drop` to find (even if the release unwinds).
        let mut this = std::mem::ManuallyDrop::new(self);
        if let Some(slot) = this.slot.take() {
            release_owned(slot, &mut WITH_REQUEST.clone(), outcome);
        }
    }

    /// [`end`](GuardedHeld::end), the slot given back to `pool`, its own (the mio server's
    /// sealed `Guarded::end_here`: its server core's pool, alive for the whole call, and a
    /// bundle that core admitted), with its handle on the pool kept in it for the next bundle
    /// (invariant 7 of the pool's slots): no `Rc` count down here nor up at the next
    /// admission.
    #[inline(always)]
    pub(crate) fn end_in(self, pool: &Rc<ContextPool<C>>, outcome: Outcome) {
        let mut this = std::mem::ManuallyDrop::new(self);
        let Some(slot) = this.slot.take() else {
            return; // never: released only here
        };
        // No compare: `end_here`'s seal says the bundle is the pool's own (its caller admitted
        // it through the same core within the same borrow).
        debug_assert!(
            slot.pool.as_ref().is_some_and(|own| Rc::ptr_eq(own, pool)),
            "a bundle given back to a pool not its own through `end_here`"
        );
        release_slot(pool, slot, &mut WITH_REQUEST.clone(), outcome);
    }

    /// [`end_in`](GuardedHeld::end_in) for the bundle a [`KeptBundle`] kept, its request
    /// answered: *completed*, or *dropped* if `dropped` says its handler panicked (asked only
    /// if its signal was touched, which a panicking handler's is:
    /// [`KeptBundle::handler_panicked`]).
    #[inline(always)]
    fn end_kept_in(self, pool: &Rc<ContextPool<C>>, dropped: impl FnOnce() -> bool) {
        let mut this = std::mem::ManuallyDrop::new(self);
        let Some(slot) = this.slot.take() else {
            return; // never: released only here
        };
        debug_assert!(
            slot.pool.as_ref().is_some_and(|own| Rc::ptr_eq(own, pool)),
            "a kept bundle given back to a pool not its own"
        );
        release_kept(pool, slot, dropped);
    }

    #[cold]
    #[inline(never)]
    fn release_dropped(&mut self) {
        if let Some(slot) = self.slot.take() {
            release_owned(slot, &mut WITH_REQUEST.clone(), Outcome::Dropped);
        }
    }
}

impl<C: Recycle> Drop for GuardedHeld<C> {
    /// A bundle dropped without [`complete`](GuardedHeld::complete) or
    /// [`end`](GuardedHeld::end) ends as [`Outcome::Dropped`] (out of line).
    #[inline(always)]
    fn drop(&mut self) {
        if self.slot.is_some() {
            self.release_dropped();
        }
    }
}

impl<C: Recycle> fmt::Debug for GuardedHeld<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedHeld")
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

/// The bundle of the request the mio server's [`Guarded`](crate::http::Guarded) is
/// dispatching, kept in the accounting (not moved through the dispatch), and after its answer
/// for the next request of the same pass over the input to take as it is (a renewal): a
/// pipeline's requests share one pooled slot, with no check-in, checkout, nor request flag of
/// its signal moved between them. A word and a flag: an empty [`GuardedHeld`] when it keeps
/// none, and whether the one kept may be renewed.
///
/// # Invariants
///
/// 1. It keeps a bundle from its request's admission to the next request's admission, or to
///    the pass's end, within one pass over a connection's input, unless the request is
///    parked (deferred, queued behind another: the bundle goes with it). No user code runs
///    between an answer and the next admission (the handlers run inside a dispatch).
/// 2. A kept bundle whose request was answered is still out, in the ledger and for its
///    signal (`request_out`): it ends *completed* at its renewal (one count standing for
///    its outcome and the next request's mint, invariant 7 of the ledger's book), at the
///    pass's end, or when its keeper goes (`Drop`).
/// 3. `renewable` is true only while a bundle is kept that was found, after its admission
///    in this pass, with the ledger plain and its signal untouched, and nobody has been lent
///    that signal since (`lend_signal`: the handler's `Request::signal`) and its handler has
///    not panicked (`handler_panicked`: the bundle then ends *dropped*, its signal aborted,
///    before the next admission or at the pass's end; no user code runs between the panic
///    and that end). Nothing else can touch the kept signal or make the
///    ledger not plain within a pass: the signal is reached only through `lend_signal` (the
///    handler holds no bundle; an escalation needs a drain, which exists only after a stop,
///    and no bundle is kept after a stop), and no code a pass runs can reach the server core
///    to stop it or its ledger to start a trace (the handlers, the scope provider and the
///    listeners hold neither; a stop through the accounting ends the kept bundle first). A
///    pass's start clears it (`pass_begins`: a bundle left kept by a pass a panic unwound
///    out of is checked again, or ended, user code may have run since). So a renewable
///    bundle is as its admission left it: one flag says what the ledger's flag and the
///    signal's said (round 32).
/// 4. `keep` is [`Keep::Nothing`] exactly while no bundle is kept, [`Keep::Admitted`] while
///    the one kept has not been checked since its admission (it is checked at the pass's
///    next request, if any), and [`Keep::Checked`] once it has been: renewable then unless
///    `renewable` was cleared since, when it ends before the next admission.
/// 5. `pending` counts the renewals not yet in the ledger's `bundles_renewed`. They are put
///    there ([`flush`](KeptBundle::flush)) wherever the ledger can be read from outside the
///    accounting: `Guarded::core` (the only way to the server core and its ledger from
///    outside; `Guarded::ledger` and `report` go through it), `Guarded::stop`, and
///    `Guarded`'s `Drop` (a drain the embedder holds may outlive it). Inside, nothing reads
///    the counts a renewal moves (`minted`, `outcomes`): the bundles out, which the drain and
///    the admission read, do not count renewals (invariant 7 of the ledger's book). So every
///    read of the ledger sees every renewal made before it, as when each renewal counted in
///    the ledger at once (round 33: the count without the ledger's address loaded).
pub(crate) struct KeptBundle<C: Recycle> {
    held: GuardedHeld<C>,
    /// The renewals not yet in the ledger (invariant 5).
    pending: Cell<u64>,
    /// The renewal's one test (invariant 3); a field of its own, not a state of `keep`: one
    /// compare, where the states of one byte made a jump table.
    renewable: Cell<bool>,
    keep: Cell<Keep>,
}

/// Where the bundle a [`KeptBundle`] keeps stands (invariant 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// None is kept.
    Nothing,
    /// One is kept, just admitted: renewable if the ledger is plain and its signal untouched
    /// (checked at the next request of the pass, if any).
    Admitted,
    /// One is kept and was checked: renewable while `renewable` says so, else it ends.
    Checked,
    /// One is kept whose handler panicked (`handler_panicked`): not renewed, it ends
    /// *dropped* (its signal aborted) before the next admission or at the pass's end.
    Dropped,
}

impl<C: Recycle> KeptBundle<C> {
    pub(crate) const fn new() -> Self {
        KeptBundle {
            held: GuardedHeld::none(),
            pending: Cell::new(0),
            renewable: Cell::new(false),
            keep: Cell::new(Keep::Nothing),
        }
    }

    /// Keeps `held`, just admitted, for the request being dispatched.
    #[inline(always)]
    pub(crate) fn keep(&mut self, held: GuardedHeld<C>) {
        let before = std::mem::replace(&mut self.held, held);
        self.keep.set(Keep::Admitted);
        // Empty: `renew` found none, or the one it found ended (invariant 1); and so not
        // renewable (`renew_here` admits only then).
        debug_assert!(before.slot.is_none(), "a bundle kept over another");
        debug_assert!(!self.renewable.get(), "a renewable bundle kept over");
        std::mem::forget(before);
    }

    /// Whether the kept bundle is renewed for the request about to be dispatched (one flag:
    /// invariant 3), its request completed and the next one minted into it, one count
    /// (`pending`, invariant 5). Else `false`: see
    /// [`renew_admitted`](KeptBundle::renew_admitted) and [`keeps`](KeptBundle::keeps).
    #[inline(always)]
    pub(crate) fn renew(&self) -> bool {
        if !self.renewable.get() {
            return false;
        }
        debug_assert!(self.held.slot.is_some(), "renewable with no bundle kept");
        self.pending.set(self.pending.get() + 1);
        true
    }

    /// The bundle kept just admitted (invariant 4), renewed if the ledger is plain and its
    /// signal untouched: then renewable for the rest of the pass (invariant 3). Else `false`:
    /// to be ended, if one is kept.
    #[inline(always)]
    pub(crate) fn renew_admitted(&self, ledger: &Ledger) -> bool {
        if self.keep.get() != Keep::Admitted {
            return false;
        }
        self.keep.set(Keep::Checked);
        let fresh = match self.held.slot.as_deref() {
            Some(slot) => ledger.is_plain() && !slot.signal.state().is_touched(),
            None => false,
        };
        if !fresh {
            return false;
        }
        self.renewable.set(true);
        self.pending.set(self.pending.get() + 1);
        true
    }

    /// The renewals counted since the last flush go into `ledger` (invariant 5).
    #[inline]
    pub(crate) fn flush(&self, ledger: &Ledger) {
        let pending = self.pending.replace(0);
        if pending != 0 {
            ledger.renew_bundles(pending);
        }
    }

    /// Whether one is kept.
    #[inline(always)]
    pub(crate) fn keeps(&self) -> bool {
        self.keep.get() != Keep::Nothing
    }

    /// A pass over a connection's input begins: a bundle kept from an earlier one (a panic
    /// unwound out of it) is not renewed unchecked (invariant 3: user code may have run
    /// since).
    #[inline(always)]
    pub(crate) fn pass_begins(&self) {
        self.renewable.set(false);
    }

    /// The kept bundle's signal lent out (a handler's `Request::signal`): it may be touched
    /// from now on, so the bundle is not renewed (invariant 3).
    #[inline]
    pub(crate) fn lend_signal(&self) -> Option<&AbortSignal> {
        self.renewable.set(false);
        let signal = self.held.signal_in_slot();
        if signal.is_some() {
            self.keep.set(Keep::Checked);
        }
        signal
    }

    /// The handler of the request whose bundle is kept panicked: the bundle is not renewed
    /// (invariant 3), and ends *dropped* ([`take_ended`](KeptBundle::take_ended)). Two
    /// stores, no call: called on the handler's panic path inside the reading loop.
    #[inline(always)]
    pub(crate) fn handler_panicked(&self) {
        debug_assert!(
            self.held.slot.is_some(),
            "a handler ran with no bundle kept"
        );
        self.renewable.set(false);
        self.keep.set(Keep::Dropped);
        // So that its release looks at `keep` ([`end_kept_in`](KeptBundle::end_kept_in)):
        // touched is conservative (the release checks the signal's handles and listeners).
        if let Some(slot) = self.held.slot.as_deref() {
            slot.signal.state().touch();
        }
    }

    /// The kept bundle, if one is kept, ends in `pool` (its own: the server core's that
    /// admitted it): *completed* (its request answered; unless its signal fired: the first
    /// cause wins), or *dropped* if its handler panicked (`handler_panicked`).
    #[inline(always)]
    pub(crate) fn end_kept_in(&mut self, pool: &Rc<ContextPool<C>>) {
        // Read before `take` clears it, tested only where the signal was touched.
        let keep = self.keep.get();
        if let Some(held) = self.take() {
            held.end_kept_in(pool, || keep == Keep::Dropped);
        }
    }

    /// The kept bundle, if one is kept, for its request parked (queued behind another
    /// answer: a panicking handler's `500` may be): if its handler panicked, its signal fires
    /// now (*dropped*, the first cause), before it leaves the keeper.
    #[inline(always)]
    pub(crate) fn take_parked(&mut self) -> Option<GuardedHeld<C>> {
        if self.keep.get() == Keep::Dropped {
            self.abort_dropped();
        }
        self.take()
    }

    /// [`take_parked`](KeptBundle::take_parked)'s abort of a panicking handler's signal. Out
    /// of line.
    #[cold]
    #[inline(never)]
    fn abort_dropped(&self) {
        if let Some(slot) = self.held.slot.as_deref() {
            slot.signal.abort(crate::signal::AbortReason::Dropped);
        }
    }

    /// The kept bundle, if one is kept, with the outcome it ends with: *completed* (its
    /// request answered; unless its signal fired: the first cause wins), or *dropped* if
    /// its handler panicked.
    #[inline(always)]
    pub(crate) fn take_ended(&mut self) -> Option<(GuardedHeld<C>, Outcome)> {
        let outcome = match self.keep.get() {
            Keep::Dropped => Outcome::Dropped,
            _ => Outcome::Completed,
        };
        self.take().map(|held| (held, outcome))
    }

    /// The kept bundle, if one is kept: its request parked, or ended.
    #[inline(always)]
    pub(crate) fn take(&mut self) -> Option<GuardedHeld<C>> {
        self.renewable.set(false);
        self.keep.set(Keep::Nothing);
        let held = std::mem::replace(&mut self.held, GuardedHeld::none());
        if held.slot.is_none() {
            std::mem::forget(held); // nothing to release
            return None;
        }
        Some(held)
    }
}

/// A keeper going with a bundle kept (a panic unwound out of the pass before its end): its
/// request, answered, ends *completed* as the pass's end would have ended it (or as its
/// signal's abort says, if it fired: the first cause wins).
impl<C: Recycle> Drop for KeptBundle<C> {
    fn drop(&mut self) {
        if let Some((held, outcome)) = self.take_ended() {
            held.end(outcome);
        }
    }
}

impl<C: Recycle> fmt::Debug for KeptBundle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeptBundle")
            .field("kept", &self.held.slot.is_some())
            .field("pending", &self.pending.get())
            .field("renewable", &self.renewable.get())
            .field("keep", &self.keep.get())
            .finish()
    }
}
