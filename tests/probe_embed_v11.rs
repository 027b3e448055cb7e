//! QA probes, eleventh round, of the embedding API as a hostile or careless embedder uses it:
//! the public `Dispatcher` of a `Server` and of a `Connection` driven by hand, stops begun
//! through it, reasons given to `abort`. Public API only. Each test that found a bug failed on
//! `main` before its fix (the test's doc says so); the others pin what was found to hold.
#![cfg(feature = "server")]

#[path = "util/quiet.rs"]
mod quiet;
mod util;

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
        let limits = Limits::default().drain_timeout(Duration::from_millis(200));
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
        assert_eq!(fired.borrow().len(), 1, "{reason:?}: fired {:?}", fired.borrow());
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
    assert!(out.starts_with(b"HTTP/1.1 200 OK"), "{}", String::from_utf8_lossy(&out));
    assert!(fired.borrow().is_empty());
    session.ledger().unwrap().assert_quiescent();
}
