//! Round 31 of the cost work (docs/benchmarks-history.md, "Round 31 (the guard)"): the mio
//! server's `Guarded` keeps the bundle of the request it dispatches, and after its answer the
//! next request of the same read takes it as it is (a renewal: one pooled slot, one signal,
//! one ledger count for the answered request's outcome and the next one's mint) when nothing
//! of it can tell: the ledger plain (not stopped, not tracing) and the signal untouched (no
//! handle cloned from it, no listener, never fired). Each test here breaks when one of those
//! conditions is left out of the renewal, or when a parked request (deferred, queued) does not
//! take its bundle with it: a signal a handler kept would be handed on to the next request
//! (G7, G8), a trace would miss the renewed requests' mints (G6), the counts would drift.
#![cfg(feature = "server")]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use reqguard::engines::Embedded;
use reqguard::http::{
    demo_routes, Guarded, Limits, NoScope, Reply, Request, Response, Router, Routes, Session,
};
use reqguard::{AbortReason, AbortSignal, Config, GuardKind, LedgerEvent};

type Demo<'r> = Session<'r, Guarded<Embedded<&'static str>, NoScope>>;

/// What the test routes saw.
#[derive(Default)]
struct Seen {
    /// Signals `/keep` kept past its request.
    kept: RefCell<Vec<AbortSignal>>,
    /// What the listener `/listen` added heard.
    heard: Rc<Cell<Option<AbortReason>>>,
    /// Whether each `/fresh` request's signal was aborted when its handler ran.
    aborted: RefCell<Vec<bool>>,
}

/// The demo routes (`/`, `/delay`, `/panic`) and four that use the request's signal.
fn routes<'r>(router: &mut Router<'r>, seen: &Rc<Seen>) {
    demo_routes(router);
    let keep = Rc::clone(seen);
    router.route(
        "GET",
        "/keep",
        move |req: &Request<'_>, res: &mut Response<'_>| {
            keep.kept.borrow_mut().push(req.signal().unwrap().clone());
            res.write(b"kept");
            Reply::Now
        },
    );
    let listen = Rc::clone(seen);
    router.route(
        "GET",
        "/listen",
        move |req: &Request<'_>, res: &mut Response<'_>| {
            let heard = Rc::clone(&listen.heard);
            assert!(req
                .signal()
                .unwrap()
                .on_abort(move |reason| heard.set(Some(reason))));
            res.write(b"listening");
            Reply::Now
        },
    );
    router.route(
        "GET",
        "/abort",
        move |req: &Request<'_>, res: &mut Response<'_>| {
            // Its own signal, borrowed (no clone): fired by its handler.
            assert!(req.signal().unwrap().abort(AbortReason::HandlerFailed));
            res.write(b"aborted");
            Reply::Now
        },
    );
    let fresh = Rc::clone(seen);
    router.route(
        "GET",
        "/fresh",
        move |req: &Request<'_>, res: &mut Response<'_>| {
            fresh
                .aborted
                .borrow_mut()
                .push(req.signal().unwrap().is_aborted());
            res.write(b"fresh");
            Reply::Now
        },
    );
}

/// Runs `test` on a session over [`routes`]; then the client goes and the ledger must be
/// empty.
fn with_session(test: impl FnOnce(&mut Demo<'_>, &Seen)) {
    let seen = Rc::new(Seen::default());
    let store = Routes::new();
    let mut router = Router::new(&store);
    routes(&mut router, &seen);
    let guarded = Guarded::embedded("server", Config::default());
    let mut session = Session::new(&router, guarded, Limits::default());
    test(&mut session, &seen);
    session.disconnect();
    session.ledger().unwrap().assert_quiescent();
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes()
}

/// One read bringing these requests, pipelined.
fn pipeline(paths: &[&str]) -> Vec<u8> {
    paths.iter().flat_map(|path| get(path)).collect()
}

fn statuses(output: &[u8]) -> Vec<u16> {
    String::from_utf8_lossy(output)
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| {
            let text = String::from_utf8_lossy(&output[at + 9..at + 12]).into_owned();
            text.parse().unwrap()
        })
        .collect()
}

/// (completed, dropped) so far.
fn outcomes(session: &Demo<'_>) -> (u64, u64) {
    let outcomes = session.ledger().unwrap().outcomes();
    (outcomes.completed, outcomes.dropped)
}

/// A handler kept its request's signal (a clone): the next request of the same read gets
/// another one, so the next request's end (a panic: *dropped*, its signal fired) never fires
/// the kept one, whose request completed (G8: a completed request's signal never fires).
#[test]
fn a_signal_a_handler_kept_is_never_handed_to_the_next_request() {
    with_session(|s, seen| {
        s.feed(&pipeline(&["/keep", "/panic", "/fresh"]));
        assert_eq!(statuses(&s.take_output()), [200, 500, 200]);
        let kept = seen.kept.borrow_mut().pop().unwrap();
        assert!(
            !kept.is_aborted(),
            "the kept signal fired: {:?}",
            kept.reason()
        );
        assert_eq!(*seen.aborted.borrow(), [false]);
        assert_eq!(outcomes(s), (2, 1));
    });
}

/// A listener added by a handler (its request completed) never hears the next request's
/// abort.
#[test]
fn a_listener_never_hears_the_next_requests_abort() {
    with_session(|s, seen| {
        s.feed(&pipeline(&["/listen", "/panic", "/"]));
        assert_eq!(statuses(&s.take_output()), [200, 500, 200]);
        assert_eq!(seen.heard.get(), None);
        assert_eq!(outcomes(s), (2, 1));
    });
}

/// A handler that panics mid-read: its request ends *dropped*, its signal fired; the next
/// requests of the read get signals that never fired.
#[test]
fn after_a_panic_mid_read_the_next_requests_signals_are_fresh() {
    with_session(|s, seen| {
        s.feed(&pipeline(&["/fresh", "/panic", "/fresh", "/fresh"]));
        assert_eq!(statuses(&s.take_output()), [200, 500, 200, 200]);
        assert_eq!(*seen.aborted.borrow(), [false, false, false]);
        assert_eq!(outcomes(s), (3, 1));
    });
}

/// A request deferred mid-read keeps its bundle until its answer is due (the next request
/// of the read takes another one), and every request ends once.
#[test]
fn a_request_deferred_mid_read_takes_its_bundle_with_it() {
    with_session(|s, seen| {
        s.feed(&pipeline(&["/fresh", "/delay?ms=5", "/fresh", "/fresh"]));
        // The two after the deferred one are queued behind it, with their bundles.
        let ledger = s.ledger().unwrap();
        assert_eq!(ledger.outstanding(GuardKind::Ticket), 3);
        assert_eq!(ledger.outcomes().completed, 1);
        assert_eq!(statuses(&s.take_output()), [200]);
        s.advance(Duration::from_millis(5));
        assert_eq!(statuses(&s.take_output()), [200, 200, 200]);
        assert_eq!(s.ledger().unwrap().outstanding(GuardKind::Ticket), 0);
        assert_eq!(*seen.aborted.borrow(), [false, false, false]);
        assert_eq!(outcomes(s), (4, 0));
        // A read after it renews again from a fresh admission.
        s.feed(&pipeline(&["/fresh", "/", "/fresh"]));
        assert_eq!(statuses(&s.take_output()), [200, 200, 200]);
        assert_eq!(outcomes(s), (7, 0));
    });
}

/// The ledger's figures are exact whenever anything can read them (between two reads: no
/// handler can reach the ledger): every request answered is minted once and completed once,
/// nothing out, whatever the pipeline's depth.
#[test]
fn the_ledger_is_exact_after_every_read() {
    with_session(|s, _| {
        let mut answered = 0u64;
        for depth in [1, 2, 16, 3, 1, 7] {
            s.feed(&pipeline(&vec!["/"; depth]));
            assert_eq!(statuses(&s.take_output()), vec![200; depth]);
            answered += depth as u64;
            let ledger = s.ledger().unwrap();
            assert_eq!(ledger.minted(GuardKind::Ticket), answered, "depth {depth}");
            assert_eq!(ledger.minted(GuardKind::Request), answered, "depth {depth}");
            assert_eq!(ledger.outcomes().completed, answered, "depth {depth}");
            assert_eq!(ledger.total_outstanding(), 0, "depth {depth}");
            assert!(ledger.is_quiescent());
        }
    });
}

/// A trace records every request of a read (the renewal is only for a plain ledger: a
/// renewed request would be minted and completed with no event).
#[test]
fn a_trace_records_every_request_of_a_read() {
    with_session(|s, _| {
        s.feed(&pipeline(&["/", "/"])); // renewals before the trace
        s.take_output();
        let core = s.dispatcher().accounting().core();
        core.ledger().start_trace();
        s.feed(&pipeline(&["/", "/fresh", "/"]));
        assert_eq!(statuses(&s.take_output()), [200, 200, 200]);
        let trace = s.dispatcher().accounting().core().ledger().take_trace();
        let count = |event| trace.iter().filter(|&&e| e == event).count();
        for kind in [GuardKind::Ticket, GuardKind::Context, GuardKind::Request] {
            assert_eq!(count(LedgerEvent::Minted(kind)), 3, "{kind:?}: {trace:?}");
            assert_eq!(count(LedgerEvent::Released(kind)), 3, "{kind:?}: {trace:?}");
        }
        assert_eq!(outcomes(s), (5, 0));
    });
}

/// Round 32: the handler's signal is lent from the kept bundle when the handler asks
/// (`Request::signal`), and a bundle whose signal was lent is not renewed. A handler that
/// fires its own request's signal through the borrowed handle (no clone): the next requests
/// of the read get signals that never fired, each request ends once, and the one whose
/// signal fired is not counted completed by a renewal (the first cause wins).
#[test]
fn a_signal_its_handler_fired_is_never_handed_to_the_next_request() {
    with_session(|s, seen| {
        s.feed(&pipeline(&["/fresh", "/abort", "/fresh", "/", "/fresh"]));
        assert_eq!(statuses(&s.take_output()), [200; 5]);
        assert_eq!(*seen.aborted.borrow(), [false, false, false]);
        let ledger = s.ledger().unwrap();
        let outcomes = ledger.outcomes();
        assert_eq!(outcomes.completed, 4, "{outcomes:?}");
        assert_eq!(outcomes.total(), 5, "{outcomes:?}");
        assert_eq!(ledger.minted(GuardKind::Ticket), 5);
        assert_eq!(ledger.total_outstanding(), 0);
    });
}
