//! The activity ref: native work pending on a signal.

use std::fmt;
use std::panic::Location;
use std::rc::Rc;

use super::abort::AbortSignal;
use crate::ledger::{Entry, GuardKind};
use crate::server::shared::Shared;

/// Keeps an [`AbortSignal`] alive while native work on it is pending.
///
/// This is `AbortSignal.pendingActivityRef()` made a guard. Every admitted bundle holds one on
/// its request's signal until its outcome (counted by the request being out); native work that must keep the signal alive past a callback takes
/// another from the bundle with [`Admitted::activity_ref`](crate::Admitted::activity_ref), so an
/// activity ref exists only for a request that was admitted, on its own server. It is counted
/// in the ledger and released on drop. While it is out, the signal reports
/// [`has_pending_activity`](AbortSignal::has_pending_activity), and while its request is also
/// still out a drain deadline aborts it.
///
/// An activity ref kept after its request ended does not hold the drain up, and the deadline
/// does not fire the signal of a request that already ended (a completed request's never
/// fires); the ledger reports the ref as outstanding.
///
/// # Examples
///
/// ```
/// use reqguard::{Config, GuardKind, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let live = core.upgrade().unwrap();
/// let bundle = live.admit(|_| Ok(())).unwrap();
/// let activity = bundle.activity_ref(); // e.g. a body read still pending
/// assert_eq!(bundle.signal().pending_activity(), 2);
/// drop(activity);
/// assert_eq!(bundle.signal().pending_activity(), 1);
/// bundle.complete();
/// core.ledger().assert_quiescent();
/// ```
#[must_use = "dropping an activity ref releases the signal at once"]
#[clippy::has_significant_drop]
pub struct ActivityRef {
    signal: AbortSignal,
    /// The request's server: its ledger counts this ref.
    home: Rc<Shared>,
    entry: Entry,
}

impl ActivityRef {
    /// An activity ref on `signal`, a request of `home`'s, keeping the handle it is given.
    #[inline]
    pub(crate) fn mint_owned(
        signal: AbortSignal,
        home: &Rc<Shared>,
        site: &'static Location<'static>,
    ) -> Self {
        let entry = home.ledger.mint(GuardKind::ActivityRef, site);
        // A drain escalation finds the signal through its pending activity (no registration).
        signal.state().add_activity();
        ActivityRef {
            signal,
            home: Rc::clone(home),
            entry,
        }
    }

    /// The signal this ref keeps alive.
    pub fn signal(&self) -> &AbortSignal {
        &self.signal
    }

    /// Leaks the ref: the signal keeps its pending activity and the ledger keeps counting it.
    ///
    /// This is `mem::forget` under a name a reviewer can search for; the leak shows up in
    /// [`Ledger::report`](crate::Ledger::report).
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{ActivityRef, Config, GuardKind, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// let live = core.upgrade().unwrap();
    /// let bundle = live.admit(|_| Ok(())).unwrap();
    /// ActivityRef::forget(bundle.activity_ref());
    /// bundle.complete();
    /// assert_eq!(core.ledger().outstanding(GuardKind::ActivityRef), 1);
    /// ```
    pub fn forget(this: Self) {
        std::mem::forget(this);
    }
}

impl Drop for ActivityRef {
    /// Removes one pending activity from the signal and releases the ledger entry.
    #[inline]
    fn drop(&mut self) {
        self.signal.state().remove_activity();
        self.home
            .ledger
            .release(GuardKind::ActivityRef, &self.entry);
    }
}

impl fmt::Debug for ActivityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityRef")
            .field("signal", &self.signal)
            .finish()
    }
}
