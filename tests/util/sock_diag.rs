//! TCP sockets of 127.0.0.1 as the kernel tells them through netlink's `sock_diag`
//! (`NETLINK_SOCK_DIAG`, `inet_diag_req_v2`): what `/proc/net/tcp` says, for one socket at a
//! time. `/proc/net/tcp` lists every socket of the machine, and a test polling it read them all:
//! with 16,000 sockets (TIME_WAIT left by load runs) each read took 0.2-0.3 s at load 20, and
//! a wait polled it twice per turn, so a server's own timers ran out while a test waited for an
//! event (round 32, ci32's report). A lookup here costs the same at any count: an exact lookup
//! by address for a connection, a dump of the listening table only for a listener.

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::netlink::{SocketAddrNetlink, SOCK_DIAG};
use rustix::net::{recv, sendto, socket, AddressFamily, RecvFlags, SendFlags, SocketType};

/// `SOCK_DIAG_BY_FAMILY`: the request and each answer's message type.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const AF_INET: u8 = 2;
const IPPROTO_TCP: u8 = 6;
/// `TCP_LISTEN`: a listener's state (`0A` in `/proc/net/tcp`).
pub const LISTEN: u8 = 10;
/// `nlmsghdr`'s length.
const HEADER: usize = 16;

/// One socket: (state, send queue, receive queue), as `/proc/net/tcp` gives them (for a
/// listener, the receive queue is its accept queue's length).
pub type Queues = (u8, u64, u64);

/// A `SOCK_DIAG_BY_FAMILY` request for IPv4 TCP sockets of 127.0.0.1: the socket from
/// `local` to `remote` (an exact lookup), or with `dump_states`, every socket in those states.
fn request(local: u16, remote: u16, dump_states: Option<u32>) -> Vec<u8> {
    let loopback = [127, 0, 0, 1];
    let mut body = vec![AF_INET, IPPROTO_TCP, 0, 0];
    body.extend_from_slice(&dump_states.unwrap_or(!0).to_ne_bytes());
    // inet_diag_sockid: ports and addresses in network order, then the interface and the
    // cookie (INET_DIAG_NOCOOKIE: any socket with that address).
    body.extend_from_slice(&local.to_be_bytes());
    body.extend_from_slice(&remote.to_be_bytes());
    for _ in 0..2 {
        body.extend_from_slice(&loopback);
        body.extend_from_slice(&[0; 12]);
    }
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend_from_slice(&[0xff; 8]);
    let flags = NLM_F_REQUEST | if dump_states.is_some() { NLM_F_DUMP } else { 0 };
    let mut message = Vec::with_capacity(HEADER + body.len());
    message.extend_from_slice(&((HEADER + body.len()) as u32).to_ne_bytes());
    message.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    message.extend_from_slice(&flags.to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    message.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    message.extend_from_slice(&body);
    message
}

/// Sends `message` and returns each `inet_diag_msg` answered, as (local port, remote port,
/// queues), until the answer ends (one message for a lookup, `NLMSG_DONE` after a dump). A
/// lookup that finds nothing is an empty list (`ENOENT`).
fn ask(message: &[u8], dump: bool) -> io::Result<Vec<(u16, u16, Queues)>> {
    let diag: OwnedFd = socket(AddressFamily::NETLINK, SocketType::DGRAM, Some(SOCK_DIAG))?;
    sendto(
        &diag,
        message,
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 0),
    )?;
    let mut found = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (len, _) = recv(&diag, &mut buf[..], RecvFlags::empty())?;
        let mut at = 0;
        while at + HEADER <= len {
            let u32_at = |i: usize| u32::from_ne_bytes(buf[i..i + 4].try_into().unwrap());
            let size = u32_at(at) as usize;
            let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().unwrap());
            if size < HEADER || at + size > len {
                return Err(io::Error::other("sock_diag: a message cut short"));
            }
            let payload = at + HEADER;
            match kind {
                NLMSG_DONE => return Ok(found),
                NLMSG_ERROR => {
                    let errno = -(u32_at(payload) as i32);
                    return match errno {
                        0 | 2 => Ok(found), // an acknowledgement, or ENOENT: no such socket
                        _ => Err(io::Error::from_raw_os_error(errno)),
                    };
                }
                SOCK_DIAG_BY_FAMILY if size >= HEADER + 72 => {
                    // inet_diag_msg: family, state, timer, retrans, the sockid (48 bytes:
                    // ports first), expires, rqueue, wqueue, uid, inode.
                    // A listener's wqueue is its backlog's bound: /proc/net/tcp says 0.
                    let port = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
                    let state = buf[payload + 1];
                    let unsent = if state == LISTEN {
                        0
                    } else {
                        u32_at(payload + 60)
                    };
                    let queues = (state, u64::from(unsent), u64::from(u32_at(payload + 56)));
                    found.push((port(payload + 4), port(payload + 6), queues));
                }
                _ => {}
            }
            at += (size + 3) & !3;
        }
        if !dump {
            return Ok(found);
        }
    }
}

/// The socket from `local` to `remote` (ports on 127.0.0.1), or with `remote` 0 a listener on
/// `local` (the first, if `SO_REUSEPORT` made several): `None` if there is none.
pub fn tcp_socket(local: u16, remote: u16) -> io::Result<Option<Queues>> {
    if remote == 0 {
        return Ok(listeners(local)?.into_iter().next());
    }
    // An exact lookup that finds no connection falls back to a listener on `local`: only a
    // socket with both ports is the one asked for.
    let found = ask(&request(local, remote, None), false)?;
    Ok(found
        .into_iter()
        .find(|&(l, r, _)| (l, r) == (local, remote))
        .map(|(_, _, queues)| queues))
}

/// Every listener on port `local`: one per loop with `SO_REUSEPORT`.
pub fn listeners(local: u16) -> io::Result<Vec<Queues>> {
    let found = ask(&request(0, 0, Some(1 << LISTEN)), true)?;
    Ok(found
        .into_iter()
        .filter(|&(l, _, _)| l == local)
        .map(|(_, _, queues)| queues)
        .collect())
}
