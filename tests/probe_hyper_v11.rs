//! hyper11: the hyper adapter's open items of round 10, each a test that failed before its fix:
//! a client that resets its connection behind pipelined requests (hyper does not read its
//! socket while its buffer holds a request), a counted `503` lost to the force-close, and a
//! response body whose exact `size_hint` lies.
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::future::Future;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use reqguard::engines::Embedded;
use reqguard::tokio_hyper::{demo_routes, EnterScope, HyperServer, Options};
use util::bodies::Hinted;
use util::hyper_thread::HyperThread;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// A request in its handler with requests pipelined behind it, all sent in one write: hyper
/// reads them into its buffer and, while that buffer holds a request, does not read the socket
/// until it has answered. So when the client then reset the connection (`set_linger(0)` +
/// close), the request in its handler ran to its end and was counted `served` (*completed*,
/// its answer written to a dead socket; its signal never fired). The mio server reads on and
/// ends it (and the one behind it, which it had admitted) *client gone*. Now the adapter
/// watches the socket for a reset while a request of the connection is out and hyper is not
/// reading: the reset ends the connection, and the request in its handler ends *client gone*
/// (`aborted`). On hyper the one behind it was never admitted (hyper reads one request at a
/// time): no count.
///
/// An end of input (half-close) is not a reset: a client may half-close and wait for its
/// answers (RFC 9112 §9.6). Behind requests in hyper's buffer it stays hyper's to read after
/// them, and the request in its handler is answered (`served`: here the stop then closes the
/// connection before the one behind it, which was never admitted), as
/// `probe_hyper_v7::a_complete_request_followed_by_a_half_close_is_answered` pins; the mio
/// server, which reads on, ends both *client gone* (a documented difference, docs/hyper.md).
#[test]
fn a_client_reset_behind_pipelined_requests_ends_the_request_in_its_handler_on_both_stacks() {
    for stack in STACKS {
        for how in ["reset", "half-close"] {
            let serve = util::serve::Serve::start("", stack);
            let mut stream = TcpStream::connect(serve.addr).unwrap();
            stream
                .write_all(
                    b"GET /delay?ms=3000 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
                )
                .unwrap();
            thread::sleep(Duration::from_millis(300)); // both read, the first in its handler
            match how {
                "reset" => {
                    let socket = socket2::SockRef::from(&stream);
                    socket.set_linger(Some(Duration::ZERO)).unwrap();
                    drop(stream); // RST
                }
                _ => stream.shutdown(std::net::Shutdown::Write).unwrap(), // FIN
            }
            thread::sleep(Duration::from_millis(300));
            let (json, ok) = serve.signal_and_wait("TERM");
            assert!(ok, "{stack} {how}: {json}");
            let field = |key| util::serve::field(&json, key);
            let (served, aborted) = match (stack.contains("hyper"), how) {
                (true, "reset") => (0.0, 1.0),
                (true, _) => (1.0, 0.0),
                (false, _) => (0.0, 2.0),
            };
            assert_eq!(field("served"), served, "{stack} {how}: {json}");
            assert_eq!(field("aborted"), aborted, "{stack} {how}: {json}");
            assert_eq!(field("leaked"), 0.0, "{stack} {how}: {json}");
        }
    }
}

/// The scope of a hyper server whose every entry after the first (the admission of a request,
/// or the refusal of one: the upgrade comes first) holds the server's thread `hold`: the
/// embedder's engine busy, as a collection can keep it. Counts its entries.
struct SlowAfterFirst {
    entries: Arc<AtomicU32>,
    hold: Duration,
}

impl EnterScope<Embedded<&'static str>> for SlowAfterFirst {
    fn enter<R>(&self, f: impl FnOnce(&mut ()) -> R) -> R {
        if self.entries.fetch_add(1, Ordering::SeqCst) > 0 {
            thread::sleep(self.hold);
        }
        f(&mut ())
    }
}

/// A refusal was counted (`refused`) when the adapter decided it, before hyper wrote its
/// `503`: a connection lost between the two (the force-close of a second SIGTERM aborting its
/// task: 1-2 per forced run of qa-client10's battery; the client gone) still counted it,
/// though no `503` was ever written. Here a kept-alive client sends a request during the
/// drain and resets its connection while the server's thread is busy deciding it (the
/// engine's scope holds it), so hyper's write of the `503` fails (`EPIPE`): before, `refused`
/// was 1 with no `503` written; now a refusal counts once hyper has flushed its answer and
/// shut the write side.
#[test]
fn a_refusal_whose_503_is_never_written_is_not_counted() {
    let entries = Arc::new(AtomicU32::new(0));
    let scope = SlowAfterFirst {
        entries: Arc::clone(&entries),
        hold: Duration::from_millis(600),
    };
    let mut server = HyperThread::spawn(move |core| {
        let options = Options::default().with_stop_linger(Duration::from_secs(5));
        HyperServer::with_scope(core, demo_routes(), scope).options(options)
    });
    let addr = server.addr;
    let mut kept = util::Client::connect(addr);
    let answer = kept.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(answer.status, 200);
    server.begin_stop();
    // The stop closes the listener: then admission is closed.
    util::wait_until("the listener closed", || TcpStream::connect(addr).is_err());
    kept.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    // Read, and its refusal being decided (the scope holds the thread).
    util::wait_until("the refusal being decided", || {
        entries.load(Ordering::SeqCst) == 2
    });
    socket2::SockRef::from(kept.stream())
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(kept); // RST
    let report = server.stop();
    assert_eq!(
        entries.load(Ordering::SeqCst),
        2,
        "admitted one, refused one"
    );
    assert_eq!(report.stats.refused, 0, "{report}");
    assert_eq!(report.leaked, 0, "{report}");
}

/// Serves one `GET /` (connection: close) answered with `body`; the client's bytes and the
/// report.
fn serve_one(
    body: impl Fn() -> Hinted + Send + 'static,
) -> (Vec<u8>, reqguard::tokio_hyper::HyperReport) {
    let server = HyperThread::spawn(move |core| {
        let handler = move |_this, _request, bundle: reqguard::tokio_hyper::Bundle| {
            let response = hyper::Response::new(body());
            async move { Ok::<_, reqguard::tokio_hyper::HandlerError>(bundle.respond(response)) }
        };
        HyperServer::new(core, handler)
    });
    let addr = server.addr;
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(util::READ_TIMEOUT)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut answer); // a reset ends it too
    (answer, server.stop())
}

/// A response body whose exact `size_hint` is not the length it yields: hyper frames the
/// answer by the hint (`content-length`). Shorter (0 or 1 for `hello`), hyper writes that many
/// bytes and drops the body unpolled: the request ended *client gone*, though the client was
/// there and had its (cut) answer. Longer (100), hyper writes the 5 bytes, then closes the
/// connection when the body ends early: the request ended *completed*. The answer on the wire
/// is not the one the handler made either way: now *dropped*, as a body that fails mid-stream
/// (and, on the mio server, a handler that fails: the handler's answer could not be sent as
/// made). And an honest stream whose exact hint is right but which learns its end only by
/// being polled (`is_end_stream` false after its last data) ended *client gone* too, hyper
/// stopping at the length: now *completed*.
#[test]
fn a_body_whose_exact_size_hint_lies_ends_dropped_and_an_honest_one_completed() {
    for (hint, says_end) in [
        (0, true),
        (1, true),
        (100, true),
        (0, false),
        (1, false),
        (100, false),
    ] {
        let (answer, report) = serve_one(move || Hinted::of(&["hello"], Some(hint), says_end));
        let case = format!("hint {hint}, says its end {says_end}");
        let text = String::from_utf8_lossy(&answer);
        // A longer hint: hyper closes the connection when the body ends short of it, maybe
        // before it has flushed anything.
        assert!(
            hint == 100 || text.starts_with("HTTP/1.1 200"),
            "{case}: {text:?}"
        );
        let outcomes = report.outcomes;
        assert_eq!(
            (outcomes.dropped, outcomes.total(), report.leaked),
            (1, 1, 0),
            "{case}: {report}"
        );
        assert_eq!(report.stats.served, 1, "{case}: {report}");
    }
    // Honest bodies, of an exact length or chunked, that say their end or learn it by polling.
    for (hint, says_end) in [
        (Some(5), true),
        (Some(5), false),
        (None, true),
        (None, false),
    ] {
        let (answer, report) = serve_one(move || Hinted::of(&["hel", "lo"], hint, says_end));
        let text = String::from_utf8_lossy(&answer);
        let body = match hint {
            Some(_) => "\r\n\r\nhello",
            None => "\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
        };
        let case = format!("honest, hint {hint:?}, says its end {says_end}");
        assert!(text.ends_with(body), "{case}: {text:?}");
        let outcomes = report.outcomes;
        assert_eq!(
            (outcomes.completed, outcomes.total(), report.leaked),
            (1, 1, 0),
            "{case}: {report}"
        );
    }
}

/// The watch on the client (`LingeringIo::watch_peer`) costs no spin: with bytes waiting in
/// the socket behind what hyper has read (a request body the handler has not asked for yet,
/// requests pipelined past hyper's buffer), the socket stays readable, and a peek finds data
/// at every look without registering the task for a wake. The connection's task must then
/// sleep until its handler wakes it: hyper polls the request's future on every poll of the
/// task, so the handler counts them. (A task woken by its own peek would count thousands in
/// the handler's 500 ms.) The socket is not even peeked again until hyper reads.
#[test]
fn a_request_out_with_bytes_waiting_behind_it_does_not_spin_its_connection() {
    let body = {
        let mut bytes = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1048576\r\n\r\n".to_vec();
        bytes.resize(bytes.len() + 64 * 1024, b'x');
        bytes
    };
    let pipelined = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".repeat(64 * 1024 / 27);
    for (case, sent) in [("a body not asked for", body), ("pipelined", pipelined)] {
        let polls = Arc::new(AtomicU32::new(0));
        let first = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&polls);
        let slept = Arc::new(AtomicBool::new(false));
        let woke = Arc::clone(&slept);
        let server = HyperThread::spawn(move |core| {
            let handler = move |_this, request, bundle: reqguard::tokio_hyper::Bundle| {
                let slow = first.fetch_add(1, Ordering::SeqCst) == 0;
                let polls = Arc::clone(&counted);
                let woke = Arc::clone(&woke);
                async move {
                    if slow {
                        let mut sleep = Box::pin(tokio::time::sleep(Duration::from_millis(500)));
                        std::future::poll_fn(|cx| {
                            polls.fetch_add(1, Ordering::SeqCst);
                            sleep.as_mut().poll(cx)
                        })
                        .await;
                        woke.store(true, Ordering::SeqCst);
                    }
                    drop(request);
                    let body = Hinted::of(&["ok"], Some(2), true);
                    let response = hyper::Response::new(body);
                    Ok::<_, reqguard::tokio_hyper::HandlerError>(bundle.respond(response))
                }
            };
            HyperServer::new(core, handler)
        });
        let addr = server.addr;
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(&sent).unwrap();
        util::wait_until("the slow handler's sleep", || slept.load(Ordering::SeqCst));
        let polled = polls.load(Ordering::SeqCst);
        drop(stream);
        let report = server.stop();
        assert!((2..20).contains(&polled), "{case}: polled {polled} times");
        assert_eq!(report.leaked, 0, "{case}: {report}");
    }
}
