//! The ledger: outstanding guards per kind, where each was minted, and leak reports.

mod book;
mod kind;
mod report;

pub(crate) use book::{BundleEntry, Entry, TraceMark};
pub use book::{Ledger, LedgerEvent};
pub use kind::GuardKind;
pub use report::{LeakReport, LeakSite};
