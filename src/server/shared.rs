//! The private state that every guard of one server points at, one field per concern.
//!
//! Guards hold an `Rc<Shared>` (a ticket, an activity ref and the drain directly; an admitted
//! bundle through the server's context pool, which holds it, so a bundle is one `Rc`), so it
//! lives until the last guard is gone, whatever happens to the [`ServerCore`](crate::ServerCore)
//! handle (G5: the server core outlives its drain). An abort signal is not a guard: its state
//! holds a weak handle, for the rare paths that need the server (see `SignalState`).
//!
//! | concern | field | home of |
//! |---|---|---|
//! | counting guards and outcomes (G6, G8) | `ledger` | `src/ledger/book.rs` |
//! | stop, drain, deadline, hooks, waiters (G5) | `drain` | `src/ticket/drain_state.rs` |
//! | signal reuse and escalation's search | `signals` | `src/signal/registry.rs` |
//!
//! # Invariants
//!
//! 1. The number of outstanding tickets is `ledger.outstanding(GuardKind::Ticket)`; nothing else
//!    counts pending requests.
//! 2. The drain completes when the server is stopped and that number is zero (checked on stop
//!    and on every ticket release), and at no other moment.

use crate::admit::Outcome;
use crate::ledger::{BundleEntry, Entry, GuardKind, Ledger};
use crate::signal::SignalRegistry;
use crate::ticket::DrainState;

pub(crate) struct Shared {
    pub(crate) ledger: Ledger,
    pub(crate) drain: DrainState,
    pub(crate) signals: SignalRegistry,
}

impl Shared {
    pub(crate) fn new(spare_signal_limit: usize) -> Self {
        Shared {
            ledger: Ledger::new(),
            drain: DrainState::default(),
            signals: SignalRegistry::new(spare_signal_limit),
        }
    }

    #[inline]
    pub(crate) fn is_stopped(&self) -> bool {
        self.drain.is_stopped()
    }

    pub(crate) fn tickets_out(&self) -> usize {
        self.ledger.outstanding(GuardKind::Ticket)
    }

    /// Closes admission; completes the drain at once when no ticket is out. Idempotent.
    pub(crate) fn stop(&self) {
        // Before anything else: from here the bundles' hot paths check for the stop.
        self.ledger.note_stopped();
        if self.drain.mark_stopped() && self.tickets_out() == 0 {
            self.drain.complete();
        }
    }

    /// Releases a bundle with its outcome; the last request out after stop completes the
    /// drain.
    #[inline(always)]
    pub(crate) fn release_bundle(&self, entry: &BundleEntry, had_request: bool, outcome: Outcome) {
        self.ledger.release_bundle(entry, had_request, outcome);
        // One check for the two rare cases: a trace recording, the server stopped.
        if !self.ledger.is_plain() {
            self.after_noted_release(had_request);
        }
    }

    /// A bundle's release when the ledger is not plain (invariant 6 of `src/ledger/book.rs`):
    /// its trace, and the drain's completion if the server stopped.
    #[cold]
    #[inline(never)]
    fn after_noted_release(&self, had_request: bool) {
        self.ledger.trace_released_bundle(had_request);
        if self.drain.is_stopped() {
            self.complete_if_idle();
        }
    }

    /// Releases a bundle refused while it was built; the last request out after stop completes
    /// the drain.
    #[cold]
    pub(crate) fn release_refused_bundle(&self, entry: &BundleEntry) {
        self.ledger.release_refused_bundle(entry);
        if !self.ledger.is_plain() {
            self.after_noted_release(false); // no request object was made
        }
    }

    /// Completes the drain if no pending request is out (the server is stopped).
    #[cold]
    #[inline(never)]
    fn complete_if_idle(&self) {
        if self.tickets_out() == 0 {
            self.drain.complete();
        }
    }

    #[inline]
    pub(crate) fn release_ticket(&self, entry: &Entry) {
        self.ledger.release(GuardKind::Ticket, entry);
        // Bundles hold tickets too: the drain waits for both.
        if self.drain.is_stopped() && self.tickets_out() == 0 {
            self.drain.complete();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engines::Heap;
    use crate::{AbortReason, Config, ServerCore};

    /// The signal-state registry drops freed states when it grows and keeps live ones: an
    /// escalation still aborts exactly the signals that activity refs hold.
    #[test]
    fn escalation_finds_held_signals_after_the_registry_is_pruned() {
        let heap = Heap::new();
        // One spare signal at most: the others are freed when their last handle drops.
        let config = Config::default().with_pool_capacity(1).unwrap();
        let core = ServerCore::embedded(heap.alloc("server"), config);
        let live = core.upgrade().unwrap();
        let mut held = Vec::new();
        for round in 0..50 {
            let mut bundles: Vec<_> = (0..4).map(|_| live.admit(|_| Ok(())).unwrap()).collect();
            if round % 10 == 0 {
                // Keep one request (its signal has pending activity) for the whole test.
                held.push(bundles.swap_remove(0));
            }
            drop(bundles);
        }
        // Freed states were pruned (about 150 were allocated): the list stays near the live ones.
        let registered = core.shared().signals.registered();
        assert!(
            registered <= 4 * (held.len() + 5),
            "registry kept {registered} states"
        );
        // A held signal that is not pending (no activity ref) is not aborted.
        let idle = live.signal();
        let ticket = live.ticket().unwrap();
        let drain = core.stop();
        let report = drain.escalate();
        assert_eq!(report.aborted_signals, held.len());
        for bundle in &held {
            assert_eq!(bundle.signal().reason(), Some(AbortReason::DrainDeadline));
        }
        assert!(!idle.is_aborted());
        drop((held, idle, ticket));
        assert!(drain.is_complete());
        core.ledger().assert_quiescent();
    }
}
