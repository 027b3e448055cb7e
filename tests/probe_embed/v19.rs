//! QA probes, round 19, of the public API as a hostile or careless embedder uses it: the
//! sans-IO `Session` dropped by its embedder with requests still out (a deferred answer and one
//! queued behind it), holding an accounting of the embedder's that counts outcomes in its own
//! `end`, or whose `Drop` (or a request's `Held`) panics, dropped alone or by another panic's
//! unwinding. Public API only. Each test that found a bug failed on `main` before its fix (the
//! test's doc says so); the others pin a documented behaviour no other test pinned.
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::child;
use crate::drops;
use crate::quiet;

const CHILD: &str = "REQGUARD_PROBE_V19_CHILD";

mod session_drop {
    use super::*;
    use reqguard::engines::{Embedded, Heap};
    use reqguard::http::{
        demo_routes, Accounting, AccountingReport, Guarded, GuardedHeld, Limits, NoScope, Router,
        Routes, Session, StopStatus,
    };
    use reqguard::{AbortReason, AbortSignal, Config, Ledger, Outcome, Refusal};
    use std::cell::RefCell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::time::{Duration, Instant};

    /// A deferred answer (50 ms) and a request pipelined behind it: two requests out, the
    /// second queued behind the first.
    const TWO_OUT: &[u8] =
        b"GET /delay?ms=50 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n";

    thread_local! {
        /// What the accounting's `end` was called with, on this test's thread.
        static ENDED: RefCell<Vec<Outcome>> = const { RefCell::new(Vec::new()) };
        /// The reasons the requests' signals fired with.
        static FIRED: RefCell<Vec<AbortReason>> = const { RefCell::new(Vec::new()) };
    }

    fn ended() -> Vec<Outcome> {
        ENDED.with(|e| e.borrow().clone())
    }

    fn fired() -> Vec<AbortReason> {
        FIRED.with(|f| f.borrow().clone())
    }

    /// A runtime's own accounting over reqguard's: `Guarded`, plus the embedder's own count
    /// of requests ended (Bun's `pending_requests -= 1`) in `end`, and a listener on each
    /// request's signal. `panicking` holds a value whose `Drop` panics (a runtime's map of
    /// pending requests), or nothing.
    struct Tallied {
        inner: Guarded<Embedded<&'static str>, NoScope>,
        _panicking: Option<drops::PanicsOnDrop>,
    }

    fn tallied(panicking: bool) -> Tallied {
        ENDED.with(|e| e.borrow_mut().clear());
        FIRED.with(|f| f.borrow_mut().clear());
        Tallied {
            inner: Guarded::embedded_on(&Heap::new(), "server", Config::default()),
            // Not `then_some`: its argument is made (and dropped) either way.
            _panicking: if panicking {
                Some(drops::PanicsOnDrop)
            } else {
                None
            },
        }
    }

    impl Accounting for Tallied {
        type Held = GuardedHeld;

        fn admit(&mut self) -> Result<Self::Held, Refusal> {
            let held = self.inner.admit()?;
            let _ = held
                .signal()
                .on_abort(|reason| FIRED.with(|f| f.borrow_mut().push(reason)));
            Ok(held)
        }

        fn signal(held: &Self::Held) -> Option<&AbortSignal> {
            Some(held.signal())
        }

        fn end(held: Self::Held, outcome: Outcome) {
            ENDED.with(|e| e.borrow_mut().push(outcome));
            held.end(outcome);
        }

        fn this(&self) -> Option<&dyn std::any::Any> {
            self.inner.this()
        }

        fn handled(&mut self) {
            self.inner.handled();
        }

        fn stop(&mut self, deadline: Instant) {
            self.inner.stop(deadline);
        }

        fn poll_stop(&mut self, now: Instant, in_flight: usize) -> StopStatus {
            self.inner.poll_stop(now, in_flight)
        }

        fn ledger(&self) -> Option<&Ledger> {
            self.inner.ledger()
        }

        fn report(&self) -> AccountingReport {
            self.inner.report()
        }
    }

    /// QA embed19-1. A session dropped with two requests out ended them as a connection
    /// dropped alone does (*dropped*, signals fired `Dropped`), without the accounting: its
    /// `end` was never called, so an embedder's own count of requests out (what its `end`
    /// keeps) stayed at two forever, where every way the crate's loops let a connection go
    /// ends each request through the accounting, once. Now each ends *force closed* (the
    /// server went with its connection, as at a force-close), through `end`, its signal fired
    /// `ForceClosed`, once. Before the fix `end` saw nothing (and the signals said `Dropped`).
    #[test]
    fn a_session_dropped_with_requests_out_ends_each_once_through_its_accounting() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let mut session = Session::new(&router, tallied(false), Limits::default());
        session.feed(TWO_OUT);
        assert!(session.take_output().is_empty(), "both are still out");
        assert_eq!(session.stats().served, 0);
        drop(session);
        assert_eq!(
            ended(),
            [Outcome::ForceClosed, Outcome::ForceClosed],
            "the accounting's end, for the two requests out"
        );
        assert_eq!(
            fired(),
            [AbortReason::ForceClosed, AbortReason::ForceClosed],
            "the signals"
        );
    }

    /// Not a bug: a session whose client disconnected (or whose answers were all written)
    /// has nothing out when dropped; its drop ends nothing a second time.
    #[test]
    fn a_session_dropped_after_its_requests_ended_ends_nothing_twice() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let mut session = Session::new(&router, tallied(false), Limits::default());
        session.feed(TWO_OUT);
        session.disconnect();
        assert_eq!(ended(), [Outcome::ClientGone, Outcome::ClientGone]);
        drop(session);
        assert_eq!(ended(), [Outcome::ClientGone, Outcome::ClientGone]);
        assert_eq!(fired().len(), 2, "{:?}", fired());

        let mut session = Session::new(&router, tallied(false), Limits::default());
        session.feed(TWO_OUT);
        session.advance(Duration::from_millis(50));
        assert!(!session.take_output().is_empty());
        assert_eq!(session.stats().served, 2);
        drop(session);
        assert_eq!(ended(), [Outcome::Completed, Outcome::Completed]);
        assert!(fired().is_empty(), "completed: no signal fires");
    }

    /// QA embed19-1. A session dropped by its embedder dropped its accounting uncaught: a
    /// `Drop` of the embedder's in it that panics escaped the session's drop (a server's loop
    /// drops its accounting caught, QA embed8-5, embed18-1), with or without requests out.
    /// Now caught; the requests out still end once. Before the fix the panic escaped.
    #[test]
    fn a_session_dropped_drops_its_accounting_caught() {
        quiet::quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        for out in [false, true] {
            let mut session = Session::new(&router, tallied(true), Limits::default());
            if out {
                session.feed(TWO_OUT);
            }
            let dropped = catch_unwind(AssertUnwindSafe(move || drop(session)));
            let Ok(()) = dropped else {
                std::mem::forget(dropped); // the escaped payload: not dropped here
                panic!("requests out {out}: the accounting's panic escaped the session's drop");
            };
            let expected = if out { 2 } else { 0 };
            assert_eq!(ended().len(), expected, "requests out {out}: {:?}", ended());
            assert!(
                ended().iter().all(|o| *o == Outcome::ForceClosed),
                "{:?}",
                ended()
            );
        }
    }

    /// A request's `Held` of the embedder's whose `Drop` panics (its accounting says
    /// `MAY_PANIC`, the default): else `Tallied`'s bundle.
    struct PanickyHeld(#[allow(dead_code)] GuardedHeld, drops::PanicsOnDrop);

    /// An accounting whose requests hold a [`PanickyHeld`], ended by the default `end`
    /// (which drops it).
    struct HoldsPanics(Tallied);

    impl Accounting for HoldsPanics {
        type Held = PanickyHeld;

        fn admit(&mut self) -> Result<PanickyHeld, Refusal> {
            Ok(PanickyHeld(self.0.admit()?, drops::PanicsOnDrop))
        }

        fn signal(held: &PanickyHeld) -> Option<&AbortSignal> {
            Some(held.0.signal())
        }

        fn this(&self) -> Option<&dyn std::any::Any> {
            self.0.this()
        }

        fn handled(&mut self) {
            self.0.handled();
        }

        fn stop(&mut self, deadline: Instant) {
            self.0.stop(deadline);
        }

        fn poll_stop(&mut self, now: Instant, in_flight: usize) -> StopStatus {
            self.0.poll_stop(now, in_flight)
        }

        fn ledger(&self) -> Option<&Ledger> {
            self.0.ledger()
        }

        fn report(&self) -> AccountingReport {
            self.0.report()
        }
    }

    /// QA embed19-1. A request out at the drop was dropped with the connection, its `Held`
    /// uncaught: one whose `Drop` panics escaped the session's drop (two such aborted the
    /// process: the second panicked during the first's unwinding), where the crate's loops
    /// end a request through the accounting's `end`, caught when it says it may panic. Now the
    /// request ends through `end` (the default drops it: its bundle *dropped*, its signal
    /// fired once) and the drop returns. Before the fix the `Held`'s panic escaped the drop.
    #[test]
    fn a_session_dropped_with_held_values_whose_drop_panics_ends_them_caught() {
        quiet::quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let mut session = Session::new(&router, HoldsPanics(tallied(false)), Limits::default());
        session.feed(b"GET /delay?ms=50 HTTP/1.1\r\nhost: x\r\n\r\n");
        let dropped = catch_unwind(AssertUnwindSafe(move || drop(session)));
        let Ok(()) = dropped else {
            std::mem::forget(dropped);
            panic!("a request's Held panicked out of the session's drop");
        };
        assert_eq!(
            fired(),
            [AbortReason::Dropped],
            "the request out ended once"
        );
    }

    /// QA embed19-1. A session dropped by the unwinding of a panic of the embedder's (a
    /// failing assertion in a test with the session on its stack), holding an accounting whose
    /// `Drop` panics: the second panic, during the unwinding, aborted the process. Now the
    /// embedder's own panic reaches its `catch_unwind`. In a child: the failure was an abort
    /// (SIGABRT).
    #[test]
    fn a_session_unwound_leaves_the_embedders_panic() {
        if !child::is_child(CHILD) {
            child::assert_passes_in_child(
                CHILD,
                "v19::session_drop::a_session_unwound_leaves_the_embedders_panic",
            );
            return;
        }
        quiet::quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            let mut session = Session::new(&router, tallied(true), Limits::default());
            session.feed(TWO_OUT);
            std::panic::panic_any("the embedder's assertion panics")
        }));
        let payload = unwound.expect_err("the embedder's panic reaches the caller");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"the embedder's assertion panics"),
            "the caller gets its own panic"
        );
        assert_eq!(ended(), [Outcome::ForceClosed, Outcome::ForceClosed]);
    }

    /// QA embed19-2. `Session::dispatcher` hands out the session's dispatcher mutably, so an
    /// embedder can put another in its place (`std::mem::swap` of two sessions' dispatchers,
    /// say to move one server's accounting to another session). The session drove its
    /// connection with the crate's unchecked calls, made for the loops, whose connections
    /// never meet another dispatcher: the requests admitted by one dispatcher were written
    /// through the other, silently (its `in_flight` below zero: a debug build panicked with an
    /// overflow deep in the answer's write; a release build wrapped to `usize::MAX`, a drain
    /// that never completes, and the first dispatcher kept its two requests in flight for
    /// ever). Now the session checks, as a `Connection` driven by hand does: the next call
    /// panics, saying which mistake it was, before anything is counted; the drop lets go of
    /// what the session holds, caught. Before the fix the write counted the two requests in
    /// the other dispatcher (debug: an overflow panic instead of the message).
    #[test]
    fn a_session_whose_dispatcher_was_swapped_refuses_it_before_counting() {
        quiet::quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let mut first = Session::new(&router, tallied(false), Limits::default());
        let mut second = Session::new(&router, tallied(false), Limits::default());
        first.feed(TWO_OUT);
        second.feed(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(first.dispatcher().in_flight(), 2);
        std::mem::swap(first.dispatcher(), second.dispatcher());
        let advanced = catch_unwind(AssertUnwindSafe(|| {
            first.advance(Duration::from_millis(50));
        }));
        let payload = advanced.expect_err("the swapped dispatcher is refused");
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|m| (*m).to_owned()))
            .unwrap_or_default();
        assert!(
            message.contains("another Dispatcher"),
            "the panic says what went wrong: {message:?}"
        );
        // Nothing was counted in the other dispatcher (the second session's, now the first's).
        let other = first.dispatcher();
        assert_eq!(
            (other.in_flight(), other.stats().served),
            (0, 1),
            "the second session's own request only"
        );
        assert!(ended().len() <= 1, "{:?}", ended());
        let dropped = catch_unwind(AssertUnwindSafe(move || {
            drop(first);
            drop(second);
        }));
        assert!(dropped.is_ok(), "the drops do not panic");
    }
}
