//! The drain (G5): as a `Future` driven by a tiny hand-written executor (no async runtime),
//! and as a pollable handle with a deadline that escalates; the downgrade policies.

#[path = "util/runtime.rs"]
mod runtime;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use reqguard::engines::Heap;
use reqguard::{
    AbortReason, Config, DowngradePolicy, DrainReport, DrainStatus, GuardKind, Ledger, ServerCore,
};
use runtime::{Behavior, FakeServer, Req};

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    fn wakes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn poll_once<F: Future + ?Sized>(
    future: Pin<&mut F>,
    waker: &Arc<CountingWaker>,
) -> Poll<F::Output> {
    let waker = Waker::from(Arc::clone(waker));
    future.poll(&mut Context::from_waker(&waker))
}

/// A minimal single-threaded executor: polls `future`; while it is pending, runs one turn of
/// the "event loop" (`turn`) and polls again only once woken. Bounded: gives up after
/// `max_turns` turns.
fn block_on<F: Future>(future: F, max_turns: usize, mut turn: impl FnMut()) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let waker = Arc::new(CountingWaker::default());
    let mut seen = 0;
    let mut ready = poll_once(future.as_mut(), &waker);
    for _ in 0..max_turns {
        if let Poll::Ready(output) = ready {
            return Some(output);
        }
        turn();
        if waker.wakes() > seen {
            seen = waker.wakes();
            ready = poll_once(future.as_mut(), &waker);
        }
    }
    match ready {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

#[test]
fn drain_future_completes_when_the_last_request_ends() {
    let server = FakeServer::new(Config::default());
    server.behavior.set(Behavior::Defer);
    for _ in 0..3 {
        server.on_request(Req::get("/"));
    }
    let drain = server.core.stop();
    let mut turns = 0;
    let report: DrainReport = block_on(
        async move {
            // What a runtime's `server.stop()` promise does: await the drain, then resolve.
            let report = drain.await;
            assert!(report.complete);
            report
        },
        10,
        || {
            turns += 1;
            let id = server.in_flight.borrow().first().map(|r| r.id);
            if let Some(id) = id {
                server.finish(id);
            }
        },
    )
    .expect("the drain completes within the bounded turns");
    assert_eq!(
        turns, 3,
        "completes on the turn the last request ends, not before"
    );
    assert!(report.complete);
    assert!(report.drain_time.is_some());
    assert!(report.outstanding.is_empty());
    assert_eq!(report.aborted_signals, 0);
    server.core.ledger().assert_quiescent();
}

#[test]
fn drain_future_is_ready_at_once_when_nothing_is_out() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let mut drain = core.stop();
    let waker = Arc::new(CountingWaker::default());
    assert!(matches!(
        poll_once(Pin::new(&mut drain), &waker),
        Poll::Ready(DrainReport { complete: true, .. })
    ));
    assert_eq!(waker.wakes(), 0);
}

#[test]
fn drain_future_wakes_exactly_once_and_not_before() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let (t1, t2) = (live.ticket().unwrap(), live.ticket().unwrap());
    drop(live);
    let mut drain = core.stop();
    let waker = Arc::new(CountingWaker::default());
    assert!(poll_once(Pin::new(&mut drain), &waker).is_pending());
    assert!(
        poll_once(Pin::new(&mut drain), &waker).is_pending(),
        "re-polling is fine"
    );
    drop(t1);
    assert_eq!(waker.wakes(), 0, "one ticket is still out");
    drop(t2);
    assert_eq!(waker.wakes(), 1);
    assert!(poll_once(Pin::new(&mut drain), &waker).is_ready());
}

/// `Drain` is `Clone` (and `stop()` again returns another handle): every task awaiting a
/// handle must be woken, not only the one that polled last.
#[test]
fn every_task_awaiting_the_drain_is_woken() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let ticket = core.upgrade().unwrap().ticket().unwrap();
    let mut first = core.stop();
    let mut second = core.stop();
    let mut third = first.clone();
    let wakers: Vec<_> = (0..3).map(|_| Arc::new(CountingWaker::default())).collect();
    assert!(poll_once(Pin::new(&mut first), &wakers[0]).is_pending());
    assert!(poll_once(Pin::new(&mut second), &wakers[1]).is_pending());
    assert!(poll_once(Pin::new(&mut third), &wakers[2]).is_pending());
    drop(ticket);
    let wakes: Vec<usize> = wakers.iter().map(|w| w.wakes()).collect();
    assert_eq!(wakes, [1, 1, 1]);
    for (drain, waker) in [(&mut first, &wakers[0]), (&mut second, &wakers[1])] {
        assert!(poll_once(Pin::new(drain), waker).is_ready());
    }
}

#[test]
fn deadline_escalates_aborts_signals_and_reports_what_is_out() {
    let server = FakeServer::new(Config::default());
    server.behavior.set(Behavior::Defer);
    server.on_request(Req::get("/a"));
    server.on_request(Req::get("/b"));
    drop(server.last_signal.borrow_mut().take());
    let drain = server.core.stop();
    let start = Instant::now();
    drain.set_deadline(start + Duration::from_secs(5));
    assert_eq!(drain.deadline(), Some(start + Duration::from_secs(5)));

    assert_eq!(
        drain.poll_deadline(start + Duration::from_secs(1)),
        DrainStatus::Pending { outstanding: 2 }
    );
    assert_eq!(server.abort_listener_runs.get(), 0);

    let DrainStatus::Expired(report) = drain.poll_deadline(start + Duration::from_secs(6)) else {
        panic!("the deadline passed");
    };
    assert_eq!(report.aborted_signals, 2);
    assert_eq!(
        server.abort_listener_runs.get(),
        2,
        "the handlers were told"
    );
    assert!(!report.complete);
    assert_eq!(
        report.outstanding.total(),
        6,
        "2 x (ticket, context, activity ref)"
    );
    let text = report.to_string();
    assert!(
        text.starts_with("drain incomplete; deadline aborted 2 signal(s):\n"),
        "{text}"
    );
    if Ledger::tracks_sites() {
        assert!(text.contains("2 pending-request tickets minted at tests/util/runtime.rs:"));
        assert!(text.contains("were never released"));
    }
    for r in server.in_flight.borrow().iter() {
        assert_eq!(r.bundle.signal().reason(), Some(AbortReason::DrainDeadline));
    }

    // Escalation happens once; later polls only report.
    let DrainStatus::Expired(again) = drain.poll_deadline(start + Duration::from_secs(7)) else {
        panic!("still out");
    };
    assert_eq!(again.aborted_signals, 0);
    assert_eq!(server.abort_listener_runs.get(), 2);

    // The loop force-closes the connections: the drain completes.
    server.finish_all();
    assert_eq!(
        drain.poll_deadline(start + Duration::from_secs(8)),
        DrainStatus::Complete
    );
    server.core.ledger().assert_quiescent();
}

/// A handler that ends its request when its signal aborts: escalation alone completes the drain.
#[test]
fn escalation_completes_the_drain_when_listeners_let_go() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let bundle = live.admit(|_| Ok("GET /stream")).unwrap();
    drop(live);
    let slot = Rc::new(RefCell::new(Some(bundle)));
    let s = Rc::clone(&slot);
    let signal = slot.borrow().as_ref().unwrap().signal().clone();
    signal.on_abort(move |_| drop(s.borrow_mut().take()));
    drop(signal);

    let drain = core.stop();
    let now = Instant::now();
    drain.set_deadline(now);
    assert_eq!(drain.poll_deadline(now), DrainStatus::Complete);
    assert!(slot.borrow().is_none());
    core.ledger().assert_quiescent();
}

#[test]
fn escalate_without_a_deadline() {
    let server = FakeServer::new(Config::default());
    server.behavior.set(Behavior::Defer);
    server.on_request(Req::get("/"));
    let drain = server.core.stop();
    let report = drain.escalate();
    assert_eq!(report.aborted_signals, 1);
    assert_eq!(report.outstanding.sites()[0].kind, GuardKind::Ticket);
    assert_eq!(drain.escalate().aborted_signals, 0, "already aborted");
    server.finish_all();
    assert!(drain.report().complete);
    assert!(drain.report().to_string().starts_with("drain complete in "));
}

#[test]
fn on_complete_hooks_run_once_when_the_drain_completes() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let ticket = core.upgrade().unwrap().ticket().unwrap();
    let drain = core.stop();
    let resolved = Rc::new(RefCell::new(Vec::new()));
    let r = Rc::clone(&resolved);
    drain.on_complete(move || r.borrow_mut().push("stop() resolved"));
    assert!(resolved.borrow().is_empty());
    drop(ticket);
    assert_eq!(*resolved.borrow(), ["stop() resolved"]);
    let r = Rc::clone(&resolved);
    drain.on_complete(move || r.borrow_mut().push("late hook runs at once"));
    assert_eq!(resolved.borrow().len(), 2);
    assert!(drain.drain_time().is_some());
}

/// `DowngradePolicy::OnDrain`: the wrapper survives collection while a ticket is out and is
/// collectable once the drain completes.
#[test]
fn on_drain_policy_keeps_the_wrapper_until_the_drain_completes() {
    let heap = Heap::new();
    let wrapper = heap.alloc("server");
    let weak = wrapper.downgrade();
    let core = ServerCore::embedded(
        wrapper,
        Config::default().with_downgrade(DowngradePolicy::OnDrain),
    );
    let ticket = core.upgrade().unwrap().ticket().unwrap();
    let drain = core.stop();
    assert_eq!(heap.collect(), 0);
    assert!(core.wrapper().is_strong() && !weak.is_finalized());
    assert!(
        core.upgrade().is_some(),
        "in-flight work can still reach `this`"
    );
    drop(ticket);
    assert!(drain.is_complete());
    assert!(!core.wrapper().is_strong());
    assert_eq!(heap.collect(), 1);
    assert!(weak.is_finalized() && core.upgrade().is_none());
}

#[test]
fn on_stop_policy_lets_the_wrapper_go_while_a_ticket_is_out() {
    let heap = Heap::new();
    let core = ServerCore::embedded(
        heap.alloc("server"),
        Config::default().with_downgrade(DowngradePolicy::OnStop),
    );
    let ticket = core.upgrade().unwrap().ticket().unwrap();
    let drain = core.stop();
    assert_eq!(
        heap.collect(),
        1,
        "the PR's behaviour: finalized with a request out"
    );
    assert!(core.upgrade().is_none());
    assert!(!drain.is_complete());
    drop(ticket);
    assert!(drain.is_complete());
}

/// The server core lives until the drain completes, even if the runtime drops its handle.
#[test]
fn drain_outlives_the_server_core_handle() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let bundle = live.admit(|_| Ok(())).unwrap();
    drop(live);
    let drain = core.stop();
    drop(core);
    assert_eq!(drain.outstanding(), 1);
    drop(bundle);
    assert!(drain.is_complete());
    assert!(drain.ledger().is_quiescent());
}

/// The stop and the ledger's trace share one flag on the bundles' hot paths: a trace started
/// and taken after the stop must not hide it (the last request out still completes the drain,
/// and a new request is still refused), and a trace over the drain records the release.
#[test]
fn a_trace_taken_after_stop_does_not_hide_the_stop() {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    let live = core.upgrade().unwrap();
    let first = live.admit(|_| Ok(())).unwrap();
    let second = live.admit(|_| Ok(())).unwrap();
    drop(live);
    let drain = core.stop();
    core.ledger().start_trace();
    core.ledger().take_trace();
    first.complete();
    assert!(!drain.is_complete(), "one request is still out");
    let refused = core.upgrade().map(|live| live.admit(|_| Ok(())).map(drop));
    assert_eq!(
        refused.map(|r| r.unwrap_err().reason()),
        Some(reqguard::RefusalReason::Stopped)
    );
    core.ledger().start_trace();
    second.complete();
    assert!(
        drain.is_complete(),
        "the last request out completes the drain"
    );
    let trace = core.ledger().take_trace();
    assert_eq!(
        trace.len(),
        4,
        "the release of the request object, activity, context and ticket: {trace:?}"
    );
    core.ledger().assert_quiescent();
}
