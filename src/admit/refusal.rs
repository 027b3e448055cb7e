//! The refusal: a request turned away, holding nothing.

use std::fmt;

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The wrapper was finalized: the weak-to-strong upgrade failed.
    WrapperFinalized,
    /// The server was stopped and admits no new request.
    Stopped,
    /// Every pooled context is in use and the pool refuses rather than spills.
    PoolExhausted,
    /// The request body is larger than the server accepts.
    PayloadTooLarge {
        /// The largest body accepted, in bytes.
        limit: usize,
    },
    /// The engine failed to build the request (out of memory, a thrown exception, ...).
    Engine(&'static str),
    /// A guard of another server was handed to this server's proof (a ticket minted by server
    /// `b` given to `a`'s `Live::context` or `Live::admit_with`): the embedder mixed servers up.
    OtherServer,
}

/// A request turned away: the status to answer with, and nothing else.
///
/// A refusal holds no resource (it is `Copy`), so the 503 path cannot leak (G4). Answer with
/// [`status`](Refusal::status) and, when [`closes_connection`](Refusal::closes_connection) says
/// so, `Connection: close`. A guard the refusal path must give back (a saved request that
/// already owns a ref) is handed to [`consume`](Refusal::consume), which drops it.
///
/// # Examples
///
/// ```
/// use reqguard::{Config, Refusal, RefusalReason, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let _drain = core.stop();
/// let refusal = core.upgrade().unwrap().ticket().unwrap_err();
/// assert_eq!(refusal.reason(), RefusalReason::Stopped);
/// assert_eq!((refusal.status(), refusal.closes_connection()), (503, true));
/// assert_eq!(refusal.status_line(), "503 Service Unavailable");
/// // One table of reason phrases for the whole crate (RFC 9110 names):
/// let too_large = Refusal::new(RefusalReason::PayloadTooLarge { limit: 1024 });
/// assert_eq!(too_large.status_line(), "413 Content Too Large");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use = "a refusal must be answered"]
pub struct Refusal {
    reason: RefusalReason,
}

impl Refusal {
    /// The upgrade failed: the wrapper was finalized.
    pub const WRAPPER_FINALIZED: Refusal = Refusal::new(RefusalReason::WrapperFinalized);

    /// What a request whose admission panicked (the embedder's code: an `Accounting`, an
    /// engine scope) is answered in both servers: an internal error (`500`), counted refused
    /// and as a panic. What the admission had taken was dropped by the unwinding.
    #[cfg(any(feature = "server", feature = "hyper"))]
    pub(crate) const PANICKED: Refusal =
        Refusal::new(RefusalReason::Engine("the admission panicked"));

    /// A refusal for `reason`.
    pub const fn new(reason: RefusalReason) -> Self {
        Refusal { reason }
    }

    /// Why the request was refused.
    pub fn reason(&self) -> RefusalReason {
        self.reason
    }

    /// The HTTP status code to answer with.
    pub fn status(&self) -> u16 {
        match self.reason {
            RefusalReason::WrapperFinalized
            | RefusalReason::Stopped
            | RefusalReason::PoolExhausted => 503,
            RefusalReason::PayloadTooLarge { .. } => 413,
            RefusalReason::Engine(_) | RefusalReason::OtherServer => 500,
        }
    }

    /// The HTTP/1.1 status line, without the version, e.g. `"503 Service Unavailable"`.
    pub fn status_line(&self) -> &'static str {
        // From the crate's one table of status lines: "HTTP/1.1 " (9 bytes) ... "\r\n".
        super::status::status_line(self.status())
            .and_then(|line| std::str::from_utf8(&line[9..line.len() - 2]).ok())
            .unwrap_or("500 Internal Server Error")
    }

    /// Whether the connection should close after the answer (`Connection: close` on HTTP/1).
    ///
    /// True for everything but an engine error: a stopped or finalized server should shed its
    /// connections, and an unread oversized body leaves the stream out of step.
    pub fn closes_connection(&self) -> bool {
        !matches!(self.reason, RefusalReason::Engine(_))
    }

    /// Drops `guard` on the refusal path and returns the refusal.
    ///
    /// This is how a saved request that already owns a ref (a ticket, an activity ref, a whole
    /// bundle) is given back when its server turns out to be gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, Refusal, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// let saved = core.upgrade().unwrap().ticket().unwrap(); // saved for later
    /// let refusal = Refusal::WRAPPER_FINALIZED.consume(saved);
    /// assert_eq!(refusal.status(), 503);
    /// core.ledger().assert_quiescent();
    /// ```
    pub fn consume<G>(self, guard: G) -> Self {
        drop(guard);
        self
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            RefusalReason::WrapperFinalized => f.write_str("the server's wrapper was finalized"),
            RefusalReason::Stopped => f.write_str("the server is stopped"),
            RefusalReason::PoolExhausted => f.write_str("every request context is in use"),
            RefusalReason::PayloadTooLarge { limit } => {
                write!(f, "the request body is larger than {limit} bytes")
            }
            RefusalReason::Engine(why) => write!(f, "the engine failed: {why}"),
            RefusalReason::OtherServer => f.write_str("the guard belongs to another server"),
        }
    }
}

impl std::error::Error for Refusal {}
