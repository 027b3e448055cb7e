//! QA probes, round 14b, of the hyper adapter's public API as a hostile or careless embedder
//! uses it: a force signal alone, the refusal counts both stacks write under one exit-JSON key,
//! a `serve` future dropped with the embedder's hooks and handler in it, then handlers that
//! spawn tasks holding their request, bodies that fail, and servers dropped unstopped. Public
//! API only. Each test that found a bug failed on `main` before its fix (the test's doc says
//! so); the others pin a documented behaviour no other test pinned.
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::handlers;
use crate::quiet;
use crate::util;

use handlers::CountingLater;

use std::future::{pending, Future};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use reqguard::engines::{Embedded, Heap};
use reqguard::tokio_hyper::{Bundle, HandlerError, HyperReport, HyperServer, Options, Reply};
use reqguard::{Config, Exhaustion, ServerCore};

use util::{bounded, wait_until};

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(20);

type Engine = Embedded<&'static str>;

/// The value of `"key":` in a JSON line (the first one).
fn json_field<'j>(json: &'j str, key: &str) -> &'j str {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    let rest = &json[at + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    &rest[..end]
}

/// The stop and force signals of a [`Serving`], for the test and for its handlers alike.
#[derive(Clone)]
struct Remote {
    stop: Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
    force: Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
}

impl Remote {
    fn stop(&self) {
        let _ = self.stop.lock().unwrap().take().map(|stop| stop.send(()));
    }

    fn force(&self) {
        let _ = self
            .force
            .lock()
            .unwrap()
            .take()
            .map(|force| force.send(()));
    }
}

/// A single `HyperServer` on a thread of its own (its runtime and `LocalSet`), served with
/// `serve_with_force`: the test holds both signals.
struct Serving {
    addr: SocketAddr,
    remote: Remote,
    report: mpsc::Receiver<HyperReport>,
}

impl Serving {
    fn spawn<H: reqguard::tokio_hyper::Handler<Engine, ()>>(
        config: Config,
        build: impl FnOnce(ServerCore<Engine>) -> HyperServer<Engine, (), H> + Send + 'static,
    ) -> Serving {
        Serving::spawn_remote(config, move |core, _| build(core))
    }

    /// As [`spawn`](Serving::spawn); `build` gets the signals too.
    fn spawn_remote<H: reqguard::tokio_hyper::Handler<Engine, ()>>(
        config: Config,
        build: impl FnOnce(ServerCore<Engine>, Remote) -> HyperServer<Engine, (), H> + Send + 'static,
    ) -> Serving {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (report_tx, report) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (force, force_rx) = tokio::sync::oneshot::channel::<()>();
        let remote = Remote {
            stop: Arc::new(std::sync::Mutex::new(Some(stop))),
            force: Arc::new(std::sync::Mutex::new(Some(force))),
        };
        let theirs = remote.clone();
        std::thread::spawn(move || {
            let heap = Heap::new();
            let core = ServerCore::embedded(heap.alloc("server"), config);
            let server = build(core, theirs);
            let report = crate::local_set::block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                // A dropped sender is no signal: it never resolves.
                let stop = async {
                    if stop_rx.await.is_err() {
                        pending::<()>().await;
                    }
                };
                let force = async {
                    if force_rx.await.is_err() {
                        pending::<()>().await;
                    }
                };
                Box::new(server.serve_with_force(listener, stop, force).await)
            });
            let _ = report_tx.send(*report);
        });
        let addr = addr_rx.recv_timeout(HANG).expect("the server's address");
        Serving {
            addr,
            remote,
            report,
        }
    }

    fn stop(&mut self) {
        self.remote.stop();
    }

    fn force(&mut self) {
        self.remote.force();
    }

    /// The report, once `serve` returned; `None` if it did not within [`HANG`].
    fn report(&self) -> Option<HyperReport> {
        self.report.recv_timeout(HANG).ok()
    }
}

/// `GET /` on a new connection, sent and left to wait for its answer.
fn send_get(addr: SocketAddr) -> TcpStream {
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    client
}

/// The first line of what `client` reads until the server closes or a whole head arrived.
fn status_line(client: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

/// A handler that counts its requests and holds each until its signal fires (the stop's
/// deadline or force-close), never answering.
fn holds(entered: Arc<AtomicUsize>) -> impl reqguard::tokio_hyper::Handler<Engine, ()> {
    move |_this, _request, bundle: Bundle| {
        entered.fetch_add(1, Ordering::SeqCst);
        async move {
            bundle.aborted().await;
            pending::<Result<Reply<Full<Bytes>>, HandlerError>>().await
        }
    }
}

/// QA embed14b-1. A single `HyperServer` served with `serve_with_force` whose force resolves
/// and whose stop never does (a second SIGTERM with the first lost, or an embedder that wires
/// only its "kill now" signal): a `HyperGroupStop::force` alone stops a group (and
/// `GroupStop::force` a mio group), and the rustdoc says the force "skips to the end at once".
/// Before the fix the force was not polled until the stop came: the server served on, its
/// request held, and `serve` never returned.
#[test]
fn a_force_alone_stops_a_single_hyper_server() {
    let entered = Arc::new(AtomicUsize::new(0));
    let counts = Arc::clone(&entered);
    let stopped = Arc::new(AtomicBool::new(false));
    let seen_stop = Arc::clone(&stopped);
    let mut server = Serving::spawn(Config::default(), move |core| {
        HyperServer::new(core, holds(counts))
            .options(Options::default().with_drain_timeout(Duration::from_secs(3600)))
            .after_stop(move || seen_stop.store(true, Ordering::SeqCst))
    });
    let mut client = send_get(server.addr);
    wait_until("the request to be admitted", || {
        entered.load(Ordering::SeqCst) == 1
    });
    server.force();
    let report = server
        .report()
        .expect("a force alone did not stop the server");
    assert!(stopped.load(Ordering::SeqCst), "the after_stop hooks ran");
    assert!(report.forced, "{report}");
    assert!(!report.drain_deadline_hit, "{report}");
    assert_eq!(
        (
            report.outcomes.total(),
            report.outcomes.force_closed,
            report.aborted(),
            report.leaked
        ),
        (1, 1, 1, 0),
        "{report}"
    );
    assert_eq!(
        status_line(&mut client),
        "",
        "force-closed without an answer"
    );
    drop(server);
}

/// QA embed14b-2, hyper side. The exit JSON's `refused_stopped` is one key written by both
/// stacks (`report_json.rs`); the mio server's `Stats::refused_stopped` counts the refusals
/// "because the server was stopping", `docs/benchmarks.md` says "admission closed". The
/// hyper adapter counted the pool's refusals there too (`HyperStats` said "or the pool
/// refused"), so the same load printed different figures under the same key on the two
/// stacks. A pool of one context that refuses (`Exhaustion::Refuse`): one request holds it,
/// a second is refused by the pool (`503`), and once stopped, a third on a new connection
/// (the listener kept open) is refused because admission closed. Both are `refused`; only
/// the last is `refused_stopped`. Before the fix hyper said 2.
#[test]
fn hyper_counts_only_stopped_refusals_in_refused_stopped() {
    let entered = Arc::new(AtomicUsize::new(0));
    let counts = Arc::clone(&entered);
    let stopped = Arc::new(AtomicBool::new(false));
    let seen_stop = Arc::clone(&stopped);
    let one_context = Config::default()
        .with_pool_capacity(1)
        .unwrap()
        .with_exhaustion(Exhaustion::Refuse);
    let mut server = Serving::spawn(one_context, move |core| {
        let options = Options::default()
            .with_drain_timeout(Duration::from_secs(3600))
            .with_keep_listening(true);
        HyperServer::new(core, holds(counts))
            .options(options)
            .after_stop(move || seen_stop.store(true, Ordering::SeqCst))
    });
    let _held = send_get(server.addr);
    wait_until("the first request to take the context", || {
        entered.load(Ordering::SeqCst) == 1
    });
    let mut by_the_pool = send_get(server.addr);
    assert!(
        status_line(&mut by_the_pool).starts_with("HTTP/1.1 503"),
        "the pool refuses"
    );
    server.stop();
    wait_until("the stop", || stopped.load(Ordering::SeqCst));
    let mut by_the_stop = send_get(server.addr);
    assert!(
        status_line(&mut by_the_stop).starts_with("HTTP/1.1 503"),
        "admission closed"
    );
    server.force();
    let report = server.report().expect("the forced stop hung");
    let stats = report.stats;
    assert_eq!(entered.load(Ordering::SeqCst), 1, "{report}");
    assert_eq!(
        (stats.refused, stats.refused_stopped, report.pool.refusals),
        (2, 1, 1),
        "{report}"
    );
    let json = report.to_json();
    assert_eq!(
        (
            json_field(&json, "refused"),
            json_field(&json, "refused_stopped")
        ),
        ("2", "1"),
        "{json}"
    );
    assert_eq!(report.leaked, 0, "{report}");
}

/// QA embed14b-2, mio side: the same load on a mio loop, the same figures under the same keys
/// (it counted so before the fix too; pinned so that the two stacks stay alike).
#[test]
fn mio_counts_only_stopped_refusals_in_refused_stopped() {
    use reqguard::http::{Guarded, Ladder, LoopGroup};

    let entered = Arc::new(AtomicUsize::new(0));
    let counts = Arc::clone(&entered);
    let stopped = Arc::new(AtomicBool::new(false));
    let seen_stop = Arc::clone(&stopped);
    let group = LoopGroup::new()
        .loops(1)
        .ladder(Ladder::default().with_drain_timeout(Duration::from_secs(3600)))
        .spawn(
            move |_| {
                let one_context = Config::default()
                    .with_pool_capacity(1)
                    .unwrap()
                    .with_exhaustion(Exhaustion::Refuse);
                let seen_stop = Arc::clone(&seen_stop);
                Guarded::embedded("server", one_context)
                    .after_stop(move || seen_stop.store(true, Ordering::SeqCst))
            },
            move |router| {
                router.route(
                    "GET",
                    "/",
                    CountingLater(Duration::from_secs(3600), Arc::clone(&counts)),
                );
            },
        )
        .unwrap();
    let _held = send_get(group.addr());
    wait_until("the first request to take the context", || {
        entered.load(Ordering::SeqCst) == 1
    });
    let mut by_the_pool = send_get(group.addr());
    assert!(
        status_line(&mut by_the_pool).starts_with("HTTP/1.1 503"),
        "the pool refuses"
    );
    let stopper = group.stopper();
    stopper.stop();
    wait_until("the stop", || stopped.load(Ordering::SeqCst));
    let mut by_the_stop = send_get(group.addr());
    assert!(
        status_line(&mut by_the_stop).starts_with("HTTP/1.1 503"),
        "admission closed"
    );
    stopper.force();
    let report = bounded::within(HANG, move || group.wait())
        .expect("the group's wait hung")
        .unwrap();
    let stats = report.totals.stats;
    assert_eq!(entered.load(Ordering::SeqCst), 1, "{report}");
    assert_eq!((stats.refused, stats.refused_stopped), (2, 1), "{report}");
    let json = report.to_json();
    assert_eq!(
        (
            json_field(&json, "refused"),
            json_field(&json, "refused_stopped")
        ),
        ("2", "1"),
        "{json}"
    );
    assert_eq!(report.totals.leaked, 0, "{report}");
}

/// A value of the embedder's whose `Drop` panics (an engine handle freed on the wrong
/// thread, a channel's sender whose drop asserts): it counts its drops first.
struct PanicsOnDrop(Arc<AtomicUsize>);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("a value of the embedder's panics");
    }
}

/// Runs a `HyperServer` built by `build` on a fresh runtime and `LocalSet`, serving a
/// listener until `drop_when` resolves, when `serve`'s future is dropped unfinished (a
/// `select!` on Ctrl-C, a timeout); `Err` if a panic escaped the drop. The stop is the
/// server's own (`stop`).
fn drop_serve_when<H: reqguard::tokio_hyper::Handler<Engine, ()>, F: Future<Output = ()>>(
    build: impl FnOnce(ServerCore<Engine>) -> HyperServer<Engine, (), H> + Send + 'static,
    clients: impl FnOnce(SocketAddr) + Send + 'static,
    stop: impl Future<Output = ()> + Send + 'static,
    drop_when: impl FnOnce() -> F + Send + 'static,
) -> std::thread::Result<bool> {
    let ran = bounded::within(HANG, move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let heap = Heap::new();
            let core = ServerCore::embedded(heap.alloc("server"), Config::default());
            let server = build(core);
            crate::local_set::block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                std::thread::spawn(move || clients(addr));
                tokio::select! {
                    _ = server.serve(listener, stop) => true,
                    () = drop_when() => false,
                }
            })
        }))
    });
    ran.expect("serve or its drop hung")
}

/// QA embed14b-3. A single hyper server's `serve` future dropped mid-drain (its stop has run,
/// a request is still out): the `after_drain` hook that never ran is dropped with it, and
/// what it captured is the embedder's, whose `Drop` may panic. The crate catches embedder
/// panics in hooks (`HyperServer::after_drain`: "a hook that panics is caught"; `serve`
/// drops a hook it does not run caught), and a drop of `serve`'s future is documented as a
/// force-close, not as a panic. Before the fix the panic unwound out of the future's drop
/// into the embedder's `select!`.
#[test]
fn a_serve_future_dropped_mid_drain_drops_its_hooks_caught() {
    quiet::quiet_panics();
    let dropped = Arc::new(AtomicUsize::new(0));
    let capture = PanicsOnDrop(Arc::clone(&dropped));
    // `FnMut` hooks (round 30): the capture is taken out of an `Option` to be dropped.
    let mut capture = Some(capture);
    let ran = drop_serve_mid_drain(vec![Box::new(move || drop(capture.take()))]);
    assert!(
        matches!(ran, Ok(false)),
        "a panic escaped the drop of serve's future (or serve returned): {ran:?}"
    );
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the hook's capture dropped once"
    );
}

/// Serves with `after_drain` hooks and a handler that holds its request; once the request is
/// admitted, stops, and drops `serve`'s future as soon as the stop has run (the drain under
/// way, the request still out). The client is kept open until the drop is over.
fn drop_serve_mid_drain(hooks: Vec<Box<dyn FnMut() + Send>>) -> std::thread::Result<bool> {
    let entered = Arc::new(AtomicUsize::new(0));
    let counts = Arc::clone(&entered);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let mut stopped_tx = Some(stopped_tx);
    let (client_tx, client_rx) = mpsc::channel();
    let ran = drop_serve_when(
        move |core| {
            let options = Options::default().with_drain_timeout(Duration::from_secs(3600));
            let server = HyperServer::new(core, holds(counts))
                .options(options)
                .after_stop(move || {
                    if let Some(stopped_tx) = stopped_tx.take() {
                        let _ = stopped_tx.send(());
                    }
                });
            hooks.into_iter().fold(server, HyperServer::after_drain)
        },
        move |addr| {
            let client = send_get(addr);
            wait_until("the request to be admitted", || {
                entered.load(Ordering::SeqCst) == 1
            });
            let _ = stop_tx.send(());
            // Kept open until the drop is over: the request stays out until its task ends.
            let _ = client_tx.send(client);
        },
        async {
            let _ = stop_rx.await;
        },
        || async {
            let _ = stopped_rx.await;
        },
    );
    let _client = client_rx.recv_timeout(HANG);
    ran
}

/// QA embed20-5. `serve`'s future dropped mid-drain (its stop has run, a request is still
/// out) force-closes the connections; the drain that drop completes, as the aborted tasks
/// let their requests go, runs the `after_drain` hooks not run yet (a runtime resolves its
/// `server.stop()` promise there, as a `Session` dropped mid-stop runs them: QA embed20-2).
/// Before, they were dropped unrun and the promise never resolved.
#[test]
fn a_serve_future_dropped_mid_drain_runs_its_after_drain_hooks_when_the_drain_completes() {
    let hooks_ran = Arc::new(AtomicUsize::new(0));
    let (first, second) = (Arc::clone(&hooks_ran), Arc::clone(&hooks_ran));
    let ran = drop_serve_mid_drain(vec![
        Box::new(move || {
            first.fetch_add(1, Ordering::SeqCst);
        }),
        Box::new(move || {
            second.fetch_add(1, Ordering::SeqCst);
        }),
    ]);
    assert!(
        matches!(ran, Ok(false)),
        "serve returned or panicked: {ran:?}"
    );
    assert_eq!(
        hooks_ran.load(Ordering::SeqCst),
        2,
        "each after_drain hook runs once when the drain the drop began completes"
    );
}

/// QA embed20-5, before the stop: `serve`'s future dropped while it serves (it answered a
/// request), nothing out: the drain its drop begins is complete at once, and the
/// `after_drain` hooks run there. (A future dropped before its first poll served nothing and
/// began no drain: its hooks are dropped unrun, as a server's dropped unserved.)
#[test]
fn a_serve_future_dropped_before_its_stop_runs_its_after_drain_hooks() {
    let hooks_ran = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hooks_ran);
    let (drop_tx, drop_rx) = tokio::sync::oneshot::channel::<()>();
    let ran = drop_serve_when(
        move |core| {
            HyperServer::new(core, answers()).after_drain(move || {
                counted.fetch_add(1, Ordering::SeqCst);
            })
        },
        move |addr| {
            let mut client = send_get(addr);
            assert_eq!(status_line(&mut client), "HTTP/1.1 200 OK");
            let _ = drop_tx.send(());
        },
        pending(),
        || async {
            let _ = drop_rx.await;
        },
    );
    assert!(
        matches!(ran, Ok(false)),
        "serve returned or panicked: {ran:?}"
    );
    assert_eq!(hooks_ran.load(Ordering::SeqCst), 1, "the hook ran once");
}

/// QA embed14b-3, before the stop: `serve`'s future dropped while it accepts (no connection
/// holds the server) drops the embedder's handler and both kinds of hooks with it, each
/// `Drop` panicking: every one is dropped, caught, and nothing escapes (a handler whose
/// `Drop` panics when `serve` returns is caught too: the report comes back).
#[test]
fn a_serve_future_dropped_before_its_stop_drops_handler_and_hooks_caught() {
    quiet::quiet_panics();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (in_handler, in_stop_hook, in_drain_hook) = (
        PanicsOnDrop(Arc::clone(&dropped)),
        PanicsOnDrop(Arc::clone(&dropped)),
        PanicsOnDrop(Arc::clone(&dropped)),
    );
    let (drop_tx, drop_rx) = tokio::sync::oneshot::channel::<()>();
    let ran = drop_serve_when(
        move |core| {
            let handler = move |_this, _request, bundle: Bundle| {
                let _kept = &in_handler;
                async move {
                    let reply = bundle.respond(hyper::Response::new(Full::new(Bytes::new())));
                    Ok::<_, HandlerError>(reply)
                }
            };
            let (mut in_stop_hook, mut in_drain_hook) = (Some(in_stop_hook), Some(in_drain_hook));
            HyperServer::new(core, handler)
                .after_stop(move || drop(in_stop_hook.take()))
                .after_drain(move || drop(in_drain_hook.take()))
        },
        move |_addr| {
            let _ = drop_tx.send(());
        },
        pending(),
        || async {
            let _ = drop_rx.await;
        },
    );
    assert!(
        matches!(ran, Ok(false)),
        "a panic escaped the drop of serve's future: {ran:?}"
    );
    assert_eq!(dropped.load(Ordering::SeqCst), 3, "each dropped once");
}

/// A handler that answers `ok` at once.
fn answers() -> impl reqguard::tokio_hyper::Handler<Engine, ()> {
    move |_this, _request, bundle: Bundle| async move {
        let body = Full::new(Bytes::from_static(b"ok"));
        Ok::<_, HandlerError>(bundle.respond(hyper::Response::new(body)))
    }
}

/// Each admitted request counted once (docs/hyper.md, "the sum of the outcomes"), with no
/// rejection or panicking admission in play: `served + undelivered + aborted()` is the
/// outcomes' total.
fn assert_counted_once(report: &HyperReport) {
    let stats = &report.stats;
    assert_eq!(
        stats.served + stats.undelivered + report.aborted(),
        report.outcomes.total(),
        "{report}"
    );
}

/// Options at their extremes (zero and `MAX` for every knob that takes them): a server with
/// each serves one `GET /`, stops, returns its report within bounds, leaks nothing and
/// counts each admitted request once. None panics at build (hyper's `max_buf_size` panics
/// below 8 KiB: raised), none hangs the stop. (`with_max_connections(0)` served, refusing every
/// connection `503`, until QA embed17-1 made it invalid input, as on mio:
/// `probe_embed::v17::hyper_options::a_max_connections_of_zero_is_invalid_input`; `with_max_head(0)`
/// (every request `501`) and `with_idle_timeout(0)` too since QA client26-1:
/// `probe_client::v26::both_builders_refuse_the_same_absurd_knobs_with_the_same_words`.)
#[test]
fn options_at_their_extremes_serve_and_stop() {
    let zero = Duration::ZERO;
    let cases: Vec<(&str, Options, &str)> = vec![
        (
            "max_buffer 0",
            Options::default().with_max_buffer(0),
            "HTTP/1.1 200",
        ),
        (
            "max_buffer MAX",
            Options::default().with_max_buffer(usize::MAX),
            "HTTP/1.1 200",
        ),
        (
            "max_head MAX",
            Options::default().with_max_head(usize::MAX),
            "HTTP/1.1 200",
        ),
        (
            "min_send_rate 0",
            Options::default().with_min_send_rate(0),
            "HTTP/1.1 200",
        ),
        (
            "min_send_rate MAX",
            Options::default().with_min_send_rate(u64::MAX),
            "HTTP/1.1 200",
        ),
        (
            "idle_timeout MAX",
            Options::default().with_idle_timeout(Duration::MAX),
            "HTTP/1.1 200",
        ),
        (
            "all timeouts 0",
            Options::default()
                .with_drain_timeout(zero)
                .with_stop_linger(zero)
                .with_force_after(zero)
                .with_unready(zero),
            "HTTP/1.1 200",
        ),
        (
            "drain and linger MAX",
            Options::default()
                .with_drain_timeout(Duration::MAX)
                .with_stop_linger(Duration::MAX)
                .with_force_after(Duration::MAX),
            "HTTP/1.1 200",
        ),
    ];
    for (name, options, expected) in cases {
        let mut server = Serving::spawn(Config::default(), move |core| {
            HyperServer::new(core, answers()).options(options)
        });
        let mut client = TcpStream::connect(server.addr).unwrap();
        client.set_read_timeout(Some(HANG)).unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
        let status = status_line(&mut client);
        assert!(status.starts_with(expected), "{name}: {status:?}");
        drop(client);
        server.stop();
        let report = server
            .report()
            .unwrap_or_else(|| panic!("{name}: the stop hung"));
        assert_eq!(report.leaked, 0, "{name}: {report}");
        assert_counted_once(&report);
        let admitted = u64::from(expected == "HTTP/1.1 200");
        assert_eq!(report.outcomes.total(), admitted, "{name}: {report}");
    }
}

/// A handler that answers at once but spawns a local task holding its request (the body,
/// read after the answer) and a clone of its signal, both outliving the answer (a runtime's
/// `waitUntil`, a logger reading the body later): the request ends *completed* at its answer,
/// the drain completes, and the stop returns, the task still holding them.
#[test]
fn a_task_holding_the_request_past_its_answer_does_not_hold_the_drain() {
    let mut server = Serving::spawn(Config::default(), move |core| {
        let handler =
            move |_this, request: hyper::Request<hyper::body::Incoming>, bundle: Bundle| {
                let signal = bundle.signal().clone();
                tokio::task::spawn_local(async move {
                    let _request = request;
                    let _signal = signal;
                    pending::<()>().await;
                });
                async move {
                    let body = Full::new(Bytes::from_static(b"ok"));
                    Ok::<_, HandlerError>(bundle.respond(hyper::Response::new(body)))
                }
            };
        HyperServer::new(core, handler)
    });
    let mut client = send_get(server.addr);
    assert!(status_line(&mut client).starts_with("HTTP/1.1 200"));
    drop(client);
    server.stop();
    let report = server.report().expect("the stop hung");
    assert_eq!(
        (
            report.outcomes.completed,
            report.leaked,
            report.stats.served
        ),
        (1, 0, 1),
        "{report}"
    );
    assert!(report.drain_time.is_some(), "{report}");
}

/// A handler that moves its bundle into a local task of its own, which watches the signal and
/// answers through a channel (a runtime's promise resolved by another task). Forced, the
/// connection closes: the bundle's signal fires (*force closed*), the task lets it go, and the
/// report says so, once, with nothing leaked.
#[test]
fn a_bundle_moved_into_a_spawned_task_ends_force_closed_once_when_forced() {
    let entered = Arc::new(AtomicUsize::new(0));
    let counts = Arc::clone(&entered);
    let mut server = Serving::spawn(Config::default(), move |core| {
        let handler = move |_this, _request, bundle: Bundle| {
            counts.fetch_add(1, Ordering::SeqCst);
            let (tx, rx) = tokio::sync::oneshot::channel::<Reply<Full<Bytes>>>();
            tokio::task::spawn_local(async move {
                bundle.aborted().await;
                drop(tx);
                drop(bundle);
            });
            async move {
                match rx.await {
                    Ok(reply) => Ok(reply),
                    Err(_) => Err::<Reply<Full<Bytes>>, HandlerError>("no answer".into()),
                }
            }
        };
        HyperServer::new(core, handler)
            .options(Options::default().with_drain_timeout(Duration::from_secs(3600)))
    });
    let _client = send_get(server.addr);
    wait_until("the request to be admitted", || {
        entered.load(Ordering::SeqCst) == 1
    });
    server.stop();
    server.force();
    let report = server.report().expect("the forced stop hung");
    assert!(report.forced, "{report}");
    assert_eq!(
        (
            report.outcomes.total(),
            report.outcomes.force_closed,
            report.leaked
        ),
        (1, 1, 0),
        "{report}"
    );
    assert_counted_once(&report);
}

/// What an admin route does with the signals: `/shutdown` stops (answered), `/kill` forces
/// (never answered: it is force-closed with the rest); anything else is held.
fn admin(remote: Remote) -> impl reqguard::tokio_hyper::Handler<Engine, ()> {
    move |_this, request: hyper::Request<hyper::body::Incoming>, bundle: Bundle| {
        let path = request.uri().path().to_owned();
        let remote = remote.clone();
        async move {
            match path.as_str() {
                "/shutdown" => remote.stop(),
                "/kill" => {
                    remote.force();
                    bundle.aborted().await;
                    pending::<()>().await;
                }
                _ => {
                    bundle.aborted().await;
                    pending::<()>().await;
                }
            }
            let body = Full::new(Bytes::from_static(b"bye"));
            Ok::<_, HandlerError>(bundle.respond(hyper::Response::new(body)))
        }
    }
}

/// `POST /shutdown`, whose handler stops the server it runs in: answered `200`, completed,
/// its connection closed by the stop; the held request ends *force closed* at the force.
#[test]
fn a_stop_from_inside_a_handler_answers_that_handler() {
    let mut server = Serving::spawn_remote(Config::default(), move |core, remote| {
        let options = Options::default()
            .with_drain_timeout(Duration::from_secs(3600))
            .with_stop_linger(Duration::ZERO);
        HyperServer::new(core, admin(remote)).options(options)
    });
    let _held = send_get(server.addr);
    let mut client = TcpStream::connect(server.addr).unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    client
        .write_all(b"POST /shutdown HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "closed unanswered: {head:?}");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // Its answer was made before the server saw the stop (the handler's own turn): it may
    // keep the connection alive; the stop then closes it idle (no linger here).
    if !head.contains("connection: close") {
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
    }
    server.force();
    let report = server.report().expect("the forced stop hung");
    let o = report.outcomes;
    assert_eq!(
        (o.total(), o.completed, o.force_closed, report.leaked),
        (2, 1, 1, 0),
        "{report}"
    );
    assert_counted_once(&report);
}

/// `POST /kill`, whose handler forces the server it runs in, with no stop before: the force
/// alone ends the serve (QA embed14b-1), both requests (its own, and one held) end *force
/// closed*, once each.
#[test]
fn a_force_from_inside_a_handler_ends_the_serve() {
    let entered = Arc::new(AtomicUsize::new(0));
    let counts = Arc::clone(&entered);
    let server = Serving::spawn_remote(Config::default(), move |core, remote| {
        let admin = admin(remote);
        let counting = move |this, request, bundle| {
            counts.fetch_add(1, Ordering::SeqCst);
            reqguard::tokio_hyper::Handler::<Engine, ()>::call(&admin, this, request, bundle)
        };
        HyperServer::new(core, counting)
            .options(Options::default().with_drain_timeout(Duration::from_secs(3600)))
    });
    let _held = send_get(server.addr);
    wait_until("the held request", || entered.load(Ordering::SeqCst) == 1);
    let mut client = TcpStream::connect(server.addr).unwrap();
    client.set_read_timeout(Some(HANG)).unwrap();
    client
        .write_all(b"POST /kill HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        .unwrap();
    let report = server
        .report()
        .expect("a force from a handler did not end the serve");
    assert!(report.forced, "{report}");
    let o = report.outcomes;
    assert_eq!(
        (o.total(), o.force_closed, report.aborted(), report.leaked),
        (2, 2, 2, 0),
        "{report}"
    );
    assert_eq!(status_line(&mut client), "", "force-closed unanswered");
}

/// A `HyperServer` built and dropped without serving (a setup that failed after it, a bind
/// error): the hooks it never ran are dropped caught, each, as `serve` drops them.
#[test]
fn a_server_dropped_unserved_drops_its_hooks_caught() {
    quiet::quiet_panics();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (first, second) = (
        PanicsOnDrop(Arc::clone(&dropped)),
        PanicsOnDrop(Arc::clone(&dropped)),
    );
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let (mut first, mut second) = (Some(first), Some(second));
        let server = HyperServer::new(core, answers())
            .after_stop(move || drop(first.take()))
            .after_drain(move || drop(second.take()));
        drop(server);
    }));
    assert!(ran.is_ok(), "a panic escaped the server's drop");
    assert_eq!(dropped.load(Ordering::SeqCst), 2, "each dropped once");
}

/// `serve`'s future dropped mid-drain (its stop has run, a request held, keep-alive
/// connections idle): as documented, admission is closed and every connection is
/// force-closed, the held request ending *force closed* (its signal fires `ForceClosed`, once)
/// once the `LocalSet` runs the aborted tasks; each client sees its connection close.
#[test]
fn a_serve_future_dropped_mid_drain_force_closes_its_connections() {
    use reqguard::AbortReason;
    use std::cell::RefCell;
    use std::rc::Rc;

    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let entered = Arc::new(AtomicUsize::new(0));
    let counts = Arc::clone(&entered);
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let reasons: Rc<RefCell<Vec<AbortReason>>> = Rc::default();
        let seen = Rc::clone(&reasons);
        let handler = move |_this, _request, bundle: Bundle| {
            counts.fetch_add(1, Ordering::SeqCst);
            let seen = Rc::clone(&seen);
            bundle
                .signal()
                .on_abort(move |reason| seen.borrow_mut().push(reason));
            async move {
                bundle.aborted().await;
                pending::<Result<Reply<Full<Bytes>>, HandlerError>>().await
            }
        };
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let mut stopped_tx = Some(stopped_tx);
        let server = HyperServer::new(core, handler)
            .options(Options::default().with_drain_timeout(Duration::from_secs(3600)))
            .after_stop(move || {
                if let Some(stopped_tx) = stopped_tx.take() {
                    let _ = stopped_tx.send(());
                }
            });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let ran = local.block_on(&runtime, async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let stop = async {
                let _ = stop_rx.await;
            };
            let served = tokio::select! {
                _ = server.serve(listener, stop) => true,
                _ = stopped_rx => false,
            };
            // The aborted connection tasks run (are dropped) on the LocalSet's next turns.
            while reasons.borrow().is_empty() {
                tokio::task::yield_now().await;
            }
            (served, reasons.borrow().clone())
        });
        let _ = done_tx.send(ran);
    });
    let addr = addr_rx.recv_timeout(HANG).unwrap();
    let mut held = send_get(addr);
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(HANG)).unwrap();
    wait_until("the request to be admitted", || {
        entered.load(Ordering::SeqCst) == 1
    });
    let _ = stop_tx.send(());
    let (served, reasons) = done_rx
        .recv_timeout(HANG)
        .expect("serve's drop or the force-close hung");
    assert!(!served, "serve returned before its drop");
    assert_eq!(reasons, [AbortReason::ForceClosed]);
    assert_eq!(status_line(&mut held), "", "force-closed unanswered");
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).ok(), Some(0), "{rest:?}");
}

/// Two requests on two connections whose handler swaps their bundles (a runtime that mixed up
/// its request ids): each answers with the other's bundle. Each client gets an answer, each
/// request one outcome, and the counts add up: `served` 2, *completed* 2, nothing leaked.
#[test]
fn two_requests_answered_with_each_others_bundles_are_counted_once_each() {
    use std::cell::RefCell;
    use std::rc::Rc;

    type Slot = Rc<RefCell<(Option<Bundle>, Option<tokio::sync::oneshot::Sender<Bundle>>)>>;
    let mut server = Serving::spawn(Config::default(), move |core| {
        let slot: Slot = Rc::default();
        let handler = move |_this, _request, bundle: Bundle| {
            let slot = Rc::clone(&slot);
            async move {
                let other = {
                    let mut slot = slot.borrow_mut();
                    match (slot.0.take(), slot.1.take()) {
                        (Some(first), Some(give)) => {
                            let _ = give.send(bundle);
                            Ok(first)
                        }
                        _ => {
                            let (give, take) = tokio::sync::oneshot::channel();
                            *slot = (Some(bundle), Some(give));
                            Err(take)
                        }
                    }
                };
                let other = match other {
                    Ok(first) => first,
                    Err(take) => take.await.expect("the second request's bundle"),
                };
                let body = Full::new(Bytes::from_static(b"swapped"));
                Ok::<_, HandlerError>(other.respond(hyper::Response::new(body)))
            }
        };
        HyperServer::new(core, handler)
    });
    let mut first = send_get(server.addr);
    let mut second = send_get(server.addr);
    assert!(status_line(&mut first).starts_with("HTTP/1.1 200"));
    assert!(status_line(&mut second).starts_with("HTTP/1.1 200"));
    drop((first, second));
    server.stop();
    let report = server.report().expect("the stop hung");
    let o = report.outcomes;
    assert_eq!(
        (report.stats.served, o.completed, o.total(), report.leaked),
        (2, 2, 2, 0),
        "{report}"
    );
    assert_counted_once(&report);
}

/// A handler that answers a request with the bundle of an earlier one whose client went away
/// (kept by the runtime past its disconnect), dropping its own: the earlier request ended
/// *client gone* at the disconnect (the first cause wins), the later one *dropped* (its bundle
/// dropped), and the later client got an answer. Each admitted request counted once:
/// `served + undelivered + aborted()` is the outcomes' total.
#[test]
fn an_answer_made_with_a_gone_requests_bundle_is_counted_once() {
    use reqguard::AbortReason;
    use std::cell::RefCell;
    use std::rc::Rc;

    let fired = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&fired);
    let mut server = Serving::spawn(Config::default(), move |core| {
        let kept: Rc<RefCell<Option<Bundle>>> = Rc::default();
        let handler = move |_this, _request, bundle: Bundle| {
            let kept = Rc::clone(&kept);
            let seen = Arc::clone(&seen);
            async move {
                let earlier = kept.borrow_mut().take();
                match earlier {
                    None => {
                        bundle.signal().on_abort(move |reason| {
                            assert_eq!(reason, AbortReason::ClientDisconnected);
                            seen.fetch_add(1, Ordering::SeqCst);
                        });
                        *kept.borrow_mut() = Some(bundle);
                        pending::<Result<Reply<Full<Bytes>>, HandlerError>>().await
                    }
                    Some(earlier) => {
                        drop(bundle);
                        let body = Full::new(Bytes::from_static(b"not yours"));
                        Ok(earlier.respond(hyper::Response::new(body)))
                    }
                }
            }
        };
        HyperServer::new(core, handler)
    });
    let gone = send_get(server.addr);
    gone.shutdown(std::net::Shutdown::Both).unwrap();
    drop(gone);
    wait_until("the first request's client gone", || {
        fired.load(Ordering::SeqCst) == 1
    });
    let mut later = send_get(server.addr);
    let status = status_line(&mut later);
    drop(later);
    server.stop();
    let report = server.report().expect("the stop hung");
    let o = report.outcomes;
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    assert_eq!(
        (
            o.total(),
            o.client_gone,
            o.dropped,
            report.stats.served,
            report.leaked
        ),
        (2, 1, 1, 1, 0),
        "{report}"
    );
    assert_counted_once(&report);
}
