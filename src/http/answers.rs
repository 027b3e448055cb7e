//! One connection's answers in request order: the bytes being written to its socket, and the
//! queue of answers behind a deferred one.
//!
//! # Invariants
//!
//! 1. Answers leave in request order: `output` only ever receives the answer of the oldest
//!    request without one; later answers wait in `queue` (as `Ready` bytes once computed).
//! 2. `queued_bytes` is the total length of the `Ready` slots and of the lent body, so
//!    [`Answers::unsent`] is every byte answered and not yet written: what back-pressure
//!    compares with `max_output`.
//! 3. A slot holding guards (`Waiting`, or `Ready` with `held`) is one admitted request in
//!    flight; it leaves the queue only through [`Answers::pop_due`] (to be written) or
//!    [`Answers::drain_held`] (to be aborted).
//! 4. `lent` is empty, or it is the body of the answer whose head ends `output`, lent by its
//!    response instead of copied ([`Answers::lend`]): it goes out right after `output` and takes
//!    its place once `output` is written. It is lent only with nothing queued, and only when
//!    longer than `max_output`: back-pressure then pauses the parsing until it is written, so
//!    nothing is appended to `output` (nor another body lent) meanwhile.

use std::collections::VecDeque;
use std::time::Instant;

use super::response::Wire;
use super::router::Route;

/// An answer that could not go out yet because an earlier one is not written.
pub(crate) enum Slot<'r, H> {
    /// A deferred response: the request's guards wait here until `due`.
    Waiting {
        held: H,
        due: Instant,
        route: &'r Route,
        token: u64,
        /// How its answer is framed (version, close, and whether the request was `HEAD`).
        wire: Wire,
    },
    /// A computed answer; `held` are the guards of its request, released once it is written.
    Ready {
        bytes: Vec<u8>,
        close: bool,
        held: Option<H>,
    },
}

/// Buffers above this capacity are given back once empty.
const KEEP_CAPACITY: usize = 64 * 1024;
/// Emptied answer buffers kept for reuse: so at most `MAX_SPARE * KEEP_CAPACITY` bytes.
const MAX_SPARE: usize = 4;

/// Gives back most of `buf`'s capacity if it is over [`KEEP_CAPACITY`] and its last use
/// (`used` bytes, just emptied; 0: it was not used since, no decision) was small. A connection
/// that sends large bodies one after another keeps its buffers (shrinking after each made the
/// next one reallocate: three `mremap`s per 64 KiB echo); one that goes back to small requests
/// gives them back at its next small one. Either way a buffer holds at most what one request of
/// the limits needs (docs/server.md, "Memory per connection"). Inlined: it runs on every
/// emptied buffer, and nearly always finds nothing to do.
#[inline]
pub(crate) fn shrink(buf: &mut Vec<u8>, used: usize) {
    if buf.capacity() > KEEP_CAPACITY && (1..=KEEP_CAPACITY / 4).contains(&used) {
        shrink_now(buf);
    }
}

#[cold]
fn shrink_now(buf: &mut Vec<u8>) {
    buf.shrink_to(KEEP_CAPACITY / 4);
}

pub(crate) struct Answers<'r, H> {
    pub(crate) output: Vec<u8>,
    written: usize,
    /// A large answer's body, lent by its response (see invariant 4); empty otherwise.
    lent: Vec<u8>,
    queue: VecDeque<Slot<'r, H>>,
    queued_bytes: usize,
    /// Emptied answer buffers, reused for answers queued behind a deferred one.
    spare: Vec<Vec<u8>>,
}

impl<'r, H> Answers<'r, H> {
    pub(crate) fn new() -> Self {
        Answers {
            output: Vec::new(),
            written: 0,
            lent: Vec::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            spare: Vec::new(),
        }
    }

    /// Bytes to write to the socket now.
    #[inline]
    pub(crate) fn pending(&self) -> &[u8] {
        &self.output[self.written..]
    }

    /// The lent body, which goes out after [`pending`](Answers::pending) (empty: none).
    #[inline]
    pub(crate) fn lent(&self) -> &[u8] {
        &self.lent
    }

    /// `n` bytes of [`pending`](Answers::pending), then of the [`lent`](Answers::lent) body,
    /// were written.
    pub(crate) fn consume(&mut self, n: usize) {
        if self.lent.is_empty() {
            return self.consume_unlent(n);
        }
        self.written = self.written.saturating_add(n);
        if self.written >= self.output.len() {
            self.take_lent();
        }
    }

    /// [`consume`](Answers::consume) when no body is lent.
    #[inline]
    pub(crate) fn consume_unlent(&mut self, n: usize) {
        debug_assert!(self.lent.is_empty());
        self.written = self.written.saturating_add(n);
        if self.written >= self.output.len() {
            let used = self.output.len();
            self.output.clear();
            self.written = 0;
            shrink(&mut self.output, used);
        }
    }

    /// `output` is written: the lent body takes its place (what was written of it already
    /// counted), and its buffer, emptied, waits for the next head.
    #[cold]
    fn take_lent(&mut self) {
        let into_lent = self.written - self.output.len();
        self.queued_bytes -= self.lent.len();
        std::mem::swap(&mut self.output, &mut self.lent);
        self.lent.clear();
        self.written = 0;
        self.consume(into_lent);
    }

    /// Lends `scratch` (the response's buffer, its body) as the body of the answer whose head
    /// was just written at the end of the output, instead of copying it after the head: the
    /// output goes out first, then the body (the mio loop: one vectored write). The scratch
    /// gets the output's buffer (once the last lent body is written, its buffer: so a
    /// handler's next large body grows no buffer anew); what is unwritten of the output (the
    /// head, and at most `max_output` of earlier answers) moves to the emptied lent buffer.
    /// Returns false, lending nothing, while an earlier body is lent (never: see invariant 4),
    /// and when the output's buffer is smaller than the body: the scratch would get a buffer
    /// the handler's next large body has to regrow (a copy's worth, and allocations: with a
    /// connection per request, or a small answer between large ones, which gives the large
    /// buffer back, on every one), so the body is copied instead, as the first large answer on
    /// a connection is, which leaves the output a buffer that size for the next.
    #[cold]
    pub(crate) fn lend(&mut self, scratch: &mut Vec<u8>) -> bool {
        if !self.lent.is_empty() || !self.queue.is_empty() || self.output.capacity() < scratch.len()
        {
            return false;
        }
        self.lent.extend_from_slice(&self.output[self.written..]);
        self.output.clear();
        self.written = 0;
        std::mem::swap(scratch, &mut self.output);
        std::mem::swap(&mut self.output, &mut self.lent);
        self.queued_bytes += self.lent.len();
        true
    }

    /// Every byte answered and not yet written, queued answers included.
    pub(crate) fn unsent(&self) -> usize {
        // `pending().len()` without slicing (asked before every request is parsed): `written`
        // never passes the output's length (`consume` keeps it within).
        debug_assert!(self.written <= self.output.len());
        self.output.len().wrapping_sub(self.written) + self.queued_bytes
    }

    pub(crate) fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Nothing queued and nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.pending().is_empty()
    }

    /// Requests in flight here: slots holding guards.
    pub(crate) fn in_flight(&self) -> usize {
        self.queue
            .iter()
            .filter(|s| matches!(s, Slot::Waiting { .. } | Slot::Ready { held: Some(_), .. }))
            .count()
    }

    /// The routes of the deferred answers still waiting (in their handler), for stop reports.
    pub(crate) fn waiting_routes(&self) -> impl Iterator<Item = &'r Route> + '_ {
        self.queue.iter().filter_map(|s| match s {
            Slot::Waiting { route, .. } => Some(*route),
            Slot::Ready { .. } => None,
        })
    }

    /// When the earliest deferred answer is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.queue
            .iter()
            .filter_map(|s| match s {
                Slot::Waiting { due, .. } => Some(*due),
                Slot::Ready { .. } => None,
            })
            .min()
    }

    /// Bytes held by the buffers (capacity, not length: what the connection costs in memory).
    pub(crate) fn buffered(&self) -> usize {
        let queued: usize = self
            .queue
            .iter()
            .map(|s| match s {
                Slot::Ready { bytes, .. } => bytes.capacity(),
                Slot::Waiting { .. } => 0,
            })
            .sum();
        let spare: usize = self.spare.iter().map(Vec::capacity).sum();
        self.output.capacity() + self.lent.capacity() + queued + spare
    }

    /// The output, when the next answer goes straight to it (nothing queued ahead).
    #[inline]
    pub(crate) fn next_out(&mut self) -> Option<&mut Vec<u8>> {
        // Nothing is answered while a lent body is unsent: see invariant 4.
        debug_assert!(self.lent.is_empty());
        self.queue.is_empty().then_some(&mut self.output)
    }

    /// Appends an answer written by `write`: straight to the output when nothing is queued
    /// ahead of it (then `held` is handed back: the request is answered), else queued in order.
    #[inline]
    pub(crate) fn push(
        &mut self,
        close: bool,
        held: Option<H>,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Option<H> {
        if self.queue.is_empty() {
            write(&mut self.output);
            return held;
        }
        let mut bytes = self.spare.pop().unwrap_or_default();
        write(&mut bytes);
        self.queued_bytes += bytes.len();
        self.queue.push_back(Slot::Ready { bytes, close, held });
        None
    }

    /// Queues a deferred response.
    pub(crate) fn defer(&mut self, slot: Slot<'r, H>) {
        self.queue.push_back(slot);
    }

    /// The front slot if it can be written now: ready, or deferred and due.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Slot<'r, H>> {
        match self.queue.front()? {
            Slot::Waiting { due, .. } if *due > now => None,
            _ => {
                let slot = self.queue.pop_front()?;
                if let Slot::Ready { bytes, .. } = &slot {
                    self.queued_bytes -= bytes.len();
                }
                Some(slot)
            }
        }
    }

    /// Writes a queued answer's bytes to the output and keeps its buffer for reuse; with
    /// `add_close`, marks it `connection: close` first.
    pub(crate) fn write_out(&mut self, mut bytes: Vec<u8>, add_close: bool) {
        if add_close {
            mark_close(&mut bytes);
        }
        self.output.extend_from_slice(&bytes);
        // Kept for the next queued answer, within bounds: a few buffers, none large.
        if self.spare.len() < MAX_SPARE {
            bytes.clear();
            if bytes.capacity() > KEEP_CAPACITY {
                shrink_now(&mut bytes); // spares stay small, whatever they held
            }
            self.spare.push(bytes);
        }
    }

    /// Completes in place the deferred answers that are due behind one still waiting, so they
    /// keep their place: `resume` writes an answer and says whether it closes.
    pub(crate) fn resume_behind(
        &mut self,
        now: Instant,
        mut resume: impl FnMut(&H, &'r Route, u64, Wire, &mut Vec<u8>) -> bool,
    ) {
        for slot in self.queue.iter_mut() {
            if !matches!(slot, Slot::Waiting { due, .. } if *due <= now) {
                continue;
            }
            let placeholder = Slot::Ready {
                bytes: Vec::new(),
                close: false,
                held: None,
            };
            let Slot::Waiting {
                held,
                route,
                token,
                wire,
                ..
            } = std::mem::replace(slot, placeholder)
            else {
                continue;
            };
            let mut bytes = self.spare.pop().unwrap_or_default();
            let close = resume(&held, route, token, wire, &mut bytes);
            self.queued_bytes += bytes.len();
            *slot = Slot::Ready {
                bytes,
                close,
                held: Some(held),
            };
        }
    }

    /// Empties the queue; the guards of every request in it are handed to `abort`.
    pub(crate) fn drain_held(&mut self, mut abort: impl FnMut(H)) {
        // A lent body stays: it is the answer being written.
        self.queued_bytes = self.lent.len();
        for slot in self.queue.drain(..) {
            match slot {
                Slot::Waiting { held, .. }
                | Slot::Ready {
                    held: Some(held), ..
                } => abort(held),
                Slot::Ready { held: None, .. } => {}
            }
        }
    }
}

/// Makes a written answer close its connection: its `connection` field becomes `close`, or one
/// is added. Only for answers computed before a stop that turn out to be the last.
fn mark_close(bytes: &mut Vec<u8>) {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let mut line = 0;
    while line < end {
        let next = bytes[line..end]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(end, |p| line + p);
        let field = &bytes[line..next];
        if field.len() >= 11 && field[..11].eq_ignore_ascii_case(b"connection:") {
            bytes.splice(line..next, b"connection: close".iter().copied());
            return;
        }
        line = next + 2;
    }
    bytes.splice(end + 2..end + 2, b"connection: close\r\n".iter().copied());
}

#[cfg(test)]
mod tests {
    use super::{mark_close, shrink, KEEP_CAPACITY};

    /// A buffer grown past `KEEP_CAPACITY` is kept while its uses stay large, not decided on
    /// when it was not used (an empty turn), and given back at the first small use: it never
    /// holds more than one request needed for longer than the next request.
    #[test]
    fn a_large_buffer_is_kept_while_large_uses_follow_and_given_back_at_a_small_one() {
        let mut buf: Vec<u8> = Vec::with_capacity(4 * KEEP_CAPACITY);
        shrink(&mut buf, 2 * KEEP_CAPACITY);
        assert!(buf.capacity() >= 4 * KEEP_CAPACITY, "a large use keeps it");
        shrink(&mut buf, 0);
        assert!(
            buf.capacity() >= 4 * KEEP_CAPACITY,
            "an empty turn decides nothing"
        );
        shrink(&mut buf, 100);
        assert!(buf.capacity() <= KEEP_CAPACITY, "a small use gives it back");
    }

    #[test]
    fn mark_close_replaces_or_adds_the_field() {
        let mut keep =
            b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nhi".to_vec();
        mark_close(&mut keep);
        assert_eq!(
            keep,
            b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"
        );
        let mut plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi".to_vec();
        mark_close(&mut plain);
        assert_eq!(
            plain,
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"
        );
    }
}
