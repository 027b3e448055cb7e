//! The sans-IO connection: bytes in, response bytes out, no socket.
//!
//! A connection is a state machine over its input, one small function per state:
//!
//! | state | function | leaves when |
//! |---|---|---|
//! | [`Reading::Head`] | [`Connection::read_head`] | a whole head is parsed (or rejected) |
//! | [`Reading::Body`] (`Content-Length`, or the chunked decoder's state) | [`Connection::read_body`] | the body is complete (or rejected) |
//! | in the handler | [`Connection::dispatch`] | the handler answers now, or defers (`Slot::Waiting`) |
//! | writing | [`Answers`] and [`Connection::complete_due`] | every answer is written in order |
//!
//! Reading and parsing pause (back-pressure) while the unsent answers exceed
//! [`Limits::max_output`](crate::http::Limits::with_max_output) or the pipeline is full, and resume
//! from [`Connection::resume`] once the client has read.
//!
//! # Invariants
//!
//! 1. Responses leave in request order (see [`Answers`]).
//! 2. Every admitted request is counted in the dispatcher's `in_flight` until its answer is
//!    written to the output (`served`) or it is aborted (`aborted`, its signal fired); its
//!    guards drop then.
//! 3. Once `closing` is set no further request is parsed; once `closed` is set nothing more is
//!    written.
//! 4. Between calls, `input[start..]` is the input not yet answered; in [`Reading::Body`] it
//!    begins with the head. A chunked body's framing is consumed once by its decoder and dropped
//!    from `input`. A read that finds `input` empty is parsed where it is, and only what it leaves
//!    unanswered goes into `input` (see `advance`); the rest of a body is read straight into
//!    `input` (see `receive_body_with`), growing it with what arrives, never with what a
//!    `Content-Length` declares.
//! 5. Refusals and rejections write a fixed answer into buffers that already exist.

use std::fmt;
use std::time::{Duration, Instant};

use super::accounting::{
    admit_caught, end_request, end_request_here, ended_by, per_request, Accounting, AdmittedHere,
    ThisAsked, ThisRead, ThisSource,
};
use super::answers::{shrink, Answers, Slot};
use super::chunked::ChunkedDecoder;
use super::dispatch::{
    call_resume, probe_response, route_and_call, Dispatcher, DispatcherId, RefusalCount, ASK_STOP,
};
use super::ladder::ConnState;
use super::limits::{MAX_TIMEOUT, MIN_BODY_RATE, SLOW_BODY_GRACE};
use super::parse::{parse_head_counted, starts_head, Framing, Head, HeaderSpan, Reject};
use super::response::{
    write_response, write_response_lending, write_status, Answer, DateLine, Response, Wire,
};
use super::router::{Reply, Request, Route};
use crate::admit::{Outcome, Refusal};
use crate::signal::{AbortReason, AbortSignal};

/// The most room [`Connection::receive_body_with`] makes in the input for one read of a body:
/// what one read into the loop's buffer takes.
pub(crate) const BODY_ROOM: usize = 64 * 1024;

/// ... and the least, however little of the body arrived so far.
const MIN_BODY_ROOM: usize = 4 * 1024;

/// What the input is being read as.
enum Reading {
    /// Waiting for a whole request head at `input[start..]`.
    Head,
    /// The head is parsed (it stays at `input[start..]`); its body is arriving.
    Body { head: Head, body: BodyReader },
}

/// How a body is read.
enum BodyReader {
    /// `Content-Length`: the body follows the head in `input`.
    Length(usize),
    /// Chunked: decoded into `Connection::body`; `scanned` bytes after the head were consumed
    /// by the decoder and are dropped from `input` at the end of the turn.
    Chunked {
        decoder: ChunkedDecoder,
        scanned: usize,
    },
}

/// A whole request: its head, and how many bytes of `input[start..]` it took. Its body is
/// where its head's framing says: a `Content-Length` body follows the head (to `total`), a
/// chunked one is decoded in `Connection::body`. (The dispatch borrows the head beside it: a
/// `Head` is not moved again once parsed.)
struct Parsed {
    head: Head,
    total: usize,
}

/// What the head's state did.
enum HeadStep<'p> {
    /// A whole request (its head, and its length with its body), ready for the handler.
    Request(&'p Head, usize),
    /// Moved to another state: go on.
    Continue,
    /// Nothing more can be parsed until more input arrives (or the connection is closing).
    Wait,
}

/// What a reading state did.
enum Step {
    /// Nothing more can be parsed until more input arrives (or the connection is closing).
    Wait,
    /// Moved to another state: go on.
    Continue,
    /// A whole request, ready for the handler.
    Request(Parsed),
}

/// One HTTP/1.1 connection's state machine, independent of any socket.
///
/// Feed it what the socket read with [`receive`](Connection::receive), write out
/// [`pending_output`](Connection::pending_output) and report it with
/// [`consume_output`](Connection::consume_output), then call [`resume`](Connection::resume)
/// (reading may have paused for back-pressure), call [`on_timer`](Connection::on_timer) at
/// [`next_deadline`](Connection::next_deadline), and [`abort`](Connection::abort) when the
/// socket fails. [`Session`](crate::http::Session) wraps one with its own dispatcher and clock.
///
/// Dropping a connection with requests still [`waiting`](Connection::waiting) (a deferred
/// answer, or answers queued behind one) ends each of them *dropped*, once (its guards drop
/// with it: [`Outcome::Dropped`], its signal fired with [`AbortReason::Dropped`]), but a
/// connection cannot reach its dispatcher when dropped: the dispatcher still counts them in
/// [`in_flight`](Dispatcher::in_flight) (which a stop's drain waits on until its deadline) and
/// not in [`Stats::aborted`](crate::http::Stats::aborted). A loop of your own calls
/// [`abort`](Connection::abort) before it lets a connection go, as the crate's loops do.
///
/// # Examples
///
/// Driving one by hand, as an event loop of your own would:
///
/// ```
/// use std::time::Instant;
/// use reqguard::http::{demo_routes, Connection, Dispatcher, Guarded, Limits, Router, Routes};
/// use reqguard::{AbortReason, Config};
///
/// let routes = Routes::new();
/// let mut router = Router::new(&routes);
/// demo_routes(&mut router);
/// let mut dispatcher = Dispatcher::new(&router, Guarded::embedded("server", Config::default()), Limits::default());
/// let now = Instant::now();
/// let mut connection = Connection::new(now);
///
/// connection.receive(&mut dispatcher, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", now); // what the socket read
/// let written = connection.pending_output().len(); // what the socket wrote
/// connection.consume_output(written);
/// connection.resume(&mut dispatcher, now);
/// assert_eq!(connection.next_deadline(&dispatcher), Some(now + Limits::default().idle_timeout()));
///
/// connection.abort(&mut dispatcher, AbortReason::ClientDisconnected); // the socket failed
/// assert_eq!(dispatcher.stats().served, 1);
/// ```
// Laid out by hand, for the mio server's `Socket`, which begins with it: the reading state
// first (its tag read per request; moved after the rest, LLVM's block layout cost the
// unaccounted loop 3 instructions per request), what only a body's wait or the first use
// reads, then what a read and its answers touch (the output, the input, the clocks and counts,
// the flags) together at the end, next to the socket's own per-event fields.
#[repr(C)]
pub struct Connection<'r, H> {
    reading: Reading,
    /// The header fields of a request waiting for its body, as ranges into its head (a request
    /// dispatched where its head was parsed has them in the dispatcher's slots).
    headers: Vec<HeaderSpan>,
    /// The dispatcher it was first used with: its requests are counted there (`in_flight`,
    /// `served`), so no other may end them.
    dispatcher: Option<DispatcherId>,
    answers: Answers<'r, H>,
    input: Vec<u8>,
    start: usize,
    /// The decoded chunked body of the request being read.
    body: Vec<u8>,
    last_activity: Instant,
    request_started: Option<Instant>,
    /// Bytes of the head being read, from `start`, already searched for its end.
    head_searched: usize,
    /// Its answers counted `served` so far (whole in the output, in order): what a close that
    /// drops output undelivered takes back (`src/delivery.rs`).
    served: u64,
    /// The head being read was parsed at least once (on its first bytes) and found incomplete:
    /// it is parsed again only once its end may have arrived (see `head_end_arrived`).
    head_tried: bool,
    continue_sent: bool,
    /// Parsing stopped for back-pressure (output over the cap, or the pipeline full).
    paused: bool,
    closing: bool,
    closed: bool,
    /// Bytes have arrived on it (a connection still silent is not an idle keep-alive one).
    used: bool,
    /// The client's end of input came (with `Limits::half_close`) while parsing was paused
    /// by back-pressure: the whole requests still in the input are parsed and answered as the
    /// output drains ([`parse_after_end`](Connection::parse_after_end)), then it closes.
    input_ended: bool,
    /// A refusal answered on it (its last answer: a refusal closes the connection), counted
    /// when made: taken back if the connection is aborted before its output was all taken
    /// ([`abort`](Connection::abort)), so `refused` counts the refusals written whole.
    refusal: Option<RefusalCount>,
}

/// The earlier of two optional instants (`None` is never).
#[inline]
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// `at + by`, or (past what an `Instant` can hold) as late as it can be.
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by)
        .or_else(|| at.checked_add(MAX_TIMEOUT))
        .unwrap_or(at)
}

/// The rest of [`Connection::dispatch`] after the admission, with what it holds of the
/// request's bundle (`$holding`, a [`Holding`]): the bundle, or nothing where the accounting
/// keeps it. A macro, expanded once per way in `dispatch` itself: as an inlined function, its
/// borrows' scopes moved the unaccounted server's registers (510.3 against 506.3 at depth 16).
macro_rules! dispatch_holding {
    ($this:ident, $d:ident, $input:ident, $head:ident, $total:ident, $holding:ident) => {{
        $d.in_flight += 1;
        // The head's spans, and its body's length, say where everything is in it.
        let input = &$input[$this.start..];
        let panics = &mut $d.stats.panics;
        let accounting = &$d.accounting;
        let signal = per_request::<A, _>(panics, None, || $holding.signal(accounting));
        // `this` read when the handler asks; before its call, caught, if it may panic.
        let read;
        let this = if A::MAY_PANIC {
            read = ThisRead(per_request::<A, _>(panics, None, || $d.accounting.this()));
            Some(&read as &dyn ThisSource)
        } else {
            $d.accounting.this_source(ThisAsked::new())
        };
        let request = Request::new(input, $head, &$d.fields, &$this.body, signal, this);
        let mut response = Response::new(&mut $d.scratch);
        let after = &mut $d.after;
        // A panicking handler's request whose bundle the accounting keeps (its signal is
        // not the request's: `signal_here`) ends *dropped*, its signal aborted, when that
        // bundle ends (`Accounting::handler_panicked`).
        let accounting = &$d.accounting;
        let panicked = || accounting.handler_panicked(AdmittedHere::new());
        let (reply, route) = route_and_call(
            $d.router,
            &mut $d.stats,
            &request,
            &mut response,
            after,
            panicked,
        );
        let accounting = &mut $d.accounting;
        per_request::<A, _>(&mut $d.stats.panics, (), || accounting.handled());
        $this.start += $total;
        // The common answer (nothing but its body set) asks for neither: one load.
        let plain = response.is_plain();
        if !plain && response.wants_stop() {
            $d.asks |= ASK_STOP;
        }
        // Unready or stopping: every answer closes its connection (keep-alive off).
        let close = !$head.keep_alive || $d.keep_alive_off || (!plain && response.wants_close());
        let wire = $head.wire(close);
        match (reply, route) {
            (Reply::After { delay, token }, Some(route)) => $this.answers.defer(Slot::Waiting {
                // Parked: its bundle goes with it.
                held: $holding.park(&mut $d.accounting),
                due: later($d.now, delay),
                route,
                token,
                wire,
            }),
            _ => {
                let date = $d.date.line();
                // Nothing queued ahead (nearly always): straight out, and answered.
                if let Some(out) = $this.answers.next_out() {
                    if write_response_lending(out, wire, date, response.answer()) {
                        // `response` (which borrows the scratch) is not used again.
                        $this.lend($d, wire);
                    }
                    // Admitted through `d.accounting` above, which `d`'s borrow has kept
                    // in place since: `end_here`'s seal holds. A stand-in for a bundle the
                    // accounting keeps ends nothing: that one ends when the pass's next
                    // request renews it, or at the pass's end.
                    $holding.answered($d);
                    $this.served += 1;
                } else {
                    // Queued behind another answer: its bundle goes with it.
                    let held = $holding.park(&mut $d.accounting);
                    $this.answers.push(close, Some(held), |out| {
                        write_response(out, wire, date, response.answer());
                    });
                    $d.note_scratch();
                }
            }
        }
        if close {
            $this.closing = true;
        }
    }};
}

impl<'r, H> Connection<'r, H> {
    /// A new connection, opened at `now`.
    pub fn new(now: Instant) -> Self {
        Connection {
            input: Vec::new(),
            start: 0,
            reading: Reading::Head,
            body: Vec::new(),
            headers: Vec::new(),
            answers: Answers::new(),
            head_tried: false,
            head_searched: 0,
            request_started: None,
            last_activity: now,
            continue_sent: false,
            paused: false,
            closing: false,
            closed: false,
            used: false,
            input_ended: false,
            dispatcher: None,
            served: 0,
            refusal: None,
        }
    }

    /// A connection over [`Limits::max_connections`](crate::http::Limits::with_max_connections):
    /// its only answer, `503` and `Connection: close` (dated `date`), is already written.
    pub(crate) fn over_capacity(now: Instant, date: &DateLine) -> Self {
        let mut connection = Connection::new(now);
        // Written before the request is read, so its method is unknown: no body, which is right
        // for a `HEAD` too (a body there would be read as the start of another answer).
        connection.answers.push(true, None, |out| {
            let answer = Answer {
                body: b"",
                ..Answer::plain(503)
            };
            write_response(out, Wire::CLOSE, date, answer);
        });
        connection.closing = true;
        connection
    }

    /// `earlier`, silent and idle, now answered as [`over_capacity`](Self::over_capacity) is
    /// (the stop ladder's close step). It keeps `earlier`'s count of answers `served`: they
    /// may still be in the socket, and a close that drops them must take them back
    /// (`src/delivery.rs`; the count only goes up).
    pub(crate) fn closing_after(earlier: &Self, now: Instant, date: &DateLine) -> Self {
        Connection {
            served: earlier.served,
            ..Connection::over_capacity(now, date)
        }
    }

    /// Takes bytes read from the client and answers every complete request in them.
    ///
    /// # Panics
    ///
    /// If `d` is not the dispatcher this connection was first used with (its requests are
    /// counted there): so do [`resume`](Connection::resume), [`on_timer`](Connection::on_timer),
    /// [`peer_closed`](Connection::peer_closed) and [`abort`](Connection::abort).
    pub fn receive<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        bytes: &[u8],
        now: Instant,
    ) {
        self.bind(d);
        if self.input_ended {
            return; // After the client's end of input (`peer_closed`): nothing more is its.
        }
        self.receive_unchecked(d, bytes, now);
    }

    /// [`receive`](Connection::receive) for the crate's own loops, whose connections never
    /// meet another dispatcher than their loop's (no check on the hot path).
    pub(crate) fn receive_unchecked<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        bytes: &[u8],
        now: Instant,
    ) {
        if self.closing || self.closed {
            return; // Nothing more will be answered: drop the input.
        }
        self.last_activity = now;
        self.used = true;
        self.advance(d, bytes, now);
    }

    /// Reads more of the request body being read straight into the input, where its request
    /// is answered from, instead of into the loop's read buffer and copied from there: `read`
    /// appends to the input what the socket has, within the input's spare capacity (it may
    /// go past the body: the input takes what a read buffer would). The room made first is at
    /// most [`BODY_ROOM`], the rest of a `Content-Length` body, and what arrived so far (at
    /// least [`MIN_BODY_ROOM`]), so a client's `Content-Length` reserves nothing it has not
    /// sent: the input grows with what arrives (doubling it at most, and never past the
    /// rest of a `Content-Length` body). Then answers as
    /// [`receive`](Connection::receive) does. Returns what `read` gave (`Ok(0)`: the client
    /// closed its side), or `None` when no body is being read (or nothing more is answered):
    /// read into a buffer and `receive` it.
    pub(crate) fn receive_body_with<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        now: Instant,
        read: impl FnOnce(&mut Vec<u8>) -> std::io::Result<usize>,
    ) -> Option<std::io::Result<usize>> {
        let (room, missing) = self.body_room()?;
        if self.input.capacity() - self.input.len() < room {
            // Doubling what arrived (amortized, as `reserve` grows), but never past the rest
            // of a `Content-Length` body: a body's input ends the size it needs, not twice it.
            let len = self.input.len();
            self.input.reserve_exact(room.max(missing.min(len)));
        }
        let read = read(&mut self.input);
        if let Ok(n @ 1..) = read {
            d.stats.body_bytes_read_in_place += n as u64;
            self.last_activity = now;
            self.used = true;
            self.advance(d, &[], now);
        }
        Some(read)
    }

    /// Whether a request body is being read (the loop then reads it with
    /// [`receive_body_with`](Connection::receive_body_with)). Asked before every read.
    #[inline(always)]
    pub(crate) fn reads_body(&self) -> bool {
        !matches!(self.reading, Reading::Head)
    }

    /// The room to make in the input for a read of the body being read (see
    /// [`receive_body_with`](Connection::receive_body_with)), if one is being read, and the
    /// bytes still missing of it (`usize::MAX` for a chunked one).
    fn body_room(&self) -> Option<(usize, usize)> {
        let Reading::Body { head, body } = &self.reading else {
            return None;
        };
        if self.closing || self.closed {
            return None;
        }
        let missing = match body {
            BodyReader::Length(n) => (self.start + head.len + n).saturating_sub(self.input.len()),
            BodyReader::Chunked { .. } => usize::MAX,
        };
        if missing == 0 {
            return None; // Whole, held by back-pressure: what comes next is another request.
        }
        let arrived = self.input.len() - self.start + self.body.len();
        Some((
            missing.min(BODY_ROOM).min(arrived.max(MIN_BODY_ROOM)),
            missing,
        ))
    }

    /// Parses again if back-pressure had paused it and the client has since read enough.
    /// Returns whether it did (the caller then writes the new answers and reads again).
    pub fn resume<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        now: Instant,
    ) -> bool {
        self.bind(d);
        self.resume_unchecked(d, now)
    }

    /// [`resume`](Connection::resume) for the crate's own loops (see `receive_unchecked`).
    pub(crate) fn resume_unchecked<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        now: Instant,
    ) -> bool {
        if !self.paused || !self.may_parse(d) {
            return false;
        }
        if self.input_ended {
            self.parse_after_end(d, now);
            return true;
        }
        self.paused = false;
        self.advance(d, &[], now);
        true
    }

    /// With [`Limits::half_close`](crate::http::Limits::with_half_close), after the client's
    /// end of input came while back-pressure held whole requests in the input
    /// (`input_ended`): parses and answers what the pipeline and the output take now, as a
    /// resume does, then, once nothing whole is left, closes (a request not whole at the end
    /// cannot be finished: dropped). The answers it makes are queued (behind an empty slot if
    /// nothing was), so the last one, known only once the parse finds nothing more, carries
    /// `connection: close` as an answer made after a stop does ([`complete_due`]); the empty
    /// slot takes no place of `max_pipeline`'s. Bounded as any resume: parsing pauses again
    /// while the pipeline is full or the output over `max_output`, and the loop comes back
    /// when the client has read. Before round 33 nothing was parsed after the end of input:
    /// 32 of 401 requests pipelined behind a deferred one were answered.
    ///
    /// [`complete_due`]: Connection::complete_due
    #[cold]
    #[inline(never)]
    fn parse_after_end<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        now: Instant,
    ) {
        if self.closing || self.closed || !self.may_parse(d) {
            return;
        }
        self.paused = false;
        let limits = d.limits;
        if self.answers.queue_len() == 0 {
            self.answers.defer(Slot::Ready {
                bytes: Vec::new(),
                close: false,
                held: None,
            });
            d.limits = limits.with_max_pipeline(limits.max_pipeline().saturating_add(1));
        }
        self.advance(d, &[], now);
        d.limits = limits;
        if !self.paused {
            self.closing = true;
        }
        self.complete_due(d, now);
    }

    /// Whether the server should read more from the socket now: not while answers are piling
    /// up unread (back-pressure), nor past the input cap. A closing connection reads (and
    /// drops) what comes, so the client's unread bytes do not turn our last answer into a reset.
    pub fn wants_read<A: Accounting>(&self, d: &Dispatcher<'r, A>) -> bool {
        !self.closed
            && (self.closing
                || (self.input.len() - self.start < d.limits.read_cap()
                    && self.answers.unsent() <= d.limits.max_output()))
    }

    /// Bytes to write to the client.
    pub fn pending_output(&self) -> &[u8] {
        self.answers.pending()
    }

    /// A large answer's body, lent by its response, to write after
    /// [`pending_output`](Connection::pending_output) (empty unless the dispatcher lends bodies:
    /// the mio loop's does, with a vectored write; [`consume_output`](Connection::consume_output)
    /// counts what is written of it after the pending output).
    #[inline(always)]
    pub(crate) fn lent_output(&self) -> &[u8] {
        self.answers.lent()
    }

    /// Records that `n` bytes of [`pending_output`](Connection::pending_output) were written.
    pub fn consume_output(&mut self, n: usize) {
        self.answers.consume(n);
    }

    /// [`consume_output`](Connection::consume_output) when no body is lent (the loop's plain
    /// write: it asked [`lent_output`](Connection::lent_output) first).
    #[inline(always)]
    pub(crate) fn consume_unlent(&mut self, n: usize) {
        self.answers.consume_unlent(n);
    }

    /// Its answers counted `served` so far, whole in its output in order (`src/delivery.rs`).
    #[inline(always)]
    pub(crate) fn served(&self) -> u64 {
        self.served
    }

    /// Whether the connection is finished: closed, or closing with everything written.
    pub fn is_done(&self) -> bool {
        self.closed || (self.closing && self.answers.is_empty())
    }

    /// Whether no more request will be parsed.
    pub fn is_closing(&self) -> bool {
        self.closing || self.closed
    }

    /// Requests admitted on this connection and not answered yet (each holds its guards):
    /// deferred ones, and answers waiting behind them.
    pub fn waiting(&self) -> usize {
        self.answers.in_flight()
    }

    /// Bytes this connection holds in its buffers (input, decoded body, answers), by capacity.
    pub fn buffered(&self) -> usize {
        self.input.capacity() + self.body.capacity() + self.answers.buffered()
    }

    /// What the connection is doing, and for how long (since its last input or answer): for
    /// the stop ladder's reports.
    pub(crate) fn activity(&self, now: Instant) -> (ConnState, std::time::Duration) {
        let state = if self.waiting() > 0 {
            ConnState::InHandler
        } else if !self.pending_output().is_empty() {
            ConnState::Writing
        } else if self.input.len() > self.start
            || self.request_started.is_some()
            || matches!(self.reading, Reading::Body { .. })
        {
            ConnState::Reading
        } else {
            ConnState::Idle
        };
        (state, now.saturating_duration_since(self.last_activity))
    }

    /// Since when this connection has held its slot with nothing admitted and nothing to write:
    /// idle (kept alive, or new and silent) since its last activity, reading a head since that
    /// began, or reading a body too slowly (see [`slow_body_since`](Connection::slow_body_since)).
    /// `None` when it must not be evicted: a request in its handler, a body arriving at pace,
    /// an answer being written, or closing.
    pub(crate) fn evictable_since(&self) -> Option<Instant> {
        if self.closing || self.closed || !self.answers.is_empty() {
            return None;
        }
        match self.reading {
            Reading::Head => Some(self.request_started.unwrap_or(self.last_activity)),
            Reading::Body { .. } => self.slow_body_since(),
        }
    }

    /// When a body being read falls below [`MIN_BODY_RATE`]: its request's first byte plus the
    /// time its bytes so far earn at that rate (at least [`SLOW_BODY_GRACE`]). A body keeping
    /// the pace stays ahead of the clock and is never chosen; the bytes a newcomer's eviction
    /// reads first move it on (a sign of life, as a request arriving on an idle connection).
    #[cold]
    fn slow_body_since(&self) -> Option<Instant> {
        let received = (self.input.len() - self.start + self.body.len()) as u64;
        let earned = Duration::from_millis(received.saturating_mul(1000) / MIN_BODY_RATE);
        let started = self.request_started?;
        Some(later(started, earned.max(SLOW_BODY_GRACE)))
    }

    /// Evicts the connection (see [`evictable_since`](Connection::evictable_since)) to free its
    /// slot: one mid-head gets `408` and `Connection: close`, true; one with nothing of a
    /// request line (idle after its answers, silent since accepted, or with CR and LF bytes
    /// alone, the empty lines a server SHOULD ignore before a request line: RFC 9112 §2.2) is
    /// closed with no answer, false, as the hyper adapter closes it (hyper drops leading CR and
    /// LF bytes at the end of its input). The `408` is not counted here: the loop counts it in
    /// `rejected` once its socket has taken it whole (one that did not go out was no answer).
    pub(crate) fn evict<A: Accounting<Held = H>>(&mut self, d: &mut Dispatcher<'r, A>) -> bool {
        let rest = &self.input[self.start..];
        if rest.iter().all(|&byte| byte == b'\r' || byte == b'\n') {
            self.closed = true;
            return false;
        }
        let head = starts_head(&self.input[self.start..]);
        let wire = Wire::CLOSE.with_head(head);
        let reject = self.partial_head_refusal(d);
        self.reject_uncounted(d, reject, wire);
        true
    }

    /// Why a request that ran out of time is refused: `408`, unless its head, parsed now, is
    /// one a parse on every read would already have refused (a head is parsed only when its
    /// end may have arrived: see `read_head`), so the answer does not depend on the split.
    fn partial_head_refusal<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
    ) -> Reject {
        if !matches!(self.reading, Reading::Head) || !self.head_tried {
            return Reject::Timeout;
        }
        let buf = &self.input[self.start..];
        let parsed = &mut d.stats.head_bytes_parsed;
        match parse_head_counted(buf, &d.limits, &mut d.fields, parsed) {
            Err(reject) => reject,
            Ok(_) => Reject::Timeout,
        }
    }

    /// The routes of the requests still in their handler (deferred), for stop reports.
    pub(crate) fn routes_in_handler(&self) -> impl Iterator<Item = &'r Route> + '_ {
        self.answers.waiting_routes()
    }

    #[inline]
    fn is_idle(&self) -> bool {
        !self.closing && !self.closed && self.answers.is_empty() && self.input.len() == self.start
    }

    fn idle_deadline<A: Accounting>(&self, d: &Dispatcher<'r, A>) -> Instant {
        // A loop group keeps accepting while it drains: a connection that has sent nothing
        // yet has its first request on the way, so it keeps the usual idle timeout.
        let silent = d.in_group && !self.used;
        match d.stopped_at {
            Some(stopped) if !silent => {
                let linger = d.limits.stop_linger().min(d.limits.idle_timeout());
                later(self.last_activity.max(stopped), linger)
            }
            Some(_) | None => later(self.last_activity, d.limits.idle_timeout()),
        }
    }

    /// [`next_deadline`](Connection::next_deadline) when it is the keep-alive timeout alone
    /// (nothing read or queued, no request begun, no stop), computed in a few instructions:
    /// the loop's common case after an answer. `None` otherwise.
    #[inline]
    pub(crate) fn idle_deadline_alone<A: Accounting>(
        &self,
        d: &Dispatcher<'r, A>,
    ) -> Option<Instant> {
        self.is_alone(d)
            .then(|| later(self.last_activity, d.limits.idle_timeout()))
    }

    /// Whether [`idle_deadline_alone`](Connection::idle_deadline_alone) gives a deadline: its
    /// idle timeout (from its last activity, which only moves on) is all it waits for.
    #[inline(always)]
    pub(crate) fn is_alone<A: Accounting>(&self, d: &Dispatcher<'r, A>) -> bool {
        self.is_idle() && self.request_started.is_none() && d.stopped_at.is_none()
    }

    /// When [`on_timer`](Connection::on_timer) has something to do next.
    pub fn next_deadline<A: Accounting>(&self, d: &Dispatcher<'r, A>) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let request = self
            .request_started
            .filter(|_| !self.closing)
            .map(|t| later(t, d.limits.request_timeout()));
        let idle = self.is_idle().then(|| self.idle_deadline(d));
        earliest(earliest(self.answers.next_due(), request), idle)
    }

    /// Completes deferred responses that are due, answers `408` to a request too slow to
    /// arrive (head and body), and closes an idle connection whose keep-alive ran out.
    pub fn on_timer<A: Accounting<Held = H>>(&mut self, d: &mut Dispatcher<'r, A>, now: Instant) {
        self.bind(d);
        self.on_timer_unchecked(d, now);
    }

    /// [`on_timer`](Connection::on_timer) for the crate's own loops (see `receive_unchecked`).
    pub(crate) fn on_timer_unchecked<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        now: Instant,
    ) {
        if self.closed {
            return;
        }
        d.date.refresh(now);
        self.complete_due(d, now);
        if let Some(started) = self.request_started {
            if !self.closing && now >= later(started, d.limits.request_timeout()) {
                let head = starts_head(&self.input[self.start..]);
                let reject = self.partial_head_refusal(d);
                self.reject(d, reject, Wire::CLOSE.with_head(head));
            }
        }
        if self.is_idle() && now >= self.idle_deadline(d) {
            self.closed = true;
            return;
        }
        if self.input_ended {
            self.parse_after_end(d, now);
        } else {
            self.advance(d, &[], now);
        }
    }

    /// The client went away (read end closed): waiting requests are aborted with
    /// [`AbortReason::ClientDisconnected`]; what is already answered may still be written.
    /// With [`Limits::half_close`](crate::http::Limits::with_half_close) on, the client only
    /// shut its write side: waiting requests are answered, and so are the whole requests that
    /// back-pressure held in the input (parsed as [`resume`](Connection::resume) and
    /// [`on_timer`](Connection::on_timer) find room, the last answer saying `connection:
    /// close`); the connection is done once their answers are written. Nothing more is
    /// received after it, and with the knob off nothing more is parsed.
    pub fn peer_closed<A: Accounting<Held = H>>(&mut self, d: &mut Dispatcher<'r, A>) {
        self.bind(d);
        self.peer_closed_unchecked(d);
    }

    /// [`peer_closed`](Connection::peer_closed) for the crate's own loops (see
    /// `receive_unchecked`).
    pub(crate) fn peer_closed_unchecked<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
    ) {
        if !d.limits.half_close() {
            self.drop_held(d, AbortReason::ClientDisconnected);
        } else if self.paused && !self.closing && !self.closed {
            // Whole requests may wait in the input behind back-pressure: answered as the
            // output drains (`parse_after_end`), then the connection closes.
            self.input_ended = true;
            return;
        }
        self.closing = true;
    }

    /// The connection is lost or force-closed: every waiting request is aborted and its guards
    /// released; nothing more is written. `reason` names the outcome each ends with
    /// ([`Accounting::end`]): *client gone* for [`AbortReason::ClientDisconnected`], *force
    /// closed* for any other reason (`DrainDeadline` and `Other` included). Its signal fires
    /// with that outcome's reason ([`Outcome::abort_reason`]: `ClientDisconnected` or
    /// `ForceClosed`), unless it fired before (the first cause wins: a signal the drain
    /// deadline aborted stays `DrainDeadline`).
    pub fn abort<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        reason: AbortReason,
    ) {
        // Checked for the crate's loops too: once per connection, off the hot path.
        self.bind(d);
        // A refusal whose answer was not all taken from the output (queued behind an answer
        // that never came, or in the output when the socket failed) was never written whole.
        if let Some(counted) = self.refusal.take() {
            if !self.answers.is_empty() {
                d.take_back_refusal(counted);
            }
        }
        self.drop_held(d, reason);
        self.closed = true;
    }

    /// The stop's force step on a connection that stays open: every request still waiting
    /// ends with `reason` (guards released, signal fired, as [`abort`](Connection::abort)
    /// ends it), with the answers queued behind it (they can no longer go out in order), and
    /// nothing more is read; the answers already in its output still go out, then it closes
    /// ([`is_done`](Connection::is_done)). Off the request path (the ladder's force step).
    #[cold]
    pub(crate) fn end_waiting<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        reason: AbortReason,
    ) {
        self.bind(d);
        // A refusal is the last answer: queued, it goes with the queue, never written.
        if self.answers.queue_len() > 0 {
            if let Some(counted) = self.refusal.take() {
                d.take_back_refusal(counted);
            }
        }
        self.drop_held(d, reason);
        self.closing = true;
    }

    /// Binds the connection to `d` on first use; any other dispatcher later is a bug of the
    /// caller's (its counts would go wrong: `in_flight` below zero, a drain that never ends).
    #[inline(always)]
    fn bind<A: Accounting>(&mut self, d: &Dispatcher<'r, A>) {
        if self.dispatcher != Some(d.id) {
            self.bind_first(d.id);
        }
    }

    #[cold]
    #[inline(never)]
    fn bind_first(&mut self, id: DispatcherId) {
        match self.dispatcher {
            None => self.dispatcher = Some(id),
            Some(_) => panic!(
                "a Connection was used with another Dispatcher than the one it was first used \
                 with (its requests are counted there)"
            ),
        }
    }

    fn drop_held<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        reason: AbortReason,
    ) {
        // Answers queued behind a waiting one can no longer go out in order: drop them too.
        self.answers.drain_held(|held| {
            // Counted first: an accounting that says it cannot panic may, in `end`.
            d.in_flight -= 1;
            d.stats.aborted += 1;
            // Fires its signal, named after the outcome.
            end_request::<A>(held, ended_by(reason), &mut d.stats.panics);
        });
    }

    /// Whether another request may be parsed now (else back-pressure holds the input).
    fn may_parse<A: Accounting>(&self, d: &Dispatcher<'r, A>) -> bool {
        self.answers.queue_len() < d.limits.max_pipeline()
            && self.answers.unsent() <= d.limits.max_output()
    }

    /// Runs the reading states over the input kept and then `read` (what the socket just
    /// read, if anything) until they need more of it.
    fn advance<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        read: &[u8],
        now: Instant,
    ) {
        // Nothing kept from earlier reads (nearly every read): the requests are parsed and
        // answered where the socket read them, and only what is left unanswered (a part of a
        // request, or input held back by back-pressure) is kept, from its start. The floor
        // copies nothing either; a copy of every read into the connection's buffer, parsed at
        // once, made the parse's first loads wait for the copy's stores (with 64 connections,
        // their buffers out of the L1 cache). Else the kept input, out of `self` while the
        // states borrow it.
        let in_place = self.input.is_empty();
        let kept = if in_place {
            self.start = 0;
            Vec::new()
        } else {
            self.input.extend_from_slice(read);
            std::mem::take(&mut self.input)
        };
        let input = if in_place { read } else { &kept[..] };
        self.run(d, input, now);
        if !in_place {
            self.input = kept;
            self.compact();
        } else if let Some(rest) = read.get(self.start..).filter(|rest| !rest.is_empty()) {
            self.input.extend_from_slice(rest);
            self.start = 0;
            self.compact();
        } else {
            // All answered (nearly always): nothing to keep. The buffers a large body grew
            // are given back at a small read, as `compact` does.
            self.start = 0;
            shrink(&mut self.input, read.len());
            let body = self.body.len();
            shrink(&mut self.body, body);
        }
        let buffered = u64::try_from(self.buffered()).unwrap_or(u64::MAX);
        d.stats.buffered_high_water = d.stats.buffered_high_water.max(buffered);
    }

    /// Runs the reading states over `input` (the kept input, or a read parsed where it is),
    /// from `start`, until they need more of it; `start` is then where what is left begins.
    /// Out of line (a call per read): inlined, it was copied into both of `advance`'s ways
    /// to its input, and the dispatch it inlines with it, so the admission the dispatch makes
    /// had two callers and LLVM inlined it into neither (callgrind, guarded, depth 16: +14
    /// instructions per request instead of -22).
    #[inline(never)]
    fn run<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        input: &[u8],
        now: Instant,
    ) {
        d.date.refresh(now);
        d.now = now;
        // Nothing kept from an earlier pass is renewed in this one (`Guarded`).
        d.accounting.pass_begins(AdmittedHere::new());
        while !self.closing && !self.closed {
            if !self.may_parse(d) {
                self.paused = true;
                break;
            }
            // Where the request to dispatch lies: the head the head's state parsed (whose
            // body is here), or one whose body was awaited. One dispatch for both, inlined
            // here (so the calls it makes once, the admission's above all, have one caller).
            // The parse's result is made where it lies: `parsed` is initialized straight from
            // the call (its return slot is `parsed`). Assigned into a slot kept across the
            // loop's turns, it went through the call's own temporary and was copied in, 72
            // bytes by 16-byte loads of fields the parse had just stored narrower (a load that
            // spans several stores waits for them: five store-forwarding stalls per request);
            // LLVM could not write the call into the slot, which the handler's `Request`
            // borrows (an escape).
            let mut awaited = None;
            let parsed = match self.reading {
                Reading::Head => match self.head_to_parse(d, input, now) {
                    Some(buf) => parse_head_counted(
                        buf,
                        &d.limits,
                        &mut d.fields,
                        &mut d.stats.head_bytes_parsed,
                    ),
                    None => break,
                },
                Reading::Body { .. } => match self.read_body(d, input) {
                    Step::Wait => break,
                    Step::Continue => continue,
                    Step::Request(request) => {
                        // Its fields back into the slots, where the dispatch reads them.
                        d.fields[..self.headers.len()].copy_from_slice(&self.headers);
                        awaited = Some(request.total);
                        Ok(Some(request.head))
                    }
                },
            };
            let (head, total) = match (&parsed, awaited) {
                // A head whose body was awaited: whole now.
                (Ok(Some(head)), Some(total)) => (head, total),
                _ => match self.read_parsed(d, input, now, &parsed) {
                    HeadStep::Request(head, total) => (head, total),
                    HeadStep::Continue => continue,
                    HeadStep::Wait => break,
                },
            };
            self.dispatch(d, input, head, total);
            if !self.after_dispatch(d, input) {
                break;
            }
        }
        // What the read brought is handled: per-read work (`Guarded` lets go of the `this`
        // its pipelined requests shared).
        let accounting = &mut d.accounting;
        per_request::<A, _>(&mut d.stats.panics, (), || accounting.read_ended());
    }

    /// State [`Reading::Head`], before the parse: the input to parse a head from (after the
    /// empty lines before it), or `None` to wait for more (nothing, or a head whose end has
    /// not arrived). The reading loop parses it and hands the result to
    /// [`read_parsed`](Connection::read_parsed).
    #[inline(always)]
    fn head_to_parse<'i, A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        input: &'i [u8],
        now: Instant,
    ) -> Option<&'i [u8]> {
        // Empty lines before a request line end nothing (httparse skips them too): dropped as
        // they arrive, so they are not searched or parsed again.
        let buf = &input[self.start..];
        // One compare: every byte up to CR (LF among them) is looked at, out of line, the
        // others found to start no empty line.
        let buf = match buf.first() {
            Some(&first) if first <= b'\r' => self.drop_empty_lines(buf, now),
            _ => buf,
        };
        if buf.is_empty() {
            // `request_started` stays as it is: a dispatched or refused request reset it.
            return None;
        }
        // The request's timeout runs from its first bytes: `request_started` is set (to `now`,
        // unless an earlier read had begun it) wherever the request waits for more input. A
        // request whole in the input is answered in this call, and never needs it.
        // A head that trickles in is searched once per byte and parsed again only when its
        // end may have arrived or it outgrew the limit, not on every read: linear work however
        // the client splits it (G9). Its first bytes are parsed at once, so garbage is refused
        // at once; anything else an earlier parse would have refused is refused then, or at
        // the timeout (`partial_head_refusal`), with the same answer.
        if self.head_tried
            && buf.len() <= d.limits.max_head()
            && !head_end_arrived(buf, &mut self.head_searched)
        {
            self.request_started.get_or_insert(now);
            return None;
        }
        // `head_tried` is set when this parse finds the head's end missing (`read_parsed`):
        // a head parsed whole, or refused, is not waited for. The parse counts the bytes it
        // reads (`head_bytes_parsed`).
        Some(buf)
    }

    /// The input to parse a head from, `buf` after the empty lines it begins with (dropped).
    #[cold]
    #[inline(never)]
    fn drop_empty_lines<'i>(&mut self, buf: &'i [u8], now: Instant) -> &'i [u8] {
        let skipped = leading_empty_lines(buf);
        if skipped > 0 {
            self.start += skipped;
            self.head_searched = self.head_searched.saturating_sub(skipped);
            // Empty lines are a request's first bytes: its timeout runs from them (a client
            // sending nothing else must not hold the connection forever).
            self.request_started.get_or_insert(now);
        }
        &buf[skipped..]
    }

    /// State [`Reading::Head`], after the parse (`parsed`, of the input at `start`): read the
    /// head's body: the request to dispatch when its body is here, or whether the reading goes
    /// on. Inlined: nothing of the head is moved (a `Step` is read_body's: returned through
    /// memory, it cost the common path a few instructions per request).
    #[inline(always)]
    fn read_parsed<'p, A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        input: &[u8],
        now: Instant,
        parsed: &'p Result<Option<Head>, Reject>,
    ) -> HeadStep<'p> {
        let head = match parsed {
            Ok(Some(head)) => {
                self.head_tried = false;
                self.head_searched = 0;
                head
            }
            Ok(None) => {
                self.head_tried = true;
                self.request_started.get_or_insert(now);
                return HeadStep::Wait;
            }
            Err(reject) => {
                let head = starts_head(&input[self.start..]);
                self.reject(d, *reject, Wire::CLOSE.with_head(head));
                return HeadStep::Wait;
            }
        };
        let body = match head.framing {
            // The whole body is already here (always, for a request without one): no need to
            // wait in `Reading::Body`.
            // The input's length after the head, not sliced again (a bounds check per
            // request): `start` is within the input, the head was parsed from there.
            Framing::Length(n) if input.len() - self.start - head.len >= n => {
                let total = head.len + n;
                return HeadStep::Request(head, total);
            }
            Framing::Length(n) => BodyReader::Length(n),
            Framing::Chunked => {
                self.body.clear();
                BodyReader::Chunked {
                    decoder: ChunkedDecoder::new(&d.limits),
                    scanned: 0,
                }
            }
        };
        // Other connections' heads are parsed into the slots while this body arrives.
        self.headers.clear();
        self.headers
            .extend_from_slice(&d.fields[..usize::from(head.fields)]);
        self.reading = Reading::Body {
            head: head.clone(),
            body,
        };
        self.request_started.get_or_insert(now);
        HeadStep::Continue
    }

    /// What follows a request answered: the next one, or (when the input is all answered: at
    /// the end of nearly every read) the wait, without a turn of the reading loop over
    /// nothing. A pause for back-pressure is noted all the same (`resume`
    /// reads again once the client has read).
    #[inline]
    fn after_dispatch<A: Accounting>(&mut self, d: &Dispatcher<'r, A>, input: &[u8]) -> bool {
        if self.start < input.len() {
            return true;
        }
        if !self.closing && !self.closed && !self.may_parse(d) {
            self.paused = true;
        }
        false
    }

    /// State [`Reading::Body`]: wait for a `Content-Length` body, or decode what arrived of a
    /// chunked one (each byte once: the decoder keeps its state).
    fn read_body<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        input: &[u8],
    ) -> Step {
        let Reading::Body { head, body } = &mut self.reading else {
            return Step::Continue;
        };
        let expect = head.awaits_continue();
        if expect && !self.continue_sent && d.takes_no_handler(&input[self.start..], head) {
            return self.answer_without_body(input);
        }
        let after_head = self.start + head.len;
        let wire = head.wire(true);
        let total = match body {
            BodyReader::Length(n) if input.len() - after_head < *n => {
                return self.await_body(expect, d.now);
            }
            BodyReader::Length(n) => head.len + *n,
            BodyReader::Chunked { decoder, scanned } => {
                match decoder.decode(&input[after_head + *scanned..], &mut self.body) {
                    Ok(used) => *scanned += used,
                    Err(error) => {
                        self.reject(d, Reject::Chunked(error), wire);
                        return Step::Wait;
                    }
                }
                if !decoder.is_done() {
                    return self.await_body(expect, d.now);
                }
                head.len + *scanned
            }
        };
        let Reading::Body { head, .. } = std::mem::replace(&mut self.reading, Reading::Head) else {
            return Step::Continue;
        };
        Step::Request(Parsed { head, total })
    }

    /// The body of the request in [`Reading::Body`] is not all here: a client that asked for
    /// `100 Continue` (`expect`) gets it now (`read_body` answered first a request no handler
    /// takes), and the wait.
    fn await_body(&mut self, expect: bool, now: Instant) -> Step {
        if expect && !self.continue_sent {
            self.send_continue(now);
        }
        Step::Wait
    }

    /// The request in [`Reading::Body`], to be answered now without its body (not read, nor
    /// given to anything) and the connection closed after. A client that asked for `100
    /// Continue` waits for it before sending its body; if no handler will take the request (no
    /// route, a health probe, admission closed: decided from its head alone), its final answer
    /// goes at once instead, with `connection: close` (RFC 9110 §10.1.1): the client may send
    /// its body or not, and either way nothing after it could be read as the next request.
    /// What it sends is read and dropped during the close's linger. The same when its body
    /// came with its head: the answer does not depend on how the bytes were split into reads.
    #[cold]
    fn answer_without_body(&mut self, input: &[u8]) -> Step {
        let Reading::Body { mut head, .. } = std::mem::replace(&mut self.reading, Reading::Head)
        else {
            return Step::Continue;
        };
        head.keep_alive = false;
        let total = input.len() - self.start;
        Step::Request(Parsed { head, total })
    }

    /// In the handler: admit the request (or refuse it holding nothing), call its handler,
    /// and answer now or park it until its deferred answer is due. Its fields are in the
    /// dispatcher's slots. Inlined into the reading loop, its one caller: no call per request,
    /// and the head read where the parse left it.
    #[inline(always)]
    fn dispatch<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        input: &[u8],
        head: &Head,
        total: usize,
    ) {
        self.continue_sent = false;
        self.request_started = None;
        // Health probes (loops of a group) answer from the loop's own state, before admission:
        // liveness must hold through the drain, when admission refuses everything.
        if d.in_group && self.answer_probe(d, input, head, total) {
            return;
        }
        // The bundle of the pass's last request answered at once, renewed for this one where
        // the accounting keeps it (`Guarded`: a pipeline); else upgrade first, then take the
        // bundle (which such an accounting keeps, giving a stand-in): a refusal has taken
        // nothing. Through `d.accounting`, kept in place until the request is parked or
        // answered: the sealed calls' seal holds.
        let held = match d.accounting.renew_here(AdmittedHere::new()) {
            Some(held) => held,
            None => match admit_caught(&mut d.accounting) {
                Ok(held) => d.accounting.keep_here(held, AdmittedHere::new()),
                Err(refusal) => {
                    self.start += total;
                    self.refuse(d, refusal, head.wire(true));
                    return;
                }
            },
        };
        if A::keeps(AdmittedHere::new()) {
            // An empty stand-in (the bundle is the accounting's): let go of here, so that
            // nothing is kept across the handler's call for an unwinding to drop (a store per
            // request, round 33).
            std::mem::forget(held);
            let holding = InAccounting;
            dispatch_holding!(self, d, input, head, total, holding);
        } else {
            let holding = Own::<A>(held);
            dispatch_holding!(self, d, input, head, total, holding);
        }
    }

    /// Answers the request at `start` (its `head`, `total` bytes with its body) if it is a
    /// health probe (loops of a group): whether it was one. Out of line, as probes are only
    /// asked in a group.
    #[inline(never)]
    fn answer_probe<A: Accounting>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        input: &[u8],
        head: &Head,
        total: usize,
    ) -> bool {
        let Some((status, text)) = d.health_probe(input, self.start, head) else {
            return false;
        };
        self.start += total;
        // Asked for `100 Continue`: closes, as `answer_without_body` does.
        let close = !head.keep_alive || d.closes_connections() || head.awaits_continue();
        let (wire, date) = (head.wire(close), d.date.line());
        self.answers.push(close, None, |out| {
            write_response(out, wire, date, probe_response(status, text));
        });
        self.closing |= close;
        true
    }

    /// A large body was left out of the answer whose head was just written at the end of the
    /// output: lent to the output when longer than the dispatcher's `lend_over` (see
    /// [`Answers::lend`]; longer than `max_output`, it makes back-pressure pause the parsing
    /// until it is written), else copied after the head; to a `HEAD`, nothing (its head says
    /// the length). The loop is told if the response buffer is left over its keep
    /// ([`Dispatcher::note_scratch`]).
    #[cold]
    #[inline(never)]
    fn lend<A: Accounting>(&mut self, d: &mut Dispatcher<'r, A>, wire: Wire) {
        d.note_scratch();
        if wire.head() {
            return;
        }
        let len = d.scratch.len();
        if len > d.lend_over && self.answers.lend(&mut d.scratch) {
            d.stats.body_bytes_lent += len as u64;
        } else {
            debug_assert!(self.answers.lent().is_empty(), "invariant 4 of answers.rs");
            self.answers.output.extend_from_slice(&d.scratch);
        }
    }

    /// The admission refused the request: a fixed `503` and `Connection: close`.
    fn refuse<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        refusal: Refusal,
        wire: Wire,
    ) {
        self.refusal = Some(d.count_refusal(refusal));
        // Whatever happens while the answer is written, this connection is done.
        let closing = scopeguard::guard(&mut self.closing, |closing| *closing = true);
        let date = d.date.line();
        self.answers.push(true, None, |out| {
            write_status(out, wire, date, refusal.status());
        });
        drop(closing);
    }

    /// Bad input: a fixed status and `Connection: close` (`wire`); nothing was admitted.
    fn reject<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        reject: Reject,
        wire: Wire,
    ) {
        d.stats.rejected += 1;
        self.reject_uncounted(d, reject, wire);
    }

    /// [`reject`](Connection::reject), not counted (the caller counts it).
    fn reject_uncounted<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        reject: Reject,
        wire: Wire,
    ) {
        let date = d.date.line();
        self.answers.push(true, None, |out| {
            write_status(out, wire, date, reject.status());
        });
        self.closing = true;
        self.request_started = None;
    }

    /// Drops the input already answered, and a chunked body's framing already decoded.
    fn compact(&mut self) {
        if let Reading::Body {
            head,
            body: BodyReader::Chunked { scanned, .. },
        } = &mut self.reading
        {
            if *scanned > 0 {
                let from = self.start + head.len;
                self.input.drain(from..from + *scanned);
                *scanned = 0;
            }
        }
        let used = self.input.len();
        if self.start == self.input.len() {
            // Everything read was answered (nearly every turn): nothing to move.
            self.input.clear();
            self.start = 0;
        } else if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        // A large body should not pin its buffers for the rest of a keep-alive connection.
        if self.input.is_empty() {
            shrink(&mut self.input, used);
            let body = self.body.len();
            shrink(&mut self.body, body);
        }
    }

    /// The `100 Continue` of a request whose client asked for it (RFC 9110 §10.1.1), once no
    /// earlier answer is pending (answers go in order). While it is held back the client may
    /// be waiting for it, so the request's timeout does not run (QA client28-1: a `GET /delay`
    /// longer than `request_timeout` before it made the client that waited get `408`); sent
    /// later, the body is timed from it. Sent at once, the timeout still runs from the head's
    /// first byte.
    #[cold]
    fn send_continue(&mut self, now: Instant) {
        if self.answers.queue_len() == 0 {
            self.answers
                .output
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.continue_sent = true;
            self.request_started.get_or_insert(now);
        } else {
            self.request_started = None;
        }
    }

    /// Writing: answers at the front of the queue go out in order once ready or due. After a
    /// stop, the last of them carries `connection: close` (the ones before it still go out).
    fn complete_due<A: Accounting<Held = H>>(&mut self, d: &mut Dispatcher<'r, A>, now: Instant) {
        while let Some(slot) = self.answers.pop_due(now) {
            // Stopping, or closing with answers still to make (the client's end of input with
            // `Limits::half_close`): the last answer says `connection: close`.
            let closes_at_stop =
                (d.closes_connections() || self.closing) && self.answers.queue_len() == 0;
            let close = match slot {
                Slot::Ready { bytes, close, held } => {
                    self.answers.write_out(bytes, closes_at_stop && !close);
                    if let Some(held) = held {
                        answered(d, held);
                        self.served += 1;
                    }
                    close || closes_at_stop
                }
                Slot::Waiting {
                    held,
                    route,
                    token,
                    wire,
                    ..
                } => {
                    let close = wire.close() || closes_at_stop;
                    let wire = wire.with_close(close);
                    let close = resume(d, &held, route, token, wire, &mut self.answers.output);
                    answered(d, held);
                    self.served += 1;
                    close
                }
            };
            self.last_activity = now;
            if close {
                self.closing = true;
                // Nothing may follow a `Connection: close` answer.
                self.drop_held(d, AbortReason::Other("connection closed"));
                return;
            }
        }
        // Answers behind a slot still waiting keep their place in the queue as bytes.
        self.answers
            .resume_behind(now, |held, route, token, wire, out| {
                resume(d, held, route, token, wire, out)
            });
    }
}

/// An admitted request's answer is in the output: it is served, and its guards drop. A
/// request parked in the connection (queued or deferred) ends through [`Accounting::end`]: the
/// dispatcher's accounting may have been swapped since its admission.
fn answered<A: Accounting>(d: &mut Dispatcher<'_, A>, held: A::Held) {
    d.stats.served += 1;
    d.in_flight -= 1;
    // `Completed`, unless its signal already fired (a handler panic: `Dropped`).
    end_request::<A>(held, Outcome::Completed, &mut d.stats.panics);
}

/// [`answered`], for a request answered in the call that admitted it through `d.accounting`
/// (`here`): ended through the sealed [`Accounting::end_here`] with that accounting.
// Always inlined: left to the heuristics, the catch `end_request_here` compiles in (dead for
// `Guarded`) kept it out of line, +20 instructions per request.
#[inline(always)]
fn answered_here<A: Accounting>(d: &mut Dispatcher<'_, A>, held: A::Held, here: AdmittedHere) {
    d.stats.served += 1;
    d.in_flight -= 1;
    if A::keeps(AdmittedHere::new()) {
        // A stand-in: the bundle is kept for the pass's next request (`Accounting::keeps`).
        std::mem::forget(held);
        return;
    }
    // `Completed`, unless its signal already fired (a handler panic: `Dropped`).
    end_request_here(
        &d.accounting,
        held,
        Outcome::Completed,
        here,
        &mut d.stats.panics,
    );
}

/// What [`Connection::dispatch`] holds of the bundle of the request it dispatches, from its
/// admission to its answer or parking.
trait Holding<A: Accounting> {
    /// The signal for the handler's `Request` ([`Accounting::signal_here`]).
    fn signal<'a>(&'a self, accounting: &'a A) -> Option<&'a AbortSignal>;

    /// The bundle, for the request parked (deferred, or queued behind another answer).
    fn park(self, accounting: &mut A) -> A::Held;

    /// The request was answered within the dispatch ([`answered_here`]).
    fn answered(self, d: &mut Dispatcher<'_, A>);
}

/// The bundle itself: an accounting that keeps none ([`Accounting::keeps`]).
struct Own<A: Accounting>(A::Held);

impl<A: Accounting> Holding<A> for Own<A> {
    #[inline(always)]
    fn signal<'a>(&'a self, accounting: &'a A) -> Option<&'a AbortSignal> {
        accounting.signal_here(&self.0, AdmittedHere::new())
    }

    #[inline(always)]
    fn park(self, accounting: &mut A) -> A::Held {
        accounting.take_kept(self.0, AdmittedHere::new())
    }

    #[inline(always)]
    fn answered(self, d: &mut Dispatcher<'_, A>) {
        answered_here(d, self.0, AdmittedHere::new());
    }
}

/// Nothing: the accounting keeps the bundle ([`Accounting::keeps`], `Guarded` with the
/// server's context), renewed for the pass's next request or ended at the pass's end; a value
/// with no drop, so nothing is kept in memory across the handler's call for an unwinding.
struct InAccounting;

impl<A: Accounting> Holding<A> for InAccounting {
    /// None: the accounting lends it when the handler asks ([`Accounting::signal_lent`]).
    #[inline(always)]
    fn signal<'a>(&'a self, _: &'a A) -> Option<&'a AbortSignal> {
        None
    }

    #[inline(always)]
    fn park(self, accounting: &mut A) -> A::Held {
        accounting.take_kept_here(AdmittedHere::new())
    }

    #[inline(always)]
    fn answered(self, d: &mut Dispatcher<'_, A>) {
        d.stats.served += 1;
        d.in_flight -= 1;
    }
}

/// Completes one deferred response into `out`. Returns whether the answer closes the
/// connection.
fn resume<A: Accounting>(
    d: &mut Dispatcher<'_, A>,
    held: &A::Held,
    route: &Route,
    token: u64,
    wire: Wire,
    out: &mut Vec<u8>,
) -> bool {
    let mut response = Response::new(&mut d.scratch);
    if call_resume(route.handler(), token, &mut response).is_err() {
        d.stats.panics += 1;
        if let Some(signal) = per_request::<A, _>(&mut d.stats.panics, None, || A::signal(held)) {
            signal.abort(AbortReason::Dropped);
        }
    }
    // A promise that resolves into `server.stop()`, as a handler's `stop_server` is.
    if response.wants_stop() {
        d.asks |= ASK_STOP;
    }
    let close = wire.close() || response.wants_close();
    write_response(
        out,
        wire.with_close(close),
        d.date.line(),
        response.answer(),
    );
    d.note_scratch();
    close
}

impl<H> fmt::Debug for Connection<'_, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("buffered_input", &(self.input.len() - self.start))
            .field("pending_output", &self.pending_output().len())
            .field("queued", &self.answers.queue_len())
            .field("paused", &self.paused)
            .field("closing", &self.closing)
            .field("closed", &self.closed)
            .finish()
    }
}

/// Whether the end of a head (an empty line: `LF LF` or `LF CR LF`, as httparse ends it) may
/// have arrived in `buf`, searching from `*searched` and moving it past what it searched, so
/// each byte is searched once while the head trickles in. A match is only a candidate (the
/// empty lines before a request line end nothing): the search goes on after it next time.
fn head_end_arrived(buf: &[u8], searched: &mut usize) -> bool {
    let mut at = *searched;
    while let Some(i) = memchr::memchr(b'\n', &buf[at..]) {
        let lf = at + i;
        match (buf.get(lf + 1), buf.get(lf + 2)) {
            (Some(b'\n'), _) | (Some(b'\r'), Some(b'\n')) => {
                *searched = lf + 1;
                return true;
            }
            // The bytes that decide are still to come: search this line feed again.
            (None, _) | (Some(b'\r'), None) => {
                *searched = lf;
                return false;
            }
            _ => at = lf + 1,
        }
    }
    *searched = buf.len();
    false
}

/// The length of the complete empty lines (`CR LF` or `LF`) at the start of `buf`.
fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut rest = buf;
    while let [b'\r', b'\n', tail @ ..] | [b'\n', tail @ ..] = rest {
        rest = tail;
    }
    buf.len() - rest.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{demo_routes, Limits, Router, Routes, Unaccounted};

    /// A read with nothing kept before it is parsed where it is: what it leaves unanswered
    /// (the start of the next request, a body still arriving) is kept and read on with the
    /// next read, whatever the split; and the input buffer a large body grew is given back at
    /// the next small read, as when every read went through it.
    #[test]
    fn what_a_read_leaves_unanswered_is_kept_and_a_grown_input_given_back() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let mut d = Dispatcher::new(&router, Unaccounted::new(), Limits::default());
        let now = Instant::now();
        let mut c = Connection::new(now);
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let whole = [
            &get[..],
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        ]
        .concat();
        for split in 0..=whole.len() {
            let (a, b) = whole.split_at(split);
            c.receive(&mut d, a, now);
            c.receive(&mut d, b, now);
            let out = String::from_utf8(c.pending_output().to_vec()).unwrap();
            assert_eq!(
                out.matches("HTTP/1.1 200 OK").count(),
                2,
                "split at {split}"
            );
            assert!(out.ends_with("\r\n\r\nhello"), "split at {split}: {out:?}");
            c.consume_output(out.len());
            assert!(c.is_idle(), "split at {split}: nothing kept");
        }
        // A body of 1 MiB grows the input past what is kept; the next small request gives it back.
        let body = vec![b'a'; 1 << 20];
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        c.receive(&mut d, head.as_bytes(), now);
        for chunk in body.chunks(64 * 1024) {
            c.receive(&mut d, chunk, now);
        }
        assert!(c.input.capacity() > 64 * 1024, "the body grew the input");
        let written = c.pending_output().len();
        c.consume_output(written);
        c.receive(&mut d, get, now);
        assert!(
            c.input.capacity() <= 64 * 1024,
            "given back: {}",
            c.input.capacity()
        );
    }

    /// Empty lines before a request line are dropped as they arrive (`CR LF` and `LF`, as
    /// httparse skips them), and nothing else is: with every byte value first, alone or before
    /// LF, the connection keeps nothing of what it read exactly when that was empty lines
    /// (those up to CR, which one compare sends to the skip, included), and the request read
    /// next is answered `200` exactly then (any other byte gets an error answer).
    #[test]
    fn only_empty_lines_are_dropped_before_a_request_line() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let mut d = Dispatcher::new(&router, Unaccounted::new(), Limits::default());
        let now = Instant::now();
        for first in 0..=u8::MAX {
            for before in [&[first][..], &[first, b'\n']] {
                let empty = matches!(before, b"\n" | b"\r\n" | b"\n\n");
                let mut c = Connection::new(now);
                c.receive(&mut d, before, now);
                assert_eq!(c.input.len() == c.start, empty, "{before:?}: kept");
                c.receive(&mut d, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
                let out = c.pending_output();
                assert!(out.starts_with(b"HTTP/1.1 "), "{before:?}: an answer");
                assert_eq!(out.starts_with(b"HTTP/1.1 200 OK\r\n"), empty, "{before:?}");
            }
        }
    }

    /// A small deterministic generator for the split tests (xorshift64*).
    struct Splits(u64);

    impl Splits {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
        }
    }

    /// The output with every `date` value blanked (two runs may straddle a second).
    fn undated(out: &[u8]) -> Vec<u8> {
        let mut rest = out;
        let mut plain = Vec::with_capacity(out.len());
        while let Some(at) = memchr::memmem::find(rest, b"\r\ndate: ") {
            plain.extend_from_slice(&rest[..at + 8]);
            plain.extend_from_slice(&[b'-'; 29]);
            rest = &rest[at + 8 + 29..];
        }
        plain.extend_from_slice(rest);
        plain
    }

    /// Large and small echoes, `Content-Length` and chunked, pipelined behind one another.
    fn mixed_requests(splits: &mut Splits) -> Vec<u8> {
        let mut wire = Vec::new();
        for _ in 0..6 {
            let len = [0, 5, 900, 70_000, 200_000, 1 << 20][splits.below(6)];
            let body: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            if splits.below(3) == 0 {
                wire.extend_from_slice(
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                );
                for chunk in body.chunks(1 + splits.below(100_000)) {
                    wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    wire.extend_from_slice(chunk);
                    wire.extend_from_slice(b"\r\n");
                }
                wire.extend_from_slice(b"0\r\n\r\n");
            } else {
                let head =
                    format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n");
                wire.extend_from_slice(head.as_bytes());
                wire.extend_from_slice(&body);
            }
            if splits.below(2) == 0 {
                wire.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            }
        }
        wire
    }

    /// Every answer to `wire`, fed whole and copied into the output (what a `Session` does).
    fn answered_whole(router: &Router<'_>, limits: Limits, wire: &[u8]) -> Vec<u8> {
        let mut d = Dispatcher::new(router, Unaccounted::new(), limits);
        let now = Instant::now();
        let mut c = Connection::new(now);
        c.receive(&mut d, wire, now);
        let mut out = Vec::new();
        loop {
            out.extend_from_slice(c.pending_output());
            let n = c.pending_output().len();
            c.consume_output(n);
            if !c.resume(&mut d, now) {
                return out;
            }
        }
    }

    /// As the mio loop does it, in arbitrary pieces: reads while the connection wants them,
    /// the rest of a body read into the input in place, large answer bodies lent and written
    /// after their head in writes of arbitrary lengths. The answers are the same bytes as
    /// when everything is copied, whatever the splits; bodies were read in place and lent.
    #[test]
    fn bodies_read_in_place_and_lent_give_the_same_answers_whatever_the_splits() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let limits = Limits::default().with_max_output(16 * 1024);
        let (mut in_place, mut lent) = (0, 0);
        for seed in 1..=24 {
            let mut splits = Splits(seed);
            let wire = mixed_requests(&mut splits);
            let expected = answered_whole(&router, limits, &wire);
            let mut d = Dispatcher::lending(&router, Unaccounted::new(), limits);
            let now = Instant::now();
            let mut c = Connection::new(now);
            let (mut fed, mut out) = (0, Vec::new());
            let mut idle_turns = 0;
            while idle_turns < 3 {
                let before = (fed, out.len());
                if fed < wire.len() && c.wants_read(&d) {
                    let piece = &wire[fed..(fed + 1 + splits.below(150_000)).min(wire.len())];
                    let read = c.receive_body_with(&mut d, now, |input| {
                        let n = piece.len().min(input.capacity() - input.len());
                        input.extend_from_slice(&piece[..n]);
                        Ok(n)
                    });
                    fed += match read {
                        Some(read) => read.unwrap(),
                        None => {
                            c.receive(&mut d, piece, now);
                            piece.len()
                        }
                    };
                }
                // One write: what is pending, then the lent body, cut anywhere.
                let (pending, body) = (c.pending_output(), c.lent_output());
                let n = (1 + splits.below(300_000)).min(pending.len() + body.len());
                let taken = n.min(pending.len());
                out.extend_from_slice(&pending[..taken]);
                out.extend_from_slice(&body[..n - taken]);
                c.consume_output(n);
                c.resume(&mut d, now);
                idle_turns = if (fed, out.len()) == before {
                    idle_turns + 1
                } else {
                    0
                };
            }
            assert_eq!(fed, wire.len(), "seed {seed}: everything was read");
            assert!(c.pending_output().is_empty() && c.lent_output().is_empty());
            assert!(
                undated(&out) == undated(&expected),
                "seed {seed}: the answers differ"
            );
            in_place += d.stats().body_bytes_read_in_place;
            lent += d.stats().body_bytes_lent;
        }
        assert!(
            in_place > 1 << 20 && lent > 1 << 20,
            "{in_place} read in place, {lent} lent"
        );
    }

    /// What a read and its answers touch of a connection lies together at its end, in four
    /// cache lines at most, after the reading state and what only a body's wait or the first
    /// use reads (see `Connection`).
    #[test]
    fn a_reads_fields_lie_together_at_the_end() {
        use std::mem::{offset_of, size_of};
        type C = Connection<'static, ()>;
        let from = offset_of!(C, answers);
        let per_read = [
            offset_of!(C, answers),
            offset_of!(C, input),
            offset_of!(C, start),
            offset_of!(C, body),
            offset_of!(C, last_activity),
            offset_of!(C, request_started),
            offset_of!(C, head_searched),
            offset_of!(C, served),
            offset_of!(C, head_tried),
            offset_of!(C, paused),
            offset_of!(C, closing),
            offset_of!(C, closed),
            offset_of!(C, used),
        ];
        assert_eq!(offset_of!(C, reading), 0);
        assert!(size_of::<C>() - from <= 4 * 64);
        assert!(per_read.iter().all(|&at| at >= from));
        assert!([offset_of!(C, headers), offset_of!(C, dispatcher)]
            .iter()
            .all(|&at| at < from));
    }

    /// A client's `Content-Length` reserves nothing it did not send: a head that declares 1 MB
    /// and one byte of it make the connection hold a few KiB, not the length declared; as the
    /// body arrives the input grows with it, at most doubling what arrived.
    #[test]
    fn a_declared_length_reserves_only_what_arrived() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let mut d = Dispatcher::lending(&router, Unaccounted::new(), Limits::default());
        let now = Instant::now();
        let mut c = Connection::new(now);
        let head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nx";
        c.receive(&mut d, head, now);
        let one_byte = |input: &mut Vec<u8>| {
            input.push(b'y');
            Ok(1)
        };
        assert_eq!(
            c.receive_body_with(&mut d, now, one_byte).unwrap().unwrap(),
            1
        );
        assert!(
            c.buffered() <= head.len() + MIN_BODY_ROOM + 64,
            "{}",
            c.buffered()
        );
        let mut arrived = head.len() + 1;
        while arrived < 500_000 {
            let read = c.receive_body_with(&mut d, now, |input| {
                let n = input.capacity() - input.len();
                input.resize(input.len() + n, b'z');
                Ok(n)
            });
            arrived += read.unwrap().unwrap();
            assert!(
                c.buffered() <= 2 * arrived + MIN_BODY_ROOM,
                "{} for {arrived}",
                c.buffered()
            );
        }
    }

    /// The loop's shortcut (`idle_deadline_alone`) gives what `next_deadline` gives whenever
    /// it gives anything, in every state a connection passes through; and it does give the
    /// idle deadline after a kept-alive answer, the common case it is for.
    #[test]
    fn the_idle_deadline_alone_is_the_next_deadline() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let limits = Limits::default().with_request_timeout(Duration::from_secs(3));
        let mut d = Dispatcher::new(&router, Unaccounted::new(), limits);
        let t0 = Instant::now();
        let mut c = Connection::new(t0);
        let check = |c: &Connection<'_, _>, d: &Dispatcher<'_, Unaccounted>| {
            let alone = c.idle_deadline_alone(d);
            if alone.is_some() {
                assert_eq!(alone, c.next_deadline(d));
            }
            alone
        };
        let mut at = t0;
        for input in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            // Empty lines alone: a request has begun, its timeout runs (and comes first).
            b"\r\n",
            b"GET / HTTP/1.1\r\nHo",
            b"st: x\r\n\r\n",
            b"GET /delay?ms=50 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab",
            b"cd",
        ] {
            at += Duration::from_millis(10);
            c.receive(&mut d, input, at);
            check(&c, &d);
            let written = c.pending_output().len();
            c.consume_output(written);
            c.resume(&mut d, at);
            check(&c, &d);
            at += Duration::from_millis(100);
            c.on_timer(&mut d, at);
            let written = c.pending_output().len();
            c.consume_output(written);
            let after_answer = check(&c, &d);
            assert_eq!(
                after_answer.is_some(),
                c.is_idle() && c.request_started.is_none()
            );
        }
        assert!(
            check(&c, &d).is_some(),
            "kept alive, answered: the idle timeout alone"
        );
        d.begin_stop(at);
        assert_eq!(
            check(&c, &d),
            None,
            "a stop makes idle connections linger instead"
        );
    }

    /// A request that waits for its body keeps its own fields while other connections parse
    /// heads into the loop's shared slots, and its handler sees them all, in order.
    #[test]
    fn a_request_waiting_for_its_body_keeps_its_fields() {
        fn fields(request: &Request<'_>, response: &mut Response<'_>) -> Reply {
            for (name, value) in request.headers() {
                response.write(name.as_bytes());
                response.write(b"=");
                response.write(value);
                response.write(b";");
            }
            response.write(request.body());
            Reply::Now
        }
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        router.route("POST", "/f", fields);
        router.route("GET", "/f", fields);
        let mut d = Dispatcher::new(&router, Unaccounted::new(), Limits::default());
        let now = Instant::now();
        let (mut waiting, mut other) = (Connection::new(now), Connection::new(now));
        waiting.receive(
            &mut d,
            b"POST /f HTTP/1.1\r\nHost: a\r\nX-Mine: 1\r\nContent-Length: 4\r\n\r\nab",
            now,
        );
        other.receive(
            &mut d,
            b"GET /f HTTP/1.1\r\nHost: b\r\nX-Other: 2\r\nX-More: 3\r\nX-Most: 4\r\n\r\n",
            now,
        );
        assert!(other
            .pending_output()
            .ends_with(b"Host=b;X-Other=2;X-More=3;X-Most=4;"));
        assert!(waiting.pending_output().is_empty());
        waiting.receive(&mut d, b"cd", now);
        assert!(waiting
            .pending_output()
            .ends_with(b"Host=a;X-Mine=1;Content-Length=4;abcd"));
    }
}
