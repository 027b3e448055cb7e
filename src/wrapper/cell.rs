//! The wrapper cell: the server's wrapper, held strongly until downgraded, weakly always.

use std::cell::{Cell, RefCell};
use std::fmt;

use super::engine::Engine;
use crate::ticket::DrainState;

/// When the server lets go of the strong handle to its wrapper.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DowngradePolicy {
    /// At `stop()`, as in the PR: in-flight requests may then see a finalized wrapper.
    OnStop,
    /// When the drain completes: the wrapper stays strong while any ticket is out, which is how
    /// Bun works now; the 503 path is then a backstop.
    #[default]
    OnDrain,
}

/// The server's wrapper object, held strongly while the server needs it and weakly always.
///
/// Owned by a [`ServerCore`](crate::ServerCore); see [`ServerCore::wrapper`](crate::ServerCore::wrapper).
///
/// An upgrade clones the strong handle (`E::Strong::clone`, the engine's code). A clone that
/// stops the server (an engine's bookkeeping calling back into the runtime) downgrades the cell
/// when the clone returns: the upgrade still yields its clone, and the cell lets its own handle
/// go before the upgrade returns (QA embed25-1; not checked for an engine whose clone cannot,
/// [`Engine::STRONG_CLONE_MAY_REENTER`]), caught: a panic there is counted in
/// [`DrainReport::panicked_hooks`](crate::DrainReport::panicked_hooks), as the stop's own
/// downgrade's is, and does not reach the upgrade's caller (QA embed26-1). A clone that stops
/// the server and then panics has the downgrade done before its panic goes on to the upgrade's
/// caller (QA embed27-1).
///
/// # Examples
///
/// Under [`DowngradePolicy::OnDrain`] the cell holds the wrapper strongly until the drain
/// completes: a collection meanwhile leaves it alone. Then it lets go, and once collected no
/// upgrade succeeds:
///
/// ```
/// use reqguard::{engines::Heap, Config, DowngradePolicy, ServerCore};
///
/// let heap = Heap::new();
/// let config = Config::default().with_downgrade(DowngradePolicy::OnDrain);
/// let core = ServerCore::embedded(heap.alloc("server"), config);
/// let request = core.upgrade().unwrap().admit(|_ctx| Ok(())).unwrap();
/// let drain = core.stop();
/// heap.collect();
/// assert!(core.wrapper().is_strong()); // a request is out: the wrapper is kept
/// assert!(!core.wrapper().weak().is_finalized());
///
/// drop(request);
/// assert!(drain.is_complete());
/// assert!(!core.wrapper().is_strong()); // let go as the drain completed
/// heap.collect();
/// assert!(core.wrapper().weak().is_finalized());
/// assert!(core.upgrade().is_none());
/// ```
pub struct WrapperCell<E: Engine> {
    strong: RefCell<Option<E::Strong>>,
    weak: E::Weak,
    /// A downgrade asked for while an upgrade was cloning the strong handle: done when that
    /// clone returns.
    downgrade_due: Cell<bool>,
}

impl<E: Engine> WrapperCell<E> {
    pub(crate) fn new(scope: &mut E::Scope<'_>, strong: E::Strong) -> Self {
        let weak = E::downgrade(scope, &strong);
        WrapperCell::from_handles(strong, weak)
    }

    /// A cell of a strong handle and a weak handle to the same object, the weak one made by
    /// the caller: an adapter whose downgrade can fail makes it first and refuses with an
    /// error, instead of panicking in [`Engine::downgrade`].
    pub(crate) fn from_handles(strong: E::Strong, weak: E::Weak) -> Self {
        WrapperCell {
            weak,
            strong: RefCell::new(Some(strong)),
            downgrade_due: Cell::new(false),
        }
    }

    /// Whether the cell still holds the wrapper strongly.
    pub fn is_strong(&self) -> bool {
        self.strong.borrow().is_some()
    }

    /// The weak handle, which the cell holds for as long as it lives.
    pub fn weak(&self) -> &E::Weak {
        &self.weak
    }

    /// A strong handle to the wrapper, or `None` once it is finalized. A downgrade put off
    /// while the clone ran is done before it returns (or before the clone's panic goes on),
    /// caught, a panic counted in `drain`'s hook panics (as the stop's own downgrade is).
    #[inline(always)]
    pub(crate) fn upgrade(
        &self,
        scope: &mut E::Scope<'_>,
        drain: &DrainState,
    ) -> Option<E::Strong> {
        let held = self.strong.borrow();
        if let Some(strong) = held.as_ref() {
            // The clone is the engine's code: a downgrade it causes finds the cell borrowed and
            // is put off until here.
            // A clone that stops the server and then panics: the downgrade it asked for is done
            // before its panic goes on to the caller (QA embed27-1: the unwind skipped it, and
            // the wrapper stayed strong until the next upgrade, for good if none came).
            let clone = if E::STRONG_CLONE_MAY_REENTER {
                match clone_caught(strong) {
                    Ok(clone) => clone,
                    Err(panic) => {
                        drop(held);
                        if self.downgrade_due.get() {
                            self.downgrade_put_off(drain);
                        }
                        std::panic::resume_unwind(panic);
                    }
                }
            } else {
                strong.clone()
            };
            drop(held);
            if E::STRONG_CLONE_MAY_REENTER && self.downgrade_due.get() {
                self.downgrade_put_off(drain);
            }
            return Some(clone);
        }
        drop(held);
        E::upgrade(scope, &self.weak)
    }

    /// Drops the strong handle; from now on the engine may finalize the wrapper. Inside an
    /// upgrade's clone of it (the cell is borrowed), the upgrade drops it when the clone
    /// returns: before, the downgrade panicked "already borrowed" and the cell kept the
    /// wrapper strong for good (QA embed25-1).
    pub(crate) fn downgrade(&self) {
        let strong = match self.strong.try_borrow_mut() {
            Ok(mut strong) => strong.take(),
            Err(_) => {
                self.downgrade_due.set(true);
                return;
            }
        };
        drop(strong); // outside the borrow: a finalizer may look at this cell
    }

    /// The downgrade a clone asked for, now that no upgrade of this one borrows the cell (an
    /// outer one, if the clone upgraded again, does it when its own clone returns). Dropping
    /// the strong handle is the engine's code (a finalizer): run caught, as the stop's
    /// downgrade is, so a panic there is counted in the drain's report
    /// ([`DrainReport::panicked_hooks`](crate::DrainReport::panicked_hooks)) and does not
    /// reach the upgrade's caller.
    #[cold]
    #[inline(never)]
    fn downgrade_put_off(&self, drain: &DrainState) {
        if self.strong.try_borrow_mut().is_ok() {
            self.downgrade_due.set(false);
            drain.run_caught(|| self.downgrade());
        }
    }
}

impl<E: Engine> fmt::Debug for WrapperCell<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrapperCell")
            .field("strong", &self.is_strong())
            .finish_non_exhaustive()
    }
}

/// Clones `strong` (the engine's code, which may stop the server and panic), its panic caught
/// and returned. Out of line and only for engines whose clone may reenter: a guard kept on the
/// upgrade's own path cost the mio server 2 instructions per request (QA embed27-1).
#[cold]
#[inline(never)]
fn clone_caught<T: Clone>(strong: &T) -> std::thread::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| strong.clone()))
}
