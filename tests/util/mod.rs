//! Shared helpers for the end-to-end tests: a tiny blocking HTTP/1.1 client over real sockets
//! on 127.0.0.1, and bounded waits. Every read has a timeout, so a broken server fails a test
//! instead of hanging it.
#![allow(dead_code, unreachable_pub)] // each test file uses a different part

#[cfg(feature = "hyper")]
pub mod bodies;
pub mod bounded;
pub mod heads;
#[cfg(feature = "hyper")]
pub mod hyper_thread;
pub mod reads;
#[cfg(feature = "server")]
pub mod serve;
#[cfg(feature = "server")]
pub mod small_window;
#[cfg(all(target_os = "linux", any(feature = "server", feature = "hyper")))]
pub mod sock_diag;
pub mod strict;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long any single read waits before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One response as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }
}

/// A client connection; answers are read in order.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// A client over an existing stream, reads timing out after `timeout`.
    pub fn from_stream(stream: TcpStream, timeout: Duration) -> Client {
        stream.set_read_timeout(Some(timeout)).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// Reads one response; `Err` if the connection closed or reset first.
    pub fn answer(&mut self) -> io::Result<Answer> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            headers.push((name.to_string(), value.trim().to_string()));
        }
        let mut answer = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        let length: usize = answer
            .header("content-length")
            .map_or(0, |v| v.parse().unwrap_or(0));
        answer.body = vec![0; length];
        self.reader.read_exact(&mut answer.body)?;
        Ok(answer)
    }

    /// Sends `request` and reads its answer.
    pub fn request(&mut self, request: &str) -> Answer {
        self.send(request.as_bytes());
        self.answer().expect("an answer")
    }

    /// Sends `request` and reads its answer; `Err` if the connection was closed or reset
    /// before or instead of the answer.
    pub fn try_request(&mut self, request: &str) -> io::Result<Answer> {
        self.reader.get_mut().write_all(request.as_bytes())?;
        self.answer()
    }

    /// Whether the server has closed the connection (EOF or reset), waiting up to the read
    /// timeout for it.
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }
}

/// `GET path` on a fresh connection with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> Answer {
    Client::connect(addr).request(&format!(
        "GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n"
    ))
}

/// Sends all of `bytes` on a fresh connection to `addr`, then the client's FIN, from a thread
/// of its own while this one reads (the server may answer before it has read them all, and a
/// window full of answers must not stop the sending), and returns all that came up to the
/// server's close, which must be clean (no reset, within [`READ_TIMEOUT`] of each read).
pub fn send_all_then_fin(addr: SocketAddr, bytes: Vec<u8>) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(&bytes).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut sent = Vec::new();
    stream.read_to_end(&mut sent).expect("a clean close");
    sender.join().unwrap();
    sent
}

/// `GET path` on a fresh connection with `Connection: close`, errors as values: (status,
/// whether the answer was complete and carried `connection: close`). A reset or an early close
/// is an `Err`: the connection was lost.
pub fn try_get(addr: SocketAddr, path: &str) -> io::Result<(u16, bool)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, format!("{text:?}")))?;
    let complete = text.contains("\r\n\r\n");
    Ok((status, complete && text.contains("connection: close")))
}

/// The answer that starts at `at` in `data` (what a client read: answers back to back): its
/// head, lowercased, and where its body lies by its `content-length` (0 without one). `None`
/// if the head is not whole; the body may end past `data` (an answer cut short).
pub fn answer_at(data: &[u8], at: usize) -> Option<(String, std::ops::Range<usize>)> {
    let end = data[at..].windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&data[at..at + end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let body_at = at + end + 4;
    Some((head, body_at..body_at + length))
}

/// Polls `done` every 5 ms until it holds, for at most [`WAIT_BOUND`]; panics naming `what`
/// otherwise. Waits on events, not on speed: the bound only keeps a broken test from hanging.
pub fn wait_until(what: &str, done: impl FnMut() -> bool) {
    wait_until_within(what, WAIT_BOUND, done);
}

/// How long [`wait_until`] waits before it gives up: long enough for a loaded 2-core CI machine
/// (load average 14 to 20, where a process may wait seconds for its turn), which a passing test
/// never waits out.
pub const WAIT_BOUND: Duration = Duration::from_secs(60);

/// [`wait_until`] with its own bound, for an event that takes long on a loaded machine.
pub fn wait_until_within(what: &str, bound: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < until, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A guarded server with the demo routes and `limits`, on its own thread at 127.0.0.1:0.
#[cfg(feature = "server")]
pub fn demo_server(limits: reqguard::http::Limits) -> reqguard::http::Running {
    reqguard::http::ServerBuilder::new()
        .limits(limits)
        .spawn(
            || reqguard::http::Guarded::embedded("server", reqguard::Config::default()),
            reqguard::http::demo_routes,
        )
        .expect("spawn the server")
}

/// Runs `f` with a router of the demo routes (`reqguard::http::demo_routes`), over a route
/// store that lives as long as the call: the setup of a `Server::bind` or a `Session` that
/// serves what `reqguard-demo` serves.
#[cfg(feature = "server")]
pub fn with_demo_router<T>(f: impl FnOnce(&reqguard::http::Router<'_>) -> T) -> T {
    let routes = reqguard::http::Routes::new();
    let mut router = reqguard::http::Router::new(&routes);
    reqguard::http::demo_routes(&mut router);
    f(&router)
}

/// `(state, send queue, receive queue)` of the IPv4 TCP socket from `local` to `remote` (ports),
/// as `/proc/net/tcp` tells them (`tx_queue`: written and not acknowledged; `rx_queue`:
/// received and not read; state `0A` is a listener, whose remote port is 0, and whose receive
/// queue is its accept queue). Asked of the kernel for that socket alone (netlink `sock_diag`,
/// [`sock_diag`]): reading `/proc/net/tcp` walks every socket of the machine, 0.2-0.3 s with
/// 16,000 of them at load 20, and a wait's polls let a server's timers run out (round 32).
/// Without the crate's `rustix` (no `server` nor `hyper` feature), `/proc/net/tcp` is read.
#[cfg(target_os = "linux")]
pub fn tcp_socket(local: u16, remote: u16) -> Option<(u8, u64, u64)> {
    #[cfg(any(feature = "server", feature = "hyper"))]
    {
        sock_diag::tcp_socket(local, remote).expect("netlink sock_diag")
    }
    #[cfg(not(any(feature = "server", feature = "hyper")))]
    {
        proc_net_tcp(|l, r| (l, r) == (local, remote))
            .into_iter()
            .next()
    }
}

/// Every IPv4 listener on port `local` (one per loop when `SO_REUSEPORT` spreads a port over
/// several): `(state, send queue, accept queue)` each, as [`tcp_socket`] gives them.
#[cfg(target_os = "linux")]
pub fn tcp_listeners(local: u16) -> Vec<(u8, u64, u64)> {
    #[cfg(any(feature = "server", feature = "hyper"))]
    {
        sock_diag::listeners(local).expect("netlink sock_diag")
    }
    #[cfg(not(any(feature = "server", feature = "hyper")))]
    {
        proc_net_tcp(|l, r| l == local && r == 0)
            .into_iter()
            .filter(|&(state, _, _)| state == 0x0A)
            .collect()
    }
}

/// The sockets of `/proc/net/tcp` whose (local, remote) ports `wanted` takes, in its order.
#[cfg(all(target_os = "linux", not(any(feature = "server", feature = "hyper"))))]
fn proc_net_tcp(wanted: impl Fn(u16, u16) -> bool) -> Vec<(u8, u64, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap(), 16).unwrap();
    let hex = |v: &str| u64::from_str_radix(v, 16).unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if !wanted(port(f[1]), port(f[2])) {
                return None;
            }
            let (tx, rx) = f[4].split_once(':').unwrap();
            Some((u8::from_str_radix(f[3], 16).unwrap(), hex(tx), hex(rx)))
        })
        .collect()
}

/// Waits until a server in another process has read all that `client` sent: the client's
/// bytes are acknowledged (nothing unsent) and the server's end of the connection holds nothing
/// unread ([`tcp_socket`]). Both stacks admit a whole request in the turn that reads it, and a
/// signal is handled at a later turn, so after this a request sent whole is admitted; no other
/// event says so from outside the process (a sleep said it before, and assumed a quick machine).
/// Without `/proc/net/tcp` (not Linux), a 300 ms pause stands in.
pub fn wait_read_by_server(client: &TcpStream) {
    let client_port = client.local_addr().unwrap().port();
    let server_port = client.peer_addr().unwrap().port();
    #[cfg(target_os = "linux")]
    wait_until("the server to read what the client sent", || {
        tcp_socket(client_port, server_port).is_some_and(|(_, unsent, _)| unsent == 0)
            && tcp_socket(server_port, client_port).is_some_and(|(_, _, unread)| unread == 0)
    });
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (client_port, server_port);
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until all that `client` sent is in the server's socket: acknowledged by its kernel,
/// nothing left unsent ([`tcp_socket`]), whether or not the server has read it (one writing an
/// answer its client does not read may read nothing more until it has written it). Without
/// `/proc/net/tcp` (not Linux), a 300 ms pause stands in.
pub fn wait_sent(client: &TcpStream) {
    let client_port = client.local_addr().unwrap().port();
    let server_port = client.peer_addr().unwrap().port();
    #[cfg(target_os = "linux")]
    wait_until("the server's socket to take what the client sent", || {
        tcp_socket(client_port, server_port).is_some_and(|(_, unsent, _)| unsent == 0)
    });
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (client_port, server_port);
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until a server (in this process or another) has accepted every connection made to
/// `client`'s server port so far: the accept queue of each listener on the port is empty
/// ([`tcp_listeners`]; a loop group with `SO_REUSEPORT` has one per loop, and the kernel hashed
/// `client` to any of them). `client`'s connection is then the server's. Without
/// `/proc/net/tcp` (not Linux), a 300 ms pause stands in.
pub fn wait_accepted(client: &TcpStream) {
    let server_port = client.peer_addr().unwrap().port();
    #[cfg(target_os = "linux")]
    wait_until("the server to accept the connection", || {
        let listeners = tcp_listeners(server_port);
        !listeners.is_empty() && listeners.iter().all(|&(_, _, queued)| queued == 0)
    });
    #[cfg(not(target_os = "linux"))]
    {
        let _ = server_port;
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Whether the server has neither closed `stream` nor sent anything on it so far: a read now
/// would block. Looks without waiting, and leaves the stream blocking.
pub fn open_and_silent(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let silent = matches!(stream.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    silent
}

/// The heads past `max_head` (8 KiB) the mio loops refuse at once, what they answer, and to
/// which method: `431` when the request line has ended, `414` when the target has not, `501`
/// when the method has not (to a `HEAD`, the explanation's length alone).
pub fn heads_past_max_head() -> [(String, &'static str, u16, &'static str); 4] {
    let long = "a".repeat(9000);
    [
        (
            format!("GET / HTTP/1.1\r\nhost: x\r\nx-long: {long}"),
            "GET",
            431,
            "Request Header Fields Too Large",
        ),
        (format!("GET /{long}"), "GET", 414, "URI Too Long"),
        (long.to_uppercase(), "GET", 501, "Not Implemented"),
        (
            format!("HEAD / HTTP/1.1\r\nhost: x\r\nx-long: {long}"),
            "HEAD",
            431,
            "",
        ),
    ]
}

/// The client of `stream` goes away: both sides shut, what was left read, the socket closed.
pub fn hang_up(mut stream: TcpStream) {
    stream.shutdown(std::net::Shutdown::Both).unwrap();
    let _ = stream.read_to_end(&mut Vec::new());
}

/// Sends on its drop: tells a test that the crate dropped what holds it (a handler's future).
pub struct Gone(pub std::sync::mpsc::Sender<()>);

impl Drop for Gone {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Reads from `stream` until `buf` holds `want` bytes past the end of the first head in
/// it (or the stream ends: what came).
pub fn read_past_head(stream: &mut TcpStream, buf: &mut Vec<u8>, want: usize) {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if buf.len() >= end + 4 + want {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The `content-length` of the answer at the start of `buf` (its first such line), if any.
pub fn content_length(buf: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(buf).lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length: ")
            .map(|n| n.trim().parse::<usize>().unwrap())
    })
}

/// Reads from `stream` until `buf` holds the answer at its start whole: its head and a body of
/// its `content-length` (none without one), or the stream ended. Returns where that answer
/// ends in `buf`, `None` if no head came.
pub fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    read_past_head(stream, buf, 0);
    let length = content_length(buf).unwrap_or(0);
    read_past_head(stream, buf, length);
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some(head + 4 + length)
}

/// One whole answer read from a fresh `stream` ([`read_answer`]), with whatever came after it
/// in the same reads, as text.
pub fn answer_text(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    read_answer(stream, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
