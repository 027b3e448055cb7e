//! Listening sockets for a loop group: one `SO_REUSEPORT` socket per loop on one port, or one
//! socket shared by every loop.
//!
//! With `SO_REUSEPORT` the kernel hashes each new connection to one listener's accept queue,
//! so each loop accepts its own share with no lock between loops. Closing one of those
//! listeners resets the connections waiting in its queue (pingora#427), which is why a group
//! keeps every listener open until the whole group has drained (see `group.rs`).

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// How the loops of a group share the port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListenMode {
    /// One listening socket per loop, all bound with `SO_REUSEPORT`: the kernel spreads new
    /// connections over the loops (the default).
    #[default]
    ReusePort,
    /// One listening socket whose descriptor every loop polls (a `dup` each): every loop is
    /// woken for a new connection and the first to `accept` takes it. No queue can be lost
    /// between loops, at the price of wake-ups.
    Shared,
}

/// The accept backlog of each listening socket.
const BACKLOG: i32 = 1024;

/// The most loops a group (of either stack) runs: far more than any machine has cores.
pub(crate) const MAX_LOOPS: usize = 1024;

/// Binds `count` non-blocking listeners on `addr` for `mode`. With port 0 the first listener
/// picks the port and the others join it.
pub(crate) fn bind(
    addr: SocketAddr,
    count: usize,
    mode: ListenMode,
) -> io::Result<Vec<TcpListener>> {
    if count == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a loop group needs at least one loop",
        ));
    }
    if count > MAX_LOOPS {
        // Checked before anything is sized by it (both stacks' groups bind here): a huge
        // count would overflow (or exhaust) the allocation of one listener per loop.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a loop group has at most 1,024 loops",
        ));
    }
    // One loop needs no port sharing (and then another process cannot join the port).
    let reuse_port = mode == ListenMode::ReusePort && count > 1;
    let first = listen_on(addr, reuse_port)?;
    let addr = first.local_addr()?;
    let mut listeners = Vec::with_capacity(count);
    listeners.push(first);
    for _ in 1..count {
        let next = match mode {
            ListenMode::ReusePort => listen_on(addr, true)?,
            ListenMode::Shared => listeners[0].try_clone()?,
        };
        listeners.push(next);
    }
    Ok(listeners)
}

fn listen_on(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As mio's own `TcpListener::bind`: a restarted server can bind while old connections
    // sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if reuse_port {
        set_reuse_port(&socket)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(unix)]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(unix))]
fn set_reuse_port(_: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is Unix-only: use ListenMode::Shared",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_port_listeners_share_one_port() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let listeners = bind(addr, 3, ListenMode::ReusePort).unwrap();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert!(
            ports[0] != 0 && ports.iter().all(|&p| p == ports[0]),
            "{ports:?}"
        );
    }

    #[test]
    fn zero_loops_is_an_error() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let err = bind(addr, 0, ListenMode::Shared).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
