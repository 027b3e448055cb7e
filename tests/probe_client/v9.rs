//! qa-client9, round 9: `serve` on both stacks (`--stack mio`, `--stack hyper`) as a hostile
//! client sees it: slow readers, slow bodies, request targets. Each test fails on the main it
//! was written against and passes after its fix (or, where said, guards the other side of the
//! same rule); every answer is read by the strict client (tests/util/strict.rs: status line,
//! field syntax, one `content-length`, one IMF-fixdate `date`, exact body).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use util::serve::Serve;
use util::strict::{read_for, StrictClient};

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

fn stop_clean(serve: Serve) {
    let (json, ok) = serve.signal_and_wait("TERM");
    assert!(ok, "{json}");
}

/// A socket read at most `chunk` bytes at a time with `pause` after each read, until `until`;
/// then as fast as it comes.
struct Throttled {
    stream: TcpStream,
    chunk: usize,
    pause: Duration,
    until: Instant,
    read: usize,
}

impl Read for Throttled {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() >= self.until {
            return self.stream.read(buf);
        }
        let len = buf.len().min(self.chunk);
        let n = self.stream.read(&mut buf[..len])?;
        self.read += n;
        thread::sleep(self.pause);
        Ok(n)
    }
}

const MIB: usize = 1024 * 1024;

/// `count` pipelined `POST /echo` of `size` bytes each, sent from a thread (the server reads
/// them as the client reads its answers: back-pressure).
fn send_echoes(stream: &TcpStream, count: usize, size: usize) -> thread::JoinHandle<()> {
    let mut writer = stream.try_clone().unwrap();
    thread::spawn(move || {
        let head = format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {size}\r\n\r\n");
        let body = vec![b'x'; size];
        for _ in 0..count {
            if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
                return; // The server or the test closed: the reading side says how.
            }
        }
    })
}

/// A client reading its answers steadily but slowly (8 KiB every 20 ms: 60-80 KB/s through its
/// receive buffer) must be kept however long its answers take, well past the idle timeout. It
/// shrinks its receive buffer after connecting, as slowpipe.py did (qa-client8): the server's
/// send buffer is then megabytes, Linux signals it writable only after a third of it has
/// drained (a minute at this pace), and writes find it full for seconds while the client
/// reads. Before, both stacks took "no writable event within the idle timeout" for "reads
/// nothing": mio reset the connection after 4.0 s, hyper after 2.0 s (idle timeout 2 s); now
/// the bytes the socket takes over each window are counted (`Limits::min_send_rate`,
/// 1 KiB/s), the socket written to directly at the window's end. Every answer read in the 7 s
/// (3.5 windows) is checked strictly and whole.
#[test]
fn a_slow_but_steady_reader_of_large_answers_is_kept_past_the_idle_timeout() {
    const SIZE: usize = 64 * 1024;
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} --idle-timeout-ms 2000"));
        let stream = TcpStream::connect(serve.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // 8 MiB of answers: more than the kernel's buffers on both sides hold.
        let sender = send_echoes(&stream, 128, SIZE);
        socket2::SockRef::from(&stream)
            .set_recv_buffer_size(8192)
            .unwrap();
        let until = Instant::now() + Duration::from_secs(7);
        let mut reader = BufReader::with_capacity(
            8192,
            Throttled {
                stream: stream.try_clone().unwrap(),
                chunk: 8192,
                pause: Duration::from_millis(20),
                until,
                read: 0,
            },
        );
        let mut answers = 0;
        while Instant::now() < until {
            let answer = read_for(&mut reader, "POST").unwrap_or_else(|e| {
                let read = reader.get_ref().read;
                panic!("{stack}: answer {answers} after {read} bytes read slowly: {e}")
            });
            assert_eq!(answer.status, 200, "{stack}: answer {answers}");
            assert!(
                answer.body.len() == SIZE && answer.body.iter().all(|&b| b == b'x'),
                "{stack}: answer {answers} is not the body sent"
            );
            answers += 1;
        }
        assert!(
            answers >= 4,
            "{stack}: {answers} answers in 7 s: not the steady reader meant"
        );
        // The client leaves with answers unread (the server sees a reset).
        stream.shutdown(std::net::Shutdown::Both).unwrap();
        drop((reader, stream));
        sender.join().unwrap();
        stop_clean(serve);
    }
}

/// The other side of the rule: a slow-read attacker (`slowhttptest -X`: a tiny receive window,
/// a few bytes now and then) reading 32 bytes every 250 ms (128 B/s) is disconnected within two
/// windows of the idle timeout (1 s here) of its answers' first full write, its answers cut.
/// (On the main before, it was disconnected too, by the writable-event rule: this guards that
/// counting bytes did not let it stay.)
#[test]
fn a_slow_read_attacker_is_disconnected_in_bounded_time() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} --idle-timeout-ms 1000"));
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(2048).unwrap();
        socket.connect(&serve.addr.into()).unwrap();
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // More than the kernel's buffers hold (a send buffer starts at about 1 MiB on
        // loopback): the server's own writes must wait for the client.
        let sender = send_echoes(&stream, 4, MIB);
        let mut throttled = Throttled {
            stream: stream.try_clone().unwrap(),
            chunk: 32,
            pause: Duration::from_millis(250),
            until: Instant::now() + Duration::from_secs(4),
            read: 0,
        };
        let mut sink = [0; 32];
        let mut ended = None;
        while Instant::now() < throttled.until {
            match throttled.read(&mut sink) {
                Ok(0) | Err(_) => {
                    ended = Some(Instant::now());
                    break;
                }
                Ok(_) => {}
            }
        }
        // Read what is left in the buffers as fast as it comes: the end follows.
        let mut rest = Vec::new();
        let fast = throttled.stream.read_to_end(&mut rest);
        let total = throttled.read + rest.len();
        assert!(
            total < 4 * MIB,
            "{stack}: the whole answer arrived ({total} bytes, {fast:?}, ended {ended:?}): not disconnected"
        );
        sender.join().unwrap();
        stop_clean(serve);
    }
}

/// RFC 9112 §3.2: a request target has no fragment (origin-form is `absolute-path [ "?" query
/// ]`); hyper's URI parser drops a `#` and what follows, so the mio stack now does too (the
/// route, the path and the query a handler sees), and both stacks answer alike. Before, mio
/// routed `/#x` as a path of its own (`404`), gave `/delay?ms=5#x` the query `ms=5#x`
/// (`400`), and took `x#y` for the authority of `http://x#y` (`400`).
#[test]
fn a_fragment_in_the_target_is_dropped_alike_on_both_stacks() {
    for stack in STACKS {
        let serve = Serve::start("", stack);
        let mut client = StrictClient::connect(serve.addr);
        for (target, method, status, text) in [
            ("/#x", "GET", 200, "hello"),
            ("/#", "HEAD", 200, ""),
            ("/delay?ms=5#x", "GET", 200, "delayed 5 ms"),
            (
                "/delay#x?ms=5",
                "GET",
                400,
                "expected ?ms=N with N <= 60000",
            ),
            ("/echo#frag", "GET", 405, ""),
            ("/nope#/", "GET", 404, ""),
            ("http://x/#y", "GET", 200, "hello"),
            ("http://x#y", "GET", 200, "hello"),
            ("http://x?#y", "GET", 200, "hello"),
        ] {
            client.send(format!("{method} {target} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes());
            let answer = client.answer(method);
            assert_eq!(
                answer.status, status,
                "{stack} {method} {target}: {answer:?}"
            );
            if status != 404 && status != 405 {
                // (The stacks' 404 and 405 bodies differ; their statuses and `allow` do not.)
                assert_eq!(answer.text(), text, "{stack} {method} {target}");
            }
            if status == 405 {
                assert_eq!(answer.field("allow"), Some("POST"), "{stack} {target}");
            }
        }
        client.expect_nothing_more(false, Duration::from_millis(50));
        stop_clean(serve);
    }
}

/// A slow-body client (R-U-Dead-Yet, `slowhttptest -B`: a `content-length` announced, the body
/// sent a byte at a time) holding every slot must not lock newcomers out until the body
/// timeout, on either stack: at the limit the body arriving the slowest under 1 KiB/s (after
/// its first second) is evicted, `408` + close, and the newcomer is served. The mio stack
/// did so since round 8 (probe_client::v8); before, the hyper stack never evicted a
/// connection with a request admitted, so `serve --stack hyper --max-connections 3` answered
/// the newcomer `503` until the slow bodies' 10 s timeout. Now the demo's routes note how a
/// body they wait for arrives (`Conn::body_awaited`), and the eviction chooses a slow one.
#[test]
fn slow_bodies_cannot_lock_newcomers_out_at_capacity_on_either_stack() {
    for stack in STACKS {
        let serve = Serve::start("", &format!("{stack} --max-connections 3"));
        let mut slow: Vec<StrictClient> = (0..3)
            .map(|_| {
                let mut client = StrictClient::connect(serve.addr);
                client.send(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nab");
                thread::sleep(Duration::from_millis(50));
                client
            })
            .collect();
        // A byte each every 200 ms: about 5 bytes per second, for 1.4 s.
        for _ in 0..7 {
            thread::sleep(Duration::from_millis(200));
            for client in &mut slow {
                client.send(b"x");
            }
        }
        let mut newcomer = StrictClient::connect(serve.addr);
        newcomer.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let answer = newcomer.answer("GET");
        assert_eq!(
            (answer.status, answer.text()),
            (200, "hello"),
            "{stack}: {answer:?}"
        );
        // One slow body was evicted with its `408`; the others were not harmed: their bodies
        // end, and are echoed.
        let mut statuses = Vec::new();
        for client in &mut slow {
            client.send(b"y");
            let answer = client.answer("POST");
            match answer.status {
                408 => {
                    assert!(answer.closes(), "{stack}: {answer:?}");
                    client.expect_nothing_more(true, Duration::ZERO);
                }
                _ => assert_eq!(
                    (answer.status, answer.text()),
                    (200, "abxxxxxxxy"),
                    "{stack}: {answer:?}"
                ),
            }
            statuses.push(answer.status);
        }
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 200, 408], "{stack}");
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{json}");
        assert_eq!(
            util::serve::field(&json, "connections_evicted"),
            1.0,
            "{stack}: {json}"
        );
    }
}
