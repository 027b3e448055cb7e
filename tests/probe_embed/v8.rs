//! QA probes, eighth round, of the embedding API as a hostile embedder uses it: the core and
//! `reqguard::http` (custom accountings and scope providers, sessions, running servers) with
//! callbacks that panic or call back in, and values at their extremes. Each test failed on
//! `main` before its fix.
//!
//! - A panicking `Accounting::admit` (or the `ScopeProvider::with_scope` inside `Guarded`'s)
//!   unwound out of the loop: the server thread died with every connection. Now the request is
//!   answered `500`, counted refused and in `panics`, and the server serves on.
//! - A panicking `Accounting::stop` or `poll_stop` did the same at the stop.
//! - A `Session` had no drain deadline and never ran its drain hooks.
//! - A handler dropping (or stopping, joining) its own `Running` joined its own thread (a panic,
//!   the answer a `500`); a handler or accounting whose `Drop` panics lost the report. The
//!   same for a loop group's `GroupHandle` and loops.
//! - hyper adapter: a panicking `EnterScope::enter` killed its connection's task unanswered;
//!   `HyperGroup::loops(usize::MAX)` panicked; the group handle and a handler's `Drop` as on mio.
//! - An embedder's per-request `signal`, `this`, `handled` or `end` that panicked killed the loop.
//! - Stop handles of a dead loop waited forever; `stop_and_wait(Duration::MAX)` from a handler
//!   hung the loop; a session whose accounting said complete early kept its request past the
//!   deadline; two handlers whose `Drop` panics aborted the process.
#![cfg(feature = "server")]

use crate::accountings;
use crate::child;
use crate::drops;
use crate::handlers;
use crate::quiet;
use crate::util;

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accountings::{passes_on, DiesOnHandled, SaysAtStop};
use drops::PanicsOnDrop;
use handlers::Later;
use reqguard::engines::{Embedded, Heap};
use reqguard::http::{
    demo_routes, Accounting, AccountingReport, GroupHandle, Guarded, Handler, Ladder, Limits,
    LoopGroup, Reply, Request, Response, Router, Routes, Running, ScopeProvider, ServerBuilder,
    ServerReport, Session, StopStatus, Unaccounted,
};
use reqguard::{AbortSignal, Config, GuardKind, Ledger, Refusal, ServerCore};
use util::bounded::within;

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(10);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Stops `running` and returns its report, or `None` if the stop panicked (the server thread
/// died) or hung.
fn stop_caught(running: Running) -> Option<ServerReport> {
    within(HANG, move || {
        std::panic::catch_unwind(AssertUnwindSafe(move || running.stop())).ok()
    })
    .flatten()
    .map(|report| report.expect("the loop failed"))
}

/// A scope provider that panics on chosen upgrades: before running the upgrade (nothing
/// taken), or after it (the admitted bundle in hand, dropped by the unwinding).
struct PanickyScope {
    calls: u32,
    before: u32,
    after: u32,
}

impl ScopeProvider<Embedded<&'static str>> for PanickyScope {
    fn with_scope<R>(&mut self, f: impl FnOnce(&mut ()) -> R) -> R {
        self.calls += 1;
        if self.calls == self.before {
            panic!("a scope provider panics");
        }
        let value = f(&mut ());
        if self.calls == self.after {
            panic!("a scope provider panics");
        }
        value
    }
}

/// A guarded accounting whose scope provider panics on its 2nd upgrade before the upgrade
/// and on its 3rd after it. `Config` without `OnStop`: every admission upgrades (a weak
/// wrapper) only after stop, so the default `OnDrain` with a strong wrapper would never call
/// the scope; `Guarded` calls `with_scope` on every admission all the same.
fn panicky_guarded() -> Guarded<Embedded<&'static str>, PanickyScope> {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let scope = PanickyScope {
        calls: 0,
        before: 2,
        after: 3,
    };
    Guarded::new(core, scope)
}

/// A panicking admission is the request's `500` (an internal error, counted refused and in
/// `panics`), and the server serves on: before, the panic unwound out of the loop (the server
/// thread died, the client got a reset, `Running::stop` panicked). A bundle the admission had
/// taken before it panicked was dropped by the unwinding: the ledger says `dropped`, once.
#[test]
fn a_panicking_admission_is_a_500_and_the_server_serves_on() {
    quiet::quiet_panics();
    let running = ServerBuilder::new()
        .spawn(panicky_guarded, demo_routes)
        .unwrap();
    let addr = running.addr();
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            util::try_get(addr, "/")
                .map(|(status, _)| status)
                .unwrap_or(0)
        })
        .collect();
    let report = stop_caught(running).expect("the admission's panic ended the server");
    assert_eq!(statuses, [200, 500, 500, 200]);
    let stats = &report.stats;
    assert_eq!(
        (stats.served, stats.refused, stats.panics),
        (2, 2, 2),
        "{stats:?}"
    );
    assert_eq!(report.leaked, 0);
    assert_eq!(
        (report.outcomes.completed, report.outcomes.dropped),
        (2, 1),
        "{:?}",
        report.outcomes
    );
}

/// An accounting of the embedder's that panics where it is told to.
#[derive(Default)]
struct Panicky {
    inner: Unaccounted,
    admit_panics: bool,
    stop_panics: bool,
    /// `poll_stop` panics this many times, then answers as `inner` does.
    poll_panics: Cell<u32>,
}

impl Accounting for Panicky {
    type Held = ();

    fn admit(&mut self) -> Result<(), Refusal> {
        if self.admit_panics {
            panic!("an accounting's admit panics");
        }
        self.inner.admit()
    }

    fn signal(_: &()) -> Option<&AbortSignal> {
        None
    }

    fn stop(&mut self, deadline: Instant) {
        self.inner.stop(deadline);
        if self.stop_panics {
            panic!("an accounting's stop panics");
        }
    }

    fn poll_stop(&mut self, now: Instant, in_flight: usize) -> StopStatus {
        let left = self.poll_panics.get();
        if left > 0 {
            self.poll_panics.set(left - 1);
            panic!("an accounting's poll_stop panics");
        }
        self.inner.poll_stop(now, in_flight)
    }

    fn ledger(&self) -> Option<&Ledger> {
        None
    }

    fn report(&self) -> AccountingReport {
        self.inner.report()
    }
}

/// An accounting whose `stop` panics, or whose `poll_stop` panics a few times, does not end
/// the server: it drains and reports as it would have. Before, the panic unwound out of the
/// loop and `Running::stop` panicked with the report lost.
#[test]
fn a_panicking_accounting_stop_or_poll_stop_does_not_end_the_server() {
    quiet::quiet_panics();
    let cases: [fn() -> Panicky; 2] = [
        || Panicky {
            stop_panics: true,
            ..Panicky::default()
        },
        || Panicky {
            poll_panics: Cell::new(3),
            ..Panicky::default()
        },
    ];
    for (case, accounting) in cases.into_iter().enumerate() {
        let running = ServerBuilder::new().spawn(accounting, demo_routes).unwrap();
        assert_eq!(util::get(running.addr(), "/").status, 200);
        let report = stop_caught(running);
        let report = report.unwrap_or_else(|| panic!("case {case}: the panic ended the server"));
        assert_eq!(report.stats.served, 1, "case {case}");
        // One panic: nothing is in flight, so a panicking poll reads as complete.
        assert_eq!(report.stats.panics, 1, "case {case}: {:?}", report.stats);
    }
}

/// In a session too: a panicking `admit` is a `500` and the session goes on, rather than
/// `feed` panicking.
#[test]
fn a_panicking_admit_in_a_session_is_a_500() {
    quiet::quiet_panics();
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let accounting = Panicky {
        admit_panics: true,
        ..Panicky::default()
    };
    let mut session = Session::new(&router, accounting, Limits::default());
    let fed = std::panic::catch_unwind(AssertUnwindSafe(|| {
        session.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }));
    assert!(fed.is_ok(), "the admission's panic escaped the session");
    let out = text(&session.take_output());
    assert!(out.starts_with("HTTP/1.1 500 "), "{out:?}");
    assert_eq!((session.stats().refused, session.stats().panics), (1, 1));
}

/// A router with `/later`, deferred by `delay`.
fn later_routes(routes: &Routes, delay: Duration) -> Router<'_> {
    let mut router = Router::new(routes);
    router.route("GET", "/later", Later(delay));
    router
}

/// A session's stop has a server's drain deadline: a request still out at
/// `Limits::drain_timeout` on the session's clock is aborted there (`deadline_aborted`), the
/// connection closes and the drain completes (the wrapper is collected). Before, a session
/// never polled its drain: the request stayed out for as long as its handler deferred it.
#[test]
fn a_session_stop_ends_what_is_still_out_at_the_drain_deadline() {
    let routes = Routes::new();
    let router = later_routes(&routes, Duration::from_secs(5));
    let heap = Heap::new();
    let accounting = Guarded::embedded_on(&heap, "server", Config::default());
    let limits = Limits::default().with_drain_timeout(Duration::from_millis(100));
    let mut session = Session::new(&router, accounting, limits);
    session.feed(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n");
    session.stop();
    session.advance(Duration::from_millis(99));
    let tickets = |s: &Session<'_, _>| s.ledger().unwrap().outstanding(GuardKind::Ticket);
    assert_eq!(tickets(&session), 1, "ended before the deadline");
    session.advance(Duration::from_millis(1));
    assert_eq!(tickets(&session), 0, "still out past the drain deadline");
    let ledger = session.ledger().unwrap();
    assert_eq!(
        ledger.outcomes().deadline_aborted,
        1,
        "{:?}",
        ledger.outcomes()
    );
    ledger.assert_quiescent();
    assert!(session.is_closed());
    assert!(session.take_output().is_empty(), "answered after the abort");
    assert_eq!(heap.live_objects(), 0, "the drain did not complete");
}

/// A session drains when its last request ends, as a server does: its drain hooks run
/// (`Guarded::embedded`'s collection finalizes the wrapper). Before, a session never polled
/// its drain, so under the default `OnDrain` the wrapper was never collected.
#[test]
fn a_session_drain_runs_its_hooks_once_the_last_request_ends() {
    let routes = Routes::new();
    let router = later_routes(&routes, Duration::from_millis(10));
    let heap = Heap::new();
    let accounting = Guarded::embedded_on(&heap, "server", Config::default());
    let mut session = Session::new(&router, accounting, Limits::default());
    session.feed(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n");
    session.stop();
    assert_eq!(heap.live_objects(), 1, "collected with a request out");
    session.advance(Duration::from_millis(10));
    assert!(text(&session.take_output()).ends_with("late"));
    assert_eq!(
        (heap.live_objects(), heap.finalized()),
        (0, 1),
        "the drain hook did not run"
    );
    session.ledger().unwrap().assert_quiescent();
}

/// A case's name and what it does.
type Named<T> = (&'static str, T);

/// Takes its own server's handle (a `Running`, a `GroupHandle`) out of `slot` and lets `with`
/// drop, stop or join it from inside the handler (on the server's own thread): a runtime whose
/// JS `server.close()` drops the native server object.
struct OwnHandle<T> {
    slot: Arc<Mutex<Option<T>>>,
    with: fn(T),
}

impl<T: Send + 'static> Handler for OwnHandle<T> {
    fn handle(&self, _: &Request<'_>, response: &mut Response<'_>) -> Reply {
        let Some(handle) = self.slot.lock().unwrap().take() else {
            response.write(b"gone");
            return Reply::Now;
        };
        (self.with)(handle);
        response.write(b"let go");
        Reply::Now
    }

    fn resume(&self, _: u64, _: &mut Response<'_>) {}
}

/// A handler that drops, stops or joins its own server's `Running` cannot wait for its own
/// thread: the server stops once the handler returns, and the handler's answer is delivered.
/// Before, `Running`'s `Drop`, `stop` and `join` joined the current thread: the join panicked
/// ("deadlock avoided"), the handler's answer became a `500`, and `stop`/`join` panicked
/// instead of returning an error.
#[test]
fn a_handler_that_drops_or_stops_its_own_running_server_answers_and_stops_it() {
    quiet::quiet_panics();
    let withs: [Named<fn(Running)>; 3] = [
        ("drop", drop),
        ("stop", |running| {
            assert!(running.stop().is_err(), "stop waited for itself")
        }),
        ("join", |running| {
            assert!(running.join().is_err(), "join waited for itself")
        }),
    ];
    for (with, call) in withs {
        let slot: Arc<Mutex<Option<Running>>> = Arc::default();
        let handler = OwnHandle {
            slot: Arc::clone(&slot),
            with: call,
        };
        let running = ServerBuilder::new()
            .spawn(Unaccounted::new, move |router| {
                router.route("GET", "/own", handler);
            })
            .unwrap();
        let (addr, stop) = (running.addr(), running.stop_handle());
        *slot.lock().unwrap() = Some(running);
        let answer = util::get(addr, "/own");
        assert_eq!((answer.status, answer.text()), (200, "let go"), "{with}");
        if with == "join" {
            stop.stop(); // `join` waits for a stop someone else asks for
        }
        util::wait_until("the server stops", || {
            std::net::TcpStream::connect(addr).is_err()
        });
        assert!(stop.is_stopping());
    }
}

/// Calls its own server's `StopHandle::stop_and_wait(Duration::MAX)` from the handler (the
/// loop's own thread), then answers.
struct WaitsForOwnStop(Arc<Mutex<Option<reqguard::http::StopHandle>>>);

impl Handler for WaitsForOwnStop {
    fn handle(&self, _: &Request<'_>, response: &mut Response<'_>) -> Reply {
        let stop = self.0.lock().unwrap().clone().expect("the stop handle");
        let began = stop.stop_and_wait(Duration::MAX);
        response.write(if began { b"began" } else { b"asked" });
        Reply::Now
    }

    fn resume(&self, _: u64, _: &mut Response<'_>) {}
}

/// `stop_and_wait` from a handler cannot see the stop begin (the loop begins it once the
/// handler returns): it asks for the stop and returns `false` at once, whatever its timeout.
/// Before, it waited its whole timeout on the loop's own thread: with `Duration::MAX` the
/// server hung forever (no answer, no stop).
#[test]
fn stop_and_wait_from_a_handler_returns_at_once_instead_of_hanging_the_loop() {
    let slot: Arc<Mutex<Option<reqguard::http::StopHandle>>> = Arc::default();
    let handler = WaitsForOwnStop(Arc::clone(&slot));
    let running = ServerBuilder::new()
        .spawn(Unaccounted::new, move |router| {
            router.route("GET", "/wait", handler);
        })
        .unwrap();
    *slot.lock().unwrap() = Some(running.stop_handle());
    let addr = running.addr();
    let Some(answer) = within(HANG, move || util::get(addr, "/wait")) else {
        std::mem::forget(running); // its drop would join the hung loop
        panic!("the loop hung in stop_and_wait");
    };
    assert_eq!((answer.status, answer.text()), (200, "asked"));
    let report = stop_caught(running).expect("the server did not stop");
    assert_eq!(report.stats.served, 1);
}

/// Answers `ok`, holding a value whose `Drop` panics.
struct HoldsABomb(#[allow(dead_code)] PanicsOnDrop);

impl Handler for HoldsABomb {
    fn handle(&self, _: &Request<'_>, response: &mut Response<'_>) -> Reply {
        response.write(b"ok");
        Reply::Now
    }

    fn resume(&self, _: u64, _: &mut Response<'_>) {}
}

/// A scope provider holding a value whose `Drop` panics.
struct BombScope(#[allow(dead_code)] PanicsOnDrop);

impl ScopeProvider<Embedded<&'static str>> for BombScope {
    fn with_scope<R>(&mut self, f: impl FnOnce(&mut ()) -> R) -> R {
        f(&mut ())
    }
}

/// The server's user values are dropped on its thread when it ends: a handler (with the
/// routes) or an accounting (a hook's captures, its scope provider) whose `Drop` panics does
/// not lose the run's report. Before, the panic came after the report was made and unwound out of the thread:
/// `Running::stop` panicked ("the server thread panicked").
#[test]
fn a_handler_or_accounting_whose_drop_panics_does_not_lose_the_report() {
    quiet::quiet_panics();
    let in_handler = ServerBuilder::new()
        .spawn(Unaccounted::new, |router| {
            router.route("GET", "/", HoldsABomb(PanicsOnDrop));
        })
        .unwrap();
    let in_hook = ServerBuilder::new()
        .spawn(
            || {
                let bomb = PanicsOnDrop;
                Guarded::embedded("server", Config::default()).after_drain(move || {
                    let _ = &bomb;
                })
            },
            demo_routes,
        )
        .unwrap();
    let in_scope = ServerBuilder::new()
        .spawn(
            || {
                let heap = Heap::new();
                let core = ServerCore::embedded(heap.alloc("server"), Config::default());
                Guarded::new(core, BombScope(PanicsOnDrop))
            },
            demo_routes,
        )
        .unwrap();
    let cases = [in_handler, in_hook, in_scope];
    for (case, running) in cases.into_iter().enumerate() {
        assert_eq!(util::get(running.addr(), "/").status, 200, "case {case}");
        let report = stop_caught(running);
        let report = report.unwrap_or_else(|| panic!("case {case}: the report was lost"));
        assert_eq!((report.stats.served, report.leaked), (1, 0), "case {case}");
    }
}

/// A handler that drops or stops its own loop group's handle cannot wait for its own loop:
/// the group stops (the ladder runs) and the handler's answer is delivered. Before, the
/// handle joined the loop's own thread: the join panicked and the answer was a `500` (with
/// two loops, only after waiting on the other loop's whole ladder).
#[test]
fn a_handler_that_drops_or_stops_its_own_group_answers_and_stops_it() {
    quiet::quiet_panics();
    for stop in [false, true] {
        let slot: Arc<Mutex<Option<GroupHandle>>> = Arc::default();
        let in_routes = Arc::clone(&slot);
        let ladder = Ladder::default()
            .with_unready(Duration::ZERO)
            .with_drain_timeout(Duration::from_millis(200));
        let group = LoopGroup::new()
            .loops(1)
            .ladder(ladder)
            .spawn(
                |_| Unaccounted::new(),
                move |router| {
                    let handler = OwnHandle {
                        slot: Arc::clone(&in_routes),
                        with: match stop {
                            true => |group: GroupHandle| {
                                assert!(group.stop().is_err(), "stop waited for its own loop")
                            },
                            false => drop,
                        },
                    };
                    router.route("GET", "/own", handler);
                },
            )
            .unwrap();
        let addr = group.addr();
        let stopper = group.stopper();
        *slot.lock().unwrap() = Some(group);
        let answer = within(HANG, move || util::get(addr, "/own")).expect("no answer");
        assert_eq!(
            (answer.status, answer.text()),
            (200, "let go"),
            "stop: {stop}"
        );
        util::wait_until("the group stops", || {
            std::net::TcpStream::connect(addr).is_err()
        });
        drop(stopper);
    }
}

/// Set in the child process of [`two_handlers_whose_drop_panics_do_not_abort_the_process`].
const CHILD: &str = "REQGUARD_PROBE_EMBED_V8_CHILD";

/// Two handlers whose `Drop` panics, dropped with their routes when the server ends: each is
/// dropped on its own, caught, and the process goes on. Before, the routes were dropped in one
/// go: the second panic came while the first unwound, and the process aborted (SIGABRT). Run
/// in a child process (the test binary again), whose exit status says whether it aborted.
#[test]
fn two_handlers_whose_drop_panics_do_not_abort_the_process() {
    if child::is_child(CHILD) {
        quiet::quiet_panics();
        let running = ServerBuilder::new()
            .spawn(Unaccounted::new, |router| {
                router.route("GET", "/a", HoldsABomb(PanicsOnDrop));
                router.route("GET", "/b", HoldsABomb(PanicsOnDrop));
            })
            .unwrap();
        let report = stop_caught(running).expect("the report was lost");
        assert_eq!(report.leaked, 0);
        return;
    }
    child::assert_passes_in_child(
        CHILD,
        "v8::two_handlers_whose_drop_panics_do_not_abort_the_process",
    );
}

/// A loop group's loops drop their routes caught too: a handler whose `Drop` panics does not
/// turn the group's report into "loop 0 panicked" (before, it did).
#[test]
fn a_group_handler_whose_drop_panics_does_not_lose_the_report() {
    quiet::quiet_panics();
    let ladder = Ladder::default()
        .with_unready(Duration::ZERO)
        .with_drain_timeout(Duration::from_millis(200));
    let group = LoopGroup::new()
        .loops(1)
        .ladder(ladder)
        .spawn(
            |_| Unaccounted::new(),
            |router| {
                router.route("GET", "/", HoldsABomb(PanicsOnDrop));
            },
        )
        .unwrap();
    assert_eq!(util::get(group.addr(), "/").status, 200);
    let report = within(HANG, move || group.stop().map_err(|e| e.to_string()))
        .expect("the stop hung")
        .expect("the report was lost");
    assert_eq!(report.totals.stats.served, 1);
}

/// A session's deadline holds whatever its accounting says, as a server's does (its own count
/// of requests out rules): a request still out at the drain deadline is aborted although the
/// accounting said complete at the stop.
#[test]
fn a_session_deadline_holds_when_the_accounting_says_complete_early() {
    let routes = Routes::new();
    let router = later_routes(&routes, Duration::from_secs(5));
    let limits = Limits::default().with_drain_timeout(Duration::from_millis(100));
    let mut session = Session::new(
        &router,
        SaysAtStop::new(StopStatus::Complete, Arc::default()),
        limits,
    );
    session.feed(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n");
    session.stop();
    session.advance(Duration::from_millis(100));
    assert_eq!(session.dispatcher().in_flight(), 0, "out past the deadline");
    assert_eq!(session.stats().aborted, 1);
    assert!(session.is_closed());
}

/// A stop handle of a server whose loop met a panic it was told not to expect does not wait
/// for a stop that can never begin. Before, the loop died and its phase stayed "running":
/// `stop_and_wait(Duration::MAX)` waited forever and `is_stopping` said false. (Since
/// probe_embed::v10's round the loop survives the panic: the stop is a plain one.)
#[test]
fn a_stop_handle_of_a_loop_that_died_does_not_wait_forever() {
    quiet::quiet_panics();
    let running = ServerBuilder::new()
        .spawn(|| DiesOnHandled(Unaccounted::new()), demo_routes)
        .unwrap();
    let stop = running.stop_handle();
    let _ = util::try_get(running.addr(), "/"); // its `handled` panics
    let waiting = stop.clone();
    let waited = within(HANG, move || waiting.stop_and_wait(Duration::MAX));
    assert_eq!(waited, Some(true), "stop_and_wait waited for a dead loop");
    assert!(stop.is_stopping());
    // The dead thread panicked through join until probe_embed::v9's round, was an error until
    // probe_embed::v10's; the loop now survives, and join has its report.
    let joined = std::panic::catch_unwind(AssertUnwindSafe(move || running.join()));
    assert!(
        matches!(&joined, Ok(Ok(report)) if report.stats.panics == 1),
        "join returns the report, the panic counted: {joined:?}"
    );
}

/// Which per-request call of [`PanicsPerRequest`] panics.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PerRequest {
    Signal,
    This,
    Handled,
    End,
}

/// An accounting of the embedder's whose per-request bookkeeping panics in one call, on the
/// first request only.
struct PanicsPerRequest {
    inner: Unaccounted,
    call: PerRequest,
    armed: std::rc::Rc<Cell<bool>>,
}

/// Panics once if `call` is the one armed to.
fn maybe_panic(armed: &Cell<bool>, call: PerRequest, which: PerRequest) {
    if call == which && armed.replace(false) {
        panic!("an accounting's per-request call panics");
    }
}

impl Accounting for PanicsPerRequest {
    type Held = std::rc::Rc<Cell<bool>>;

    fn admit(&mut self) -> Result<Self::Held, Refusal> {
        self.inner.admit()?;
        Ok(std::rc::Rc::clone(&self.armed))
    }

    fn signal(held: &Self::Held) -> Option<&AbortSignal> {
        maybe_panic(held, PerRequest::Signal, SIGNAL_OR_END.with(Cell::get));
        None
    }

    fn end(held: Self::Held, _outcome: reqguard::Outcome) {
        maybe_panic(&held, PerRequest::End, SIGNAL_OR_END.with(Cell::get));
    }

    fn this(&self) -> Option<&dyn std::any::Any> {
        maybe_panic(&self.armed, self.call, PerRequest::This);
        None
    }

    fn handled(&mut self) {
        maybe_panic(&self.armed, self.call, PerRequest::Handled);
    }

    fn ledger(&self) -> Option<&Ledger> {
        None
    }

    passes_on!(inner: stop, poll_stop, report);
}

thread_local! {
    /// The static calls (`signal`, `end`) of the session's thread: which one panics.
    static SIGNAL_OR_END: Cell<PerRequest> = const { Cell::new(PerRequest::This) };
}

/// Every per-request call of an embedder's accounting (`signal`, `this`, `handled`, `end`)
/// that panics is caught and counted: the request is answered and the server goes on.
/// Before, each unwound out of the loop (the server thread died; here `feed` panicked).
#[test]
fn a_panicking_per_request_accounting_call_is_caught_and_counted() {
    quiet::quiet_panics();
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    for call in [
        PerRequest::Signal,
        PerRequest::This,
        PerRequest::Handled,
        PerRequest::End,
    ] {
        SIGNAL_OR_END.with(|c| c.set(call));
        let accounting = PanicsPerRequest {
            inner: Unaccounted::new(),
            call,
            armed: std::rc::Rc::new(Cell::new(true)),
        };
        let mut session = Session::new(&router, accounting, Limits::default());
        let fed = std::panic::catch_unwind(AssertUnwindSafe(|| {
            session.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
        }));
        assert!(fed.is_ok(), "{call:?}: the panic escaped the session");
        let out = text(&session.take_output());
        assert_eq!(
            out.matches("HTTP/1.1 200 OK").count(),
            2,
            "{call:?}: {out:?}"
        );
        let stats = session.stats();
        assert_eq!((stats.served, stats.panics), (2, 1), "{call:?}: {stats:?}");
        assert_eq!(session.dispatcher().in_flight(), 0, "{call:?}");
    }
}

/// The hyper adapter, as an embedder runs it: a current-thread runtime and a `LocalSet`.
#[cfg(feature = "hyper")]
mod hyper_embed {
    use std::cell::Cell;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use reqguard::engines::{Embedded, Handle, Heap};
    use reqguard::tokio_hyper::{
        Bundle, EnterScope, HandlerError, HyperGroup, HyperGroupHandle, HyperServer, Options, Reply,
    };
    use reqguard::{Config, ServerCore};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Enters the "engine", panicking on its 2nd entry before the upgrade and on its 3rd
    /// after it (the bundle taken, dropped by the unwinding).
    struct PanickyEnter {
        calls: Cell<u32>,
    }

    impl EnterScope<Embedded<&'static str>> for PanickyEnter {
        fn enter<R>(&self, f: impl FnOnce(&mut ()) -> R) -> R {
            self.calls.set(self.calls.get() + 1);
            if self.calls.get() == 2 {
                panic!("an engine scope panics");
            }
            let value = f(&mut ());
            if self.calls.get() == 3 {
                panic!("an engine scope panics");
            }
            value
        }
    }

    async fn hello(
        _this: Handle<&'static str>,
        _request: Request<Incoming>,
        bundle: Bundle,
    ) -> Result<Reply<Full<Bytes>>, HandlerError> {
        Ok(bundle.respond(Response::new(Full::new(Bytes::from_static(b"hello")))))
    }

    /// One request on its own connection; the status, 0 if none came.
    async fn status_of(addr: std::net::SocketAddr) -> u16 {
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
        client.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let read = client.read_to_end(&mut answer);
        let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
        let answer = String::from_utf8_lossy(&answer);
        answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    /// A hyper loop group with more loops than the mio group takes (1,024) is an
    /// `InvalidInput` error before anything is sized by the count. Before, `usize::MAX`
    /// panicked in the caller (capacity overflow), and `1 << 40` would abort the process on
    /// the allocation.
    #[test]
    fn absurd_hyper_loop_counts_are_an_invalid_input_error() {
        for loops in [usize::MAX, 1025] {
            let spawned = std::panic::catch_unwind(|| {
                HyperGroup::new().loops(loops).spawn(|_| {
                    let core = ServerCore::embedded(Heap::new().alloc("server"), Config::default());
                    HyperServer::new(core, hello)
                })
            });
            let err = spawned
                .unwrap_or_else(|_| panic!("loops({loops}) panicked"))
                .expect_err("spawned");
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::InvalidInput,
                "{loops}: {err}"
            );
        }
    }

    /// A hyper loop group's handle dropped (or waited for) by a handler of its own loop:
    /// the group stops and the answer is delivered. Before, the handle joined the loop's own
    /// thread: the join panicked and the handler's answer was a `500`.
    #[test]
    fn a_handler_that_drops_or_waits_for_its_own_hyper_group_answers_and_stops_it() {
        super::quiet::quiet_panics();
        for wait in [false, true] {
            let slot: Arc<Mutex<Option<HyperGroupHandle>>> = Arc::default();
            let in_make = Arc::clone(&slot);
            let group = HyperGroup::new()
                .loops(1)
                .spawn(move |_| {
                    let core = ServerCore::embedded(Heap::new().alloc("server"), Config::default());
                    let slot = Arc::clone(&in_make);
                    HyperServer::new(core, move |_this, _request, bundle: Bundle| {
                        let group = slot.lock().unwrap().take();
                        async move {
                            match (group, wait) {
                                (Some(group), true) => assert!(group.wait().is_err()),
                                (group, _) => drop(group),
                            }
                            let body = Full::new(Bytes::from_static(b"let go"));
                            Ok::<_, HandlerError>(bundle.respond(Response::new(body)))
                        }
                    })
                })
                .unwrap();
            let (addr, stop) = (group.addr(), group.stopper());
            *slot.lock().unwrap() = Some(group);
            let answer =
                super::within(super::HANG, move || super::util::get(addr, "/")).expect("no answer");
            assert_eq!(
                (answer.status, answer.text()),
                (200, "let go"),
                "wait: {wait}"
            );
            if wait {
                stop.stop(); // `wait` leaves the stop to someone else
            }
            super::util::wait_until("the group stops", || {
                std::net::TcpStream::connect(addr).is_err()
            });
        }
    }

    /// A hyper loop's handler (and engine scope) are the embedder's, dropped when its serve
    /// future ends: a `Drop` that panics does not lose the report. Before, the panic unwound
    /// out of the serve future and the loop's thread: `wait` said "loop 0 panicked".
    #[test]
    fn a_hyper_handler_whose_drop_panics_does_not_lose_the_report() {
        super::quiet::quiet_panics();
        let group = HyperGroup::new()
            .loops(1)
            .spawn(|_| {
                let core = ServerCore::embedded(Heap::new().alloc("server"), Config::default());
                let bomb = super::PanicsOnDrop;
                HyperServer::new(core, move |this, request, bundle| {
                    let _ = &bomb;
                    hello(this, request, bundle)
                })
            })
            .unwrap();
        assert_eq!(super::util::get(group.addr(), "/").status, 200);
        group.stopper().stop();
        let report = super::within(super::HANG, move || group.wait().map_err(|e| e.to_string()))
            .expect("the stop hung")
            .expect("the report was lost");
        assert_eq!((report.totals.stats.served, report.totals.leaked), (1, 0));
    }

    /// Forgets its bundle (a leak the ledger reports), then answers `500` by failing.
    async fn forgets(
        _this: Handle<&'static str>,
        _request: Request<Incoming>,
        bundle: Bundle,
    ) -> Result<Reply<Full<Bytes>>, HandlerError> {
        std::mem::forget(bundle);
        Err("forgot its bundle".into())
    }

    /// An `after_drain` hook that never runs (a bundle leaked: the drain never completes) is
    /// dropped with the server; a `Drop` of what it captured that panics does not lose the
    /// report. Before, it was dropped uncaught: the panic unwound out of `serve`.
    #[test]
    fn an_after_drain_hook_left_unrun_is_dropped_caught() {
        super::quiet::quiet_panics();
        let served = std::panic::catch_unwind(|| {
            crate::local_set::block_on(async {
                let heap = Heap::new();
                let core = ServerCore::embedded(heap.alloc("server"), Config::default());
                let bomb = super::PanicsOnDrop;
                let options = Options::default()
                    .with_drain_timeout(Duration::from_millis(20))
                    .with_force_after(Duration::from_millis(20));
                let server = HyperServer::new(core, forgets)
                    .options(options)
                    .after_drain(move || {
                        let _ = &bomb;
                    });
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let stop = async move {
                    assert_eq!(status_of(addr).await, 500);
                };
                let serve = server.serve(listener, stop);
                tokio::time::timeout(Duration::from_secs(20), serve)
                    .await
                    .expect("the server stopped")
            })
        });
        let report = served.expect("the hook's drop escaped serve: the report was lost");
        assert_eq!(report.leaked, 4, "the forgotten bundle: {}", report.leaks);
    }

    /// A panicking admission (the embedder's `EnterScope::enter`) is answered `500` and
    /// counted (`refused`, `panics`); the bundle it had taken ends *dropped*, once. Before,
    /// the panic unwound from the service's `call` through hyper: the connection's task died
    /// with no answer and nothing counted.
    #[test]
    fn a_panicking_engine_scope_is_a_500_and_counted() {
        super::quiet::quiet_panics();
        let (statuses, report) = crate::local_set::block_on(async {
            let heap = Heap::new();
            let core = ServerCore::embedded(heap.alloc("server"), Config::default());
            let scope = PanickyEnter {
                calls: Cell::new(0),
            };
            let server = HyperServer::with_scope(core, hello, scope);
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<Vec<u16>>();
            tokio::task::spawn_local(async move {
                let mut statuses = Vec::new();
                for _ in 0..4 {
                    statuses.push(status_of(addr).await);
                }
                let _ = stop.send(statuses);
            });
            let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let kept = std::rc::Rc::clone(&seen);
            let stop = async move { *kept.borrow_mut() = stopped.await.unwrap_or_default() };
            let serve = server.serve(listener, stop);
            let report = tokio::time::timeout(Duration::from_secs(20), serve)
                .await
                .expect("the server stopped");
            let statuses = seen.borrow().clone();
            (statuses, report)
        });
        assert_eq!(statuses, [200, 500, 500, 200]);
        let stats = &report.stats;
        assert_eq!(
            (stats.served, stats.refused, stats.panics),
            (2, 2, 2),
            "{stats:?}"
        );
        assert_eq!(stats.refused_stopped, 0, "a panic is not a stop: {stats:?}");
        let outcomes = &report.outcomes;
        assert_eq!(
            (outcomes.completed, outcomes.dropped),
            (2, 1),
            "{outcomes:?}"
        );
        assert_eq!(report.leaked, 0);
    }
}
