//! Round 25 of the cost work (docs/benchmarks.md, "Round 25 (the guard)"): a bundle ended
//! through the server's own accounting ([`Accounting::end_here`], what the mio server calls)
//! gives its pooled slot back with the slot's handle on the pool still in it, so the next
//! request takes it with no `Rc` count (invariant 7 of `src/pool/slots.rs`). That handle makes
//! a cycle (the pool, the slot it keeps last, the pool) that only the server core's drop
//! breaks. These tests pin G5 through every order that cycle opens: the pool (and the server's
//! shared state it holds) lives exactly until the last bundle or standalone context out ends,
//! whatever the embedder drops first, and is freed then (each pooled context's `Drop` runs),
//! not kept alive by its own slot; and a bundle ended through another server's accounting
//! goes back to its own pool and ledger.

#![cfg(feature = "server")]

use std::cell::Cell;

use reqguard::engines::{Embedded, Heap};
use reqguard::http::{Accounting, Guarded, NoScope};
use reqguard::{Config, Outcome, Recycle, ServerCore};

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

/// The core dropped while the slot given back last keeps its pool's handle and another
/// bundle is out: the pool lives on for that bundle, whose end frees it (its check-in moves
/// the kept slot to the free list, which lets go of the handle). It fails when the pool is
/// freed under the bundle, or outlives it.
#[test]
fn the_core_dropped_with_a_kept_handle_frees_the_pool_with_the_last_bundle() {
    let heap = Heap::new();
    let mut server = server(&heap);
    let a = server.admit().unwrap();
    let b = server.admit().unwrap();
    server.end_here(a, Outcome::Completed); // kept in `last` with its pool's handle
    let signal = Server::signal(&b).unwrap().clone();
    let before = freed();
    drop(server); // the core goes first (G5: `b` keeps the server alive)
    assert_eq!(
        freed(),
        before,
        "the pool was freed under a bundle still out"
    );
    assert!(
        !signal.is_aborted(),
        "a dropped core is a stop, not an abort"
    );
    Server::end(b, Outcome::Completed);
    assert_eq!(freed(), before + 2, "the pool outlived its last bundle");
    drop(signal);
}

/// The same with nothing out: dropping the server frees the pool at once, though its slot
/// given back last kept the pool's handle through a pipeline of requests. It fails (nothing
/// freed) when the core's drop leaves the handle in the kept slot.
#[test]
fn a_server_dropped_after_its_own_releases_frees_its_pool() {
    let heap = Heap::new();
    let mut server = server(&heap);
    for _ in 0..3 {
        let held = server.admit().unwrap();
        server.end_here(held, Outcome::Completed);
    }
    let pair = (server.admit().unwrap(), server.admit().unwrap());
    server.end_here(pair.1, Outcome::ClientGone); // the unclean release keeps it too
    server.end_here(pair.0, Outcome::Completed); // the other slot to the free list
    let outcomes = server.core().ledger().outcomes();
    assert_eq!((outcomes.completed, outcomes.client_gone), (4, 1));
    server.core().ledger().assert_quiescent();
    let before = freed();
    drop(server);
    assert_eq!(freed(), before + 2, "the pool kept itself alive");
}

/// A standalone context checked out of the slot that kept the pool's handle lets go of it:
/// checked in after the core is gone, its slot must not keep the pool alive. It fails when
/// the checkout leaves the handle in the slot.
#[test]
fn a_standalone_context_after_the_core_is_gone_frees_the_pool() {
    let heap = Heap::new();
    let mut server = server(&heap);
    let held = server.admit().unwrap();
    server.end_here(held, Outcome::Completed);
    let live = server.core().upgrade().unwrap();
    let context = live.context(live.ticket().unwrap()).unwrap(); // the kept slot
    drop(live);
    let before = freed();
    drop(server);
    assert_eq!(
        freed(),
        before,
        "the pool was freed under a context still out"
    );
    drop(context);
    assert_eq!(freed(), before + 1, "the pool outlived its last context");
}

/// A bundle ended through another server's accounting (of the same type) goes back to its own
/// pool, counted in its own ledger, and keeps no handle in the other pool. It fails when
/// `end_here` checks the slot into the accounting's pool whatever its server.
#[test]
fn a_bundle_ended_through_another_servers_accounting_goes_home() {
    let heap = Heap::new();
    let (mut one, mut other) = (server(&heap), server(&heap));
    let theirs = other.admit().unwrap();
    one.end_here(theirs, Outcome::Completed);
    assert_eq!(other.core().ledger().outcomes().completed, 1);
    assert_eq!(one.core().ledger().outcomes().completed, 0);
    assert_eq!(other.core().pool_metrics().in_use, 0);
    assert_eq!(one.core().pool_metrics().in_use, 0);
    assert_eq!(one.core().pool_metrics().allocated, 0);
    other.core().ledger().assert_quiescent();
    let mine = one.admit().unwrap();
    one.end_here(mine, Outcome::Completed);
    let before = freed();
    drop(other);
    assert_eq!(freed(), before + 1, "the other pool kept itself alive");
    drop(one);
    assert_eq!(freed(), before + 2);
}
