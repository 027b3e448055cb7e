//! Why a signal was aborted.

use std::fmt;

/// Why an [`AbortSignal`](crate::AbortSignal) fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AbortReason {
    /// The client closed its connection before the response was written.
    ClientDisconnected,
    /// The drain deadline passed while the request was still out.
    DrainDeadline,
    /// The handler failed (returned an error or panicked).
    HandlerFailed,
    /// The server closed the request's connection before answering it
    /// ([`Outcome::ForceClosed`](crate::Outcome::ForceClosed)).
    ForceClosed,
    /// The request's bundle was dropped without completing: the handler returned early or
    /// panicked ([`Outcome::Dropped`](crate::Outcome::Dropped)).
    Dropped,
    /// The runtime aborted it for a reason of its own.
    Other(&'static str),
}

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbortReason::ClientDisconnected => f.write_str("the client disconnected"),
            AbortReason::DrainDeadline => f.write_str("the drain deadline passed"),
            AbortReason::HandlerFailed => f.write_str("the handler failed"),
            AbortReason::ForceClosed => f.write_str("the server closed the connection"),
            AbortReason::Dropped => f.write_str("the request was dropped without completing"),
            AbortReason::Other(why) => f.write_str(why),
        }
    }
}
