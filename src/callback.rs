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
