//! The in-process server and its loopback clients, for the server benches.
//!
//! The server runs on a thread of its own (`ServerBuilder::serve` on a thread we spawn, so we
//! know its Linux thread id and can read its CPU time from `/proc/<pid>/task/<tid>/schedstat`,
//! std only). Clients are blocking `TcpStream`s with timeouts: every wait is bounded.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use reqguard::http::{
    demo_routes, Accounting, Limits, Router, Routes, ServerBuilder, ServerReport, StopHandle,
};

/// One keep-alive `GET /` (answered `200 hello`).
pub const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

/// The same `GET /` with the fields a browser or a client library adds (5 fields, 143 bytes):
/// what the clients send instead when `REQGUARD_BENCH_FIELDS=1`, to measure the cost per
/// field that the bare `GET` leaves out.
pub const GET_FIELDS: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench/1.0\r\n\
    Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nX-Request-Id: 0123456789abcdef\r\n\r\n";

/// The request the clients send: [`GET`], or [`GET_FIELDS`] with `REQGUARD_BENCH_FIELDS=1`.
pub fn request() -> &'static [u8] {
    match std::env::var("REQGUARD_BENCH_FIELDS").as_deref() {
        Ok("1") => GET_FIELDS,
        _ => GET,
    }
}

/// Every client read and write gives up after this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The CPU clock of one thread, read from `/proc` (std only): total on-CPU time from
/// `schedstat` (nanoseconds), user time from `stat` (clock ticks of 10 ms, `USER_HZ` = 100).
#[derive(Clone, Debug)]
pub struct ThreadClock {
    /// `/proc/PID/task/TID`, when `/proc` can say.
    dir: Option<String>,
}

impl ThreadClock {
    /// The calling thread's clock (readable from any thread).
    pub fn current() -> ThreadClock {
        ThreadClock {
            dir: std::fs::read_link("/proc/thread-self")
                .ok()
                .map(|p| format!("/proc/{}", p.display())),
        }
    }

    /// On-CPU time so far, user and system, in nanoseconds (0 if `/proc` cannot say).
    pub fn cpu_ns(&self) -> u64 {
        self.read("schedstat")
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// User-mode CPU time so far, in nanoseconds, at 10 ms resolution (0 if unknown).
    pub fn user_ns(&self) -> u64 {
        // Field 14 of `stat` is utime; the command name (field 2) may hold spaces, so count
        // from the closing parenthesis.
        self.read("stat")
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 2..];
                rest.split_whitespace().nth(11)?.parse::<u64>().ok()
            })
            .map_or(0, |ticks| ticks * 10_000_000)
    }

    /// The thread's Linux id (`None` if `/proc` could not say).
    pub fn tid(&self) -> Option<u32> {
        self.dir.as_deref()?.rsplit('/').next()?.parse().ok()
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(format!("{}/{file}", self.dir.as_deref()?)).ok()
    }
}

/// A server on its own thread, with its CPU clock.
pub struct Srv {
    pub addr: SocketAddr,
    pub stop: StopHandle,
    pub clock: ThreadClock,
    thread: Option<JoinHandle<io::Result<ServerReport>>>,
}

impl Srv {
    /// Starts a server on `127.0.0.1:0` with the demo routes and `accounting()`.
    pub fn start<A: Accounting>(
        accounting: impl FnOnce() -> A + Send + 'static,
        limits: Limits,
    ) -> Srv {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                let clock = ThreadClock::current();
                let store = Routes::new();
                let mut router = Router::new(&store);
                demo_routes(&mut router);
                ServerBuilder::new()
                    .limits(limits)
                    .serve(&router, accounting(), |addr, stop| {
                        let _ = tx.send((addr, stop, clock));
                    })
            })
            .expect("spawn the server thread");
        let (addr, stop, clock) = rx
            .recv_timeout(IO_TIMEOUT)
            .expect("the server listens within the timeout");
        Srv {
            addr,
            stop,
            clock,
            thread: Some(thread),
        }
    }

    /// The server thread's CPU time so far, in nanoseconds (0 if `/proc` cannot say).
    pub fn cpu_ns(&self) -> u64 {
        self.clock.cpu_ns()
    }

    /// Stops the server gracefully and returns its report.
    pub fn finish(mut self) -> ServerReport {
        self.stop.stop();
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("the server thread did not panic")
            .expect("the server loop did not fail")
    }

    /// Waits for a server someone else stopped.
    pub fn join(mut self) -> ServerReport {
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("the server thread did not panic")
            .expect("the server loop did not fail")
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.stop();
            let _ = thread.join();
        }
    }
}

/// Limits for the benches: room for every connection we open, and idle connections kept (a
/// bench's connections wait while the other server is measured), the rest default.
pub fn bench_limits() -> Limits {
    Limits::default()
        .with_max_connections(20_000)
        .with_idle_timeout(Duration::from_secs(600))
}

/// Opens `n` keep-alive connections with timeouts and `TCP_NODELAY`.
pub fn connect(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
            s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
            s
        })
        .collect()
}

/// The length of the answer to [`request`], read off one real exchange (headers end, then
/// `Content-Length`); the date is an IMF-fixdate, always 29 bytes, so every answer has this
/// length.
pub fn answer_len(stream: &mut TcpStream) -> usize {
    stream.write_all(request()).expect("write");
    let mut buf = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read the head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200"),
        "unexpected answer: {head}"
    );
    let body: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a content-length");
    let mut rest = vec![0u8; body];
    stream.read_exact(&mut rest).expect("read the body");
    buf.len() + body
}

/// A client's buffers for `depth` pipelined requests: allocated once, reused every round.
pub struct Pipeline {
    requests: Vec<u8>,
    answers: Vec<u8>,
}

impl Pipeline {
    pub fn new(depth: usize, answer_len: usize) -> Self {
        Pipeline {
            requests: request().repeat(depth),
            answers: vec![0u8; answer_len * depth],
        }
    }

    /// Sends `depth` requests on every connection, then reads every answer.
    pub fn round(&mut self, streams: &mut [TcpStream]) -> io::Result<()> {
        for s in streams.iter_mut() {
            s.write_all(&self.requests)?;
        }
        for s in streams.iter_mut() {
            s.read_exact(&mut self.answers)?;
            if !self.answers.starts_with(b"HTTP/1.1 200") {
                return Err(io::Error::other("not a 200"));
            }
        }
        Ok(())
    }
}

/// The most connections this process can open with both ends in it: half the open-file
/// limit, less some room (`ulimit -n` raises it).
pub fn fd_budget() -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
        })
        .unwrap_or(1024);
    limit.saturating_sub(256) / 2
}
