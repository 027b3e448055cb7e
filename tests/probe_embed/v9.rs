//! QA probes, ninth round, of the embedding API as a hostile embedder uses it: accountings
//! whose figures lie, futures dropped and made again in a handler's loop, reports read and
//! summed at their extremes. Public API only. Each test failed on `main` before its fix.
#![cfg(feature = "server")]

use crate::accountings;
use crate::handlers;
use crate::quiet;
use crate::util;

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accountings::{passes_on, DiesOnHandled, SaysAtStop};
use handlers::Later;
use reqguard::http::{
    demo_routes, Accounting, AccountingReport, Ladder, LoopGroup, ServerBuilder, StopStatus,
    Unaccounted,
};
use reqguard::{AbortSignal, Config, Ledger, OutcomeCounts, Refusal, ServerCore};
use util::bounded::within;

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(20);

/// A ladder that reaches its force step quickly when a request is held past the drain.
fn quick_ladder() -> Ladder {
    Ladder::default()
        .with_unready(Duration::ZERO)
        .with_drain_timeout(Duration::from_millis(100))
        .with_force_after(Duration::from_millis(50))
}

/// Two cores of the embedder's, one with requests ended on it and one without.
struct TwoLedgers {
    rich: ServerCore<reqguard::engines::Embedded<&'static str>>,
    poor: ServerCore<reqguard::engines::Embedded<&'static str>>,
}

impl TwoLedgers {
    fn new() -> Self {
        let heap = reqguard::engines::Heap::new();
        let rich = ServerCore::embedded(heap.alloc("rich"), Config::default());
        let live = rich.upgrade().unwrap();
        for _ in 0..3 {
            live.admit(|_| Ok(())).unwrap().complete();
        }
        drop(live);
        let poor = ServerCore::embedded(heap.alloc("poor"), Config::default());
        TwoLedgers { rich, poor }
    }
}

/// An accounting of the embedder's that admits everything, and whose `ledger` is not one
/// ledger over time: it answers with one core's and another's in turn (or panics, when
/// `panics` says so). Its reports are whatever `figures` says.
struct Lying {
    plain: Unaccounted,
    ledgers: TwoLedgers,
    calls: Cell<u64>,
    /// Which call of `ledger` answers the rich ledger first: 0 or 1.
    phase: u64,
    panics: bool,
    figures: AccountingReport,
    admitted: Arc<AtomicBool>,
}

impl Lying {
    fn new(phase: u64, panics: bool, admitted: Arc<AtomicBool>) -> Self {
        Lying {
            admitted,
            plain: Unaccounted::new(),
            ledgers: TwoLedgers::new(),
            calls: Cell::new(0),
            phase,
            panics,
            figures: AccountingReport::default(),
        }
    }
}

// The cores are `!Send`: a group makes each loop's accounting on that loop's thread.
impl Accounting for Lying {
    type Held = ();

    fn admit(&mut self) -> Result<(), Refusal> {
        self.admitted.store(true, Ordering::SeqCst);
        self.plain.admit()
    }

    fn signal(_: &()) -> Option<&AbortSignal> {
        None
    }

    fn ledger(&self) -> Option<&Ledger> {
        let call = self.calls.get();
        self.calls.set(call + 1);
        if self.panics {
            panic!("an accounting's ledger panics");
        }
        Some(if (call + self.phase).is_multiple_of(2) {
            self.ledgers.rich.ledger()
        } else {
            self.ledgers.poor.ledger()
        })
    }

    fn report(&self) -> AccountingReport {
        self.figures.clone()
    }

    passes_on!(plain: stop, poll_stop);
}

/// Runs a one-loop group whose accounting `make` builds, holds one request past the drain
/// (so the ladder goes through abort and force), stops it, and returns `wait`'s result, or
/// `Err` with what went wrong (a panic in the caller, a hang).
fn group_through_force<A: Accounting>(
    make: impl Fn(Arc<AtomicBool>) -> A + Send + Sync + 'static,
) -> Result<reqguard::http::GroupReport, String> {
    let admitted = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&admitted);
    let group = LoopGroup::new()
        .loops(1)
        .ladder(quick_ladder())
        .spawn(
            move |_| make(Arc::clone(&seen)),
            |router| {
                router.route("GET", "/later", Later(Duration::from_secs(30)));
            },
        )
        .map_err(|e| e.to_string())?;
    let addr = group.addr();
    let held = std::thread::spawn(move || {
        // Held past the drain: the force step closes it.
        let _ = within(HANG, move || util::get(addr, "/later"));
    });
    util::wait_until("the request is admitted", || {
        admitted.load(Ordering::SeqCst)
    });
    let waited = within(HANG, move || {
        std::panic::catch_unwind(AssertUnwindSafe(move || group.stop()))
    });
    let _ = held.join();
    match waited {
        None => Err("the group's stop hung".into()),
        Some(Err(_)) => Err("the group's stop panicked in the caller".into()),
        Some(Ok(Err(err))) => Err(format!("the group's report was lost: {err}")),
        Some(Ok(Ok(report))) => Ok(report),
    }
}

/// An accounting's `ledger` is the embedder's code, called by a loop group's ladder at every
/// step (the guards out, the outcomes each step ended): one that panics is caught like the
/// accounting's other calls (counted in `panics`), and the group's report comes back. Before,
/// the panic unwound out of the loop: "loop 0 panicked", the report lost.
#[test]
fn a_panicking_accounting_ledger_does_not_lose_the_group_report() {
    quiet::quiet_panics();
    let report = group_through_force(|seen| Lying::new(0, true, seen)).unwrap();
    let totals = &report.totals;
    assert!(totals.stats.panics > 0, "the ledger's panics are counted");
    assert_eq!(totals.stats.aborted + totals.stats.served, 1, "{totals:?}");
}

/// An accounting whose `ledger` answers with one ledger, then another with fewer outcomes
/// (two cores of the embedder's): the force step's "ended" figures are a difference of the
/// two. It must not panic (debug: subtract with overflow) nor wrap to absurd figures
/// (release); before, the loop died in debug builds and the report was lost.
#[test]
fn a_ledger_that_goes_backwards_does_not_lose_the_group_report() {
    quiet::quiet_panics();
    for phase in [0, 1] {
        let report = group_through_force(move |seen| Lying::new(phase, false, seen))
            .unwrap_or_else(|err| panic!("phase {phase}: {err}"));
        for step in &report.loops[0].steps {
            assert!(
                step.ended.total() <= 3,
                "phase {phase}: a step ended {} requests: {:?}",
                step.ended.total(),
                step.ended
            );
        }
    }
}

/// Figures an accounting reports are the embedder's, summed over a group's loops: absurd ones
/// (every count at its largest) saturate rather than overflow. Before, `wait` panicked in the
/// caller's thread in debug builds (add with overflow) and wrapped in release.
#[test]
fn absurd_accounting_figures_summed_over_loops_saturate() {
    quiet::quiet_panics();
    let absurd = OutcomeCounts {
        completed: u64::MAX,
        client_gone: u64::MAX,
        deadline_aborted: u64::MAX,
        force_closed: u64::MAX,
        dropped: u64::MAX,
    };
    let group = LoopGroup::new()
        .loops(2)
        .ladder(quick_ladder())
        .spawn(
            move |_| {
                let mut lying = Lying::new(0, false, Arc::default());
                lying.figures = AccountingReport {
                    leaked: usize::MAX,
                    outcomes: absurd,
                    ..AccountingReport::default()
                };
                lying
            },
            |_| {},
        )
        .unwrap();
    let waited = within(HANG, move || {
        std::panic::catch_unwind(AssertUnwindSafe(move || group.stop()))
    })
    .expect("the stop hung")
    .expect("summing the loops' reports panicked")
    .expect("the report was lost");
    assert_eq!(waited.totals.leaked, usize::MAX);
    assert_eq!(waited.totals.outcomes, absurd);
    assert_eq!(waited.totals.outcomes.total(), u64::MAX);
    assert!(!waited.is_clean());
}

/// `OutcomeCounts` is a plain public struct: its sum and `+=` saturate at `u64::MAX` instead
/// of panicking (debug) or wrapping (release).
#[test]
fn outcome_counts_saturate() {
    let mut counts = OutcomeCounts {
        completed: u64::MAX,
        dropped: 1,
        ..OutcomeCounts::default()
    };
    assert_eq!(counts.total(), u64::MAX);
    counts += OutcomeCounts {
        completed: 1,
        ..OutcomeCounts::default()
    };
    assert_eq!(counts.completed, u64::MAX);
}

/// `Running::stop` and `join` of a server whose accounting said it cannot panic, and did, do
/// not panic in the embedder's thread. Before this round both panicked ("the server thread
/// panicked"); from it until probe_embed::v10's round they returned an error (the loop had
/// died); now the loop survives the panic, and they return its report, the panic counted.
#[test]
fn running_stop_and_join_of_a_loop_whose_accounting_panicked_do_not_panic() {
    quiet::quiet_panics();
    for join in [false, true] {
        let running = ServerBuilder::new()
            .spawn(|| DiesOnHandled(Unaccounted::new()), demo_routes)
            .unwrap();
        let _ = util::try_get(running.addr(), "/"); // its `handled` panics
        let ended = within(HANG, move || {
            std::panic::catch_unwind(AssertUnwindSafe(move || {
                if join {
                    running.stop_handle().stop();
                    running.join()
                } else {
                    running.stop()
                }
            }))
        })
        .expect("the stop hung");
        let report = ended
            .unwrap_or_else(|_| panic!("join: {join}: the loop's panic reached the caller"))
            .expect("the loop survived: its report");
        assert_eq!(report.stats.panics, 1, "join: {join}: {report}");
    }
}

/// A server's report says the drain deadline was hit when a request was still in flight at
/// it, whatever the accounting says: one that says its drain is complete early does not
/// hide it. Before, `drain_deadline_hit` was false although the deadline force-closed the
/// request still out.
#[test]
fn the_deadline_is_reported_hit_when_an_accounting_says_complete_with_a_request_out() {
    let limits = reqguard::http::Limits::default().with_drain_timeout(Duration::from_millis(100));
    let admitted = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&admitted);
    let running = ServerBuilder::new()
        .limits(limits)
        .spawn(
            move || SaysAtStop::new(StopStatus::Complete, seen),
            |router| {
                router.route("GET", "/later", Later(Duration::from_secs(30)));
            },
        )
        .unwrap();
    let addr = running.addr();
    let held = std::thread::spawn(move || {
        let _ = within(HANG, move || util::try_get(addr, "/later"));
    });
    util::wait_until("the request is admitted", || {
        admitted.load(Ordering::SeqCst)
    });
    let report = within(HANG, move || running.stop())
        .expect("the stop hung")
        .expect("the report");
    let _ = held.join();
    assert_eq!(report.stats.aborted, 1, "{report}");
    assert!(report.drain_deadline_hit, "{report}");
}

/// A loop group's ladder holds the drain for a request still in flight however early the
/// accounting says complete, as a single server and a session do (the loop's own count
/// rules): the request is aborted at the drain deadline, recorded as the abort step.
#[test]
fn a_group_drain_holds_when_the_accounting_says_complete_with_a_request_out() {
    let report = group_through_force(|seen| SaysAtStop::new(StopStatus::Complete, seen)).unwrap();
    let lp = &report.loops[0];
    let steps: Vec<String> = lp.steps.iter().map(|s| format!("{:?}", s.step)).collect();
    assert!(steps.contains(&"Abort".to_string()), "{steps:?}\n{report}");
    assert!(lp.drain_deadline_hit, "{report}");
    assert_eq!(lp.stats.aborted, 1, "{report}");
}

/// Many servers in one thread, on one heap: sessions of three servers whose wrappers share an
/// embedded heap, each stopped in turn under `OnStop` (its stop collects the heap). One
/// server's stop finalizes its own wrapper only: the others go on serving `200`, each
/// ledger counts its own requests, and every late request of a stopped one gets `503`.
#[test]
fn sessions_of_servers_on_one_heap_stop_one_at_a_time() {
    use reqguard::engines::Heap;
    use reqguard::http::{Guarded, Limits, Router, Routes, Session};
    use reqguard::DowngradePolicy;

    let heap = Heap::new();
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
    let mut sessions: Vec<_> = (0..3)
        .map(|i| {
            let accounting = Guarded::embedded_on(&heap, i, config);
            Session::new(&router, accounting, Limits::default())
        })
        .collect();
    let get = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    for stopped in 0..3 {
        sessions[stopped].stop();
        for (i, session) in sessions.iter_mut().enumerate() {
            if session.is_closed() {
                continue; // its 503 closed it
            }
            session.feed(get);
            let answer = String::from_utf8(session.take_output()).unwrap();
            let expect = if i <= stopped {
                "HTTP/1.1 503"
            } else {
                "HTTP/1.1 200"
            };
            assert!(
                answer.starts_with(expect),
                "server {i} after stop {stopped}: {answer}"
            );
            let finalized = session
                .dispatcher()
                .accounting()
                .core()
                .wrapper()
                .weak()
                .is_finalized();
            assert_eq!(finalized, i <= stopped, "server {i} after stop {stopped}");
        }
    }
    for (i, session) in sessions.iter_mut().enumerate() {
        // Served until its own stop: server i answered `200` in the i rounds before it.
        let outcomes = session.ledger().unwrap().outcomes();
        assert_eq!(outcomes.completed, i as u64, "server {i}");
        session.ledger().unwrap().assert_quiescent();
    }
    assert_eq!(heap.live_objects(), 0);
}

/// A `Guarded` accounting whose every call panics now and then (it says `MAY_PANIC`, so the
/// server catches its per-request calls too): which call panics is drawn from `seed`.
struct Flaky {
    inner:
        reqguard::http::Guarded<reqguard::engines::Embedded<&'static str>, reqguard::http::NoScope>,
    seed: Cell<u32>,
}

impl Flaky {
    /// Panics about one call in `1 / odds`.
    fn maybe_panic(&self, odds: u32) {
        let mut x = self.seed.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.seed.set(x);
        if x.is_multiple_of(odds) {
            panic!("a flaky accounting panics");
        }
    }
}

impl Accounting for Flaky {
    type Held = (reqguard::http::GuardedHeld, std::rc::Rc<Cell<u32>>);

    fn admit(&mut self) -> Result<Self::Held, Refusal> {
        self.maybe_panic(7);
        let held = self.inner.admit()?;
        self.maybe_panic(7);
        Ok((held, std::rc::Rc::new(Cell::new(self.seed.get()))))
    }

    fn signal(held: &Self::Held) -> Option<&AbortSignal> {
        Some(held.0.signal())
    }

    fn end(held: Self::Held, outcome: reqguard::Outcome) {
        let seed = held.1.get();
        if seed.is_multiple_of(5) {
            panic!("a flaky accounting's end panics");
        }
        held.0.end(outcome);
    }

    fn this(&self) -> Option<&dyn std::any::Any> {
        self.maybe_panic(9);
        self.inner.this()
    }

    fn handled(&mut self) {
        self.maybe_panic(9);
        self.inner.handled();
    }

    fn read_ended(&mut self) {
        self.inner.read_ended();
    }

    fn stop(&mut self, deadline: Instant) {
        self.inner.stop(deadline);
        self.maybe_panic(3);
    }

    fn poll_stop(&mut self, now: Instant, in_flight: usize) -> StopStatus {
        self.maybe_panic(4);
        self.inner.poll_stop(now, in_flight)
    }

    fn ledger(&self) -> Option<&Ledger> {
        self.inner.ledger()
    }

    fn report(&self) -> AccountingReport {
        self.maybe_panic(2);
        self.inner.report()
    }
}

/// A session whose accounting panics at random in any of its calls: no panic reaches the
/// caller, every request admitted is counted in flight until it ends, the stop runs its
/// course, and after the client goes nothing is in flight and no guard is out (what a
/// panicking call had taken was dropped by the unwinding). 300 seeds of 40 steps.
#[test]
fn a_session_whose_accounting_panics_anywhere_keeps_its_books() {
    use reqguard::http::{Guarded, Limits, Router, Routes, Session};

    quiet::quiet_panics();
    let routes = Routes::new();
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let inputs: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /delay?ms=20 HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /delay?ms=70 HTTP/1.1\r\nhost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc",
        b"GET /nowhere HTTP/1.1\r\nhost: x\r\n\r\n",
    ];
    let (mut panics, mut admitted) = (0, 0);
    for seed in 1..=300u32 {
        let accounting = Flaky {
            inner: Guarded::embedded("server", Config::default()),
            seed: Cell::new(seed.wrapping_mul(0x9e37_79b9)),
        };
        let limits = Limits::default().with_drain_timeout(Duration::from_millis(50));
        let mut session = Session::new(&router, accounting, limits);
        let mut step = seed;
        for _ in 0..40 {
            step = step.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let ran = std::panic::catch_unwind(AssertUnwindSafe(|| match (step >> 16) % 8 {
                0..=3 => session.feed(inputs[(step >> 8) as usize % inputs.len()]),
                4 => session.advance(Duration::from_millis(10)),
                5 => session.clear_output(),
                6 if (step >> 20) % 4 == 0 => session.stop(),
                _ => session.advance(Duration::from_millis(30)),
            }));
            assert!(ran.is_ok(), "seed {seed}: a panic reached the caller");
        }
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| session.disconnect()));
        assert!(ran.is_ok(), "seed {seed}: disconnect panicked");
        assert_eq!(session.dispatcher().in_flight(), 0, "seed {seed}");
        let ledger = session.dispatcher().accounting().inner.core().ledger();
        assert!(ledger.is_quiescent(), "seed {seed}: {}", ledger.report());
        let outcomes = ledger.outcomes();
        assert_eq!(
            outcomes.total(),
            ledger.minted(reqguard::GuardKind::Ticket),
            "seed {seed}: one outcome per admitted request"
        );
        panics += session.stats().panics;
        admitted += outcomes.total();
    }
    // The panics and the requests were there to catch.
    assert!(
        panics > 300 && admitted > 500,
        "{panics} panics, {admitted} admitted"
    );
}

#[cfg(feature = "hyper")]
mod hyper_embed {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use reqguard::engines::{Embedded, Handle, Heap};
    use reqguard::tokio_hyper::{Bundle, Handler, HandlerError, HyperServer, Reply};
    use reqguard::{AbortReason, Config, ServerCore};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::one_request::serve_one;

    /// A waker of the test's own: counts its wakes; its `Arc`'s strong count says how many
    /// clones of it are held anywhere.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// How many listeners `Bundle::aborted` futures that were polled once and dropped leave
    /// behind: a handler watching its signal in a loop (`select!` on `bundle.aborted()` and its
    /// next chunk, a new future each turn) makes one per turn. Measured by the test's own
    /// waker: each listener left holds a clone of it (and would hold the connection's task).
    async fn aborted_in_a_loop(
        _this: Handle<&'static str>,
        _request: Request<Incoming>,
        bundle: Bundle,
    ) -> Result<Reply<Full<Bytes>>, HandlerError> {
        let counting = Arc::new(Counting::default());
        let waker = Waker::from(Arc::clone(&counting));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1_000 {
            let mut aborted = std::pin::pin!(bundle.aborted());
            assert!(aborted.as_mut().poll(&mut cx).is_pending());
        }
        let left = Arc::strong_count(&counting) - 2; // this test's two handles
                                                     // The one kept still hears the abort, once.
        let mut kept = Box::pin(bundle.aborted());
        assert!(kept.as_mut().poll(&mut cx).is_pending());
        bundle.signal().abort(AbortReason::HandlerFailed);
        let woken = counting.0.load(Ordering::SeqCst);
        let ready = kept.as_mut().poll(&mut cx);
        let body = format!("left {left} woken {woken} ready {ready:?}");
        Ok(bundle.respond(Response::new(Full::new(Bytes::from(body)))))
    }

    /// A handler future of the embedder's own type (not an `async` block) whose `Drop` panics
    /// (what it still holds: the engine's state for the request). It answers when first polled
    /// if `answers`, else never (it keeps the bundle until it is dropped).
    struct PanicsOnDropFuture {
        bundle: Option<Bundle>,
        answers: bool,
    }

    impl Future for PanicsOnDropFuture {
        type Output = Result<Reply<Full<Bytes>>, HandlerError>;

        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            if !self.answers {
                return std::task::Poll::Pending;
            }
            let bundle = self.bundle.take().expect("polled once");
            let body = Full::new(Bytes::from_static(b"computed"));
            std::task::Poll::Ready(Ok(bundle.respond(Response::new(body))))
        }
    }

    impl Drop for PanicsOnDropFuture {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("a handler future's drop panics");
            }
        }
    }

    /// A handler's future that answered and then panics when the adapter drops it: the
    /// answer it computed is still sent (G9) and the panic counted; the request completes.
    /// Before, the future was dropped uncaught as the answer was handed to hyper: the panic
    /// unwound through hyper, the connection's task died with the answer unsent, and nothing
    /// counted it.
    #[test]
    fn a_handler_future_whose_drop_panics_after_answering_still_answers() {
        super::quiet::quiet_panics();
        let (answer, report) = serve_one(|_this, _request, bundle| PanicsOnDropFuture {
            bundle: Some(bundle),
            answers: true,
        });
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("computed"),
            "{answer:?}"
        );
        assert_eq!(report.stats.panics, 1);
        assert_eq!((report.outcomes.completed, report.leaked), (1, 0));
    }

    /// A response body of the embedder's own type (a stream from the engine) whose `Drop`
    /// panics: hyper drops it once its last frame is polled.
    struct PanicsOnDropBody(Full<Bytes>);

    impl hyper::body::Body for PanicsOnDropBody {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            std::pin::Pin::new(&mut self.0).poll_frame(cx)
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_end_stream()
        }

        fn size_hint(&self) -> hyper::body::SizeHint {
            self.0.size_hint()
        }
    }

    impl Drop for PanicsOnDropBody {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("a response body's drop panics");
            }
        }
    }

    async fn answers_with_a_body_that_panics_on_drop(
        _this: Handle<&'static str>,
        _request: Request<Incoming>,
        bundle: Bundle,
    ) -> Result<Reply<PanicsOnDropBody>, HandlerError> {
        let body = PanicsOnDropBody(Full::new(Bytes::from_static(b"computed")));
        Ok(bundle.respond(Response::new(body)))
    }

    /// A response body whose `Drop` panics when hyper lets it go after its last frame: the
    /// answer is written all the same and the request completes. Before, the panic unwound
    /// through hyper before it had flushed the frame: the connection's task died and the
    /// client got nothing.
    #[test]
    fn a_response_body_whose_drop_panics_still_delivers_the_answer() {
        super::quiet::quiet_panics();
        let (answer, report) = serve_one(answers_with_a_body_that_panics_on_drop);
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("computed"),
            "{answer:?}"
        );
        assert_eq!((report.outcomes.completed, report.leaked), (1, 0));
    }

    /// The client of a request whose handler never answers goes away; the handler's future
    /// (the embedder's type) panics when hyper drops it: the panic is caught and counted like
    /// every other panic of the embedder's code, and the request ends *client gone*, once.
    /// Before, it unwound through hyper and killed the connection's task, uncounted.
    #[test]
    fn a_handler_future_whose_drop_panics_when_the_client_goes_is_caught_and_counted() {
        super::quiet::quiet_panics();
        let report = crate::local_set::block_on(async {
            let heap = Heap::new();
            let core = ServerCore::embedded(heap.alloc("server"), Config::default());
            let server = HyperServer::new(core, |_this, _request, bundle| PanicsOnDropFuture {
                bundle: Some(bundle),
                answers: false,
            });
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream
                    .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
                drop(stream); // the client goes away
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let serve = server.serve(listener, stop);
            tokio::time::timeout(Duration::from_secs(20), serve)
                .await
                .expect("the server stopped")
        });
        assert_eq!(report.outcomes.client_gone, 1, "{report}");
        assert_eq!(report.stats.panics, 1, "{report}");
        assert_eq!(report.leaked, 0);
    }

    /// A body of `chunks` frames, each after one `Pending` (a stream from the engine); it
    /// fails after its first frame if `fails`.
    struct Chunks {
        left: u32,
        pending: bool,
        fails: bool,
    }

    impl hyper::body::Body for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return std::task::Poll::Ready(None);
            }
            if !std::mem::replace(&mut self.pending, true) {
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            self.pending = false;
            if self.fails && self.left < 3 {
                return std::task::Poll::Ready(Some(Err(std::io::Error::other(
                    "the stream fails",
                ))));
            }
            self.left -= 1;
            let frame = hyper::body::Frame::data(Bytes::from_static(b"chunk "));
            std::task::Poll::Ready(Some(Ok(frame)))
        }
    }

    type Fired = std::rc::Rc<std::cell::RefCell<Vec<(u32, AbortReason)>>>;

    /// Answers by its path: `/ok`, `/stream`, `/bodyerr` (a stream that fails), `/err`
    /// (handler error), `/panic`, `/slow` (30 ms, or until aborted), `/hold` (until the drain
    /// deadline aborts it); records its request id
    /// (`x-id`) when called and each abort of its signal.
    fn by_path(
        admitted: std::rc::Rc<std::cell::RefCell<Vec<u32>>>,
        fired: Fired,
    ) -> impl Handler<Embedded<&'static str>, Body = http_body_util::Either<Full<Bytes>, Chunks>>
    {
        use http_body_util::Either;
        move |_this, request: Request<Incoming>, bundle: Bundle| {
            let id: u32 = request.headers()["x-id"].to_str().unwrap().parse().unwrap();
            admitted.borrow_mut().push(id);
            let log = std::rc::Rc::clone(&fired);
            bundle
                .signal()
                .on_abort(move |reason| log.borrow_mut().push((id, reason)));
            let path = request.uri().path().to_owned();
            async move {
                let body = match path.as_str() {
                    "/ok" => Either::Left(Full::new(Bytes::from_static(b"ok"))),
                    "/stream" | "/bodyerr" => Either::Right(Chunks {
                        left: 3,
                        pending: false,
                        fails: path == "/bodyerr",
                    }),
                    "/err" => return Err("the handler fails".into()),
                    "/panic" => panic!("the handler panics"),
                    "/hold" => {
                        // Until the stop's deadline aborts it; then it answers (too late).
                        bundle.aborted().await;
                        Either::Left(Full::new(Bytes::from_static(b"late")))
                    }
                    _ => {
                        let sleep = tokio::time::sleep(Duration::from_millis(30));
                        tokio::select! {
                            _ = bundle.aborted() => {}
                            () = sleep => {}
                        }
                        Either::Left(Full::new(Bytes::from_static(b"slow")))
                    }
                };
                Ok(bundle.respond(Response::new(body)))
            }
        }
    }

    /// Requests of every kind above, each on its own connection, whose client reads its whole
    /// answer, closes at once, or closes after the first bytes: every admitted request has one
    /// outcome; its signal fires once unless it completed, and never if it did; whatever the
    /// client read whole completed; nothing leaks.
    #[test]
    fn every_ending_path_has_one_outcome_and_its_signal_fires_once_unless_completed() {
        super::quiet::quiet_panics();
        const KINDS: [&str; 6] = ["/ok", "/stream", "/bodyerr", "/err", "/panic", "/slow"];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let admitted = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let fired: Fired = Fired::default();
        let whole = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let report = local.block_on(&runtime, async {
            let heap = Heap::new();
            let core = ServerCore::embedded(heap.alloc("server"), Config::default());
            let handler = by_path(std::rc::Rc::clone(&admitted), std::rc::Rc::clone(&fired));
            let options = reqguard::tokio_hyper::Options::default()
                .with_drain_timeout(Duration::from_millis(50))
                .with_force_after(Duration::from_millis(50));
            let server = HyperServer::new(core, handler).options(options);
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let counted = std::rc::Rc::clone(&whole);
            let stop = async move {
                let mut seed = 0x9e37_79b9_u32;
                for id in 0..180u32 {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let path = KINDS[(seed % 6) as usize];
                    let action = (seed >> 8) % 3;
                    if id % 12 == 5 {
                        // Held past the stop: a client of its own, reading what comes.
                        tokio::task::spawn_local(async move {
                            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                            let request =
                                format!("GET /hold HTTP/1.1\r\nhost: x\r\nx-id: {id}\r\n\r\n");
                            stream.write_all(request.as_bytes()).await.unwrap();
                            let mut answer = Vec::new();
                            let read = stream.read_to_end(&mut answer);
                            let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
                        });
                        continue;
                    }
                    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                    let request = format!(
                        "GET {path} HTTP/1.1\r\nhost: x\r\nx-id: {id}\r\nconnection: close\r\n\r\n"
                    );
                    stream.write_all(request.as_bytes()).await.unwrap();
                    match action {
                        0 => {
                            let mut answer = Vec::new();
                            let read = stream.read_to_end(&mut answer);
                            let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
                            let text = String::from_utf8_lossy(&answer);
                            let complete = text.starts_with("HTTP/1.1 200")
                                && (text.ends_with("ok")
                                    || text.ends_with("slow")
                                    || text.ends_with("chunk chunk chunk \r\n0\r\n\r\n"));
                            if complete {
                                counted.set(counted.get() + 1);
                            }
                        }
                        1 => drop(stream),
                        _ => {
                            let mut first = [0u8; 1];
                            let _ = stream.read(&mut first).await;
                            drop(stream);
                        }
                    }
                    tokio::task::yield_now().await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let serve = server.serve(listener, stop);
            tokio::time::timeout(Duration::from_secs(60), serve)
                .await
                .expect("the server stopped")
        });
        let admitted = admitted.borrow();
        let fired = fired.borrow();
        let o = report.outcomes;
        assert_eq!(o.total(), admitted.len() as u64, "{report}");
        let mut fires = std::collections::HashMap::<u32, usize>::new();
        for (id, _) in fired.iter() {
            *fires.entry(*id).or_default() += 1;
        }
        assert!(
            fires.values().all(|&n| n == 1),
            "a signal fired twice: {fired:?}"
        );
        assert_eq!(
            fires.len() as u64,
            o.total() - o.completed,
            "every request but the completed fires once: {report}"
        );
        assert!(
            o.completed >= whole.get(),
            "read whole {}: {report}",
            whole.get()
        );
        // The paths were all taken.
        assert!(
            o.completed > 0 && o.client_gone > 0 && o.dropped > 0,
            "{report}"
        );
        assert!(o.deadline_aborted > 0, "{report}");
        assert_eq!(report.leaked, 0, "{report}");
    }

    async fn hello(
        _this: Handle<&'static str>,
        _request: Request<Incoming>,
        bundle: Bundle,
    ) -> Result<Reply<Full<Bytes>>, HandlerError> {
        Ok(bundle.respond(Response::new(Full::new(Bytes::from_static(b"hello")))))
    }

    /// Two hyper servers on one `LocalSet` (one thread), their wrappers on one heap, each
    /// collecting it at its stop (`OnStop`): the first one's stop finalizes its own wrapper
    /// only; the second serves on (`200`) until its own stop, and each report counts its own.
    #[test]
    fn two_hyper_servers_on_one_thread_and_one_heap_stop_apart() {
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
        let (a, b) = local.block_on(&runtime, async {
            let config = Config::default().with_downgrade(reqguard::DowngradePolicy::OnStop);
            let server = |name: &'static str| {
                let core = ServerCore::embedded(heap.alloc(name), config);
                let weak = core.wrapper().weak().clone();
                let collect = heap.clone();
                let server = HyperServer::new(core, hello).after_stop(move || {
                    collect.collect();
                });
                (server, weak)
            };
            let ((server_a, weak_a), (server_b, weak_b)) = (server("a"), server("b"));
            let listener_a = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let listener_b = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (addr_a, addr_b) = (
                listener_a.local_addr().unwrap(),
                listener_b.local_addr().unwrap(),
            );
            let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
            let (stop_b, stopped_b) = tokio::sync::oneshot::channel::<()>();
            tokio::task::spawn_local(async move {
                assert!(get(addr_a).await.starts_with("HTTP/1.1 200"));
                assert!(get(addr_b).await.starts_with("HTTP/1.1 200"));
                stop_a.send(()).unwrap();
                // a's stop collected the heap: a's wrapper only.
                while !weak_a.is_finalized() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                assert!(!weak_b.is_finalized(), "a's stop finalized b's wrapper");
                assert!(get(addr_b).await.starts_with("HTTP/1.1 200"));
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
        assert_eq!((a.outcomes.completed, a.leaked), (1, 0), "{a}");
        assert_eq!((b.outcomes.completed, b.leaked), (2, 0), "{b}");
        assert_eq!(heap.live_objects(), 0);
    }

    /// A `Bundle::aborted` future dropped before the abort takes its listener (and the waker
    /// it holds) with it, as tokio-util's `cancelled()` does: a handler that makes one per turn
    /// of a loop holds nothing more after a thousand turns. Before, each one polled left a
    /// listener on the signal until the request ended: memory (and a clone of the task's
    /// waker) growing with the turns of a long request's loop (G9).
    #[test]
    fn aborted_futures_dropped_in_a_loop_leave_no_listener_behind() {
        let (answer, report) = serve_one(aborted_in_a_loop);
        assert!(
            answer.ends_with("left 0 woken 1 ready Ready(HandlerFailed)"),
            "{answer}"
        );
        assert_eq!(report.leaked, 0);
    }
}
