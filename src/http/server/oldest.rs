//! The connection a newcomer at the connection limit frees a slot from, found without reading
//! every connection: the one idle or reading its head the longest (eviction), and first the one
//! lingering longest after its close ([`EventLoop::close_oldest_lingering`]).
//!
//! Both were a scan of every connection per newcomer at the limit (`.min()` over the slab):
//! with 10,000 connections held, each newcomer read all of them, twice. An [`Oldest`] is a heap
//! of `(instant, key)` entries whose least valid one is what that `.min()` gave, the same
//! `(instant, key)` order, ties to the lower key. Entries are not removed one by one: one whose
//! connection moved on (closed, or its instant changed) is dropped when it comes to the top,
//! where the caller's `current` tells (stale, as the loop's timer entries are); the heap is
//! rebuilt from the connections once stale entries outnumber the live ones (plus 64).
//!
//! # Invariants
//!
//! 1. Lingering (eager, [`Oldest::eager`]): every connection eligible to close (lingering, not
//!    refused, nothing unsent, no acknowledgement awaited) has an entry with its current
//!    linger end. Its eligibility and end change only where the loop handles the connection,
//!    which then reschedules it through `EventLoop::reschedule_anew` (never its fast path: a
//!    lingering connection does not take it), where [`Oldest::note`] adds the entry.
//! 2. Eviction (a snapshot, [`Oldest::snapshot`]): every connection whose evictable instant is
//!    before `built_at` has an entry with it. A connection's instant changes where the loop
//!    handles it, and nearly always to the turn's clock (a read: its last activity; a head's
//!    first byte), which is never before `built_at`: only a connection that turns evictable
//!    with an older instant (a head begun behind an answer the handler was still making, a
//!    body read too slowly) needs an entry, and such a connection is never "alone"
//!    (`Connection::is_alone`), so it is rescheduled through `reschedule_anew`, which notes it.
//!    A connection whose instant is `built_at` or later has no entry; it can be chosen only
//!    once it is [`EVICT_MIN_IDLE`](super::EVICT_MIN_IDLE) old, so the snapshot is built anew
//!    (a scan) only when it holds no valid entry and `built_at` is at least that long ago:
//!    at most one scan per [`EVICT_MIN_IDLE`] however many newcomers come, where each newcomer
//!    scanned before.
//!
//! So the least valid entry, if any, is the least `(instant, key)` over every eligible
//! connection (1: all are in; 2: those not in are later than every entry), as the scan found.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A heap of `(instant, key)` candidates; see the module's header.
#[derive(Debug, Default)]
pub(super) struct Oldest {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    /// For a snapshot: when it was built (`None`: never, or an eager heap).
    built_at: Option<Instant>,
    /// An eager heap (invariant 1), not a snapshot (invariant 2).
    eager: bool,
    /// Connections read (`current` calls and scanned entries), for tests.
    #[cfg(test)]
    pub(super) examined: usize,
}

impl Oldest {
    /// A heap that has an entry for every eligible connection (invariant 1).
    pub(super) fn eager() -> Self {
        Oldest {
            eager: true,
            ..Oldest::default()
        }
    }

    /// A snapshot of the connections before its build instant (invariant 2).
    pub(super) fn snapshot() -> Self {
        Oldest::default()
    }

    /// Connection `key`'s instant is now `at` (`None`: not eligible): an entry if this heap
    /// must have one. `open` is how many connections there are, to keep stale entries bounded
    /// (`all` rebuilds it then).
    #[inline]
    pub(super) fn note<I>(
        &mut self,
        key: usize,
        at: Option<Instant>,
        open: usize,
        all: impl FnOnce() -> I,
    ) where
        I: Iterator<Item = (usize, Instant)>,
    {
        let Some(at) = at else {
            return;
        };
        let wanted = match self.built_at {
            _ if self.eager => true,
            Some(built_at) => at < built_at,
            None => false, // No snapshot yet: the first query builds one.
        };
        if wanted {
            self.heap.push(Reverse((at, key)));
            if self.heap.len() > 2 * open + 64 {
                let built_at = self.built_at;
                self.rebuild(all(), built_at);
            }
        }
    }

    /// The least `(instant, key)` over the eligible connections, or `None` if there is none
    /// (or, for a snapshot, none that can be [`EVICT_MIN_IDLE`](super::EVICT_MIN_IDLE) old at
    /// `now`). `current(key)` is connection `key`'s instant now (`None`: closed or not
    /// eligible); `all` lists every eligible connection's, for a rebuild.
    pub(super) fn least<I>(
        &mut self,
        now: Instant,
        min_age: std::time::Duration,
        mut current: impl FnMut(usize) -> Option<Instant>,
        all: impl FnOnce() -> I,
    ) -> Option<(Instant, usize)>
    where
        I: Iterator<Item = (usize, Instant)>,
    {
        let mut all = Some(all);
        loop {
            while let Some(&Reverse((at, key))) = self.heap.peek() {
                #[cfg(test)]
                {
                    self.examined += 1;
                }
                if current(key) == Some(at) {
                    return Some((at, key));
                }
                self.heap.pop(); // Stale: the connection moved on.
            }
            if self.eager {
                return None; // Every eligible connection has an entry (invariant 1).
            }
            // None before `built_at`: one after it is not `min_age` old before then.
            let due = self
                .built_at
                .is_none_or(|built_at| super::later(built_at, min_age) <= now);
            match all.take() {
                Some(all) if due => self.rebuild(all(), Some(now)),
                _ => return None,
            }
        }
    }

    /// The heap anew from `all`: for a snapshot, those before `built_at` (then its build).
    fn rebuild(&mut self, all: impl Iterator<Item = (usize, Instant)>, built_at: Option<Instant>) {
        self.built_at = built_at;
        let before = |at: Instant| self.eager || built_at.is_some_and(|b| at < b);
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        entries.clear();
        #[cfg(test)]
        let mut scanned = 0;
        for (key, at) in all {
            #[cfg(test)]
            {
                scanned += 1;
            }
            if before(at) {
                entries.push(Reverse((at, key)));
            }
        }
        #[cfg(test)]
        {
            self.examined += scanned;
        }
        self.heap = BinaryHeap::from(entries);
    }
}
