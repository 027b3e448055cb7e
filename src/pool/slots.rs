//! The context pool: a `!Sync` free list of boxed contexts.
//!
//! A checkout moves a `Box<C>` out of the free list into the guard; a release moves it back.
//! There are no slot ids, so a stale id cannot name a reused slot (no ABA).
//!
//! # Invariants
//!
//! 1. `free.len() + pooled_in_use == allocated <= capacity`.
//! 2. `free` never reallocates: it is created with `capacity` room and holds pooled boxes only.
//! 3. Every box in `free` has been recycled.

use std::cell::{Cell, RefCell};

use super::metrics::{Exhaustion, PoolMetrics};
use super::recycle::Recycle;

/// Where a checked-out context came from, and so where it goes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Pooled,
    Spilled,
}

pub(crate) struct ContextPool<C> {
    free: RefCell<Vec<Box<C>>>,
    capacity: usize,
    exhaustion: Exhaustion,
    allocated: Cell<usize>,
    in_use: Cell<usize>,
    high_water: Cell<usize>,
    spills: Cell<u64>,
    refusals: Cell<u64>,
}

impl<C: Recycle> ContextPool<C> {
    pub(crate) fn new(capacity: usize, exhaustion: Exhaustion) -> Self {
        ContextPool {
            free: RefCell::new(Vec::with_capacity(capacity)),
            capacity,
            exhaustion,
            allocated: Cell::new(0),
            in_use: Cell::new(0),
            high_water: Cell::new(0),
            spills: Cell::new(0),
            refusals: Cell::new(0),
        }
    }

    /// Allocates up to `count` pooled contexts now, so the first requests do not.
    pub(crate) fn prewarm(&self, count: usize) {
        let mut free = self.free.borrow_mut();
        while self.allocated.get() < count.min(self.capacity) {
            free.push(Box::default());
            self.allocated.set(self.allocated.get() + 1);
        }
    }

    /// A context, or `None` when the pool is exhausted and refuses.
    #[inline]
    pub(crate) fn checkout(&self) -> Option<(Box<C>, Origin)> {
        let taken = match self.free.borrow_mut().pop() {
            Some(slot) => (slot, Origin::Pooled),
            None if self.allocated.get() < self.capacity => {
                self.allocated.set(self.allocated.get() + 1);
                (Box::default(), Origin::Pooled)
            }
            None => match self.exhaustion {
                Exhaustion::Spill => {
                    self.spills.set(self.spills.get() + 1);
                    (Box::default(), Origin::Spilled)
                }
                Exhaustion::Refuse => {
                    self.refusals.set(self.refusals.get() + 1);
                    return None;
                }
            },
        };
        let in_use = self.in_use.get() + 1;
        self.in_use.set(in_use);
        if in_use > self.high_water.get() {
            self.high_water.set(in_use);
        }
        Some(taken)
    }

    #[inline]
    pub(crate) fn checkin(&self, mut slot: Box<C>, origin: Origin) {
        self.in_use.set(self.in_use.get() - 1);
        if origin == Origin::Pooled {
            slot.recycle();
            self.free.borrow_mut().push(slot);
        }
    }

    pub(crate) fn metrics(&self) -> PoolMetrics {
        PoolMetrics {
            capacity: self.capacity,
            in_use: self.in_use.get(),
            high_water: self.high_water.get(),
            allocated: self.allocated.get(),
            spills: self.spills.get(),
            refusals: self.refusals.get(),
        }
    }
}
