//! QA probes, round 14b, of the hyper adapter's public API as a hostile or careless embedder
//! uses it: a force signal alone, the refusal counts both stacks write under one exit-JSON key,
//! a `serve` future dropped with the embedder's hooks and handler in it, then handlers that
//! spawn tasks holding their request, bodies that fail, and servers dropped unstopped. Public
//! API only. Each test that found a bug failed on `main` before its fix (the test's doc says
//! so); the others pin a documented behaviour no other test pinned.
#![cfg(all(feature = "server", feature = "hyper"))]

#[path = "util/quiet.rs"]
mod quiet;
mod util;

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

/// A single `HyperServer` on a thread of its own (its runtime and `LocalSet`), served with
/// `serve_with_force`: the test holds both signals.
struct Serving {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    force: Option<tokio::sync::oneshot::Sender<()>>,
    report: mpsc::Receiver<HyperReport>,
}

impl Serving {
    fn spawn<H: reqguard::tokio_hyper::Handler<Engine, ()>>(
        config: Config,
        build: impl FnOnce(ServerCore<Engine>) -> HyperServer<Engine, (), H> + Send + 'static,
    ) -> Serving {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (report_tx, report) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (force, force_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let heap = Heap::new();
            let core = ServerCore::embedded(heap.alloc("server"), config);
            let server = build(core);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let local = tokio::task::LocalSet::new();
            let report = local.block_on(&runtime, async move {
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
            stop: Some(stop),
            force: Some(force),
            report,
        }
    }

    fn stop(&mut self) {
        let _ = self.stop.take().map(|stop| stop.send(()));
    }

    fn force(&mut self) {
        let _ = self.force.take().map(|force| force.send(()));
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
            .options(Options::default().drain_timeout(Duration::from_secs(3600)))
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
            .drain_timeout(Duration::from_secs(3600))
            .keep_listening(true);
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
    use reqguard::http::{Guarded, Handler, Ladder, LoopGroup, Reply, Request, Response};

    /// `GET /`: answered an hour later (a promise that resolves late), counting admissions.
    struct Later(Arc<AtomicUsize>);

    impl Handler for Later {
        fn handle(&self, _: &Request<'_>, _: &mut Response<'_>) -> Reply {
            self.0.fetch_add(1, Ordering::SeqCst);
            Reply::After {
                delay: Duration::from_secs(3600),
                token: 0,
            }
        }

        fn resume(&self, _: u64, res: &mut Response<'_>) {
            res.write(b"late");
        }
    }

    let entered = Arc::new(AtomicUsize::new(0));
    let counts = Arc::clone(&entered);
    let stopped = Arc::new(AtomicBool::new(false));
    let seen_stop = Arc::clone(&stopped);
    let group = LoopGroup::new()
        .loops(1)
        .ladder(Ladder::default().drain_timeout(Duration::from_secs(3600)))
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
                router.route("GET", "/", Later(Arc::clone(&counts)));
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
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
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
    let entered = Arc::new(AtomicUsize::new(0));
    let counts = Arc::clone(&entered);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let (client_tx, client_rx) = mpsc::channel();
    let ran = drop_serve_when(
        move |core| {
            let options = Options::default().drain_timeout(Duration::from_secs(3600));
            HyperServer::new(core, holds(counts))
                .options(options)
                .after_stop(move || {
                    let _ = stopped_tx.send(());
                })
                .after_drain(move || drop(capture))
        },
        move |addr| {
            let client = send_get(addr);
            wait_until("the request to be admitted", || {
                entered.load(Ordering::SeqCst) == 1
            });
            let _ = stop_tx.send(());
            // Kept open until the test ends: the request stays out.
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
            HyperServer::new(core, handler)
                .after_stop(move || drop(in_stop_hook))
                .after_drain(move || drop(in_drain_hook))
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
