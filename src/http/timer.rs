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
    /// A sleep toward the earliest deadline that holds for a while: see [`Timers::timeout`].
    kept: Option<KeptSleep>,
}

/// A timeout computed on an earlier turn, made short enough to stay valid for a while.
#[derive(Debug, Clone, Copy)]
struct KeptSleep {
    /// The deadline it sleeps toward (the earliest when it was computed).
    wake: Instant,
    /// It stays valid while the clock is at or before this.
    until: Instant,
    /// `wake - until`: never past `wake` from any clock up to `until`.
    sleep: Duration,
}

/// Deadlines closer than this are slept toward exactly, every turn.
const KEEP_FROM: Duration = Duration::from_millis(4);

impl Timers {
    pub(crate) fn schedule(&mut self, at: Instant, key: usize) {
        self.heap.push(Reverse((at, key)));
    }

    /// How long `Poll::poll` may sleep: until the earliest deadline, `None` (forever) if none.
    ///
    /// A busy loop turns thousands of times a second toward the same far deadline (an idle
    /// timeout seconds away), and an `Instant` difference per turn is most of what the timers
    /// cost it. So the sleep to a deadline at least [`KEEP_FROM`] away is computed once and
    /// kept, halved, for the first half of it: from any clock in that half, half the sleep ends
    /// before the deadline. The poll may return early (at most half the sleep: then the next
    /// turn computes it anew, exactly), never late.
    #[inline]
    pub(crate) fn timeout(&mut self, now: Instant) -> Option<Duration> {
        let &Reverse((wake, _)) = self.heap.peek()?;
        match self.kept {
            Some(kept) if kept.wake == wake && now <= kept.until => Some(kept.sleep),
            _ => Some(self.sleep_toward(wake, now)),
        }
    }

    /// The exact sleep from `now` to `wake`, kept halved when `wake` is far enough.
    #[inline(never)]
    fn sleep_toward(&mut self, wake: Instant, now: Instant) -> Duration {
        let exact = wake.saturating_duration_since(now);
        self.kept = None;
        if exact >= KEEP_FROM {
            let sleep = exact / 2;
            self.kept = now
                .checked_add(sleep)
                .map(|until| KeptSleep { wake, until, sleep });
        }
        exact
    }

    /// Entries held, live and stale.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Keeps the entries `(at, key)` for which `keep` holds.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(Instant, usize) -> bool) {
        self.heap.retain(|Reverse((at, key))| keep(*at, *key));
    }

    /// The next entry due at `now`, if any. Inline: the loop asks after every turn, and nearly
    /// always nothing is due.
    #[inline]
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, usize)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A busy loop asks for its timeout on every turn toward the same far deadline: the sleep
    /// is computed once and kept (no `Instant` difference per turn), and from any clock it is
    /// kept for it never sleeps past the deadline; once the clock leaves that window, or the
    /// earliest deadline changes, it is computed exactly again.
    #[test]
    fn a_kept_timeout_never_sleeps_past_the_earliest_deadline() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        assert_eq!(timers.timeout(t0), None, "no timer: sleep until an event");
        let wake = t0 + Duration::from_secs(10);
        timers.schedule(wake, 1);
        assert_eq!(
            timers.timeout(t0),
            Some(Duration::from_secs(10)),
            "exact at first"
        );
        let mut kept_turns = 0;
        for ms in (0..=12_000).step_by(7) {
            let now = t0 + Duration::from_millis(ms);
            let sleep = timers.timeout(now).unwrap();
            let exact = wake.saturating_duration_since(now);
            assert!(
                sleep <= exact,
                "at {ms} ms: {sleep:?} sleeps past the deadline"
            );
            if sleep != exact {
                kept_turns += 1;
                assert!(sleep >= exact / 2, "at {ms} ms: {sleep:?} wakes too early");
            }
        }
        assert!(kept_turns > 600, "the sleep was kept on {kept_turns} turns");
        // An earlier deadline: exact at once.
        let now = t0 + Duration::from_millis(1);
        timers.schedule(now + Duration::from_millis(300), 2);
        assert_eq!(timers.timeout(now), Some(Duration::from_millis(300)));
        // A close deadline is slept toward exactly on every turn.
        let mut close = Timers::default();
        close.schedule(t0 + Duration::from_millis(3), 1);
        for us in [0, 100, 1_000, 2_900] {
            let now = t0 + Duration::from_micros(us);
            assert_eq!(close.timeout(now), Some(Duration::from_micros(3_000 - us)));
        }
    }
}
