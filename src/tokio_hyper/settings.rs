//! What a [`HyperGroup`](super::HyperGroup) has been given, read back (as the mio stack's
//! `http::GroupSettings`): the builder's setters take the plain names (C-BUILDER), so its
//! getters live on this read-only view under the same names (C-GETTER).

use std::net::SocketAddr;

use crate::http::ListenMode;

/// What a [`HyperGroup`](super::HyperGroup) has been given, from
/// [`HyperGroup::settings`](super::HyperGroup::settings). Each loop's knobs are its
/// [`HyperServer`](super::HyperServer)'s, read back with
/// [`HyperServer::settings`](super::HyperServer::settings).
///
/// # Examples
///
/// ```
/// use reqguard::http::ListenMode;
/// use reqguard::tokio_hyper::HyperGroup;
///
/// let group = HyperGroup::new().loops(4).listen_mode(ListenMode::Shared);
/// let settings = group.settings();
/// assert_eq!(settings.loops(), 4);
/// assert_eq!(settings.listen_mode(), ListenMode::Shared);
/// assert_eq!(settings.addr().port(), 0); // a free port, picked at spawn
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HyperGroupSettings {
    pub(super) addr: SocketAddr,
    pub(super) loops: usize,
    pub(super) listen_mode: ListenMode,
}

impl HyperGroupSettings {
    /// A new group's: one loop on `127.0.0.1:0`, `SO_REUSEPORT`.
    pub(super) fn initial() -> Self {
        HyperGroupSettings {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            loops: 1,
            listen_mode: ListenMode::ReusePort,
        }
    }

    /// The address every loop listens on, as given (the bound one is
    /// [`HyperGroupHandle::addr`](super::HyperGroupHandle::addr)). Default `127.0.0.1:0`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many loops, as given (checked at spawn: 1 to 1,024). Default 1.
    pub fn loops(&self) -> usize {
        self.loops
    }

    /// How the loops share the port. Default [`ListenMode::ReusePort`].
    pub fn listen_mode(&self) -> ListenMode {
        self.listen_mode
    }
}
