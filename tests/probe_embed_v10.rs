//! QA probes, tenth round, of the embedding API as a hostile embedder uses it: accountings
//! whose stop lies, servers stopped in every order. Public API only. Each test failed on
//! `main` before its fix.
#![cfg(feature = "server")]

#[path = "util/handlers.rs"]
mod handlers;
mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use handlers::Later;
use reqguard::http::{
    Accounting, AccountingReport, Limits, Router, Routes, ServerBuilder, Session, StopStatus,
    Unaccounted,
};
use reqguard::{AbortSignal, Ledger, Refusal};
use util::bounded::within;

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(20);

/// An accounting of the embedder's whose `poll_stop` says the deadline passed as soon as it
/// is asked, long before the deadline the server gave its `stop`.
struct SaysExpired(Unaccounted, Arc<AtomicBool>);

impl Accounting for SaysExpired {
    type Held = ();

    fn admit(&mut self) -> Result<(), Refusal> {
        self.1.store(true, Ordering::SeqCst);
        self.0.admit()
    }

    fn signal(_: &()) -> Option<&AbortSignal> {
        None
    }

    fn stop(&mut self, deadline: Instant) {
        self.0.stop(deadline);
    }

    fn poll_stop(&mut self, _now: Instant, _in_flight: usize) -> StopStatus {
        StopStatus::Expired { aborted: 0 }
    }

    fn ledger(&self) -> Option<&Ledger> {
        None
    }

    fn report(&self) -> AccountingReport {
        self.0.report()
    }
}

/// A single server gives a request in flight until its own drain deadline, whatever the
/// accounting says: one that says `Expired` at once does not cut the request short (the
/// loop's own deadline rules, as a loop group's ladder does). Before, the server
/// force-closed the request at the first poll after the stop (no answer, counted aborted)
/// and reported the drain deadline hit long before it.
#[test]
fn an_accounting_that_says_expired_early_does_not_cut_a_server_request_short() {
    let limits = Limits::default().drain_timeout(Duration::from_secs(1));
    let admitted = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&admitted);
    let running = ServerBuilder::new()
        .limits(limits)
        .spawn(
            move || SaysExpired(Unaccounted::new(), seen),
            |router| {
                router.route("GET", "/later", Later(Duration::from_millis(300)));
            },
        )
        .unwrap();
    let addr = running.addr();
    let held = std::thread::spawn(move || {
        within(HANG, move || util::try_get(addr, "/later")).expect("the request hung")
    });
    util::wait_until("the request is admitted", || {
        admitted.load(Ordering::SeqCst)
    });
    let report = within(HANG, move || running.stop())
        .expect("the stop hung")
        .expect("the report");
    let answer = held.join().unwrap();
    assert!(matches!(answer, Ok((200, true))), "{answer:?}\n{report}");
    assert_eq!(report.stats.aborted, 0, "{report}");
    assert_eq!(report.force_closed, 0, "{report}");
}

/// The same in a session: its deferred request is answered at its time, not aborted at the
/// stop because the accounting says `Expired`. Before, the session aborted it and closed at
/// once.
#[test]
fn an_accounting_that_says_expired_early_does_not_cut_a_session_request_short() {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    router.route("GET", "/later", Later(Duration::from_millis(300)));
    let accounting = SaysExpired(Unaccounted::new(), Arc::new(AtomicBool::new(false)));
    let limits = Limits::default().drain_timeout(Duration::from_secs(5));
    let mut session = Session::new(&router, accounting, limits);
    session.feed(b"GET /later HTTP/1.1\r\nhost: x\r\n\r\n");
    session.stop();
    session.advance(Duration::from_millis(100));
    assert!(
        !session.is_closed(),
        "closed 4.9 s before the drain deadline"
    );
    session.advance(Duration::from_millis(300));
    let answer = String::from_utf8(session.take_output()).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("late"),
        "{answer:?}"
    );
    assert_eq!(session.stats().aborted, 0);
}
