//! Auto-trait probes (G1): what the crate's own `mod assertions` does not cover yet. Every
//! handle that reaches the loop's plain cells stays on the loop's thread. Checked as
//! `static_assertions` rather than trybuild files, whose `.stderr` would pin private field types.

use reqguard::engines::Embedded;
use reqguard::{AbortSignal, Admitted, Drain, Ledger, ServerCore};
use static_assertions::assert_not_impl_any;

// A worker thread must not abort a request (and run its listeners) behind the loop's back.
assert_not_impl_any!(AbortSignal: Send, Sync);
// Nor poll, escalate or hook the drain, nor mint through the core, nor read the ledger's cells.
assert_not_impl_any!(Drain: Send, Sync);
assert_not_impl_any!(ServerCore<Embedded<()>>: Send, Sync, Clone);
// (`Ledger` itself is `Send` but never owned outside a core; `&Ledger` cannot cross: `!Sync`.)
assert_not_impl_any!(Ledger: Sync, Clone, Default);
// A bundle ends once: not `Clone`, not `Default`, not `Send`.
assert_not_impl_any!(Admitted<(), ()>: Send, Sync, Clone, Default);

#[test]
fn auto_traits_are_checked_at_compile_time() {}
