//! What the adapter counts while it serves: answers, refusals, connections and outcomes.
//!
//! # Invariants
//!
//! 1. `served` counts the admitted requests that got an answer head (the core's ledger counts
//!    their outcomes, one each, when their [`Bundle`] ends: G8).
//! 2. `stopping` and `force_closing` go from `false` to `true` once and never back.
//!
//! [`Bundle`]: super::Bundle

use std::cell::Cell;
use std::fmt;

use crate::admit::{Refusal, RefusalReason};

/// Requests, refusals and connections, as counted by the adapter.
///
/// Non-exhaustive, as the mio server's `http::Stats`: a count added later is
/// not a breaking change. Read the fields; patterns take `..`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HyperStats {
    /// Admitted requests that got an answer (the handler's, whatever its status, as on the mio
    /// server, or a `500`), but those the handler marked as refusing the client's input
    /// ([`Reply::count_rejected`](super::Reply::count_rejected): `rejected`); less
    /// those whose bytes a close then dropped undelivered (see `undelivered`).
    pub served: u64,
    /// Answers counted in `served`, then taken back out of it: the connection was closed with
    /// them not delivered (the slow-reader cut, a socket that failed, a close linger that ran
    /// out with bytes unsent, a force-close), and its client's TCP had not acknowledged all
    /// their bytes (see "Undelivered answers" in `docs/hyper.md`: conservative). Their
    /// requests ended *completed* when hyper had their last frame (their signals did not
    /// fire). An answer cut short in its body keeps its counts (`served` at its head, its
    /// outcome *client gone*, *force closed* or *dropped*; the first two also in
    /// `aborted_after_head`). As the mio server's
    /// `Stats::undelivered`.
    pub undelivered: u64,
    /// Requests refused with `503` before anything was taken (or `500`: the admission, the
    /// embedder's `EnterScope::enter`, panicked; also counted in `panics`), counted once the
    /// refusal's answer is written to the socket: one the connection lost first (the client
    /// went away, the force-close of a second signal) is not counted, as no client saw it.
    pub refused: u64,
    /// ... of which because the wrapper was finalized (the upgrade failed).
    pub refused_finalized: u64,
    /// ... of which because admission was closed (the server was stopping), as the mio
    /// server's `Stats::refused_stopped`: a refusal for another reason (the pool exhausted,
    /// an engine error, a panicking admission) is counted in `refused` only.
    pub refused_stopped: u64,
    /// Handlers, and admissions, that panicked (answered `500`); also a handler's future whose
    /// `Drop` panicked (its answer, if it made one, still sent). Not abort listeners nor
    /// drain hooks (the server's `after_stop` and `after_drain` among them): the core counts those, in [`HyperReport::deadline`](super::HyperReport)'s
    /// `panicked_listeners` / `panicked_hooks` when the deadline passed.
    pub panics: u64,
    /// Of `served` and `rejected`: answers a handler made after its request's signal was
    /// aborted by the drain deadline (a handler that watches its signal may still answer
    /// before the force-close) or force-closed. Their outcome is the abort's (*deadline
    /// aborted*: the first cause wins), and [`HyperReport::aborted`](super::HyperReport::aborted)
    /// does not count them: they got their answer, as the mio server's `Stats::aborted` does
    /// not count one made between a group's abort and force steps.
    pub answered_after_abort: u64,
    /// Of `served` and `rejected` (and `undelivered`): answers counted at their head whose
    /// request then ended *client gone*, *deadline aborted* or *force closed* (its body cut
    /// short by the client's going or the stop's force-close, or the drain deadline aborted
    /// it while its body was written; or the `500` of a handler that failed after giving its
    /// bundle to a task of its own, whose request the drain deadline then aborted). Their outcome is the abort's, and
    /// [`HyperReport::aborted`](super::HyperReport::aborted) does not count them: they were
    /// counted at their head, and each request is counted once.
    pub aborted_after_head: u64,
    /// Admitted requests that got no answer (their handler's future was dropped unanswered:
    /// the client went away, or the force-close) though their request did not end aborted:
    /// the handler had given its bundle away, and it was written whole as another request's
    /// answer (*completed*), or was being written so on another connection then (its end is
    /// that connection's: it is not *client gone* for this client's going), or the handler had
    /// dropped it (*dropped*). [`HyperReport::aborted`](super::HyperReport::aborted) counts
    /// them with the aborted outcomes, so that each admitted request is counted once in
    /// `served`, `rejected` or `aborted` (QA embed22-1; before, none of the three counted
    /// them). Such a bundle written on another connection that then ends aborted there is
    /// also counted in `aborted_after_head`, its outcome being counted here already.
    pub unanswered_not_aborted: u64,
    /// Handlers that returned an error (answered `500`).
    pub failed: u64,
    /// Bad input: connections hyper closed on a bad or too large head (it answers `400`/`431`
    /// itself), the adapter's own refusals of a head (`400`, `414`, `431`, `501`) or of a
    /// health probe's body, and admitted requests whose handler marked its `4xx` answer as
    /// refusing the client's input ([`Reply::count_rejected`](super::Reply::count_rejected):
    /// the demo routes' for a body that failed; an unmarked `400` of a handler is `served`, as
    /// on the mio server, whose `rejected` counts the server's own refusals), counted when the
    /// answer is made, read or not (a reset does not take it back, as on the mio loops); an
    /// evicted head's `408` once the socket has taken it whole.
    pub rejected: u64,
    /// Of `rejected`: admitted requests whose handler marked its answer as refusing the
    /// client's input ([`Reply::count_rejected`](super::Reply::count_rejected)), each also
    /// counted in the outcomes (*completed*, or the abort's). With it the exit JSON adds up:
    /// `served + undelivered + rejected_admitted + aborted` is the outcomes' total (see
    /// [`HyperReport::admitted_counted`](super::HyperReport::admitted_counted)). The mio
    /// server rejects bad input before admission: its JSON prints `0`.
    pub rejected_admitted: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Connections over the limit, answered `503` and closed: counted once the socket has
    /// taken the `503` whole (one to a client already gone is not).
    pub connections_refused: u64,
    /// Connections idle or reading a head the longest, closed at the limit to make room for a
    /// newcomer (mid-head: `408` first).
    pub connections_evicted: u64,
    /// Accept errors (such as `EMFILE`) that paused the accept loop.
    pub accept_backoffs: u64,
}

#[derive(Default)]
pub(crate) struct Tally {
    stats: Cell<HyperStats>,
    unready: Cell<bool>,
    stopping: Cell<bool>,
    force_closing: Cell<bool>,
    /// The drain deadline has passed: a health probe whose body is still coming is answered
    /// `503` + close (`service::Probing`), as a route's request is.
    past_deadline: Cell<bool>,
    /// `503`s the stop's end wrote whole to connections with nothing out (a head still in
    /// progress at the drain deadline, a connection silent since its accept at the force or
    /// close step): in the last step's `answered`, as the mio loops' close step counts its
    /// own.
    answered_at_end: Cell<usize>,
}

impl Tally {
    #[inline]
    pub(crate) fn bump(&self, field: impl FnOnce(&mut HyperStats) -> &mut u64) {
        let mut stats = self.stats.get();
        *field(&mut stats) += 1;
        self.stats.set(stats);
    }

    /// A refusal's answer was written: `refused`, and why.
    pub(crate) fn count_refusal(&self, refusal: Refusal) {
        self.bump(|s| &mut s.refused);
        match refusal.reason() {
            RefusalReason::WrapperFinalized => self.bump(|s| &mut s.refused_finalized),
            RefusalReason::Stopped => self.bump(|s| &mut s.refused_stopped),
            _ => {}
        }
    }

    /// A close dropped `lost` answers counted `served`, whole, their requests completed
    /// ([`Conn::count_undelivered`](super::connections::Conn::count_undelivered)).
    pub(crate) fn take_back(&self, lost: u64) {
        let mut stats = self.stats.get();
        stats.served -= lost;
        stats.undelivered += lost;
        self.stats.set(stats);
    }

    pub(crate) fn stats(&self) -> HyperStats {
        self.stats.get()
    }

    /// A `503` of the stop's end went out whole (counted in the last step's `answered`).
    #[cold]
    pub(crate) fn answered_at_end(&self) {
        self.answered_at_end.set(self.answered_at_end.get() + 1);
    }

    /// How many `503`s of the stop's end went out whole.
    pub(crate) fn answered_at_end_count(&self) -> usize {
        self.answered_at_end.get()
    }

    /// Whether answers must close their connection: from the unready phase on.
    #[inline]
    pub(crate) fn is_closing(&self) -> bool {
        self.unready.get()
    }

    /// Readiness turns 503 and every answer closes its connection; admission stays open.
    pub(crate) fn set_unready(&self) {
        self.unready.set(true);
    }

    #[inline]
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    pub(crate) fn set_stopping(&self) {
        self.unready.set(true);
        self.stopping.set(true);
    }

    #[inline]
    pub(crate) fn is_force_closing(&self) -> bool {
        self.force_closing.get()
    }

    pub(crate) fn set_force_closing(&self) {
        self.force_closing.set(true);
    }

    /// Whether the drain deadline has passed.
    #[inline]
    pub(crate) fn is_past_deadline(&self) -> bool {
        self.past_deadline.get()
    }

    #[cold]
    pub(crate) fn set_past_deadline(&self) {
        self.past_deadline.set(true);
    }
}

impl fmt::Debug for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tally")
            .field("stats", &self.stats())
            .field("stopping", &self.is_stopping())
            .finish()
    }
}
