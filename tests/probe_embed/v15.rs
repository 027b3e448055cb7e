//! QA probes, round 15, of the public API as a hostile or careless embedder uses it: the
//! sans-IO `Session` driven in odd orders (a client that takes its output after it
//! disconnected; every order of feed, take, stop and disconnect under extreme limits, each
//! admitted request counted once), and the hyper adapter's stop at its extremes. Public API
//! only. Each test that found a bug failed on `main` before its fix (the test's doc says so);
//! the others pin a documented behaviour no other test pinned.
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::child;
use crate::drops;
use crate::handlers;
use crate::quiet;
use crate::util;

use std::time::Duration;

mod session {
    use super::*;
    use reqguard::http::{demo_routes, Accounting, Guarded, Limits, Router, Routes, Session};
    use reqguard::Config;

    /// `served undelivered aborted | outcomes`, for assertion messages.
    fn books<A: Accounting>(session: &Session<'_, A>) -> String {
        let s = session.stats();
        let outcomes = session.ledger().map(|l| l.outcomes());
        format!(
            "served {} undelivered {} aborted {} | {outcomes:?}",
            s.served, s.undelivered, s.aborted
        )
    }

    /// QA embed15-1. `Session::disconnect` counts the answers its client had not taken
    /// `undelivered` ("as a socket's server counts those a close drops"), yet they stayed in
    /// the session's output: a `take_output` after the disconnect handed the client both
    /// answers counted lost (212 bytes; `served` 0, `undelivered` 2), where a socket's close
    /// drops them and `Connection::abort` says "nothing more is written". Before the fix the
    /// output was still there.
    #[test]
    fn answers_counted_undelivered_at_disconnect_are_not_handed_out_after_it() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let accounting = Guarded::embedded("server", Config::default());
        let mut session = Session::new(&router, accounting, Limits::default());
        session.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n");
        session.disconnect();
        let stats = session.stats();
        assert_eq!(
            (stats.served, stats.undelivered),
            (0, 2),
            "{}",
            books(&session)
        );
        assert!(session.pending_output().is_empty(), "{}", books(&session));
        let late = session.take_output();
        assert!(
            late.is_empty(),
            "answers counted undelivered were taken after the disconnect: {:?}",
            String::from_utf8_lossy(&late)
        );
        session.clear_output();
        let stats = session.stats();
        assert_eq!(
            (stats.served, stats.undelivered),
            (0, 2),
            "{}",
            books(&session)
        );
        // Nothing more is admitted on a connection its client left.
        session.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert!(session.take_output().is_empty());
        let outcomes = session.ledger().unwrap().outcomes();
        assert_eq!((outcomes.completed, outcomes.total()), (2, 2));
        session.ledger().unwrap().assert_quiescent();
    }

    /// Every admitted request is counted once, in `served`, `undelivered` or `aborted`, which
    /// add up to the outcomes' total (`Stats::aborted`'s docs), however a session is driven:
    /// each of eight orders of taking the output, stopping early and moving the clock, over
    /// pipelined, deferred, panicking, chunked and `Content-Length` requests, under limits a
    /// server refuses or that cut every request (the drain deadline at once, no pipeline, no
    /// output room), with the default pool and a pool of one that refuses, then a stop, its
    /// deadline and a disconnect. (No bug found; the
    /// extremes' probe in `probe_embed::v10` checks that none panics, not the counts.)
    #[test]
    fn a_session_counts_each_admitted_request_once_whatever_the_order_and_limits() {
        quiet::quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        router.route("GET", "/later", handlers::Later(Duration::from_millis(10)));
        let cases: Vec<(&str, Limits)> = vec![
            ("default", Limits::default()),
            ("max_head 0", Limits::default().with_max_head(0)),
            ("max_body 0", Limits::default().with_max_body(0)),
            ("max_trailers 0", Limits::default().with_max_trailers(0)),
            ("max_output 0", Limits::default().with_max_output(0)),
            ("max_pipeline 0", Limits::default().with_max_pipeline(0)),
            ("max_pipeline 1", Limits::default().with_max_pipeline(1)),
            (
                "request_timeout 0",
                Limits::default().with_request_timeout(Duration::ZERO),
            ),
            (
                "drain_timeout 0",
                Limits::default().with_drain_timeout(Duration::ZERO),
            ),
            (
                "drain_timeout MAX",
                Limits::default().with_drain_timeout(Duration::MAX),
            ),
        ];
        let wire: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
            b"GET /later HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello",
            b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"GET /later HTTP/1.1\r\nhost: x\r\n\r\nGET /panic HTTP/1.1\r\nhost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
        ];
        // A pool of one that refuses: a request behind a deferred one is refused `503` (never
        // admitted, no outcome) and closes the connection.
        let one = Config::default()
            .with_pool_capacity(1)
            .unwrap()
            .with_exhaustion(reqguard::Exhaustion::Refuse);
        let (mut admitted, mut refused) = (0, 0);
        let configs = [Config::default(), one];
        for ((case, limits), config) in cases
            .iter()
            .flat_map(|case| configs.iter().map(move |config| (case, config)))
        {
            for order in 0..8u32 {
                let (stop_early, take, short_steps) =
                    (order & 1 != 0, order & 2 != 0, order & 4 != 0);
                let accounting = Guarded::embedded("server", *config);
                let mut session = Session::new(&router, accounting, *limits);
                for (i, bytes) in wire.iter().enumerate() {
                    if stop_early && i == 3 {
                        session.stop();
                    }
                    session.feed(bytes);
                    if take {
                        let _ = session.take_output();
                    }
                    let step = if short_steps { 1 } else { 20 };
                    session.advance(Duration::from_millis(step));
                }
                session.stop();
                session.advance(Duration::from_secs(10));
                session.disconnect();
                let s = session.stats();
                let outcomes = session.ledger().unwrap().outcomes();
                assert_eq!(
                    s.served + s.undelivered + s.aborted,
                    outcomes.total(),
                    "{case}, {config:?}, order {order}: {}",
                    books(&session)
                );
                admitted += outcomes.total();
                refused += s.refused;
                session.ledger().unwrap().assert_quiescent();
            }
        }
        assert!(admitted > 100, "the orders admitted requests: {admitted}");
        assert!(refused > 0, "the pool of one refused requests: {refused}");
    }
}

mod mio_embed {
    use super::*;
    use reqguard::http::{demo_routes, Guarded, Router, Routes, ServerBuilder};
    use reqguard::Config;

    /// QA embed15-5. A mio server that cannot bind its address (`# Errors` of
    /// `ServerBuilder::serve` and `spawn`: "if the server cannot bind") with an accounting of
    /// the embedder's whose captures' `Drop` panics (a drain hook's): `serve` returned no
    /// error, the panic escaped it, and `spawn`'s error was "the server thread panicked", not
    /// the address in use; the loop drops its accounting caught when it ends (QA embed8-3),
    /// not when it could not begin. Now both return `AddrInUse`.
    #[test]
    fn a_server_that_cannot_bind_returns_its_error_whatever_its_accounting_drops() {
        quiet::quiet_panics();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let holding = |kept: drops::PanicsOnDrop| {
            Guarded::embedded("server", Config::default()).after_drain(move || {
                let _kept = &kept;
            })
        };
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let accounting = holding(drops::PanicsOnDrop);
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ServerBuilder::new()
                .addr(addr)
                .serve(&router, accounting, |_, _| {})
        }));
        let Ok(served) = served else {
            std::mem::forget(served); // the escaped payload: not dropped here
            panic!("a drop's panic escaped serve");
        };
        let error = served.expect_err("served a port already taken");
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
        let spawned = ServerBuilder::new()
            .addr(addr)
            .spawn(move || holding(drops::PanicsOnDrop), demo_routes)
            .map(drop);
        let error = spawned.expect_err("spawned on a port already taken");
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
    }
}

mod hyper_embed {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use reqguard::http::Limits;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Options};
    use util::bounded;
    use util::hyper_thread::HyperThread;

    /// How long a probe waits for a call that hangs on a broken build.
    const HANG: Duration = Duration::from_secs(20);

    /// A kept-alive `GET /`.
    const GET: &str = "GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    /// QA embed15-2. A handler that hands its bundle to a task of its own (a runtime whose
    /// `Request` object outlives the handler: kept until its signal fires) and then fails,
    /// by an `Err` or a panic: the client gets its `500`, counted `served`. The bundle lives on
    /// until the drain deadline aborts it, so its request ends *deadline aborted*, and it was
    /// counted in `HyperReport::aborted()` too ("admitted requests that got no answer"): one
    /// request, `served` 1 and `aborted` 1. Now it is counted in `aborted_after_head` (its
    /// answer was counted at its head, then its request ended aborted), which `aborted()`
    /// leaves out. Before the fix: `served` 1, `aborted()` 1, *deadline aborted* 1.
    #[test]
    fn a_failing_handler_whose_bundle_lives_on_is_counted_once() {
        use reqguard::tokio_hyper::Reply;
        quiet::quiet_panics();
        for panics in [false, true] {
            let server = HyperThread::spawn(move |core| {
                let fails = move |_this, _request, bundle: Bundle| {
                    tokio::task::spawn_local(async move {
                        bundle.aborted().await;
                        drop(bundle);
                    });
                    async move {
                        if panics {
                            panic!("a handler that gave its bundle away panics");
                        }
                        Err::<Reply<Full<Bytes>>, HandlerError>("failed".into())
                    }
                };
                HyperServer::new(core, fails)
                    .options(Options::default().with_drain_timeout(Duration::from_millis(100)))
            });
            assert_eq!(util::get(server.addr, "/").status, 500, "panics {panics}");
            let report = bounded::within(HANG, move || server.stop()).expect("the stop hung");
            let (stats, outcomes) = (&report.stats, &report.outcomes);
            assert_eq!(
                stats.served + stats.undelivered + report.aborted(),
                outcomes.total(),
                "panics {panics}: one request counted twice\n{report}"
            );
            assert_eq!(
                (
                    stats.served,
                    stats.aborted_after_head,
                    report.aborted(),
                    outcomes.deadline_aborted,
                    outcomes.total(),
                    report.leaked
                ),
                (1, 1, 0, 1, 1, 0),
                "panics {panics}\n{report}"
            );
            let failed = if panics { stats.panics } else { stats.failed };
            assert_eq!(failed, 1, "panics {panics}\n{report}");
        }
    }

    /// QA embed15-3. An idle kept-alive connection at the stop, nothing out, and a drain
    /// timeout no longer than the stop's linger for idle connections (zero, or 200 ms beside
    /// the default 1 s linger): the mio server says `drain_deadline_hit: false` ("the drain
    /// deadline passed with requests in flight"), the hyper adapter said `true`
    /// (`HyperReport::drain_deadline_hit`: "passed with requests out"): the idle connection
    /// lingers until the deadline, hyper's graceful shutdown closes it just after, and the flag
    /// said only whether a deadline report was made. Before the fix: `true` on every run.
    #[test]
    fn a_deadline_with_only_an_idle_connection_open_is_not_hit_on_either_stack() {
        for drain in [Duration::ZERO, Duration::from_millis(200)] {
            let mio = util::demo_server(Limits::default().with_drain_timeout(drain));
            let mut idle = util::Client::connect(mio.addr());
            assert_eq!(idle.request(GET).status, 200);
            let report = mio.stop().expect("the mio server's report");
            assert!(idle.is_closed_by_server());
            assert!(!report.drain_deadline_hit, "mio, {drain:?}: {report}");
            for round in 0..2 {
                let server = HyperThread::spawn(move |core| {
                    let hello = |_this, _request, bundle: Bundle| async move {
                        let body = Full::new(Bytes::from_static(b"hello"));
                        Ok::<_, HandlerError>(bundle.respond(hyper::Response::new(body)))
                    };
                    HyperServer::new(core, hello)
                        .options(Options::default().with_drain_timeout(drain))
                });
                let mut idle = util::Client::connect(server.addr);
                assert_eq!(idle.request(GET).status, 200);
                let report = server.stop();
                assert!(idle.is_closed_by_server());
                let case = format!("{drain:?}, round {round}");
                assert!(!report.drain_deadline_hit, "{case}: {report}");
                assert!(!report.to_json().contains("\"drain_deadline_hit\":true"));
                let o = report.outcomes;
                assert_eq!(
                    (report.stats.served, o.completed, o.total()),
                    (1, 1, 1),
                    "{case}: {report}"
                );
            }
        }
    }

    const CHILD: &str = "REQGUARD_PROBE_V15_CHILD";

    /// A scope provider of the embedder's (what an engine that needs one passes), holding a
    /// value whose `Drop` panics.
    struct Scope(#[allow(dead_code)] drops::PanicsOnDrop);

    impl reqguard::tokio_hyper::EnterScope<reqguard::engines::Embedded<&'static str>> for Scope {
        fn enter<R>(&self, f: impl FnOnce(&mut ()) -> R) -> R {
            f(&mut ())
        }
    }

    /// `tokio_hyper::run` that cannot bind its address (`# Errors`: "binding the address")
    /// with a handler and a scope whose captures' `Drop` panics: it returns its error, the
    /// server dropped unserved, each value caught, as `serve` drops them (QA embed14b-3), and
    /// the process lives on. Before the fix the handler's panic escaped `run`, and the
    /// scope's, while the first unwound, aborted the process.
    #[test]
    fn run_that_cannot_bind_returns_its_error_whatever_its_handler_and_scope_drop() {
        if !child::is_child(CHILD) {
            child::assert_passes_in_child(
                CHILD,
                "v15::hyper_embed::run_that_cannot_bind_returns_its_error_whatever_its_handler_and_scope_drop",
            );
            return;
        }
        quiet::quiet_panics();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let heap = reqguard::engines::Heap::new();
        let core =
            reqguard::ServerCore::embedded(heap.alloc("server"), reqguard::Config::default());
        let kept = drops::PanicsOnDrop;
        let handler = move |_this, _request, bundle: Bundle| {
            let _kept = &kept;
            async move {
                let body = Full::new(Bytes::from_static(b"hello"));
                Ok::<_, HandlerError>(bundle.respond(hyper::Response::new(body)))
            }
        };
        let server = HyperServer::with_scope(core, handler, Scope(drops::PanicsOnDrop));
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reqguard::tokio_hyper::run(server, addr, |_| {}, std::future::pending())
        }));
        let Ok(result) = ran else {
            std::mem::forget(ran); // the escaped payload: not dropped here
            panic!("a drop's panic escaped run");
        };
        let error = result.expect_err("bound a port already taken");
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
    }
}
