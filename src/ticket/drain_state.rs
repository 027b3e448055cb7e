//! The drain's state, all in one place: stopped, drained, the deadline, the hooks to run and
//! the tasks to wake when the last pending request ends.
//!
//! # Invariants
//!
//! 1. `stopped_at` goes from `None` to `Some` once and never back; no ticket is minted after it.
//! 2. `drained_at` is set exactly once, at the first moment the server is stopped and no ticket
//!    is out. At that moment, in this order: every registered waiter is woken (and the waiter
//!    list is emptied for good), each waker on its own (one that panics is caught), then every
//!    hook runs once, each on its own; a hook that panics is counted in `hook_panics` and the
//!    others still run.
//! 3. `waiters` holds one waker per [`Drain`](crate::Drain) handle that was polled while the
//!    drain was pending and has not been dropped since: a handle deregisters its slot on drop,
//!    so the list never grows past the number of live handles. A waker is dropped (or woken)
//!    only with the list unborrowed, each on its own (a panic is caught): it is an executor's,
//!    and its drop may drop its task, with a ticket or a drain handle that reaches this list.
//! 4. `escalated` goes from `false` to `true` once: the deadline's abort runs once. A saved
//!    request admitted after it (`Live::admit_with`) comes with its signal aborted, so no
//!    request out past the escalation is left unaborted (QA embed26-2).

use std::cell::{Cell, RefCell};
use std::task::Waker;
use std::time::Instant;

use slab::Slab;

use crate::callback::{call_caught, caught};

/// A hook to run when the drain completes: how many of the embedder's callbacks it ran
/// panicked (caught inside it: a server's own hooks, each run caught), counted with it
/// panicking itself in `hook_panics`.
pub(crate) type DrainHook = Box<dyn FnOnce() -> u64>;

#[derive(Default)]
pub(crate) struct DrainState {
    stopped_at: Cell<Option<Instant>>,
    drained_at: Cell<Option<Instant>>,
    deadline: Cell<Option<Instant>>,
    escalated: Cell<bool>,
    hooks: RefCell<Vec<DrainHook>>,
    waiters: RefCell<Slab<Waker>>,
    hook_panics: Cell<u64>,
}

impl DrainState {
    #[inline]
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped_at.get().is_some()
    }

    /// Marks the server stopped; false if it already was.
    pub(crate) fn mark_stopped(&self) -> bool {
        if self.is_stopped() {
            return false;
        }
        self.stopped_at.set(Some(Instant::now()));
        true
    }

    pub(crate) fn stopped_at(&self) -> Option<Instant> {
        self.stopped_at.get()
    }

    pub(crate) fn drained_at(&self) -> Option<Instant> {
        self.drained_at.get()
    }

    pub(crate) fn is_drained(&self) -> bool {
        self.drained_at.get().is_some()
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline.get()
    }

    pub(crate) fn set_deadline(&self, deadline: Instant) {
        self.deadline.set(Some(deadline));
    }

    /// Marks the escalation done; true the first time only.
    pub(crate) fn start_escalation(&self) -> bool {
        !self.escalated.replace(true)
    }

    /// Whether the deadline's abort has run (or an explicit escalation).
    pub(crate) fn is_escalated(&self) -> bool {
        self.escalated.get()
    }

    pub(crate) fn hook_panics(&self) -> u64 {
        self.hook_panics.get()
    }

    /// Completes the drain (once): wakes every waiter, then runs every hook on its own.
    pub(crate) fn complete(&self) {
        if self.is_drained() {
            return;
        }
        self.drained_at.set(Some(Instant::now()));
        // Our own work first: nothing a hook does can keep a waiting task asleep.
        let waiters: Vec<Waker> = self.waiters.borrow_mut().drain().collect();
        for waker in waiters {
            // An executor's waker is user code too: one that panics wakes the others anyway.
            call_caught(|| waker.wake());
        }
        // Take the hooks out first: a hook may drop guards or register more hooks.
        let hooks = std::mem::take(&mut *self.hooks.borrow_mut());
        for hook in hooks {
            self.run_hook(hook);
        }
    }

    fn run_hook(&self, hook: DrainHook) {
        let panicked = caught(hook).unwrap_or(1);
        self.count_hook_panics(panicked);
    }

    /// Counts `panicked` hooks of the embedder's that panicked, caught by whoever ran them (a
    /// server's `after_stop` / `after_drain` hooks: QA embed33-3).
    pub(crate) fn count_hook_panics(&self, panicked: u64) {
        self.hook_panics
            .set(self.hook_panics.get().saturating_add(panicked));
    }

    /// Runs `callback` (user code: a hook, the wrapper's downgrade and with it the engine's
    /// finalizer) on its own; a panic is caught and counted in `hook_panics`.
    pub(crate) fn run_caught(&self, callback: impl FnOnce()) {
        if call_caught(callback) {
            self.hook_panics.set(self.hook_panics.get() + 1);
        }
    }

    /// Runs `hook` when the drain completes, or now if it already has.
    pub(crate) fn on_drained(&self, hook: DrainHook) {
        if self.is_drained() {
            self.run_hook(hook);
        } else {
            self.hooks.borrow_mut().push(hook);
        }
    }

    /// Registers (or updates) the waker of one waiting handle; returns its slot. The waker is
    /// cloned with nothing borrowed: a clone is the executor's code, as its `wake` and `drop`
    /// are, and one that reaches this drain again (polls another handle of it) must find it
    /// free (QA embed19b-2: it panicked "already borrowed" inside `Drain::poll`).
    pub(crate) fn register(&self, slot: Option<usize>, waker: &Waker) -> usize {
        let held = slot.and_then(|key| self.waiters.borrow().get(key).map(|w| w.will_wake(waker)));
        if held == Some(true) {
            return slot.unwrap_or_default();
        }
        let fresh = waker.clone();
        let mut waiters = self.waiters.borrow_mut();
        match slot.and_then(|key| waiters.get_mut(key)) {
            Some(current) => {
                let replaced = std::mem::replace(current, fresh);
                drop(waiters);
                drop_waker(replaced);
                slot.unwrap_or_default()
            }
            None => waiters.insert(fresh),
        }
    }

    /// Forgets a handle's waker (the handle was dropped before the drain completed).
    pub(crate) fn deregister(&self, slot: usize) {
        // After completion the list was emptied and never refills, so the slot is ours or gone.
        let removed = self.waiters.borrow_mut().try_remove(slot);
        if let Some(waker) = removed {
            drop_waker(waker);
        }
    }

    pub(crate) fn waiter_count(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// Drops a waker the drain held, unborrowed and on its own: a waker is an executor's (user
/// code, as its `wake` is), and dropping its last handle may drop its task, with a ticket or a
/// drain handle that reaches the drain again, or panic (caught: a drain handle is often
/// dropped while a panic unwinds).
fn drop_waker(waker: Waker) {
    call_caught(move || drop(waker));
}
