//! QA probes, round 24, of the public API as a hostile or careless embedder uses it: a hyper
//! handler that aborts its own request's signal after that request ended (its bundle written
//! whole as another request's answer) and then answers.
//! Public API only. Each test that found a bug failed on `main` before its fix (the test's doc
//! says so); the others pin a documented behaviour no other test pinned.
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::time::Duration;

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(20);

mod hyper_after_end {
    use super::*;
    use crate::lending::{abc, hang, one_client_gone, Lent};
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Reply};
    use reqguard::{AbortReason, AbortSignal};
    use std::cell::RefCell;
    use std::io::Read;
    use std::rc::Rc;
    use std::sync::mpsc;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
    use util::hyper_thread::{counted_once, send, HyperThread};
    use util::{hang_up, Gone};

    /// How `/lend` answers once it has aborted its own signal.
    #[derive(Clone, Copy, PartialEq)]
    enum Then {
        /// `Err`: the adapter's `500`.
        Fail,
        /// With the bundle of the request parked on `/park` (`ok`).
        Other,
    }

    /// The server of these probes: `/lend` keeps a handle to its signal, gives its bundle
    /// away (told on `lent`), waits for the test's word (a reason, sent on what it gives on
    /// `go`), aborts its own signal with it (whether it fired, on `fired`), then answers as
    /// `then` says; `/swap` drops its own bundle and answers with the lent one, whole (`abc`);
    /// `/park` gives its bundle to `/lend` and waits; `/hang` keeps its bundle and waits (its
    /// future's drop told on `gone`).
    fn aborting_server(
        then: Then,
        lent_tx: mpsc::Sender<()>,
        go_tx: mpsc::Sender<UnboundedSender<AbortReason>>,
        fired_tx: mpsc::Sender<bool>,
        gone_tx: mpsc::Sender<()>,
    ) -> HyperThread {
        HyperThread::spawn(move |core| {
            let lent = Lent::default();
            let parked: Rc<RefCell<Option<Bundle>>> = Rc::default();
            let handler = move |_this, request: hyper::Request<Incoming>, bundle: Bundle| {
                let (lent, parked) = (lent.clone(), Rc::clone(&parked));
                let (lent_tx, go_tx) = (lent_tx.clone(), go_tx.clone());
                let (fired_tx, gone_tx) = (fired_tx.clone(), gone_tx.clone());
                let path = request.uri().path().to_owned();
                async move {
                    match path.as_str() {
                        "/lend" => {
                            let signal: AbortSignal = bundle.signal().clone();
                            let (tx, mut go) = unbounded_channel();
                            go_tx.send(tx).unwrap();
                            lent.lend(bundle);
                            lent_tx.send(()).unwrap();
                            let reason = go.recv().await.expect("the test's word");
                            fired_tx.send(signal.abort(reason)).unwrap();
                            match then {
                                Then::Fail => Err::<Reply<Full<Bytes>>, HandlerError>(
                                    "my own 500, after my own abort".into(),
                                ),
                                Then::Other => {
                                    let other = parked.borrow_mut().take().expect("parked");
                                    Ok(other.respond(hyper::Response::new(Full::new(
                                        Bytes::from_static(b"ok"),
                                    ))))
                                }
                            }
                        }
                        "/park" => {
                            let _gone = Gone(gone_tx);
                            *parked.borrow_mut() = Some(bundle);
                            lent_tx.send(()).unwrap();
                            std::future::pending::<()>().await;
                            unreachable!()
                        }
                        "/hang" => hang(bundle, gone_tx, Some(&lent_tx)).await,
                        _ => Ok(lent.swap(bundle, abc)),
                    }
                }
            };
            HyperServer::new(core, handler)
        })
    }

    /// X (`/lend`) lends its bundle, Y (`/swap`) answers with it whole (X ends *completed*),
    /// X's handler aborts X's signal with `reason` and answers (`then`); X's answer is read
    /// whole. Returns the report, after `before` ran first on the server (its address, the
    /// `lent` and `gone` receivers).
    fn answered_after_its_own_abort(
        then: Then,
        reason: AbortReason,
        before: impl FnOnce(std::net::SocketAddr, &mpsc::Receiver<()>, &mpsc::Receiver<()>),
    ) -> (String, reqguard::tokio_hyper::HyperReport) {
        let (lent_tx, lent_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel();
        let (fired_tx, fired_rx) = mpsc::channel();
        let (gone_tx, gone_rx) = mpsc::channel();
        let server = aborting_server(then, lent_tx, go_tx, fired_tx, gone_tx);
        before(server.addr, &lent_rx, &gone_rx);
        let parked = (then == Then::Other).then(|| {
            let parked = send(server.addr, "/park");
            lent_rx.recv_timeout(HANG).unwrap();
            parked
        });
        let mut x = send(server.addr, "/lend");
        let go = go_rx.recv_timeout(HANG).unwrap();
        lent_rx.recv_timeout(HANG).unwrap();
        let swapped = util::get(server.addr, "/swap");
        assert_eq!((swapped.status, swapped.text()), (200, "abc"));
        go.send(reason).unwrap();
        // A signal is not a guard: a handle kept past its request's end still fires.
        assert!(
            fired_rx.recv_timeout(HANG).unwrap(),
            "the kept handle's abort"
        );
        let x_answer = util::answer_text(&mut x);
        x.shutdown(std::net::Shutdown::Both).unwrap();
        let _ = x.read_to_end(&mut Vec::new());
        if let Some(parked) = parked {
            hang_up(parked);
            gone_rx.recv_timeout(HANG).expect("/park's future dropped");
        }
        let report = server.stop_within(HANG);
        (x_answer, report)
    }

    /// QA embed24-1 (G8; docs/hyper.md "Not closed (qa-embed23)"). hyper adapter: X's bundle
    /// is written whole as Y's answer (X ends *completed*); X's handler, holding a handle to
    /// its signal, aborts it with `ClientDisconnected` (a runtime that reports its own
    /// client's going) and answers `500` (`Err`), which X's client reads whole. The adapter
    /// took that answer for one whose client had gone: counted in none of `served`,
    /// `rejected` and `aborted`. Now an answer not holding its own bundle reads its request's
    /// reason as the dispatch's drop does (an abort after the request's end is no abort of
    /// it): `served`. Before the fix: served 1 for 2 admitted.
    #[test]
    fn a_completed_requests_500_after_its_own_client_gone_abort_is_served() {
        let (x_answer, report) =
            answered_after_its_own_abort(Then::Fail, AbortReason::ClientDisconnected, |_, _, _| {});
        assert!(x_answer.starts_with("HTTP/1.1 500"), "{x_answer:?}");
        let outcomes = &report.outcomes;
        assert_eq!(
            (outcomes.total(), outcomes.completed, outcomes.dropped),
            (2, 1, 1),
            "{report}"
        );
        assert_eq!(
            (report.stats.served, report.stats.failed, report.aborted()),
            (2, 1, 0),
            "{report}"
        );
        counted_once(&report);
    }

    /// QA embed24-1, past the deadline's reason: X's handler aborts X's completed request's
    /// signal with `DrainDeadline` and answers `500`; another request (`/hang`) lost its
    /// client. The adapter counted X's `500` `served` and `answered_after_abort`, which
    /// `HyperReport::aborted` takes away: the other request's *client gone* cancelled out.
    /// Before the fix: answered_after_abort 1 and aborted 0, for 3 admitted.
    #[test]
    fn a_completed_requests_500_after_its_own_deadline_abort_takes_no_other_abort_away() {
        let (x_answer, report) =
            answered_after_its_own_abort(Then::Fail, AbortReason::DrainDeadline, one_client_gone);
        assert!(x_answer.starts_with("HTTP/1.1 500"), "{x_answer:?}");
        let outcomes = &report.outcomes;
        assert_eq!(
            (
                outcomes.total(),
                outcomes.completed,
                outcomes.dropped,
                outcomes.client_gone
            ),
            (3, 1, 1, 1),
            "{report}"
        );
        assert_eq!(
            (
                report.stats.served,
                report.stats.answered_after_abort,
                report.aborted()
            ),
            (2, 0, 1),
            "{report}"
        );
        counted_once(&report);
    }

    /// QA embed24-1, answered with another request's bundle: X's handler aborts X's completed
    /// request's signal with `ForceClosed` and answers with the bundle of a request parked on
    /// `/park` (whose client then goes, unanswered: counted once in `aborted`); a third
    /// request (`/hang`) lost its client. Before the fix: X's answer was counted `served` and
    /// `answered_after_abort`, and one of the two aborts cancelled out (aborted 1).
    #[test]
    fn a_completed_request_answered_with_another_bundle_after_its_own_abort_is_counted_once() {
        let (x_answer, report) =
            answered_after_its_own_abort(Then::Other, AbortReason::ForceClosed, one_client_gone);
        assert!(x_answer.starts_with("HTTP/1.1 200"), "{x_answer:?}");
        assert!(x_answer.ends_with("ok"), "{x_answer:?}");
        let outcomes = &report.outcomes;
        assert_eq!(
            (outcomes.total(), outcomes.completed, outcomes.client_gone),
            (4, 2, 1),
            "{report}"
        );
        assert_eq!(
            (
                report.stats.served,
                report.stats.answered_after_abort,
                report.aborted()
            ),
            (2, 0, 2),
            "{report}"
        );
        counted_once(&report);
    }
}

/// The core alone: what user code an `OnStop` stop runs (the wrapper's last strong handle
/// dropped by the downgrade) can do to the server being stopped.
mod core_stop_order {
    use reqguard::{Admitted, Config, DowngradePolicy, Engine, ServerCore};
    use std::cell::{Cell, RefCell};
    use std::rc::{Rc, Weak};

    /// The wrapper's strong handle; its `Drop` (an engine's user code, run by the downgrade)
    /// upgrades the server it was made for and admits a request, once.
    #[derive(Clone)]
    struct Handle(Rc<()>);

    struct Reentrant;

    impl Engine for Reentrant {
        type Strong = Handle;
        type Weak = Weak<()>;
        type Scope<'s> = ();

        fn downgrade(_: &mut (), strong: &Handle) -> Weak<()> {
            Rc::downgrade(&strong.0)
        }

        fn upgrade(_: &mut (), weak: &Weak<()>) -> Option<Handle> {
            weak.upgrade().map(Handle)
        }
    }

    type Core = ServerCore<Reentrant>;

    thread_local! {
        static CORE: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
        static TRIED: Cell<bool> = const { Cell::new(false) };
        static ADMITTED: RefCell<Option<Result<Admitted<(), ()>, reqguard::Refusal>>> =
            const { RefCell::new(None) };
    }

    impl Drop for Handle {
        fn drop(&mut self) {
            if TRIED.replace(true) {
                return;
            }
            let Some(core) = CORE.with_borrow(|core| core.clone()) else {
                return;
            };
            let admitted = match core.upgrade() {
                Some(live) => live.admit(|_| Ok(())),
                None => Err(reqguard::Refusal::WRAPPER_FINALIZED),
            };
            ADMITTED.with_borrow_mut(|slot| *slot = Some(admitted));
        }
    }

    /// Round 22's leftover (qa-embed24, A3): under `OnStop`, `stop()` downgraded the wrapper
    /// (dropping its last strong handle: the engine's code) before it closed admission, so a
    /// strong handle whose `Drop` upgraded the server and admitted was admitted inside
    /// `stop()`, though `stop()` "closes admission" (G5) and a `Live` made there is after
    /// the stop was asked for. Drained (the drain waited for it), not leaked, but a request
    /// admitted by a stopping server. Now admission is closed first and the strong handle
    /// dropped after: the upgrade may succeed (the wrapper is not finalized yet), the
    /// admission is refused as stopped. Before the fix: admitted, the drain incomplete after
    /// `stop()` returned.
    #[test]
    fn a_strong_handle_whose_drop_admits_is_refused_inside_an_on_stop_stop() {
        let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
        let core = Rc::new(ServerCore::new(&mut (), Handle(Rc::new(())), config));
        CORE.with_borrow_mut(|slot| *slot = Some(Rc::clone(&core)));
        let drain = core.stop();
        assert!(TRIED.get(), "the downgrade dropped the strong handle");
        let admitted = ADMITTED
            .with_borrow_mut(Option::take)
            .expect("the handle's drop tried");
        assert!(
            admitted.is_err(),
            "admitted inside stop(): {:?}",
            core.ledger().report()
        );
        assert!(drain.is_complete(), "{:?}", core.ledger().report());
        CORE.with_borrow_mut(Option::take);
        assert!(core.upgrade().is_none(), "finalized by the stop");
    }
}

/// Two hyper servers on one thread (one runtime, one `LocalSet`): a bundle of one written as
/// the answer of a request of the other.
mod hyper_two_servers {
    use super::*;
    use crate::lending::{gated_ab, lend_watched_and_wait, Lent};
    use bytes::Bytes;
    use hyper::body::Incoming;
    use reqguard::engines::{Embedded, Heap};
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperReport, HyperServer, Reply};
    use reqguard::{AbortReason, Config, ServerCore};
    use std::net::SocketAddr;
    use std::sync::mpsc;
    use tokio::sync::mpsc::UnboundedSender;
    use tokio::sync::oneshot;
    use util::bodies::Gated;
    use util::hyper_thread::send;
    use util::{hang_up, read_past_head};

    /// A round 23 leftover (qa-embed24, A2; QA embed23-1's cross-server corner). hyper
    /// adapter: X's handler (`/lend`, server A) gives its bundle away; Y's handler (`/swap`,
    /// server B, the same thread) answers with it, half written; A's `serve` future is dropped
    /// (its core stopped and every connection force-closed, no deadline abort first: X's
    /// connection closed, X's handler future dropped); then Y's client goes,
    /// and X's bundle is cut short on B. X's own connection was closed by its server's
    /// force-close, not by its client: X ends *force closed* (its signal fires
    /// `ForceClosed`), as a bundle cut short on its own server's force-close does. Before the
    /// fix: the connection writing it was told only that X's own handler future was dropped,
    /// taken for its client's going: `ClientDisconnected`, *client gone*.
    #[test]
    fn a_lent_bundle_cut_short_elsewhere_after_its_own_server_forced_its_connection_is_force_closed(
    ) {
        let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
        let (lent_tx, lent_rx) = mpsc::channel::<()>();
        let (fired_tx, fired_rx) = mpsc::channel::<AbortReason>();
        let (gone_tx, gone_rx) = mpsc::channel::<()>();
        let (gate_tx, gate_rx) = mpsc::channel::<UnboundedSender<Bytes>>();
        let (drop_a, drop_a_rx) = oneshot::channel::<()>();
        let (stop_b, stop_b_rx) = oneshot::channel::<()>();
        let (report_tx, report_rx) = mpsc::channel::<HyperReport>();
        let thread = std::thread::spawn(move || {
            let heap = Heap::new();
            let core_a: ServerCore<Embedded<&'static str>> =
                ServerCore::embedded(heap.alloc("a"), Config::default());
            let core_b: ServerCore<Embedded<&'static str>> =
                ServerCore::embedded(heap.alloc("b"), Config::default());
            let lent = Lent::default();
            let theirs = lent.clone();
            let a = HyperServer::new(
                core_a,
                move |_this, _request: hyper::Request<Incoming>, bundle: Bundle| {
                    let lent = theirs.clone();
                    let (lent_tx, fired_tx, gone_tx) =
                        (lent_tx.clone(), fired_tx.clone(), gone_tx.clone());
                    async move {
                        lend_watched_and_wait::<Result<Reply<Gated>, HandlerError>>(
                            bundle,
                            &lent,
                            fired_tx,
                            &lent_tx,
                            Some(gone_tx),
                        )
                        .await
                    }
                },
            );
            let b = HyperServer::new(
                core_b,
                move |_this, _request: hyper::Request<Incoming>, bundle: Bundle| {
                    let lent = lent.clone();
                    let gate_tx = gate_tx.clone();
                    async move {
                        Ok::<Reply<Gated>, HandlerError>(lent.swap(bundle, || gated_ab(&gate_tx)))
                    }
                },
            );
            let report = crate::local_set::block_on(async move {
                let listener_a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let listener_b = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener_a.local_addr().unwrap()).unwrap();
                addr_tx.send(listener_b.local_addr().unwrap()).unwrap();
                let stop_b = async {
                    let _ = stop_b_rx.await;
                };
                // A's `serve` future dropped while it serves (an embedder's `select!`): its
                // core stopped, every connection force-closed, no deadline abort first.
                let a = tokio::task::spawn_local(async move {
                    tokio::select! {
                        _ = a.serve(listener_a, std::future::pending()) => unreachable!(),
                        _ = drop_a_rx => {}
                    }
                });
                let b = tokio::task::spawn_local(b.serve(listener_b, stop_b));
                a.await.unwrap();
                b.await.unwrap()
            });
            report_tx.send(report).unwrap();
        });
        let addr_a = addr_rx.recv_timeout(HANG).unwrap();
        let addr_b = addr_rx.recv_timeout(HANG).unwrap();
        let x = send(addr_a, "/lend");
        lent_rx.recv_timeout(HANG).unwrap();
        let mut y = send(addr_b, "/swap");
        let mut buf = Vec::new();
        read_past_head(&mut y, &mut buf, 2);
        let _rest = gate_rx.recv_timeout(HANG).unwrap();
        // A's serve dropped: X's connection force-closed, X's handler future dropped.
        drop_a.send(()).unwrap();
        gone_rx
            .recv_timeout(HANG)
            .expect("X's handler future dropped by A's force-close");
        // Y's client goes with X's bundle half written.
        hang_up(y);
        let fired = fired_rx
            .recv_timeout(HANG)
            .expect("X's bundle was cut short");
        assert_eq!(fired, AbortReason::ForceClosed, "X's own server forced it");
        drop(x);
        stop_b.send(()).unwrap();
        let report_b = report_rx.recv_timeout(HANG).expect("both servers ended");
        thread.join().unwrap();
        assert_eq!(fired_rx.try_iter().count(), 0, "fired twice: {report_b}");
        assert_eq!(
            (report_b.outcomes.total(), report_b.outcomes.dropped),
            (1, 1),
            "B: {report_b}"
        );
    }
}
