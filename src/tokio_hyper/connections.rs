//! The server's open connections: counted, awaitable until none is left, force-closable.
//!
//! # Invariants
//!
//! 1. A connection is in `open` from before its task is spawned until its task's future is
//!    dropped (it ended, or was aborted): the [`Registered`] guard inside the task removes it.
//! 2. `empty_waker` is woken whenever `open` becomes empty.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use slab::Slab;
use tokio::task::AbortHandle;

#[derive(Default)]
pub(crate) struct Connections {
    open: RefCell<Slab<Option<AbortHandle>>>,
    empty_waker: Cell<Option<Waker>>,
}

/// Held by a connection's task: dropping it (task ended or aborted) unregisters the connection.
pub(crate) struct Registered {
    connections: Rc<Connections>,
    key: usize,
}

impl Connections {
    pub(crate) fn len(&self) -> usize {
        self.open.borrow().len()
    }

    /// Registers a connection whose task is about to be spawned.
    pub(crate) fn register(self: &Rc<Self>) -> Registered {
        let key = self.open.borrow_mut().insert(None);
        Registered {
            connections: Rc::clone(self),
            key,
        }
    }

    /// Records the spawned task's abort handle, for a force-close.
    pub(crate) fn set_abort_handle(&self, key: usize, handle: AbortHandle) {
        if let Some(slot) = self.open.borrow_mut().get_mut(key) {
            *slot = Some(handle);
        }
    }

    /// Aborts every open connection's task (hyper drops the connection, its request futures
    /// and its response bodies); returns how many.
    pub(crate) fn abort_all(&self) -> usize {
        let open = self.open.borrow();
        for (_, handle) in open.iter() {
            if let Some(handle) = handle {
                handle.abort();
            }
        }
        open.len()
    }

    /// Resolves once no connection is open.
    pub(crate) async fn closed(&self) {
        poll_fn(|cx| {
            if self.open.borrow().is_empty() {
                Poll::Ready(())
            } else {
                self.empty_waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
    }
}

impl Registered {
    pub(crate) fn key(&self) -> usize {
        self.key
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut open = self.connections.open.borrow_mut();
        open.try_remove(self.key);
        let now_empty = open.is_empty();
        drop(open);
        if now_empty {
            if let Some(waker) = self.connections.empty_waker.take() {
                waker.wake();
            }
        }
    }
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections")
            .field("open", &self.len())
            .finish()
    }
}
