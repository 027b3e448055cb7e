//! The bundle of a request the server's own accounting admitted: an [`Admitted`] without a
//! payload.

use std::fmt;
use std::panic::Location;
use std::rc::Rc;

use super::bundle::{release_owned, release_slot};
use super::outcome::Outcome;
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
