//! Whether a socket has sent everything written to it: what both servers' close linger waits
//! for before it ends (RFC 9112 §9.6), so that closing a socket whose client is still sending
//! (which resets the connection, and a reset drops what the socket had not sent yet: answers
//! already counted) loses nothing.
//!
//! RFC 9112 §9.6 asks a server to keep reading after its half-close until the client closes,
//! or until its TCP stack has the client's acknowledgement of its last answer. Linux tells the
//! unsent and unacknowledged bytes of a socket by `ioctl(SIOCOUTQ)`, which only `unsafe` code
//! can call (the crate has none: `unsafe_code = "forbid"`). So, safely: `TCP_NOTSENT_LOWAT` of
//! one byte (`socket2`) makes the socket report writable only once nothing written to it is
//! unsent, and a `poll(2)` of it without waiting (`rustix`) reads that. A `poll` that finds
//! bytes unsent also arms the kernel's wake-up (`SOCK_NOSPACE`): the socket's next writable
//! event (an edge for epoll) comes once the last byte has left. Its acknowledgement is not
//! seen: the linger goes on for a moment after the last byte left (each server's short linger),
//! which covers the round trip.
//!
//! Linux and Android only (where `socket2` sets the option); elsewhere [`watch`] says it cannot,
//! and the servers linger as before: their short linger from the half-close on.
//!
//! Both calls are made only for a connection the server closes, never per request.

#[cfg(any(target_os = "linux", target_os = "android"))]
use std::os::fd::AsFd;

/// Whether [`watch`] can work here: the hyper adapter then leaves the half-close to its linger.
#[cfg(feature = "hyper")]
pub(crate) const WATCHABLE: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Arms the watch on a socket the server is closing: from now on it reports writable only once
/// nothing written to it is unsent. False where that cannot be done (another system, or the
/// option refused): [`all_sent`] then tells nothing, and the caller must not wait for it.
/// One system call (`setsockopt`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn watch(socket: &impl AsFd) -> bool {
    socket2::SockRef::from(socket)
        .set_tcp_notsent_lowat(1)
        .is_ok()
}

/// See the Linux version: never.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn watch<S>(_socket: &S) -> bool {
    false
}

/// Whether nothing written to a socket armed by [`watch`] (and not yet half-closed) is unsent;
/// if something is, the socket's next writable event comes once it all has left. One system
/// call (`poll` without waiting). A socket that failed reports writable (its error, its
/// hang-up): the caller's next read or close finds the failure.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn all_sent(socket: &impl AsFd) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(socket, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&now)) {
        Ok(_) => {
            !(fds[0].revents() & (PollFlags::OUT | PollFlags::ERR | PollFlags::HUP)).is_empty()
        }
        Err(_) => true,
    }
}

/// See the Linux version: never called where [`watch`] is false; says all sent.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn all_sent<S>(_socket: &S) -> bool {
    true
}
