//! Which answers a connection closed with output undelivered has lost, so that `served` counts
//! only answers the client could read (G8): both stacks take those back out of `served` and
//! count them `undelivered`.
//!
//! Both stacks count an answer `served` once it is whole in the server's output, before its
//! bytes reach the client. A connection closed before they have (the slow-reader cut, a close
//! linger that ran out with bytes unsent, a socket that failed, a force-close) loses what its
//! own buffers held, and, if the close resets it (the client still sends: input unread; or
//! the client reset), what the socket's send queue held: the kernel discards it. So each
//! connection notes, whenever its socket has taken everything the server wrote to it, how far
//! its output goes and how many answers counted `served` that holds ([`Delivery::mark`]); at
//! such a close, the bytes that reach the client ([`crate::unsent::deliverable`]: all written
//! to the socket, or, at a reset, those its TCP acknowledged) say which marks it got, and the
//! answers past the last of them are lost ([`Delivery::lost`]).
//!
//! # Invariants
//!
//! 1. Marks are in output order: neither their offsets nor their answer counts go down.
//! 2. `head` is the newest mark. Each mark at least [`SPACING`] bytes of output past the last
//!    one settled is settled too (kept in the ring of [`MARKS`]): settled marks are at least
//!    [`SPACING`] apart, so they reach at least `(MARKS - 1) * SPACING` bytes back, more than
//!    a socket's send queue holds (Linux's `tcp_wmem` default: 4 MiB). The newest the ring
//!    forgot is kept as `floor`.
//! 3. The [`RECENT`] marks before the head are kept too, however close: what a client's TCP
//!    acknowledged lags the output by a write or a few (its delayed ACK, the bytes in flight),
//!    so the answers of a client that read all and reset are counted exactly.
//! 4. Conservative: an answer counts as delivered only when a mark at or before the bytes
//!    that reach the client counts it. Answers past that mark are lost though some may have
//!    arrived: those of at most [`RECENT`] writes, else at most [`SPACING`] bytes of output,
//!    and what the socket took in one go after it.

/// How many settled marks a connection keeps.
const MARKS: usize = 16;
/// How many marks before the head a connection keeps, however close (invariant 3).
const RECENT: usize = 8;
static_assertions::const_assert!(RECENT.is_power_of_two());
/// The least output between two settled marks.
pub(crate) const SPACING: u64 = 256 * 1024;

/// After `offset` bytes of a connection's output, `answers` answers counted `served` were
/// whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Mark {
    offset: u64,
    answers: u64,
}

/// One connection's marks (see the module's invariants). Laid out by hand: what
/// [`mark`](Delivery::mark) reads on every write first, then its ring (one slot per new
/// mark), then what only a settled mark or a close reads (the mio server keeps it inside
/// each connection's socket, whose lines an event touches: docs/benchmarks-history.md, round 27).
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub(crate) struct Delivery {
    /// The newest mark.
    head: Mark,
    recent_next: usize,
    /// A mark at or past this offset is settled: [`SPACING`] past the last one settled.
    settle_at: u64,
    /// The marks before it, a ring; `recent_next % RECENT` is the oldest (the next replaced).
    recent: [Mark; RECENT],
    /// The settled marks, a ring; `next` is the oldest (the next one replaced).
    settled: [Mark; MARKS],
    next: usize,
    /// The newest settled mark the ring forgot.
    floor: Mark,
}

impl Delivery {
    /// The socket has taken every byte the server wrote to it, `offset` in all, and those hold
    /// `answers` answers counted `served`, whole. Inlined: nearly always there is no new answer
    /// since the last mark (a compare), or the new mark replaces the head, which joins the
    /// recent ones (a few stores).
    #[inline(always)]
    pub(crate) fn mark(&mut self, offset: u64, answers: u64) {
        debug_assert!(
            offset >= self.head.offset && answers >= self.head.answers,
            "marks go forward (invariant 1): {:?} after {:?}",
            (offset, answers),
            self.head
        );
        if self.head.answers != answers {
            // Masked, not checked: `RECENT` is a power of two.
            self.recent[self.recent_next % RECENT] = self.head;
            self.recent_next = self.recent_next.wrapping_add(1);
            self.head = Mark { offset, answers };
            if offset >= self.settle_at {
                self.settle();
            }
        }
    }

    /// The head is far enough past the last settled mark: it is settled too.
    #[cold]
    #[inline(never)]
    fn settle(&mut self) {
        let forgotten = std::mem::replace(&mut self.settled[self.next], self.head);
        if forgotten.answers > self.floor.answers {
            self.floor = forgotten;
        }
        self.next = (self.next + 1) % MARKS;
        self.settle_at = self.head.offset.saturating_add(SPACING);
    }

    /// Of `answers` (every answer counted `served` on the connection, in output order), how
    /// many its client may not get whole, when the first `delivered` bytes of output reach
    /// it: those past the last mark within them.
    pub(crate) fn lost(&self, answers: u64, delivered: u64) -> u64 {
        let got = self
            .settled
            .iter()
            .chain(&self.recent)
            .chain([&self.head, &self.floor])
            .filter(|mark| mark.offset <= delivered)
            .map(|mark| mark.answers)
            .max()
            .unwrap_or(0);
        answers.saturating_sub(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `mark` reads on every write leads the marks, in their first 32 bytes, and the
    /// ring of recent marks comes before the settled ones (see `Delivery`).
    #[test]
    fn a_writes_mark_reads_the_first_bytes() {
        use std::mem::offset_of;
        let per_write = [
            offset_of!(Delivery, head),
            offset_of!(Delivery, recent_next),
            offset_of!(Delivery, settle_at),
        ];
        assert!(per_write.iter().all(|&at| at < 32));
        assert!(offset_of!(Delivery, recent) < offset_of!(Delivery, settled));
        assert!(offset_of!(Delivery, recent) < offset_of!(Delivery, floor));
    }

    #[test]
    fn answers_within_the_delivered_bytes_are_delivered_and_the_rest_lost() {
        let mut delivery = Delivery::default();
        delivery.mark(100, 1);
        delivery.mark(100, 1); // nothing new
        delivery.mark(250, 3);
        assert_eq!(delivery.lost(3, 250), 0);
        assert_eq!(delivery.lost(3, 249), 2, "the first mark is a recent one");
        assert_eq!(
            delivery.lost(4, 10_000),
            1,
            "an answer not marked yet is lost"
        );
        assert_eq!(delivery.lost(3, 0), 3);
    }

    #[test]
    fn marks_keep_their_spacing_and_the_ring_forgets_into_its_floor() {
        let mut delivery = Delivery::default();
        for answers in 1..=100u64 {
            delivery.mark(answers * SPACING, answers);
        }
        // The newest marks are exact, one SPACING apart.
        assert_eq!(delivery.lost(100, 100 * SPACING), 0);
        assert_eq!(delivery.lost(100, 99 * SPACING), 1);
        assert_eq!(delivery.lost(100, 99 * SPACING - 1), 2);
        // Past the ring: the floor (the newest forgotten mark), then nothing.
        let floor = 100 - MARKS as u64;
        assert_eq!(delivery.lost(100, floor * SPACING), 100 - floor);
        assert_eq!(
            delivery.lost(100, floor * SPACING - 1),
            100,
            "conservative: all lost"
        );
    }

    #[test]
    fn the_marks_of_the_last_writes_are_kept_however_close() {
        let mut delivery = Delivery::default();
        for answers in 1..=100u64 {
            delivery.mark(answers * 100, answers);
        }
        // A client that read all and reset before acknowledging the last answer or few.
        assert_eq!(delivery.lost(100, 100 * 100), 0);
        assert_eq!(delivery.lost(100, 100 * 100 - 1), 1);
        assert_eq!(delivery.lost(100, 92 * 100), 8);
        assert_eq!(
            delivery.lost(100, 92 * 100 - 1),
            99,
            "past the recent marks: the first, settled, one"
        );
    }

    #[test]
    fn many_small_answers_are_marked_at_least_spacing_apart() {
        let mut delivery = Delivery::default();
        for answers in 1..=10_000u64 {
            delivery.mark(answers * 100, answers);
        }
        // Delivered, far behind the last writes: the answers of the last settled mark at or
        // before the bytes delivered, which is less than SPACING (plus a mark's step) behind.
        let lost = delivery.lost(10_000, 500_000);
        assert!(lost >= 5_000, "{lost}");
        assert!(lost <= 5_000 + SPACING / 100 + 1, "{lost}");
        assert_eq!(delivery.lost(10_000, 1_000_000), 0);
    }
}
