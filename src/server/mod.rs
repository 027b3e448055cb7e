//! The server core: the handle a runtime keeps for each server, and the state its guards share.

mod config;
mod server_core;
pub(crate) mod shared;

pub use config::{Config, ConfigError};
pub use server_core::ServerCore;
