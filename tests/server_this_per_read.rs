//! Round 19 of the cost work (docs/benchmarks-history.md): `Guarded` admits the requests pipelined
//! in one read with one upgrade of the wrapper. The strong handle the first request was admitted
//! with (its handler's `this`) is kept until the read's requests are all handled
//! (`Accounting::read_ended`) and is the proof for the next request of the same read, while the
//! server is not stopped (its wrapper cell is strong then: an upgrade would only clone it). Each
//! request's handler still gets the wrapper as its `this`; nothing of it is kept past the read; a
//! stop, a trace or a refused admission goes back to a real upgrade.
#![cfg(feature = "server")]

use std::cell::Cell;
use std::rc::{Rc, Weak};
use std::time::Instant;

use reqguard::http::{
    Accounting, Guarded, Limits, Reply, Request, Response, Router, Routes, ScopeProvider, Session,
};
use reqguard::{Config, DowngradePolicy, Engine, Exhaustion, RefusalReason, ServerCore};

/// The wrapper's strong handle, counting its clones (an engine's `Global::clone`).
struct Counted {
    object: Rc<String>,
    clones: Rc<Cell<u32>>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones.set(self.clones.get() + 1);
        Counted {
            object: Rc::clone(&self.object),
            clones: Rc::clone(&self.clones),
        }
    }
}

/// An engine whose upgrades are counted too (a weak wrapper's upgrade: after a stop).
struct CountingEngine;

impl Engine for CountingEngine {
    type Strong = Counted;
    type Weak = (Weak<String>, Rc<Cell<u32>>);
    type Scope<'s> = u32;

    fn downgrade(_: &mut u32, strong: &Counted) -> Self::Weak {
        (Rc::downgrade(&strong.object), Rc::clone(&strong.clones))
    }

    fn upgrade(upgrades: &mut u32, weak: &Self::Weak) -> Option<Counted> {
        *upgrades += 1;
        Some(Counted {
            object: weak.0.upgrade()?,
            clones: Rc::clone(&weak.1),
        })
    }
}

/// Enters the "engine" for each admission, counting the entries.
struct Scopes {
    entered: Rc<Cell<u32>>,
    upgrades: u32,
}

impl ScopeProvider<CountingEngine> for Scopes {
    fn with_scope<R>(&mut self, f: impl FnOnce(&mut u32) -> R) -> R {
        self.entered.set(self.entered.get() + 1);
        f(&mut self.upgrades)
    }
}

const GET: &[u8] = b"GET /this HTTP/1.1\r\nhost: x\r\n\r\n";

struct Fixture {
    object: Weak<String>,
    clones: Rc<Cell<u32>>,
    entered: Rc<Cell<u32>>,
    /// How many handlers saw the wrapper as their `this`.
    seen: Rc<Cell<u32>>,
}

fn guarded(policy: DowngradePolicy) -> (Guarded<CountingEngine, Scopes>, Fixture) {
    let object = Rc::new("server".to_owned());
    let clones = Rc::new(Cell::new(0));
    let strong = Counted {
        object: Rc::clone(&object),
        clones: Rc::clone(&clones),
    };
    let weak = Rc::downgrade(&object);
    drop(object); // the cell's handle is the only strong one
    let core: ServerCore<CountingEngine> =
        ServerCore::new(&mut 0, strong, Config::default().with_downgrade(policy));
    let entered = Rc::new(Cell::new(0));
    let scopes = Scopes {
        entered: Rc::clone(&entered),
        upgrades: 0,
    };
    let fixture = Fixture {
        object: weak,
        clones,
        entered,
        seen: Rc::new(Cell::new(0)),
    };
    (Guarded::new(core, scopes), fixture)
}

fn routes<'r>(router: &mut Router<'r>, seen: &Rc<Cell<u32>>) {
    let seen = Rc::clone(seen);
    router.route(
        "GET",
        "/this",
        move |request: &Request<'_>, response: &mut Response<'_>| {
            if request.this::<Counted>().map(|this| this.object.as_str()) == Some("server") {
                seen.set(seen.get() + 1);
            }
            response.write(b"ok");
            Reply::Now
        },
    );
}

fn answers(output: &[u8]) -> usize {
    output.windows(12).filter(|w| w == b"HTTP/1.1 200").count()
}

/// Sixteen requests in one read: one clone of the wrapper's strong handle (main cloned it for
/// each request), the scope entered once (the read's first admission: since round 31 the
/// others take its bundle as it is, with no admission), every handler called with the wrapper
/// as its `this`, and nothing of it kept once the read is handled.
#[test]
fn the_requests_of_one_read_share_one_upgrade() {
    let (accounting, fx) = guarded(DowngradePolicy::OnDrain);
    let store = Routes::new();
    let mut router = Router::new(&store);
    routes(&mut router, &fx.seen);
    let mut session = Session::new(&router, accounting, Limits::default());
    session.feed(&GET.repeat(16));
    assert_eq!(answers(session.pending_output()), 16);
    assert_eq!(fx.seen.get(), 16, "every handler's this is the wrapper");
    assert_eq!(
        fx.clones.get(),
        1,
        "one upgrade (a clone) for the read's 16 requests"
    );
    assert_eq!(
        fx.entered.get(),
        1,
        "the scope is entered for the read's first admission: the others renew its bundle"
    );
    assert_eq!(
        fx.object.strong_count(),
        1,
        "after the read only the wrapper cell holds the wrapper"
    );
    // The next read upgrades again: one clone per read.
    session.clear_output();
    session.feed(&GET.repeat(3));
    assert_eq!(answers(session.pending_output()), 3);
    assert_eq!((fx.clones.get(), fx.seen.get()), (2, 19));
    assert_eq!(fx.object.strong_count(), 1);
    let ledger = session.ledger().unwrap();
    assert_eq!(ledger.outcomes().completed, 19);
    ledger.assert_quiescent();
}

/// A stop between two reads lets go of nothing it should keep: with `OnStop` the wrapper is
/// downgraded and (no handle kept) finalized, and the next read's requests are refused as a
/// finalized wrapper's (`503`, the upgrade tried and failed: nothing was reused).
#[test]
fn after_a_stop_nothing_is_reused_and_the_wrapper_is_finalized() {
    let (accounting, fx) = guarded(DowngradePolicy::OnStop);
    let store = Routes::new();
    let mut router = Router::new(&store);
    routes(&mut router, &fx.seen);
    let mut session = Session::new(&router, accounting, Limits::default());
    session.feed(&GET.repeat(4));
    assert_eq!(answers(session.pending_output()), 4);
    session.stop();
    assert_eq!(fx.object.strong_count(), 0, "finalized at the stop");
    assert_eq!(session.ledger().unwrap().outcomes().completed, 4);
    let mut plain = Guarded::new(
        ServerCore::<CountingEngine>::new(
            &mut 0,
            Counted {
                object: Rc::new("other".to_owned()),
                clones: Rc::new(Cell::new(0)),
            },
            Config::default(),
        ),
        Scopes {
            entered: Rc::new(Cell::new(0)),
            upgrades: 0,
        },
    );
    // An accounting used by hand: `read_ended` lets the kept `this` go.
    drop(plain.admit().unwrap());
    assert!(plain.this().is_some());
    plain.read_ended();
    assert!(plain.this().is_none());
    plain.stop(Instant::now());
}

/// A refused admission lets the kept `this` go (`Accounting::read_ended`'s doc), so a server
/// refusing every request (its pool exhausted) keeps no strong handle of the wrapper between
/// them. Round 24 admits with `this` where `Guarded` keeps it (`Live::admit_held`), and its
/// refusal branch lets it go: this fails if that branch keeps it (no test failed with it
/// removed, review25).
#[test]
fn a_refused_admission_lets_the_kept_this_go() {
    let object = Rc::new("server".to_owned());
    let clones = Rc::new(Cell::new(0));
    let strong = Counted {
        object: Rc::clone(&object),
        clones: Rc::clone(&clones),
    };
    let config = Config::default()
        .with_pool_capacity(0)
        .unwrap()
        .with_exhaustion(Exhaustion::Refuse);
    let mut plain = Guarded::new(
        ServerCore::<CountingEngine>::new(&mut 0, strong, config),
        Scopes {
            entered: Rc::new(Cell::new(0)),
            upgrades: 0,
        },
    );
    let refusal = plain.admit().unwrap_err();
    assert_eq!(refusal.reason(), RefusalReason::PoolExhausted);
    assert_eq!(clones.get(), 1, "the admission upgraded once");
    assert!(plain.this().is_none(), "the refused admission kept `this`");
    assert_eq!(
        Rc::strong_count(&object),
        2,
        "strong: the test's and the wrapper cell's only"
    );
    plain.stop(Instant::now());
    plain.ledger().unwrap().assert_quiescent();
}
