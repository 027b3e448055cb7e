//! The floor: the least a mio HTTP/1.1 server can do per request, to measure the reference
//! server against. It accepts, reads until `WouldBlock`, counts the requests in what it read
//! (each ends with an empty line; found with `memchr::memmem`), appends one fixed answer per
//! request, and writes until `WouldBlock`. No parsing, no routing, no accounting, no timers.
//!
//! Its answer is byte for byte as long as the reference server's `200 hello` (a fixed date of
//! the same length), so the same clients read both.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};

use memchr::memmem;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use super::client::{ThreadClock, IO_TIMEOUT};

/// The fixed answer, the shape of the reference server's answer to `GET /`.
pub const FLOOR_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
content-type: text/plain\r\ncontent-length: 5\r\n\r\nhello";

/// The closing floor's answer: the same with `connection: close`, so that clients reconnect
/// rather than take the close for an error (`wrk`, `h2load`).
const FLOOR_ANSWER_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
content-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello";

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// The floor server on its own thread, with its CPU clock.
pub struct Floor {
    pub addr: SocketAddr,
    pub clock: ThreadClock,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<io::Result<u64>>>,
}

impl Floor {
    /// Starts the floor on `127.0.0.1:0`.
    pub fn start() -> Floor {
        Floor::start_with(false)
    }

    /// Starts the floor on `127.0.0.1:0`; with `close`, every connection is closed once the
    /// answers to what it sent are written (the floor of a connection per request: `ab`
    /// without `-k`, `connection: close`), with no linger: the least a server does.
    #[allow(dead_code)] // Only `floor_server` closes.
    pub fn start_closing() -> Floor {
        Floor::start_with(true)
    }

    fn start_with(close: bool) -> Floor {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("bench-floor".into())
            .spawn(move || {
                let poll = Poll::new()?;
                let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap())?;
                poll.registry()
                    .register(&mut listener, LISTENER, Interest::READABLE)?;
                let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
                let _ = tx.send((listener.local_addr()?, waker, ThreadClock::current()));
                // Two loops, each compiled for its mode: the keep-alive floor's pass is the
                // code it was before the closing mode came (round 33: one loop that chose
                // the answer at run time cost the keep-alive floor 12 instructions a
                // request, 227.4 -> 239.9 at depth 16 on the official callgrind command).
                if close {
                    serve::<true>(poll, listener, &stopped)
                } else {
                    serve::<false>(poll, listener, &stopped)
                }
            })
            .expect("spawn the floor thread");
        let (addr, waker, clock) = rx.recv_timeout(IO_TIMEOUT).expect("the floor listens");
        Floor {
            addr,
            clock,
            stop,
            waker,
            thread: Some(thread),
        }
    }

    /// Stops the floor; the requests it answered.
    pub fn finish(mut self) -> u64 {
        self.stop_thread().expect("the floor loop did not fail")
    }

    fn stop_thread(&mut self) -> io::Result<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.waker.wake()?;
        match self.thread.take() {
            Some(thread) => thread.join().expect("the floor thread did not panic"),
            None => Ok(0),
        }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.stop_thread();
    }
}

struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    written: usize,
    /// The last 3 bytes read, so an empty line split across two reads is still found.
    tail: Vec<u8>,
    /// It has had an answer (the closing floor closes it once every answer is written).
    answered: bool,
}

fn serve<const CLOSE: bool>(
    mut poll: Poll,
    listener: TcpListener,
    stop: &AtomicBool,
) -> io::Result<u64> {
    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<Conn> = Slab::new();
    let mut buf = vec![0u8; 64 * 1024];
    let finder = memmem::Finder::new(b"\r\n\r\n");
    let mut answered = 0u64;
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => accept(&poll, &listener, &mut conns)?,
                WAKER if stop.load(Ordering::SeqCst) => return Ok(answered),
                WAKER => {}
                Token(key) => {
                    let Some(conn) = conns.get_mut(key) else {
                        continue;
                    };
                    match exchange::<CLOSE>(conn, &mut buf, &finder) {
                        Ok(n) if !(CLOSE && conn.answered_all()) => answered += n,
                        result => {
                            answered += result.unwrap_or(0);
                            let mut conn = conns.remove(key);
                            let _ = poll.registry().deregister(&mut conn.stream);
                        }
                    }
                }
            }
        }
    }
}

fn accept(poll: &Poll, listener: &TcpListener, conns: &mut Slab<Conn>) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nodelay(true)?;
                let entry = conns.vacant_entry();
                poll.registry().register(
                    &mut stream,
                    Token(entry.key()),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                entry.insert(Conn {
                    stream,
                    out: Vec::with_capacity(4096),
                    written: 0,
                    tail: Vec::with_capacity(8),
                    answered: false,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

impl Conn {
    /// Something was answered and every answer is written.
    fn answered_all(&self) -> bool {
        self.answered && self.out.is_empty()
    }
}

/// Reads what there is, answers every request in it, writes what it can. `Err` when the
/// connection is done.
fn exchange<const CLOSE: bool>(
    conn: &mut Conn,
    buf: &mut [u8],
    finder: &memmem::Finder<'_>,
) -> io::Result<u64> {
    let answer = if CLOSE {
        FLOOR_ANSWER_CLOSE
    } else {
        FLOOR_ANSWER
    };
    let mut answered = 0;
    loop {
        let n = match conn.stream.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // An empty line that straddles two reads: look at the tail and this read's start.
        let mut joint = [0u8; 6];
        let head = n.min(3);
        joint[..conn.tail.len()].copy_from_slice(&conn.tail);
        joint[conn.tail.len()..conn.tail.len() + head].copy_from_slice(&buf[..head]);
        let requests = finder.find_iter(&joint[..conn.tail.len() + head]).count()
            + finder.find_iter(&buf[..n]).count();
        for _ in 0..requests {
            conn.out.extend_from_slice(answer);
        }
        answered += requests as u64;
        if CLOSE {
            conn.answered |= requests > 0;
        }
        // Keep the last 3 bytes of everything read so far.
        conn.tail.extend_from_slice(&buf[n.saturating_sub(3)..n]);
        let excess = conn.tail.len().saturating_sub(3);
        conn.tail.drain(..excess);
    }
    while conn.written < conn.out.len() {
        match conn.stream.write(&conn.out[conn.written..]) {
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    if conn.written == conn.out.len() {
        conn.out.clear();
        conn.written = 0;
    }
    Ok(answered)
}
