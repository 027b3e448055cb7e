//! Hostile-embedder probes of G8 through the reference server (feature `server`), sans-IO with
//! `http::Session`: every admitted request ends with exactly one outcome; its abort fires once
//! for every outcome but `Completed` and never for `Completed`, with the reason that names the
//! outcome; the ledger's counts agree with the server's figures. Handlers that panic (in
//! `handle` and in `resume`), deferred answers, pipelining, a client that leaves, a stop whose
//! deadline passes.
#![cfg(feature = "server")]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reqguard::http::{
    Accounting, Guarded, Limits, Reply, Request, Response, Router, Routes, Session, StopStatus,
};
use reqguard::{AbortReason, Config, Ledger, Outcome};

/// A path, how its handler replies, and whether it panics instead.
type Route = (&'static str, fn() -> Reply, bool);

/// Per admitted request (numbered in handler-call order), the reasons its abort fired with.
type Fires = Rc<RefCell<BTreeMap<u32, Vec<AbortReason>>>>;

/// A handler that watches its request's signal, then answers now, later, or panics.
struct Watched {
    fires: Fires,
    next: Rc<RefCell<u32>>,
    reply: fn() -> Reply,
    panics: bool,
}

impl reqguard::http::Handler for Watched {
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>) -> Reply {
        let id = {
            let mut next = self.next.borrow_mut();
            *next += 1;
            *next
        };
        self.fires.borrow_mut().insert(id, Vec::new());
        let fires = Rc::clone(&self.fires);
        let signal = request.signal().expect("a guarded request has a signal");
        assert!(signal
            .on_abort(move |reason| { fires.borrow_mut().get_mut(&id).unwrap().push(reason) }));
        if self.panics {
            panic!("the handler panics");
        }
        response.write(b"ok");
        (self.reply)()
    }

    fn resume(&self, token: u64, response: &mut Response<'_>) {
        if token == 666 {
            panic!("resume panics");
        }
        response.write(b"later");
    }
}

fn router<'r>(routes: &'r Routes, fires: &Fires) -> Router<'r> {
    let mut router = Router::new(routes);
    let next = Rc::new(RefCell::new(0));
    let table: [Route; 5] = [
        ("/now", || Reply::Now, false),
        ("/later", || later(1), false),
        ("/hang", || later(3_600_000), false),
        ("/boom", || Reply::Now, true),
        (
            "/resume-boom",
            || Reply::After {
                delay: Duration::from_millis(1),
                token: 666,
            },
            false,
        ),
    ];
    for (path, reply, panics) in table {
        router.route(
            "GET",
            path,
            Watched {
                fires: Rc::clone(fires),
                next: Rc::clone(&next),
                reply,
                panics,
            },
        );
    }
    router
}

fn later(ms: u64) -> Reply {
    Reply::After {
        delay: Duration::from_millis(ms),
        token: 1,
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes()
}

/// G8 over everything this session admitted.
fn check_one_outcome_each(ledger: &Ledger, fires: &Fires, served: u64, aborted: u64) {
    let fires = fires.borrow();
    let outcomes = ledger.outcomes();
    assert_eq!(
        outcomes.total(),
        fires.len() as u64,
        "one outcome per admitted request"
    );
    assert_eq!(outcomes.total(), served + aborted, "{outcomes:?}");
    let mut by_reason = BTreeMap::new();
    for (id, reasons) in fires.iter() {
        assert!(reasons.len() <= 1, "request {id} fired {reasons:?}");
        for reason in reasons {
            *by_reason.entry(format!("{reason:?}")).or_insert(0u64) += 1;
        }
    }
    let fired: u64 = by_reason.values().sum();
    assert_eq!(
        fired,
        outcomes.total() - outcomes.completed,
        "{by_reason:?} vs {outcomes:?}"
    );
    for outcome in Outcome::ALL {
        if let Some(reason) = outcome.abort_reason() {
            let seen = by_reason.get(&format!("{reason:?}")).copied().unwrap_or(0);
            assert_eq!(seen, outcomes.count(outcome), "{outcome}: {by_reason:?}");
        }
    }
    ledger.assert_quiescent();
}

/// Silences the handlers' deliberate panics (messages ending in "panics") and keeps the rest.
fn quiet_deliberate_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload().downcast_ref::<&str>().copied().unwrap_or("");
        if !message.ends_with("panics") {
            eprintln!("{info}");
        }
    }));
}

/// Answered now, answered later, a panicking handler, a panicking `resume`, then the client
/// leaves with a request still hanging.
#[test]
fn every_request_of_a_session_ends_once_with_its_abort_right() {
    quiet_deliberate_panics();
    let fires: Fires = Rc::default();
    let routes = Routes::new();
    let router = router(&routes, &fires);
    let mut session = Session::new(
        &router,
        Guarded::embedded("server", Config::default()),
        Limits::default(),
    );
    for path in ["/now", "/boom", "/later", "/resume-boom", "/now", "/hang"] {
        session.feed(&get(path));
        session.advance(Duration::from_millis(2));
        session.take_output();
    }
    session.disconnect();
    let stats = *session.stats();
    assert_eq!(stats.panics, 2, "{stats:?}");
    let ledger = session.ledger().unwrap();
    let outcomes = ledger.outcomes();
    assert_eq!(outcomes.completed, 3, "{outcomes:?}");
    assert_eq!(outcomes.client_gone, 1, "{outcomes:?}");
    assert_eq!(outcomes.dropped, 2, "the two panics: {outcomes:?}");
    check_one_outcome_each(ledger, &fires, stats.served, stats.aborted);
}

/// Pipelined requests all in flight when the client leaves: each ends once, as client gone.
#[test]
fn pipelined_requests_in_flight_when_the_client_leaves() {
    let fires: Fires = Rc::default();
    let routes = Routes::new();
    let router = router(&routes, &fires);
    let mut session = Session::new(
        &router,
        Guarded::embedded("server", Config::default()),
        Limits::default(),
    );
    let mut burst = Vec::new();
    for path in ["/hang", "/now", "/later", "/now"] {
        burst.extend(get(path));
    }
    session.feed(&burst);
    session.advance(Duration::from_millis(5));
    session.disconnect();
    let stats = *session.stats();
    let ledger = session.ledger().unwrap();
    assert_eq!(
        ledger.outcomes().completed,
        0,
        "nothing was written: the first hangs"
    );
    check_one_outcome_each(ledger, &fires, stats.served, stats.aborted);
}

/// A stop whose drain deadline passes with a request hanging: the deadline decides its outcome
/// and its abort, once, whatever the force-close does afterwards.
#[test]
fn a_stop_whose_deadline_passes() {
    let fires: Fires = Rc::default();
    let routes = Routes::new();
    let router = router(&routes, &fires);
    let mut session = Session::new(
        &router,
        Guarded::embedded("server", Config::default()),
        Limits::default().with_drain_timeout(Duration::from_millis(50)),
    );
    session.feed(&get("/now"));
    session.feed(&get("/hang"));
    session.take_output();
    session.stop();
    // The session polls its drain as the server's loop does on each turn: past the deadline
    // the hanging request is aborted and the connection force-closed.
    session.advance(Duration::from_millis(49));
    assert_eq!(
        session.dispatcher().in_flight(),
        1,
        "ended before the deadline"
    );
    session.advance(Duration::from_millis(1));
    assert_eq!(session.dispatcher().in_flight(), 0, "out past the deadline");
    assert!(session.is_closed());
    // An accounting polled again after that: complete, nothing more aborted.
    let status = session
        .dispatcher()
        .accounting_mut()
        .poll_stop(Instant::now() + Duration::from_secs(10), 0);
    assert_eq!(status, StopStatus::Complete);
    session.disconnect(); // nothing left to end
    let stats = *session.stats();
    let ledger = session.ledger().unwrap();
    let outcomes = ledger.outcomes();
    assert_eq!(
        (outcomes.completed, outcomes.deadline_aborted),
        (1, 1),
        "{outcomes:?}"
    );
    check_one_outcome_each(ledger, &fires, stats.served, stats.aborted);
}

/// Over real sockets: a completed request, a panicking handler, a client gone with its request
/// hanging, and one hanging until the drain deadline. The server's report and its exit JSON
/// count one outcome per admitted request, with nothing leaked.
#[test]
fn the_server_report_and_its_json_count_one_outcome_per_request() {
    use reqguard::http::{demo_routes, ServerBuilder};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn boom(_: &Request<'_>, _: &mut Response<'_>) -> Reply {
        panic!("the handler panics");
    }
    fn answer(stream: &mut TcpStream) -> String {
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    }
    quiet_deliberate_panics();
    let gone_seen = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&gone_seen);
    let running = ServerBuilder::new()
        .limits(Limits::default().with_drain_timeout(Duration::from_millis(100)))
        .spawn(
            || Guarded::embedded("server", Config::default()),
            |router: &mut Router<'_>| {
                demo_routes(router);
                router.route(
                    "GET",
                    "/hang",
                    move |req: &Request<'_>, _: &mut Response<'_>| {
                        let seen = Arc::clone(&seen);
                        req.signal().unwrap().on_abort(move |reason| {
                            if reason == AbortReason::ClientDisconnected {
                                seen.fetch_add(1, Ordering::SeqCst);
                            }
                        });
                        later(3_600_000)
                    },
                );
                router.route("GET", "/boom", boom);
            },
        )
        .unwrap();
    let addr = running.addr();
    let send = |path: &str| {
        let mut stream = TcpStream::connect(addr).unwrap();
        let close = if path == "/hang" {
            ""
        } else {
            "connection: close\r\n"
        };
        write!(stream, "GET {path} HTTP/1.1\r\nhost: x\r\n{close}\r\n").unwrap();
        stream
    };
    assert!(answer(&mut send("/")).starts_with("HTTP/1.1 200"));
    assert!(answer(&mut send("/boom")).starts_with("HTTP/1.1 500"));
    let gone = send("/hang");
    let stays = send("/hang");
    // Both hanging requests are admitted once a later request on another connection is answered.
    assert!(answer(&mut send("/")).starts_with("HTTP/1.1 200"));
    drop(gone);
    // Wait (bounded) until the server saw the client go, so the stop cannot decide it first.
    let until = Instant::now() + Duration::from_secs(10);
    while gone_seen.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < until, "the server never saw the client go");
        std::thread::sleep(Duration::from_millis(5));
    }
    let report = running.stop().unwrap();
    drop(stays);
    let o = report.outcomes;
    assert_eq!(
        (
            o.completed,
            o.dropped,
            o.client_gone,
            o.deadline_aborted,
            o.force_closed
        ),
        (2, 1, 1, 1, 0),
        "{report}"
    );
    assert_eq!(
        o.total(),
        report.stats.served + report.stats.aborted,
        "{report}"
    );
    assert_eq!(report.leaked, 0, "{}", report.leaks);
    let json = report.to_json();
    assert!(
        json.contains(&format!("\"outcomes\":{}", o.to_json())),
        "{json}"
    );
}
