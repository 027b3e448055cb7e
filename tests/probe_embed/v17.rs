//! QA probes, round 17, of the public API as a hostile or careless embedder uses it: a hyper
//! server with no room for a connection, `StopHandle::stop_and_wait` from the mio server's own
//! stop and drain hooks, a hyper force that comes after the drain deadline's aborts, and a
//! panicking abort listener in a hyper report. Public API only. Each test that found a bug
//! failed on `main` before its fix (the test's doc says so); the others pin a documented
//! behaviour no other test pinned.
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::local_set;
use crate::quiet;
use crate::util;

use std::time::Duration;

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(20);

mod hyper_options {
    use super::*;
    use reqguard::tokio_hyper::{run, HyperGroup, HyperServer, Options};
    use std::io;

    fn server() -> HyperServer<
        reqguard::engines::Embedded<&'static str>,
        (),
        impl reqguard::tokio_hyper::Handler<reqguard::engines::Embedded<&'static str>, ()>,
    > {
        let heap = reqguard::engines::Heap::new();
        let core =
            reqguard::ServerCore::embedded(heap.alloc("server"), reqguard::Config::default());
        HyperServer::new(core, super::hyper_held::hello)
            .options(Options::default().with_max_connections(0))
    }

    /// QA embed17-1. `Options::max_connections(0)` was taken: the server served, refusing
    /// every connection `503`, where the mio server refuses the limit (`LimitsError` at
    /// build). Now `run` and `HyperGroup::spawn` return `InvalidInput` (before: `run` served
    /// until its stop, `spawn` returned a group), and `serve` panics at once, saying why.
    #[test]
    fn a_max_connections_of_zero_is_invalid_input() {
        let addr = "127.0.0.1:0".parse().unwrap();
        let ran = util::bounded::within(HANG, move || {
            // The stop never comes: a server that serves hangs here, bounded.
            run(server(), addr, |_| {}, std::future::pending()).map(|_| ())
        })
        .expect("run served a server with no room");
        let err = ran.expect_err("run refuses max_connections 0");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("max_connections"), "{err}");

        let spawned = HyperGroup::new().loops(2).spawn(|_| server());
        let err = spawned
            .map(|_| ())
            .expect_err("spawn refuses max_connections 0");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("max_connections"), "{err}");

        quiet::quiet_panics();
        let served = std::panic::catch_unwind(|| {
            local_set::block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                drop(server().serve(listener, std::future::pending()));
            })
        });
        let panic = served.expect_err("serve panics with max_connections 0");
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        assert!(message.contains("max_connections is zero"), "{message:?}");
    }
}

mod mio_hooks {
    use super::*;
    use reqguard::http::{demo_routes, Guarded, ServerBuilder, StopHandle};
    use reqguard::Config;
    use std::sync::{Arc, Mutex, OnceLock};

    /// What a hook saw: its kind, `stop_and_wait`'s answer, `is_stopping`'s.
    type Seen = (&'static str, bool, bool);

    /// QA embed17-2 (docs). `StopHandle::stop_and_wait` called in an `after_stop` hook returned
    /// `false` though the stop had begun: its doc promised `true` once "the listener is
    /// closed, admission is closed, and stop hooks have run", and did not say what a hook
    /// gets. The doc now says: a stop hook runs before the stop has *begun* in that sense
    /// (`false`, `is_stopping` `false` too), a drain hook after (`true`). Pins both.
    #[test]
    fn stop_and_wait_in_a_stop_hook_is_false_and_in_a_drain_hook_true() {
        let handle: Arc<OnceLock<StopHandle>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (in_hooks, seen_in_hooks) = (Arc::clone(&handle), Arc::clone(&seen));
        let running = ServerBuilder::new()
            .spawn(
                move || {
                    let asks = |when: &'static str| {
                        let (handle, seen) = (Arc::clone(&in_hooks), Arc::clone(&seen_in_hooks));
                        move || {
                            let handle = handle.get().expect("set before the stop");
                            let waited = handle.stop_and_wait(HANG);
                            let stopping = handle.is_stopping();
                            seen.lock().unwrap().push((when, waited, stopping));
                        }
                    };
                    Guarded::embedded("server", Config::default())
                        .after_stop(asks("after_stop"))
                        .after_drain(asks("after_drain"))
                },
                demo_routes,
            )
            .expect("the server serves");
        assert!(handle.set(running.stop_handle()).is_ok());
        assert_eq!(util::get(running.addr(), "/").status, 200);
        let report = util::bounded::within(HANG, move || running.stop())
            .expect("the stop hung")
            .expect("the report");
        assert_eq!(report.leaked, 0, "{report}");
        assert_eq!(
            *seen.lock().unwrap(),
            [("after_stop", false, false), ("after_drain", true, true)]
        );
    }
}

mod hyper_held {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use reqguard::http::Step;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperReport, HyperServer, Options, Reply};
    use std::cell::RefCell;
    use std::io::{Read, Write};
    use std::rc::Rc;
    use tokio::sync::oneshot;

    pub(super) async fn hello(
        _this: reqguard::engines::Handle<&'static str>,
        _request: hyper::Request<hyper::body::Incoming>,
        bundle: Bundle,
    ) -> Result<Reply<Full<Bytes>>, HandlerError> {
        let body = Full::new(Bytes::from_static(b"hello"));
        Ok(bundle.respond(hyper::Response::new(body)))
    }

    /// One sender, taken by the first request that uses it.
    type Once = Rc<RefCell<Option<oneshot::Sender<()>>>>;

    fn fire(once: &Once) {
        if let Some(tx) = once.borrow_mut().take() {
            let _ = tx.send(());
        }
    }

    /// Serves one request whose handler holds its bundle and never answers (it watches its
    /// signal only to say when the deadline aborted it; `listener_panics`: its abort listener
    /// panics), with a 50 ms drain and a `force_after` of an hour: the stop comes once the
    /// request is in its handler, the force (if `force_on_abort`) once the deadline aborted it.
    fn serve_a_held_request(force_on_abort: bool, listener_panics: bool) -> HyperReport {
        let heap = reqguard::engines::Heap::new();
        let core =
            reqguard::ServerCore::embedded(heap.alloc("server"), reqguard::Config::default());
        let (entered_tx, entered) = oneshot::channel();
        let (aborted_tx, aborted) = oneshot::channel();
        let (entered_tx, aborted_tx): (Once, Once) = (
            Rc::new(RefCell::new(Some(entered_tx))),
            Rc::new(RefCell::new(Some(aborted_tx))),
        );
        let holds = move |_this, _request: hyper::Request<_>, bundle: Bundle| {
            let (entered_tx, aborted_tx) = (Rc::clone(&entered_tx), Rc::clone(&aborted_tx));
            async move {
                if listener_panics {
                    bundle
                        .signal()
                        .on_abort(|_| panic!("the embedder's abort listener"));
                }
                fire(&entered_tx);
                bundle.aborted().await;
                fire(&aborted_tx);
                std::future::pending::<()>().await;
                Err::<Reply<Full<Bytes>>, HandlerError>("never".into())
            }
        };
        let options = Options::default()
            .with_drain_timeout(Duration::from_millis(50))
            .with_force_after(Duration::from_secs(3600));
        let server = HyperServer::new(core, holds).options(options);
        local_set::block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(HANG)).unwrap();
                stream
                    .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
                    .unwrap();
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer); // until the force-close
            });
            let stop = async move {
                let _ = entered.await;
            };
            let force = async move {
                if !force_on_abort {
                    std::future::pending::<()>().await;
                }
                let _ = aborted.await;
            };
            let serving = server.serve_with_force(listener, stop, force);
            let report = tokio::time::timeout(HANG, serving)
                .await
                .expect("the force cut the force_after wait short");
            client.join().unwrap();
            report
        })
    }

    fn steps(report: &HyperReport) -> Vec<Step> {
        report.steps.iter().map(|s| s.step).collect()
    }

    /// QA embed17-3 (docs). A force that comes after the drain deadline's aborts cuts the
    /// `force_after` wait short (an hour here), but the report says `forced: false`: the
    /// deadline ended the drain (`drain_deadline_hit`, steps `drain`, `abort`, `force`), as a
    /// mio loop group's ladder records the same stop (a force step after an abort step; its
    /// reports have no `forced`). `HyperReport::forced`'s doc now says so. Pins it.
    #[test]
    fn a_force_after_the_deadlines_abort_ends_the_wait_and_is_not_forced() {
        let report = serve_a_held_request(true, false);
        assert!(!report.forced, "{report}");
        assert!(report.drain_deadline_hit, "{report}");
        assert_eq!(
            steps(&report),
            [Step::Drain, Step::Abort, Step::Force],
            "{report}"
        );
        assert_eq!(report.outcomes.deadline_aborted, 1, "{report}");
        assert_eq!((report.force_closed, report.leaked), (1, 0), "{report}");
    }

    /// QA embed17-4 (docs). An abort listener that panics is the core's to count
    /// (`DrainReport::panicked_listeners`), not the server's `stats.panics` (handlers and
    /// admissions): the report shows it in `deadline` when the deadline passed (the only
    /// report field for it); docs/hyper.md and docs/server.md now say where to look. Pins it.
    #[test]
    fn a_panicking_abort_listener_is_in_the_deadlines_report_not_in_panics() {
        quiet::quiet_panics();
        let report = serve_a_held_request(true, true);
        let deadline = report.deadline.as_ref().expect("the deadline passed");
        assert_eq!(deadline.panicked_listeners, 1, "{report}");
        assert_eq!(report.stats.panics, 0, "{report}");
        assert_eq!(report.outcomes.deadline_aborted, 1, "{report}");
    }
}

mod mio_group_force {
    use super::*;
    use reqguard::http::{demo_routes, Guarded, Ladder, LoopGroup, Reply, Request, Response, Step};
    use reqguard::Config;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// QA embed17-3's other half: what the mio loop group reports for the same stop (a force
    /// during `force_after`, after the deadline's aborts), the case `HyperReport::forced`'s doc
    /// now compares with: steps `drain`, `abort`, `force`, the deadline hit, the force-close at
    /// once (`force_after` is an hour here).
    #[test]
    fn a_force_after_the_deadlines_abort_ends_the_wait_with_the_deadline_hit() {
        let aborted = Arc::new(AtomicBool::new(false));
        let on_abort = Arc::clone(&aborted);
        let entered = Arc::new(AtomicBool::new(false));
        let on_entry = Arc::clone(&entered);
        let ladder = Ladder::default()
            .with_drain_timeout(Duration::from_millis(50))
            .with_force_after(Duration::from_secs(3600));
        let running = LoopGroup::new()
            .loops(1)
            .ladder(ladder)
            .spawn(
                |_| Guarded::embedded("server", Config::default()),
                move |router| {
                    demo_routes(router);
                    let (on_abort, on_entry) = (Arc::clone(&on_abort), Arc::clone(&on_entry));
                    router.route(
                        "GET",
                        "/held",
                        move |req: &Request<'_>, _: &mut Response<'_>| {
                            let on_abort = Arc::clone(&on_abort);
                            let signal = req.signal().expect("guarded requests have a signal");
                            assert!(
                                signal.on_abort(move |_| on_abort.store(true, Ordering::SeqCst))
                            );
                            on_entry.store(true, Ordering::SeqCst);
                            Reply::After {
                                delay: Duration::from_secs(3600),
                                token: 0,
                            }
                        },
                    );
                },
            )
            .expect("the group serves");
        let mut held = util::Client::connect(running.addr());
        held.send(b"GET /held HTTP/1.1\r\nhost: x\r\n\r\n");
        util::wait_until("/held to be in its handler", || {
            entered.load(Ordering::SeqCst)
        });
        let stopper = running.stopper();
        stopper.stop();
        util::wait_until("the deadline's abort", || aborted.load(Ordering::SeqCst));
        stopper.force();
        let report = util::bounded::within(HANG, move || running.wait())
            .expect("the force cut the force_after wait short")
            .expect("the report");
        let lone = &report.loops[0];
        let steps: Vec<Step> = lone.steps.iter().map(|s| s.step).collect();
        let ladder = [Step::Drain, Step::Abort, Step::Force];
        assert!(steps.windows(3).any(|w| w == ladder), "{steps:?}\n{report}");
        assert!(lone.drain_deadline_hit, "{report}");
        assert_eq!(lone.outcomes.deadline_aborted, 1, "{report}");
        assert_eq!(lone.leaked, 0, "{report}");
    }
}
