//! Engines: where the server's wrapper lives.
//!
//! - [`Heap`] ([`Embedded`]): an embedded engine with a deterministic [`Heap::collect`], so tests
//!   reach the finalized path for real. Always available.
#![cfg_attr(
    feature = "v8",
    doc = "- [`V8`]: `v8::Global` / `v8::Weak` (feature `v8`)."
)]
#![cfg_attr(
    feature = "quickjs",
    doc = "- [`QuickJs`]: a JS `WeakRef` held in a `Persistent`; every handle keeps its `Runtime` alive (feature `quickjs`)."
)]

mod embedded;
#[cfg(feature = "quickjs")]
pub mod quickjs;
#[cfg(feature = "v8")]
pub mod v8;

#[cfg(feature = "v8")]
pub use self::v8::V8;
pub use embedded::{Embedded, Handle, Heap, WeakHandle};
#[cfg(feature = "quickjs")]
pub use quickjs::QuickJs;
