//! QA probes, round 15, of the public API as a hostile or careless embedder uses it: the
//! sans-IO `Session` driven in odd orders (a client that takes its output after it
//! disconnected; every order of feed, take, stop and disconnect under extreme limits, each
//! admitted request counted once), and the hyper adapter's stop at its extremes. Public API
//! only. Each test that found a bug failed on `main` before its fix (the test's doc says so);
//! the others pin a documented behaviour no other test pinned.
#![cfg(all(feature = "server", feature = "hyper"))]

#[path = "util/handlers.rs"]
mod handlers;
#[path = "util/quiet.rs"]
mod quiet;
mod util;

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
    /// output room), then a stop, its deadline and a disconnect. (No bug found; the
    /// extremes' probe in `probe_embed_v10` checks that none panics, not the counts.)
    #[test]
    fn a_session_counts_each_admitted_request_once_whatever_the_order_and_limits() {
        quiet::quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        router.route("GET", "/later", handlers::Later(Duration::from_millis(10)));
        let cases: Vec<(&str, Limits)> = vec![
            ("default", Limits::default()),
            ("max_head 0", Limits::default().max_head(0)),
            ("max_body 0", Limits::default().max_body(0)),
            ("max_trailers 0", Limits::default().max_trailers(0)),
            ("max_output 0", Limits::default().max_output(0)),
            ("max_pipeline 0", Limits::default().max_pipeline(0)),
            ("max_pipeline 1", Limits::default().max_pipeline(1)),
            (
                "request_timeout 0",
                Limits::default().request_timeout(Duration::ZERO),
            ),
            (
                "drain_timeout 0",
                Limits::default().drain_timeout(Duration::ZERO),
            ),
            (
                "drain_timeout MAX",
                Limits::default().drain_timeout(Duration::MAX),
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
        let mut admitted = 0;
        for (case, limits) in &cases {
            for order in 0..8u32 {
                let (stop_early, take, short_steps) =
                    (order & 1 != 0, order & 2 != 0, order & 4 != 0);
                let accounting = Guarded::embedded("server", Config::default());
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
                    "{case}, order {order}: {}",
                    books(&session)
                );
                admitted += outcomes.total();
                session.ledger().unwrap().assert_quiescent();
            }
        }
        assert!(admitted > 100, "the orders admitted requests: {admitted}");
    }
}

mod hyper_embed {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Options};
    use util::hyper_thread::HyperThread;

    /// A drain timeout of zero (legal: `Options::drain_timeout`) with nothing out when the
    /// stop comes: the drain completes at once, so the report says no deadline was hit and has
    /// no deadline report (`HyperReport::drain_deadline_hit`: "the drain deadline passed with
    /// requests out"), on every run though the drain's end and its deadline are both ready.
    /// (No bug found.)
    #[test]
    fn a_zero_drain_timeout_with_nothing_out_hits_no_deadline() {
        for round in 0..4 {
            let server = HyperThread::spawn(|core| {
                let hello = |_this, _request, bundle: Bundle| async move {
                    let body = Full::new(Bytes::from_static(b"hello"));
                    Ok::<_, HandlerError>(bundle.respond(hyper::Response::new(body)))
                };
                HyperServer::new(core, hello)
                    .options(Options::default().drain_timeout(Duration::ZERO))
            });
            assert_eq!(util::get(server.addr, "/").status, 200);
            let report = server.stop();
            assert!(!report.drain_deadline_hit, "round {round}: {report}");
            assert!(report.deadline.is_none(), "round {round}: {report}");
            assert_eq!(report.stats.served, 1, "round {round}: {report}");
        }
    }
}
