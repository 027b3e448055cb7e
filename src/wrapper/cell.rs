//! The wrapper cell: the server's wrapper, held strongly until downgraded, weakly always.

use std::cell::RefCell;
use std::fmt;

use super::engine::Engine;

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
pub struct WrapperCell<E: Engine> {
    strong: RefCell<Option<E::Strong>>,
    weak: E::Weak,
}

impl<E: Engine> WrapperCell<E> {
    pub(crate) fn new(scope: &mut E::Scope<'_>, strong: E::Strong) -> Self {
        WrapperCell {
            weak: E::downgrade(scope, &strong),
            strong: RefCell::new(Some(strong)),
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

    #[inline]
    pub(crate) fn upgrade(&self, scope: &mut E::Scope<'_>) -> Option<E::Strong> {
        if let Some(strong) = self.strong.borrow().as_ref() {
            return Some(strong.clone());
        }
        E::upgrade(scope, &self.weak)
    }

    /// Drops the strong handle; from now on the engine may finalize the wrapper.
    pub(crate) fn downgrade(&self) {
        let strong = self.strong.borrow_mut().take();
        drop(strong); // outside the borrow: a finalizer may look at this cell
    }
}

impl<E: Engine> fmt::Debug for WrapperCell<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrapperCell")
            .field("strong", &self.is_strong())
            .finish_non_exhaustive()
    }
}
