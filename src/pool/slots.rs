//! The context pool: a `!Sync` free list of boxed slots, each a context and what travels with
//! it (the signal kept beside it; an admitted bundle's pool handle and ledger entry while one
//! holds it).
//!
//! A checkout moves a `Box<Slot<C>>` out of the free list into the guard; a release moves it
//! back. An admitted bundle keeps its signal, server and ledger entry in the slot, so the
//! bundle itself is one pointer (and its payload) and is not copied between stack slots.
//! There are no slot ids, so a stale id cannot name a reused slot (no ABA). A context given
//! back by an admitted bundle keeps that bundle's abort signal beside it when nobody else holds
//! the signal, so the next bundle takes both in one pop (a spare signal of the registry's
//! otherwise).
//!
//! # Invariants
//!
//! 1. `free_len + cached + pooled_in_use == allocated <= capacity` (`cached`: 1 while `last`
//!    holds a slot): the pooled contexts in use are counted by that difference, the spilled
//!    ones by `spilled_out`, so a checkout or a check-in counts only the list's length (and
//!    one from `last`, nothing).
//! 2. The free list (a stack threaded through the slots' `next`) holds pooled slots only,
//!    `free_len` of them. Nothing is reserved up front (an absurd capacity costs nothing) and
//!    nothing grows: a check-in is two pointer moves. A slot out of the list has no `next`.
//! 3. Every slot in the free list or `last` has been recycled, and every signal beside one is reset and
//!    has no other handle (as the registry's spares: `SignalRegistry` invariant 2).
//! 4. User code (`C::default`, `Recycle::recycle`, a context's `Drop`) never runs between a
//!    take of the list's top and its replacement, and a panic in it costs no capacity and does
//!    not escape: a slot is counted in `allocated` from the moment its context is being made
//!    (a `Default` that re-enters the pool sees it taken) and given back if `C::default`
//!    panics; a context whose `recycle` panicked is freed and uncounted (the pool makes a
//!    fresh one when it needs it). A spilled context's `Drop`, and the pooled ones' when the
//!    pool is freed (one by one, not recursively), run caught.
//! 5. `last` holds the slot given back last, if the check-in after it has not moved it to the
//!    free list nor a checkout taken it: the free list's top in all but name (the checkout
//!    takes it first, so slots still go out last in, first out), kept out of the list so that
//!    a request admitted and completed in turn (a pipeline answered at once) takes its slot
//!    back without the list's pointer moves and count. It holds a recycled pooled slot, never
//!    an unnoted one: a check-in's slot was checked out (`first_checkout` noted it), and
//!    `made` moves it to the list before it marks the list's slots.
//! 6. Every slot holds a signal (`Slot::signal` is not an `Option`), from the moment it is
//!    made (a spare of the registry's, or a new one) until it is freed (to the spares). A
//!    release that cannot leave the bundle's signal there as it is resets it in place when
//!    nobody else holds it, else swaps it for a spare (or a new one); a refused build the same.
//! 7. A slot holds its pool's handle (`Slot::pool`) while an admitted bundle holds it, and
//!    in `last` after a release through the server's own accounting (the sealed
//!    `Accounting::end_here` of the `server` feature, which runs while the server core is
//!    alive and gives the pool by the core's handle; only the server calls it, for a request
//!    the same accounting admitted within the same borrow of its dispatcher, so the slot is
//!    that pool's own and the release checks nothing of it): the next bundle takes the slot
//!    with its handle, so a request answered at once neither clones nor drops the pool's
//!    `Rc`. Nowhere else: every other release takes the handle out of the slot
//!    before the check-in, a slot put on the free list lets go of it, a standalone
//!    `RequestContext` lets go of it at its checkout, and the core's drop takes it from the
//!    slot in `last`. So the one cycle (the pool, its `last`, the slot, the pool) lives only
//!    while the core does, and the pool is freed with the last bundle out (G5).
//! 8. A spilled slot's signal is touched (invariant 6 of `SignalState`) from its checkout
//!    until its release: nothing clears the flag in between (only a release or a reset does,
//!    and neither runs on a signal an admitted bundle holds). So a release that finds its
//!    signal untouched (the mio server's common case) holds a pooled slot, and checks it in
//!    without reading its origin ([`ContextPool::checkin_pooled`]).

use std::cell::Cell;
use std::rc::Rc;

use super::metrics::{Exhaustion, PoolMetrics};
use super::recycle::Recycle;
use crate::callback::{call_caught, drop_cold, forget_none};
use crate::ledger::BundleEntry;
use crate::server::shared::Shared;
use crate::signal::AbortSignal;

/// Where a context came from: the pool, or the heap because the pool was exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Pooled,
    /// Pooled, in the free list since before the high water last counted it (prewarmed, or
    /// given back while a context was being made): its next checkout may raise the high water
    /// (the only checkouts from the free list that can).
    Unnoted,
    Spilled,
}

/// The pool's unit of storage: a context and what travels with it, in one allocation, so that
/// an admitted bundle is one pointer (kept in a register, not copied between stack slots).
pub(crate) struct Slot<C> {
    pub(crate) context: C,
    /// Fixed when the slot is made.
    pub(crate) origin: Origin,
    /// Always a signal (invariant 6), not an `Option`: the admission, the handler's
    /// `Request::signal` and the release test nothing to find it. In the free list: a reset
    /// signal nobody else holds, kept for the next bundle. Out with an admitted bundle: the
    /// bundle's signal (it stays here for the next bundle when nobody else holds it at the
    /// release, reset in place when it fired or a listener waits; another handle's is swapped
    /// for a spare, or a new one). Out as a standalone context: one nobody uses.
    pub(crate) signal: AbortSignal,
    /// The pool's handle, and through it the server (ledger, drain, spare signals): `Some`
    /// while an admitted bundle holds the slot (G5: the server lives until its last bundle
    /// ends), and in `last` after a release through the server's own accounting (invariant
    /// 7); `None` everywhere else, or the pool would be a cycle.
    pub(crate) pool: Option<Rc<ContextPool<C>>>,
    /// Out with an admitted bundle: its ledger entry; the default (no bundle's) elsewhere.
    pub(crate) entry: BundleEntry,
    /// In the free list: the slot under it (the list is threaded through the slots).
    next: Option<Box<Slot<C>>>,
}

impl<C: Recycle> Slot<C> {
    /// A slot with a new context (`C::default`, user code: it may panic) and `signal` beside
    /// it (a spare of the registry's, or a new one: invariant 6). If `C::default` panics, the
    /// signal drops as a last handle does: back to the spares.
    fn new(origin: Origin, signal: AbortSignal) -> Box<Self> {
        Box::new(Slot {
            context: C::default(),
            origin,
            signal,
            pool: None,
            entry: BundleEntry::default(),
            next: None,
        })
    }

    /// Frees the slot (its context's `Drop` runs caught: user code) and gives its signal to
    /// the registry's spares, as its last handle would (invariant 3: reset, no other handle).
    #[inline]
    fn free(self: Box<Self>, home: &Shared) {
        // A second handle first: the slot's own then drops without recycling (it is not the
        // last), and this one goes to the spares.
        let state = Rc::clone(self.signal.state());
        call_caught(move || drop(self));
        home.signals.recycle(state);
    }
}

pub(crate) struct ContextPool<C> {
    /// The server the pool belongs to: an admitted bundle holds the pool, and through it the
    /// server (one `Rc` per bundle, not two).
    home: Rc<Shared>,
    /// The free list's top: a stack threaded through the slots, so a checkout or a check-in
    /// is two pointer moves (no borrow flag, no length or capacity to check, no growth).
    free: Cell<Option<Box<Slot<C>>>>,
    free_len: Cell<usize>,
    /// The slot given back last, ahead of the free list (invariant 5).
    last: Cell<Option<Box<Slot<C>>>>,
    capacity: usize,
    exhaustion: Exhaustion,
    allocated: Cell<usize>,
    /// Spilled contexts not given back yet.
    spilled_out: Cell<usize>,
    /// Most contexts in use at once. It can only rise when a context is made (the free list is
    /// empty: every pooled context is in use, invariant 1) or a prewarmed one is checked out
    /// the first time (the free list's positions below its lowest point so far still hold
    /// prewarmed slots), so it is updated on those cold paths alone.
    high_water: Cell<usize>,
    spills: Cell<u64>,
    refusals: Cell<u64>,
    recycle_panics: Cell<u64>,
}

impl<C: Recycle> ContextPool<C> {
    pub(crate) fn new(home: Rc<Shared>, capacity: usize, exhaustion: Exhaustion) -> Self {
        ContextPool {
            home,
            free: Cell::new(None),
            free_len: Cell::new(0),
            last: Cell::new(None),
            capacity,
            exhaustion,
            allocated: Cell::new(0),
            spilled_out: Cell::new(0),
            high_water: Cell::new(0),
            spills: Cell::new(0),
            refusals: Cell::new(0),
            recycle_panics: Cell::new(0),
        }
    }

    /// The server this pool belongs to.
    #[inline]
    pub(crate) fn home(&self) -> &Rc<Shared> {
        &self.home
    }

    /// Allocates up to `count` pooled contexts now, so the first requests do not.
    pub(crate) fn prewarm(&self, count: usize) {
        while self.allocated.get() < count.min(self.capacity) {
            let mut slot = self.allocate();
            slot.origin = Origin::Unnoted;
            self.push_free(slot);
        }
    }

    /// Puts `slot` on top of the free list, without its pool's handle (invariant 7).
    #[inline(always)]
    fn push_free(&self, mut slot: Box<Slot<C>>) {
        // Not the pool's last handle: the caller's `&self` came through another one.
        drop(slot.pool.take());
        // A slot out of the free list has no `next`, and the list's top is taken before it is
        // set: the old values are `None`.
        forget_none(std::mem::replace(&mut slot.next, self.free.take()));
        forget_none(self.free.replace(Some(slot)));
        self.free_len.set(self.free_len.get() + 1);
    }

    /// Takes the slot on top of the free list.
    #[inline(always)]
    fn pop_free(&self) -> Option<Box<Slot<C>>> {
        let mut slot = self.free.take()?;
        forget_none(self.free.replace(slot.next.take())); // taken just above
        self.free_len.set(self.free_len.get() - 1);
        Some(slot)
    }

    /// A new pooled slot. It is counted before `C::default` runs (unborrowed: it may panic or
    /// re-enter the pool): a `Default` that admits a request of this server finds the slot
    /// taken, so the pool never grows past its capacity; a panic gives the slot back.
    #[cold]
    #[inline(never)]
    fn allocate(&self) -> Box<Slot<C>> {
        self.allocated.set(self.allocated.get() + 1);
        scopeguard::defer_on_unwind! {
            self.allocated.set(self.allocated.get() - 1);
        }
        Slot::new(Origin::Pooled, AbortSignal::mint(&self.home))
    }

    /// A slot, or `None` when the pool is exhausted and refuses.
    #[inline]
    pub(crate) fn checkout(&self) -> Option<Box<Slot<C>>> {
        match self.pop() {
            Some(slot) => Some(slot),
            None => self.checkout_new(),
        }
    }

    /// A slot: the one given back last (invariant 5), else the free list's top; `None` if
    /// both are empty. Runs no user code.
    #[inline]
    pub(crate) fn pop(&self) -> Option<Box<Slot<C>>> {
        match self.last.take() {
            Some(slot) => Some(slot),
            None => self.pop_listed(),
        }
    }

    /// A slot from the free list, or `None` if it is empty.
    #[cold]
    #[inline(never)]
    fn pop_listed(&self) -> Option<Box<Slot<C>>> {
        match self.pop_free() {
            Some(slot) if slot.origin == Origin::Unnoted => Some(self.first_checkout(slot)),
            popped => popped,
        }
    }

    /// An unnoted slot's checkout: the in-use count may be at a new high; from now on an
    /// ordinary pooled slot.
    #[cold]
    #[inline(never)]
    fn first_checkout(&self, mut slot: Box<Slot<C>>) -> Box<Slot<C>> {
        slot.origin = Origin::Pooled;
        self.note_high_water();
        slot
    }

    /// The free list is empty: a new pooled slot below capacity, else the exhaustion
    /// policy's answer.
    #[cold]
    pub(crate) fn checkout_new(&self) -> Option<Box<Slot<C>>> {
        if self.allocated.get() < self.capacity {
            let slot = self.allocate();
            self.made();
            return Some(slot);
        }
        match self.exhaustion {
            Exhaustion::Spill => {
                self.spilled_out.set(self.spilled_out.get() + 1);
                // Counted as out before `C::default` runs, given back if it panics.
                let spilled = {
                    scopeguard::defer_on_unwind! {
                        self.spilled_out.set(self.spilled_out.get() - 1);
                    }
                    Slot::new(Origin::Spilled, AbortSignal::mint(&self.home))
                };
                // Touched until its release (invariant 8): the release's untouched path
                // meets pooled slots only.
                spilled.signal.state().touch();
                self.spills.set(self.spills.get() + 1);
                self.made();
                Some(spilled)
            }
            Exhaustion::Refuse => {
                self.refusals.set(self.refusals.get() + 1);
                None
            }
        }
    }

    /// Takes a slot back (its bundle or standalone context ended), with the signal in it to
    /// keep beside it (a reset signal with no other handle, invariant 3; a spilled or lost
    /// slot's goes to the registry's spares), and its pool's handle only from a release
    /// through the server's own accounting (invariant 7). `recycle` runs on its own: if it
    /// panics, the slot is freed and uncounted, so the pool keeps its capacity.
    #[inline(always)]
    pub(crate) fn checkin(&self, slot: Box<Slot<C>>) {
        if slot.origin == Origin::Spilled {
            self.spilled_out.set(self.spilled_out.get() - 1);
            // Freeing runs the context's `Drop` (user code) inside the request's release: a
            // panic there must not skip the rest of the release.
            slot.free(&self.home);
            return;
        }
        self.checkin_pooled(slot);
    }

    /// [`checkin`](ContextPool::checkin) of a slot known to be pooled: a release whose
    /// signal was untouched (invariant 8: a spilled slot's never is), so the origin is not
    /// read.
    #[inline(always)]
    pub(crate) fn checkin_pooled(&self, mut slot: Box<Slot<C>>) {
        debug_assert!(
            slot.origin != Origin::Spilled,
            "a spilled slot checked in as pooled (its signal untouched: invariant 8)"
        );
        if call_caught(|| slot.context.recycle()) {
            self.lose(slot);
            return;
        }
        // Kept ahead of the list for the next checkout; the one kept before goes on the list
        // (invariant 5).
        if let Some(older) = self.last.replace(Some(slot)) {
            self.push_older(older);
        }
    }

    /// The slot `last` held goes on the free list (a check-in while another is in `last`:
    /// requests out together), letting go of its pool's handle if it kept one.
    #[cold]
    #[inline(never)]
    fn push_older(&self, slot: Box<Slot<C>>) {
        self.push_free(slot);
    }

    /// The server core is going: the slot in `last` lets go of its pool's handle (invariant
    /// 7), so the pool is freed with the last bundle out, not kept by its own slot.
    pub(crate) fn let_go_of_kept_handle(&self) {
        if let Some(mut slot) = self.last.take() {
            let kept = slot.pool.take();
            // Taken just above: nothing to drop. Nor is `kept` the pool's last handle: the core
            // still holds one.
            forget_none(self.last.replace(Some(slot)));
            drop(kept);
        }
    }

    /// A slot whose `recycle` panicked: freed and uncounted, its signal to the spares.
    #[cold]
    #[inline(never)]
    fn lose(&self, slot: Box<Slot<C>>) {
        self.allocated.set(self.allocated.get() - 1);
        self.recycle_panics.set(self.recycle_panics.get() + 1);
        // Its `Drop` runs on its own too: a context that panics once may panic again.
        slot.free(&self.home);
    }

    /// Contexts in use now: pooled ones neither in the free list nor in `last`, and spilled
    /// ones (invariant 1).
    fn in_use(&self) -> usize {
        let last = self.last.take();
        let cached = usize::from(last.is_some());
        forget_none(self.last.replace(last)); // taken just above
        self.allocated.get() - self.free_len.get() - cached + self.spilled_out.get()
    }

    /// A context was just made for a checkout: the in-use count may be at a new high. The
    /// free list was empty when it was asked for; slots in it now were given back by user code
    /// while the context was made (`C::default`), so each is marked for its next checkout to
    /// count the high water again (invariant 1 no longer bounds them).
    fn made(&self) {
        // A slot given back meanwhile may be in `last`: on the list, it is marked with the
        // others (invariant 5: `last` never holds an unnoted slot).
        if let Some(slot) = self.last.take() {
            self.push_free(slot);
        }
        self.note_high_water();
        if self.free_len.get() > 0 {
            self.mark_free_unnoted();
        }
    }

    #[cold]
    #[inline(never)]
    fn mark_free_unnoted(&self) {
        let mut top = self.free.take();
        let mut next = top.as_deref_mut();
        while let Some(slot) = next {
            slot.origin = Origin::Unnoted;
            next = slot.next.as_deref_mut();
        }
        if let Some(stale) = self.free.replace(top) {
            drop_cold(stale); // never: nothing runs between the take and this
        }
    }

    fn note_high_water(&self) {
        let in_use = self.in_use();
        if in_use > self.high_water.get() {
            self.high_water.set(in_use);
        }
    }

    pub(crate) fn metrics(&self) -> PoolMetrics {
        PoolMetrics {
            capacity: self.capacity,
            in_use: self.in_use(),
            high_water: self.high_water.get(),
            allocated: self.allocated.get(),
            spills: self.spills.get(),
            refusals: self.refusals.get(),
            recycle_panics: self.recycle_panics.get(),
        }
    }
}

impl<C> Drop for ContextPool<C> {
    /// Frees the pooled contexts, each on its own: a context's `Drop` is user code.
    fn drop(&mut self) {
        // One by one: dropping the top would drop the list under it recursively. The slot in
        // `last` first, as the list's top.
        let mut top = self.free.take();
        if let Some(mut slot) = self.last.take() {
            slot.next = top;
            top = Some(slot);
        }
        while let Some(mut slot) = top {
            top = slot.next.take();
            // The signal is freed with the pool, not handed to the spare list as a last handle
            // would be: a second handle keeps the slot's own from being the last.
            let state = Rc::clone(slot.signal.state());
            call_caught(move || drop(slot));
            drop(state); // reset: no listener, nothing to run
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engines::Heap;
    use crate::{Config, Exhaustion, ServerCore};

    /// In-use and high-water figures are derived (counted on the cold paths alone): they must
    /// still be exact through prewarmed slots, reuse, spills and releases.
    #[test]
    fn in_use_and_high_water_stay_exact_without_hot_path_counts() {
        let heap = Heap::new();
        let config = Config::default()
            .with_pool_capacity(3)
            .unwrap()
            .with_prewarm(2)
            .with_exhaustion(Exhaustion::Spill);
        let core = ServerCore::embedded(heap.alloc("server"), config);
        let live = core.upgrade().unwrap();
        let figures = || {
            let m = core.pool_metrics();
            (m.in_use, m.high_water, m.allocated)
        };
        assert_eq!(figures(), (0, 0, 2)); // prewarmed: allocated, not in use
        let a = live.admit(|_| Ok(())).unwrap();
        assert_eq!(figures(), (1, 1, 2)); // a prewarmed slot's first checkout
        a.complete();
        let a = live.admit(|_| Ok(())).unwrap(); // the same slot again: no new high
        assert_eq!(figures(), (1, 1, 2));
        let b = live.admit(|_| Ok(())).unwrap(); // the second prewarmed slot
        assert_eq!(figures(), (2, 2, 2));
        let c = live.admit(|_| Ok(())).unwrap(); // made: the free list was empty
        let d = live.admit(|_| Ok(())).unwrap(); // spilled: the pool is exhausted
        assert!(d.is_spilled());
        assert_eq!(figures(), (4, 4, 3));
        drop((a, b, c, d));
        assert_eq!(figures(), (0, 4, 3));
        let again: Vec<_> = (0..3).map(|_| live.admit(|_| Ok(())).unwrap()).collect();
        assert_eq!(figures(), (3, 4, 3));
        drop(again);
        core.ledger().assert_quiescent();
    }

    /// The slot given back last is kept ahead of the free list (invariant 5): counted free,
    /// taken first (slots go out last in, first out), and freed with the pool. Each assertion
    /// fails when `in_use` forgets it, or when a checkout takes the list's top before it.
    #[test]
    fn the_slot_given_back_last_is_counted_free_and_taken_first() {
        let heap = Heap::new();
        let config = Config::default()
            .with_pool_capacity(3)
            .unwrap()
            .with_prewarm(1);
        let core = ServerCore::embedded(heap.alloc("server"), config);
        let live = core.upgrade().unwrap();
        let figures = || {
            let m = core.pool_metrics();
            (m.in_use, m.high_water, m.allocated)
        };
        let place = |bundle: &crate::Admitted<(), ()>| std::ptr::from_ref(bundle.context());
        let a = live.admit(|_| Ok(())).unwrap();
        let b = live.admit(|_| Ok(())).unwrap();
        let (pa, pb) = (place(&a), place(&b));
        assert_eq!(figures(), (2, 2, 2));
        a.complete(); // kept ahead of the list
        assert_eq!(figures(), (1, 2, 2));
        b.complete(); // kept; `a`'s goes on the list
        assert_eq!(figures(), (0, 2, 2));
        let c = live.admit(|_| Ok(())).unwrap();
        assert_eq!(place(&c), pb, "the slot given back last goes out first");
        assert_eq!(figures(), (1, 2, 2));
        let d = live.admit(|_| Ok(())).unwrap();
        assert_eq!(place(&d), pa);
        d.complete();
        c.complete();
        assert_eq!(figures(), (0, 2, 2));
        let e = live.admit(|_| Ok(())).unwrap();
        assert_eq!(place(&e), pb);
        e.complete();
        core.ledger().assert_quiescent();
        drop(live);
        drop(core); // frees the list and the slot kept ahead of it
    }

    /// The free list is threaded through its slots: freeing a long one must not recurse (a
    /// recursive drop of 200,000 slots overflows a test thread's stack).
    #[test]
    fn a_long_free_list_is_freed_one_slot_at_a_time() {
        let heap = Heap::new();
        let config = Config::default()
            .with_pool_capacity(200_000)
            .unwrap()
            .with_prewarm(200_000);
        let core = ServerCore::embedded(heap.alloc("server"), config);
        assert_eq!(core.pool_metrics().allocated, 200_000);
        drop(core);
    }
}
