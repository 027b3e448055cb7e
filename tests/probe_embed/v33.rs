//! QA probes, round 33, of the public API as a hostile embedder (a JS runtime author) uses it.
//! Public API only. Each module's doc says whether it found a bug (and how it failed on `main`
//! before its fix) or pins a documented behaviour.

/// QA embed33-1 (G8, G9; found and fixed round 33). hyper adapter: `Bundle::aborted()`'s future
/// read the signal, then cloned the task's waker (the executor's code: a `RawWaker`'s `clone`)
/// to register its listener. A clone that aborted the signal (an executor whose waker holds
/// the request's signal and aborts it when the task is scheduled away, as a runtime's
/// cancellation does) came between the two: on a first poll the listener was refused (the
/// signal had fired) and the future returned `Pending` with nothing registered, on a later
/// poll the listener woke the waker it was replacing; either way the task that polled it was
/// never woken for an abort that had happened (on main 8232323: `Pending`, the signal aborted,
/// 0 wakes, both tests). The drain's own future had the same hole closed in round 19 (QA
/// embed19b-2). Now the waker is cloned first and the signal read after.
#[cfg(feature = "hyper")]
mod aborted_with_a_waker_whose_clone_aborts {
    use std::cell::{Cell, RefCell};
    use std::future::Future;
    use std::io::{Read, Write};
    use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

    use bytes::Bytes;
    use http_body_util::Full;
    use reqguard::engines::Heap;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Reply};
    use reqguard::{AbortReason, AbortSignal, Config, ServerCore};

    thread_local! {
        /// The signal the waker's clone aborts.
        static SIGNAL: RefCell<Option<AbortSignal>> = const { RefCell::new(None) };
        static WAKES: Cell<u32> = const { Cell::new(0) };
        /// What the handler saw: the poll's result, whether the signal fired, the wakes.
        static SEEN: RefCell<Option<(Poll<AbortReason>, bool, u32)>> = const { RefCell::new(None) };
    }

    fn clone_aborting(_: *const ()) -> RawWaker {
        SIGNAL.with(|signal| {
            if let Some(signal) = signal.borrow().as_ref() {
                signal.abort(AbortReason::ClientDisconnected);
            }
        });
        RawWaker::new(std::ptr::null(), &VTABLE)
    }

    fn wake(_: *const ()) {
        WAKES.with(|wakes| wakes.set(wakes.get() + 1));
    }

    fn nothing(_: *const ()) {}

    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_aborting, wake, wake, nothing);

    /// Polls the request's `aborted()` with the aborting waker (after one poll with a waker that
    /// does nothing, if `second`), and notes what came of it.
    async fn handler(bundle: Bundle, second: bool) -> Result<Reply<Full<Bytes>>, HandlerError> {
        WAKES.with(|wakes| wakes.set(0));
        let mut aborted = Box::pin(bundle.aborted());
        if second {
            let mut idle = Context::from_waker(Waker::noop());
            assert!(aborted.as_mut().poll(&mut idle).is_pending());
        }
        SIGNAL.with(|signal| *signal.borrow_mut() = Some(bundle.signal().clone()));
        #[allow(unsafe_code)]
        // SAFETY: the vtable's functions touch no data (the pointer is null and never read).
        let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) };
        let polled = aborted.as_mut().poll(&mut Context::from_waker(&waker));
        let seen = (polled, bundle.signal().is_aborted(), WAKES.with(Cell::get));
        SEEN.with(|slot| *slot.borrow_mut() = Some(seen));
        SIGNAL.with(|signal| signal.borrow_mut().take());
        drop(aborted);
        let body = Full::new(Bytes::from_static(b"done"));
        Ok(bundle.respond(hyper::Response::new(body)))
    }

    /// Serves one request with [`handler`], then stops: what the handler saw.
    fn poll_in_a_handler(second: bool) -> (Poll<AbortReason>, bool, u32) {
        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let server = HyperServer::new(core, move |_, _, bundle| handler(bundle, second));
        crate::local_set::block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (done, answered) = tokio::sync::oneshot::channel::<()>();
            let client = std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream
                    .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    .unwrap();
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
                let _ = done.send(());
            });
            // Stops once the client has its answer (or its connection closed).
            let report = server
                .serve(listener, async move {
                    let _ = answered.await;
                })
                .await;
            client.join().unwrap();
            assert_eq!(report.leaked, 0);
        });
        SEEN.with(|slot| slot.borrow_mut().take())
            .expect("the handler ran")
    }

    /// The abort a poll's waker clone makes is seen by that poll, or wakes the waker it was
    /// polled with.
    fn assert_not_lost((polled, fired, wakes): (Poll<AbortReason>, bool, u32)) {
        assert!(fired, "the clone aborted the signal");
        assert!(
            polled == Poll::Ready(AbortReason::ClientDisconnected) || wakes > 0,
            "an abort lost: the poll returned {polled:?} and its waker was woken {wakes} times"
        );
    }

    #[test]
    fn on_the_first_poll() {
        assert_not_lost(poll_in_a_handler(false));
    }

    #[test]
    fn on_a_later_poll_with_another_waker() {
        assert_not_lost(poll_in_a_handler(true));
    }
}

/// QA embed33-2 (G8, documented, not fixed; found round 33). `admitted_counted()` ("admitted
/// requests as the exit JSON counts them, each once") was documented equal to
/// `outcomes.total()` but for admissions that panicked. A request the embedder admits itself
/// through the server's core (`Guarded::core`, `HyperServer::core`: a runtime's
/// `server.fetch()`, as `v32` does) has its outcome in the core's ledger, which the reports'
/// `outcomes` are, but no connection had it: the mio server counts it in none of `served`,
/// `undelivered`, `aborted`; the hyper adapter, whose `aborted` is made from the outcomes,
/// counts it in `aborted` when it ended otherwise than *completed*. The same two requests (one
/// completed, one ended *client gone*) make `"aborted":0` on mio, `"aborted":1` on hyper. Said
/// now in `ServerReport::admitted_counted`, `Stats::aborted`, `HyperReport::aborted` and
/// `admitted_counted`, design.md's G8 row; pinned here so a change shows.
#[cfg(all(feature = "server", feature = "hyper"))]
mod requests_admitted_out_of_every_connection {
    use std::time::{Duration, Instant};

    use reqguard::engines::Heap;
    use reqguard::http::{demo_routes, Guarded, Limits, Router, Routes, Server};
    use reqguard::{Config, Outcome, ServerCore};

    #[test]
    fn are_in_the_outcomes_and_in_hypers_aborted_only() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let limits = Limits::default().with_drain_timeout(Duration::from_millis(50));
        let accounting = Guarded::embedded("server", Config::default());
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, &router, accounting, limits).expect("bound");
        let live = server.dispatcher().accounting().core().upgrade().unwrap();
        live.admit(|_| Ok(())).unwrap().complete();
        live.admit(|_| Ok(())).unwrap().end(Outcome::ClientGone);
        drop(live);
        server.stop(Instant::now());
        let mio = server.run().expect("served");
        assert_eq!(mio.outcomes.total(), 2);
        assert_eq!(mio.admitted_counted(), 0, "mio counts neither");
        assert!(mio
            .to_json()
            .starts_with("{\"served\":0,\"refused\":0,\"aborted\":0,"));

        let heap = Heap::new();
        let core = ServerCore::embedded(heap.alloc("server"), Config::default());
        let server =
            reqguard::tokio_hyper::HyperServer::new(core, reqguard::tokio_hyper::demo_routes());
        let live = server.core().upgrade().unwrap();
        live.admit(|_| Ok(())).unwrap().complete();
        live.admit(|_| Ok(())).unwrap().end(Outcome::ClientGone);
        drop(live);
        let hyper = crate::local_set::block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            Box::new(server.serve(listener, std::future::ready(())).await)
        });
        assert_eq!(hyper.outcomes.total(), 2);
        assert_eq!(
            hyper.aborted(),
            1,
            "hyper counts the one that did not complete"
        );
        assert_eq!(hyper.admitted_counted(), 1);
        assert!(hyper
            .to_json()
            .starts_with("{\"served\":0,\"refused\":0,\"aborted\":1,"));
    }
}

/// QA embed33-3 (G9; found and fixed round 33). The servers' own hooks (`Guarded::after_stop`
/// and `after_drain` on mio and in a `Session`, `HyperServer::after_stop` and `after_drain`)
/// run each of the embedder's hooks caught, so one that panics keeps no other from running; but
/// such a panic was counted nowhere: not in `Stats::panics` / `HyperStats::panics` (which say
/// the core counts drain hooks), and not in the core's `DrainReport::panicked_hooks`, though
/// both stacks' `after_drain` docs said a hook left to the drain (a request out of every
/// connection at the server's end, QA embed32-1) that panics is "caught and counted in
/// `DrainReport::panicked_hooks`". On main 8232323 every count below is 0. Now each server
/// hook that panics is counted there, in the core's drain, whenever it runs.
mod server_hooks_that_panic_are_counted {
    use std::time::Duration;

    use reqguard::{Config, Drain};

    use crate::quiet::quiet_panics;

    #[cfg(feature = "server")]
    fn session_drain(fetch_out: bool) -> Drain {
        use reqguard::http::{demo_routes, Guarded, Limits, Router, Routes, Session};
        quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let accounting = Guarded::embedded("server", Config::default())
            .after_stop(|| panic!("an after_stop hook panics"))
            .after_drain(|| panic!("an after_drain hook panics"));
        let limits = Limits::default().with_drain_timeout(Duration::from_millis(100));
        let mut session = Session::new(&router, accounting, limits);
        let core = session.dispatcher().accounting().core();
        // `server.fetch()`: out of every connection, still out at the deadline.
        let fetch = fetch_out.then(|| core.upgrade().unwrap().admit(|_| Ok(())).unwrap());
        session.stop();
        let drain = session.dispatcher().accounting().core().drain().unwrap();
        session.advance(Duration::from_millis(200));
        drop(session);
        // With the fetch out, the after_drain hook waits for it (left to the drain).
        let before = if fetch_out { 1 } else { 2 };
        assert_eq!(
            drain.report().panicked_hooks,
            before,
            "fetch out: {fetch_out}"
        );
        drop(fetch);
        assert!(drain.is_complete());
        drain
    }

    #[cfg(feature = "server")]
    #[test]
    fn in_a_session() {
        assert_eq!(session_drain(false).report().panicked_hooks, 2);
    }

    #[cfg(feature = "server")]
    #[test]
    fn in_a_session_when_left_to_the_drain() {
        assert_eq!(session_drain(true).report().panicked_hooks, 2);
    }

    #[cfg(feature = "hyper")]
    #[test]
    fn on_a_hyper_server_also_when_left_to_the_drain() {
        use reqguard::engines::Heap;
        use reqguard::tokio_hyper::{demo_routes, HyperServer, Options};
        use reqguard::ServerCore;
        quiet_panics();
        for fetch_out in [false, true] {
            let heap = Heap::new();
            let core = ServerCore::embedded(heap.alloc("server"), Config::default());
            let options = Options::default()
                .with_drain_timeout(Duration::from_millis(50))
                .with_force_after(Duration::from_millis(10));
            let server = HyperServer::new(core, demo_routes())
                .options(options)
                .after_stop(|| panic!("an after_stop hook panics"))
                .after_drain(|| panic!("an after_drain hook panics"));
            let fetch =
                fetch_out.then(|| server.core().upgrade().unwrap().admit(|_| Ok(())).unwrap());
            // The embedder's handle on the drain: a stop before the server serves closes
            // admission only (QA embed18-6); the server's own stop comes at once.
            let drain = server.core().stop();
            let report = crate::local_set::block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                Box::new(server.serve(listener, std::future::ready(())).await)
            });
            assert_eq!(report.stats.panics, 0, "not the handlers'");
            let before = if fetch_out { 1 } else { 2 };
            assert_eq!(
                drain.report().panicked_hooks,
                before,
                "fetch out: {fetch_out}"
            );
            drop(fetch);
            assert!(drain.is_complete());
            assert_eq!(drain.report().panicked_hooks, 2, "fetch out: {fetch_out}");
        }
    }
}

/// QA embed33-4 (G9; found and fixed round 33). mio: the loop's response buffer (where every
/// handler writes its body) is given back to 16 KiB once no answer needed more than 64 KiB for
/// a second (`Stats::response_buffer`: "at most 64 KiB kept, more only if an answer needed it
/// within the last second or two"; round 32). The loop heard of a large buffer only from an
/// answer that went out large (a body lent or copied past the lend size, a queued or deferred
/// answer): a handler that wrote a large body and then panicked (its answer the `500`), or
/// took it back (`Response::body_mut().clear()`, an error answer instead), left the buffer as
/// large for the rest of the run (on main 8232323: `response_buffer_shrinks` 0, 512 KiB held at
/// the end, both routes). Now the loop also looks at the end of a turn in which no answer
/// noted the buffer: over its keep with no timer set, it sets the timer.
#[cfg(feature = "server")]
mod response_buffer_after_a_large_body_not_sent {
    use std::time::Duration;

    use reqguard::http::{Guarded, Limits, Reply, Request, Response, Router, ServerBuilder};
    use reqguard::Config;

    use crate::quiet::quiet_panics;
    use crate::util::strict::StrictClient;

    const LARGE: usize = 512 * 1024;

    fn routes(router: &mut Router<'_>) {
        router.route(
            "GET",
            "/panics",
            |_: &Request<'_>, res: &mut Response<'_>| -> Reply {
                res.write(&[b'x'; LARGE]);
                panic!("a handler that wrote a large body panics");
            },
        );
        router.route(
            "GET",
            "/takes-it-back",
            |_: &Request<'_>, res: &mut Response<'_>| {
                res.write(&[b'x'; LARGE]);
                res.body_mut().clear();
                res.write(b"changed its mind");
                Reply::Now
            },
        );
        router.route(
            "GET",
            "/small",
            |_: &Request<'_>, res: &mut Response<'_>| {
                res.write(b"small");
                Reply::Now
            },
        );
    }

    /// As `report_v32::the_response_buffer_is_given_back_after_one_large_answer`: the wait is an
    /// event, the idle close (1.5 s after the last answer) coming after the buffer's timer (set
    /// at the end of the large body's turn, fired 1 s later: no answer needed the buffer
    /// meanwhile), and the loop fires its timers in order.
    #[test]
    fn is_given_back() {
        quiet_panics();
        for (path, status) in [("/panics", 500), ("/takes-it-back", 200)] {
            let limits = Limits::default().with_idle_timeout(Duration::from_millis(1500));
            let running = ServerBuilder::new()
                .limits(limits)
                .spawn(|| Guarded::embedded("server", Config::default()), routes)
                .expect("spawn");
            let mut client = StrictClient::connect(running.addr());
            client.send(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes());
            assert_eq!(client.answer("GET").status, status, "{path}");
            client.send(b"GET /small HTTP/1.1\r\nhost: x\r\n\r\n");
            assert_eq!(client.answer("GET").status, 200, "{path}");
            // The idle timeout closes it, after the buffer's timer has fired.
            client.expect_nothing_more(true, Duration::ZERO);
            let report = running.stop().expect("the report");
            assert_eq!(report.stats.response_buffer_shrinks, 1, "{path}: {report}");
            assert!(
                report.stats.response_buffer <= 16 * 1024,
                "{path}: {} bytes held",
                report.stats.response_buffer
            );
        }
    }
}
