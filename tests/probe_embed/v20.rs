//! QA probes, round 20, of the public API as a hostile or careless embedder uses it: a
//! `Session` dropped while its stop is under way (requests still out, the accounting's drain
//! hooks still to run), and a hyper handler that answers with a bundle lent by a request of
//! another connection while that connection streams an answer of its own. Public API only.
//! Each test that found a bug failed on `main` before its fix (the test's doc says so); the
//! others pin a documented behaviour no other test pinned.
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::quiet;
use crate::util;

use std::time::Duration;

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(20);

mod session_drop_mid_stop {
    use super::*;
    use reqguard::engines::Heap;
    use reqguard::http::{demo_routes, Guarded, Limits, Router, Routes, Session};
    use reqguard::{Config, DowngradePolicy};
    use std::cell::Cell;
    use std::rc::Rc;

    /// A deferred answer (50 ms) and a request pipelined behind it: two requests out.
    const TWO_OUT: &[u8] =
        b"GET /delay?ms=50 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n";

    /// `Guarded::embedded_on(heap)` with an `after_drain` hook of the embedder's that counts
    /// its runs (a runtime resolving `server.stop()`'s promise there).
    fn guarded(
        heap: &Heap,
        policy: DowngradePolicy,
        ran: &Rc<Cell<u32>>,
    ) -> Guarded<reqguard::engines::Embedded<&'static str>, reqguard::http::NoScope> {
        let ran = Rc::clone(ran);
        Guarded::embedded_on(heap, "server", Config::default().with_downgrade(policy))
            .after_drain(move || ran.set(ran.get() + 1))
    }

    /// QA embed20-2 (G5). A session stopped with requests out and then dropped (a runtime torn
    /// down mid-`server.stop()`): the drop ended both requests *force closed* (QA embed19-1),
    /// so the accounting's drain completed (its `Drain` said so), but the session never
    /// polled it again: `Guarded::after_drain`'s hooks ("once the drain has completed") were
    /// dropped unrun, the embedder's `stop()` promise never resolved, and
    /// `Guarded::embedded`'s collection never finalized the wrapper, where a server's stop
    /// runs them after its force-close, and docs/server.md says of `Session::stop` "once
    /// nothing is out the drain completes (the accounting's drain hooks run)". Both downgrade
    /// policies. Before the fix: hooks run 0, wrapper not finalized.
    #[test]
    fn a_session_dropped_mid_stop_completes_its_drain_and_runs_its_hooks() {
        for policy in [DowngradePolicy::OnDrain, DowngradePolicy::OnStop] {
            let routes = Routes::new();
            let mut router = Router::new(&routes);
            demo_routes(&mut router);
            let heap = Heap::new();
            let ran = Rc::new(Cell::new(0));
            let mut session =
                Session::new(&router, guarded(&heap, policy, &ran), Limits::default());
            session.feed(TWO_OUT);
            session.stop();
            assert_eq!(session.dispatcher().in_flight(), 2, "{policy:?}");
            assert_eq!(ran.get(), 0, "{policy:?}: two requests out, not drained");
            let drain = session.dispatcher().accounting().core().drain().unwrap();
            drop(session);
            assert!(drain.is_complete(), "{policy:?}");
            assert_eq!(drain.report().outcomes.force_closed, 2, "{policy:?}");
            assert_eq!(ran.get(), 1, "{policy:?}: the drain hook ran once");
            assert_eq!(heap.finalized(), 1, "{policy:?}: the wrapper was collected");
        }
    }

    /// Not a bug: a session whose stop has run its course (drained, its hooks run) runs
    /// nothing again when dropped; one never stopped runs no drain hook (a server dropped
    /// unrun does not stop either).
    #[test]
    fn a_session_dropped_after_its_drain_or_unstopped_runs_no_hook_again() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let heap = Heap::new();
        let ran = Rc::new(Cell::new(0));
        let mut session = Session::new(
            &router,
            guarded(&heap, DowngradePolicy::OnDrain, &ran),
            Limits::default(),
        );
        session.feed(TWO_OUT);
        session.stop();
        session.advance(Duration::from_millis(50));
        assert_eq!(ran.get(), 1, "drained when both were answered");
        drop(session);
        assert_eq!(ran.get(), 1);

        let ran = Rc::new(Cell::new(0));
        let mut session = Session::new(
            &router,
            guarded(&heap, DowngradePolicy::OnDrain, &ran),
            Limits::default(),
        );
        session.feed(TWO_OUT);
        drop(session);
        assert_eq!(ran.get(), 0, "never stopped: no drain hook");
    }

    /// The drain hook runs caught at the drop: one that panics neither escapes the drop nor
    /// keeps the accounting from being dropped (the wrapper is still collected by the
    /// `embedded` hook set before it).
    #[test]
    fn a_drain_hook_that_panics_at_the_drop_is_caught() {
        quiet::quiet_panics();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let heap = Heap::new();
        let guarded = Guarded::embedded_on(&heap, "server", Config::default())
            .after_drain(|| panic!("a drain hook panics"));
        let mut session = Session::new(&router, guarded, Limits::default());
        session.feed(TWO_OUT);
        session.stop();
        drop(session);
        assert_eq!(heap.finalized(), 1);
    }
}

mod hyper_lent_bundle {
    use super::*;
    use crate::lending::Lent;
    use bytes::Bytes;
    use hyper::body::Incoming;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Reply};
    use std::io::Write;
    use std::net::TcpStream;
    use std::sync::mpsc;
    use tokio::sync::mpsc::UnboundedSender;
    use util::hyper_thread::HyperThread;

    use util::bodies::Gated;
    use util::read_past_head;

    /// QA embed20-3 (G8, G9). hyper adapter: a handler that answers with another request's
    /// bundle (QA embed16-3: a runtime whose `Response` was built from the wrong `Request`
    /// object) that arrived on *another connection*: the answer's body judged its length
    /// against that connection's state (what its body being written owes, `Conn::owe` /
    /// `pay` / `settle`), not the state of the connection writing it. Connection X lends its
    /// bundle (`/lend`, answered `500`, kept alive) and then streams an answer of exact length
    /// 10 (`/stream`: 5 bytes, then 5 when the test says); meanwhile connection Y answers
    /// `/swap` with X's lent bundle (3 bytes): hyper's `size_hint` on Y overwrote what X's
    /// stream owed (5 -> 3), and X's last 5 bytes then looked 2 too many: X's correct answer
    /// was broken off after "hello" (the client got 5 of 10 bytes, then the connection
    /// closed) and its request ended *dropped*. Now an answer's bundle moves to the connection
    /// that writes it. Before the fix: X read "hello" and EOF, outcomes completed 1 dropped 2.
    #[test]
    fn an_answer_with_a_bundle_of_another_connection_leaves_that_connections_answer_whole() {
        let (gate_tx, gate_rx) = mpsc::channel::<UnboundedSender<Bytes>>();
        let server = HyperThread::spawn(move |core| {
            let lent = Lent::default();
            let handler = move |_this, request: hyper::Request<Incoming>, bundle: Bundle| {
                let lent = lent.clone();
                let gate_tx = gate_tx.clone();
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
                        _ => Ok(lent.swap(bundle, || Gated::new(b"abc", 3).0)),
                    }
                }
            };
            HyperServer::new(core, handler)
        });
        let mut x = TcpStream::connect(server.addr).unwrap();
        x.set_read_timeout(Some(HANG)).unwrap();
        x.write_all(b"GET /lend HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        read_past_head(&mut x, &mut buf, 0);
        assert!(
            buf.starts_with(b"HTTP/1.1 500"),
            "{}",
            String::from_utf8_lossy(&buf)
        );
        // The rest of the `500` (its body), then the stream's head and its first 5 bytes.
        let length = util::content_length(&buf).unwrap();
        read_past_head(&mut x, &mut buf, length);
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4 + length;
        buf.drain(..end);
        x.write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        read_past_head(&mut x, &mut buf, 5);
        let rest = gate_rx.recv_timeout(HANG).unwrap();
        let swapped = util::get(server.addr, "/swap");
        assert_eq!((swapped.status, swapped.text()), (200, "abc"));
        rest.send(Bytes::from_static(b"world")).unwrap();
        read_past_head(&mut x, &mut buf, 10);
        let text = String::from_utf8_lossy(&buf).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.ends_with("\r\n\r\nhelloworld"),
            "X's answer was cut: {text:?}"
        );
        drop(x);
        let report = server.stop_within(HANG);
        let outcomes = &report.outcomes;
        assert_eq!(
            (outcomes.total(), outcomes.completed, outcomes.dropped),
            (3, 2, 1),
            "{report}"
        );
    }
}

mod read_ended_calls {
    use reqguard::engines::Embedded;
    use reqguard::http::{
        demo_routes, Accounting, AccountingReport, Guarded, GuardedHeld, Limits, NoScope, Router,
        Routes, Session, StopStatus,
    };
    use reqguard::{AbortSignal, Config, Ledger, Outcome, Refusal};
    use std::any::Any;
    use std::time::{Duration, Instant};

    /// `Guarded`, forwarding every call, counting `read_ended`.
    struct Counting {
        inner: Guarded<Embedded<&'static str>, NoScope>,
        read_ended: u32,
    }

    impl Accounting for Counting {
        type Held = GuardedHeld;
        const MAY_PANIC: bool = false;

        fn admit(&mut self) -> Result<Self::Held, Refusal> {
            self.inner.admit()
        }
        fn signal(held: &Self::Held) -> Option<&AbortSignal> {
            Some(held.signal())
        }
        fn end(held: Self::Held, outcome: Outcome) {
            held.end(outcome);
        }
        fn this(&self) -> Option<&dyn Any> {
            self.inner.this()
        }
        fn read_ended(&mut self) {
            self.read_ended += 1;
            self.inner.read_ended();
        }
        fn stop(&mut self, deadline: Instant) {
            self.inner.stop(deadline);
        }
        fn poll_stop(&mut self, now: Instant, in_flight: usize) -> StopStatus {
            self.inner.poll_stop(now, in_flight)
        }
        fn ledger(&self) -> Option<&Ledger> {
            self.inner.ledger()
        }
        fn report(&self) -> AccountingReport {
            self.inner.report()
        }
    }

    /// QA embed20-4 (docs). `Accounting::read_ended` said the connection "admits nothing more
    /// until it reads again" and that it is "called once per read": it is called at the end
    /// of every pass over the connection's input, a timer's and a `resume`'s too, and a pass
    /// with no read admits requests the pipeline limit held back. Here a deferred answer and
    /// a request behind it, `max_pipeline` 1: the feed (one read) admits the first and ends
    /// its pass; the timer that answers it admits the second, with no read, and ends its pass.
    #[test]
    fn read_ended_ends_every_pass_a_timers_included_which_may_admit() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let counting = Counting {
            inner: Guarded::embedded("server", Config::default()),
            read_ended: 0,
        };
        let mut session = Session::new(&router, counting, Limits::default().with_max_pipeline(1));
        session
            .feed(b"GET /delay?ms=50 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n");
        let minted =
            |s: &mut Session<'_, Counting>| s.ledger().unwrap().minted(reqguard::GuardKind::Ticket);
        assert_eq!(
            minted(&mut session),
            1,
            "the second waits for the first's answer"
        );
        assert_eq!(session.dispatcher().accounting().read_ended, 1);
        session.advance(Duration::from_millis(50));
        assert_eq!(
            minted(&mut session),
            2,
            "admitted by the timer's pass, no read"
        );
        assert_eq!(session.dispatcher().accounting().read_ended, 2);
        assert_eq!(session.stats().served, 2);
    }
}
