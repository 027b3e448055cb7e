//! QA probes, round 26, of the public API as a hostile or careless embedder uses it: a
//! listener that holds its own request's signal (a JavaScript runtime's
//! `request.signal.addEventListener("abort", () => use(request.signal))`) on a request that
//! completes, on the core and on both stacks; a strong handle whose drop panics in a downgrade
//! put off by its clone. Public API only. Each test failed on `main` before its fix (the
//! test's doc says how).

use crate::drops;
use crate::quiet;
use crate::reentrant_engine;
#[allow(unused_imports)] // used by the hyper half only
use crate::util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use drops::Freed;

/// How many times a listener ran, shared with a server thread's handler.
type Runs = Arc<AtomicUsize>;

fn count(counter: &Arc<AtomicUsize>) -> usize {
    counter.load(Ordering::SeqCst)
}

/// A request's listeners live at most until its end (docs/design.md, G8): on a request that
/// completes, a listener holding its own request's signal was a cycle nothing broke (the signal
/// never fires, G8, and nothing dropped its listeners while a handle was left, the listener's
/// own): one signal and its listener kept for good per such request, with the ledger quiescent
/// (found by qa-embed25, documented as open in round 25).
mod core_listener_cycle {
    use super::*;
    use reqguard::engines::Heap;
    use reqguard::{AbortReason, AbortSignal, Config, Outcome, ServerCore};

    /// A listener that holds `signal` (its own) and a marker; counts its runs.
    fn holding(signal: &AbortSignal, freed: Freed, runs: &Runs) -> impl FnOnce(AbortReason) {
        let (own, runs) = (signal.clone(), Arc::clone(runs));
        move |_| {
            let _ = (&own, &freed);
            runs.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Many completed requests, each with a listener holding its own signal: every listener is
    /// let go (with the signal it holds) at its request's release, none runs, and the signals
    /// go back to the spare list for reuse. On `main`: none of the 1,000 listeners was dropped
    /// (each kept its signal, and so itself, alive for good).
    #[test]
    fn a_thousand_completed_requests_keep_no_listener_holding_its_own_signal() {
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let runs = Runs::default();
        let mut freed_total = Vec::new();
        for _ in 0..1000 {
            let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
            let (freed, count_freed) = Freed::new();
            assert!(bundle
                .signal()
                .on_abort(holding(bundle.signal(), freed, &runs)));
            bundle.complete();
            freed_total.push(count_freed);
        }
        let kept = freed_total.iter().filter(|f| count(f) == 0).count();
        assert_eq!(kept, 0, "listeners kept alive by their own signal");
        assert_eq!(count(&runs), 0, "a completed request's listener ran");
        assert_eq!(core.ledger().outcomes().completed, 1000);
        assert!(core.stop().is_complete());
        core.ledger().assert_quiescent();
    }

    /// A listener added after its request ended, whatever the outcome, through a handle kept
    /// past the end: `on_abort` returns `false` and drops it unrun at once, so it cannot make
    /// the cycle either. On `main`: added (`true`) for a completed request, and kept for good.
    #[test]
    fn a_listener_added_after_the_end_is_refused_and_dropped_for_every_outcome() {
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let runs = Runs::default();
        for outcome in Outcome::ALL {
            let bundle = core.upgrade().unwrap().admit(|_| Ok(())).unwrap();
            let kept = bundle.signal().clone();
            bundle.end(outcome);
            let (freed, count_freed) = Freed::new();
            let added = kept.on_abort(holding(&kept, freed, &runs));
            assert!(!added, "{outcome}: a listener added after the end");
            assert_eq!(count(&count_freed), 1, "{outcome}: kept by its own signal");
            if outcome == Outcome::Completed {
                assert!(
                    kept.abort(AbortReason::Other("late")),
                    "a kept handle fires"
                );
                assert_eq!(kept.reason(), Some(AbortReason::Other("late")));
            }
            assert_eq!(count(&runs), 0, "{outcome}: ran");
        }
        assert_eq!(core.ledger().outcomes().total(), 5);
        assert!(core.stop().is_complete());
        core.ledger().assert_quiescent();
    }

    /// A request object whose `Drop` (an engine object's finalizer: user code the release runs)
    /// aborts its own request's signal through a handle it kept, on a request that completed:
    /// marked aborted, its reason readable, the request still *completed*, and its listener
    /// (added while it was out) dropped unrun. On `main`: the listener ran, with the late
    /// reason, after its request's end.
    #[test]
    fn an_abort_from_the_releases_own_user_code_runs_no_listener_of_a_completed_request() {
        struct AbortsOnDrop(AbortSignal);
        impl Drop for AbortsOnDrop {
            fn drop(&mut self) {
                self.0.abort(AbortReason::Other("finalizer"));
            }
        }
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let live = core.upgrade().unwrap();
        let mut bundle = live.admit(|_| Ok(None)).unwrap();
        let kept = bundle.signal().clone();
        *bundle.request_mut().unwrap() = Some(AbortsOnDrop(kept.clone()));
        let (runs, (freed, count_freed)) = (Runs::default(), Freed::new());
        assert!(bundle.signal().on_abort(holding(&kept, freed, &runs)));
        bundle.complete();
        assert_eq!(kept.reason(), Some(AbortReason::Other("finalizer")));
        assert_eq!(count(&runs), 0, "ran after its request's end");
        assert_eq!(count(&count_freed), 1, "kept");
        assert_eq!(core.ledger().outcomes().completed, 1);
        drop((live, kept));
        assert!(core.stop().is_complete());
        core.ledger().assert_quiescent();
    }
}

/// The same cycle through the mio server's handlers (`Guarded`, sans-IO with `Session`): a
/// handler adds a listener that holds its request's signal, and the request is answered.
#[cfg(feature = "server")]
mod mio_listener_cycle {
    use super::*;
    use reqguard::http::{Guarded, Limits, Reply, Request, Response, Router, Routes, Session};
    use reqguard::{AbortSignal, Config};
    use std::cell::RefCell;
    use std::rc::Rc;

    fn get(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes()
    }

    /// `/cycle` adds a listener holding its own signal and a [`Freed`], then answers; `/keep`
    /// keeps a handle to its signal in `kept` and answers. After the answers, the first
    /// listener was let go unrun, and a listener added through the kept handle is refused and
    /// dropped. On `main`: the first listener was kept (by its own signal) for good, and the
    /// second added and kept.
    #[test]
    fn a_handlers_listener_holding_its_own_signal_is_let_go_when_answered() {
        let (freed, count_freed) = Freed::new();
        let freed = RefCell::new(Some(freed));
        let runs = Runs::default();
        let kept: Rc<RefCell<Option<AbortSignal>>> = Rc::default();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        let r = Arc::clone(&runs);
        router.route(
            "GET",
            "/cycle",
            move |request: &Request<'_>, response: &mut Response<'_>| {
                let signal = request.signal().expect("guarded");
                let (own, freed, runs) =
                    (signal.clone(), freed.borrow_mut().take(), Arc::clone(&r));
                assert!(signal.on_abort(move |_| {
                    let _ = (&own, &freed);
                    runs.fetch_add(1, Ordering::SeqCst);
                }));
                response.write(b"ok");
                Reply::Now
            },
        );
        let keep = Rc::clone(&kept);
        router.route(
            "GET",
            "/keep",
            move |request: &Request<'_>, response: &mut Response<'_>| {
                *keep.borrow_mut() = request.signal().cloned();
                response.write(b"ok");
                Reply::Now
            },
        );
        let mut session = Session::new(
            &router,
            Guarded::embedded("server", Config::default()),
            Limits::default(),
        );
        session.feed(&get("/cycle"));
        session.feed(&get("/keep"));
        let output = String::from_utf8(session.take_output()).unwrap();
        assert_eq!(output.matches("HTTP/1.1 200").count(), 2, "{output}");
        assert_eq!(count(&count_freed), 1, "the listener outlived its request");
        let kept = kept.borrow_mut().take().expect("kept");
        let (late, count_late) = Freed::new();
        let own = kept.clone();
        assert!(
            !kept.on_abort(move |_| drop((own, late))),
            "added after the end"
        );
        assert_eq!(count(&count_late), 1, "kept by its own signal");
        assert_eq!(count(&runs), 0);
        drop(kept);
        let ledger = session.ledger().unwrap();
        assert_eq!(ledger.outcomes().completed, 2);
        ledger.assert_quiescent();
    }
}

/// The same cycle through the hyper adapter's handlers: a handler adds a listener holding its
/// own bundle's signal and answers with its bundle; a later handler adds one through a handle
/// an earlier, answered request's handler kept.
#[cfg(feature = "hyper")]
mod hyper_listener_cycle {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Reply};
    use reqguard::AbortSignal;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::{Duration, Instant};
    use util::bounded;
    use util::hyper_thread::{counted_once, HyperThread};

    const HANG: Duration = Duration::from_secs(20);

    /// `/cycle`: a listener holding its own signal and a [`Freed`] (counted in `freed`), then
    /// the answer with its bundle; `/keep`: its signal kept, then the answer; `/add`: a
    /// listener holding the kept signal and a [`Freed`], answered `refused`, `added` or `out`
    /// (the kept one's request not ended yet: the test asks again). On `main`: `/cycle`'s
    /// listeners were never dropped, and `/add` answered `added` (kept for good).
    #[test]
    fn a_handlers_listener_holding_its_own_signal_is_let_go_when_answered() {
        let (freed, runs) = (Arc::new(AtomicUsize::new(0)), Runs::default());
        let (f, r) = (Arc::clone(&freed), Arc::clone(&runs));
        let server = HyperThread::spawn(move |core| {
            let kept: Rc<RefCell<Option<AbortSignal>>> = Rc::default();
            let handler = move |_this, request: hyper::Request<Incoming>, bundle: Bundle| {
                let (kept, freed, runs) = (Rc::clone(&kept), Arc::clone(&f), Arc::clone(&r));
                let path = request.uri().path().to_owned();
                async move {
                    let text = match path.as_str() {
                        "/cycle" => {
                            add_holding(bundle.signal(), bundle.signal(), &freed, &runs);
                            "ok"
                        }
                        "/keep" => {
                            *kept.borrow_mut() = Some(bundle.signal().clone());
                            "ok"
                        }
                        _ => {
                            let kept = kept.borrow();
                            let kept = kept.as_ref().expect("kept first");
                            if kept.has_pending_activity() {
                                "out"
                            } else if add_holding(kept, kept, &freed, &runs) {
                                "added"
                            } else {
                                "refused"
                            }
                        }
                    };
                    let body = Full::new(Bytes::from_static(text.as_bytes()));
                    Ok::<Reply<Full<Bytes>>, HandlerError>(
                        bundle.respond(hyper::Response::new(body)),
                    )
                }
            };
            HyperServer::new(core, handler)
        });
        for _ in 0..3 {
            assert_eq!(util::get(server.addr, "/cycle").text(), "ok");
        }
        assert_eq!(util::get(server.addr, "/keep").text(), "ok");
        let until = Instant::now() + HANG;
        let added = loop {
            let answer = util::get(server.addr, "/add");
            if answer.text() != "out" || Instant::now() > until {
                break answer;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(added.text(), "refused", "a listener added after the end");
        let until = Instant::now() + HANG;
        while count(&freed) < 4 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(count(&freed), 4, "listeners outlived their requests");
        let report = bounded::within(HANG, move || server.stop()).expect("the stop hung");
        assert_eq!(
            count(&runs),
            0,
            "a completed request's listener ran: {report}"
        );
        assert_eq!(report.outcomes.completed, 5, "{report}");
        counted_once(&report);
    }

    /// Adds to `signal` a listener holding `held` and a [`Freed`] counted in `freed`.
    fn add_holding(signal: &AbortSignal, held: &AbortSignal, freed: &Runs, runs: &Runs) -> bool {
        let (held, marker, runs) = (held.clone(), Freed(Arc::clone(freed)), Arc::clone(runs));
        signal.on_abort(move |_| {
            let _ = (&held, &marker);
            runs.fetch_add(1, Ordering::SeqCst);
        })
    }
}

/// The downgrade a strong handle's `Clone` asked for (it stopped the server: QA embed25-1) is
/// done when the clone returns, inside the upgrade: dropping the cell's strong handle there is
/// the engine's code (a finalizer), as in the stop's own downgrade, which is caught and counted
/// in `DrainReport::panicked_hooks` (`ServerCore::stop`). On `main` the put-off one was not:
/// the panic reached the upgrade's caller (`core.upgrade()` unwound), uncounted.
mod put_off_downgrade {
    use super::reentrant_engine::{disarm, noisy_core, on_next_clone, panic_on_next_drop};
    use reqguard::DowngradePolicy;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::rc::Rc;

    #[test]
    fn a_strong_handle_whose_drop_panics_in_a_put_off_downgrade_is_caught_and_counted() {
        super::quiet::quiet_panics();
        for policy in [DowngradePolicy::OnStop, DowngradePolicy::OnDrain] {
            let (core, weak) = noisy_core(policy);
            let c = Rc::clone(&core);
            on_next_clone(move || {
                drop(c.stop());
                panic_on_next_drop(); // the cell's own handle, dropped when the clone returns
            });
            let upgraded = catch_unwind(AssertUnwindSafe(|| core.upgrade().is_some()));
            disarm();
            assert_eq!(upgraded.ok(), Some(true), "{policy:?}: the upgrade unwound");
            assert!(!core.wrapper().is_strong(), "{policy:?}: kept strong");
            assert_eq!(weak.strong_count(), 0, "{policy:?}: the wrapper is gone");
            let drain = core.drain().expect("stopped");
            assert!(drain.is_complete());
            assert_eq!(drain.report().panicked_hooks, 1, "{policy:?}: not counted");
            core.ledger().assert_quiescent();
        }
    }
}

/// The drain deadline aborts every admitted request still out (`Drain::poll_deadline`, G5): a
/// saved request admitted after the deadline's escalation (`Live::admit_with`, which works
/// after `stop`) was never aborted by later polls (the escalation runs once), so a handler
/// that waits for its abort kept the drain from completing for good: `poll_deadline` said
/// `Expired` with nothing aborted on every poll.
mod saved_request_after_the_deadline {
    use reqguard::engines::Heap;
    use reqguard::{Config, DrainStatus, ServerCore};
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    /// A cooperative handler (a JS one: `if (signal.aborted) end(); else
    /// signal.addEventListener("abort", end)`): it ends its request when its signal fires.
    fn cooperate(bundle: Bundle) {
        let held = Rc::new(RefCell::new(Some(bundle)));
        let h = Rc::clone(&held);
        let signal = held.borrow().as_ref().unwrap().signal().clone();
        if !signal.on_abort(move |_| drop(h.borrow_mut().take())) {
            drop(held.borrow_mut().take());
        }
    }

    type Bundle = reqguard::Admitted<(), ()>;

    #[test]
    fn a_saved_request_admitted_after_the_deadline_is_aborted_by_it() {
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let saved = core.upgrade().unwrap().ticket().unwrap();
        cooperate(core.upgrade().unwrap().admit(|_| Ok(())).unwrap());
        let drain = core.stop();
        let t0 = Instant::now();
        drain.set_deadline(t0);
        assert!(matches!(drain.poll_deadline(t0), DrainStatus::Expired(_)));
        let late = core.upgrade().unwrap().admit_with(saved, |_| Ok(()));
        cooperate(late.unwrap());
        let status = drain.poll_deadline(t0 + Duration::from_millis(1));
        assert!(
            matches!(status, DrainStatus::Complete),
            "a request out past the deadline was not aborted: {status:?}"
        );
        assert_eq!(core.ledger().outcomes().deadline_aborted, 2);
        core.ledger().assert_quiescent();
    }
}
