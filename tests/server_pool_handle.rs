//! Rounds 25 and 26 of the cost work (docs/benchmarks-history.md, "Round 25 (the guard)" and "Round
//! 26 (the guard)"): a request the server answers in the call that admitted it is ended through its
//! accounting's sealed `end_here`, which gives a [`Guarded`] bundle's pooled slot back with the
//! slot's handle on the pool still in it, so the next request takes it with no `Rc` count
//! (invariant 7 of `src/pool/slots.rs`), and with no check that the slot is the pool's own: the
//! seal says so. That handle makes a cycle (the pool, the slot it keeps last, the pool) that only
//! the server core's drop breaks. These tests pin G5 through every order that cycle opens: the pool
//! (and the server's shared state it holds) lives exactly until the last bundle or standalone
//! context out ends, whatever the embedder drops first, and is freed then (each pooled context's
//! `Drop` runs), not kept alive by its own slot; and a request parked in its connection, whose
//! dispatcher's accounting the embedder swapped meanwhile, goes back to its own pool and ledger.
//! That the embedder can neither call `end_here` nor override it is `tests/ui/seal_end_here.rs`.

#![cfg(feature = "server")]

use std::cell::Cell;
use std::time::Duration;

use reqguard::engines::{Embedded, Heap};
use reqguard::http::{demo_routes, Guarded, Limits, NoScope, Router, Routes, Session};
use reqguard::{Config, Recycle, ServerCore};

thread_local! {
    /// Pooled contexts dropped on this test's thread: the pool freed them.
    static FREED: Cell<usize> = const { Cell::new(0) };
}

/// A pooled context that counts its drops: a pool that is never freed never drops them.
#[derive(Default)]
struct Counted;

impl Recycle for Counted {
    fn recycle(&mut self) {}
}

impl Drop for Counted {
    fn drop(&mut self) {
        FREED.with(|freed| freed.set(freed.get() + 1));
    }
}

fn freed() -> usize {
    FREED.with(Cell::get)
}

type Server = Guarded<Embedded<&'static str>, NoScope, Counted>;

/// A guarded server of `Counted` contexts on `heap`, room for two.
fn server(heap: &Heap) -> Server {
    let config = Config::default().with_pool_capacity(2).unwrap();
    let core = ServerCore::embedded_with_context::<Counted>(heap.alloc("server"), config);
    Guarded::new(core, NoScope)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

/// Feeds `requests` at once and takes the answers: how many begin with `status`.
fn answered(session: &mut Session<'_, Server>, requests: &[u8], status: &str) -> usize {
    session.feed(requests);
    let out = String::from_utf8(session.take_output()).unwrap();
    out.matches(&format!("HTTP/1.1 {status}")).count()
}

/// The core dropped (with its session) while the slot given back last keeps its pool's handle
/// and another bundle is out: the pool lives on for that bundle, whose end frees it (its
/// check-in moves the kept slot to the free list, which lets go of the handle). It fails when
/// the pool is freed under the bundle, or outlives it.
#[test]
fn the_core_dropped_with_a_kept_handle_frees_the_pool_with_the_last_bundle() {
    let (heap, routes) = (Heap::new(), Routes::new());
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let mut session = Session::new(&router, server(&heap), Limits::default());
    let core = session.dispatcher().accounting().core();
    let out = core.upgrade().unwrap().admit(|_| Ok(())).unwrap(); // the first slot
    let signal = out.signal().clone();
    // The second slot, kept in `last` with its pool's handle.
    assert_eq!(answered(&mut session, GET, "200"), 1);
    let before = freed();
    drop(session); // the core goes first (G5: `out` keeps the server alive)
    assert_eq!(
        freed(),
        before,
        "the pool was freed under a bundle still out"
    );
    assert!(
        !signal.is_aborted(),
        "a dropped core is a stop, not an abort"
    );
    out.complete();
    assert_eq!(freed(), before + 2, "the pool outlived its last bundle");
    drop(signal);
}

/// The same with nothing out: dropping the session frees the pool at once, though its slot
/// given back last kept the pool's handle through a pipeline of requests answered at once
/// (one a panicking handler's `500`: the release of a request whose signal fired keeps it
/// too). It fails (nothing freed) when the core's drop leaves the handle in the kept slot.
#[test]
fn a_server_dropped_after_its_own_releases_frees_its_pool() {
    let (heap, routes) = (Heap::new(), Routes::new());
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let mut session = Session::new(&router, server(&heap), Limits::default());
    assert_eq!(answered(&mut session, &GET.repeat(3), "200"), 3);
    let panics = b"GET /panic HTTP/1.1\r\nhost: x\r\n\r\n";
    assert_eq!(answered(&mut session, panics, "500"), 1);
    assert_eq!(answered(&mut session, GET, "200"), 1);
    let outcomes = session.ledger().unwrap().outcomes();
    assert_eq!((outcomes.completed, outcomes.dropped), (4, 1));
    session.ledger().unwrap().assert_quiescent();
    let before = freed();
    drop(session);
    assert_eq!(freed(), before + 1, "the pool kept itself alive");
}

/// A standalone context checked out of the slot that kept the pool's handle lets go of it:
/// checked in after the core is gone, its slot must not keep the pool alive. It fails when
/// the checkout leaves the handle in the slot.
#[test]
fn a_standalone_context_after_the_core_is_gone_frees_the_pool() {
    let (heap, routes) = (Heap::new(), Routes::new());
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let mut session = Session::new(&router, server(&heap), Limits::default());
    assert_eq!(answered(&mut session, GET, "200"), 1);
    let live = session.dispatcher().accounting().core().upgrade().unwrap();
    let context = live.context(live.ticket().unwrap()).unwrap(); // the kept slot
    drop(live);
    let before = freed();
    drop(session);
    assert_eq!(
        freed(),
        before,
        "the pool was freed under a context still out"
    );
    drop(context);
    assert_eq!(freed(), before + 1, "the pool outlived its last context");
}

/// Requests parked in the connection (a deferred answer, another waiting behind it) while the
/// embedder swaps the dispatcher's accounting for another server's of the same type
/// (`Dispatcher::accounting_mut`) go back to their own pool, counted in their own ledger, and
/// keep no handle in the other pool: the one resumed when due and the one the disconnect
/// ends. Only a request answered in the call that admitted it goes through the sealed
/// `end_here`, whose release trusts the slot to be its core's pool's. It fails when a parked
/// request ends through `end_here` (checked into the swapped-in accounting's pool, counted in
/// its ledger; a debug build's check panics).
#[test]
fn requests_parked_while_the_accounting_is_swapped_go_home() {
    let (heap, routes) = (Heap::new(), Routes::new());
    let mut router = Router::new(&routes);
    demo_routes(&mut router);
    let mut session = Session::new(&router, server(&heap), Limits::default());
    let parked = b"GET /delay?ms=50 HTTP/1.1\r\nhost: x\r\n\r\nGET /delay?ms=100 HTTP/1.1\r\nhost: x\r\n\r\n";
    assert_eq!(answered(&mut session, parked, "200"), 0);
    let mut theirs = server(&heap);
    std::mem::swap(session.dispatcher().accounting_mut(), &mut theirs);
    session.advance(Duration::from_millis(50)); // the first is resumed and answered
    assert!(session.take_output().ends_with(b"delayed 50 ms"));
    session.disconnect(); // the second ends with the connection
    let home = theirs.core();
    let outcomes = home.ledger().outcomes();
    assert_eq!((outcomes.completed, outcomes.client_gone), (1, 1));
    home.ledger().assert_quiescent();
    assert_eq!(home.pool_metrics().in_use, 0);
    let swapped_in = session.dispatcher().accounting().core();
    assert_eq!(swapped_in.ledger().outcomes().completed, 0);
    assert_eq!(swapped_in.ledger().outcomes().client_gone, 0);
    assert_eq!(swapped_in.pool_metrics().allocated, 0);
    let before = freed();
    drop(theirs);
    assert_eq!(
        freed(),
        before + 2,
        "the parked requests' pool kept itself alive"
    );
    drop(session);
    assert_eq!(freed(), before + 2, "the swapped-in pool had contexts");
}
