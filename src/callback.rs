//! Callbacks that user code supplies (abort listeners, drain hooks, `Recycle::recycle`, the
//! drain's wakers) may panic. The mechanism around them finishes its own work first (wake,
//! count, return the slot), then runs each callback on its own through [`call_caught`], counts
//! the panics, and goes on: one panicking callback never skips the others, and a panic inside a
//! `Drop` that runs while another panic unwinds never aborts the process.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `callback`; true if it panicked (the panic is caught, its message already printed by
/// the panic hook).
#[inline]
pub(crate) fn call_caught(callback: impl FnOnce()) -> bool {
    caught(callback).is_none()
}

/// Runs `f`: its value, or `None` if it panicked (caught, its payload dropped safely: a
/// payload's own `Drop` is user code too, `std::panic::panic_any`). For user code the servers
/// call (handlers, hooks) where a panic has an answer of its own (a `500`, a count).
#[inline]
pub(crate) fn caught<R>(f: impl FnOnce() -> R) -> Option<R> {
    // Unwind safety: a panicking callback leaves only its own captured state half-done; the
    // mechanism's state is updated before or after the call, never during it.
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(payload) => {
            drop_payload(payload);
            None
        }
    }
}

/// Drops a caught panic's payload, whose own `Drop` may panic too (std's `catch_unwind` docs):
/// that panic is caught as well and its payload dropped the same way; a payload that keeps
/// panicking past a few rounds is leaked, so nothing escapes and nothing loops forever.
#[cold]
#[inline(never)]
fn drop_payload(mut payload: Box<dyn Any + Send>) {
    for _ in 0..4 {
        match catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(again) => payload = again,
        }
    }
    std::mem::forget(payload);
}

/// Runs the body of a thread the servers start (a loop, a group's loop), which runs the
/// embedder's code (routes, accounting, `make`): a panic that escapes it becomes the thread's
/// error, naming the panic, its payload dropped here, caught. A thread must never end with a
/// panic payload: std drops the payload of a thread nobody joins itself (a `spawn` that gave
/// up on a loop that died before it was ready) and aborts the process when that drop panics
/// ("thread result panicked on drop"); one joined would drop it in the joiner, uncaught.
#[cfg(feature = "server")]
pub(crate) fn thread_caught<T>(body: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| Err(panic_error(payload)))
}

/// The error for a server thread that panicked, with the panic's message. The payload is the
/// embedder's (`panic_any`): dropped caught, as its `Drop` may panic too.
#[cfg(feature = "server")]
#[cold]
pub(crate) fn panic_error(payload: Box<dyn Any + Send>) -> std::io::Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|m| (*m).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic payload that is not a string".to_owned());
    drop_payload(payload);
    std::io::Error::other(format!("the server thread panicked: {message}"))
}

/// Drops `value`, the embedder's (a factory closure and its captures), whose `Drop` may
/// panic: caught, so a report made before it is not lost.
#[cfg(feature = "server")]
pub(crate) fn drop_caught<T>(value: T) {
    call_caught(move || drop(value));
}

/// Holds a value of the embedder's whose `Drop` may panic (a handler, a scope, a factory, a
/// group's share of one): it is dropped caught however its holder ends: a return, a future
/// dropped mid-way, or a panic unwinding past it, where a panicking `Drop` would abort the
/// process (a panic in a destructor during cleanup).
pub(crate) struct DropCaught<T>(Option<T>);

impl<T> DropCaught<T> {
    pub(crate) fn new(value: T) -> Self {
        DropCaught(Some(value))
    }

    /// The value, to be held (and dropped caught) elsewhere.
    #[cfg(feature = "hyper")]
    pub(crate) fn into_inner(mut self) -> T {
        self.0.take().expect("dropped only once")
    }
}

impl<T> std::ops::Deref for DropCaught<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("dropped only once")
    }
}

impl<T> Drop for DropCaught<T> {
    fn drop(&mut self) {
        let value = self.0.take();
        call_caught(move || drop(value));
    }
}

/// Lets go of `old`, the value an assignment replaced where the code's state says there is
/// none (taken a moment before with nothing run in between, or a slot's checkout took it):
/// checked in debug builds. Forgetting it spares a hot path the load, test and branch of a drop
/// that never happens; were the state ever wrong, the value would leak (a guard inside it
/// would show in the ledger), never be freed twice.
#[inline(always)]
pub(crate) fn forget_none<T>(old: Option<T>) {
    debug_assert!(
        old.is_none(),
        "replaced a value where there was none to replace"
    );
    std::mem::forget(old);
}

/// Drops `value` out of the way of a hot path, for a value that is never there in practice
/// (the `None` an assignment would drop, checked for instead).
#[cold]
#[inline(never)]
pub(crate) fn drop_cold<T>(value: T) {
    drop(value);
}
