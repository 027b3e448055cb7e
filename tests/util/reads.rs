//! Waits on what a server in another process has read of what its clients sent, beyond
//! [`super::wait_read_by_server`]: all but a known tail (a request whose next part the server
//! may hold back), and many connections at once.

use std::net::TcpStream;
#[cfg(not(target_os = "linux"))]
use std::time::Duration;

/// The (client, server) ports of `client`'s connection.
fn ports(client: &TcpStream) -> (u16, u16) {
    (
        client.local_addr().unwrap().port(),
        client.peer_addr().unwrap().port(),
    )
}

/// Whether the server has read all that the client on `ports` sent but at most the last
/// `unread` bytes: the client's bytes are acknowledged (nothing unsent) and the server's end
/// holds at most `unread` bytes unread (reads go in order, so everything before them was read).
#[cfg(target_os = "linux")]
fn read_but((client, server): (u16, u16), unread: u64) -> bool {
    super::tcp_socket(client, server).is_some_and(|(_, unsent, _)| unsent == 0)
        && super::tcp_socket(server, client).is_some_and(|(_, _, left)| left <= unread)
}

/// Waits until a server in another process has read all that `client` sent but at most its
/// last `unread` bytes, for a request the server reads whole and may then stop reading behind
/// (an echo whose answer fills the socket, the next request's bytes left unread): the request
/// before that tail was read, and so admitted (both stacks admit a whole request in the turn
/// that reads it). With `unread` 0 it is [`super::wait_read_by_server`]. Without
/// `/proc/net/tcp` (not Linux), a 300 ms pause stands in.
pub fn wait_read_but(client: &TcpStream, unread: u64) {
    let ports = ports(client);
    #[cfg(target_os = "linux")]
    super::wait_until("the server to read what the client sent", || {
        read_but(ports, unread)
    });
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (ports, unread);
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// [`super::wait_read_by_server`] for each of `clients`: waits until the server has read all
/// that every one of them sent, one connection at a time (one done stays done: nothing more
/// is sent meanwhile).
pub fn wait_each_read(clients: &[&TcpStream]) {
    for client in clients {
        wait_read_but(client, 0);
    }
}
