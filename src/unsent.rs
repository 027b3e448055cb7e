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
    use rustix::event::PollFlags;
    polled_now(socket, PollFlags::OUT | PollFlags::ERR | PollFlags::HUP)
}

/// Whether a `poll(2)` of `socket` for writing, without waiting, reports any of `flags`; true
/// if the poll itself fails (the caller's next read or close finds why).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn polled_now(socket: &impl AsFd, flags: rustix::event::PollFlags) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(socket, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&now)) {
        Ok(_) => fds[0].revents().intersects(flags),
        Err(_) => true,
    }
}

/// See the Linux version: never called where [`watch`] is false; says all sent.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn all_sent<S>(_socket: &S) -> bool {
    true
}

/// Whether a socket whose [`all_sent`] said yes did so because its connection is gone (the
/// peer reset it, or it failed: `POLLHUP` or `POLLERR`, before our own shutdown) rather than
/// because it sent everything: what it held is then lost, not sent. One system call (`poll`
/// without waiting), made once per linger.
#[cfg(all(feature = "hyper", any(target_os = "linux", target_os = "android")))]
pub(crate) fn hung_up(socket: &impl AsFd) -> bool {
    use rustix::event::PollFlags;
    polled_now(socket, PollFlags::ERR | PollFlags::HUP)
}

/// See the Linux version: never called where [`watch`] is false.
#[cfg(all(
    feature = "hyper",
    not(any(target_os = "linux", target_os = "android"))
))]
pub(crate) fn hung_up<S>(_socket: &S) -> bool {
    false
}

/// How many of the `written` bytes written to a socket reach its peer if the socket is closed
/// now (`src/delivery.rs` counts the answers they hold delivered). A close with input unread
/// resets the connection, and the kernel drops its send queue: only what the peer's TCP has
/// acknowledged got there. A close with nothing unread sends its FIN behind what the socket
/// holds, which the kernel goes on sending: all of it. Linux tells both (the receive queue;
/// the bytes written and not acknowledged, `write_seq - snd_una`, what `SIOCOUTQ` tells)
/// through `sock_diag` over netlink, as `ss` reads them: a netlink socket (`socket2`), one
/// request and one reply, as bytes, no `unsafe`. Four system calls, made only when a connection
/// is closed with answers maybe undelivered. Where that fails (another system, no netlink, a
/// socket the kernel let go after a reset), conservatively `written` less twice the socket's
/// send buffer (more than its send queue holds), or none if that is not known either.
pub(crate) fn deliverable<'s, S>(socket: &'s S, written: u64) -> u64
where
    socket2::SockRef<'s>: From<&'s S>,
{
    let socket = socket2::SockRef::from(socket);
    match diag::queues(&socket) {
        Some(Queues { unread: 0, .. }) => written,
        Some(Queues { unacknowledged, .. }) => written.saturating_sub(unacknowledged),
        None => match socket.send_buffer_size() {
            Ok(size) => written.saturating_sub(2 * size as u64),
            Err(_) => 0,
        },
    }
}

/// Bytes written to a socket and not yet acknowledged by its peer, where `sock_diag` tells:
/// tests wait for it to reach 0 (on loopback, the peer's kernel has them) instead of sleeping.
#[cfg(all(test, feature = "server"))]
pub(crate) fn unacknowledged<'s, S>(socket: &'s S) -> Option<u64>
where
    socket2::SockRef<'s>: From<&'s S>,
{
    diag::queues(&socket2::SockRef::from(socket)).map(|queues| queues.unacknowledged)
}

/// A TCP socket's queues, as `ss` shows them (`Recv-Q`, `Send-Q`).
#[derive(Clone, Copy, Debug)]
struct Queues {
    /// Bytes received and not read.
    unread: u64,
    /// Bytes written and not acknowledged by the peer (sent or not).
    unacknowledged: u64,
}

/// `sock_diag` (linux/sock_diag.h, linux/inet_diag.h): one TCP socket's statistics by its
/// addresses.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod diag {
    use std::io::Read;
    use std::net::SocketAddr;

    use socket2::{Domain, Protocol, SockRef, Socket, Type};

    use super::Queues;

    const AF_NETLINK: i32 = 16;
    const NETLINK_SOCK_DIAG: i32 = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST: u16 = 1;
    const AF_INET: u8 = 2;
    const AF_INET6: u8 = 10;
    const IPPROTO_TCP: u8 = 6;
    /// `nlmsghdr` (16 bytes) and `inet_diag_req_v2` (56).
    const REQUEST_LEN: usize = 72;
    /// In the reply, `nlmsghdr` then `inet_diag_msg`, whose `idiag_rqueue` is at 56 and
    /// `idiag_wqueue` at 60.
    const RQUEUE_AT: usize = 16 + 56;
    const WQUEUE_AT: usize = 16 + 60;

    /// `socket`'s queues.
    pub(super) fn queues(socket: &SockRef<'_>) -> Option<Queues> {
        let local = socket.local_addr().ok()?.as_socket()?;
        let peer = socket.peer_addr().ok()?.as_socket()?;
        let netlink = Socket::new(
            Domain::from(AF_NETLINK),
            Type::DGRAM,
            Some(Protocol::from(NETLINK_SOCK_DIAG)),
        )
        .ok()?;
        // The kernel answers while it takes the request: the reply is there when `send`
        // returns. Not waiting for it all the same, should it not be.
        netlink.set_nonblocking(true).ok()?;
        if netlink.send(&request(local, peer)).ok()? != REQUEST_LEN {
            return None;
        }
        let mut reply = [0; 512];
        let len = (&netlink).read(&mut reply).ok()?;
        let kind = u16::from_ne_bytes([reply[4], reply[5]]);
        if len < WQUEUE_AT + 4 || kind != SOCK_DIAG_BY_FAMILY {
            return None; // an error reply: no such socket (any more)
        }
        let field = |at: usize| reply[at..at + 4].try_into().map(u32::from_ne_bytes);
        Some(Queues {
            unread: u64::from(field(RQUEUE_AT).ok()?),
            unacknowledged: u64::from(field(WQUEUE_AT).ok()?),
        })
    }

    /// A request for the one TCP socket from `local` to `peer` (any state, no extensions, no
    /// cookie: the lookup is by addresses).
    fn request(local: SocketAddr, peer: SocketAddr) -> Vec<u8> {
        let mut out = Vec::with_capacity(REQUEST_LEN);
        out.extend_from_slice(&(REQUEST_LEN as u32).to_ne_bytes()); // nlmsg_len
        out.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes()); // nlmsg_type
        out.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes()); // nlmsg_flags
        out.extend_from_slice(&[0; 8]); // nlmsg_seq, nlmsg_pid
        let family = if local.is_ipv4() { AF_INET } else { AF_INET6 };
        out.extend_from_slice(&[family, IPPROTO_TCP, 0, 0]); // family, protocol, ext, pad
        out.extend_from_slice(&u32::MAX.to_ne_bytes()); // idiag_states: any
        out.extend_from_slice(&local.port().to_be_bytes()); // idiag_sport
        out.extend_from_slice(&peer.port().to_be_bytes()); // idiag_dport
        for addr in [local, peer] {
            let mut bytes = [0; 16]; // idiag_src, idiag_dst
            match addr {
                SocketAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.ip().octets()),
                SocketAddr::V6(v6) => bytes = v6.ip().octets(),
            }
            out.extend_from_slice(&bytes);
        }
        out.extend_from_slice(&0u32.to_ne_bytes()); // idiag_if: any
        out.extend_from_slice(&[0xff; 8]); // idiag_cookie: INET_DIAG_NOCOOKIE
        out
    }
}

/// See the Linux version: never known here.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod diag {
    pub(super) fn queues(_socket: &socket2::SockRef<'_>) -> Option<super::Queues> {
        None
    }
}
