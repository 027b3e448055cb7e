//! QA probes, round 28, of the core's public API as a hostile embedder uses it: the core's
//! figures and their `Debug` / `Display` read from inside every callback the core runs (the
//! embedder's logging in a `Default`, a `recycle`, a payload's or a listener's `Drop`, an abort
//! listener, a drain hook, a waker, a finalizer). Public API only. Each test's doc says whether
//! it found a bug (and how it failed on `main` before its fix) or pins a documented behaviour.

use crate::quiet;
#[cfg(all(feature = "server", feature = "hyper"))]
use crate::util;

/// The core's figures read from inside its own callbacks. The core runs each callback caught
/// (a panic there is counted, not seen), so each look is caught here and counted too.
///
/// Pinned (no bug found): every `Debug` and `Display` of the core's public types, read from
/// inside every callback the core runs, neither panics (no `RefCell` of the core is borrowed
/// while the embedder's code runs, no count goes below zero) nor disagrees with itself: the
/// leak report names exactly the guards the ledger counts, per kind (its sites and its counts
/// are updated with no user code in between), the drain's `outstanding` is the ledger's
/// tickets, and a drain's report says what the ledger says. A regression that moves a count
/// past a callback (a release that gives its context back, running `recycle`, before it
/// un-sites its bundle) fails here.
mod looks_from_callbacks {
    use std::cell::{Cell, RefCell};
    use std::future::Future;
    use std::rc::{Rc, Weak};
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};
    use std::time::{Duration, Instant};

    use reqguard::engines::{Embedded, Heap};
    use reqguard::{
        AbortReason, Config, DowngradePolicy, Exhaustion, GuardKind, Outcome, Recycle, ServerCore,
    };

    type Core = ServerCore<Embedded<&'static str>, Probe>;

    thread_local! {
        static CORE: RefCell<Weak<Core>> = const { RefCell::new(Weak::new()) };
        /// Where each look came from, and what went wrong in it.
        static SEEN: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
        static WRONG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
        /// Whether `Probe::default` looks (off while the core is being built: not there yet).
        static ARMED: Cell<bool> = const { Cell::new(false) };
    }

    /// Reads everything the core shows, caught; notes `site` and what was wrong.
    fn look(site: &'static str) {
        let Some(core) = CORE.with(|c| c.borrow().upgrade()) else {
            return;
        };
        SEEN.with(|s| s.borrow_mut().push(site));
        let looked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&core)));
        let wrong = match looked {
            Ok(Ok(())) => return,
            Ok(Err(why)) => format!("{site}: {why}"),
            Err(_) => format!("{site}: a Debug or Display panicked"),
        };
        WRONG.with(|w| w.borrow_mut().push(wrong));
    }

    /// Formats every view of `core` and checks the views agree.
    fn check(core: &Core) -> Result<(), String> {
        let ledger = core.ledger();
        let texts = [
            format!("{core:?}"),
            format!("{ledger:?}"),
            format!("{:?}", core.wrapper()),
            format!("{:?}", core.pool_metrics()),
            ledger.report().to_string(),
            format!("{:?}", ledger.report()),
            ledger.outcomes().to_string(),
            ledger.outcomes().to_json(),
        ];
        if texts.iter().any(String::is_empty) {
            return Err("an empty text".into());
        }
        let report = ledger.report();
        if report.total() != ledger.total_outstanding() {
            return Err(format!(
                "the leak report names {} guards, the ledger counts {}",
                report.total(),
                ledger.total_outstanding()
            ));
        }
        for kind in GuardKind::ALL {
            let named: usize = report
                .sites()
                .iter()
                .filter(|site| site.kind == kind)
                .map(|site| site.count)
                .sum();
            if named != ledger.outstanding(kind) {
                return Err(format!(
                    "{kind}: the report names {named}, the ledger counts {}",
                    ledger.outstanding(kind)
                ));
            }
        }
        let metrics = core.pool_metrics();
        if metrics.allocated > metrics.capacity {
            return Err(format!("pool over capacity: {metrics:?}"));
        }
        if let Some(drain) = core.drain() {
            let drained = drain.report();
            let _ = (format!("{drain:?}"), drained.to_string(), drain.waiters());
            if drain.outstanding() != ledger.outstanding(GuardKind::Ticket) {
                return Err("the drain's outstanding is not the ledger's tickets".into());
            }
            if drained.outcomes != ledger.outcomes() || drained.outstanding != ledger.report() {
                return Err("the drain's report is not the ledger's".into());
            }
            if drained.complete != drain.is_complete() {
                return Err("the drain's report and the drain disagree".into());
            }
        }
        Ok(())
    }

    /// A context that looks when made, recycled and freed.
    struct Probe;

    impl Default for Probe {
        fn default() -> Self {
            if ARMED.with(Cell::get) {
                look("Default");
            }
            Probe
        }
    }

    impl Recycle for Probe {
        fn recycle(&mut self) {
            look("recycle");
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            look("context drop");
        }
    }

    /// A request payload, an abort listener's capture: looks when dropped.
    struct LooksOnDrop(&'static str);

    impl Drop for LooksOnDrop {
        fn drop(&mut self) {
            look(self.0);
        }
    }

    /// An executor's waker: looks when woken and when its last handle drops.
    struct LookingWaker;

    impl Wake for LookingWaker {
        fn wake(self: Arc<Self>) {
            look("wake");
        }
    }

    impl Drop for LookingWaker {
        fn drop(&mut self) {
            look("waker drop");
        }
    }

    /// One run through every callback, under `policy`, the pool spilling past one context.
    fn run(policy: DowngradePolicy) -> Vec<&'static str> {
        SEEN.with(|s| s.borrow_mut().clear());
        let heap = Heap::new();
        let wrapper = heap.alloc("server");
        wrapper.on_finalize(|| look("finalizer"));
        let config = Config::default()
            .with_pool_capacity(1)
            .unwrap()
            .with_exhaustion(Exhaustion::Spill)
            .with_downgrade(policy);
        let core = Rc::new(Core::new(&mut (), wrapper, config));
        CORE.with(|c| *c.borrow_mut() = Rc::downgrade(&core));
        ARMED.with(|a| a.set(true));
        let live = core.upgrade().unwrap();
        // A pooled context made, then a spilled one; payloads and listeners that look.
        let completed = live.admit(|_| Ok(LooksOnDrop("payload drop"))).unwrap();
        completed
            .signal()
            .on_abort(|_| look("never: a completed request's listener"));
        let keep = LooksOnDrop("unrun listener drop");
        completed.signal().on_abort(move |_| drop(keep));
        let gone = live.admit(|_| Ok(LooksOnDrop("payload drop"))).unwrap();
        gone.signal().on_abort(|_| look("abort listener"));
        let late = live.admit(|_| Ok(())).unwrap();
        late.signal().on_abort(|_| look("escalation's listener"));
        let saved = live.ticket().unwrap();
        completed.complete();
        gone.end(Outcome::ClientGone);
        drop(live);
        let drain = core.stop();
        drain.on_complete(|| look("drain hook"));
        let waker = Waker::from(Arc::new(LookingWaker));
        let mut waiting = std::pin::pin!(drain.clone());
        assert!(waiting
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        drop(waker);
        let start = Instant::now();
        drain.set_deadline(start);
        assert!(matches!(
            drain.poll_deadline(start + Duration::from_secs(1)),
            reqguard::DrainStatus::Expired(_)
        ));
        assert_eq!(late.signal().reason(), Some(AbortReason::DrainDeadline));
        drop(late);
        // The saved request comes back after the escalation: admitted aborted.
        let back = core
            .upgrade()
            .unwrap()
            .admit_with(saved, |_| Ok(LooksOnDrop("payload drop")))
            .unwrap();
        drop(back);
        assert!(drain.is_complete());
        assert!(waiting
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready());
        heap.collect();
        let outcomes = core.ledger().outcomes();
        assert_eq!(
            (
                outcomes.completed,
                outcomes.client_gone,
                outcomes.deadline_aborted
            ),
            (1, 1, 2)
        );
        core.ledger().assert_quiescent();
        drop(drain);
        drop(core); // the pool and its contexts go: their drops look (the core is gone)
        ARMED.with(|a| a.set(false));
        SEEN.with(|s| s.borrow().clone())
    }

    #[test]
    fn every_view_of_the_core_reads_true_from_inside_every_callback() {
        super::quiet::quiet_panics();
        for policy in [DowngradePolicy::OnStop, DowngradePolicy::OnDrain] {
            let seen = run(policy);
            let wrong = WRONG.with(|w| std::mem::take(&mut *w.borrow_mut()));
            assert!(wrong.is_empty(), "{policy:?}: {wrong:#?}");
            for site in [
                "Default",
                "recycle",
                "context drop",
                "payload drop",
                "unrun listener drop",
                "abort listener",
                "escalation's listener",
                "drain hook",
                "wake",
                "waker drop",
                "finalizer",
            ] {
                assert!(
                    seen.contains(&site),
                    "{policy:?}: no look from {site}: {seen:?}"
                );
            }
            assert!(!seen.contains(&"never: a completed request's listener"));
        }
    }
}

/// QA embed28-1 (G8, the report's counts). hyper adapter: a request whose admission panicked
/// (the embedder's `EnterScope::enter`: `500` + `connection: close`) was counted in
/// `HyperStats::refused` when the refusal was made, not when its answer reached the socket as
/// `refused`'s docs say ("one the connection lost first ... is not counted, as no client saw
/// it"): the adapter's answer closes the connection, but `Conn::refused` asked the core's
/// `Refusal::closes_connection`, which is false for an engine's refusal (the `500` of a
/// panicking admission is one), and so took the branch for "a refusal that keeps the
/// connection (none the adapter makes)". A client that reset its connection while the scope
/// ran got nothing, and `refused` said 1; a `503` in the same place is counted 0 (the mio
/// server's `refused` is taken back the same way). On `main`: `refused` 1.
#[cfg(all(feature = "server", feature = "hyper"))]
mod hyper_refusal_lost {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use reqguard::tokio_hyper::{demo_routes, EnterScope, HyperReport, HyperServer};

    use super::util::hyper_thread::{send, Engine, HyperThread};

    /// What the client and the server's scope tell each other.
    #[derive(Default)]
    struct Meet {
        /// The scope runs: the request is read, its admission under way.
        entered: AtomicBool,
        /// The client has reset its connection.
        reset: AtomicBool,
    }

    /// Waits (bounded) until `flag` is set.
    fn wait_for(flag: &AtomicBool) {
        let start = Instant::now();
        while !flag.load(Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(20), "never set");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The embedder's scope: waits for the client's reset, then panics (or enters).
    struct Scope {
        meet: Arc<Meet>,
        panics: bool,
    }

    impl EnterScope<Engine> for Scope {
        fn enter<R>(&self, f: impl FnOnce(&mut ()) -> R) -> R {
            self.meet.entered.store(true, Ordering::SeqCst);
            wait_for(&self.meet.reset);
            // The reset is on its way over the loopback: let it arrive before the answer.
            std::thread::sleep(Duration::from_millis(50));
            if self.panics {
                panic!("the embedder's scope panics");
            }
            f(&mut ())
        }
    }

    /// One request whose client resets while its admission runs: a panicking one (`500`), or
    /// one refused as stopped (`503`: the core stopped before the server serves).
    fn lost_refusal(panics: bool) -> HyperReport {
        let meet = Arc::new(Meet::default());
        let in_scope = Arc::clone(&meet);
        let server = HyperThread::spawn(move |core| {
            if !panics {
                drop(core.stop()); // every request refused 503 (QA embed18-6)
            }
            let scope = Scope {
                meet: in_scope,
                panics,
            };
            HyperServer::with_scope(core, demo_routes(), scope)
        });
        let client = send(server.addr, "/");
        wait_for(&meet.entered);
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client); // a reset: nothing sent to it reaches anyone
        meet.reset.store(true, Ordering::SeqCst);
        server.stop()
    }

    #[test]
    fn a_panicking_admissions_500_lost_with_its_connection_is_not_counted_refused() {
        super::quiet::quiet_panics();
        let report = lost_refusal(true);
        assert_eq!(report.stats.panics, 1, "{report}");
        assert_eq!(
            report.stats.refused, 0,
            "a 500 no client saw is counted refused: {report}"
        );
        assert_eq!(report.leaked, 0);
    }

    /// The same place for a `503` (a pin: it was right).
    #[test]
    fn a_503_lost_with_its_connection_is_not_counted_refused() {
        let report = lost_refusal(false);
        assert_eq!(report.stats.panics, 0, "{report}");
        assert_eq!(
            (report.stats.refused, report.stats.refused_stopped),
            (0, 0),
            "{report}"
        );
    }
}
