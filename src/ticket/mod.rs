//! Pending-request tickets and the drain that waits for the last of them.

mod drain;
mod pending;

pub use drain::{Drain, DrainReport, DrainStatus};
pub use pending::PendingTicket;
