//! QA probes, round 20, of the public API as a hostile or careless embedder uses it: a
//! `Session` dropped while its stop is under way (requests still out, the accounting's drain
//! hooks still to run). Public API only. Each test that found a bug failed on `main` before its
//! fix (the test's doc says so); the others pin a documented behaviour no other test pinned.
#![cfg(all(feature = "server", feature = "hyper"))]

#[path = "util/quiet.rs"]
mod quiet;

mod session_drop_mid_stop {
    use super::*;
    use reqguard::engines::Heap;
    use reqguard::http::{demo_routes, Guarded, Limits, Router, Routes, Session};
    use reqguard::{Config, DowngradePolicy};
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    /// A deferred answer (50 ms) and a request pipelined behind it: two requests out.
    const TWO_OUT: &[u8] =
        b"GET /delay?ms=50 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n";

    /// `Guarded::embedded_on(heap)` with an `after_drain` hook of the embedder's that counts
    /// its runs (a runtime resolving `server.stop()`'s promise there).
    fn guarded(
        heap: &Heap,
        policy: DowngradePolicy,
        ran: &Rc<Cell<u32>>,
    ) -> Guarded<reqguard::engines::Embedded<&'static str>, reqguard::http::NoScope> {
        let ran = Rc::clone(ran);
        Guarded::embedded_on(heap, "server", Config::default().with_downgrade(policy))
            .after_drain(move || ran.set(ran.get() + 1))
    }

    /// QA embed20-2 (G5). A session stopped with requests out and then dropped (a runtime torn
    /// down mid-`server.stop()`): the drop ended both requests *force closed* (QA embed19-1),
    /// so the accounting's drain completed (its `Drain` said so), but the session never
    /// polled it again: `Guarded::after_drain`'s hooks ("once the drain has completed") were
    /// dropped unrun, the embedder's `stop()` promise never resolved, and
    /// `Guarded::embedded`'s collection never finalized the wrapper, where a server's stop
    /// runs them after its force-close, and docs/server.md says of `Session::stop` "once
    /// nothing is out the drain completes (the accounting's drain hooks run)". Both downgrade
    /// policies. Before the fix: hooks run 0, wrapper not finalized.
    #[test]
    fn a_session_dropped_mid_stop_completes_its_drain_and_runs_its_hooks() {
        for policy in [DowngradePolicy::OnDrain, DowngradePolicy::OnStop] {
            let routes = Routes::new();
            let mut router = Router::new(&routes);
            demo_routes(&mut router);
            let heap = Heap::new();
            let ran = Rc::new(Cell::new(0));
            let mut session =
                Session::new(&router, guarded(&heap, policy, &ran), Limits::default());
            session.feed(TWO_OUT);
            session.stop();
            assert_eq!(session.dispatcher().in_flight(), 2, "{policy:?}");
            assert_eq!(ran.get(), 0, "{policy:?}: two requests out, not drained");
            let drain = session.dispatcher().accounting().core().drain().unwrap();
            drop(session);
            assert!(drain.is_complete(), "{policy:?}");
            assert_eq!(drain.report().outcomes.force_closed, 2, "{policy:?}");
            assert_eq!(ran.get(), 1, "{policy:?}: the drain hook ran once");
            assert_eq!(heap.finalized(), 1, "{policy:?}: the wrapper was collected");
        }
    }

    /// Not a bug: a session whose stop has run its course (drained, its hooks run) runs
    /// nothing again when dropped; one never stopped runs no drain hook (a server dropped
    /// unrun does not stop either).
    #[test]
    fn a_session_dropped_after_its_drain_or_unstopped_runs_no_hook_again() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let heap = Heap::new();
        let ran = Rc::new(Cell::new(0));
        let mut session = Session::new(
            &router,
            guarded(&heap, DowngradePolicy::OnDrain, &ran),
            Limits::default(),
        );
        session.feed(TWO_OUT);
        session.stop();
        session.advance(Duration::from_millis(50));
        assert_eq!(ran.get(), 1, "drained when both were answered");
        drop(session);
        assert_eq!(ran.get(), 1);

        let ran = Rc::new(Cell::new(0));
        let mut session = Session::new(
            &router,
            guarded(&heap, DowngradePolicy::OnDrain, &ran),
            Limits::default(),
        );
        session.feed(TWO_OUT);
        drop(session);
        assert_eq!(ran.get(), 0, "never stopped: no drain hook");
    }

    /// The drain hook runs caught at the drop: one that panics neither escapes the drop nor
    /// keeps the accounting from being dropped (the wrapper is still collected by the
    /// `embedded` hook set before it).
    #[test]
    fn a_drain_hook_that_panics_at_the_drop_is_caught() {
        quiet::quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let heap = Heap::new();
        let guarded = Guarded::embedded_on(&heap, "server", Config::default())
            .after_drain(|| panic!("a drain hook panics"));
        let mut session = Session::new(&router, guarded, Limits::default());
        session.feed(TWO_OUT);
        session.stop();
        drop(session);
        assert_eq!(heap.finalized(), 1);
    }
}
