//! The request context guard: a pooled per-request context that holds its request's ticket.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::rc::Rc;

use super::recycle::Recycle;
use super::slots::{ContextPool, Origin, Slot};
use crate::ledger::{Entry, GuardKind};
use crate::ticket::PendingTicket;

/// A `RequestContext` checked out of the server's pool, holding its request's ticket.
///
/// Minted only from the proof, with [`Live::context`](crate::Live::context) (or as part of
/// [`Live::admit`](crate::Live::admit)); it derefs to your context type `C`. Dropping it recycles
/// the context back into the pool (or frees it, if it was spilled to the heap), then drops the
/// ticket. The pool's free list owns no ids, so nothing can name a slot after its release.
///
/// # Examples
///
/// ```
/// use reqguard::{Config, GuardKind, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded_with_context::<Vec<u8>>(heap.alloc("server"), Config::default());
/// let live = core.upgrade().unwrap();
/// let mut ctx = live.context(live.ticket().unwrap()).unwrap();
/// ctx.extend_from_slice(b"body");
/// assert_eq!(core.pool_metrics().in_use, 1);
/// drop(ctx);
/// assert_eq!(core.pool_metrics().in_use, 0);
/// core.ledger().assert_quiescent();
/// ```
#[must_use = "dropping a request context returns it to the pool and ends its request"]
#[clippy::has_significant_drop]
pub struct RequestContext<C: Recycle> {
    slot: Option<Box<Slot<C>>>,
    pool: Rc<ContextPool<C>>,
    entry: Entry,
    // Declared last so it drops last: the request ends after its context is back in the pool.
    ticket: PendingTicket,
}

impl<C: Recycle> RequestContext<C> {
    #[track_caller]
    #[inline]
    pub(crate) fn checkout(
        pool: &Rc<ContextPool<C>>,
        ticket: PendingTicket,
        site: &'static Location<'static>,
    ) -> Option<Self> {
        // A standalone context uses no signal: the one in its slot stays there, unused
        // (invariant 6 of the pool's slots), for the slot's next bundle. Nor the pool's handle
        // a slot may keep from a bundle's release: let go here, as this context may be checked
        // in after the server core is gone (invariant 7).
        let mut slot = pool.checkout()?;
        drop(slot.pool.take());
        Some(RequestContext {
            slot: Some(slot),
            pool: Rc::clone(pool),
            // Counted where it is released (`Drop` uses the ticket's ledger): the ledger of the
            // server that admitted the request, even if the ticket came from another server.
            entry: ticket.shared_ledger().mint(GuardKind::Context, site),
            ticket,
        })
    }

    /// The ticket of the request this context serves.
    pub fn ticket(&self) -> &PendingTicket {
        &self.ticket
    }

    /// Whether the pool was exhausted and this context lives on the heap.
    pub fn is_spilled(&self) -> bool {
        self.slot().origin == Origin::Spilled
    }

    /// Leaks the context and its ticket; the ledger keeps counting both.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, GuardKind, RequestContext, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// let live = core.upgrade().unwrap();
    /// RequestContext::forget(live.context(live.ticket().unwrap()).unwrap());
    /// assert_eq!(core.ledger().outstanding(GuardKind::Context), 1);
    /// assert_eq!(core.ledger().outstanding(GuardKind::Ticket), 1);
    /// ```
    pub fn forget(this: Self) {
        std::mem::forget(this);
    }
}

impl<C: Recycle> RequestContext<C> {
    fn slot(&self) -> &Slot<C> {
        self.slot.as_deref().expect("context is present until drop")
    }
}

impl<C: Recycle> Deref for RequestContext<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.slot().context
    }
}

impl<C: Recycle> DerefMut for RequestContext<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self
            .slot
            .as_deref_mut()
            .expect("context is present until drop")
            .context
    }
}

impl<C: Recycle> Drop for RequestContext<C> {
    /// Recycles the context into the pool (or frees a spilled one), then ends the request.
    #[inline]
    fn drop(&mut self) {
        self.ticket
            .shared_ledger()
            .release(GuardKind::Context, &self.entry);
        if let Some(slot) = self.slot.take() {
            self.pool.checkin(slot);
        }
    }
}

impl<C: Recycle> fmt::Debug for RequestContext<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("spilled", &self.is_spilled())
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}
