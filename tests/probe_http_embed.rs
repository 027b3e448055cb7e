//! QA probes of `reqguard::http` as a hostile embedder uses it (a runtime author's code around
//! the mio server): the builder, the stop handles, the limits, the router and the handlers,
//! custom accountings, the sans-IO session and loop groups, pushed with extreme values and
//! callbacks that misbehave. Each test failed on `main` before its fix.
//!
//! - `StopHandle::stop_and_wait(Duration::MAX)` and `Session::advance(Duration::MAX)` panicked
//!   (`Instant` overflow): a timeout past the clock waits, a step past it saturates.
//! - `LoopGroup::loops(usize::MAX)` panicked (capacity overflow) and a huge count would abort
//!   the process: more than 1,024 loops is an `InvalidInput` error before anything is sized.
//! - An embedder's accounting whose `poll_stop` never says complete held the server (and a
//!   group loop) open forever past the drain deadline: the server's deadline now rules.
//! - A handler's `content-type` with CR/LF, and a route method that is not a token, were
//!   written into the head as they were: header injection. The first is answered `500` (as an
//!   invalid status is), the second left out of `allow`.
//! - `Response::stop_server` from a deferred `resume` (and in a `Session`) was ignored.
//! - A `Guarded` stop or drain hook that panicked unwound out of the loop, and a hook added to
//!   `Guarded::embedded` replaced its collection: hooks now add up, each caught.
//! - A handler's panic payload whose `Drop` panics unwound out of the loop: dropped caught.
//! - A sans-IO `Connection` whose deferred request was ended through another `Dispatcher`
//!   took that dispatcher's `in_flight` below zero (a wrap in release: its drain never ends):
//!   a connection is bound to its first dispatcher, and another is a clear panic.
#![cfg(feature = "server")]

#[path = "util/handlers.rs"]
mod handlers;
mod util;

use std::io;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use reqguard::http::{
    demo_routes, Accounting, AccountingReport, Connection, Dispatcher, Guarded, Handler, Ladder,
    Limits, LoopGroup, Reply, Request, Response, Router, Routes, ServerBuilder, Session,
    StopStatus, Unaccounted,
};
use std::cell::Cell;
use std::rc::Rc;

use handlers::Later;
use reqguard::engines::Heap;
use reqguard::{AbortSignal, Config, DowngradePolicy, Ledger, Refusal};
use util::bounded::within;

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(5);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A timeout longer than the clock can count is a wait without end, not a panic: before,
/// `Instant::now() + timeout` overflowed in the caller's thread.
#[test]
fn stop_and_wait_for_duration_max_waits_instead_of_panicking() {
    let running = ServerBuilder::new()
        .spawn(Unaccounted::new, demo_routes)
        .unwrap();
    let stop = running.stop_handle();
    let waited = within(HANG, move || stop.stop_and_wait(Duration::MAX));
    assert_eq!(
        waited,
        Some(true),
        "stop_and_wait(Duration::MAX) panicked or hung"
    );
    let report = running.join().unwrap();
    assert_eq!(report.leaked, 0);
    // And after the loop is gone, every handle call still returns (no wake-up to deliver).
    let stop = ServerBuilder::new()
        .spawn(Unaccounted::new, demo_routes)
        .unwrap()
        .stop_handle(); // the `Running` is dropped: stopped and joined
    assert!(stop.is_stopping());
    stop.stop();
    assert!(stop.stop_and_wait(Duration::MAX));
}

/// The session's virtual clock saturates: advancing by `Duration::MAX` runs everything that
/// is due (a reply deferred by `Duration::MAX` too) instead of panicking on `Instant` overflow.
#[test]
fn session_advance_by_duration_max_runs_what_is_due() {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    router.route("GET", "/later", Later(Duration::MAX));
    let accounting = Guarded::embedded("server", Config::default());
    let mut session = Session::new(&router, accounting, Limits::default());
    session.feed(b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n");
    session.advance(Duration::from_secs(3600));
    assert!(
        session.take_output().is_empty(),
        "answered before its delay"
    );
    session.advance(Duration::MAX);
    let out = text(&session.take_output());
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("late"),
        "{out:?}"
    );
    session.advance(Duration::MAX); // the clock is at its end: nothing panics there either
    assert_eq!(session.stats().served, 1);
    session.disconnect();
    session.ledger().unwrap().assert_quiescent();
}

/// A loop count no machine has cores for is refused before anything is sized by it: before,
/// `usize::MAX` panicked with a capacity overflow in the caller's thread (and `1 << 40`
/// would have aborted the process on the allocation).
#[test]
fn absurd_loop_counts_are_an_invalid_input_error() {
    for loops in [usize::MAX, 1 << 40, 1025] {
        let spawned = LoopGroup::new()
            .loops(loops)
            .spawn(|_| Unaccounted::new(), demo_routes);
        let err = spawned.expect_err("an absurd loop count was accepted");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{loops}: {err}");
        assert!(err.to_string().contains("1,024"), "{err}");
    }
    let err = LoopGroup::new()
        .loops(0)
        .spawn(|_| Unaccounted::new(), demo_routes)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// An embedder's accounting that admits everything and whose drain never completes.
struct NeverDrains;

impl Accounting for NeverDrains {
    type Held = ();

    fn admit(&mut self) -> Result<(), Refusal> {
        Ok(())
    }

    fn signal(_: &()) -> Option<&AbortSignal> {
        None
    }

    fn stop(&mut self, _deadline: Instant) {}

    fn poll_stop(&mut self, _now: Instant, _in_flight: usize) -> StopStatus {
        StopStatus::Pending
    }

    fn ledger(&self) -> Option<&Ledger> {
        None
    }

    fn report(&self) -> AccountingReport {
        AccountingReport::default()
    }
}

/// The drain deadline is the server's: an accounting that still says `Pending` past it does
/// not keep the loop (and `Running::stop`, and the process) waiting forever. Before, the loop
/// never ended: nothing but `Expired` or `Complete` could end it.
#[test]
fn an_accounting_pending_past_the_deadline_does_not_hold_the_server() {
    let limits = Limits::default().with_drain_timeout(Duration::from_millis(100));
    let running = ServerBuilder::new()
        .limits(limits)
        .spawn(|| NeverDrains, demo_routes)
        .unwrap();
    assert_eq!(util::get(running.addr(), "/").status, 200);
    let started = Instant::now();
    let report = within(HANG, move || running.stop())
        .expect("the server outlived its drain deadline")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(report.drain_deadline_hit);
    assert_eq!(report.stats.served, 1);
}

/// As above, for a loop of a group: the ladder goes on to abort and force at its own times.
#[test]
fn an_accounting_pending_past_the_deadline_does_not_hold_a_group() {
    let ladder = Ladder::default()
        .with_drain_timeout(Duration::from_millis(100))
        .with_force_after(Duration::from_millis(50));
    let group = LoopGroup::new()
        .loops(2)
        .ladder(ladder)
        .spawn(|_| NeverDrains, demo_routes)
        .unwrap();
    assert_eq!(util::get(group.addr(), "/").status, 200);
    let report = within(HANG, move || group.stop())
        .expect("the group outlived its ladder")
        .unwrap();
    assert_eq!(report.totals.stats.served, 1);
    for (index, one) in report.loops.iter().enumerate() {
        let steps: Vec<&str> = one.steps.iter().map(|s| s.step.name()).collect();
        assert!(
            steps.ends_with(&["force", "close"]),
            "loop {index}: {steps:?}"
        );
    }
}

/// Sets the content type named by the query's `t` (leaked: `set_content_type` takes a
/// `&'static str`, as a runtime's interned MIME strings are).
fn typed(request: &Request<'_>, response: &mut Response<'_>) -> Reply {
    let wanted = match request.query_param("t").unwrap_or("") {
        "crlf" => "text/html\r\nset-cookie: session=stolen",
        "lf" => "text/html\nset-cookie: session=stolen",
        "nul" => "text/html\0",
        "del" => "text/html\x7f",
        _ => "text/html;\tcharset=utf-8",
    };
    response.set_content_type(wanted);
    response.write(b"<p>hi</p>");
    Reply::Now
}

/// A handler's content type with a control byte (CR, LF, NUL, DEL) would end the field and
/// inject others (`set-cookie` here): it is answered `500`, as an invalid status is, and the
/// connection goes on. A valid one (parameters, HTAB) is written as set. Before, it was
/// written as it was.
#[test]
fn a_content_type_with_control_bytes_is_answered_500_not_written() {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    router.route("GET", "/typed", typed);
    let mut session = Session::new(&router, Unaccounted::new(), Limits::default());
    for bad in ["crlf", "lf", "nul", "del"] {
        session.feed(format!("GET /typed?t={bad} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let out = text(&session.take_output());
        assert!(out.starts_with("HTTP/1.1 500 "), "{bad}: {out:?}");
        assert!(
            !out.contains("set-cookie") && !out.contains("text/html"),
            "{bad}: {out:?}"
        );
        assert!(
            out.ends_with("\r\n\r\nInternal Server Error"),
            "{bad}: {out:?}"
        );
    }
    session.feed(b"GET /typed HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = text(&session.take_output());
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out:?}");
    assert!(
        out.contains("\r\ncontent-type: text/html;\tcharset=utf-8\r\n"),
        "{out:?}"
    );
    assert!(!session.is_closed());
}

fn ok(_: &Request<'_>, response: &mut Response<'_>) -> Reply {
    response.write(b"ok");
    Reply::Now
}

/// A route method that is not a token answers no request (a request's method is a token), so
/// it has no place in `allow`, where a CR or LF would inject fields into every `405` and
/// `OPTIONS` answer of the path. Before, it was written there as it was.
#[test]
fn a_route_method_that_is_not_a_token_stays_out_of_allow() {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    router.route("GET\r\nset-cookie: session=stolen", "/x", ok);
    router.route("", "/x", ok);
    router.route("PO ST", "/x", ok);
    router.route("POST", "/x", ok);
    assert_eq!(router.allow("/x"), Some("POST"));
    assert_eq!(router.allow("*"), Some("POST"));
    let mut session = Session::new(&router, Unaccounted::new(), Limits::default());
    session.feed(b"PUT /x HTTP/1.1\r\nHost: x\r\n\r\nOPTIONS /x HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = text(&session.take_output());
    assert!(out.starts_with("HTTP/1.1 405 "), "{out:?}");
    assert_eq!(out.matches("\r\nallow: POST\r\n").count(), 2, "{out:?}");
    assert!(!out.contains("set-cookie"), "{out:?}");
    session.feed(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert!(text(&session.take_output()).ends_with("\r\n\r\nok"));
}

/// Defers its answer by 10 ms, then answers and stops the server: a JS promise that resolves
/// into `server.stop()`. With `?now`, it stops from `handle` instead.
struct StopsLater;

impl Handler for StopsLater {
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>) -> Reply {
        if request.query() == Some("now") {
            response.stop_server();
            response.write(b"stopping");
            return Reply::Now;
        }
        Reply::After {
            delay: Duration::from_millis(10),
            token: 0,
        }
    }

    fn resume(&self, _: u64, response: &mut Response<'_>) {
        response.stop_server();
        response.write(b"stopping");
    }
}

fn stops_later(router: &mut Router<'_>) {
    router.route("GET", "/stop", StopsLater);
    demo_routes(router);
}

/// `Response::stop_server` from a deferred `resume` stops the server as it does from
/// `handle`. Before, it was dropped: the server never stopped (`join` waited forever).
#[test]
fn stop_server_from_a_deferred_resume_stops_the_server() {
    let running = ServerBuilder::new()
        .spawn(
            || Guarded::embedded("server", Config::default()),
            stops_later,
        )
        .unwrap();
    let answer = util::get(running.addr(), "/stop");
    assert_eq!((answer.status, answer.text()), (200, "stopping"));
    let report = within(HANG, move || running.join())
        .expect("the server did not stop")
        .unwrap();
    assert_eq!((report.stats.served, report.leaked), (1, 0));
    assert_eq!(report.outcomes.completed, 1);
}

/// In a `Session`, `stop_server` begins the stop once the call that ran the handler returns
/// (`feed`, or `advance` for a deferred answer): the next request is refused `503` and closes.
/// Before, a session ignored it.
#[test]
fn stop_server_in_a_session_begins_the_stop() {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    stops_later(&mut router);
    for (target, wait) in [
        ("/stop?now", Duration::ZERO),
        ("/stop", Duration::from_millis(10)),
    ] {
        let accounting = Guarded::embedded("server", Config::default());
        let mut session = Session::new(&router, accounting, Limits::default());
        session.feed(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        session.advance(wait);
        let out = text(&session.take_output());
        assert!(out.ends_with("\r\n\r\nstopping"), "{target}: {out:?}");
        session.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let out = text(&session.take_output());
        assert!(out.starts_with("HTTP/1.1 503 "), "{target}: {out:?}");
        // Refused as stopped, or as finalized: the drain completed with nothing out and its
        // hook collected the wrapper, as a server's does.
        assert_eq!(session.stats().refused, 1, "{target}");
        assert!(session.is_closed(), "{target}");
        session.ledger().unwrap().assert_quiescent();
    }
}

/// An invalid content type set first and followed by a status, a valid type and a body still
/// gives the plain `500`: nothing the handler does after it revives the answer.
#[test]
fn nothing_after_an_invalid_content_type_revives_the_answer() {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    router.route("GET", "/", |_: &Request<'_>, res: &mut Response<'_>| {
        res.set_content_type("text/html\r\nx-injected: 1");
        res.set_status(201);
        res.set_content_type("application/json");
        res.write(b"{}");
        assert_eq!(res.status(), 500);
        Reply::Now
    });
    let mut session = Session::new(&router, Unaccounted::new(), Limits::default());
    session.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = text(&session.take_output());
    assert!(out.starts_with("HTTP/1.1 500 "), "{out:?}");
    assert!(out.contains("content-type: text/plain\r\n"), "{out:?}");
    assert!(out.ends_with("\r\n\r\nInternal Server Error"), "{out:?}");
}

/// Hooks of the embedder's: one that panics (at stop, or when the drain completes) is caught,
/// the stop goes on and the report comes back; a hook added to `Guarded::embedded` runs after
/// its collection instead of replacing it. Before, the panic unwound out of the loop
/// (`Running::stop` panicked, the report was lost), and `after_drain` replaced the collection
/// (the wrapper was never finalized).
#[test]
fn a_panicking_stop_or_drain_hook_is_caught_and_hooks_add_up() {
    let running = ServerBuilder::new()
        .spawn(
            || {
                Guarded::embedded(
                    "server",
                    Config::default().with_downgrade(DowngradePolicy::OnStop),
                )
                .after_stop(|| panic!("a stop hook panics"))
                .after_drain(|| panic!("a drain hook panics"))
            },
            demo_routes,
        )
        .unwrap();
    assert_eq!(util::get(running.addr(), "/").status, 200);
    let report = within(HANG, move || {
        std::panic::catch_unwind(AssertUnwindSafe(move || running.stop())).ok()
    })
    .expect("the stop hung")
    .expect("a hook's panic escaped into Running::stop")
    .unwrap();
    assert_eq!((report.stats.served, report.leaked), (1, 0));

    let heap = Heap::new();
    let ran = Rc::new(Cell::new(0));
    let counted = Rc::clone(&ran);
    let mut accounting = Guarded::embedded_on(&heap, "server", Config::default())
        .after_drain(|| panic!("a drain hook panics"))
        .after_drain(move || counted.set(counted.get() + 1));
    let now = Instant::now();
    accounting.stop(now);
    assert_eq!(accounting.poll_stop(now, 0), StopStatus::Complete);
    assert_eq!(ran.get(), 1, "the hook after a panicking one did not run");
    assert_eq!(
        heap.live_objects(),
        0,
        "the embedded collection did not run"
    );
    assert_eq!(heap.finalized(), 1);
}

/// A panic payload whose own `Drop` panics (the handler's code, through
/// `std::panic::panic_any`).
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a panic payload's drop panics");
    }
}

/// Panics with a payload that panics again when dropped, from `handle` or from `resume`.
struct PanicsTwice;

impl Handler for PanicsTwice {
    fn handle(&self, request: &Request<'_>, _: &mut Response<'_>) -> Reply {
        if request.query() == Some("later") {
            return Reply::After {
                delay: Duration::from_millis(1),
                token: 0,
            };
        }
        std::panic::panic_any(PanicsOnDrop)
    }

    fn resume(&self, _: u64, _: &mut Response<'_>) {
        std::panic::panic_any(PanicsOnDrop)
    }
}

/// A handler's panic is a `500` and the server goes on (the docs), whatever its payload: one
/// whose `Drop` panics too is dropped caught. Before, dropping it unwound out of the loop (a
/// server's thread died with every connection; here, `feed` and `advance` panicked).
#[test]
fn a_handler_panic_whose_payload_panics_on_drop_is_still_a_500() {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    router.route("GET", "/twice", PanicsTwice);
    let accounting = Guarded::embedded("server", Config::default());
    let mut session = Session::new(&router, accounting, Limits::default());
    let fed = std::panic::catch_unwind(AssertUnwindSafe(|| {
        session.feed(b"GET /twice HTTP/1.1\r\nHost: x\r\n\r\n");
        session.feed(b"GET /twice?later HTTP/1.1\r\nHost: x\r\n\r\n");
        session.advance(Duration::from_millis(1));
    }));
    assert!(fed.is_ok(), "the payload's panic escaped the server");
    let out = text(&session.take_output());
    assert_eq!(out.matches("HTTP/1.1 500 ").count(), 2, "{out:?}");
    assert_eq!(session.stats().panics, 2);
    assert_eq!(session.ledger().unwrap().outcomes().dropped, 2);
    session.disconnect();
    session.ledger().unwrap().assert_quiescent();
}

/// A hook's panic whose payload panics when dropped is caught as any hook panic: the hooks
/// before it ran and the drain completes. Before, dropping that payload unwound out of
/// `poll_stop` when it was the last hook set (the hooks dropped the payload uncaught).
#[test]
fn a_hook_panic_whose_payload_panics_on_drop_is_caught() {
    let ran = Rc::new(Cell::new(0));
    let counted = Rc::clone(&ran);
    let mut accounting = Guarded::embedded("server", Config::default())
        .after_drain(move || counted.set(counted.get() + 1))
        .after_drain(|| std::panic::panic_any(PanicsOnDrop));
    let now = Instant::now();
    accounting.stop(now);
    let polled = std::panic::catch_unwind(AssertUnwindSafe(|| accounting.poll_stop(now, 0))).ok();
    assert_eq!(
        polled,
        Some(StopStatus::Complete),
        "the payload's panic escaped"
    );
    assert_eq!(
        ran.get(),
        1,
        "the hook before the panicking one did not run"
    );
}

/// A deferred request admitted through one dispatcher cannot be ended through another: before,
/// `abort` with a second dispatcher took its `in_flight` from 0 to `usize::MAX` in release (a
/// drain that never completes; a subtraction overflow in debug) and left the first one's at 1.
#[test]
fn a_connection_used_with_a_second_dispatcher_is_a_clear_panic() {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let mut first = Dispatcher::new(&router, Unaccounted::new(), Limits::default());
    let mut second = Dispatcher::new(&router, Unaccounted::new(), Limits::default());
    let now = Instant::now();
    let mut connection = Connection::new(now);
    connection.receive(
        &mut first,
        b"GET /delay?ms=1000 HTTP/1.1\r\nhost: x\r\n\r\n",
        now,
    );
    assert_eq!(first.in_flight(), 1);

    let misuse = std::panic::catch_unwind(AssertUnwindSafe(|| {
        connection.abort(&mut second, reqguard::AbortReason::ClientDisconnected);
    }));
    let message = misuse.expect_err("ending a request through another dispatcher must panic");
    let message = message
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| message.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(message.contains("another Dispatcher"), "{message}");
    assert_eq!(second.in_flight(), 0, "the other dispatcher's count moved");

    // Its own dispatcher still ends it.
    connection.abort(&mut first, reqguard::AbortReason::ClientDisconnected);
    assert_eq!((first.in_flight(), first.stats().aborted), (0, 1));
}
