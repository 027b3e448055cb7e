//! Framing and robustness over real sockets (issue 10, rows 1, 2, 3, 10, 11, 12 and the
//! whole-request timeout), every answer read by the strict client of `tests/util/strict.rs`.
#![cfg(feature = "server")]

mod util;

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use reqguard::http::{
    demo_routes, ChunkedError, Guarded, Limits, Router, Routes, ServerBuilder, ServerReport,
    Session, StopHandle,
};
use reqguard::Config;
use util::strict::{self, Strict};
use util::READ_TIMEOUT;

/// A guarded demo server on a thread of our own, so its CPU time can be read.
struct Srv {
    addr: SocketAddr,
    stop: StopHandle,
    tid: String,
    thread: JoinHandle<io::Result<ServerReport>>,
}

impl Srv {
    fn start(limits: Limits) -> Srv {
        let (ready, ready_rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            // "/proc/thread-self" links to "PID/task/TID".
            let link = std::fs::read_link("/proc/thread-self").expect("procfs");
            let tid = link.file_name().unwrap().to_string_lossy().into_owned();
            let routes = Routes::new();
            let mut router = Router::new(&routes);
            demo_routes(&mut router);
            let accounting = Guarded::embedded("server", Config::default());
            ServerBuilder::new()
                .limits(limits)
                .serve(&router, accounting, |addr, stop| {
                    ready.send((addr, stop, tid)).unwrap();
                })
        });
        let (addr, stop, tid) = ready_rx.recv().expect("the server started");
        Srv {
            addr,
            stop,
            tid,
            thread,
        }
    }

    /// CPU time (user + system) of the server thread so far, in clock ticks (1/100 s).
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{}/stat", self.tid)).unwrap();
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the `comm` field.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    fn connect(&self) -> BufReader<TcpStream> {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        BufReader::new(stream)
    }

    fn finish(self) -> ServerReport {
        self.stop.stop();
        let report = self
            .thread
            .join()
            .expect("server thread")
            .expect("server loop");
        assert_eq!(report.leaked, 0, "{}", report.leaks);
        report
    }
}

fn send(reader: &mut BufReader<TcpStream>, bytes: &[u8]) {
    reader.get_mut().write_all(bytes).expect("send");
}

fn answer(reader: &mut BufReader<TcpStream>) -> Strict {
    strict::read(reader).expect("a well-formed answer")
}

/// Expects `status` with `connection: close`, then a clean end of stream.
fn closed_with(reader: &mut BufReader<TcpStream>, status: u16) {
    let a = answer(reader);
    assert_eq!(a.status, status, "{a:?}");
    assert!(a.closes(), "{a:?}");
    strict::expect_clean_eof(reader).expect("FIN after the close answer");
}

fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut wire = Vec::with_capacity(body.len() * 2);
    for chunk in body.chunks(size) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

const ECHO_CHUNKED: &[u8] = b"POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n";

fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Row 1: a client that pipelines forever and never reads. The server stops reading once its
/// unsent answers pass `max_output`, so the sender blocks, and the server's buffers for the
/// connection stay bounded (docs/server.md, "Memory per connection"): measured 256 to 384 KiB
/// by capacity (vectors grow by doubling, so where a run pauses decides the step it reaches:
/// 512 KiB was once exceeded under full-suite load), allowed 1 MiB here. A server that kept
/// reading would hold most of the up to 32 MiB the client sends.
#[test]
fn a_never_reading_pipelining_client_cannot_grow_the_servers_buffers() {
    let echo = {
        let mut r = b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 1024\r\n\r\n".to_vec();
        r.extend(body_of(1024));
        r
    };
    for request in [b"GET / HTTP/1.1\r\nhost: t\r\n\r\n".to_vec(), echo] {
        // A long idle timeout: the client reads nothing for a few seconds on purpose.
        let srv = Srv::start(Limits::default().with_idle_timeout(Duration::from_secs(60)));
        let mut reader = srv.connect();
        let mut writer = reader.get_ref().try_clone().unwrap();
        let sent = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let batch = request.repeat(64);
        let flood = {
            let (sent, done) = (Arc::clone(&sent), Arc::clone(&done));
            thread::spawn(move || {
                // At most 32 MiB: far more than the kernel's socket buffers hold.
                while !done.load(Ordering::Acquire) && sent.load(Ordering::Acquire) < 32 << 20 {
                    writer.write_all(&batch).expect("send");
                    sent.fetch_add(batch.len(), Ordering::AcqRel);
                }
            })
        };
        // The sender must block: the server stopped reading.
        let started = Instant::now();
        loop {
            let before = sent.load(Ordering::Acquire);
            thread::sleep(Duration::from_millis(300));
            let now = sent.load(Ordering::Acquire);
            if now == before && !flood.is_finished() {
                break;
            }
            assert!(
                now < 32 << 20 && started.elapsed() < Duration::from_secs(20),
                "the server kept reading a client that reads nothing ({now} bytes)"
            );
        }
        done.store(true, Ordering::Release);
        // Now read: the server resumes, and every request gets its answer, in order.
        let mut answered = 0;
        loop {
            let finished = flood.is_finished();
            let total = sent.load(Ordering::Acquire) / request.len();
            if answered < total {
                let a = answer(&mut reader);
                assert_eq!(a.status, 200, "{a:?}");
                answered += 1;
            } else if finished {
                break;
            } else {
                thread::sleep(Duration::from_millis(1));
            }
        }
        flood.join().unwrap();
        let report = srv.finish();
        assert_eq!(report.stats.served as usize, answered);
        let held = report.stats.buffered_high_water;
        assert!(held > 0 && held <= 1 << 20, "buffered {held} bytes");
        eprintln!(
            "never-reading client: {} bytes sent, the server held at most {held} bytes",
            sent.load(Ordering::Acquire)
        );
    }
}

/// Row 2: a 176 KiB body in 1-byte chunks, sent in 2,000 small writes that the server reads
/// one by one, is decoded once: the server thread's CPU time stays far from the seconds that
/// re-decoding the body on every read took, and another client is answered meanwhile.
/// Large bodies over a real socket, sent in pieces split at arbitrary points: each echo is
/// byte-exact, every body after what came with its head was read from the socket straight into
/// its request's input (no copy from the loop's read buffer), and every answer body longer than
/// `max_output` after the first was lent to the output and written after its head, not copied
/// there (the first is copied: the output's buffer grows to its size, and that buffer becomes
/// the handler's for the next); a small request after them is served as ever. The connection
/// held the largest request and its answer by capacity, and little more (the input grows no
/// further than a body needs).
#[test]
fn large_bodies_are_read_in_place_and_their_echo_lent_whatever_the_splits() {
    let srv = Srv::start(Limits::default());
    let mut reader = srv.connect();
    let mut writer = reader.get_ref().try_clone().unwrap();
    let sizes = [1 << 20, 262_144, 100_000, 1_000_000];
    let bodies: Vec<Vec<u8>> = sizes.iter().map(|&n| body_of(n)).collect();
    let mut wire = Vec::new();
    for body in &bodies {
        let head = format!(
            "POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        wire.extend_from_slice(head.as_bytes());
        wire.extend_from_slice(body);
    }
    wire.extend_from_slice(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n");
    let sender = thread::spawn(move || {
        // Pieces of 1 byte to 160 KiB, with a pause now and then so reads end anywhere.
        let (mut at, mut seed) = (0, 7u64);
        while at < wire.len() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let len = 1 + (seed >> 33) as usize % (160 * 1024);
            let end = (at + len).min(wire.len());
            writer.write_all(&wire[at..end]).expect("send");
            at = end;
            if seed >> 60 == 0 {
                thread::sleep(Duration::from_millis(2));
            }
        }
    });
    for body in &bodies {
        let a = answer(&mut reader);
        assert_eq!(a.status, 200, "{a:?}");
        assert!(a.body == *body, "the echo of {} bytes differs", body.len());
    }
    assert_eq!(answer(&mut reader).body, b"hello");
    sender.join().unwrap();
    let report = srv.finish();
    let total: u64 = sizes.iter().map(|&n| n as u64).sum();
    let stats = report.stats;
    // At most what the first read of each request brought with its head went through the
    // loop's buffer: 128 KiB a request (its size since round 33).
    assert!(
        stats.body_bytes_read_in_place >= total - 4 * 128 * 1024,
        "{} of {total} body bytes read in place",
        stats.body_bytes_read_in_place
    );
    assert_eq!(
        stats.body_bytes_lent,
        total - sizes[0] as u64,
        "every echo after the first lent"
    );
    let held = stats.buffered_high_water;
    eprintln!("1 MiB echoes: the server held at most {held} bytes");
    assert!(held <= (2 << 20) + (256 << 10), "buffered {held} bytes");
}

#[test]
fn a_chunked_body_in_one_byte_chunks_costs_linear_time() {
    let srv = Srv::start(Limits::default());
    let body = body_of(176 * 1024);
    let wire = chunked(&body, 1);
    let mut client = srv.connect();
    let mut other = srv.connect();
    let before = srv.cpu_ticks();
    send(&mut client, ECHO_CHUNKED);
    let mut slowest = Duration::ZERO;
    for piece in wire.chunks(wire.len() / 2000 + 1) {
        send(&mut client, piece);
        // The piece was sent before this request: once it is answered, the loop has read the
        // piece on its own (one read per piece, as from a slow client).
        let asked = Instant::now();
        send(&mut other, b"GET / HTTP/1.1\r\nhost: t\r\n\r\n");
        assert_eq!(answer(&mut other).status, 200);
        slowest = slowest.max(asked.elapsed());
    }
    let a = answer(&mut client);
    let ticks = srv.cpu_ticks() - before;
    assert_eq!(a.status, 200);
    assert!(a.body == body, "the echo differs");
    // Debug build, loaded machine, 4,000 requests' worth of reads and writes: a second or so
    // at most (re-decoding took tens of seconds).
    // The other client was answered between every two pieces (above); how long it waited is
    // printed, not asserted: on a loaded machine that is the scheduler's figure.
    assert!(ticks <= 300, "the server thread used {ticks} ticks of CPU");
    eprintln!(
        "1-byte chunks, 176 KiB body in 2,000 reads: {} ms of server CPU, other client waited at most {slowest:?}",
        ticks * 10
    );
    srv.finish();
}

/// Row 3: the body limit is on the decoded body; framing is bounded on its own; extensions and
/// trailers are bounded and validated.
#[test]
fn chunked_limits_apply_to_the_decoded_body_and_framing_apart() {
    let srv = Srv::start(Limits::default());
    let max = Limits::default().max_body();
    // Exactly max_body in 64-byte chunks: 200, the body intact.
    let body = body_of(max);
    let mut client = srv.connect();
    send(&mut client, ECHO_CHUNKED);
    send(&mut client, &chunked(&body, 64));
    let a = answer(&mut client);
    assert_eq!(a.status, 200, "{:?}", a.reason);
    assert!(a.body == body && !a.closes());
    // Extensions and trailers that follow the grammar are fine.
    send(&mut client, ECHO_CHUNKED);
    send(
        &mut client,
        b"3;a=1;b=\"x y\" ; c\r\nabc\r\n0\r\nx-sum: 3\r\nx-empty:\r\n\r\n",
    );
    assert_eq!(answer(&mut client).body, b"abc");

    // One byte more: 413.
    let mut client = srv.connect();
    send(&mut client, ECHO_CHUNKED);
    send(&mut client, &chunked(&body_of(max + 1), 64));
    closed_with(&mut client, 413);

    let bad: [(&[u8], u16); 6] = [
        (b"0\r\nno-colon-here\r\n\r\n", 400),
        (b"0\r\nx: 1\r\n folded\r\n\r\n", 400),
        (b"3;a=\"open\r\nabc\r\n0\r\n\r\n", 400),
        (b"3\nabc\r\n0\r\n\r\n", 400),
        (b"FFFFFFFFFFFFFFFFFF\r\n", 413),
        (b"3;\x01\r\nabc\r\n0\r\n\r\n", 400),
    ];
    for (wire, status) in bad {
        let mut client = srv.connect();
        send(&mut client, ECHO_CHUNKED);
        send(&mut client, wire);
        closed_with(&mut client, status);
    }
    // Extensions past 16 KiB: 413; a trailer section past 8 KiB: 431.
    let mut client = srv.connect();
    send(&mut client, ECHO_CHUNKED);
    let ext = format!("1;e={}\r\na\r\n", "v".repeat(4096));
    send(&mut client, ext.repeat(5).as_bytes());
    closed_with(&mut client, ChunkedError::ExtensionsTooLarge.status());
    let mut client = srv.connect();
    send(&mut client, ECHO_CHUNKED);
    let trailer = format!("x-t: {}\r\n", "v".repeat(1000));
    send(
        &mut client,
        format!("0\r\n{}", trailer.repeat(9)).as_bytes(),
    );
    closed_with(&mut client, 431);
    let report = srv.finish();
    assert_eq!(report.stats.rejected, 9);
    assert_eq!(report.stats.served, 2);

    // Framing overhead has its own limit: a small body in tiny chunks.
    let srv = Srv::start(Limits::default().with_max_chunk_overhead(1000));
    let mut client = srv.connect();
    send(&mut client, ECHO_CHUNKED);
    send(&mut client, &chunked(&body_of(400), 1));
    closed_with(&mut client, 413);
    srv.finish();
}

/// The whole-request timeout covers the body too: a body that stops arriving gets `408`.
#[test]
fn a_body_too_slow_to_arrive_gets_408() {
    let srv = Srv::start(Limits::default().with_request_timeout(Duration::from_millis(300)));
    let mut client = srv.connect();
    send(
        &mut client,
        b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nab",
    );
    closed_with(&mut client, 408);
    let mut client = srv.connect();
    send(&mut client, ECHO_CHUNKED);
    send(&mut client, b"5\r\nab");
    closed_with(&mut client, 408);
    assert_eq!(srv.finish().stats.rejected, 2);
}

/// Row 10: a deferred answer and a computed answer behind it are both sent at stop, in order;
/// the last carries `connection: close`; `served` counts both.
#[test]
fn answers_computed_before_stop_are_all_sent_the_last_with_close() {
    let srv = Srv::start(Limits::default());
    let mut client = srv.connect();
    send(
        &mut client,
        b"GET /delay?ms=300 HTTP/1.1\r\nhost: t\r\n\r\n\
          POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\n\r\nping",
    );
    // Those bytes were sent before this probe connected: once it is answered, the loop has
    // read them too.
    let mut probe = srv.connect();
    send(
        &mut probe,
        b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    );
    closed_with(&mut probe, 200);
    srv.stop.stop();
    let first = answer(&mut client);
    assert_eq!(
        (first.status, first.body.as_slice()),
        (200, &b"delayed 300 ms"[..])
    );
    assert!(!first.closes(), "{first:?}");
    let second = answer(&mut client);
    assert_eq!((second.status, second.body.as_slice()), (200, &b"ping"[..]));
    assert!(second.closes(), "{second:?}");
    strict::expect_clean_eof(&mut client).unwrap();
    let report = srv.finish();
    assert_eq!((report.stats.served, report.stats.aborted), (3, 0));
}

/// Row 11: over `max_connections`, a client that has sent a request reads the `503`, then a
/// clean end of stream: never a reset.
#[test]
fn a_connection_over_the_limit_reads_its_503_not_a_reset() {
    let srv = Srv::start(Limits::default().with_max_connections(1));
    // A request in its handler holds the only slot (an idle one would be evicted).
    let mut holder = srv.connect();
    send(
        &mut holder,
        b"GET /delay?ms=60000 HTTP/1.1\r\nhost: t\r\n\r\n",
    );
    thread::sleep(Duration::from_millis(20));
    let mut request = b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 65536\r\n\r\n".to_vec();
    request.extend(body_of(65536));
    for _ in 0..10 {
        let mut client = srv.connect();
        send(&mut client, &request);
        thread::sleep(Duration::from_millis(20)); // the server has closed its side by now
        closed_with(&mut client, 503);
    }
    // Its `503` is written before the request is read: it has no body, so a `HEAD` (whose
    // answer carries none) reads it cleanly too.
    let mut client = srv.connect();
    send(&mut client, b"HEAD / HTTP/1.1\r\nhost: t\r\n\r\n");
    let head = strict::read_for(&mut client, "HEAD").expect("a 503 a strict client reads");
    assert_eq!((head.status, head.closes()), (503, true), "{head:?}");
    strict::expect_clean_eof(&mut client).expect("nothing after the 503 but the FIN");
    drop(holder);
    let report = srv.finish();
    assert_eq!(report.stats.connections_refused, 11);
    assert_eq!(report.stats.connections, 1);
}

/// Row 12: a `Limits` that cannot serve is an error when the server is built.
#[test]
fn bad_limits_are_an_error_at_build_time() {
    let bad = [
        Limits::default().with_max_body(usize::MAX),
        Limits::default().with_max_head(10),
        Limits::default().with_max_connections(0),
        Limits::default().with_request_timeout(Duration::ZERO),
        Limits::default().with_idle_timeout(Duration::MAX),
        Limits::default().with_drain_timeout(Duration::MAX),
    ];
    for limits in bad {
        let err = ServerBuilder::new()
            .limits(limits)
            .spawn(reqguard::http::Unaccounted::new, demo_routes)
            .expect_err("invalid limits");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().starts_with("invalid Limits: "), "{err}");
    }
}

/// Row 12: the largest limits a server accepts, and sizes past `u64`, do not panic or overflow.
#[test]
fn huge_limits_and_sizes_past_u64_get_413_without_panic() {
    let srv = Srv::start(Limits::default().with_max_body(isize::MAX as usize));
    for wire in [
        &b"FFFFFFFFFFFFFFFF\r\n"[..],
        b"1\r\na\r\nFFFFFFFFFFFFFFFF\r\n",
        b"10000000000000000\r\n",
    ] {
        let mut client = srv.connect();
        send(&mut client, ECHO_CHUNKED);
        send(&mut client, wire);
        closed_with(&mut client, 413);
    }
    for length in ["99999999999999999999999999", "18446744073709551616"] {
        let mut client = srv.connect();
        let head = format!("POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: {length}\r\n\r\n");
        send(&mut client, head.as_bytes());
        closed_with(&mut client, 413);
    }
    assert_eq!(srv.finish().stats.rejected, 5);

    // The sans-IO session takes any `Limits` value at all, `usize::MAX` and `Duration::MAX`
    // included: nothing panics.
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let any = Limits::default()
        .with_max_body(usize::MAX)
        .with_max_head(usize::MAX)
        .with_max_chunk_overhead(usize::MAX)
        .with_max_output(usize::MAX)
        .with_request_timeout(Duration::MAX)
        .with_idle_timeout(Duration::MAX)
        .with_drain_timeout(Duration::MAX)
        .with_stop_linger(Duration::MAX);
    let mut session = Session::new(&router, reqguard::http::Unaccounted::new(), any);
    session.feed(ECHO_CHUNKED);
    session.feed(b"FFFFFFFFFFFFFFFF\r\nabc");
    session.advance(Duration::from_secs(3600));
    session.feed(b"GET /delay?ms=5 HTTP/1.1\r\nhost: x\r\n\r\n");
    session.stop();
    session.advance(Duration::from_secs(1));
    assert!(
        session.take_output().is_empty(),
        "still receiving the huge body"
    );
    let mut session = Session::new(&router, reqguard::http::Unaccounted::new(), any);
    session.feed(ECHO_CHUNKED);
    session.feed(b"FFFFFFFFFFFFFFFFF\r\n");
    let out = String::from_utf8(session.take_output()).unwrap();
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
}

/// Half-closing after a request is not needed for the answers above; this checks the socket
/// tests' own strict reader rejects what it must (a test that cannot fail proves nothing).
#[test]
fn the_strict_reader_rejects_malformed_answers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let bad: [&[u8]; 6] = [
        b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nx",
        b"HTTP/1.1 20 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nabc",
    ];
    let server = thread::spawn(move || {
        for answer in bad {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(answer).unwrap();
            let _ = s.shutdown(Shutdown::Write);
            let _ = s.read(&mut [0; 1]);
        }
    });
    for _ in 0..bad.len() {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut reader = BufReader::new(stream);
        assert!(strict::read(&mut reader).is_err());
    }
    server.join().unwrap();
}

/// Row 1, the other half: a client that reads none of its answers for `idle_timeout` is
/// disconnected, so it cannot hold a connection (and its bounded buffers) forever.
#[test]
fn a_client_that_reads_nothing_is_disconnected_after_the_idle_timeout() {
    // The request timeout out of reach (an hour): a close within the flood's bound is the
    // idle timeout's, however long a loaded machine takes to come to it.
    let srv = Srv::start(
        Limits::default()
            .with_idle_timeout(Duration::from_millis(300))
            .with_request_timeout(Duration::from_secs(3600)),
    );
    let stream = TcpStream::connect(srv.addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    // Far more answers than the socket buffers hold: the server's writes block.
    let batch = b"GET / HTTP/1.1\r\nhost: t\r\n\r\n".repeat(1024);
    let started = Instant::now();
    writer
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let flood = thread::spawn(move || {
        // Ends when the server closes the connection (a reset or a broken pipe); a write that
        // times out only means the server is not reading (back-pressure). The bound only keeps
        // a broken server from hanging the test.
        while started.elapsed() < util::WAIT_BOUND {
            match writer.write(&batch) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    });
    assert!(flood.join().unwrap(), "the connection stayed open");
    // What was buffered for it is gone, and the server still serves.
    let mut other = srv.connect();
    send(
        &mut other,
        b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    );
    closed_with(&mut other, 200);
    drop(stream);
    let report = srv.finish();
    // The cut took back answers the client never read (the idle timeout's close, with the
    // socket full): not a close that came once everything was delivered.
    assert!(report.stats.undelivered > 0, "{:?}", report.stats);
}

/// A head that arrives in two reads, slower than the idle timeout, leaves the connection's
/// timer on its request timeout (here the later one); once answered, the connection waits
/// for its idle timeout alone, on the turns after too: the loop's kept-alive shortcut (which
/// skips recomputing the idle deadline once it has found the timer set no later) never leaves
/// it on the request timeout's timer.
#[test]
fn after_a_split_head_the_idle_timeout_still_closes_the_connection() {
    // The request timeout out of reach (an hour): a close the client's read sees (within its
    // 10 s) is the idle timeout's, however long a loaded machine takes to come to it.
    let limits = Limits::default()
        .with_idle_timeout(Duration::from_millis(300))
        .with_request_timeout(Duration::from_secs(3600));
    let srv = Srv::start(limits);
    let mut c = srv.connect();
    send(&mut c, b"GET / HTTP/1.1\r\nho");
    util::wait_read_by_server(c.get_ref());
    // The first timer (the new connection's idle timeout) fires meanwhile: the next one set
    // is the request's timeout. A connection accepted after it, silent, is closed at its own
    // idle timeout, no sooner than the first's: once it is, the loop has passed the first's.
    let mut later = srv.connect();
    util::wait_accepted(later.get_ref());
    strict::expect_clean_eof(&mut later).expect("the silent connection closed, nothing sent");
    send(&mut c, b"st: t\r\n\r\n");
    assert_eq!(answer(&mut c).status, 200);
    for _ in 0..3 {
        send(&mut c, b"GET / HTTP/1.1\r\nhost: t\r\n\r\n");
        assert_eq!(answer(&mut c).status, 200);
    }
    // The idle timer's close, not the request timer's (an hour, past the read's 10 s): no
    // bound on how soon, which a loaded machine decides.
    strict::expect_clean_eof(&mut c).expect("closed after the idle timeout, with nothing sent");
    srv.finish();
}

/// Framing that two parsers could read two ways (request smuggling) is refused: `400` and the
/// connection closed (RFC 9112 6.1, 6.3, 7.1). Leading zeros and repeated equal lengths are
/// one reading only, and are served.
#[test]
fn ambiguous_framing_is_400_and_close() {
    let srv = Srv::start(Limits::default());
    let head = |fields: &str| format!("POST /echo HTTP/1.1\r\nhost: t\r\n{fields}\r\n");
    let ambiguous = [
        head("content-length: 3\r\ntransfer-encoding: chunked\r\n") + "3\r\nabc\r\n0\r\n\r\n",
        head("transfer-encoding: chunked\r\ncontent-length: 3\r\n") + "abc",
        head("transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n") + "0\r\n\r\n",
        head("transfer-encoding: chunked, gzip\r\n") + "0\r\n\r\n",
        head("transfer-encoding: chunked, identity\r\n") + "0\r\n\r\n",
        head("transfer-encoding: identity\r\n"),
        head("content-length: 3\r\ncontent-length: 4\r\n") + "abcd",
        head("content-length: +3\r\n") + "abc",
        head("content-length: 3, 3\r\n") + "abc",
        head("content-length: 0x3\r\n") + "abc",
        head("transfer-encoding: chunked\r\n") + " 3\r\nabc\r\n0\r\n\r\n",
        head("transfer-encoding: chunked\r\n") + "0x3\r\nabc\r\n0\r\n\r\n",
        head("transfer-encoding: chunked\r\n") + "3\nabc\n0\n\n",
        head("transfer-encoding: chunked\r\n") + "3\r\nabc0\r\n\r\n",
        "POST /echo HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n".to_string(),
    ];
    for request in &ambiguous {
        let mut client = srv.connect();
        send(&mut client, request.as_bytes());
        let a = answer(&mut client);
        assert_eq!(a.status, 400, "{request:?}: {a:?}");
        assert!(a.closes(), "{request:?}");
        strict::expect_clean_eof(&mut client).unwrap();
    }
    let mut client = srv.connect();
    send(
        &mut client,
        head("content-length: 003\r\ncontent-length: 3\r\n").as_bytes(),
    );
    send(&mut client, b"abc");
    send(
        &mut client,
        head("transfer-encoding: Chunked\r\n").as_bytes(),
    );
    send(&mut client, b"3\r\nabc\r\n0\r\n\r\n");
    for _ in 0..2 {
        let a = answer(&mut client);
        assert_eq!((a.status, a.body.as_slice()), (200, &b"abc"[..]), "{a:?}");
    }
    let report = srv.finish();
    assert_eq!(report.stats.rejected, ambiguous.len() as u64);
}
