//! Hostile-embedder probes, seventh round: user code that the core runs in the middle of its
//! own work (a request payload's `Drop`, `recycle`, a context's `Drop`, abort listeners, drain
//! hooks, wakers) calling back into the core, checked against what the docs promise.
//!
//! What must hold (G5, G8; the docs of `Admitted`, `Outcome`, `Drain`, `DrainReport`): every
//! admitted request ends with one outcome; the abort signal fires once for every outcome but
//! completed and never for completed; `DrainReport::aborted_signals` counts signals whose
//! requests end `DeadlineAborted`; the drain completes exactly when the last ticket goes.
//! Public API only.

#[path = "util/hooks.rs"]
mod hooks;
#[path = "util/ledger_check.rs"]
mod ledger_check;

use std::cell::RefCell;
use std::rc::Rc;

use hooks::{run_hook, set_hook, ON_DROP};
use ledger_check::check_ledger;
use reqguard::engines::{Embedded, Heap};
use reqguard::{AbortReason, Config, Drain, ServerCore};

type Core = ServerCore<Embedded<&'static str>>;

/// A request payload whose `Drop` runs the test's hook (an engine object whose finalization
/// runs code of the runtime's).
struct Payload;

impl Drop for Payload {
    fn drop(&mut self) {
        run_hook(&ON_DROP);
    }
}

fn server(heap: &Heap) -> Core {
    ServerCore::embedded(heap.alloc("server"), Config::default())
}

/// Records every abort a signal's listener saw.
fn listen(signal: &reqguard::AbortSignal) -> Rc<RefCell<Vec<AbortReason>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = Rc::clone(&seen);
    signal.on_abort(move |reason| log.borrow_mut().push(reason));
    seen
}

// ---------------------------------------------------------------------------------------------
// G8: a completed request's signal never fires, whatever runs while it is released.

/// The request payload is dropped inside `complete()` (user code: an engine object). If that
/// code escalates the drain (the runtime's deadline timer fires from a finalizer, or a
/// `stop()`-and-abort helper), the request being completed must not be aborted: its answer was
/// written, its outcome is `Completed`, and the report must not count it as aborted.
#[test]
fn a_request_completed_while_its_payload_escalates_the_drain_never_fires() {
    for by_deadline in [false, true] {
        let heap = Heap::new();
        let core = server(&heap);
        let live = core.upgrade().unwrap();
        let bundle = live.admit(|_| Ok(Payload)).unwrap();
        let seen = listen(bundle.signal());
        let drain = core.stop();
        let start = std::time::Instant::now();
        drain.set_deadline(start);
        let reports: Rc<RefCell<Vec<usize>>> = Rc::default();
        let (inner, log) = (drain.clone(), Rc::clone(&reports));
        set_hook(&ON_DROP, move || {
            let aborted = if by_deadline {
                match inner.poll_deadline(start) {
                    reqguard::DrainStatus::Expired(report) => report.aborted_signals,
                    _ => 0,
                }
            } else {
                inner.escalate().aborted_signals
            };
            log.borrow_mut().push(aborted);
        });
        bundle.complete();
        assert_eq!(reports.borrow().len(), 1, "the payload's drop ran the hook");
        assert_eq!(
            *seen.borrow(),
            Vec::<AbortReason>::new(),
            "a completed request's signal fired (by_deadline {by_deadline})"
        );
        assert_eq!(
            reports.borrow()[0],
            0,
            "the escalation counted a completed request as aborted"
        );
        let outcomes = core.ledger().outcomes();
        assert_eq!((outcomes.completed, outcomes.total()), (1, 1));
        assert!(drain.is_complete());
        check_ledger(core.ledger());
        core.ledger().assert_quiescent();
        drop::<Drain>(drain);
    }
}

// ---------------------------------------------------------------------------------------------
// G9 for the hyper adapter: no configuration value makes the server panic. A runtime that
// wants "no timeout" passes `Duration::MAX` (tokio's own timers accept it).

#[cfg(feature = "hyper")]
mod hyper_options {
    use std::time::Duration;

    use reqguard::engines::Heap;
    use reqguard::tokio_hyper::{demo_routes, HyperReport, HyperServer, Options};
    use reqguard::{Config, ServerCore};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one `GET /` with `options` (in process: a current-thread runtime and a
    /// `LocalSet`, as an embedder runs it), stops, and returns the answer and the report.
    fn serve_one(options: Options) -> (String, HyperReport) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let heap = Heap::new();
            let core = ServerCore::embedded(heap.alloc("server"), Config::default());
            let server = HyperServer::new(core, demo_routes()).options(options);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<String>();
            tokio::task::spawn_local(async move {
                let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
                client
                    .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let mut answer = Vec::new();
                let read =
                    tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer));
                let _ = read.await;
                let _ = stop.send(String::from_utf8_lossy(&answer).into_owned());
            });
            let answer = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
            let kept = std::rc::Rc::clone(&answer);
            let stop = async move {
                *kept.borrow_mut() = stopped.await.unwrap_or_default();
            };
            let report =
                tokio::time::timeout(Duration::from_secs(20), server.serve(listener, stop))
                    .await
                    .expect("the server stopped");
            let answer = answer.borrow().clone();
            (answer, report)
        })
    }

    #[test]
    fn a_drain_timeout_of_duration_max_means_no_deadline_not_a_panic() {
        let options = Options::default().drain_timeout(Duration::MAX);
        let (answer, report) = serve_one(options);
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer:?}");
        assert_eq!((report.stats.served, report.outcomes.completed), (1, 1));
        assert!(report.deadline.is_none());
    }

    #[test]
    fn an_idle_timeout_of_duration_max_means_no_timeout_not_a_panic() {
        let options = Options::default().idle_timeout(Duration::MAX);
        let (answer, report) = serve_one(options);
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer:?}");
        assert_eq!((report.stats.served, report.outcomes.completed), (1, 1));
    }

    #[test]
    fn every_duration_knob_at_duration_max_serves_and_stops() {
        let options = Options::default()
            .drain_timeout(Duration::MAX)
            .stop_linger(Duration::MAX)
            .idle_timeout(Duration::MAX)
            .force_after(Duration::MAX);
        let (answer, report) = serve_one(options);
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer:?}");
        assert_eq!((report.stats.served, report.leaked), (1, 0));
    }
}
