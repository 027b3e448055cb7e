//! Abort signals whose listeners fire at most once, and activity refs that keep them alive.

mod abort;
mod activity;
mod reason;
mod registry;

pub use abort::AbortSignal;
#[cfg(feature = "hyper")]
pub(crate) use abort::ListenerKey;
pub use activity::ActivityRef;
pub use reason::AbortReason;
pub(crate) use registry::SignalRegistry;
