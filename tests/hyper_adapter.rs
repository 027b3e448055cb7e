//! The hyper adapter over real sockets on 127.0.0.1: each server runs on its own thread (tokio
//! current-thread runtime + `LocalSet`, as an embedder runs it); clients are a real hyper
//! client and a raw blocking one (tests/util). Every wait is bounded.
#![cfg(feature = "hyper")]

mod util;

use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use reqguard::engines::{Embedded, Handle, Heap};
use reqguard::tokio_hyper::{
    demo_routes, Bundle, Handler, HandlerError, HyperReport, HyperServer, Options, Reply,
};
use reqguard::{AbortReason, Config, DowngradePolicy, ServerCore};
use util::{wait_until, Client};

type E = Embedded<&'static str>;
type This = Handle<&'static str>;

/// A server on its own thread, stopped by a oneshot.
struct TestServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<HyperReport>>,
}

impl TestServer {
    /// Runs the server `make` builds (on the server's thread: its state is `!Send`).
    fn spawn<H: Handler<E>>(make: impl FnOnce() -> HyperServer<E, (), H> + Send + 'static) -> Self {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let server = make();
            let stop = async {
                let _ = stopped.await;
            };
            let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
            reqguard::tokio_hyper::run(server, loopback, |a| addr_tx.send(a).unwrap(), stop)
                .expect("bind 127.0.0.1:0")
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server's address");
        TestServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Begins the stop and waits until the listener has closed (the stop has run by then:
    /// the listener closes in the same turn as admission).
    fn begin_stop(&mut self) {
        let _ = self.stop.take().expect("stopped once").send(());
        let addr = self.addr;
        wait_until("the listener to close", || {
            TcpStream::connect(addr).is_err()
        });
    }

    /// Stops (if not begun) and returns the report once `serve` returned.
    fn join(mut self) -> HyperReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let thread = self.thread.take().unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while !thread.is_finished() {
            assert!(Instant::now() < until, "the server did not finish its stop");
            thread::sleep(Duration::from_millis(5));
        }
        thread.join().expect("the server thread")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The demo routes on a heap; the wrapper is collected right after stop when `collect`.
fn demo(options: Options, collect: bool) -> HyperServer<E, (), impl Handler<E>> {
    let heap = Heap::new();
    let policy = if collect {
        DowngradePolicy::OnStop
    } else {
        DowngradePolicy::OnDrain
    };
    let core = ServerCore::embedded(
        heap.alloc("server"),
        Config::default().with_downgrade(policy),
    );
    HyperServer::new(core, demo_routes())
        .options(options)
        .after_stop(move || {
            if collect {
                heap.collect();
            }
        })
}

fn fast_stop() -> Options {
    Options::default()
        .with_stop_linger(Duration::from_millis(100))
        .with_drain_timeout(Duration::from_secs(5))
}

/// A hyper client connection on its own current-thread runtime.
struct HyperClient {
    runtime: tokio::runtime::Runtime,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl HyperClient {
    fn connect(addr: SocketAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sender = runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            sender
        });
        HyperClient { runtime, sender }
    }

    /// Sends a request; returns the status, whether it says `connection: close`, and the body.
    fn send(&mut self, method: &str, path: &str, body: &'static str) -> (u16, bool, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "test")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        self.runtime.block_on(async {
            let response =
                tokio::time::timeout(Duration::from_secs(10), self.sender.send_request(request))
                    .await
                    .expect("an answer in time")
                    .expect("an answer");
            let close = response
                .headers()
                .get("connection")
                .is_some_and(|v| v == "close");
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, close, String::from_utf8(body.to_vec()).unwrap())
        })
    }
}

#[test]
fn answers_200_and_keeps_the_connection_alive() {
    let server = TestServer::spawn(|| demo(fast_stop(), false));
    let mut client = HyperClient::connect(server.addr);
    assert_eq!(client.send("GET", "/", ""), (200, false, "hello".into()));
    assert_eq!(
        client.send("POST", "/echo", "ping"),
        (200, false, "ping".into())
    );
    assert_eq!(client.send("GET", "/", ""), (200, false, "hello".into()));
    drop(client);
    let report = server.join();
    assert_eq!(
        report.stats.connections, 1,
        "three requests over one kept-alive connection"
    );
    assert_eq!((report.stats.served, report.outcomes.completed), (3, 3));
    assert_eq!(report.leaked, 0, "{report}");
}

#[test]
fn after_stop_and_collect_a_kept_alive_request_gets_503_close_and_the_ledger_is_at_0() {
    let options = fast_stop().with_stop_linger(Duration::from_secs(5));
    let mut server = TestServer::spawn(move || demo(options, true));
    let mut kept = HyperClient::connect(server.addr);
    assert_eq!(kept.send("GET", "/", "").0, 200);
    server.begin_stop();
    // The PR's late request: the wrapper is finalized, the upgrade fails, nothing is taken.
    assert_eq!(
        kept.send("GET", "/", ""),
        (503, true, "Service Unavailable".into())
    );
    drop(kept);
    let report = server.join();
    assert_eq!(
        (report.stats.refused, report.stats.refused_finalized),
        (1, 1),
        "{report}"
    );
    assert_eq!((report.stats.served, report.outcomes.completed), (1, 1));
    assert_eq!(report.leaked, 0, "{report}");
    assert!(report.leaks.is_empty());
}

/// The graceful shutdown reaches every kept-alive connection, idle ones woken for it: they
/// close at the end of the linger, and the drain completes then, not at its deadline.
#[test]
fn idle_kept_alive_connections_close_at_the_end_of_the_linger() {
    let options = fast_stop().with_drain_timeout(Duration::from_secs(10));
    let mut server = TestServer::spawn(move || demo(options, false));
    let mut idle: Vec<Client> = (0..3).map(|_| Client::connect(server.addr)).collect();
    for client in &mut idle {
        let answer = client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!((answer.status, answer.closes()), (200, false));
    }
    server.begin_stop();
    for client in &mut idle {
        assert!(client.is_closed_by_server(), "an idle connection closes");
    }
    let report = server.join();
    // They closed at the linger's end (100 ms), not at the deadline (10 s): the drain completed
    // with them, by the server's own account (no wall-clock bound: a loaded machine is slow).
    assert!(report.deadline.is_none(), "the drain completed: {report}");
    assert_eq!((report.force_closed, report.leaked), (0, 0), "{report}");
}

#[test]
fn the_drain_completes_only_after_the_last_connection_closes() {
    let options = fast_stop();
    let mut server = TestServer::spawn(move || demo(options, true));
    // A request head half sent before the stop: no ticket is out, but the connection is.
    let mut slow = Client::connect(server.addr);
    slow.send(b"GET / HTTP/1.1\r\nhost: test\r\n");
    let mut idle = Client::connect(server.addr);
    assert_eq!(
        idle.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").status,
        200
    );
    server.begin_stop();
    let stopped = Instant::now();
    // The graceful shutdown closes the idle connection after the linger...
    assert!(idle.is_closed_by_server(), "the idle connection closes");
    // ...but the half-sent request's connection stays, and its request is refused 503.
    thread::sleep(Duration::from_millis(400));
    slow.send(b"\r\n");
    let answer = slow.answer().expect("an answer");
    let held = stopped.elapsed();
    assert_eq!((answer.status, answer.closes()), (503, true));
    assert!(slow.is_closed_by_server());
    let report = server.join();
    let drain = Duration::from_secs_f64(report.drain_ms() / 1e3);
    // It waited for the last connection (held 400 ms at least), and completed with it rather
    // than at its deadline (5 s).
    assert!(
        drain >= Duration::from_millis(400),
        "the drain waited for the last connection: {drain:?} (held {held:?})"
    );
    assert!(report.deadline.is_none(), "the drain completed: {report}");
    assert_eq!(
        (report.stats.refused_finalized, report.leaked),
        (1, 0),
        "{report}"
    );
}

/// A response body fed by a channel: a streaming body whose end the test controls.
struct ChannelBody(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// A handler streaming `chunks` chunks, one every `every`, from a local task that stops when
/// the request's signal fires; each abort reason goes to `aborts`.
fn streaming(
    chunks: usize,
    every: Duration,
    aborts: mpsc::Sender<AbortReason>,
) -> impl Handler<E, Body = ChannelBody> {
    streaming_noting_its_end(chunks, every, aborts, Arc::default())
}

/// [`streaming`], noting in `ended` when the last chunk was sent (the body ends as its sender
/// drops, right after).
fn streaming_noting_its_end(
    chunks: usize,
    every: Duration,
    aborts: mpsc::Sender<AbortReason>,
    ended: Arc<Mutex<Option<Instant>>>,
) -> impl Handler<E, Body = ChannelBody> {
    move |_: This, _: Request<Incoming>, bundle: Bundle| {
        let aborts = aborts.clone();
        let ended = ended.clone();
        async move {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            bundle
                .signal()
                .on_abort(move |reason| aborts.send(reason).unwrap());
            let aborted = bundle.aborted();
            tokio::task::spawn_local(async move {
                tokio::pin!(aborted);
                for i in 0..chunks {
                    tokio::select! {
                        _ = &mut aborted => return,
                        () = tokio::time::sleep(every) => {}
                    }
                    if tx.send(Bytes::from(format!("chunk {i}\n"))).is_err() {
                        return;
                    }
                }
                *ended.lock().unwrap() = Some(Instant::now());
            });
            Ok::<_, HandlerError>(bundle.respond(Response::new(ChannelBody(rx))))
        }
    }
}

fn core(collect_on_stop: bool) -> (ServerCore<E>, Heap) {
    let heap = Heap::new();
    let policy = if collect_on_stop {
        DowngradePolicy::OnStop
    } else {
        DowngradePolicy::OnDrain
    };
    let core = ServerCore::embedded(
        heap.alloc("server"),
        Config::default().with_downgrade(policy),
    );
    (core, heap)
}

#[test]
fn a_client_gone_mid_body_fires_the_abort_once_and_ends_as_client_gone() {
    let (aborts_tx, aborts) = mpsc::channel();
    let server = TestServer::spawn(move || {
        let handler = streaming(10_000, Duration::from_millis(5), aborts_tx);
        HyperServer::new(core(false).0, handler).options(fast_stop())
    });
    let mut client = Client::connect(server.addr);
    client.send(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut head = [0u8; 64];
    std::io::Read::read(&mut client.stream(), &mut head).expect("the head and a first chunk");
    drop(client); // mid-body
    let reason = aborts
        .recv_timeout(Duration::from_secs(10))
        .expect("the abort fired");
    assert_eq!(reason, AbortReason::ClientDisconnected);
    let report = server.join();
    assert!(aborts.try_recv().is_err(), "the abort fired once");
    assert_eq!(report.outcomes.client_gone, 1, "{report}");
    assert_eq!(report.outcomes.total(), 1);
    assert_eq!(report.leaked, 0, "{report}");
}

#[test]
fn a_client_gone_while_the_handler_awaits_drops_its_future_and_the_handler_sees_the_abort() {
    let (aborts_tx, aborts) = mpsc::channel();
    let (awaiting_tx, awaiting) = mpsc::channel();
    let server = TestServer::spawn(move || {
        let handler = move |_: This, _: Request<Incoming>, bundle: Bundle| {
            let (aborts, awaiting) = (aborts_tx.clone(), awaiting_tx.clone());
            async move {
                bundle
                    .signal()
                    .on_abort(move |reason| aborts.send(reason).unwrap());
                awaiting.send(()).unwrap();
                tokio::time::sleep(Duration::from_secs(30)).await; // never reached
                Ok::<_, HandlerError>(bundle.respond(Response::new(Empty::<Bytes>::new())))
            }
        };
        HyperServer::new(core(false).0, handler).options(fast_stop())
    });
    let mut client = Client::connect(server.addr);
    client.send(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n");
    awaiting
        .recv_timeout(util::WAIT_BOUND)
        .expect("the handler is awaiting");
    drop(client);
    let reason = aborts
        .recv_timeout(Duration::from_secs(10))
        .expect("the abort fired");
    assert_eq!(reason, AbortReason::ClientDisconnected);
    let report = server.join();
    assert!(aborts.try_recv().is_err(), "the abort fired once");
    assert_eq!(
        (report.outcomes.client_gone, report.outcomes.total()),
        (1, 1),
        "{report}"
    );
    assert_eq!(report.stats.served, 0, "no answer was written");
    assert_eq!(report.leaked, 0, "{report}");
}

#[test]
fn a_streaming_body_keeps_the_ticket_until_its_last_frame() {
    let (aborts_tx, aborts) = mpsc::channel();
    let last_frame = Arc::new(Mutex::new(None));
    let drained = Arc::new(Mutex::new(None));
    let (sent, noted) = (last_frame.clone(), drained.clone());
    let mut server = TestServer::spawn(move || {
        let handler = streaming_noting_its_end(8, Duration::from_millis(60), aborts_tx, sent);
        HyperServer::new(core(false).0, handler)
            .options(fast_stop())
            .after_drain(move || *noted.lock().unwrap() = Some(Instant::now()))
    });
    let mut client = Client::connect(server.addr);
    client.send(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut first = [0u8; 16];
    std::io::Read::read(&mut client.stream(), &mut first).expect("the head");
    // The handler has returned; its body is streaming. Stop: the drain must wait for it.
    server.begin_stop();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut client.stream(), &mut rest).expect("the whole body");
    let body = String::from_utf8_lossy(&rest);
    assert!(body.contains("chunk 7\n"), "{body}");
    let report = server.join();
    // Events, not durations: the drain ended (its after_drain hook ran) after the body's
    // last chunk was sent (a client-side clock read 30 ms late under load before).
    let (last_frame, drained) = (last_frame.lock().unwrap(), drained.lock().unwrap());
    let (last_frame, drained) = (
        last_frame.expect("the last chunk was sent"),
        drained.expect("the drain ended"),
    );
    assert!(
        drained >= last_frame,
        "the drain ended with the last frame: drained {:?} before it",
        last_frame - drained
    );
    assert_eq!(
        (report.outcomes.completed, report.outcomes.total()),
        (1, 1),
        "{report}"
    );
    assert!(
        aborts.try_recv().is_err(),
        "a completed request's signal never fires"
    );
    assert_eq!(report.leaked, 0, "{report}");
}

#[test]
fn a_handler_panic_is_a_500_and_the_next_request_on_the_connection_works() {
    let server = TestServer::spawn(|| demo(fast_stop(), false));
    let mut client = HyperClient::connect(server.addr);
    assert_eq!(client.send("GET", "/panic", "").0, 500);
    assert_eq!(client.send("GET", "/", ""), (200, false, "hello".into()));
    drop(client);
    let report = server.join();
    assert_eq!(report.stats.connections, 1);
    assert_eq!(
        (
            report.stats.panics,
            report.outcomes.dropped,
            report.outcomes.completed
        ),
        (1, 1, 1)
    );
    assert_eq!(report.leaked, 0, "{report}");
}

#[test]
fn a_handler_error_is_a_500_and_ends_dropped_with_its_signal_fired() {
    let (aborts_tx, aborts) = mpsc::channel();
    let server = TestServer::spawn(move || {
        let handler = move |_: This, _: Request<Incoming>, bundle: Bundle| {
            let aborts = aborts_tx.clone();
            async move {
                bundle
                    .signal()
                    .on_abort(move |reason| aborts.send(reason).unwrap());
                drop(bundle);
                Err::<Reply<Empty<Bytes>>, HandlerError>("the handler gave up".into())
            }
        };
        HyperServer::new(core(false).0, handler).options(fast_stop())
    });
    let mut client = Client::connect(server.addr);
    assert_eq!(
        client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").status,
        500
    );
    assert_eq!(
        client.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").status,
        500,
        "the connection serves on"
    );
    drop(client);
    let report = server.join();
    assert_eq!(
        aborts.try_iter().collect::<Vec<_>>(),
        [AbortReason::Dropped; 2] // the reason names the outcome (issue 9)
    );
    assert_eq!(
        (report.stats.failed, report.outcomes.dropped),
        (2, 2),
        "{report}"
    );
    // The report says so too: the exit JSON and the printed report (they left it out).
    assert!(
        report.to_json().contains("\"failed\":2,"),
        "{}",
        report.to_json()
    );
    assert!(
        report
            .to_string()
            .lines()
            .any(|line| line.split_whitespace().take(2).eq(["failed", "2"])),
        "{report}"
    );
    assert_eq!(report.leaked, 0, "{report}");
}

#[test]
fn a_bounded_stop_under_load_leaks_nothing() {
    let mut server = TestServer::spawn(|| demo(fast_stop(), true));
    let addr = server.addr;
    let until = Instant::now() + Duration::from_millis(400);
    let loaders: Vec<_> = (0..4)
        .map(|i| {
            thread::spawn(move || {
                let (mut ok, mut refused) = (0u64, 0u64);
                let mut client = Client::connect(addr);
                for n in 0..20_000 {
                    let request = if (n + i) % 3 == 0 {
                        "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nping"
                    } else {
                        "GET /delay?ms=1 HTTP/1.1\r\nhost: x\r\n\r\n"
                    };
                    client.send(request.as_bytes());
                    match client.answer() {
                        Ok(a) if a.status == 200 => ok += 1,
                        Ok(a) if a.status == 503 => refused += 1,
                        Ok(a) => panic!("unexpected {}", a.status),
                        Err(_) => break, // closed by the stop
                    }
                    if Instant::now() > until + Duration::from_millis(300) {
                        break;
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    thread::sleep(until - Instant::now());
    server.begin_stop();
    let (mut ok, mut refused) = (0, 0);
    for loader in loaders {
        let (o, r) = loader.join().unwrap();
        ok += o;
        refused += r;
    }
    let report = server.join();
    assert!(ok > 0, "the load ran");
    assert_eq!(report.stats.refused, refused, "{report}");
    assert_eq!(report.outcomes.completed, ok, "{report}");
    assert_eq!(report.outcomes.total(), report.stats.served);
    assert!(
        report.deadline.is_none(),
        "drained within the deadline: {report}"
    );
    assert_eq!(report.leaked, 0, "{report}");
}

#[test]
fn the_deadline_aborts_then_force_closes_and_reports_what_was_out() {
    let (aborts_tx, aborts) = mpsc::channel();
    let (awaiting_tx, awaiting) = mpsc::channel();
    let mut server = TestServer::spawn(move || {
        // A handler that ignores its signal: only the force-close ends its request.
        let handler = move |_: This, _: Request<Incoming>, bundle: Bundle| {
            let (aborts, awaiting) = (aborts_tx.clone(), awaiting_tx.clone());
            async move {
                bundle
                    .signal()
                    .on_abort(move |reason| aborts.send(reason).unwrap());
                awaiting.send(()).unwrap();
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, HandlerError>(bundle.respond(Response::new(Empty::<Bytes>::new())))
            }
        };
        let options = fast_stop().with_drain_timeout(Duration::from_millis(300));
        HyperServer::new(core(false).0, handler).options(options)
    });
    let mut stuck = Client::connect(server.addr);
    stuck.send(b"GET /stuck HTTP/1.1\r\nhost: x\r\n\r\n");
    awaiting
        .recv_timeout(util::WAIT_BOUND)
        .expect("the handler is awaiting");
    server.begin_stop();
    assert!(stuck.is_closed_by_server(), "force-closed");
    let report = server.join();
    let found = report.deadline.as_ref().expect("the deadline passed");
    assert_eq!(found.aborted_signals, 1, "{report}");
    assert!(!found.complete);
    let out = found.outstanding.to_string();
    assert!(
        out.contains("1 pending-request ticket"),
        "the report names what was out: {out}"
    );
    assert_eq!(
        aborts.try_iter().collect::<Vec<_>>(),
        [AbortReason::DrainDeadline],
        "fired once"
    );
    assert_eq!(report.force_closed, 1);
    assert_eq!(
        (report.outcomes.deadline_aborted, report.outcomes.total()),
        (1, 1),
        "{report}"
    );
    assert_eq!(
        report.leaked, 0,
        "force-closing released everything: {report}"
    );
}

#[test]
fn unready_then_drain_with_the_port_open_and_health_routes_taking_nothing() {
    let options = Options::default()
        .with_health_checks(true)
        .with_keep_listening(true)
        .with_unready(Duration::from_millis(400))
        .with_stop_linger(Duration::ZERO);
    let mut server = TestServer::spawn(move || demo(options, true));
    let addr = server.addr;
    assert_eq!(util::get(addr, "/healthz/ready").status, 200);
    // A request in flight keeps the drain (and so the port) open for a while.
    let mut delayed = Client::connect(addr);
    delayed.send(b"GET /delay?ms=1500 HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(util::get(addr, "/").status, 200); // (answered after the delay was admitted)
    let _ = server.stop.take().unwrap().send(());
    wait_until("readiness to turn 503", || {
        util::get(addr, "/healthz/ready").status == 503
    });
    // Unready: still admitted and answered, but every answer closes its connection.
    let unready = util::get(addr, "/");
    assert_eq!(
        (unready.status, unready.text(), unready.closes()),
        (200, "hello", true)
    );
    // Then the drain: the port still accepts, admission is closed, the probe stays live.
    wait_until("admission to close", || util::get(addr, "/").status == 503);
    assert_eq!(util::get(addr, "/healthz/live").status, 200);
    let report = server.join();
    assert!(
        report.stats.served >= 1 && report.stats.refused >= 1,
        "{report}"
    );
    assert_eq!(
        report.outcomes.total(),
        report.stats.served,
        "probes take nothing"
    );
    assert_eq!(report.leaked, 0, "{report}");
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener closed when the drain ended"
    );
}

#[test]
fn the_demo_routes_answer_head_405_with_allow_501_and_404_as_the_mio_routes_do() {
    let server = TestServer::spawn(|| demo(fast_stop(), false));
    // HEAD: the GET route's head, its length, and no body.
    let mut head = TcpStream::connect(server.addr).unwrap();
    std::io::Write::write_all(
        &mut head,
        b"HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut head, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("content-length: 5\r\n") && answer.ends_with("\r\n\r\n"),
        "{answer}"
    );
    let mut client = Client::connect(server.addr);
    let mut got = Vec::new();
    for request in [
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi",
        "GET /echo HTTP/1.1\r\nhost: x\r\n\r\n",
        "BREW / HTTP/1.1\r\nhost: x\r\n\r\n",
        "get / HTTP/1.1\r\nhost: x\r\n\r\n",
        "PUT /missing HTTP/1.1\r\nhost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: x\r\n\r\n",
    ] {
        let answer = client.request(request);
        got.push((answer.status, answer.header("allow").map(str::to_owned)));
    }
    assert_eq!(
        got,
        [
            (405, Some("GET, HEAD".into())),
            (405, Some("POST".into())),
            (501, None),
            (501, None),
            (404, None),
            (200, None),
        ]
    );
    drop(client);
    let report = server.join();
    assert_eq!(report.leaked, 0, "{report}");
}

/// Answers with no body on the wire (RFC 9110 section 6.4.1: to `HEAD`, `204`, `304`) are
/// complete once their head is written, even when the handler gave them a body: hyper drops
/// such a body unpolled, and before, the adapter took that drop for a client gone (the signal
/// fired `ClientDisconnected` on an answered request).
#[test]
fn answers_without_a_body_on_the_wire_end_completed_and_fire_nothing() {
    let (aborts_tx, aborts) = mpsc::channel();
    let server = TestServer::spawn(move || {
        let handler = move |_: This, request: Request<Incoming>, bundle: Bundle| {
            let aborts = aborts_tx.clone();
            async move {
                bundle
                    .signal()
                    .on_abort(move |reason| aborts.send(reason).unwrap());
                let status = match request.uri().path() {
                    "/204" => 204,
                    "/304" => 304,
                    _ => 200,
                };
                let mut response = Response::new(Full::new(Bytes::from_static(b"a body")));
                *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                Ok::<_, HandlerError>(bundle.respond(response))
            }
        };
        HyperServer::new(core(false).0, handler).options(fast_stop())
    });
    let mut client = HyperClient::connect(server.addr);
    assert_eq!(client.send("HEAD", "/", "").0, 200);
    assert_eq!(client.send("GET", "/204", ""), (204, false, String::new()));
    assert_eq!(client.send("GET", "/304", ""), (304, false, String::new()));
    assert_eq!(client.send("GET", "/", ""), (200, false, "a body".into()));
    drop(client);
    let report = server.join();
    assert_eq!(
        (report.outcomes.completed, report.outcomes.total()),
        (4, 4),
        "{report}"
    );
    assert!(aborts.try_recv().is_err(), "no answered request fires");
    assert_eq!(report.leaked, 0, "{report}");
}

/// At the connection limit, the connection reading its head the longest makes room for a
/// newcomer (as on the mio loops): it gets `408` and a clean close, the newcomer is served,
/// and the report counts the eviction. Before, every newcomer got `503` until the slow
/// heads' header timeout. That timeout is a minute here: at its default 5 s the other slow
/// head got its own `408` on a loaded machine before the test read it (round 33's whole-suite
/// run at load 28: `[408, 408]`), an answer of the clock, not of the eviction.
#[test]
fn at_the_limit_a_slow_head_is_evicted_with_408_for_a_newcomer() {
    let server = TestServer::spawn(|| {
        let options = fast_stop()
            .with_max_connections(2)
            .with_idle_timeout(Duration::from_secs(60));
        demo(options, false)
    });
    let mut slow: Vec<Client> = (0..2)
        .map(|_| {
            let mut client = Client::connect(server.addr);
            client.send(b"GET / HTTP/1.1\r\nhost: x\r\n");
            client
        })
        .collect();
    // Both heads read by the server (its sockets empty), then past the 100 ms a connection
    // must be silent: an age, not a synchronisation (longer on a loaded machine is as good).
    slow.iter()
        .for_each(|client| util::wait_read_by_server(client.stream()));
    thread::sleep(Duration::from_millis(250));
    let mut newcomer = Client::connect(server.addr);
    let answer = newcomer.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!((answer.status, answer.text()), (200, "hello"));
    // The evicted one's `408` was written before the newcomer was served.
    let evicted: Vec<u16> = slow
        .iter_mut()
        .filter_map(|client| {
            let wait = Some(Duration::from_millis(300));
            client.stream().set_read_timeout(wait).unwrap();
            client.answer().ok().map(|a| a.status)
        })
        .collect();
    assert_eq!(evicted, [408], "one slow head evicted with 408");
    drop((slow, newcomer));
    let report = server.join();
    assert_eq!(report.stats.connections_evicted, 1, "{report}");
    assert_eq!(report.stats.connections_refused, 0, "{report}");
    assert_eq!(report.leaked, 0, "{report}");
}

/// Never evicted: a connection whose request is in its handler, nor one whose answer is
/// still being written (its body ended, the socket full: a client not reading yet). The
/// newcomer gets `503`, and the slow reader then gets its whole answer.
#[test]
fn at_the_limit_requests_in_progress_and_answers_on_their_way_are_never_evicted() {
    const BIG: usize = 8 << 20;
    let (release_tx, release) = tokio::sync::watch::channel(false);
    let server = TestServer::spawn(move || {
        let handler = move |_: This, request: Request<Incoming>, bundle: Bundle| {
            let mut release = release.clone();
            async move {
                if request.uri().path() == "/wait" {
                    let _ = release.wait_for(|go| *go).await;
                    return Ok::<_, HandlerError>(
                        bundle.respond(Response::new(Full::new(Bytes::from_static(b"released")))),
                    );
                }
                let big = Bytes::from(vec![b'x'; BIG]);
                Ok(bundle.respond(Response::new(Full::new(big))))
            }
        };
        HyperServer::new(core(false).0, handler).options(fast_stop().with_max_connections(2))
    });
    let mut waiting = Client::connect(server.addr);
    waiting.send(b"GET /wait HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut reader = Client::connect(server.addr);
    reader.send(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n"); // not read yet
                                                          // Both requests read by the server (its sockets empty): one in its handler, the other's
                                                          // answer filling its socket. Then past the 100 ms that make a silent connection evictable:
                                                          // an age, not a synchronisation (longer on a loaded machine is as good).
    util::wait_read_by_server(waiting.stream());
    util::wait_read_by_server(reader.stream());
    thread::sleep(Duration::from_millis(300));
    let mut newcomer = Client::connect(server.addr);
    newcomer.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(newcomer.answer().expect("an answer").status, 503);
    let big = reader.answer().expect("the whole answer");
    assert_eq!((big.status, big.body.len()), (200, BIG));
    release_tx.send(true).unwrap();
    assert_eq!(waiting.answer().expect("its answer").text(), "released");
    drop((waiting, reader, newcomer));
    let report = server.join();
    assert_eq!(report.stats.connections_evicted, 0, "{report}");
    assert_eq!(report.stats.connections_refused, 1, "{report}");
    assert_eq!(report.outcomes.completed, 2, "{report}");
}

/// An idle kept-alive connection makes room too, once the eviction has seen it silent for
/// 100 ms: its answer is its last sign of life, which the scan notes (no clock read per
/// request), so the first newcomer after that answer gets `503`, a later one evicts it (a
/// plain close: it was not mid-head).
#[test]
fn at_the_limit_an_idle_kept_alive_connection_makes_room_once_seen_silent() {
    let server = TestServer::spawn(|| demo(fast_stop().with_max_connections(1), false));
    let mut idle = Client::connect(server.addr);
    assert_eq!(
        idle.request("GET / HTTP/1.1\r\nhost: x\r\n\r\n").status,
        200
    );
    let first = Client::connect(server.addr).request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(first.status, 503, "its answer was news to the scan");
    thread::sleep(Duration::from_millis(250));
    let second = Client::connect(server.addr).request("GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!((second.status, second.text()), (200, "hello"));
    assert!(
        idle.is_closed_by_server(),
        "evicted: closed without an answer"
    );
    drop(idle);
    let report = server.join();
    assert_eq!(
        (
            report.stats.connections_evicted,
            report.stats.connections_refused
        ),
        (1, 1),
        "{report}"
    );
}

/// `after_stop` and `after_drain` hooks add up (each runs, in the order set), and one that
/// panics is caught: the others run, the stop goes on and `serve` returns its report. Before,
/// a hook replaced the one set before it, and a panic unwound out of `serve` (the report lost,
/// every connection force-closed).
#[test]
fn stop_and_drain_hooks_add_up_and_a_panicking_one_is_caught() {
    let (ran_tx, ran) = mpsc::channel();
    let server = TestServer::spawn(move || {
        let [a, b, c, d] = [0; 4].map(|_| ran_tx.clone());
        demo(fast_stop(), false)
            .after_stop(move || a.send("stop 1").unwrap())
            .after_stop(|| panic!("a stop hook panics on purpose"))
            .after_stop(move || b.send("stop 2").unwrap())
            .after_drain(move || c.send("drain 1").unwrap())
            .after_drain(|| panic!("a drain hook panics on purpose"))
            .after_drain(move || d.send("drain 2").unwrap())
    });
    let mut client = HyperClient::connect(server.addr);
    assert_eq!(client.send("GET", "/", "").0, 200);
    drop(client);
    let report = server.join();
    assert_eq!(report.outcomes.completed, 1, "{report}");
    let order: Vec<&str> = ran.try_iter().collect();
    assert_eq!(order, ["stop 1", "stop 2", "drain 1", "drain 2"]);
}

/// A panic payload whose own `Drop` panics (`std::panic::panic_any`: user code too).
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a panic payload panics on drop, on purpose");
    }
}

/// Whatever a handler's or a hook's panic payload does when dropped, the panic is still a
/// `500` (the connection keeps serving) or a caught hook: the payload is dropped caught.
/// Before, dropping it unwound into hyper (the connection died unanswered) or out of `serve`.
#[test]
fn panics_whose_payload_panics_on_drop_are_still_caught() {
    let server = TestServer::spawn(move || {
        let handler = move |_: This, request: Request<Incoming>, bundle: Bundle| {
            if request.uri().path() == "/sync" {
                std::panic::panic_any(PanicsOnDrop); // before the future exists
            }
            async move {
                if request.uri().path() == "/async" {
                    std::panic::panic_any(PanicsOnDrop);
                }
                let body = Full::new(Bytes::from_static(b"ok"));
                Ok::<_, HandlerError>(bundle.respond(Response::new(body)))
            }
        };
        HyperServer::new(core(false).0, handler)
            .options(fast_stop())
            .after_stop(|| std::panic::panic_any(PanicsOnDrop))
    });
    let mut client = HyperClient::connect(server.addr);
    assert_eq!(client.send("GET", "/sync", "").0, 500);
    assert_eq!(client.send("GET", "/async", "").0, 500);
    assert_eq!(client.send("GET", "/", ""), (200, false, "ok".into()));
    drop(client);
    let report = server.join();
    assert_eq!(report.stats.panics, 2, "{report}");
    assert_eq!(
        (report.outcomes.dropped, report.outcomes.completed),
        (2, 1),
        "{report}"
    );
    assert_eq!(report.leaked, 0, "{report}");
}
