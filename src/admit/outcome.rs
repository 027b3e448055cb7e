//! How an admitted request ended (G8): one outcome per bundle, counted per server.

use std::fmt;

use crate::signal::AbortReason;

/// How an admitted request ended. Exactly one per [`Admitted`](crate::Admitted) bundle.
///
/// | outcome | decided by | abort signal fires | counted in |
/// |---|---|---|---|
/// | `Completed` | the stack, [`Admitted::complete`](crate::Admitted::complete) after the answer is written | never | [`Ledger::outcomes`](crate::Ledger::outcomes), [`DrainReport::outcomes`](crate::DrainReport) |
/// | `ClientGone` | the stack, [`Admitted::end`](crate::Admitted::end) when the peer went away | once, [`AbortReason::ClientDisconnected`] | the same |
/// | `DeadlineAborted` | the drain deadline (escalation aborted the signal first) | once, [`AbortReason::DrainDeadline`], at the deadline | the same |
/// | `ForceClosed` | the stack, `end` when the server closes the connection at stop | once, [`AbortReason::ForceClosed`] | the same |
/// | `Dropped` | nobody: the bundle was dropped without `complete`/`end` (early return, `?`, panic) | once, [`AbortReason::Dropped`] | the same |
///
/// The first cause wins: a request whose signal already fired ends with the outcome that abort
/// names ([`Outcome::after_abort`]): one the drain deadline aborted ends as `DeadlineAborted`
/// whatever the stack calls afterwards.
///
/// # Examples
///
/// ```
/// use reqguard::{AbortReason, Config, Outcome, ServerCore, engines::Heap};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let live = core.upgrade().unwrap();
/// live.admit(|_| Ok(())).unwrap().complete();
/// let gone = live.admit(|_| Ok(())).unwrap();
/// let signal = gone.signal().clone();
/// gone.end(Outcome::ClientGone);
/// assert_eq!(signal.reason(), Some(AbortReason::ClientDisconnected));
/// let counts = core.ledger().outcomes();
/// assert_eq!((counts.completed, counts.client_gone, counts.total()), (1, 1, 2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The answer was written: the request finished normally.
    Completed,
    /// The client went away with the request still out.
    ClientGone,
    /// The drain deadline passed with the request still out, and aborted it.
    DeadlineAborted,
    /// The server closed the request's connection (at stop, or behind a `Connection: close`).
    ForceClosed,
    /// The bundle was dropped without completing (the handler returned early or panicked).
    Dropped,
}

impl Outcome {
    /// Every outcome, in the order reports list them.
    pub const ALL: [Outcome; 5] = [
        Outcome::Completed,
        Outcome::ClientGone,
        Outcome::DeadlineAborted,
        Outcome::ForceClosed,
        Outcome::Dropped,
    ];

    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// The reason the request's abort signal fires with, or `None` for [`Outcome::Completed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{AbortReason, Outcome};
    /// assert_eq!(Outcome::Completed.abort_reason(), None);
    /// assert_eq!(Outcome::Dropped.abort_reason(), Some(AbortReason::Dropped));
    /// ```
    pub const fn abort_reason(self) -> Option<AbortReason> {
        match self {
            Outcome::Completed => None,
            Outcome::ClientGone => Some(AbortReason::ClientDisconnected),
            Outcome::DeadlineAborted => Some(AbortReason::DrainDeadline),
            Outcome::ForceClosed => Some(AbortReason::ForceClosed),
            Outcome::Dropped => Some(AbortReason::Dropped),
        }
    }

    /// The outcome of a request whose signal fired with `reason` before the request ended (the
    /// first cause wins): [`AbortReason::DrainDeadline`] -> `DeadlineAborted`,
    /// [`AbortReason::ClientDisconnected`] -> `ClientGone`, [`AbortReason::ForceClosed`] ->
    /// `ForceClosed`, any other reason (the handler failed, user code aborted it) -> `Dropped`.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{AbortReason, Outcome};
    /// assert_eq!(Outcome::after_abort(AbortReason::DrainDeadline), Outcome::DeadlineAborted);
    /// assert_eq!(Outcome::after_abort(AbortReason::HandlerFailed), Outcome::Dropped);
    /// ```
    pub const fn after_abort(reason: AbortReason) -> Outcome {
        match reason {
            AbortReason::DrainDeadline => Outcome::DeadlineAborted,
            AbortReason::ClientDisconnected => Outcome::ClientGone,
            AbortReason::ForceClosed => Outcome::ForceClosed,
            _ => Outcome::Dropped,
        }
    }

    /// The snake-case name used in JSON reports (`"client_gone"`).
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::ClientGone => "client_gone",
            Outcome::DeadlineAborted => "deadline_aborted",
            Outcome::ForceClosed => "force_closed",
            Outcome::Dropped => "dropped",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many admitted requests ended with each [`Outcome`].
///
/// In [`Ledger::outcomes`](crate::Ledger::outcomes), [`DrainReport`](crate::DrainReport), and
/// the HTTP server's report and exit JSON (`"outcomes":{"completed":N,...}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OutcomeCounts {
    /// Requests that completed.
    pub completed: u64,
    /// Requests whose client went away.
    pub client_gone: u64,
    /// Requests the drain deadline aborted.
    pub deadline_aborted: u64,
    /// Requests whose connection the server closed.
    pub force_closed: u64,
    /// Requests dropped without completing.
    pub dropped: u64,
}

impl OutcomeCounts {
    /// The count for `outcome`.
    pub fn count(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Completed => self.completed,
            Outcome::ClientGone => self.client_gone,
            Outcome::DeadlineAborted => self.deadline_aborted,
            Outcome::ForceClosed => self.force_closed,
            Outcome::Dropped => self.dropped,
        }
    }

    /// Requests ended, all outcomes together (at most `u64::MAX`: the fields are public, and
    /// a sum of figures that large saturates rather than overflows).
    pub fn total(&self) -> u64 {
        Outcome::ALL
            .iter()
            .fold(0, |sum: u64, &o| sum.saturating_add(self.count(o)))
    }

    /// `{"completed":N,"client_gone":N,"deadline_aborted":N,"force_closed":N,"dropped":N}`.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::OutcomeCounts;
    /// let counts = OutcomeCounts { completed: 2, ..OutcomeCounts::default() };
    /// assert_eq!(
    ///     counts.to_json(),
    ///     r#"{"completed":2,"client_gone":0,"deadline_aborted":0,"force_closed":0,"dropped":0}"#
    /// );
    /// ```
    pub fn to_json(&self) -> String {
        let mut json = String::from("{");
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&format!("\"{}\":{}", outcome.name(), self.count(*outcome)));
        }
        json.push('}');
        json
    }
}

impl std::ops::AddAssign for OutcomeCounts {
    /// Adds another server's (or loop's) counts, outcome by outcome, saturating at
    /// `u64::MAX` (figures an embedder's accounting reports may be anything).
    fn add_assign(&mut self, other: OutcomeCounts) {
        let OutcomeCounts {
            completed,
            client_gone,
            deadline_aborted,
            force_closed,
            dropped,
        } = other;
        self.completed = self.completed.saturating_add(completed);
        self.client_gone = self.client_gone.saturating_add(client_gone);
        self.deadline_aborted = self.deadline_aborted.saturating_add(deadline_aborted);
        self.force_closed = self.force_closed.saturating_add(force_closed);
        self.dropped = self.dropped.saturating_add(dropped);
    }
}

impl fmt::Display for OutcomeCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "{} {}",
                self.count(*outcome),
                outcome.name().replace('_', " ")
            )?;
        }
        Ok(())
    }
}
