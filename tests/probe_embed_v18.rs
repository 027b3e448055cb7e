//! QA probes, round 18, of the public API as a hostile or careless embedder uses it: a mio
//! `Server` the embedder builds and drops without running it, holding an accounting whose
//! `Drop` panics. Public API only. Each test that found a bug failed on `main` before its fix
//! (the test's doc says so); the others pin a documented behaviour no other test pinned.
#![cfg(all(feature = "server", feature = "hyper"))]

#[path = "util/child.rs"]
mod child;
#[path = "util/drops.rs"]
mod drops;
#[path = "util/quiet.rs"]
mod quiet;
mod util;

const CHILD: &str = "REQGUARD_PROBE_V18_CHILD";

mod mio_unrun {
    use super::*;
    use reqguard::http::{
        demo_routes, Accounting, AccountingReport, Limits, Router, Routes, Server, StopStatus,
        Unaccounted,
    };
    use reqguard::{AbortSignal, Ledger, Refusal};
    use std::time::Instant;

    /// An accounting of the embedder's that holds a value whose `Drop` panics (a runtime's
    /// map of pending requests): else [`Unaccounted`].
    struct HoldsAPanickingDrop {
        plain: Unaccounted,
        _kept: drops::PanicsOnDrop,
    }

    fn holding_a_panicking_drop() -> HoldsAPanickingDrop {
        HoldsAPanickingDrop {
            plain: Unaccounted::new(),
            _kept: drops::PanicsOnDrop,
        }
    }

    impl Accounting for HoldsAPanickingDrop {
        type Held = ();

        fn admit(&mut self) -> Result<(), Refusal> {
            self.plain.admit()
        }

        fn signal(_: &()) -> Option<&AbortSignal> {
            None
        }

        fn stop(&mut self, deadline: Instant) {
            self.plain.stop(deadline);
        }

        fn poll_stop(&mut self, now: Instant, in_flight: usize) -> StopStatus {
            self.plain.poll_stop(now, in_flight)
        }

        fn ledger(&self) -> Option<&Ledger> {
            None
        }

        fn report(&self) -> AccountingReport {
            self.plain.report()
        }
    }

    /// QA embed18-1. A `Server` the embedder bound and dropped without running it (the
    /// embedder's own early way out: a setup step of theirs that failed after `bind`) dropped
    /// its accounting uncaught: the accounting's panicking `Drop` escaped the drop, where every
    /// way out of the crate's own (`bind` that cannot bind, `serve`'s, `run`'s) drops it
    /// caught (QA embed15-5, embed16-1). Now the unrun server drops it caught too.
    #[test]
    fn a_server_dropped_unrun_drops_its_accounting_caught() {
        quiet::quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let addr = "127.0.0.1:0".parse().unwrap();
        let server = Server::bind(addr, &router, holding_a_panicking_drop(), Limits::default())
            .expect("bound");
        let stop = server.stop_handle();
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(server)));
        let Ok(()) = dropped else {
            std::mem::forget(dropped); // the escaped payload: not dropped here
            panic!("the accounting's panic escaped the server's drop");
        };
        // A server that is gone has stopped: its handles do not wait for it.
        assert!(stop.stop_and_wait(std::time::Duration::from_secs(20)));
    }

    /// QA embed18-1. The same server dropped while a panic of the embedder's unwinds (a
    /// setup step that panicked with the server on its stack): the accounting's `Drop`
    /// panicked during the unwinding and the process aborted ("panic in a destructor during
    /// cleanup"). Now the embedder's own panic reaches its `catch_unwind`. In a child: the
    /// failure was an abort.
    #[test]
    fn a_server_unwound_unrun_leaves_the_embedders_panic() {
        if !child::is_child(CHILD) {
            child::assert_passes_in_child(
                CHILD,
                "mio_unrun::a_server_unwound_unrun_leaves_the_embedders_panic",
            );
            return;
        }
        quiet::quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let addr = "127.0.0.1:0".parse().unwrap();
            let _server =
                Server::bind(addr, &router, holding_a_panicking_drop(), Limits::default())
                    .expect("bound");
            std::panic::panic_any("the embedder's setup step")
        }));
        let payload = unwound.expect_err("the setup step's panic reaches the caller");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"the embedder's setup step"),
            "the caller gets its own panic"
        );
    }
}
