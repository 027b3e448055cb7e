//! QA probes, thirteenth round, of the embedding API as a hostile or careless embedder uses it:
//! the embedder's closures that run on a server's own threads (routes, accounting, a hyper
//! loop's `make`) panicking with payloads whose `Drop` panics, or holding captures whose
//! `Drop` panics. Public API only. Each test that found a bug failed on `main` before its fix
//! (the test's doc says so); the others pin what was found to hold.
#![cfg(feature = "server")]

use crate::child;
use crate::drops;
use crate::quiet;
use crate::util;

use std::sync::mpsc;
use std::time::Duration;

use drops::PanicsOnDrop;
use reqguard::http::{
    demo_routes, Guarded, Limits, LoopGroup, Router, Routes, ServerBuilder, Session,
};
use reqguard::Config;

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(20);

/// Runs `spawn` on a thread of its own and returns what it returned, or `Err` naming the
/// panic that escaped it; fails if it hangs.
fn outside<T: Send + 'static>(
    spawn: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<std::io::Result<T>, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(spawn));
        let _ = tx.send(ran.map_err(|payload| {
            // The escaped payload may be the probe's own: forget it rather than drop it here.
            std::mem::forget(payload);
            "a panic escaped".to_owned()
        }));
    });
    rx.recv_timeout(HANG).expect("the spawn hung")
}

const CHILD: &str = "REQGUARD_PROBE_V13_CHILD";

/// QA embed13-1. `ServerBuilder::spawn` whose routes or accounting closure panics with a
/// payload whose `Drop` panics (on the server's thread, before it serves) is an error, as
/// with any other panic there (`probe_embed::v11::builder_closures_that_panic_before_serving_are_errors`),
/// and the process lives on. Before the fix, `spawn` dropped the thread's handle unjoined:
/// std drops a detached thread's payload itself and aborts the process when that drop
/// panics ("thread result panicked on drop"): the child died of SIGABRT.
#[test]
fn a_server_builder_closure_whose_panic_payload_panics_on_drop_is_an_error() {
    if !child::is_child(CHILD) {
        child::assert_passes_in_child(
            CHILD,
            "v13::a_server_builder_closure_whose_panic_payload_panics_on_drop_is_an_error",
        );
        return;
    }
    quiet::quiet_panics();
    let routes = outside(|| {
        ServerBuilder::new()
            .spawn(
                || Guarded::embedded("server", Config::default()),
                |_: &mut Router<'_>| std::panic::panic_any(PanicsOnDrop),
            )
            .map(drop)
    });
    // The error names the panic (the payload is not a string).
    let routes = routes.map(|r| r.map_err(|e| e.to_string()));
    assert!(
        matches!(&routes, Ok(Err(e)) if e.contains("panicked")),
        "routes: {routes:?}"
    );
    let accounting = outside(|| {
        ServerBuilder::new()
            .spawn(
                || -> Guarded<reqguard::engines::Embedded<&'static str>, reqguard::http::NoScope> {
                    std::panic::panic_any(PanicsOnDrop)
                },
                demo_routes,
            )
            .map(drop)
    });
    let accounting = accounting.map(|r| r.map_err(|e| e.to_string()));
    assert!(
        matches!(&accounting, Ok(Err(e)) if e.contains("panicked")),
        "accounting: {accounting:?}"
    );
    // Give a detached thread the time to end and drop what it holds.
    std::thread::sleep(Duration::from_millis(200));
}

/// QA embed13-1. `LoopGroup::spawn` whose accounting factory panics for one loop with a
/// payload whose `Drop` panics returns an error; before the fix the panic escaped `spawn`
/// (the loops' join dropped the payload uncaught).
#[test]
fn a_loop_group_factory_whose_panic_payload_panics_on_drop_is_an_error() {
    quiet::quiet_panics();
    let group = outside(|| {
        LoopGroup::new()
            .loops(2)
            .spawn(
                |index| {
                    if index == 1 {
                        std::panic::panic_any(PanicsOnDrop);
                    }
                    Guarded::embedded("server", Config::default())
                },
                demo_routes,
            )
            .map(drop)
    });
    assert!(matches!(group, Ok(Err(_))), "group: {group:?}");
}

/// A capture whose `Drop` panics (the embedder's state inside a factory closure).
struct DropPanics;

impl Drop for DropPanics {
    fn drop(&mut self) {
        panic!("a factory's capture panics");
    }
}

/// QA embed13-2. A loop group whose factories (accounting, routes) hold a capture whose
/// `Drop` panics: the last loop to end drops them. The group's report is not lost to that
/// panic ("loop N panicked" before the fix), as it is not to a handler's or an accounting's
/// `Drop` (QA embed8-3).
#[test]
fn a_loop_group_whose_factory_captures_panic_on_drop_keeps_its_report() {
    quiet::quiet_panics();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (a, r) = (DropPanics, DropPanics);
        let group = LoopGroup::new()
            .loops(2)
            .spawn(
                move |_| {
                    let _ = &a;
                    Guarded::embedded("server", Config::default())
                },
                move |router| {
                    let _ = &r;
                    demo_routes(router);
                },
            )
            .unwrap();
        let addr = group.addr();
        assert_eq!(util::get(addr, "/").status, 200);
        let report = group.stop().map(|report| report.totals.stats.served);
        let _ = tx.send(report.map_err(|e| e.to_string()));
    });
    let served = rx.recv_timeout(HANG).expect("the group hung");
    assert_eq!(served, Ok(1));
}

/// QA embed13-3 (docs). `Stats::aborted` said it counted the outcomes *client gone*, *deadline
/// aborted* and *force closed*; it also counts a panicking handler's `500` never sent (queued
/// behind a deferred answer when the client left), whose request ended *dropped*: the exit
/// JSON read `aborted: 2` beside `client_gone: 1, dropped: 1`. The count is the one `served`'s
/// docs describe (an answer computed but never sent is counted in `aborted`); the docs now
/// say so, and this pins it: every admitted request once, in `served`, `undelivered` or
/// `aborted`.
#[test]
fn a_panicking_handlers_unsent_500_is_counted_aborted_and_its_outcome_is_dropped() {
    quiet::quiet_panics();
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    for leave in [true, false] {
        let accounting = Guarded::embedded("server", Config::default());
        let mut session = Session::new(&router, accounting, Limits::default());
        session.feed(b"GET /delay?ms=50 HTTP/1.1\r\nhost: x\r\n\r\n");
        session.feed(b"GET /panic HTTP/1.1\r\nhost: x\r\n\r\n");
        if leave {
            session.disconnect();
        } else {
            session.advance(Duration::from_millis(50));
            let out = String::from_utf8(session.take_output()).unwrap();
            assert!(out.contains("HTTP/1.1 500"), "{out}");
        }
        let stats = *session.stats();
        let ledger = session.ledger().unwrap();
        let outcomes = ledger.outcomes();
        ledger.assert_quiescent();
        assert_eq!((stats.panics, outcomes.dropped), (1, 1), "leave {leave}");
        assert_eq!(
            stats.served + stats.undelivered + stats.aborted,
            outcomes.total(),
            "leave {leave}"
        );
        assert_eq!(
            stats.undelivered, 0,
            "leave {leave}: a session delivers what it writes"
        );
        if leave {
            assert_eq!(
                (stats.served, stats.aborted, outcomes.client_gone),
                (0, 2, 1)
            );
        } else {
            assert_eq!((stats.served, stats.aborted, outcomes.completed), (2, 0, 1));
        }
    }
}

#[cfg(feature = "hyper")]
mod hyper_embed {
    use super::*;
    use reqguard::engines::{Embedded, Heap};
    use reqguard::tokio_hyper::{demo_routes, HyperGroup, HyperServer};
    use reqguard::ServerCore;

    fn server() -> HyperServer<
        Embedded<&'static str>,
        (),
        impl reqguard::tokio_hyper::Handler<Embedded<&'static str>, ()>,
    > {
        let core = ServerCore::embedded(Heap::new().alloc("server"), Config::default());
        HyperServer::new(core, demo_routes())
    }

    /// QA embed13-1. `HyperGroup::spawn` whose `make` panics for one loop with a payload whose
    /// `Drop` panics returns an error ("a loop that failed (or panicked) before it served");
    /// before the fix the panic escaped `spawn`.
    #[test]
    fn a_hyper_group_make_whose_panic_payload_panics_on_drop_is_an_error() {
        quiet::quiet_panics();
        let group = outside(|| {
            HyperGroup::new()
                .loops(2)
                .spawn(|index| {
                    if index == 1 {
                        std::panic::panic_any(PanicsOnDrop);
                    }
                    server()
                })
                .map(drop)
        });
        assert!(matches!(group, Ok(Err(_))), "group: {group:?}");
    }

    /// QA embed13-2. A hyper group whose `make` holds a capture whose `Drop` panics keeps its
    /// report (the last loop to end drops `make`).
    #[test]
    fn a_hyper_group_whose_make_captures_panic_on_drop_keeps_its_report() {
        quiet::quiet_panics();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let captured = DropPanics;
            let group = HyperGroup::new()
                .loops(2)
                .spawn(move |_| {
                    let _ = &captured;
                    server()
                })
                .unwrap();
            assert_eq!(util::get(group.addr(), "/").status, 200);
            let report = group.wait_after_stop();
            let _ = tx.send(report);
        });
        let served = rx.recv_timeout(HANG).expect("the group hung");
        assert_eq!(served, Ok(1));
    }

    trait WaitAfterStop {
        fn wait_after_stop(self) -> Result<u64, String>;
    }

    impl WaitAfterStop for reqguard::tokio_hyper::HyperGroupHandle {
        fn wait_after_stop(self) -> Result<u64, String> {
            self.stopper().stop();
            self.wait()
                .map(|report| report.totals.stats.served)
                .map_err(|e| e.to_string())
        }
    }
}

/// What a second server's setup does with the first server (whose handler is starting it).
#[derive(Clone, Copy, Debug)]
enum Setup {
    /// `ServerBuilder::spawn`'s accounting closure stops the first and waits.
    Running,
    /// `LoopGroup::spawn`'s accounting factory does.
    Group,
    /// `HyperGroup::spawn`'s `make` does.
    #[cfg(feature = "hyper")]
    Hyper,
}

/// Starts a second server as `setup` says, whose setup (on its own new thread) stops `first`
/// and waits for its stop to begin; returns whether that wait saw it begin.
fn start_second(setup: Setup, first: reqguard::http::StopHandle) -> bool {
    let (saw, seen) = mpsc::channel();
    let stop_first = move || {
        let _ = saw.send(first.stop_and_wait(Duration::MAX));
    };
    match setup {
        Setup::Running => {
            let second = ServerBuilder::new().spawn(
                move || {
                    stop_first();
                    Guarded::embedded("second", Config::default())
                },
                demo_routes,
            );
            drop(second);
        }
        Setup::Group => {
            let stop_first = std::sync::Mutex::new(Some(stop_first));
            let second = LoopGroup::new().loops(1).spawn(
                move |_| {
                    if let Some(stop_first) = stop_first.lock().unwrap().take() {
                        stop_first();
                    }
                    Guarded::embedded("second", Config::default())
                },
                demo_routes,
            );
            drop(second);
        }
        #[cfg(feature = "hyper")]
        Setup::Hyper => {
            use reqguard::engines::Heap;
            use reqguard::tokio_hyper::{HyperGroup, HyperServer};
            let stop_first = std::sync::Mutex::new(Some(stop_first));
            let second = HyperGroup::new().loops(1).spawn(move |_| {
                if let Some(stop_first) = stop_first.lock().unwrap().take() {
                    stop_first();
                }
                let core =
                    reqguard::ServerCore::embedded(Heap::new().alloc("second"), Config::default());
                HyperServer::new(core, reqguard::tokio_hyper::demo_routes())
            });
            drop(second);
        }
    }
    seen.try_recv().unwrap_or(false)
}

/// QA embed13-4. A handler of one server that starts a second server (a runtime whose
/// `fetch` handler calls `Bun.serve` again), whose setup on the new thread (the accounting
/// closure, a group's factory, a hyper loop's `make`) stops the first server and waits
/// (`StopHandle::stop_and_wait`): the handler waited in `spawn` for the second to be ready,
/// the second's setup for the first's loop, which was running that handler. Before the fix
/// both hung forever (the wait `spawn` makes was not one the cycle check knew of); now the
/// setup's wait is refused as one that would close a cycle (it asks for the stop and returns),
/// the handler answers, and the first server stops.
#[test]
fn a_second_server_whose_setup_stops_the_first_from_its_handler_does_not_hang() {
    quiet::quiet_panics();
    let setups = [
        Setup::Running,
        Setup::Group,
        #[cfg(feature = "hyper")]
        Setup::Hyper,
    ];
    for setup in setups {
        let slot: std::sync::Arc<std::sync::Mutex<Option<reqguard::http::StopHandle>>> =
            Default::default();
        let handler_slot = std::sync::Arc::clone(&slot);
        let first = ServerBuilder::new()
            .spawn(
                || Guarded::embedded("first", Config::default()),
                move |router| {
                    router.route(
                        "GET",
                        "/second",
                        move |_: &reqguard::http::Request<'_>,
                              response: &mut reqguard::http::Response<'_>| {
                            let first = handler_slot.lock().unwrap().clone().expect("the handle");
                            let saw = start_second(setup, first);
                            response.write(if saw { b"saw" } else { b"asked" });
                            reqguard::http::Reply::Now
                        },
                    );
                },
            )
            .unwrap();
        *slot.lock().unwrap() = Some(first.stop_handle());
        let addr = first.addr();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(util::try_get(addr, "/second").map(|(status, _)| status));
        });
        let answer = rx.recv_timeout(HANG);
        if !matches!(answer, Ok(Ok(200))) {
            // Hung: dropping `first` would wait for its loop forever.
            std::mem::forget(first);
            panic!("{setup:?}: the handler did not answer: {answer:?}");
        }
        let stopped = outside(move || first.join());
        assert!(matches!(stopped, Ok(Ok(_))), "{setup:?}: {stopped:?}");
    }
}
