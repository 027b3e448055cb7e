//! Polls a branch of the accept loop only when its own waker fired.
//!
//! A `LocalSet` polls the future it runs (the one awaiting [`HyperServer::serve`]) every time
//! any of its tasks is woken: once per request at least, as each connection's task wakes on
//! its socket. A `select!` over the stop future and `accept` would then poll both on every
//! request, for nothing (about 400 instructions per request on this machine, in a loop that
//! accepts a connection once per thousands of requests). A [`Gate`] gives its branch a waker of
//! its own that records the wake before passing it on, and skips the branch until that waker
//! (or the first poll, or [`Gate::rearm`]) says it may be ready.
//!
//! # Invariants
//!
//! 1. A branch whose last poll returned `Pending` is polled again once its waker was woken:
//!    the wake sets `woken` before it wakes the task, and the gate clears `woken` before it
//!    polls the branch, so a wake during the poll is not lost.
//! 2. If the task's waker changes, the gate builds a new waker and polls the branch at once, so
//!    the branch registers a waker that wakes the current task.
//!
//! [`HyperServer::serve`]: super::HyperServer::serve

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// The waker a gated branch registers: records the wake, then wakes the task.
struct Flag {
    woken: AtomicBool,
    task: Waker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

/// Whether `a` and `b` wake the same task: the same data and the same functions.
/// (`Waker::will_wake` also compares the vtable's address, which differs between a tokio
/// task's waker and its clone: the gate would build a new waker, an allocation, per poll.)
fn same_waker(a: &Waker, b: &Waker) -> bool {
    a.data() == b.data() && a.vtable() == b.vtable()
}

/// One branch's gate: built on the first poll (one allocation per accept loop, none per
/// request).
#[derive(Default)]
pub(crate) struct Gate {
    armed: Option<(Arc<Flag>, Waker)>,
}

impl Gate {
    /// Polls the branch with `poll` if its waker fired since its last `Pending` (or it was
    /// never polled, or [rearmed](Gate::rearm)); `Pending` without polling it otherwise.
    #[inline]
    pub(crate) fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let waker = match &self.armed {
            Some((flag, waker)) if same_waker(&flag.task, cx.waker()) => {
                if !flag.woken.swap(false, Ordering::AcqRel) {
                    return Poll::Pending;
                }
                waker
            }
            _ => {
                let flag = Arc::new(Flag {
                    woken: AtomicBool::new(false),
                    task: cx.waker().clone(),
                });
                let waker = Waker::from(Arc::clone(&flag));
                &self.armed.insert((flag, waker)).1
            }
        };
        poll(&mut Context::from_waker(waker))
    }

    /// The branch is polled at its next turn: it completed and its next round has not
    /// registered a waker yet, or it was polled outside the gate.
    pub(crate) fn rearm(&self) {
        if let Some((flag, _)) = &self.armed {
            flag.woken.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;

    /// A task waker that counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_branch_is_polled_first_then_only_after_its_waker_fired() {
        let task = Arc::new(Count(AtomicUsize::new(0)));
        let task_waker = Waker::from(Arc::clone(&task));
        let mut cx = Context::from_waker(&task_waker);
        let mut gate = Gate::default();
        let polls = Cell::new(0);
        let registered: Cell<Option<Waker>> = Cell::new(None);
        let branch = |cx: &mut Context<'_>| {
            polls.set(polls.get() + 1);
            registered.set(Some(cx.waker().clone()));
            Poll::<()>::Pending
        };
        assert!(gate.poll(&mut cx, branch).is_pending());
        assert!(gate.poll(&mut cx, branch).is_pending());
        assert_eq!(polls.get(), 1, "not woken: not polled again");
        registered.take().unwrap().wake();
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            1,
            "the wake reaches the task"
        );
        assert!(gate.poll(&mut cx, branch).is_pending());
        assert_eq!(polls.get(), 2, "woken: polled");
        gate.rearm();
        assert!(gate.poll(&mut cx, branch).is_pending());
        assert_eq!(polls.get(), 3, "rearmed: polled");
    }

    #[test]
    fn a_new_task_waker_polls_the_branch_at_once() {
        let first = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let second = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut gate = Gate::default();
        let polls = Cell::new(0);
        let branch = |_: &mut Context<'_>| {
            polls.set(polls.get() + 1);
            Poll::<()>::Pending
        };
        let _ = gate.poll(&mut Context::from_waker(&first), branch);
        let _ = gate.poll(&mut Context::from_waker(&second), branch);
        assert_eq!(polls.get(), 2);
    }
}
