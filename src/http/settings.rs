//! What a builder has been given, read back.
//!
//! A builder's setters take the knob's plain name (`.limits(l)`, Rust API guideline C-BUILDER),
//! so its getters cannot: a method name holds one signature. Each builder's `settings()` is a
//! read-only view whose getters carry the setters' names (C-GETTER), so `.limits(l)` on the
//! builder reads back as `.settings().limits()`. The views have no constructor and no setter:
//! only a builder makes them.

use std::net::SocketAddr;

use super::ladder::Ladder;
use super::limits::Limits;
use super::listener::ListenMode;

/// What a [`ServerBuilder`](super::ServerBuilder) has been given, from
/// [`ServerBuilder::settings`](super::ServerBuilder::settings).
///
/// # Examples
///
/// Change one limit of a builder made elsewhere, keep the rest:
///
/// ```
/// use reqguard::http::{Limits, ServerBuilder};
///
/// let builder = ServerBuilder::new().limits(Limits::default().with_max_body(1 << 20));
/// let limits = builder.settings().limits().with_max_connections(64);
/// let builder = builder.limits(limits);
/// assert_eq!(builder.settings().limits().max_body(), 1 << 20);
/// assert_eq!(builder.settings().limits().max_connections(), 64);
/// assert!(!builder.settings().handle_signals());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    pub(super) addr: SocketAddr,
    pub(super) limits: Limits,
    pub(super) handle_signals: bool,
}

impl ServerSettings {
    /// The address to listen on, as given (port 0 until bound: the bound address is
    /// [`Running::addr`](super::Running::addr)). Default `127.0.0.1:0`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The limits and timeouts. Default [`Limits::default`].
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether SIGINT and SIGTERM stop the server. Default `false`.
    pub fn handle_signals(&self) -> bool {
        self.handle_signals
    }
}

impl ServerSettings {
    /// A new builder's: `127.0.0.1:0`, default limits, no signal handling.
    pub(super) fn initial() -> Self {
        ServerSettings {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            limits: Limits::default(),
            handle_signals: false,
        }
    }
}

/// What a [`LoopGroup`](super::LoopGroup) has been given, from
/// [`LoopGroup::settings`](super::LoopGroup::settings).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use reqguard::http::{Ladder, ListenMode, LoopGroup};
///
/// let group = LoopGroup::new()
///     .loops(4)
///     .listen_mode(ListenMode::Shared)
///     .ladder(Ladder::default().with_unready(Duration::from_secs(5)));
/// let settings = group.settings();
/// assert_eq!(settings.loops(), 4);
/// assert_eq!(settings.listen_mode(), ListenMode::Shared);
/// assert_eq!(settings.ladder().unready(), Duration::from_secs(5));
/// assert_eq!(settings.addr().port(), 0); // a free port, picked at spawn
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupSettings {
    pub(super) addr: SocketAddr,
    pub(super) loops: usize,
    pub(super) limits: Limits,
    pub(super) ladder: Ladder,
    pub(super) listen_mode: ListenMode,
}

impl GroupSettings {
    /// The address every loop listens on, as given (the bound one is
    /// [`GroupHandle::addr`](super::GroupHandle::addr)). Default `127.0.0.1:0`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many loops, as given (checked at spawn: 1 to 1,024). Default 1.
    pub fn loops(&self) -> usize {
        self.loops
    }

    /// The limits of every loop, as given: at spawn the ladder's drain timeout and idle
    /// linger replace theirs. Default [`Limits::default`].
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The stop ladder. Default [`Ladder::default`].
    pub fn ladder(&self) -> &Ladder {
        &self.ladder
    }

    /// How the loops share the port. Default [`ListenMode::ReusePort`].
    pub fn listen_mode(&self) -> ListenMode {
        self.listen_mode
    }
}

impl GroupSettings {
    /// A new group's: one loop on `127.0.0.1:0`, default limits and ladder, `SO_REUSEPORT`.
    pub(super) fn initial() -> Self {
        GroupSettings {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            loops: 1,
            limits: Limits::default(),
            ladder: Ladder::default(),
            listen_mode: ListenMode::ReusePort,
        }
    }
}
