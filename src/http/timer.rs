//! Timers without an async runtime: a min-heap of deadlines that sets the `Poll` timeout.
//!
//! Entries are not removed one by one. A connection may have stale entries (its deadline
//! moved, or it closed); firing one is harmless because the connection re-checks its own
//! deadlines, and the loop drops them in bulk (`retain`) once they outnumber the live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Timers {
    pub(crate) fn schedule(&mut self, at: Instant, key: usize) {
        self.heap.push(Reverse((at, key)));
    }

    /// How long `Poll::poll` may sleep: until the earliest deadline, `None` (forever) if none.
    pub(crate) fn timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(now))
    }

    /// Entries held, live and stale.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Keeps the entries `(at, key)` for which `keep` holds.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(Instant, usize) -> bool) {
        self.heap.retain(|Reverse((at, key))| keep(*at, *key));
    }

    /// The next entry due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, usize)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }
}
