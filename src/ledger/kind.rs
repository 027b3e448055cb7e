//! The kinds of guard the ledger counts.

use std::fmt;

/// A kind of guard counted by the [`Ledger`](crate::Ledger).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GuardKind {
    /// A [`PendingTicket`](crate::PendingTicket): one request the server has admitted.
    Ticket,
    /// A [`RequestContext`](crate::RequestContext) checked out of the pool.
    Context,
    /// An [`ActivityRef`](crate::ActivityRef) keeping an abort signal alive.
    ActivityRef,
    /// A [`RequestObject`](crate::RequestObject) not yet handed to the engine.
    Request,
}

impl GuardKind {
    /// Every kind, in the order the ledger reports them.
    pub const ALL: [GuardKind; 4] = [
        GuardKind::Ticket,
        GuardKind::Context,
        GuardKind::ActivityRef,
        GuardKind::Request,
    ];

    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// The name used in leak reports, singular and plural.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::GuardKind;
    /// assert_eq!(GuardKind::Ticket.noun(1), "pending-request ticket");
    /// assert_eq!(GuardKind::Ticket.noun(2), "pending-request tickets");
    /// ```
    pub fn noun(self, count: usize) -> &'static str {
        let (one, many) = match self {
            GuardKind::Ticket => ("pending-request ticket", "pending-request tickets"),
            GuardKind::Context => ("request context", "request contexts"),
            GuardKind::ActivityRef => ("abort-signal activity ref", "abort-signal activity refs"),
            GuardKind::Request => ("request object", "request objects"),
        };
        if count == 1 {
            one
        } else {
            many
        }
    }
}

impl fmt::Display for GuardKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun(1))
    }
}
