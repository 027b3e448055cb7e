//! Pending-request tickets and the drain that waits for the last of them.

mod drain;
mod drain_state;
mod pending;

pub use drain::{Drain, DrainReport, DrainStatus};
pub(crate) use drain_state::DrainState;
pub use pending::PendingTicket;
