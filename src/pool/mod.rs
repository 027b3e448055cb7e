//! Pooled request contexts: capacity, exhaustion policy and metrics.

mod context;
mod metrics;
mod recycle;
mod slots;

pub use context::RequestContext;
pub use metrics::{Exhaustion, PoolMetrics};
pub use recycle::Recycle;
pub(crate) use slots::{ContextPool, Origin, Slot};
