//! QA probes, tenth round, of the embedding API as a hostile embedder uses it: accountings
//! whose stop lies, servers stopped in every order. Public API only. Each test failed on
//! `main` before its fix.
#![cfg(feature = "server")]

use crate::accountings;
use crate::handlers;
use crate::quiet;
use crate::util;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use accountings::{passes_on, SaysAtStop};
use handlers::Later;
use reqguard::engines::Embedded;
use reqguard::http::{
    demo_routes, Accounting, Guarded, GuardedHeld, Limits, NoScope, Router, Routes, ServerBuilder,
    Session, StopStatus,
};
use reqguard::{AbortSignal, Config, Outcome, Refusal};
use util::bounded::within;

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(20);

/// A single server gives a request in flight until its own drain deadline, whatever the
/// accounting says: one that says `Expired` at once does not cut the request short (the
/// loop's own deadline rules, as a loop group's ladder does). Before, the server
/// force-closed the request at the first poll after the stop (no answer, counted aborted)
/// and reported the drain deadline hit long before it.
#[test]
fn an_accounting_that_says_expired_early_does_not_cut_a_server_request_short() {
    let limits = Limits::default().with_drain_timeout(Duration::from_secs(1));
    let admitted = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&admitted);
    let running = ServerBuilder::new()
        .limits(limits)
        .spawn(
            move || SaysAtStop::new(StopStatus::Expired { aborted: 0 }, seen),
            |router| {
                router.route("GET", "/later", Later(Duration::from_millis(300)));
            },
        )
        .unwrap();
    let addr = running.addr();
    let held = std::thread::spawn(move || {
        within(HANG, move || util::try_get(addr, "/later")).expect("the request hung")
    });
    util::wait_until("the request is admitted", || {
        admitted.load(Ordering::SeqCst)
    });
    let report = within(HANG, move || running.stop())
        .expect("the stop hung")
        .expect("the report");
    let answer = held.join().unwrap();
    assert!(matches!(answer, Ok((200, true))), "{answer:?}\n{report}");
    assert_eq!(report.stats.aborted, 0, "{report}");
    assert_eq!(report.force_closed, 0, "{report}");
}

/// The same in a session: its deferred request is answered at its time, not aborted at the
/// stop because the accounting says `Expired`. Before, the session aborted it and closed at
/// once.
#[test]
fn an_accounting_that_says_expired_early_does_not_cut_a_session_request_short() {
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    router.route("GET", "/later", Later(Duration::from_millis(300)));
    let accounting = SaysAtStop::new(StopStatus::Expired { aborted: 0 }, Arc::default());
    let limits = Limits::default().with_drain_timeout(Duration::from_secs(5));
    let mut session = Session::new(&router, accounting, limits);
    session.feed(b"GET /later HTTP/1.1\r\nhost: x\r\n\r\n");
    session.stop();
    session.advance(Duration::from_millis(100));
    assert!(
        !session.is_closed(),
        "closed 4.9 s before the drain deadline"
    );
    session.advance(Duration::from_millis(300));
    let answer = String::from_utf8(session.take_output()).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("late"),
        "{answer:?}"
    );
    assert_eq!(session.stats().aborted, 0);
}

/// A `Guarded` accounting that tells the server its per-request calls cannot panic
/// (`MAY_PANIC` false, as `Guarded` does) and whose `handled` panics all the same, at the
/// `nth` request handled only.
struct PanicsAtHandled {
    inner: Guarded<Embedded<&'static str>, NoScope>,
    /// Requests handled so far, seen from the test's thread too.
    handled: Arc<AtomicU32>,
    nth: u32,
}

impl Accounting for PanicsAtHandled {
    type Held = GuardedHeld;
    const MAY_PANIC: bool = false;

    fn signal(held: &Self::Held) -> Option<&AbortSignal> {
        Some(held.signal())
    }

    fn end(held: Self::Held, outcome: Outcome) {
        held.end(outcome);
    }

    fn handled(&mut self) {
        self.inner.handled();
        if self.handled.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            panic!("an accounting's handled panics");
        }
    }

    fn read_ended(&mut self) {
        self.inner.read_ended();
    }

    passes_on!(inner: admit, stop, poll_stop, ledger, report);
}

/// A panic out of an accounting's per-request call that said it cannot panic no longer ends
/// the loop: the server counts it, closes every connection open at that moment (which one
/// the panic left half-done it cannot tell; each request on them ends, once) and serves on.
/// Before, the loop died: the request behind it was refused a connection, every request in
/// flight was dropped with the thread, and `Running::stop` returned an error, the report
/// lost.
#[test]
fn a_loop_survives_a_panic_of_an_accounting_that_said_it_cannot_panic() {
    quiet::quiet_panics();
    let handled = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&handled);
    let running = ServerBuilder::new()
        .spawn(
            move || PanicsAtHandled {
                inner: Guarded::embedded("server", Config::default()),
                handled: counted,
                nth: 2,
            },
            |router| {
                demo_routes(router);
                router.route("GET", "/later", Later(Duration::from_secs(30)));
            },
        )
        .unwrap();
    let addr = running.addr();
    // The first request is deferred: in flight on its own connection when the panic comes.
    let deferred = std::thread::spawn(move || within(HANG, move || util::try_get(addr, "/later")));
    util::wait_until("the deferred request is handled", || {
        handled.load(Ordering::SeqCst) == 1
    });
    // The second request's `handled` panics.
    let _ = within(HANG, move || util::try_get(addr, "/"));
    let deferred = deferred.join().unwrap().expect("the deferred request hung");
    assert!(
        deferred.is_err(),
        "closed by the panic's recovery: {deferred:?}"
    );
    let after = within(HANG, move || util::try_get(addr, "/")).expect("hung");
    assert!(
        matches!(after, Ok((200, true))),
        "served after the panic: {after:?}"
    );
    let report = within(HANG, move || running.stop())
        .expect("the stop hung")
        .expect("the loop survived: its report");
    assert_eq!(report.stats.panics, 1, "{report}");
    assert_eq!(report.leaked, 0, "{report}");
    assert_eq!(report.outcomes.total(), 3, "{report}");
    assert_eq!(report.outcomes.completed, 1, "{report}");
    // The two connections the recovery closed (the deferred request's, the panic's) are
    // counted force-closed, as `ServerReport::force_closed` says (QA embed14-5, docs).
    assert_eq!(report.force_closed, 2, "{report}");
}

#[cfg(feature = "hyper")]
mod hyper_embed {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use bytes::Bytes;
    use hyper::body::{Body, Frame, SizeHint};
    use hyper::Response;
    use reqguard::engines::Heap;
    use reqguard::tokio_hyper::HyperServer;
    use reqguard::{Config, ServerCore};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::util::bodies::Hinted;
    use crate::one_request::{serve_one, serve_one_on, serve_one_with};

    /// A response body of the embedder's own type whose `size_hint` (or `is_end_stream`)
    /// panics: hyper asks it before it writes the head.
    pub(super) struct PanicsOnHint {
        pub(super) data: Option<Bytes>,
        pub(super) in_is_end_stream: bool,
    }

    impl Body for PanicsOnHint {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
        }

        fn is_end_stream(&self) -> bool {
            if self.in_is_end_stream {
                panic!("a body's is_end_stream panics");
            }
            self.data.is_none()
        }

        fn size_hint(&self) -> SizeHint {
            if !self.in_is_end_stream {
                panic!("a body's size_hint panics");
            }
            SizeHint::default()
        }
    }

    /// A response body whose `size_hint` or `is_end_stream` panics when hyper asks it, before
    /// the head is written: the panic is the handler's, answered `500` and counted, and the
    /// request ends *dropped* once.
    #[test]
    fn a_response_body_whose_size_hint_panics_is_a_500_and_counted() {
        super::quiet::quiet_panics();
        for in_is_end_stream in [false, true] {
            let (answer, report) = serve_one(
                move |_this, _request, bundle: reqguard::tokio_hyper::Bundle| async move {
                    let body = PanicsOnHint {
                        data: Some(Bytes::from_static(b"computed")),
                        in_is_end_stream,
                    };
                    Ok(bundle.respond(Response::new(body)))
                },
            );
            let case = if in_is_end_stream {
                "is_end_stream"
            } else {
                "size_hint"
            };
            assert!(
                answer.starts_with("HTTP/1.1 500"),
                "{case}: {answer:?}\n{report}"
            );
            assert_eq!(report.outcomes.total(), 1, "{case}: {report}");
            assert_eq!(report.outcomes.dropped, 1, "{case}: {report}");
            assert_eq!(report.stats.panics, 1, "{case}: {report}");
        }
    }

    /// Absurd options, each alone: the server neither panics nor hangs nor leaks, and every
    /// admitted request has one outcome. (No bug found.)
    #[test]
    fn absurd_hyper_options_neither_panic_nor_leak() {
        use reqguard::tokio_hyper::Options;
        let cases: Vec<(&str, Options)> = vec![
            (
                "drain_timeout 0",
                Options::default().with_drain_timeout(Duration::ZERO),
            ),
            (
                "stop_linger 0",
                Options::default().with_stop_linger(Duration::ZERO),
            ),
            (
                "force_after 0",
                Options::default().with_force_after(Duration::ZERO),
            ),
            // `max_connections 0` is invalid input since QA embed17-1 (`serve` panics, `run`
            // errs): probe_embed::v17::hyper_options::a_max_connections_of_zero_is_invalid_input.
            // So are `idle_timeout 0` and `max_head 0` since QA client26-1, as on mio:
            // probe_client::v26::both_builders_refuse_the_same_absurd_knobs_with_the_same_words.
            (
                "max_connections MAX",
                Options::default().with_max_connections(usize::MAX),
            ),
            ("max_head MAX", Options::default().with_max_head(usize::MAX)),
            ("max_buffer 0", Options::default().with_max_buffer(0)),
            (
                "max_buffer MAX",
                Options::default().with_max_buffer(usize::MAX),
            ),
            ("min_send_rate 0", Options::default().with_min_send_rate(0)),
            (
                "min_send_rate MAX",
                Options::default().with_min_send_rate(u64::MAX),
            ),
            (
                "all MAX",
                Options::default()
                    .with_idle_timeout(Duration::MAX)
                    .with_drain_timeout(Duration::MAX)
                    .with_stop_linger(Duration::ZERO)
                    .with_min_send_rate(u64::MAX),
            ),
        ];
        for (case, options) in cases {
            let hello = |_this, _request, bundle: reqguard::tokio_hyper::Bundle| async move {
                let body = http_body_util::Full::new(Bytes::from_static(b"hello"));
                Ok(bundle.respond(Response::new(body)))
            };
            let (answer, report) = serve_one_with(options, hello);
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 "),
                "{case}: {answer:?}"
            );
            assert_eq!(report.leaked, 0, "{case}: {report}");
            assert_eq!(
                report.outcomes.total(),
                report.outcomes.completed + report.aborted() + report.outcomes.dropped,
                "{case}: {report}"
            );
        }
    }
    /// A handler that forgets its bundle (`mem::forget`, or an `Rc` cycle: no type rules
    /// either out) and fails: the stop's deadline aborts the forgotten request's signal, the
    /// force-close ends the connections, and `serve` returns, its report naming what leaked at
    /// its mint site; no outcome is counted for it (it never ended). (No bug found.)
    #[test]
    fn a_forgotten_bundle_is_reported_and_does_not_hold_the_stop() {
        use reqguard::tokio_hyper::{Bundle, HandlerError, Options, Reply};
        let options = Options::default()
            .with_drain_timeout(Duration::from_millis(100))
            .with_force_after(Duration::from_millis(50));
        let fired = std::rc::Rc::new(std::cell::Cell::new(None));
        let seen = std::rc::Rc::clone(&fired);
        let handler = move |_this, _request, bundle: Bundle| {
            let seen = std::rc::Rc::clone(&seen);
            async move {
                bundle
                    .signal()
                    .on_abort(move |reason| seen.set(Some(reason)));
                std::mem::forget(bundle);
                Err::<Reply<http_body_util::Full<Bytes>>, HandlerError>("forgot it".into())
            }
        };
        let (answer, report) = serve_one_with(options, handler);
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer:?}");
        assert!(report.leaked > 0, "{report}");
        assert!(report.leaks.to_string().contains("ticket"), "{report}");
        assert_eq!(report.outcomes.total(), 0, "{report}");
        let deadline = report.deadline.as_ref().expect("the deadline passed");
        assert_eq!(deadline.aborted_signals, 1, "{report}");
        assert_eq!(fired.get(), Some(reqguard::AbortReason::DrainDeadline));
    }

    /// A bundle smuggled from one server to another on the same thread: server a's handler
    /// keeps its bundle and fails (`500`), a is stopped (its drain waits for that request),
    /// and server b's handler answers with a's bundle (dropping its own). a's request ends
    /// *completed* when b has written the answer, which completes a's drain; b's own request
    /// ends *dropped*; each ledger counts its own, one outcome each, nothing leaks. (No bug
    /// found.)
    #[test]
    fn a_bundle_smuggled_to_another_server_ends_in_its_own_ledger() {
        use reqguard::tokio_hyper::{Bundle, HandlerError, Reply};
        use std::cell::RefCell;
        use std::rc::Rc;
        type Body = http_body_util::Full<Bytes>;

        async fn get(addr: std::net::SocketAddr) -> String {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
            stream.write_all(request).await.unwrap();
            let mut answer = Vec::new();
            let read = stream.read_to_end(&mut answer);
            let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
            String::from_utf8_lossy(&answer).into_owned()
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let heap = Heap::new();
        let stash: Rc<RefCell<Option<Bundle>>> = Rc::default();
        let (a, b) = local.block_on(&runtime, async {
            let keep = Rc::clone(&stash);
            let handler_a = move |_this, _request, bundle: Bundle| {
                let keep = Rc::clone(&keep);
                async move {
                    *keep.borrow_mut() = Some(bundle);
                    Err::<Reply<Body>, HandlerError>("kept my bundle".into())
                }
            };
            let take = Rc::clone(&stash);
            let handler_b = move |_this, _request, own: Bundle| {
                let smuggled = take.borrow_mut().take();
                async move {
                    let body = Body::new(Bytes::from_static(b"from a"));
                    let bundle = smuggled.unwrap_or(own);
                    Ok::<_, HandlerError>(bundle.respond(Response::new(body)))
                }
            };
            let server_a = HyperServer::new(
                ServerCore::embedded(heap.alloc("a"), Config::default()),
                handler_a,
            );
            let server_b = HyperServer::new(
                ServerCore::embedded(heap.alloc("b"), Config::default()),
                handler_b,
            );
            let listener_a = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let listener_b = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (addr_a, addr_b) = (
                listener_a.local_addr().unwrap(),
                listener_b.local_addr().unwrap(),
            );
            let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
            let (stop_b, stopped_b) = tokio::sync::oneshot::channel::<()>();
            tokio::task::spawn_local(async move {
                let answer = get(addr_a).await;
                assert!(answer.starts_with("HTTP/1.1 500"), "{answer:?}");
                stop_a.send(()).unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                let answer = get(addr_b).await;
                assert!(answer.ends_with("from a"), "{answer:?}");
                stop_b.send(()).unwrap();
            });
            let serve_a = server_a.serve(listener_a, async { stopped_a.await.unwrap() });
            let serve_b = server_b.serve(listener_b, async { stopped_b.await.unwrap() });
            tokio::time::timeout(Duration::from_secs(20), async {
                tokio::join!(serve_a, serve_b)
            })
            .await
            .expect("both servers stopped")
        });
        assert_eq!(
            (a.outcomes.completed, a.outcomes.total(), a.leaked),
            (1, 1, 0),
            "{a}"
        );
        assert!(a.deadline.is_none(), "a's drain completed in time: {a}");
        assert_eq!(
            (b.outcomes.dropped, b.outcomes.total(), b.leaked),
            (1, 1, 0),
            "{b}"
        );
    }

    /// A core stopped, and its wrapper collected, before the server serves with it (stop and
    /// collect in the other order than `serve`'s): every request is refused `503` holding
    /// nothing, and `serve` returns at its stop with a clean report. (No bug found.)
    #[test]
    fn a_core_stopped_and_collected_before_serve_refuses_and_ends_clean() {
        let heap = Heap::new();
        let core = ServerCore::embedded(
            heap.alloc("server"),
            Config::default().with_downgrade(reqguard::DowngradePolicy::OnStop),
        );
        let drain = core.stop();
        assert_eq!(heap.collect(), 1);
        assert!(drain.is_complete());
        let hello = |_this, _request, bundle: reqguard::tokio_hyper::Bundle| async move {
            let body = http_body_util::Full::new(Bytes::from_static(b"hello"));
            Ok(bundle.respond(Response::new(body)))
        };
        let (answer, report) = serve_one_on(core, reqguard::tokio_hyper::Options::default(), hello);
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
        assert!(answer.contains("connection: close"), "{answer:?}");
        assert_eq!((report.outcomes.total(), report.leaked), (0, 0), "{report}");
        assert!(report.deadline.is_none(), "{report}");
        drop(drain);
        assert_eq!(heap.live_objects(), 0);
    }

    /// A response body whose `poll_frame` panics (hyper polls it after writing the head):
    /// by design the panic unwinds through hyper and ends the connection's task (tokio catches
    /// it), the request ends *dropped* once, nothing leaks; not counted in `panics` (a catch
    /// per frame would cost every answer). Pins the documented behaviour.
    #[test]
    fn a_response_body_whose_poll_panics_ends_its_request_dropped_once() {
        struct PanicsOnPoll;
        impl Body for PanicsOnPoll {
            type Data = Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
                panic!("a body's poll_frame panics");
            }
        }
        super::quiet::quiet_panics();
        let handler = |_this, _request, bundle: reqguard::tokio_hyper::Bundle| async move {
            Ok(bundle.respond(Response::new(PanicsOnPoll)))
        };
        let (answer, report) = serve_one(handler);
        assert!(
            !answer.contains("\r\n\r\n") || answer.starts_with("HTTP/1.1 200"),
            "{answer:?}"
        );
        assert_eq!(
            (report.outcomes.dropped, report.outcomes.total()),
            (1, 1),
            "{report}"
        );
        assert_eq!(report.leaked, 0, "{report}");
    }

    /// A response body whose `size_hint` says an exact length it does not yield (shorter,
    /// longer): hyper frames the answer by the hint, so the answer is cut at it or the
    /// connection closed, but the request still ends once, with one outcome, nothing leaked.
    /// Which outcome is documented in hyper.md (the hint is the embedder's to get right).
    #[test]
    fn a_body_whose_size_hint_lies_still_ends_its_request_once() {
        for exact in [0u64, 1, 100] {
            let handler = move |_this, _request, bundle: reqguard::tokio_hyper::Bundle| async move {
                let body = Hinted::of(&["hello"], Some(exact), false);
                Ok(bundle.respond(Response::new(body)))
            };
            let (_answer, report) = serve_one(handler);
            assert_eq!(report.outcomes.total(), 1, "exact {exact}: {report}");
            assert_eq!(report.leaked, 0, "exact {exact}: {report}");
        }
    }
}

/// A session whose accounting says it cannot panic and panics in `handled`: the panic reaches
/// the caller of `feed` (documented), and the session, used again, keeps its books: the
/// request the panic cut short ended *dropped* (unanswered), the next one is served, nothing
/// is left out. (No bug found.)
#[test]
fn a_session_used_after_a_panic_of_an_accounting_that_said_it_cannot_panic() {
    quiet::quiet_panics();
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let accounting = PanicsAtHandled {
        inner: Guarded::embedded("server", Config::default()),
        handled: Arc::new(AtomicU32::new(0)),
        nth: 1,
    };
    let mut session = Session::new(&router, accounting, Limits::default());
    let get = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    let fed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.feed(get)));
    assert!(fed.is_err(), "the panic reaches the caller");
    assert_eq!(session.take_output(), b"");
    session.feed(get);
    let second = String::from_utf8(session.take_output()).unwrap();
    assert!(second.starts_with("HTTP/1.1 200"), "{second:?}");
    session.stop();
    let ledger = session.ledger().unwrap();
    let outcomes = ledger.outcomes();
    assert_eq!((outcomes.completed, outcomes.dropped), (1, 1), "{outcomes}");
    ledger.assert_quiescent();
}

/// An accounting that says it cannot panic and whose `end` panics (its `Held` dropped by the
/// unwinding: *dropped*).
struct PanicsAtEnd(Guarded<Embedded<&'static str>, NoScope>, Arc<AtomicBool>);

impl Accounting for PanicsAtEnd {
    type Held = GuardedHeld;
    const MAY_PANIC: bool = false;

    fn admit(&mut self) -> Result<Self::Held, Refusal> {
        self.1.store(true, Ordering::SeqCst);
        self.0.admit()
    }

    fn signal(held: &Self::Held) -> Option<&AbortSignal> {
        Some(held.signal())
    }

    fn end(held: Self::Held, _outcome: Outcome) {
        let _held = held;
        panic!("an accounting's end panics");
    }

    passes_on!(0: handled, read_ended, stop, poll_stop, ledger, report);
}

/// The loop survives such a panic where the stop's deadline ends a request (the force-close
/// calls `end`), and the stop then completes at once, with its report: the request ended
/// once, nothing leaked. With this round's first catch the loop, its turn cut short, slept
/// until its next timer (here the deferred answer's, 30 s; else an idle timeout) before it
/// saw the stop was done.
#[test]
fn a_panic_in_end_at_the_drain_deadline_still_ends_the_stop_with_a_report() {
    quiet::quiet_panics();
    let admitted = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&admitted);
    let limits = Limits::default()
        .with_drain_timeout(Duration::from_millis(100))
        .with_idle_timeout(Duration::from_secs(600))
        .with_request_timeout(Duration::from_secs(600));
    let running = ServerBuilder::new()
        .limits(limits)
        .spawn(
            move || PanicsAtEnd(Guarded::embedded("server", Config::default()), seen),
            |router| {
                router.route("GET", "/later", Later(Duration::from_secs(30)));
            },
        )
        .unwrap();
    let addr = running.addr();
    let held = std::thread::spawn(move || within(HANG, move || util::try_get(addr, "/later")));
    util::wait_until("the request is admitted", || {
        admitted.load(Ordering::SeqCst)
    });
    let report = within(HANG, move || running.stop())
        .expect("the stop hung")
        .expect("the report");
    let _ = held.join();
    assert_eq!(report.leaked, 0, "{report}");
    assert_eq!(report.outcomes.deadline_aborted, 1, "{report}");
    assert_eq!(report.outcomes.total(), 1, "{report}");
    // Counted before the call that panicked.
    assert_eq!(report.stats.aborted, 1, "{report}");
    assert_eq!(report.force_closed, 1, "{report}");
    assert_eq!(report.stats.panics, 1, "{report}");
}

/// The same with two requests held past the drain on two connections: the deadline's
/// force-close calls `end` for each, both panic, and each panic is caught on its own close
/// (the other connection still closed, its request ended): two panics counted, both requests
/// ended once, nothing leaked.
#[test]
fn each_panicking_end_at_the_drain_deadline_is_counted_and_every_connection_closed() {
    quiet::quiet_panics();
    let admitted = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&admitted);
    let limits = Limits::default()
        .with_drain_timeout(Duration::from_millis(100))
        .with_idle_timeout(Duration::from_secs(600))
        .with_request_timeout(Duration::from_secs(600));
    let running = ServerBuilder::new()
        .limits(limits)
        .spawn(
            move || PanicsAtEnd(Guarded::embedded("server", Config::default()), seen),
            |router| {
                router.route("GET", "/later", Later(Duration::from_secs(30)));
            },
        )
        .unwrap();
    let addr = running.addr();
    let held: Vec<_> = (0..2)
        .map(|_| {
            admitted.store(false, Ordering::SeqCst);
            let held =
                std::thread::spawn(move || within(HANG, move || util::try_get(addr, "/later")));
            util::wait_until("the request is admitted", || {
                admitted.load(Ordering::SeqCst)
            });
            held
        })
        .collect();
    let report = within(HANG, move || running.stop())
        .expect("the stop hung")
        .expect("the report");
    held.into_iter().for_each(|held| drop(held.join()));
    assert_eq!(report.leaked, 0, "{report}");
    assert_eq!(report.outcomes.deadline_aborted, 2, "{report}");
    assert_eq!(report.outcomes.total(), 2, "{report}");
    assert_eq!(report.stats.aborted, 2, "{report}");
    assert_eq!(report.force_closed, 2, "{report}");
    assert_eq!(report.stats.panics, 2, "{report}");
}

/// The same in a loop group: the ladder's force step closes the request held past the drain,
/// its `end` panics, the loop survives it and the group's stop ends with every report, the
/// request ended once. (No bug found.)
#[test]
fn a_panic_in_end_at_a_group_force_step_still_ends_the_group_stop() {
    use reqguard::http::{Ladder, LoopGroup};
    quiet::quiet_panics();
    let admitted = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&admitted);
    let ladder = Ladder::default()
        .with_unready(Duration::ZERO)
        .with_drain_timeout(Duration::from_millis(100))
        .with_force_after(Duration::from_millis(50));
    let limits = Limits::default()
        .with_idle_timeout(Duration::from_secs(600))
        .with_request_timeout(Duration::from_secs(600));
    let group = LoopGroup::new()
        .loops(1)
        .limits(limits)
        .ladder(ladder)
        .spawn(
            move |_| {
                PanicsAtEnd(
                    Guarded::embedded("server", Config::default()),
                    Arc::clone(&seen),
                )
            },
            |router| {
                router.route("GET", "/later", Later(Duration::from_secs(30)));
            },
        )
        .unwrap();
    let addr = group.addr();
    let held = std::thread::spawn(move || within(HANG, move || util::try_get(addr, "/later")));
    util::wait_until("the request is admitted", || {
        admitted.load(Ordering::SeqCst)
    });
    let report = within(HANG, move || group.stop())
        .expect("the group's stop hung")
        .expect("the group's report");
    let _ = held.join();
    let totals = &report.totals;
    assert_eq!(totals.leaked, 0, "{report}");
    assert_eq!(totals.outcomes.total(), 1, "{report}");
    assert_eq!(totals.stats.panics, 1, "{report}");
}

/// A `Guarded` accounting that says its per-request calls cannot panic and panics in one of
/// them now and then, drawn from `seed`: which call, and how often. Counts its admissions and
/// its panics, seen from the test's thread.
struct PanicsNowAndThen {
    inner: Guarded<Embedded<&'static str>, NoScope>,
    seed: u64,
    admitted: Arc<AtomicU32>,
    panicked: Arc<AtomicU32>,
}

thread_local! {
    /// The per-request calls without `self` (`signal`, `end`) draw from here.
    static DRAW: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
}

impl PanicsNowAndThen {
    /// About one call in `odds` panics.
    fn maybe_panic(counter: &AtomicU32, odds: u64, what: &str) {
        let hit = DRAW.with(|draw| {
            let mut x = draw.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            draw.set(x);
            x % odds == 0
        });
        if hit {
            counter.fetch_add(1, Ordering::SeqCst);
            panic!("an accounting's {what} panics");
        }
    }
}

/// Where `signal` and `end`, which have no `self`, count their panics.
static STATIC_PANICS: AtomicU32 = AtomicU32::new(0);

impl Accounting for PanicsNowAndThen {
    type Held = GuardedHeld;
    const MAY_PANIC: bool = false;

    fn admit(&mut self) -> Result<Self::Held, Refusal> {
        if self.seed != 0 {
            DRAW.with(|draw| draw.set(self.seed));
            self.seed = 0;
        }
        let held = self.inner.admit();
        if held.is_ok() {
            self.admitted.fetch_add(1, Ordering::SeqCst);
        }
        held
    }

    fn signal(held: &Self::Held) -> Option<&AbortSignal> {
        Self::maybe_panic(&STATIC_PANICS, 23, "signal");
        Some(held.signal())
    }

    fn end(held: Self::Held, outcome: Outcome) {
        Self::maybe_panic(&STATIC_PANICS, 11, "end");
        held.end(outcome);
    }

    fn this(&self) -> Option<&dyn std::any::Any> {
        Self::maybe_panic(&self.panicked, 29, "this");
        self.inner.this()
    }

    fn handled(&mut self) {
        self.inner.handled();
        Self::maybe_panic(&self.panicked, 13, "handled");
    }

    fn read_ended(&mut self) {
        self.inner.read_ended();
    }

    passes_on!(inner: stop, poll_stop, ledger, report);
}

/// A loop whose accounting (`MAY_PANIC = false`) panics now and then in every per-request
/// call, under requests answered at once, deferred, pipelined, and held through the stop:
/// the loop keeps serving, every panic is counted once, every admitted request has exactly
/// one outcome, and nothing leaks. 20 seeds.
#[test]
fn a_loop_survives_an_accounting_that_panics_now_and_then_and_keeps_its_books() {
    quiet::quiet_panics();
    for seed in 1..=20u64 {
        STATIC_PANICS.store(0, Ordering::SeqCst);
        let admitted = Arc::new(AtomicU32::new(0));
        let panicked = Arc::new(AtomicU32::new(0));
        let (a, p) = (Arc::clone(&admitted), Arc::clone(&panicked));
        let limits = Limits::default().with_drain_timeout(Duration::from_millis(200));
        let running = ServerBuilder::new()
            .limits(limits)
            .spawn(
                move || PanicsNowAndThen {
                    inner: Guarded::embedded("server", Config::default()),
                    seed: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
                    admitted: a,
                    panicked: p,
                },
                |router| {
                    demo_routes(router);
                    router.route("GET", "/later", Later(Duration::from_millis(20)));
                    router.route("GET", "/held", Later(Duration::from_secs(30)));
                },
            )
            .unwrap();
        let addr = running.addr();
        let clients: Vec<_> = (0..3)
            .map(|c| {
                std::thread::spawn(move || {
                    for i in 0..15 {
                        let path = ["/", "/later", "/"][(i + c) % 3];
                        let _ = within(HANG, move || util::try_get(addr, path));
                    }
                    // Pipelined, on one connection.
                    let _ = within(HANG, move || {
                        use std::io::{Read, Write};
                        let mut stream = std::net::TcpStream::connect(addr)?;
                        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                        let get = "GET / HTTP/1.1\r\nhost: x\r\n\r\n".repeat(8);
                        stream.write_all(get.as_bytes())?;
                        stream
                            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
                        let mut answer = Vec::new();
                        stream.read_to_end(&mut answer).map(|_| ())
                    });
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        // One held through the stop: the deadline aborts it, the force-close ends it.
        let held = std::thread::spawn(move || within(HANG, move || util::try_get(addr, "/held")));
        std::thread::sleep(Duration::from_millis(50));
        let report = within(HANG, move || running.stop())
            .unwrap_or_else(|| panic!("seed {seed}: the stop hung"))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let _ = held.join();
        let panics = panicked.load(Ordering::SeqCst) + STATIC_PANICS.load(Ordering::SeqCst);
        assert!(panics > 0, "seed {seed}: the probe panicked nowhere");
        assert_eq!(report.leaked, 0, "seed {seed}: {report}");
        assert_eq!(
            report.outcomes.total(),
            u64::from(admitted.load(Ordering::SeqCst)),
            "seed {seed}: one outcome per admitted request\n{report}"
        );
        assert_eq!(
            report.stats.panics,
            u64::from(panics),
            "seed {seed}: each panic counted once\n{report}"
        );
    }
}

/// Limits a `Server` refuses (`Limits::validate`), given to the sans-IO `Session`, which has
/// no error to return: it serves, answers and stops without a panic, and keeps its books.
#[test]
fn a_session_with_limits_a_server_refuses_does_not_panic() {
    quiet::quiet_panics();
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    router.route("GET", "/later", Later(Duration::from_millis(10)));
    let cases: Vec<(&str, Limits)> = vec![
        ("max_head 0", Limits::default().with_max_head(0)),
        ("max_head 10", Limits::default().with_max_head(10)),
        ("max_head MAX", Limits::default().with_max_head(usize::MAX)),
        ("max_body MAX", Limits::default().with_max_body(usize::MAX)),
        (
            "max_chunk_overhead 0",
            Limits::default().with_max_chunk_overhead(0),
        ),
        (
            "max_chunk_overhead MAX",
            Limits::default().with_max_chunk_overhead(usize::MAX),
        ),
        (
            "max_chunk_extensions MAX",
            Limits::default().with_max_chunk_extensions(usize::MAX),
        ),
        ("max_trailers 0", Limits::default().with_max_trailers(0)),
        (
            "max_trailers MAX",
            Limits::default().with_max_trailers(usize::MAX),
        ),
        ("max_output 0", Limits::default().with_max_output(0)),
        (
            "max_output MAX",
            Limits::default().with_max_output(usize::MAX),
        ),
        (
            "max_connections 0",
            Limits::default().with_max_connections(0),
        ),
        ("max_pipeline 0", Limits::default().with_max_pipeline(0)),
        (
            "max_pipeline MAX",
            Limits::default().with_max_pipeline(usize::MAX),
        ),
        (
            "request_timeout 0",
            Limits::default().with_request_timeout(Duration::ZERO),
        ),
        (
            "request_timeout MAX",
            Limits::default().with_request_timeout(Duration::MAX),
        ),
        (
            "idle_timeout 0",
            Limits::default().with_idle_timeout(Duration::ZERO),
        ),
        (
            "idle_timeout MAX",
            Limits::default().with_idle_timeout(Duration::MAX),
        ),
        (
            "stop_linger MAX",
            Limits::default().with_stop_linger(Duration::MAX),
        ),
        (
            "drain_timeout MAX",
            Limits::default().with_drain_timeout(Duration::MAX),
        ),
        (
            "min_send_rate MAX",
            Limits::default().with_min_send_rate(u64::MAX),
        ),
    ];
    let wire: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /later HTTP/1.1\r\nhost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nt: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n",
    ];
    for (case, limits) in cases {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let accounting = Guarded::embedded("server", Config::default());
            let mut session = Session::new(&router, accounting, limits);
            for bytes in wire {
                session.feed(bytes);
                let _ = session.take_output();
                session.advance(Duration::from_millis(20));
                let _ = session.take_output();
            }
            session.stop();
            session.advance(Duration::from_secs(10));
            let _ = session.take_output();
            session.disconnect();
            session.ledger().unwrap().assert_quiescent();
        }));
        assert!(ran.is_ok(), "{case}: the session panicked");
    }
}

/// The same on the mio server: an accounting whose core was stopped before the loop ran (the
/// factory stops it): every request is refused `503` + close holding nothing, and the
/// server's own stop later ends clean, its hooks run. (No bug found.)
#[test]
fn a_guarded_core_stopped_before_the_loop_runs_refuses_and_ends_clean() {
    let collected = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&collected);
    let running = ServerBuilder::new()
        .spawn(
            move || {
                let config = Config::default().with_downgrade(reqguard::DowngradePolicy::OnStop);
                let guarded = Guarded::embedded("server", config).after_drain(move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                });
                drop(guarded.core().stop());
                guarded
            },
            demo_routes,
        )
        .unwrap();
    let addr = running.addr();
    let answer = within(HANG, move || util::try_get(addr, "/")).expect("hung");
    let report = within(HANG, move || running.stop())
        .expect("the stop hung")
        .expect("the report");
    assert!(matches!(answer, Ok((503, true))), "{answer:?}\n{report}");
    assert_eq!(report.stats.refused, 1, "{report}");
    assert_eq!((report.outcomes.total(), report.leaked), (0, 0), "{report}");
    assert!(!report.drain_deadline_hit, "{report}");
    assert_eq!(
        collected.load(Ordering::SeqCst),
        1,
        "the drain hook ran once"
    );
}
