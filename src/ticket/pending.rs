//! The pending-request ticket: one admitted request, counted until it is done.

use std::fmt;
use std::panic::Location;
use std::rc::Rc;

use crate::ledger::{BundleEntry, Entry, GuardKind};
use crate::server::shared::Shared;

/// One admitted request: `pending_requests += 1` that cannot be forgotten.
///
/// Minted only from the proof, with [`Live::ticket`](crate::Live::ticket), and only while the
/// server admits requests. Dropping it is `pending_requests -= 1`; dropping the last one after
/// [`ServerCore::stop`](crate::ServerCore::stop) completes the [`Drain`](crate::Drain).
/// Tickets are not `Clone`: two requests need two tickets.
///
/// # Examples
///
/// ```
/// use reqguard::{Config, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let ticket = core.upgrade().unwrap().ticket().unwrap();
/// let drain = core.stop();
/// assert!(!drain.is_complete());
/// drop(ticket);
/// assert!(drain.is_complete());
/// ```
#[must_use = "dropping a ticket ends the pending request at once"]
#[clippy::has_significant_drop]
pub struct PendingTicket {
    /// `None` only once the ticket became part of a bundle (it then releases nothing).
    shared: Option<Rc<Shared>>,
    entry: Entry,
}

impl PendingTicket {
    #[track_caller]
    #[inline]
    pub(crate) fn mint(shared: &Rc<Shared>, site: &'static Location<'static>) -> Self {
        PendingTicket {
            entry: shared.ledger.mint(GuardKind::Ticket, site),
            shared: Some(Rc::clone(shared)),
        }
    }

    #[inline]
    fn shared(&self) -> &Rc<Shared> {
        self.shared
            .as_ref()
            .expect("a ticket holds its server until it joins a bundle")
    }

    /// Whether this ticket was minted by the server whose state is `shared`.
    #[inline]
    pub(crate) fn is_of(&self, shared: &Rc<Shared>) -> bool {
        Rc::ptr_eq(self.shared(), shared)
    }

    #[inline]
    pub(crate) fn shared_ledger(&self) -> &crate::Ledger {
        &self.shared().ledger
    }

    /// The ticket joins a bundle minted now at `site`: returns the bundle's ledger entry. The
    /// pending-request count does not change.
    pub(crate) fn into_bundle(mut self, site: &'static Location<'static>) -> BundleEntry {
        let shared = self.shared.take().expect("a ticket joins one bundle");
        shared.ledger.mint_bundle_from_ticket(&self.entry, site)
    }

    /// Leaks the ticket: the request stays pending forever and the drain never completes.
    ///
    /// This is `mem::forget` under a name a reviewer can search for; the leak shows up in
    /// [`Ledger::report`](crate::Ledger::report) with the ticket's mint site.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, GuardKind, PendingTicket, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// PendingTicket::forget(core.upgrade().unwrap().ticket().unwrap());
    /// let drain = core.stop();
    /// assert!(!drain.is_complete());
    /// assert_eq!(core.ledger().outstanding(GuardKind::Ticket), 1);
    /// assert!(core.ledger().report().to_string().contains("1 pending-request ticket"));
    /// ```
    pub fn forget(this: Self) {
        std::mem::forget(this);
    }
}

impl Drop for PendingTicket {
    /// Ends the pending request; the last one out after `stop()` completes the drain.
    #[inline]
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.release_ticket(&self.entry);
        }
    }
}

impl fmt::Debug for PendingTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingTicket")
            .field("pending", &self.shared.as_ref().map(|s| s.tickets_out()))
            .finish()
    }
}
