//! Polls the server's own future only when one of its own wakers fired.
//!
//! A `LocalSet` polls the future it runs (the one awaiting [`HyperServer::serve`]) every time
//! any of its tasks is woken: once per request at least, as each connection's task wakes on
//! its socket. The server's future would then step through its accept loop's `select!` (the
//! stop future, `accept`) on every request, for nothing: about 400 instructions per request on
//! this machine, in a loop that accepts a connection once per thousands of requests. [`Gated`]
//! gives the future a waker of its own that records the wake before passing it on, and skips
//! the poll until that waker says something inside may be ready.
//!
//! # Invariants
//!
//! 1. A future whose last poll returned `Pending` is polled again once its waker was woken:
//!    the wake sets `woken` before it wakes the task, and the gate clears `woken` before it
//!    polls the future, so a wake during the poll is not lost.
//! 2. If the task's waker changes, the gate builds a new waker and polls the future at once, so
//!    everything inside registers a waker that wakes the current task.
//!
//! [`HyperServer::serve`]: super::HyperServer::serve

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use pin_project_lite::pin_project;

/// The waker a gated future registers: records the wake, then wakes the task.
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
pub(crate) fn same_waker(a: &Waker, b: &Waker) -> bool {
    a.data() == b.data() && a.vtable() == b.vtable()
}

pin_project! {
    /// `future`, polled only after a waker it registered fired (or on its first poll, or when
    /// the task's waker changed). One allocation per gated future, none per poll.
    pub(crate) struct Gated<F> {
        #[pin]
        future: F,
        armed: Option<(Arc<Flag>, Waker)>,
    }
}

impl<F> Gated<F> {
    pub(crate) fn new(future: F) -> Self {
        Gated {
            future,
            armed: None,
        }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let waker = match this.armed {
            Some((flag, waker)) if same_waker(&flag.task, cx.waker()) => {
                if !flag.woken.swap(false, Ordering::AcqRel) {
                    return Poll::Pending;
                }
                waker
            }
            armed => {
                let flag = Arc::new(Flag {
                    woken: AtomicBool::new(false),
                    task: cx.waker().clone(),
                });
                let waker = Waker::from(Arc::clone(&flag));
                &armed.insert((flag, waker)).1
            }
        };
        this.future.poll(&mut Context::from_waker(waker))
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

    /// A future that counts its polls and keeps the last waker it was given.
    fn pending<'a>(
        polls: &'a Cell<usize>,
        registered: &'a Cell<Option<Waker>>,
    ) -> impl Future<Output = ()> + 'a {
        std::future::poll_fn(move |cx| {
            polls.set(polls.get() + 1);
            registered.set(Some(cx.waker().clone()));
            Poll::Pending
        })
    }

    #[test]
    fn a_future_is_polled_first_then_only_after_its_waker_fired() {
        let task = Arc::new(Count(AtomicUsize::new(0)));
        let task_waker = Waker::from(Arc::clone(&task));
        let mut cx = Context::from_waker(&task_waker);
        let (polls, registered) = (Cell::new(0), Cell::new(None));
        let mut gated = std::pin::pin!(Gated::new(pending(&polls, &registered)));
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.get(), 1, "not woken: not polled again");
        registered.take().unwrap().wake();
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            1,
            "the wake reaches the task"
        );
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.get(), 2, "woken: polled");
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.get(), 2);
    }

    #[test]
    fn a_new_task_waker_polls_the_future_at_once() {
        let first = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let second = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let (polls, registered) = (Cell::new(0), Cell::new(None));
        let mut gated = std::pin::pin!(Gated::new(pending(&polls, &registered)));
        let _ = gated.as_mut().poll(&mut Context::from_waker(&first));
        let _ = gated.as_mut().poll(&mut Context::from_waker(&second));
        assert_eq!(polls.get(), 2);
        let _ = gated
            .as_mut()
            .poll(&mut Context::from_waker(&second.clone()));
        assert_eq!(
            polls.get(),
            2,
            "a clone of the same task's waker is the same task"
        );
    }

    #[test]
    fn the_output_passes_through() {
        let task = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut gated = std::pin::pin!(Gated::new(std::future::ready(7)));
        assert_eq!(
            gated.as_mut().poll(&mut Context::from_waker(&task)),
            Poll::Ready(7)
        );
    }
}
