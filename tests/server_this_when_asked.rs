//! Round 27 of the cost work (docs/benchmarks-history.md, "Round 27 (the guard)"): the server reads
//! a request's `this` ([`Accounting::this`]) when its handler asks (`Request::this`), not before
//! every handler's call, for an accounting whose per-request calls cannot panic (`MAY_PANIC` false,
//! as `Guarded`'s): a handler that does not ask pays nothing for it. An accounting that may panic
//! still has it read once before each handler's call, caught.
#![cfg(feature = "server")]

#[path = "util/quiet.rs"]
mod quiet;

use std::any::Any;
use std::cell::Cell;
use std::rc::Rc;

use reqguard::engines::{Embedded, Handle};
use reqguard::http::{
    Accounting, AccountingReport, Guarded, GuardedHeld, Limits, NoScope, Reply, Request, Response,
    Router, Routes, Session, StopStatus,
};
use reqguard::{AbortSignal, Config, Ledger, Outcome, Refusal};

/// `Guarded`, its `this` counted (and made to panic when told to).
struct Asked<const MAY_PANIC: bool> {
    inner: Guarded<Embedded<&'static str>, NoScope>,
    asked: Rc<Cell<u32>>,
    panics: Rc<Cell<bool>>,
}

impl<const MAY_PANIC: bool> Accounting for Asked<MAY_PANIC> {
    type Held = GuardedHeld;
    const MAY_PANIC: bool = MAY_PANIC;

    fn admit(&mut self) -> Result<GuardedHeld, Refusal> {
        self.inner.admit()
    }

    fn signal(held: &GuardedHeld) -> Option<&AbortSignal> {
        Some(held.signal())
    }

    fn end(held: GuardedHeld, outcome: Outcome) {
        held.end(outcome);
    }

    fn this(&self) -> Option<&dyn Any> {
        self.asked.set(self.asked.get() + 1);
        assert!(!self.panics.get(), "an accounting's this panics");
        self.inner.this()
    }

    fn read_ended(&mut self) {
        self.inner.read_ended();
    }

    fn stop(&mut self, deadline: std::time::Instant) {
        self.inner.stop(deadline);
    }

    fn poll_stop(&mut self, now: std::time::Instant, in_flight: usize) -> StopStatus {
        self.inner.poll_stop(now, in_flight)
    }

    fn ledger(&self) -> Option<&Ledger> {
        self.inner.ledger()
    }

    fn report(&self) -> AccountingReport {
        self.inner.report()
    }
}

fn asked<const MAY_PANIC: bool>() -> (Asked<MAY_PANIC>, Rc<Cell<u32>>, Rc<Cell<bool>>) {
    let (asked, panics) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let accounting = Asked {
        inner: Guarded::embedded("server", Config::default()),
        asked: Rc::clone(&asked),
        panics: Rc::clone(&panics),
    };
    (accounting, asked, panics)
}

/// `/plain` never asks for `this`; `/this` does, and counts the handlers that saw the wrapper.
fn routes(router: &mut Router<'_>, seen: &Rc<Cell<u32>>) {
    router.route(
        "GET",
        "/plain",
        |_: &Request<'_>, res: &mut Response<'_>| {
            res.write(b"plain");
            Reply::Now
        },
    );
    let seen = Rc::clone(seen);
    router.route(
        "GET",
        "/this",
        move |req: &Request<'_>, res: &mut Response<'_>| {
            if req.this::<Handle<&'static str>>().map(|this| **this) == Some("server") {
                seen.set(seen.get() + 1);
            }
            res.write(b"this");
            Reply::Now
        },
    );
}

const PLAIN: &[u8] = b"GET /plain HTTP/1.1\r\nhost: x\r\n\r\n";
const THIS: &[u8] = b"GET /this HTTP/1.1\r\nhost: x\r\n\r\n";

fn answers(output: &[u8], status: &[u8]) -> usize {
    output
        .windows(status.len())
        .filter(|w| w == &status)
        .count()
}

/// Six requests in one read, two of whose handlers ask for `this`: an accounting that cannot
/// panic is asked twice, by those two handlers (main asked it six times, once before each
/// handler's call); one that may panic is asked once per request, before each call, as
/// before. Every asking handler gets the wrapper.
#[test]
fn this_is_read_when_a_handler_asks_unless_the_accounting_may_panic() {
    let pipeline = [PLAIN, THIS, PLAIN, PLAIN, THIS, PLAIN].concat();
    let store = Routes::new();
    let mut router = Router::new(&store);
    let seen = Rc::new(Cell::new(0));
    routes(&mut router, &seen);

    let (accounting, asked_when_asked, _) = asked::<false>();
    let mut session = Session::new(&router, accounting, Limits::default());
    session.feed(&pipeline);
    assert_eq!(answers(session.pending_output(), b"HTTP/1.1 200"), 6);
    assert_eq!(seen.get(), 2, "each asking handler got the wrapper");
    assert_eq!(
        asked_when_asked.get(),
        2,
        "asked by the two handlers that ask, and only by them"
    );
    session.ledger().unwrap().assert_quiescent();

    let (accounting, asked_before, _) = asked::<true>();
    let mut session = Session::new(&router, accounting, Limits::default());
    session.feed(&pipeline);
    assert_eq!(answers(session.pending_output(), b"HTTP/1.1 200"), 6);
    assert_eq!(seen.get(), 4);
    assert_eq!(
        asked_before.get(),
        6,
        "read once before each handler's call"
    );
    session.ledger().unwrap().assert_quiescent();
}

/// An accounting that says it cannot panic and whose `this` panics all the same: the panic
/// is now the asking handler's (its request answered `500` and ended *dropped*, counted in
/// `Stats::panics`), and the session serves on (the request behind it is answered); a handler that does not ask never meets it.
/// On main it unwound out of the session's `feed` before any handler ran (the read was
/// before every handler's call).
#[test]
fn a_this_that_panics_when_asked_is_the_asking_handlers_panic() {
    quiet::quiet_panics();
    let store = Routes::new();
    let mut router = Router::new(&store);
    let seen = Rc::new(Cell::new(0));
    routes(&mut router, &seen);
    let (accounting, asked, panics) = asked::<false>();
    let mut session = Session::new(&router, accounting, Limits::default());
    panics.set(true);
    session.feed(PLAIN);
    assert_eq!(answers(session.pending_output(), b"HTTP/1.1 200"), 1);
    assert_eq!(asked.get(), 0, "a handler that does not ask never meets it");
    session.clear_output();
    session.feed(&[THIS, PLAIN].concat());
    let output = session.pending_output().to_vec();
    assert_eq!(answers(&output, b"HTTP/1.1 500"), 1, "{output:?}");
    assert_eq!(
        answers(&output, b"HTTP/1.1 200"),
        1,
        "the request behind it is served"
    );
    assert_eq!(asked.get(), 1);
    assert_eq!(session.stats().panics, 1);
    let outcomes = session.ledger().unwrap().outcomes();
    assert_eq!((outcomes.completed, outcomes.dropped), (2, 1));
    session.ledger().unwrap().assert_quiescent();
}
