//! QA probes, round 27, of the core's run-time side as a hostile embedder uses it. Public API
//! only. Each test failed on `main` before its fix (the test's doc says how).

use crate::quiet;
use crate::reentrant_engine;

/// QA embed27-1 (G5). An engine's strong-handle `Clone` (the engine's code, run by every
/// upgrade while the server holds its wrapper) that stops the server, under either policy (the
/// downgrade is put off until the clone returns: QA embed25-1), and then panics: the panic is
/// the engine's and reaches the upgrade's caller, but the stop's downgrade must still be done.
/// On `main` the unwind skipped it: the cell kept the wrapper strong until the next upgrade,
/// for good once none came (a stopped server gets none): "OnStop: kept strong".
mod clone_stops_then_panics {
    use super::reentrant_engine::{disarm, noisy_core, on_next_clone, panic_on_next_drop};
    use reqguard::DowngradePolicy;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::rc::Rc;

    /// Upgrades once with a clone that stops the server and panics (and arms the cell's own
    /// handle to panic when dropped, if `drop_panics`); checks the wrapper was let go.
    fn stop_in_a_panicking_clone(policy: DowngradePolicy, drop_panics: bool) {
        let (core, weak) = noisy_core(policy);
        let c = Rc::clone(&core);
        on_next_clone(move || {
            drop(c.stop());
            if drop_panics {
                panic_on_next_drop();
            }
            panic!("the engine's clone throws");
        });
        let upgraded = catch_unwind(AssertUnwindSafe(|| core.upgrade().is_some()));
        disarm();
        let case = format!("{policy:?}, drop panics {drop_panics}");
        assert!(
            upgraded.is_err(),
            "{case}: the clone's panic is the caller's"
        );
        let drain = core.drain().expect("stopped");
        assert!(drain.is_complete());
        assert!(!core.wrapper().is_strong(), "{case}: kept strong");
        assert_eq!(weak.strong_count(), 0, "{case}: the wrapper is alive");
        let hook_panics = u64::from(drop_panics);
        assert_eq!(drain.report().panicked_hooks, hook_panics, "{case}");
        core.ledger().assert_quiescent();
    }

    #[test]
    fn a_clone_that_stops_the_server_then_panics_still_lets_the_wrapper_go() {
        super::quiet::quiet_panics();
        for policy in [DowngradePolicy::OnStop, DowngradePolicy::OnDrain] {
            stop_in_a_panicking_clone(policy, false);
        }
    }

    /// A clone that panics without stopping the server lets nothing go: the server serves on.
    #[test]
    fn a_clone_that_only_panics_leaves_the_wrapper_strong() {
        super::quiet::quiet_panics();
        let (core, weak) = noisy_core(DowngradePolicy::OnStop);
        on_next_clone(|| panic!("the engine's clone throws"));
        let upgraded = catch_unwind(AssertUnwindSafe(|| core.upgrade().is_some()));
        disarm();
        assert!(upgraded.is_err());
        assert!(core.wrapper().is_strong() && weak.strong_count() > 0);
        assert!(!core.is_stopped());
        let live = core.upgrade().expect("the wrapper is alive");
        live.admit(|_| Ok(())).unwrap().complete();
        drop(live);
        core.ledger().assert_quiescent();
    }

    /// The same, the cell's own handle's drop panicking too (a finalizer that throws), inside
    /// the put-off downgrade: caught and counted, as in one on return (QA embed26-1).
    #[test]
    fn a_drop_that_panics_in_the_unwinding_put_off_downgrade_is_caught_and_counted() {
        super::quiet::quiet_panics();
        for policy in [DowngradePolicy::OnStop, DowngradePolicy::OnDrain] {
            stop_in_a_panicking_clone(policy, true);
        }
    }
}
