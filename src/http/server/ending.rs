//! The end of a stop, shared by a lone [`Server`](super::Server) at its drain deadline and a
//! group's loop at its ladder's force and close steps (`ladder_loop.rs`): only what is still
//! out ends; every answer already computed goes out, in order, the last with
//! `connection: close`; each connection lingers until its socket has sent them, within
//! [`LINGER_LIMIT`] of the close (issue 10, row 10; QA client30-1, stop31).
//!
//! A lone server ran none of this before round 31: its drain deadline closed every
//! connection at once, cutting the answers computed for a client reading slowly and leaving a
//! head in progress without a word.

use std::io::Write as _;
use std::time::Instant;

use super::{begin_linger, Connection, EventLoop, Socket, LINGER_LIMIT, STOP_TIMER};
use crate::callback::call_caught;
use crate::http::accounting::Accounting;
use crate::http::dispatch::Dispatcher;
use crate::http::ladder::ConnState;
use crate::signal::AbortReason;

/// Where a loop is in the end of its stop.
#[derive(Default)]
pub(super) struct Ending {
    /// Connections a step found writing an answer with a request not whole behind it (key,
    /// accept instant): each gets its `503` + close once its output is written
    /// ([`EventLoop::answer_held_behind`]).
    held_behind: Vec<(usize, Instant)>,
    /// When the close began: the loop ends once its last connection has closed, or
    /// [`LINGER_LIMIT`] after this ([`EventLoop::close_done`]).
    closed_at: Option<Instant>,
    /// What the close does with a connection idle once its answers are written.
    idle: Idle,
}

/// What the end of a stop does with a connection idle (kept alive after its answers, or silent
/// since its accept): nothing begun on it, nothing to write.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Idle {
    /// Left to the stop's idle linger (the ladder's abort step: the close comes later).
    #[default]
    Left,
    /// Answered `503` + close (a group's close step: its listener was open through the drain,
    /// and a connection accepted then may be about to send its request).
    Answered,
    /// Closed (our FIN, then the close linger), as the stop's idle linger closes it (a lone
    /// server's close: its listener closed at the stop, so an idle connection is a kept-alive
    /// one after its answers, and closes as keep-alive connections close).
    Closed,
}

impl Ending {
    /// Whether the close has begun.
    pub(super) fn closing(&self) -> bool {
        self.closed_at.is_some()
    }

    /// Whether connections wait for their `503` behind an answer being written.
    pub(super) fn holds_some(&self) -> bool {
        !self.held_behind.is_empty()
    }
}

impl<A: Accounting> EventLoop<'_, A> {
    /// The force step the ladder's time reached: each connection with a request out (in its
    /// handler, or answered and queued behind one) has those requests ended as the force-close
    /// ends them, is counted force-closed, and closes once its output is written.
    pub(super) fn end_what_is_out(&mut self, now: Instant, buf: &mut [u8]) {
        let keys: Vec<usize> = self
            .sockets
            .iter()
            .filter(|(_, socket)| socket.http.waiting() > 0)
            .map(|(key, _)| key)
            .collect();
        for key in keys {
            self.force_closed += 1;
            let http = &mut self.sockets[key].http;
            let dispatcher = &mut self.dispatcher;
            // The accounting's `end` is the embedder's code: a panic is counted, and that
            // connection closed as the forced path closes it.
            if call_caught(move || http.end_waiting(dispatcher, AbortReason::DrainDeadline)) {
                self.dispatcher.stats.panics += 1;
                self.close(key);
                continue;
            }
            self.connection_event(mio::Token(key), None, buf, now);
        }
        // Every request in flight was on one of them, whatever count a panic cut short.
        self.dispatcher.in_flight = 0;
    }

    /// Answers `503` + `connection: close` on every open connection with a request not whole
    /// yet (a head in progress, a body still coming), and ends each idle one as `idle` says.
    /// Returns how many sockets took their `503` whole at once (the step's `answered`).
    pub(super) fn answer_unadmitted(&mut self, now: Instant, buf: &mut [u8], idle: Idle) -> usize {
        // A request may be in its socket unread (a connection accepted in this very turn, its
        // readable event not handled yet): read first, so that a whole request is refused
        // as a late one is, and counted in `refused`. Only what has sent nothing whole is
        // answered below, uncounted but for the step's `answered`.
        let open: Vec<usize> = self
            .sockets
            .iter()
            .filter(|(_, socket)| socket.lingering.is_none())
            .map(|(key, _)| key)
            .collect();
        for key in open {
            self.connection_event(mio::Token(key), None, buf, now);
        }
        let mut answered = 0;
        let mut held_behind = Vec::new();
        for (key, socket) in self.sockets.iter_mut() {
            if socket.lingering.is_some() {
                continue;
            }
            match socket.http.activity(now).0 {
                state @ (ConnState::Reading | ConnState::Idle) => {
                    let d = &mut self.dispatcher;
                    answered += usize::from(end_unadmitted(socket, d, state, idle, now));
                }
                // Nothing admitted, an answer still being written and maybe a request begun
                // behind it: answered once that answer is written, or the force step and
                // the close linger that follows cut an unfinished request's connection
                // without a word where a whole one got its `503` (QA client30-1).
                ConnState::Writing if !socket.http.is_closing() => {
                    held_behind.push((key, socket.accepted));
                }
                _ => {}
            }
        }
        self.ending.held_behind.extend(held_behind);
        let keys: Vec<usize> = self.sockets.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.reschedule(key, now);
        }
        answered
    }

    /// The connections [`answer_unadmitted`](EventLoop::answer_unadmitted) found writing: each
    /// whose output is written now with a request not whole (a head in progress, a body still
    /// coming) gets its `503` + close, counted in the last step's `answered` if its socket
    /// takes it whole at once; one idle once it is written is ended as the close ends an idle
    /// connection, once the close has begun (it was left to the close linger's end, then
    /// closed without a word), or left to the stop's idle linger before; one closing (its
    /// request came whole and was refused, or its client went) leaves the list.
    pub(super) fn answer_held_behind(&mut self, now: Instant) -> usize {
        let held_behind = std::mem::take(&mut self.ending.held_behind);
        let mut still = Vec::with_capacity(held_behind.len());
        let mut answered = 0;
        let idle = self.ending.idle;
        for (key, accepted) in held_behind {
            let Some(socket) = self.sockets.get_mut(key) else {
                continue;
            };
            if socket.accepted != accepted || socket.lingering.is_some() {
                continue; // Closed since (its slot another's), or closing.
            }
            match socket.http.activity(now).0 {
                _ if socket.http.is_closing() => {}
                ConnState::Writing => still.push((key, accepted)),
                state @ (ConnState::Reading | ConnState::Idle) => {
                    let d = &mut self.dispatcher;
                    answered += usize::from(end_unadmitted(socket, d, state, idle, now));
                    self.reschedule(key, now);
                }
                _ => {}
            }
        }
        self.ending.held_behind = still;
        answered
    }

    /// After the close step, the loop ends when its last connection has closed: the answers
    /// still being written go out, and each connection lingers until its socket has sent them
    /// (`begin_linger`); or, whatever is left, [`LINGER_LIMIT`] after the close step. Closing
    /// one earlier under a client still sending reset it, and the reset dropped answers the
    /// socket had not sent yet, counted `served` (`benches/load/qa11_trunc.py`).
    pub(super) fn close_done(&mut self, now: Instant) -> bool {
        let Some(closed_at) = self.ending.closed_at else {
            return false;
        };
        if self.sockets.is_empty() {
            return true;
        }
        if now >= closed_at + LINGER_LIMIT {
            // What lingers after its last answer (its client keeps it open) closes uncounted.
            self.force_close_all();
            return true;
        }
        false
    }

    /// The close: every connection still open with a request not whole yet gets `503` +
    /// close, and each idle one is ended as `idle` says, at once or once the answer it is
    /// writing is written; answers still being written go out, and the loop ends when its last
    /// connection has closed, at most [`LINGER_LIMIT`] from now
    /// ([`close_done`](EventLoop::close_done)). Returns how many sockets took their `503` whole
    /// at once.
    pub(super) fn begin_close(&mut self, now: Instant, buf: &mut [u8], idle: Idle) -> usize {
        self.ending.idle = idle;
        let answered = self.answer_unadmitted(now, buf, idle);
        self.ending.closed_at = Some(now);
        self.timers.schedule(now + LINGER_LIMIT, STOP_TIMER);
        answered
    }
}

/// Ends a connection with nothing admitted in `state` (reading or idle): a request not whole
/// yet gets the stop's `503` + close, an idle connection what `idle` says. Whether its socket
/// took a `503` whole at once.
fn end_unadmitted<'r, A: Accounting>(
    socket: &mut Socket<'r, A::Held>,
    dispatcher: &mut Dispatcher<'r, A>,
    state: ConnState,
    idle: Idle,
    now: Instant,
) -> bool {
    match (state, idle) {
        (ConnState::Reading, _) | (ConnState::Idle, Idle::Answered) => {
            answer_503(socket, dispatcher, now)
        }
        (ConnState::Idle, Idle::Closed) => {
            // Nothing is held on it: the abort only marks it closed.
            socket
                .http
                .abort(dispatcher, AbortReason::Other("server closing"));
            begin_linger(socket, now);
            false
        }
        _ => false,
    }
}

/// Answers a connection with nothing admitted (idle, or a request not whole yet) the stop's
/// `503` + `connection: close`, as one over the limit is answered, then FIN and a short drain.
/// Whether its socket took the answer whole at once (a client gone has no answer).
fn answer_503<'r, A: Accounting>(
    socket: &mut Socket<'r, A::Held>,
    dispatcher: &mut Dispatcher<'r, A>,
    now: Instant,
) -> bool {
    socket
        .http
        .abort(dispatcher, AbortReason::Other("server closing"));
    dispatcher.date.refresh(now);
    socket.http = Connection::closing_after(&socket.http, now, dispatcher.date.line());
    // Writable since it was accepted (or since its last answer was written): no new edge will
    // come, so write now. Whatever does not fit goes out on the writable event once the client
    // reads.
    let mut whole = false;
    if let Ok(n) = socket.stream.write(socket.http.pending_output()) {
        whole = n == socket.http.pending_output().len();
        socket.http.consume_output(n);
        socket.sent += n as u64;
    }
    if socket.http.pending_output().is_empty() {
        begin_linger(socket, now);
    }
    whole
}
