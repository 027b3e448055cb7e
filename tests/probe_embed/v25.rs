//! QA probes, round 25, of the public API as a hostile or careless embedder uses it: the
//! embedder's code that the core runs (an engine's strong handle cloned by an upgrade) calling
//! back into the server that runs it. Public API only. Each test failed on `main` before its
//! fix (the test's doc says how).

use crate::reentrant_engine;

mod core_reentry {
    use std::rc::Rc;

    use super::reentrant_engine::{noisy_core, on_next_clone};
    use reqguard::DowngradePolicy;

    /// An engine whose strong handle's `Clone` (its code, run by every upgrade while the server
    /// holds its wrapper) stops the server, directly or from an upgrade of its own: the stop's
    /// downgrade panicked "already borrowed" (the upgrade held the cell while cloning), was caught
    /// and counted as a panicked hook, and the cell kept the wrapper strong for good, under both
    /// policies: the wrapper was never let go (QA embed25-1). Now the upgrade yields its clone and
    /// the cell lets its own handle go when the clone returns.
    #[test]
    fn a_strong_handle_whose_clone_stops_the_server_still_lets_the_wrapper_go() {
        for policy in [DowngradePolicy::OnStop, DowngradePolicy::OnDrain] {
            for nested in [false, true] {
                let (core, weak) = noisy_core(policy);
                let c = Rc::clone(&core);
                let stop = move || drop(c.stop());
                if nested {
                    let c = Rc::clone(&core);
                    on_next_clone(move || {
                        let stop = stop.clone();
                        on_next_clone(stop);
                        let inner = c
                            .upgrade()
                            .expect("not finalized while an upgrade holds it");
                        assert!(inner.admit(|_| Ok(())).is_err(), "admitted after stop");
                    });
                } else {
                    on_next_clone(stop);
                }
                let live = core.upgrade().expect("strong when the upgrade began");
                assert!(live.admit(|_| Ok(())).is_err(), "admitted after stop");
                assert!(!core.wrapper().is_strong(), "{policy:?}: kept strong");
                assert_eq!(weak.strong_count(), 1, "only the proof holds it now");
                drop(live);
                assert!(core.upgrade().is_none(), "{policy:?}: the wrapper is gone");
                let drain = core.drain().expect("stopped");
                assert!(drain.is_complete());
                assert_eq!(
                    drain.report().panicked_hooks,
                    0,
                    "{policy:?}, nested {nested}"
                );
                core.ledger().assert_quiescent();
                super::reentrant_engine::disarm();
            }
        }
    }
}

mod completed_listener_cycle {
    use std::cell::Cell;
    use std::rc::Rc;

    use reqguard::engines::Heap;
    use reqguard::{AbortReason, Config, ServerCore};

    /// Sets its flag when dropped: whether a listener's captures were let go.
    struct Freed(Rc<Cell<bool>>);

    impl Drop for Freed {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    /// A listener that holds its own request's signal (a JS runtime's `request.signal.onabort`
    /// that reads `request.signal`) on a request that completes: the signal never fires (G8), so
    /// before, nothing ever dropped the listener, and the signal and the listener stayed
    /// allocated for good, one per such request, with the ledger quiescent (found by
    /// qa-embed25). Now the release lets a completed request's listeners go, unrun; a later
    /// abort through a kept handle still fires the signal (it is not a guard).
    #[test]
    fn a_listener_holding_its_own_signal_is_let_go_when_its_request_completes() {
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let (freed, ran) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(0)));
        let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
        let kept = bundle.signal().clone();
        let (own, flag, runs) = (kept.clone(), Freed(Rc::clone(&freed)), Rc::clone(&ran));
        bundle.signal().on_abort(move |_| {
            let _ = (&own, &flag);
            runs.set(runs.get() + 1);
        });
        bundle.complete();
        assert!(
            freed.get(),
            "the listener (and the signal it holds) outlived its request"
        );
        assert_eq!(ran.get(), 0, "a completed request's listener never runs");
        assert!(
            kept.abort(AbortReason::Other("late")),
            "a kept handle still fires"
        );
        assert_eq!(ran.get(), 0);
        drop(kept);
        assert!(core.stop().is_complete());
        core.ledger().assert_quiescent();
    }
}
