//! A slow reader's lost answers are not counted `served`, on both stacks, over a real socket
//! (`benches/load/qa12_slowread.py`): a client pipelines uploads to `POST /echo` through a
//! small receive buffer and reads nothing. The server disconnects it as a slow reader
//! (`min_send_rate`) with answers still in the socket's send queue and in its own buffers;
//! the close is a reset (the client is still sending), and the kernel drops what it had not
//! sent. Before, those answers were counted `served` (the client had read none of them); now
//! they are taken back out of `served` and counted `undelivered` (`src/delivery.rs`). And
//! answers that all fit in the socket, closed by the server with nothing unread (the kernel
//! sends them on behind its FIN), stay `served`: the client reads them.
//! Bounded: a 300 ms send-rate window; each test about 1 s.
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use reqguard::http::Limits;
use reqguard::tokio_hyper::{self, HyperServer, Options};
use reqguard::OutcomeCounts;
use socket2::{Domain, Socket, Type};
use util::hyper_thread::HyperThread;

/// The send rate window (the idle timeout) and a rate no reader through a 4 KiB buffer earns.
const WINDOW: Duration = Duration::from_millis(300);
const RATE: u64 = 100 * 1024 * 1024;
/// Uploads pipelined, and the length of each: more than the sockets' buffers hold.
const UPLOADS: usize = 8;
const UPLOAD: usize = 1_000_000;
/// ... and few enough that their answers fit in the server's socket (loopback's send buffer
/// grows to 4 MiB).
const FITTING: usize = 4;
const FITTING_UPLOAD: usize = 256 * 1024;

/// What a server counted of the slow reader's requests.
#[derive(Debug)]
struct Counted {
    ended_by_server: bool,
    served: u64,
    undelivered: u64,
    outcomes: OutcomeCounts,
}

/// Connects with a 4 KiB receive buffer, pipelines `uploads` uploads of `len` bytes from a
/// thread of its own, reads nothing until the server has had time to disconnect it, then reads
/// what it can: the whole answers it got, and whether the server ended the connection (an end
/// of stream or a reset) rather than the client's read timeout.
fn slow_reader(addr: SocketAddr, uploads: usize, len: usize) -> (usize, bool) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    let mut sending = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let body = vec![b'z'; len];
        for _ in 0..uploads {
            let head = format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {len}\r\n\r\n");
            if sending.write_all(head.as_bytes()).is_err() || sending.write_all(&body).is_err() {
                return; // Disconnected.
            }
        }
    });
    // Two windows and then some: the first write that finds the socket full opens a window,
    // at whose end the client has taken a few KiB, far from the rate.
    thread::sleep(4 * WINDOW);
    let mut stream = stream;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (mut data, mut chunk) = (Vec::new(), vec![0; 64 * 1024]);
    let ended_by_server = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            Err(_) => break true, // reset: what had not arrived is lost
        }
    };
    sender.join().unwrap();
    eprintln!("read {} bytes", data.len());
    (whole_answers(&data), ended_by_server)
}

/// How many whole `200` answers `data` begins with.
fn whole_answers(data: &[u8]) -> usize {
    let (mut at, mut whole) = (0, 0);
    while let Some((head, body)) = util::answer_at(data, at) {
        assert!(head.starts_with("http/1.1 200"), "{head}");
        if body.end > data.len() {
            break;
        }
        whole += 1;
        at = body.end;
    }
    whole
}

/// `served` counts the answers the client read whole, and the answers the server made and
/// the close dropped are `undelivered` (`lost`: at least one, the server had answered the
/// first upload when it cut the client off; else none, and every upload read); each request
/// ended once, its outcome *completed* (its answer was made) or *client gone* (still waiting
/// at the cut).
fn assert_counted(read: usize, counted: &Counted, lost: bool) {
    assert_eq!(counted.served, read as u64, "{counted:?}");
    if lost {
        assert!(counted.undelivered >= 1, "{counted:?}");
    } else {
        assert_eq!((read, counted.undelivered), (FITTING, 0), "{counted:?}");
    }
    let o = &counted.outcomes;
    assert_eq!(
        o.completed,
        counted.served + counted.undelivered,
        "{counted:?}"
    );
    assert_eq!(o.total(), o.completed + o.client_gone, "{counted:?}");
}

/// The slow reader on the mio demo server; what it read whole, and what the server counted
/// (`Counted::ended_by_server`: whether the server, not the client's read timeout, ended it).
fn on_mio(uploads: usize, len: usize) -> (usize, Counted) {
    let limits = Limits::default()
        .with_idle_timeout(WINDOW)
        .with_min_send_rate(RATE);
    let running = util::demo_server(limits);
    let (read, ended_by_server) = slow_reader(running.addr(), uploads, len);
    let report = running.stop().unwrap();
    let counted = Counted {
        ended_by_server,
        served: report.stats.served,
        undelivered: report.stats.undelivered,
        outcomes: report.outcomes,
    };
    (read, counted)
}

/// The same on the hyper demo server.
fn on_hyper(uploads: usize, len: usize) -> (usize, Counted) {
    let server = HyperThread::spawn(|core| {
        let options = Options::default()
            .with_idle_timeout(WINDOW)
            .with_min_send_rate(RATE);
        HyperServer::new(core, tokio_hyper::demo_routes()).options(options)
    });
    let (read, ended_by_server) = slow_reader(server.addr, uploads, len);
    let report = server.stop();
    let counted = Counted {
        ended_by_server,
        served: report.stats.served,
        undelivered: report.stats.undelivered,
        outcomes: report.outcomes,
    };
    (read, counted)
}

#[test]
fn mio_a_slow_readers_dropped_answers_are_undelivered_not_served() {
    let (read, counted) = on_mio(UPLOADS, UPLOAD);
    assert_counted(read, &counted, true);
    // The server cut the reader off (an event, where a 10 s bound on the test's time stood:
    // the read timeout alone would have ended it too, and a loaded machine outlasted the bound).
    assert!(
        counted.ended_by_server,
        "the client's read timed out: {counted:?}"
    );
}

#[test]
fn hyper_a_slow_readers_dropped_answers_are_undelivered_not_served() {
    let (read, counted) = on_hyper(UPLOADS, UPLOAD);
    assert_counted(read, &counted, true);
    // The server cut the reader off (an event, where a 10 s bound on the test's time stood:
    // the read timeout alone would have ended it too, and a loaded machine outlasted the bound).
    assert!(
        counted.ended_by_server,
        "the client's read timed out: {counted:?}"
    );
}

#[test]
fn mio_answers_a_close_leaves_in_the_socket_stay_served() {
    let (read, counted) = on_mio(FITTING, FITTING_UPLOAD);
    assert_counted(read, &counted, false);
}

#[test]
fn hyper_answers_a_close_leaves_in_the_socket_stay_served() {
    let (read, counted) = on_hyper(FITTING, FITTING_UPLOAD);
    assert_counted(read, &counted, false);
}
