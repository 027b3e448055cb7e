//! A client whose socket takes few bytes in flight, and the echo requests that fill it: for
//! probes of what a server does with answers a client does not read yet (tests/probe_client/v27.rs,
//! tests/probe_client/v30.rs).

use std::net::{SocketAddr, TcpStream};

use socket2::{Domain, Protocol, Socket, Type};

/// The segment size and receive buffer of [`small_window_client`]: with them the kernel holds a
/// few tens of KiB of one connection's answers (the client's window plus the server's send
/// buffer, which Linux sizes from the segment size), the same number on every connection.
pub const SMALL_MSS: u32 = 536;
pub const SMALL_RCVBUF: usize = 2048;

/// A connection that reads nothing and takes few bytes in flight (its segment size and receive
/// buffer set before it connects), so that what the server writes fills the socket at a size a
/// probe can measure.
pub fn small_window_client(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_tcp_mss(SMALL_MSS).unwrap();
    socket.set_recv_buffer_size(SMALL_RCVBUF).unwrap();
    socket.connect(&addr.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(super::READ_TIMEOUT)).unwrap();
    stream
}

/// A `POST /echo` of `body_len` bytes.
pub fn echo(body_len: usize) -> Vec<u8> {
    let mut request =
        format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {body_len}\r\n\r\n")
            .into_bytes();
    request.resize(request.len() + body_len, b'e');
    request
}
