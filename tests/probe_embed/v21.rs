//! QA probes, round 21, of the public API as a hostile or careless embedder uses it: a hyper
//! handler that drops its own bundle and answers with another request's bundle that took the
//! same pool slot, a `Guarded` whose `ScopeProvider` panics, and a hyper handler whose bundle
//! another request's answer completed, still running when its client goes, and a hyper `serve`
//! future dropped before its stop with `after_stop` hooks. Public API only. Each test that found a bug
//! failed on `main` before its fix (the test's doc says so); the others pin a documented
//! behaviour no other test pinned.
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::util;

use std::time::Duration;

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(20);

mod hyper_reused_slot {
    use super::*;
    use crate::lending::Lent;
    use bytes::Bytes;
    use hyper::body::Incoming;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Reply};
    use reqguard::Config;
    use std::io::Write;
    use std::net::TcpStream;
    use std::sync::{mpsc, Arc};
    use tokio::sync::mpsc::UnboundedSender;
    use tokio::sync::Notify;
    use util::hyper_thread::HyperThread;

    use util::bodies::Gated;
    use util::read_past_head;

    /// The first answer in `buf`, whole (its head and its `content-length` body), taken out.
    fn take_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> String {
        let end = util::read_answer(stream, buf).unwrap();
        String::from_utf8_lossy(&buf.drain(..end).collect::<Vec<u8>>()).into_owned()
    }

    /// QA embed21-1 (G8, G9). hyper adapter: the "Not closed" of round 20 (docs/hyper.md).
    /// The dispatch told the answer's bundle from the handler's own by the address of its
    /// pool slot, taken at admission. A handler (`/swap`, connection X) drops its own bundle
    /// (a runtime's `Request` collected early) and waits; its slot goes back to the pool and
    /// the next admission takes it (the pool holds one slot: always the same one), a request
    /// of connection Y that lends its bundle (`/lend`, answered `500`, its bundle kept). Y then
    /// streams an answer of exact length 10 (`/stream`: 5 bytes, then 5 when the test says)
    /// while X's handler answers with the lent bundle (3 bytes). The dispatch took that bundle
    /// for X's own (same slot), so it was not moved to X (QA embed20-3): its body's length was
    /// judged against Y's state, which Y's stream was using, and Y's correct answer was broken
    /// off after "hello" and ended *dropped*. Now a bundle is told by its abort signal, of
    /// which the dispatch holds a handle: no other request gets that signal while it does.
    /// Before the fix: Y read "hello" and EOF; outcomes completed 1, dropped 2.
    #[test]
    fn an_answer_with_a_bundle_that_took_the_handlers_own_slot_is_moved_too() {
        let (dropped_tx, dropped_rx) = mpsc::channel::<()>();
        let (gate_tx, gate_rx) = mpsc::channel::<UnboundedSender<Bytes>>();
        let go = Arc::new(Notify::new());
        let go_handler = Arc::clone(&go);
        let config = Config::default().with_pool_capacity(1).unwrap();
        let server = HyperThread::spawn_with(config, move |core| {
            let lent = Lent::default();
            let handler = move |_this, request: hyper::Request<Incoming>, bundle: Bundle| {
                let lent = lent.clone();
                let gate_tx = gate_tx.clone();
                let dropped_tx = dropped_tx.clone();
                let go = Arc::clone(&go_handler);
                let path = request.uri().path().to_owned();
                async move {
                    match path.as_str() {
                        "/lend" => {
                            lent.lend(bundle);
                            Err::<Reply<Gated>, HandlerError>("lent its bundle".into())
                        }
                        "/stream" => {
                            let (body, rest) = Gated::new(b"hello", 10);
                            gate_tx.send(rest).unwrap();
                            Ok(bundle.respond(hyper::Response::new(body)))
                        }
                        _ => {
                            drop(bundle); // its slot is free for the next admission
                            dropped_tx.send(()).unwrap();
                            go.notified().await;
                            let other = lent.take();
                            let (body, _) = Gated::new(b"abc", 3);
                            Ok(other.respond(hyper::Response::new(body)))
                        }
                    }
                }
            };
            HyperServer::new(core, handler)
        });
        let mut x = TcpStream::connect(server.addr).unwrap();
        x.set_read_timeout(Some(HANG)).unwrap();
        x.write_all(b"GET /swap HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        dropped_rx.recv_timeout(HANG).unwrap();
        let mut y = TcpStream::connect(server.addr).unwrap();
        y.set_read_timeout(Some(HANG)).unwrap();
        y.write_all(b"GET /lend HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut ybuf = Vec::new();
        let lent = take_answer(&mut y, &mut ybuf);
        assert!(lent.starts_with("HTTP/1.1 500"), "{lent}");
        y.write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        read_past_head(&mut y, &mut ybuf, 5);
        let rest = gate_rx.recv_timeout(HANG).unwrap();
        go.notify_one();
        let mut xbuf = Vec::new();
        let swapped = take_answer(&mut x, &mut xbuf);
        assert!(swapped.starts_with("HTTP/1.1 200"), "{swapped}");
        assert!(swapped.ends_with("\r\n\r\nabc"), "{swapped:?}");
        rest.send(Bytes::from_static(b"world")).unwrap();
        read_past_head(&mut y, &mut ybuf, 10);
        let text = String::from_utf8_lossy(&ybuf).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.ends_with("\r\n\r\nhelloworld"),
            "Y's answer was cut: {text:?}"
        );
        drop((x, y));
        let report = server.stop_within(HANG);
        let outcomes = &report.outcomes;
        assert_eq!(
            (outcomes.total(), outcomes.completed, outcomes.dropped),
            (3, 2, 1),
            "{report}"
        );
    }
}

mod guarded_scope_panics {
    use reqguard::engines::{Embedded, Heap};
    use reqguard::http::{Accounting, Guarded, ScopeProvider};
    use reqguard::{Config, DowngradePolicy, Refusal, ServerCore};
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::rc::Rc;

    /// When the scope panics: not at all, before it runs the admission, or after.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum When {
        Never,
        Before,
        After,
    }

    /// A scope provider (an embedder's `HandleScope`) that panics when told to.
    struct Panicky(Rc<Cell<When>>);

    impl ScopeProvider<Embedded<&'static str>> for Panicky {
        fn with_scope<R>(&mut self, f: impl FnOnce(&mut ()) -> R) -> R {
            match self.0.get() {
                When::Never => f(&mut ()),
                When::Before => panic!("before the admission, the scope panics"),
                When::After => {
                    let result = f(&mut ());
                    drop(result);
                    panic!("after the admission, the scope panics")
                }
            }
        }
    }

    /// QA embed21-2 (G5, docs). `Guarded::read_ended`'s doc says the handler's `this` (the
    /// strong handle kept for the next request of the same pass) is let go "when an admission
    /// is refused": a `ScopeProvider` that panicked before running the admission left it in
    /// place (the closure that takes it never ran), so an embedder driving the accounting
    /// itself, whose admission panicked, kept the wrapper alive: stopped through its core
    /// (`OnStop`: the downgrade) and collected, the wrapper was not finalized. Now `this` is
    /// let go if the scope unwinds: a panic before or after the admission drops it (a panic
    /// after it also drops the bundle taken: *dropped*). Before the fix: `When::Before` left the wrapper alive
    /// (finalized false), `When::After` too (`this` set inside the closure).
    #[test]
    fn a_panicking_scope_provider_does_not_keep_the_wrapper_alive() {
        crate::quiet::quiet_panics();
        for when in [When::Before, When::After] {
            let heap = Heap::new();
            let wrapper = heap.alloc("server");
            let weak = wrapper.downgrade();
            let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
            let mode = Rc::new(Cell::new(When::Never));
            let mut guarded = Guarded::new(
                ServerCore::embedded(wrapper, config),
                Panicky(Rc::clone(&mode)),
            );
            // A request of the pass: its `this` is kept for the next.
            let held = guarded.admit().expect("admitted");
            held.complete();
            mode.set(when);
            let panicked = catch_unwind(AssertUnwindSafe(|| guarded.admit())).is_err();
            assert!(panicked, "{when:?}");
            // The embedder stops through the core (the downgrade) and collects.
            let drain = guarded.core().stop();
            assert!(drain.is_complete(), "{when:?}");
            heap.collect();
            assert!(
                weak.is_finalized(),
                "{when:?}: the panicking admission kept the wrapper alive"
            );
            mode.set(When::Never);
            assert_eq!(guarded.admit().unwrap_err(), Refusal::WRAPPER_FINALIZED);
            let outcomes = guarded.core().ledger().outcomes();
            let dropped = u64::from(when == When::After);
            assert_eq!(
                (outcomes.completed, outcomes.dropped),
                (1, dropped),
                "{when:?}"
            );
            guarded.core().ledger().assert_quiescent();
        }
    }
}

mod hyper_completed_elsewhere {
    use super::*;
    use crate::lending::{abc, lend_watched_and_wait, Lent};
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use reqguard::tokio_hyper::{Bundle, HyperServer, Reply};
    use reqguard::AbortReason;
    use std::io::Write;
    use std::net::TcpStream;
    use std::sync::mpsc;
    use util::hyper_thread::HyperThread;

    /// QA embed21-3 (G8). hyper adapter: a handler (`/lend`, connection X) gives its bundle
    /// away and waits (a runtime whose `Response` for X was made from another `Request`
    /// object, QA embed16-3: its promise for X has not settled); another request's handler
    /// (`/swap`, connection Y) answers with it, so X's request ends *completed* when Y's
    /// answer is written. Then X's client goes away: hyper drops X's handler future
    /// unanswered, and the adapter fired X's request signal `ClientDisconnected`, a signal
    /// whose request had completed: its listeners ran after its completion (G8: "never for
    /// completed"), and an `Aborted` future on it resolved. Now the dispatch fires it only
    /// while its request is still out. Before the fix: the listener ran once, with
    /// `ClientDisconnected`.
    #[test]
    fn a_request_completed_elsewhere_is_not_aborted_when_its_handler_is_dropped() {
        let (fired_tx, fired_rx) = mpsc::channel::<AbortReason>();
        let (lent_tx, lent_rx) = mpsc::channel::<()>();
        let (gone_tx, gone_rx) = mpsc::channel::<()>();
        let server = HyperThread::spawn(move |core| {
            let lent = Lent::default();
            let handler = move |_this, request: hyper::Request<Incoming>, bundle: Bundle| {
                let lent = lent.clone();
                let fired_tx = fired_tx.clone();
                let lent_tx = lent_tx.clone();
                let gone_tx = gone_tx.clone();
                let path = request.uri().path().to_owned();
                async move {
                    if path == "/lend" {
                        // Its future's drop told: hyper drops it when X's client goes away.
                        return lend_watched_and_wait(
                            bundle,
                            &lent,
                            fired_tx,
                            &lent_tx,
                            Some(gone_tx),
                        )
                        .await;
                    }
                    Ok::<Reply<Full<Bytes>>, reqguard::tokio_hyper::HandlerError>(
                        lent.swap(bundle, abc),
                    )
                }
            };
            HyperServer::new(core, handler)
        });
        let mut x = TcpStream::connect(server.addr).unwrap();
        x.set_read_timeout(Some(HANG)).unwrap();
        x.write_all(b"GET /lend HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        lent_rx.recv_timeout(HANG).unwrap();
        let swapped = util::get(server.addr, "/swap");
        assert_eq!((swapped.status, swapped.text()), (200, "abc"));
        // X's request has completed (its bundle's answer was written on Y); X's client goes.
        util::hang_up(x);
        gone_rx
            .recv_timeout(HANG)
            .expect("hyper dropped X's handler");
        let report = server.stop_within(HANG);
        let fired: Vec<AbortReason> = fired_rx.try_iter().collect();
        assert_eq!(fired, [], "a completed request's signal fired: {report}");
        let outcomes = &report.outcomes;
        assert_eq!(
            (outcomes.total(), outcomes.completed, outcomes.dropped),
            (2, 1, 1),
            "{report}"
        );
        // X's client got no answer: counted in `aborted` since QA embed22-1 (round 21 left it
        // in none of `served`, `rejected` and `aborted`: `probe_embed::v22`).
        assert_eq!((report.stats.served, report.aborted()), (1, 1), "{report}");
    }
}

/// G1: the handles an embedder holds on the hyper and mio stacks stay on the loop's thread (the
/// core's own are asserted in `src/lib.rs` and `tests/probe_auto_traits.rs`): a handler cannot
/// `tokio::spawn` its bundle, its reply or its abort future onto another thread, nor move an
/// accounting, a session, a server, a dispatcher or a connection there.
mod auto_traits {
    use bytes::Bytes;
    use http_body_util::Full;
    use reqguard::engines::Embedded;
    use reqguard::http::{Connection, Dispatcher, Guarded, NoScope, Server, Session, Unaccounted};
    use reqguard::tokio_hyper::{Aborted, Bundle, Reply};
    use reqguard::Admitted;
    use static_assertions::assert_not_impl_any;

    assert_not_impl_any!(Bundle: Send, Sync, Clone, Default);
    assert_not_impl_any!(Reply<Full<Bytes>>: Send, Sync, Clone);
    assert_not_impl_any!(Aborted: Send, Sync, Clone);
    assert_not_impl_any!(Guarded<Embedded<()>, NoScope>: Send, Sync, Clone);
    assert_not_impl_any!(Session<'static, Guarded<Embedded<()>, NoScope>>: Send, Sync);
    assert_not_impl_any!(Server<'static, Guarded<Embedded<()>, NoScope>>: Send, Sync);
    assert_not_impl_any!(Dispatcher<'static, Guarded<Embedded<()>, NoScope>>: Send, Sync);
    assert_not_impl_any!(Connection<'static, Admitted<(), ()>>: Send, Sync);
    assert_not_impl_any!(Session<'static, Unaccounted>: Send);
}

mod core_dropped_in_recycle {
    use reqguard::engines::{Embedded, Heap};
    use reqguard::{Config, Drain, ServerCore};
    use std::cell::RefCell;
    use std::rc::Rc;

    thread_local! {
        /// What `Recycle::recycle` does when it next runs.
        static ON_RECYCLE: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
    }

    #[derive(Default)]
    struct Reentrant;

    impl reqguard::Recycle for Reentrant {
        fn recycle(&mut self) {
            if let Some(call) = ON_RECYCLE.with(|c| c.borrow_mut().take()) {
                call();
            }
        }
    }

    type PoolCore = ServerCore<Embedded<&'static str>, Reentrant>;

    /// G5, re-entrancy: the embedder's `Recycle::recycle` (a runtime's context reset) stops the
    /// server and drops its core while the last request is being released (its context is
    /// being recycled, its ticket not yet given back). The drain completes exactly when that
    /// release ends, the request ends *completed* once, the wrapper is let go (`OnDrain`) and
    /// collected, and nothing is left out. Pins documented behaviour ("dropping a
    /// `ServerCore` stops it"; the core lives until the drain completes).
    #[test]
    fn a_recycle_that_drops_the_core_mid_release_ends_clean() {
        let heap = Heap::new();
        let wrapper = heap.alloc("server");
        let weak = wrapper.downgrade();
        let core: Rc<RefCell<Option<PoolCore>>> = Rc::new(RefCell::new(Some(
            ServerCore::embedded_with_context(wrapper, Config::default()),
        )));
        let drain: Rc<RefCell<Option<Drain>>> = Rc::default();
        let (c, d) = (Rc::clone(&core), Rc::clone(&drain));
        ON_RECYCLE.with(|call| {
            *call.borrow_mut() = Some(Box::new(move || {
                let core = c.borrow_mut().take().expect("the core");
                let stopped = core.stop();
                assert!(
                    !stopped.is_complete(),
                    "the ticket is still out inside recycle"
                );
                *d.borrow_mut() = Some(stopped);
                drop(core);
            }))
        });
        let bundle = {
            let core = core.borrow();
            let live = core.as_ref().unwrap().upgrade().unwrap();
            live.admit(|_| Ok(())).unwrap()
        };
        bundle.complete();
        assert!(core.borrow().is_none(), "recycle dropped the core");
        let drain = drain.borrow_mut().take().expect("recycle stopped it");
        assert!(drain.is_complete());
        let report = drain.report();
        assert_eq!((report.outcomes.total(), report.outcomes.completed), (1, 1));
        heap.collect();
        assert!(weak.is_finalized(), "the drained core let its wrapper go");
        drain.ledger().assert_quiescent();
    }
}

mod hyper_serve_dropped {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use reqguard::engines::Heap;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer};
    use reqguard::{Config, DowngradePolicy, ServerCore};
    use std::cell::RefCell;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::rc::Rc;
    use util::bounded;

    /// QA embed21-4 (G5). hyper adapter: `serve`'s future dropped while it serves, before its
    /// stop (an embedder's `select!` on Ctrl-C, a timeout): the drop stops the server (its
    /// core's `stop`, a force-close) and runs the `after_drain` hooks when that drain
    /// completes (QA embed20-5), but dropped the `after_stop` hooks unrun, though
    /// `HyperServer::after_stop` says "runs hook right after `ServerCore::stop`" (collect the
    /// wrapper there, `OnStop`): a runtime saw its drain hook run with no stop hook before it,
    /// and the wrapper its stop hook collects was never collected. Now the drop runs them
    /// right after its stop, before the drain's. Before the fix: hooks ran `["drain"]`, the
    /// wrapper alive.
    #[test]
    fn a_serve_future_dropped_before_its_stop_runs_its_after_stop_hooks_first() {
        let ran = bounded::within(HANG, move || {
            let heap = Heap::new();
            let wrapper = heap.alloc("server");
            let weak = wrapper.downgrade();
            let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
            let core = ServerCore::embedded(wrapper, config);
            let hooks: Rc<RefCell<Vec<&'static str>>> = Rc::default();
            let (on_stop, on_drain, collect) = (Rc::clone(&hooks), Rc::clone(&hooks), heap.clone());
            let handler = move |_this, _request, bundle: Bundle| async move {
                let body = Full::new(Bytes::from_static(b"ok"));
                Ok::<_, HandlerError>(bundle.respond(hyper::Response::new(body)))
            };
            let server = HyperServer::new(core, handler)
                .after_stop(move || {
                    on_stop.borrow_mut().push("stop");
                    collect.collect();
                })
                .after_drain(move || on_drain.borrow_mut().push("drain"));
            let (answered_tx, answered_rx) = tokio::sync::oneshot::channel::<()>();
            let served = crate::local_set::block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                std::thread::spawn(move || {
                    let mut client = TcpStream::connect(addr).unwrap();
                    client.set_read_timeout(Some(HANG)).unwrap();
                    client
                        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                        .unwrap();
                    let mut line = String::new();
                    BufReader::new(client).read_line(&mut line).unwrap();
                    assert_eq!(line, "HTTP/1.1 200 OK\r\n");
                    let _ = answered_tx.send(());
                });
                tokio::select! {
                    _ = server.serve(listener, std::future::pending()) => true,
                    _ = answered_rx => false,
                }
            });
            let hooks = hooks.borrow().clone();
            (served, hooks, weak.is_finalized())
        })
        .expect("serve or its drop hung");
        assert_eq!(
            ran,
            (false, vec!["stop", "drain"], true),
            "(serve returned, the hooks in the order they ran, the wrapper collected)"
        );
    }
}
