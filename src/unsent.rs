//! Whether a socket has sent everything written to it: what both servers' close linger waits
//! for before it ends (RFC 9112 §9.6), so that closing a socket whose client is still sending
//! (which resets the connection, and a reset drops what the socket had not sent yet: answers
//! already counted) loses nothing.
//!
//! RFC 9112 §9.6 asks a server to keep reading after its half-close until the client closes,
//! or until its TCP stack has the client's acknowledgement of its last answer. An event loop
//! can wait for the first part only: `TCP_NOTSENT_LOWAT` of one byte (`socket2`) makes the
//! socket report writable only once nothing written to it is unsent, and a `poll(2)` of it
//! without waiting (`rustix`) reads that. A `poll` that finds
//! bytes unsent also arms the kernel's wake-up (`SOCK_NOSPACE`): the socket's next writable
//! event (an edge for epoll) comes once the last byte has left. Its acknowledgement is not
//! seen: the linger goes on for a moment after the last byte left (each server's short linger),
//! which covers the round trip.
//!
//! Linux and Android only (where `socket2` sets the option); elsewhere [`watch`] says it cannot,
//! and the servers linger as before: their short linger from the half-close on.
//!
//! Both calls are made only for a connection the server closes, never per request. What the
//! peer acknowledged is read ([`deliverable`]) only to count a closed connection's answers.

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
/// resets the connection, and so does a client's reset before it: the kernel drops the send
/// queue, and only what the peer's TCP has acknowledged got there. A close with nothing unread
/// on a connection still up sends its FIN behind what the socket holds, which the kernel goes
/// on sending: all of it. Linux tells the first by `ioctl(FIONREAD)` (`rustix`, safe) and the
/// rest by `TCP_INFO` ([`tcp_info`]: the connection's state and the bytes its peer
/// acknowledged, kept after a reset). Two system calls, made only when a connection is closed
/// with answers maybe undelivered. Where `TCP_INFO` cannot be read (another system, a kernel
/// before 4.6), conservatively `written` less twice the socket's send buffer (more than its
/// send queue holds), or none if that is not known either.
pub(crate) fn deliverable<'s, S>(socket: &'s S, written: u64) -> u64
where
    socket2::SockRef<'s>: From<&'s S>,
{
    let socket = socket2::SockRef::from(socket);
    match tcp_info::read(&*socket) {
        Some(info) if info.up && unread(&socket) == Some(0) => written,
        Some(info) => written.min(info.bytes_acked),
        None => match socket.send_buffer_size() {
            Ok(size) => written.saturating_sub(2 * size as u64),
            Err(_) => 0,
        },
    }
}

/// What became of the bytes written to a socket whose client closed its side first
/// ([`acknowledged`]).
#[cfg(feature = "server")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acknowledged {
    /// The client's TCP acknowledged them all: it has them.
    All,
    /// Some are not acknowledged yet.
    Pending,
    /// The connection was reset: only what was acknowledged got there.
    Reset,
    /// Not known here (another system, an older kernel).
    Unknown,
}

/// Whether the client's TCP acknowledged all `written` bytes written to `socket`, or reset
/// the connection. One system call (`TCP_INFO`), made only for a connection whose client
/// closed its side before its last answer was written.
#[cfg(feature = "server")]
pub(crate) fn acknowledged<'s, S>(socket: &'s S, written: u64) -> Acknowledged
where
    socket2::SockRef<'s>: From<&'s S>,
{
    match tcp_info::read(&*socket2::SockRef::from(socket)) {
        None => Acknowledged::Unknown,
        // Acknowledged whole, whatever came after: a connection whose FIN crossed ours ends in
        // `TCP_CLOSE` too (the kernel's time-wait takes it over), and was taken for a reset,
        // which read `TCP_INFO` again to count nothing undelivered (two calls per connection
        // closed, `benches/load/shapes.py` churn).
        Some(info) if info.bytes_acked >= written => Acknowledged::All,
        Some(info) if !info.up => Acknowledged::Reset,
        Some(_) => Acknowledged::Pending,
    }
}

/// Bytes written to `socket` and not sent yet (`tcpi_notsent_bytes`), where `TCP_INFO` tells:
/// a close finds nothing unsent (nearly always) in one system call, and arms [`watch`] and
/// polls [`all_sent`] (two more) only when something is. `None` where it cannot be read.
#[cfg(feature = "server")]
pub(crate) fn unsent_bytes<'s, S>(socket: &'s S) -> Option<u32>
where
    socket2::SockRef<'s>: From<&'s S>,
{
    tcp_info::read(&*socket2::SockRef::from(socket)).map(|info| info.unsent)
}

/// Bytes received and not read yet.
#[cfg(unix)]
fn unread(socket: &socket2::Socket) -> Option<u64> {
    rustix::io::ioctl_fionread(socket).ok()
}

/// See the Unix version: never known here.
#[cfg(not(unix))]
fn unread(_socket: &socket2::Socket) -> Option<u64> {
    None
}

/// Whether every byte written to a socket is in its peer's kernel (sent and acknowledged):
/// tests wait for it (on loopback, the peer can then read them) instead of sleeping.
#[cfg(all(test, feature = "server"))]
pub(crate) fn all_acknowledged<'s, S>(socket: &'s S) -> bool
where
    socket2::SockRef<'s>: From<&'s S>,
{
    tcp_info::read(&*socket2::SockRef::from(socket))
        .is_some_and(|info| info.in_flight == 0 && info.unsent == 0)
}

/// What [`tcp_info::read`] tells of a TCP socket.
#[derive(Clone, Copy, Debug)]
struct TcpInfo {
    /// The connection is up: not reset or closed (its state is not `TCP_CLOSE`).
    up: bool,
    /// Bytes of ours the peer acknowledged, in the connection's life (`tcpi_bytes_acked`; one
    /// more once our FIN is acknowledged). The kernel keeps it after a reset.
    bytes_acked: u64,
    /// Segments sent and not acknowledged (`tcpi_unacked`); read by tests only.
    #[cfg_attr(not(all(test, feature = "server")), allow(dead_code))]
    in_flight: u32,
    /// Bytes written and not sent yet (`tcpi_notsent_bytes`): [`unsent_bytes`].
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    unsent: u32,
}

/// `getsockopt(TCP_INFO)` (linux/tcp.h). The one `unsafe` of the crate: no safe wrapper reads
/// it (`socket2`, `rustix` and `nix` have none; `tcp-info-sys` needs `bindgen` and `libclang`
/// to build), and `sock_diag`, which reads the same counters safely over netlink, no longer
/// finds a socket its peer reset (the kernel unhashes it), the very case counted here.
#[cfg(all(target_os = "linux", any(target_env = "gnu", target_env = "musl")))]
mod tcp_info {
    use std::mem::{offset_of, size_of};
    use std::os::fd::{AsFd, AsRawFd};

    use libc::tcp_info;

    use super::TcpInfo;

    /// `TCP_CLOSE` (include/net/tcp_states.h): reset, or closed.
    const TCP_CLOSE: u8 = 7;

    /// `socket`'s `TCP_INFO`; `None` if the call fails or the kernel's `tcp_info` stops short
    /// of the fields read (before Linux 4.6).
    pub(super) fn read(socket: &impl AsFd) -> Option<TcpInfo> {
        let mut bytes = [0u8; size_of::<tcp_info>()];
        let mut len = bytes.len() as libc::socklen_t;
        // SAFETY: `bytes` is writable for `len` bytes, and the kernel writes at most `len` bytes
        // there and the length it wrote to `len`; both live across the call. Any bytes are a
        // valid `[u8]`, and the fields are read from them below as plain integers.
        #[allow(unsafe_code)]
        let status = unsafe {
            libc::getsockopt(
                socket.as_fd().as_raw_fd(),
                libc::SOL_TCP,
                libc::TCP_INFO,
                bytes.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let written = &bytes[..usize::try_from(len).ok()?.min(bytes.len())];
        if status != 0 || written.len() < offset_of!(tcp_info, tcpi_notsent_bytes) + 4 {
            return None;
        }
        let at = |offset: usize, n: usize| &written[offset..offset + n];
        Some(TcpInfo {
            up: written[offset_of!(tcp_info, tcpi_state)] != TCP_CLOSE,
            bytes_acked: u64::from_ne_bytes(
                at(offset_of!(tcp_info, tcpi_bytes_acked), 8)
                    .try_into()
                    .ok()?,
            ),
            in_flight: u32::from_ne_bytes(
                at(offset_of!(tcp_info, tcpi_unacked), 4).try_into().ok()?,
            ),
            unsent: u32::from_ne_bytes(
                at(offset_of!(tcp_info, tcpi_notsent_bytes), 4)
                    .try_into()
                    .ok()?,
            ),
        })
    }
}

/// See the Linux version: never known here.
#[cfg(not(all(target_os = "linux", any(target_env = "gnu", target_env = "musl"))))]
mod tcp_info {
    pub(super) fn read(_socket: &socket2::Socket) -> Option<super::TcpInfo> {
        None
    }
}

#[cfg(all(test, feature = "server", target_os = "linux"))]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::time::Duration;

    use super::{acknowledged, unsent_bytes, Acknowledged};

    /// A connection whose client read every byte and our FIN, then closed: its FIN acknowledges
    /// ours, and the socket ends in `TCP_CLOSE` (the kernel's time-wait takes it over) as after
    /// a reset. Everything was acknowledged: `All`. It was `Reset`, and the server read
    /// `TCP_INFO` a second time to count nothing undelivered, on every connection it closed
    /// (churn: a connection per request).
    #[test]
    fn a_client_that_read_everything_and_closed_acknowledged_it_all() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        for socket in [&client, &server] {
            socket
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
        }
        server.write_all(b"hello").unwrap();
        server.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap(); // through our FIN
        assert_eq!(got, b"hello");
        drop(client); // its FIN, after ours
        assert_eq!(server.read(&mut [0; 1]).unwrap(), 0); // its FIN is in
        assert_eq!(acknowledged(&server, 5), Acknowledged::All);
        assert_eq!(unsent_bytes(&server), Some(0));
    }
}
