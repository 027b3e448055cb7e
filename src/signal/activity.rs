//! The activity ref: native work pending on a signal.

use std::fmt;
use std::panic::Location;

use super::abort::AbortSignal;
use crate::ledger::{Entry, GuardKind};

/// Keeps an [`AbortSignal`] alive while native work on it is pending.
///
/// This is `AbortSignal.pendingActivityRef()` made a guard: minted only from the proof with
/// [`Live::activity_ref`](crate::Live::activity_ref), counted in the ledger, released on drop.
/// While it is out, the signal reports [`has_pending_activity`](AbortSignal::has_pending_activity)
/// and a drain deadline aborts it.
///
/// # Examples
///
/// ```
/// use reqguard::{Config, GuardKind, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let live = core.upgrade().unwrap();
/// let signal = live.signal();
/// let activity = live.activity_ref(&signal);
/// assert!(signal.has_pending_activity());
/// drop(activity);
/// assert!(!signal.has_pending_activity());
/// core.ledger().assert_quiescent();
/// ```
#[must_use = "dropping an activity ref releases the signal at once"]
#[clippy::has_significant_drop]
pub struct ActivityRef {
    signal: AbortSignal,
    entry: Entry,
}

impl ActivityRef {
    #[track_caller]
    #[inline]
    pub(crate) fn mint(signal: &AbortSignal) -> Self {
        ActivityRef::mint_owned(signal.clone())
    }

    /// Like [`mint`](ActivityRef::mint), keeping the handle it is given (no clone and drop).
    #[track_caller]
    #[inline]
    pub(crate) fn mint_owned(signal: AbortSignal) -> Self {
        let home = signal.home();
        let entry = home.ledger.mint(GuardKind::ActivityRef, Location::caller());
        // A drain escalation finds the signal through its pending activity (no registration).
        signal.state().add_activity();
        ActivityRef { signal, entry }
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
    /// let signal = live.signal();
    /// ActivityRef::forget(live.activity_ref(&signal));
    /// assert_eq!(core.ledger().outstanding(GuardKind::ActivityRef), 1);
    /// assert!(signal.has_pending_activity());
    /// ```
    pub fn forget(this: Self) {
        std::mem::forget(this);
    }
}

impl Drop for ActivityRef {
    /// Removes one pending activity from the signal and releases the ledger entry.
    #[inline]
    fn drop(&mut self) {
        let home = self.signal.home();
        self.signal.state().remove_activity();
        home.ledger.release(GuardKind::ActivityRef, &self.entry);
    }
}

impl fmt::Debug for ActivityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityRef")
            .field("signal", &self.signal)
            .finish()
    }
}
