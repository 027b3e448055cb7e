//! The private core that every guard of one server points at.
//!
//! Guards hold an `Rc<Shared>`, so the core lives until the last guard is gone, whatever happens
//! to the [`ServerCore`](crate::ServerCore) handle (G5: the server core outlives its drain).
//!
//! # Invariants
//!
//! 1. The number of outstanding tickets is `ledger.outstanding(GuardKind::Ticket)`; nothing else
//!    counts pending requests.
//! 2. `stopped` goes from `false` to `true` once and never back; no ticket is minted after it.
//! 3. `drained_at` is set exactly once, at the first moment `stopped` holds and no ticket is out;
//!    the drain hooks run then, once, and every waker of a task awaiting a `Drain` is woken.
//! 4. `signal_states` holds a weak handle to every `SignalState` this core ever allocated (dead
//!    ones are pruned when the list would grow); a signal with live `ActivityRef`s is one of its
//!    live states with pending activity. Minting and releasing an activity ref touch only the
//!    state's counter: the list is walked only when a drain escalates, which is rare.
//! 5. Every signal in `spare_signals` has no other handle (`Rc::strong_count == 1`) and is reset.

use std::cell::{Cell, RefCell};
use std::rc::{self, Rc};
use std::task::Waker;
use std::time::Instant;

use crate::ledger::{Entry, GuardKind, Ledger};
use crate::signal::SignalState;

pub(crate) type DrainHook = Box<dyn FnOnce()>;

pub(crate) struct Shared {
    pub(crate) ledger: Ledger,
    stopped: Cell<bool>,
    stopped_at: Cell<Option<Instant>>,
    drained_at: Cell<Option<Instant>>,
    pub(crate) deadline: Cell<Option<Instant>>,
    pub(crate) escalated: Cell<bool>,
    drain_hooks: RefCell<Vec<DrainHook>>,
    // One per task awaiting a `Drain` (the handle is `Clone`): all of them are woken.
    wakers: RefCell<Vec<Waker>>,
    signal_states: RefCell<Vec<rc::Weak<SignalState>>>,
    spare_signals: RefCell<Vec<Rc<SignalState>>>,
    spare_signal_limit: usize,
}

impl Shared {
    pub(crate) fn new(spare_signal_limit: usize) -> Self {
        Shared {
            ledger: Ledger::new(),
            stopped: Cell::new(false),
            stopped_at: Cell::new(None),
            drained_at: Cell::new(None),
            deadline: Cell::new(None),
            escalated: Cell::new(false),
            drain_hooks: RefCell::new(Vec::new()),
            wakers: RefCell::new(Vec::new()),
            signal_states: RefCell::new(Vec::new()),
            spare_signals: RefCell::new(Vec::new()),
            spare_signal_limit,
        }
    }

    #[inline]
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    pub(crate) fn stopped_at(&self) -> Option<Instant> {
        self.stopped_at.get()
    }

    pub(crate) fn drained_at(&self) -> Option<Instant> {
        self.drained_at.get()
    }

    pub(crate) fn tickets_out(&self) -> usize {
        self.ledger.outstanding(GuardKind::Ticket)
    }

    /// Closes admission; completes the drain at once when no ticket is out. Idempotent.
    pub(crate) fn stop(&self) {
        if self.stopped.replace(true) {
            return;
        }
        self.stopped_at.set(Some(Instant::now()));
        if self.tickets_out() == 0 {
            self.complete_drain();
        }
    }

    #[inline]
    pub(crate) fn release_ticket(&self, entry: &Entry) {
        let left = self.ledger.release(GuardKind::Ticket, entry);
        if left == 0 && self.stopped.get() {
            self.complete_drain();
        }
    }

    fn complete_drain(&self) {
        if self.drained_at.get().is_some() {
            return;
        }
        self.drained_at.set(Some(Instant::now()));
        // Take the hooks out first: a hook may drop guards or register more hooks.
        let hooks = std::mem::take(&mut *self.drain_hooks.borrow_mut());
        for hook in hooks {
            hook();
        }
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }

    /// Runs `hook` when the drain completes, or now if it already has.
    pub(crate) fn on_drained(&self, hook: DrainHook) {
        if self.drained_at.get().is_some() {
            hook();
        } else {
            self.drain_hooks.borrow_mut().push(hook);
        }
    }

    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut wakers = self.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }

    #[inline]
    pub(crate) fn take_spare_signal(&self) -> Option<Rc<SignalState>> {
        self.spare_signals.borrow_mut().pop()
    }

    /// A new signal state, registered so that a drain escalation can find it (cold: a warm
    /// server reuses spare states).
    #[cold]
    #[inline(never)]
    pub(crate) fn new_signal_state(&self) -> Rc<SignalState> {
        let state = Rc::new(SignalState::new());
        let mut states = self.signal_states.borrow_mut();
        if states.len() == states.capacity() {
            // Drop the states that were freed (spare list full) before growing the list.
            states.retain(|weak| weak.strong_count() > 0);
        }
        states.push(Rc::downgrade(&state));
        state
    }

    /// The signals that activity refs still hold (pending activity > 0), in allocation order.
    pub(crate) fn signals_with_activity(&self) -> Vec<Rc<SignalState>> {
        self.signal_states
            .borrow()
            .iter()
            .filter_map(rc::Weak::upgrade)
            .filter(|state| state.has_activity())
            .collect()
    }

    /// Keeps a signal nobody else holds for reuse, so a warm server mints signals without allocating.
    #[inline]
    pub(crate) fn recycle_signal(&self, state: Rc<SignalState>) {
        // Reset before borrowing the spare list: dropping a listener may drop the last handle to
        // another signal, which recycles that one too (`AbortSignal.any`-style links).
        state.reset();
        let mut spares = self.spare_signals.borrow_mut();
        if spares.len() < self.spare_signal_limit {
            spares.push(state);
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
        let core = ServerCore::embedded(heap.alloc("server"), Config::default().pool_capacity(1));
        let live = core.upgrade().unwrap();
        let mut held = Vec::new();
        for round in 0..50 {
            let signals: Vec<_> = (0..4).map(|_| live.signal()).collect();
            let refs: Vec<_> = signals.iter().map(|s| live.activity_ref(s)).collect();
            if round % 10 == 0 {
                // Keep one signal with its activity ref for the whole test.
                held.push((signals[0].clone(), live.activity_ref(&signals[0])));
            }
            drop(refs);
        }
        // Freed states were pruned (about 150 were allocated): the list stays near the live ones.
        let registered = core.shared().signal_states.borrow().len();
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
        for (signal, _) in &held {
            assert_eq!(signal.reason(), Some(AbortReason::DrainDeadline));
        }
        assert!(!idle.is_aborted());
        drop((held, idle, ticket));
        assert!(drain.is_complete());
        core.ledger().assert_quiescent();
    }
}
