//! Callbacks that user code supplies (abort listeners, drain hooks, `Recycle::recycle`) may
//! panic. The mechanism around them finishes its own work first (wake, count, return the slot),
//! then runs each callback on its own through [`call_caught`], counts the panics, and goes on:
//! one panicking callback never skips the others, and a panic inside a `Drop` that runs while
//! another panic unwinds never aborts the process.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `callback`; true if it panicked (the panic is caught, its message already printed by
/// the panic hook).
#[inline]
pub(crate) fn call_caught(callback: impl FnOnce()) -> bool {
    // Unwind safety: a panicking callback leaves only its own captured state half-done; the
    // mechanism's state is updated before or after the call, never during it.
    catch_unwind(AssertUnwindSafe(callback)).is_err()
}
