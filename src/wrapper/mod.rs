//! The server's wrapper: the engine trait, the strong/weak cell, and the proof of an upgrade.

mod cell;
mod engine;
mod live;

pub use cell::{DowngradePolicy, WrapperCell};
pub use engine::Engine;
pub use live::Live;
