//! An embedder with its own event loop and no default features: no mio, no engine from
//! reqguard, only the guards.
//!
//! ```sh
//! cargo run --example own_loop --no-default-features
//! ```
//!
//! The runtime here is a toy: its "JavaScript wrapper" is an `Rc<String>` and "the collector
//! finalizes it" means the last strong `Rc` is dropped. The loop is a queue of events, the way a
//! native loop (uWebSockets, libuv, a hand-written epoll loop) hands callbacks to a runtime. It
//! walks the PR's story: two requests admitted, one completed later (deferred), `stop()`, a
//! polled drain with a deadline that aborts the stuck request, the wrapper collected, a late
//! request refused with 503, and the ledger at zero.

use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use reqguard::{
    Admitted, Config, DowngradePolicy, DrainStatus, Engine, Exhaustion, Outcome, Recycle, Refusal,
    ServerCore,
};

/// The embedder's engine: strong and weak handles to its wrapper object.
struct RcEngine;

impl Engine for RcEngine {
    type Strong = Rc<String>;
    type Weak = Weak<String>;
    type Scope<'s> = ();

    fn downgrade(_: &mut (), strong: &Rc<String>) -> Weak<String> {
        Rc::downgrade(strong)
    }

    fn upgrade(_: &mut (), weak: &Weak<String>) -> Option<Rc<String>> {
        weak.upgrade()
    }
}

/// The pooled per-request context: buffers keep their capacity between requests.
#[derive(Default)]
struct HttpContext {
    url: String,
}

impl Recycle for HttpContext {
    fn recycle(&mut self) {
        self.url.clear();
    }
}

type Core = ServerCore<RcEngine, HttpContext>;
/// A request the handler answered later (a promise that resolves after the callback returns).
type Deferred = (u32, Admitted<HttpContext, u32>);

/// What the native loop delivers.
enum Event {
    Request { id: u32, url: &'static str },
    Resolve { id: u32 },
}

/// The request callback: upgrade first, then take the bundle, or answer 503 holding nothing.
fn on_request(core: &Core, id: u32, url: &str, deferred: &mut Vec<Deferred>) -> u16 {
    let outcome = core.with_live_in(&mut (), |live| {
        let bundle = live.admit(|ctx| {
            ctx.url.push_str(url);
            Ok(id)
        })?;
        println!(
            "  request {id} {url}: admitted, `this` = {:?}",
            live.wrapper()
        );
        deferred.push((id, bundle)); // the handler returned a pending promise
        Ok::<_, Refusal>(())
    });
    match outcome.and_then(|admitted| admitted) {
        Ok(()) => 200,
        Err(refusal) => {
            println!("  request {id} {url}: {}", refusal.status_line());
            refusal.status()
        }
    }
}

/// The promise resolved: the response is written and the request ends.
fn on_resolve(id: u32, deferred: &mut Vec<Deferred>) {
    if let Some(at) = deferred.iter().position(|(held, _)| *held == id) {
        let (_, bundle) = deferred.swap_remove(at);
        bundle.complete(); // response written: one outcome, every guard released here
        println!("  request {id}: completed");
    }
}

fn main() {
    let wrapper = Rc::new(String::from("Server { port: 3000 }"));
    let config = Config::default()
        .with_pool_capacity(64)
        .expect("64 is a sane capacity")
        .with_exhaustion(Exhaustion::Refuse)
        // OnStop, as in the PR, so the story reaches the finalized wrapper while a request is
        // out. The default, OnDrain, keeps the wrapper strong until the drain completes; a
        // runtime whose handlers may still touch `this` after stop() should keep it.
        .with_downgrade(DowngradePolicy::OnStop);
    let core = Core::new(&mut (), Rc::clone(&wrapper), config);
    let mut deferred = Vec::new();

    println!("serving:");
    let mut events = VecDeque::from([
        Event::Request {
            id: 1,
            url: "/fast",
        },
        Event::Request {
            id: 2,
            url: "/stuck",
        },
        Event::Resolve { id: 1 },
    ]);
    while let Some(event) = events.pop_front() {
        match event {
            Event::Request { id, url } => {
                assert_eq!(on_request(&core, id, url, &mut deferred), 200)
            }
            Event::Resolve { id } => on_resolve(id, &mut deferred),
        }
    }

    println!("server.stop(): admission closes, the wrapper turns weak");
    let drain = core.stop();
    let deadline = Instant::now() + Duration::from_millis(50);
    drain.set_deadline(deadline);
    drop(wrapper); // the runtime's last strong reference goes: the collector finalizes it
    assert_eq!(on_request(&core, 3, "/late", &mut deferred), 503);

    // The loop keeps turning and polls the drain; request 2 never resolves on its own.
    loop {
        match drain.poll_deadline(Instant::now()) {
            DrainStatus::Complete => break,
            DrainStatus::Pending { outstanding } => {
                assert_eq!(outstanding, 1);
                std::thread::sleep(Duration::from_millis(5));
            }
            DrainStatus::Expired(report) => {
                println!("  deadline: aborted {} signal(s)", report.aborted_signals);
                for (id, bundle) in deferred.drain(..) {
                    assert!(bundle.signal().is_aborted()); // the handler saw the abort
                                                           // The loop closes the connection; the first cause wins, so the request is
                                                           // counted as aborted at the deadline, not as force-closed.
                    bundle.end(Outcome::ForceClosed);
                    println!("  request {id}: aborted, its connection force-closed");
                }
            }
        }
    }
    println!(
        "drained in {:?}",
        drain.report().drain_time.unwrap_or_default()
    );
    let outcomes = core.ledger().outcomes();
    println!("outcomes: {outcomes:?}");
    assert_eq!((outcomes.completed, outcomes.deadline_aborted), (1, 1));
    core.ledger().assert_quiescent();
    println!("ledger: nothing outstanding");
}
