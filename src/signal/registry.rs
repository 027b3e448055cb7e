//! Every abort signal one server allocated: the spare ones for reuse, and weak handles so that a
//! drain escalation can find the signals with pending activity.
//!
//! # Invariants
//!
//! 1. `states` holds a weak handle to every `SignalState` this server ever allocated (dead ones
//!    are pruned when the list would grow); a signal with live `ActivityRef`s is one of its live
//!    states with pending activity. Minting and releasing an activity ref touch only the state's
//!    counter: the list is walked only when a drain escalates, which is rare.
//! 2. Every signal in `spares` has no other handle (`Rc::strong_count == 1`) and is reset.
//! 3. `listener_panics` counts every abort listener of this server's signals that panicked.

use std::cell::{Cell, RefCell};
use std::rc::{self, Rc};

use super::abort::SignalState;
use crate::server::shared::Shared;

pub(crate) struct SignalRegistry {
    states: RefCell<Vec<rc::Weak<SignalState>>>,
    spares: RefCell<Vec<Rc<SignalState>>>,
    spare_limit: usize,
    listener_panics: Cell<u64>,
}

impl SignalRegistry {
    pub(crate) fn new(spare_limit: usize) -> Self {
        SignalRegistry {
            states: RefCell::new(Vec::new()),
            spares: RefCell::new(Vec::new()),
            spare_limit,
            listener_panics: Cell::new(0),
        }
    }

    #[inline]
    pub(crate) fn take_spare(&self) -> Option<Rc<SignalState>> {
        self.spares.borrow_mut().pop()
    }

    /// A new signal state, registered so that a drain escalation can find it (cold: a warm
    /// server reuses spare states).
    #[cold]
    #[inline(never)]
    pub(crate) fn allocate(&self, home: rc::Weak<Shared>) -> Rc<SignalState> {
        let state = Rc::new(SignalState::new(home));
        let mut states = self.states.borrow_mut();
        if states.len() == states.capacity() {
            // Drop the states that were freed (spare list full) before growing the list.
            states.retain(|weak| weak.strong_count() > 0);
        }
        states.push(Rc::downgrade(&state));
        state
    }

    /// The signals of requests still out (an activity ref holds each), in allocation order. A
    /// signal kept alive by an activity ref after its request ended is not one of them.
    pub(crate) fn with_activity(&self) -> Vec<Rc<SignalState>> {
        self.states
            .borrow()
            .iter()
            .filter_map(rc::Weak::upgrade)
            .filter(|state| state.has_activity() && state.is_request_out())
            // This list holds them now: a release must count their handles (invariant 6 of
            // `SignalState`), so none is reused while the escalation may still abort it.
            .inspect(|state| state.touch())
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn registered(&self) -> usize {
        self.states.borrow().len()
    }

    /// Keeps a signal nobody else holds for reuse, so a warm server mints signals without allocating.
    #[inline]
    pub(crate) fn recycle(&self, state: Rc<SignalState>) {
        // Reset before borrowing the spare list: dropping a listener may drop the last handle to
        // another signal, which recycles that one too (`AbortSignal.any`-style links).
        state.reset();
        let mut spares = self.spares.borrow_mut();
        if spares.len() < self.spare_limit {
            spares.push(state);
        }
    }

    pub(crate) fn count_listener_panics(&self, panicked: usize) {
        self.listener_panics
            .set(self.listener_panics.get() + panicked as u64);
    }

    pub(crate) fn listener_panics(&self) -> u64 {
        self.listener_panics.get()
    }
}
