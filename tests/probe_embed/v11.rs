//! QA probes, eleventh round, of the embedding API as a hostile or careless embedder uses it:
//! the public `Dispatcher` of a `Server` and of a `Connection` driven by hand, stops begun
//! through it, reasons given to `abort`. Public API only. Each test that found a bug failed on
//! `main` before its fix (the test's doc says so); the others pin what was found to hold.
#![cfg(feature = "server")]

use crate::quiet;
use crate::util;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqguard::http::{
    demo_routes, Connection, Dispatcher, Guarded, Handler, Limits, Reply, Request, Response,
    Router, Routes, Server, Session,
};
use reqguard::{AbortReason, Config};

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(20);

/// Answers later (a deferred response), recording each request's signal reason as it fires.
struct Later {
    delay: Duration,
    fired: Rc<RefCell<Vec<AbortReason>>>,
}

impl Handler for Later {
    fn handle(&self, request: &Request<'_>, _: &mut Response<'_>) -> Reply {
        if let Some(signal) = request.signal() {
            let fired = Rc::clone(&self.fired);
            signal.on_abort(move |reason| fired.borrow_mut().push(reason));
        }
        Reply::After {
            delay: self.delay,
            token: 1,
        }
    }

    fn resume(&self, _: u64, response: &mut Response<'_>) {
        response.write(b"later");
    }
}

/// A stop begun through the server's public dispatcher before `run` (`Dispatcher::begin_stop`,
/// documented "begins a graceful stop") is the server's stop: `run` drains and returns its
/// report. Before, admission closed but the loop never began its own stop (no deadline, the
/// listener open): `run` never returned.
#[test]
fn a_stop_begun_through_the_servers_dispatcher_before_run_ends_the_run() {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let limits = Limits::default().with_drain_timeout(Duration::from_millis(200));
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let guarded = Guarded::embedded("server", Config::default());
        let mut server = Server::bind(addr, &router, guarded, limits).unwrap();
        server.dispatcher().begin_stop(Instant::now());
        assert!(server.dispatcher().is_stopping());
        let report = server.run();
        let _ = tx.send(report.map(|r| (r.leaked, r.stats.served)));
    });
    let ran = rx.recv_timeout(HANG);
    assert!(
        matches!(ran, Ok(Ok((0, 0)))),
        "run did not end after a stop begun through its dispatcher: {ran:?}"
    );
    thread.join().unwrap();
}

/// `Connection::abort` says "every waiting request is aborted with `reason`": a deferred
/// request's signal fires once, with the reason the embedder's loop gave (or, when the
/// accounting names the outcome, the outcome's reason, documented as such).
#[test]
fn a_connection_aborted_by_hand_fires_each_waiting_signal_once() {
    for reason in [
        AbortReason::ClientDisconnected,
        AbortReason::DrainDeadline,
        AbortReason::ForceClosed,
        AbortReason::Other("the embedder's socket failed"),
    ] {
        let fired = Rc::new(RefCell::new(Vec::new()));
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        router.route(
            "GET",
            "/later",
            Later {
                delay: Duration::from_secs(60),
                fired: Rc::clone(&fired),
            },
        );
        let guarded = Guarded::embedded("server", Config::default());
        let mut dispatcher = Dispatcher::new(&router, guarded, Limits::default());
        let now = Instant::now();
        let mut connection = Connection::new(now);
        connection.receive(
            &mut dispatcher,
            b"GET /later HTTP/1.1\r\nhost: x\r\n\r\n",
            now,
        );
        assert_eq!(connection.waiting(), 1);
        connection.abort(&mut dispatcher, reason);
        assert_eq!(connection.waiting(), 0);
        assert_eq!(dispatcher.in_flight(), 0);
        assert_eq!(
            fired.borrow().len(),
            1,
            "{reason:?}: fired {:?}",
            fired.borrow()
        );
        let seen = fired.borrow()[0];
        let outcomes = dispatcher.accounting().core().ledger().outcomes();
        match reason {
            AbortReason::ClientDisconnected => {
                assert_eq!((seen, outcomes.client_gone), (reason, 1), "{reason:?}");
            }
            _ => assert_eq!(
                (seen, outcomes.force_closed),
                (AbortReason::ForceClosed, 1),
                "{reason:?}"
            ),
        }
        dispatcher.accounting().core().ledger().assert_quiescent();
    }
}

/// A session stopped through its dispatcher (`Session::dispatcher().begin_stop`) drains as a
/// `Session::stop` does: the deferred request completes, the hooks run, nothing leaks.
#[test]
fn a_session_stopped_through_its_dispatcher_drains() {
    let fired = Rc::new(RefCell::new(Vec::new()));
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    router.route(
        "GET",
        "/later",
        Later {
            delay: Duration::from_millis(50),
            fired: Rc::clone(&fired),
        },
    );
    let guarded = Guarded::embedded("server", Config::default());
    let mut session = Session::new(&router, guarded, Limits::default());
    session.feed(b"GET /later HTTP/1.1\r\nhost: x\r\n\r\n");
    session.dispatcher().begin_stop(Instant::now());
    session.advance(Duration::from_millis(50));
    let out = session.take_output();
    assert!(
        out.starts_with(b"HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(fired.borrow().is_empty());
    session.ledger().unwrap().assert_quiescent();
}

/// `StopHandle::stop_and_wait` called on the server's own thread before its loop runs (in
/// `ServerBuilder::serve`'s `ready` callback, which runs there once the server listens) asks
/// for the stop and returns at once, as it does from a handler: waiting there waits for a loop
/// that cannot begin. Before, with `Duration::MAX`, it hung forever (the loop's thread was
/// recorded only when `run` began).
#[test]
fn stop_and_wait_in_the_ready_callback_returns_at_once_and_the_server_stops() {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let guarded = Guarded::embedded("server", Config::default());
        let served = reqguard::http::ServerBuilder::new().serve(&router, guarded, |_, stop| {
            let began = stop.stop_and_wait(Duration::MAX);
            let _ = tx.send(began);
        });
        served.map(|r| r.leaked)
    });
    let began = rx.recv_timeout(HANG);
    assert_eq!(
        began,
        Ok(false),
        "stop_and_wait in `ready` hung or saw a stop"
    );
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(thread.join().map_err(|_| ()));
    });
    let served = done_rx.recv_timeout(HANG);
    assert!(
        matches!(served, Ok(Ok(Ok(0)))),
        "the server did not stop: {served:?}"
    );
}

/// The same before `run` when the embedder runs the loop itself: `Server::bind`, a stop
/// handle's `stop_and_wait` on this thread, then `run` (which stops at once).
#[test]
fn stop_and_wait_between_bind_and_run_returns_at_once() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let guarded = Guarded::embedded("server", Config::default());
        let server = Server::bind(addr, &router, guarded, Limits::default()).unwrap();
        let began = server.stop_handle().stop_and_wait(Duration::MAX);
        let leaked = server.run().map(|r| r.leaked);
        let _ = tx.send((began, leaked.ok()));
    });
    assert_eq!(rx.recv_timeout(HANG), Ok((false, Some(0))));
}

// What the two probes above rest on: a `Server` stays on the thread that made it, so that
// thread is its loop's.
static_assertions::assert_not_impl_any!(Server<'static, reqguard::http::Unaccounted>: Send);

/// A `Connection` driven by hand and dropped with a deferred request waiting (the embedder's
/// loop let the socket go without calling `abort`): the request ends *dropped* once, and the
/// dispatcher still counts it in flight, as `Connection`'s docs say (it cannot reach its
/// dispatcher when dropped).
#[test]
fn a_connection_dropped_by_hand_ends_its_waiting_request_dropped_once() {
    let fired = Rc::new(RefCell::new(Vec::new()));
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    router.route(
        "GET",
        "/later",
        Later {
            delay: Duration::from_secs(60),
            fired: Rc::clone(&fired),
        },
    );
    let guarded = Guarded::embedded("server", Config::default());
    let mut dispatcher = Dispatcher::new(&router, guarded, Limits::default());
    let now = Instant::now();
    let mut connection = Connection::new(now);
    connection.receive(
        &mut dispatcher,
        b"GET /later HTTP/1.1\r\nhost: x\r\n\r\n",
        now,
    );
    drop(connection);
    let ledger = dispatcher.accounting().core().ledger();
    assert_eq!(ledger.outcomes().dropped, 1);
    assert_eq!(ledger.outcomes().total(), 1);
    assert_eq!(*fired.borrow(), [AbortReason::Dropped]);
    ledger.assert_quiescent();
    assert_eq!((dispatcher.in_flight(), dispatcher.stats().aborted), (1, 0));
}

/// Builders' closures that panic on their loop's thread before it serves: `ServerBuilder::spawn`
/// (routes, accounting) and `LoopGroup::spawn` (one loop's accounting) return an error, and the
/// loops that did start are stopped; nothing hangs.
#[test]
fn builder_closures_that_panic_before_serving_are_errors() {
    quiet::quiet_panics();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let routes_panic = reqguard::http::ServerBuilder::new()
            .spawn(
                || Guarded::embedded("server", Config::default()),
                |_: &mut Router<'_>| panic!("routes panic"),
            )
            .map(|_| ());
        let accounting_panic = reqguard::http::ServerBuilder::new()
            .spawn(
                || -> Guarded<reqguard::engines::Embedded<&'static str>, reqguard::http::NoScope> {
                    panic!("accounting panics")
                },
                demo_routes,
            )
            .map(|_| ());
        let group = reqguard::http::LoopGroup::new().loops(3).spawn(
            |index| {
                assert!(index != 1, "loop 1's accounting panics");
                Guarded::embedded("server", Config::default())
            },
            demo_routes,
        );
        let _ = tx.send((
            routes_panic.map_err(|e| e.to_string()),
            accounting_panic.map_err(|e| e.to_string()),
            group.map(|_| ()).map_err(|e| e.to_string()),
        ));
    });
    let (routes, accounting, group) = rx.recv_timeout(HANG).expect("a spawn hung");
    assert!(
        routes.is_err() && accounting.is_err() && group.is_err(),
        "{routes:?} {accounting:?} {group:?}"
    );
}

/// An engine whose strong handle's `Drop` panics once armed (an engine's free that fails).
#[derive(Clone)]
struct Touchy(Rc<String>, Rc<std::cell::Cell<bool>>);

impl Drop for Touchy {
    fn drop(&mut self) {
        if self.1.get() {
            panic!("a strong handle's drop panics");
        }
    }
}

struct TouchyEngine;

impl reqguard::Engine for TouchyEngine {
    type Strong = Touchy;
    type Weak = (std::rc::Weak<String>, Rc<std::cell::Cell<bool>>);
    type Scope<'s> = ();

    fn downgrade(_: &mut (), strong: &Touchy) -> Self::Weak {
        (Rc::downgrade(&strong.0), Rc::clone(&strong.1))
    }

    fn upgrade(_: &mut (), weak: &Self::Weak) -> Option<Touchy> {
        Some(Touchy(weak.0.upgrade()?, Rc::clone(&weak.1)))
    }
}

struct NoScopeFor;

impl reqguard::http::ScopeProvider<TouchyEngine> for NoScopeFor {
    fn with_scope<R>(&mut self, f: impl FnOnce(&mut ()) -> R) -> R {
        f(&mut ())
    }
}

/// `Guarded` says its per-request calls cannot panic (`MAY_PANIC = false`), and its
/// `read_ended` drops the handler's `this`, a strong handle of the embedder's engine:
/// `Engine`'s contract now says such a drop must not panic (it is not caught, so the guarded
/// path pays for no catch). One that does reaches a `Session`'s caller, as the docs say, and
/// its request still ends once, nothing leaked. Since round 19 (one upgrade per read,
/// docs/benchmarks.md) the handle is let go when the read's requests are all handled, so the
/// request was answered first: it ends *completed* (it ended *dropped* when `handled` let the
/// handle go, before the answer was written).
#[test]
fn a_strong_handle_whose_drop_panics_reaches_the_sessions_caller_and_leaks_nothing() {
    quiet::quiet_panics();
    let armed = Rc::new(std::cell::Cell::new(false));
    let strong = Touchy(Rc::new("server".to_owned()), Rc::clone(&armed));
    let core = reqguard::ServerCore::<TouchyEngine>::new(&mut (), strong, Config::default());
    let guarded = Guarded::new(core, NoScopeFor);
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let mut session = Session::new(&router, guarded, Limits::default());
    armed.set(true);
    let fed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        session.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    }));
    armed.set(false);
    assert!(
        fed.is_err(),
        "the strong handle's drop did not panic in read_ended"
    );
    assert!(session.pending_output().starts_with(b"HTTP/1.1 200"));
    let ledger = session.ledger().unwrap();
    assert_eq!(
        (ledger.outcomes().completed, ledger.outcomes().total()),
        (1, 1)
    );
    ledger.assert_quiescent();
}

/// Large pipelined echoes byte-exact at the edges of the lending rule: `max_output` 0 (every
/// body over 16 KiB lent once the output's buffer is large enough) and 1 byte, with a chunked
/// one and a `GET` between them, then a deferred answer; `leaked` 0 and every request served.
#[test]
fn echoes_at_tiny_max_output_are_byte_exact() {
    use std::io::{Read, Write};
    for max_output in [0, 1, 16 * 1024] {
        let running = util::demo_server(Limits::default().with_max_output(max_output));
        let mut stream = std::net::TcpStream::connect(running.addr()).unwrap();
        stream.set_read_timeout(Some(HANG)).unwrap();
        let bodies: Vec<Vec<u8>> = [100_000usize, 16 * 1024 + 1, 300_000, 17]
            .iter()
            .enumerate()
            .map(|(i, n)| (0..*n).map(|k| (k * 7 + i) as u8).collect())
            .collect();
        let mut wire = Vec::new();
        for body in &bodies {
            wire.extend_from_slice(
                format!(
                    "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            wire.extend_from_slice(body);
            wire.extend_from_slice(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        }
        // A chunked echo of the first body in two chunks, then a deferred answer, then close.
        let (a, b) = bodies[0].split_at(40_000);
        wire.extend_from_slice(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
        );
        for part in [a, b] {
            wire.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            wire.extend_from_slice(part);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        wire.extend_from_slice(
            b"GET /delay?ms=20 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        );
        let writer = {
            let mut stream = stream.try_clone().unwrap();
            std::thread::spawn(move || {
                for piece in wire.chunks(7_001) {
                    stream.write_all(piece).unwrap();
                }
            })
        };
        let mut got = Vec::new();
        stream.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        let mut expected = Vec::new();
        for body in &bodies {
            expected.push(body.clone());
            expected.push(b"hello".to_vec());
        }
        expected.push(bodies[0].clone());
        // Parse the answers off `got`.
        let mut rest = &got[..];
        let mut seen = Vec::new();
        while !rest.is_empty() {
            let end = rest
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a head")
                + 4;
            let head = std::str::from_utf8(&rest[..end])
                .unwrap()
                .to_ascii_lowercase();
            assert!(
                head.starts_with("http/1.1 200"),
                "max_output {max_output}: {head}"
            );
            let len: usize = head
                .split("content-length: ")
                .nth(1)
                .and_then(|v| v.split("\r\n").next())
                .unwrap()
                .parse()
                .unwrap();
            seen.push(rest[end..end + len].to_vec());
            rest = &rest[end + len..];
        }
        assert_eq!(seen.len(), expected.len() + 1, "max_output {max_output}");
        for (i, (s, e)) in seen.iter().zip(&expected).enumerate() {
            assert!(
                s == e,
                "max_output {max_output}: answer {i} differs ({} vs {} bytes)",
                s.len(),
                e.len()
            );
        }
        let report = running.stop().unwrap();
        assert_eq!(
            (report.leaked, report.stats.served),
            (0, 10),
            "max_output {max_output}"
        );
    }
}

#[cfg(feature = "hyper")]
mod hyper_embed {
    use std::time::Duration;

    use reqguard::engines::Heap;
    use reqguard::tokio_hyper::{demo_routes, HyperServer};
    use reqguard::{Config, ServerCore};

    use super::util::bodies::Hinted;

    /// `tokio_hyper::run` builds a runtime of its own: called from inside one (an `async`
    /// embedder) it cannot, and says so with an error (its `# Errors`). Before, it panicked in
    /// `block_on` ("Cannot start a runtime from within a runtime").
    #[test]
    fn run_inside_a_runtime_is_an_error_not_a_panic() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ran = outer.block_on(async {
            std::panic::catch_unwind(|| {
                let heap = Heap::new();
                let core = ServerCore::embedded(heap.alloc("server"), Config::default());
                let server = HyperServer::new(core, demo_routes());
                let addr = "127.0.0.1:0".parse().unwrap();
                reqguard::tokio_hyper::run(server, addr, |_| {}, async {}).map(|r| r.leaked)
            })
        });
        let err = ran
            .expect("tokio_hyper::run panicked inside a runtime")
            .expect_err("tokio_hyper::run served inside a runtime");
        assert!(err.to_string().contains("inside a tokio runtime"), "{err}");
    }

    /// `HyperServer::serve` outside a `LocalSet` panics at its first connection, as its
    /// `# Panics` says (tokio's `spawn_local`); the client sees its connection end.
    #[test]
    fn serve_outside_a_local_set_panics_at_the_first_connection() {
        super::quiet::quiet_panics();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async {
                let heap = Heap::new();
                let core = ServerCore::embedded(heap.alloc("server"), Config::default());
                let server = HyperServer::new(core, demo_routes());
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                std::thread::spawn(move || {
                    let _ = tx.send(super::util::try_get(addr, "/").is_err());
                });
                let stop = tokio::time::sleep(Duration::from_secs(10));
                tokio::time::timeout(Duration::from_secs(15), server.serve(listener, stop)).await
            })
        }));
        assert!(ran.is_err(), "serve outside a LocalSet did not panic");
        assert_eq!(
            rx.recv_timeout(super::HANG),
            Ok(true),
            "the client got an answer"
        );
    }

    /// `HyperGroup::spawn` whose `make` panics for one loop: an error, the other loops
    /// stopped, nothing hangs.
    #[test]
    fn a_hyper_group_whose_make_panics_for_one_loop_is_an_error() {
        super::quiet::quiet_panics();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let spawned = reqguard::tokio_hyper::HyperGroup::new()
                .loops(3)
                .spawn(|index| {
                    assert!(index != 1, "loop 1's make panics");
                    let heap = Heap::new();
                    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
                    HyperServer::new(core, demo_routes())
                });
            let _ = tx.send(spawned.map(|_| ()).map_err(|e| e.to_string()));
        });
        let spawned = rx.recv_timeout(super::HANG).expect("spawn hung");
        assert!(spawned.is_err(), "{spawned:?}");
    }

    /// Serves `request` (with `connection: close`) on a hyper server whose handler answers
    /// with `reply(bundle)`: the client's bytes and the report. The one harness of this
    /// module's probes.
    fn serve_reply<B>(
        request: &'static str,
        reply: impl Fn(reqguard::tokio_hyper::Bundle) -> reqguard::tokio_hyper::Reply<B>
            + Send
            + 'static,
    ) -> (Vec<u8>, reqguard::tokio_hyper::HyperReport)
    where
        B: hyper::body::Body<Data = bytes::Bytes, Error: Into<reqguard::tokio_hyper::BoxError>>
            + 'static,
    {
        use std::io::Write;
        let server = super::util::hyper_thread::HyperThread::spawn(move |core| {
            let handler = move |_this, _request, bundle: reqguard::tokio_hyper::Bundle| {
                let reply = reply(bundle);
                async move { Ok::<_, reqguard::tokio_hyper::HandlerError>(reply) }
            };
            HyperServer::new(core, handler)
        });
        let addr = server.addr;
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(super::HANG)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
        (answer, server.stop())
    }

    /// The request ended *completed*, its one outcome, and was counted served once; nothing
    /// leaked.
    fn assert_completed_once(report: &reqguard::tokio_hyper::HyperReport, case: &str) {
        let outcomes = report.outcomes;
        assert_eq!(
            (
                outcomes.completed,
                outcomes.total(),
                report.stats.served,
                report.leaked
            ),
            (1, 1, 1, 0),
            "{case}: {report}"
        );
    }

    /// Serves one `GET /` (connection: close) answered with `body`: the client's bytes and
    /// the report.
    fn serve_one(
        body: impl Fn() -> Hinted + Send + 'static,
    ) -> (Vec<u8>, reqguard::tokio_hyper::HyperReport) {
        serve_reply(GET, move |bundle| {
            bundle.respond(hyper::Response::new(body()))
        })
    }

    /// docs/hyper.md: a body that yields another length than its exact `size_hint` ends
    /// *dropped*, whatever the hint: also one past 2^61 (`u64::MAX`, which hyper writes as
    /// the `content-length`).
    #[test]
    fn a_body_whose_huge_exact_size_hint_lies_ends_dropped() {
        for hint in [1u64 << 61, 1 << 62, u64::MAX - 1, u64::MAX] {
            let (answer, report) = serve_one(move || Hinted::of(&["hello"], Some(hint), true));
            let outcomes = report.outcomes;
            assert_eq!(
                (outcomes.dropped, outcomes.total(), report.leaked),
                (1, 1, 0),
                "hint {hint}: {report} {:?}",
                String::from_utf8_lossy(&answer)
            );
        }
    }

    /// Serves one request (`request`, with `connection: close`) whose handler answers `status`
    /// with `body` and sets `fields` (`Reply::headers_mut`): the client's bytes and the report.
    fn serve_fields(
        request: &'static str,
        status: u16,
        body: &'static [u8],
        fields: &'static [(&'static str, &'static str)],
    ) -> (String, reqguard::tokio_hyper::HyperReport) {
        let (answer, report) = serve_reply(request, move |bundle| {
            let mut response =
                hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(body)));
            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
            let mut reply = bundle.respond(response);
            for (name, value) in fields {
                reply.headers_mut().append(
                    hyper::header::HeaderName::from_static(name),
                    hyper::header::HeaderValue::from_static(value),
                );
            }
            reply
        });
        (String::from_utf8_lossy(&answer).into_owned(), report)
    }

    const GET: &str = "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    const HEAD: &str = "HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

    /// A handler that sets its own `content-length` field (`Reply::headers_mut`) that is not
    /// its body's length: the answer is framed by its body, as the mio server frames it (the
    /// field is the body's), and ends *completed*. Before, hyper wrote the field as set with
    /// the body's bytes (a client reading past or short of the answer; in a debug build hyper
    /// asserted they match: the connection's task panicked, no answer, `served` counted an
    /// answer never sent, the panic uncounted). A field that is the body's length, and one a
    /// bodiless answer carries for the representation it stands for, are kept.
    #[test]
    fn a_handlers_own_content_length_that_is_not_its_bodys_is_replaced() {
        type Case = (
            &'static str,
            u16,
            &'static [u8],
            &'static [(&'static str, &'static str)],
            &'static str,
        );
        let cases: [Case; 7] = [
            (
                GET,
                200,
                b"hi",
                &[("content-length", "1000")],
                "content-length: 2\r\n",
            ),
            (
                GET,
                200,
                b"hi",
                &[("content-length", "1")],
                "content-length: 2\r\n",
            ),
            (
                GET,
                200,
                b"hi",
                &[("content-length", "2")],
                "content-length: 2\r\n",
            ),
            (
                GET,
                200,
                b"hi",
                &[("content-length", "2"), ("content-length", "2")],
                "content-length: 2\r\n",
            ),
            (
                GET,
                200,
                b"hi",
                &[("content-length", "two")],
                "content-length: 2\r\n",
            ),
            (
                HEAD,
                200,
                b"hi",
                &[("content-length", "1000")],
                "content-length: 2\r\n",
            ),
            (
                HEAD,
                200,
                b"",
                &[("content-length", "1000")],
                "content-length: 1000\r\n",
            ),
        ];
        for (request, status, body, fields, expect) in cases {
            let (answer, report) = serve_fields(request, status, body, fields);
            let case = format!("{} {status} {fields:?}", &request[..4]);
            assert!(
                answer.starts_with("HTTP/1.1 200 OK\r\n"),
                "{case}: {answer:?}"
            );
            assert!(answer.contains(expect), "{case}: {answer:?}");
            assert_eq!(
                answer.matches("content-length").count(),
                1,
                "{case}: {answer:?}"
            );
            let on_wire: &[u8] = if request == HEAD { b"" } else { body };
            assert!(
                answer
                    .as_bytes()
                    .ends_with(&[b"\r\n\r\n", on_wire].concat()),
                "{case}: {answer:?}"
            );
            assert_completed_once(&report, &case);
        }
    }

    /// Framing fields of the handler's own on bodiless answers (`204`, `304`) and a
    /// `transfer-encoding` of its own: an answer, one outcome (*completed*), no panic. With
    /// both a `transfer-encoding` and a `content-length`, hyper refused to write the head
    /// before (the connection closed, no answer): the `content-length` is removed now.
    #[test]
    fn a_handlers_own_framing_fields_on_bodiless_or_chunked_answers_are_answered_once() {
        type Case = (u16, &'static [u8], &'static [(&'static str, &'static str)]);
        let cases: [Case; 6] = [
            (204, b"hi", &[("content-length", "1000")]),
            (304, b"hi", &[("content-length", "1000")]),
            (304, b"", &[("content-length", "1000")]),
            (200, b"hi", &[("transfer-encoding", "chunked")]),
            (200, b"hi", &[("transfer-encoding", "gzip")]),
            (
                200,
                b"hi",
                &[("transfer-encoding", "chunked"), ("content-length", "2")],
            ),
        ];
        for (status, body, fields) in cases {
            let (answer, report) = serve_fields(GET, status, body, fields);
            let case = format!("{status} {body:?} {fields:?}");
            eprintln!("{case}: {answer:?}");
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{case}: {answer:?}"
            );
            assert_completed_once(&report, &case);
        }
    }

    /// A handler whose response says a version hyper cannot write (`HTTP/0.9`, `HTTP/3`:
    /// hyper's HTTP/1 writer panics on them, in release builds too) is answered as made, in
    /// HTTP/1.1 (as the mio server answers every request), and ends *completed*. Before, the
    /// panic unwound through hyper: the connection's task died, no answer, `served` counted
    /// it, the panic not. `HTTP/1.0` and `HTTP/2` (which hyper writes as `HTTP/1.1`) are
    /// written as hyper writes them.
    #[test]
    fn a_response_version_hyper_cannot_write_is_answered_in_http_1_1() {
        for (version, line) in [
            (hyper::Version::HTTP_09, "HTTP/1.1 200 OK\r\n"),
            (hyper::Version::HTTP_3, "HTTP/1.1 200 OK\r\n"),
            (hyper::Version::HTTP_2, "HTTP/1.1 200 OK\r\n"),
            (hyper::Version::HTTP_10, "HTTP/1.0 200 OK\r\n"),
        ] {
            let (answer, report) = serve_reply(GET, move |bundle| {
                let mut response = hyper::Response::new(http_body_util::Full::new(
                    bytes::Bytes::from_static(b"hi"),
                ));
                *response.version_mut() = version;
                bundle.respond(response)
            });
            let answer = String::from_utf8_lossy(&answer);
            assert!(
                answer.starts_with(line) && answer.ends_with("\r\n\r\nhi"),
                "{version:?}: {answer:?}"
            );
            assert_completed_once(&report, &format!("{version:?}"));
        }
    }

    /// A handler's status past `599` (`600`, `999`: three digits, which the `http` crate takes,
    /// but no HTTP status, RFC 9110 §15) is answered `500`, as the mio server answers any
    /// status outside `200..=599`, and its request ends *completed* with that answer.
    #[test]
    fn a_handlers_status_past_599_is_a_500_as_on_mio() {
        for status in [600, 999] {
            let (answer, report) = serve_fields(GET, status, b"hi", &[]);
            assert!(answer.starts_with("HTTP/1.1 500 "), "{status}: {answer:?}");
            let outcomes = report.outcomes;
            assert_eq!(
                (outcomes.completed, outcomes.total(), report.leaked),
                (1, 1, 0),
                "{status}: {report}"
            );
        }
    }
}
