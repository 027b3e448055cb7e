//! The sans-IO connection: bytes in, response bytes out, no socket.
//!
//! # Invariants
//!
//! 1. Responses leave in request order: `output` only ever receives the answer of the oldest
//!    request without one; later answers wait in `queue` as `Ready` bytes.
//! 2. Every `Waiting` slot holds the guards of one admitted request; the dispatcher's
//!    `in_flight` counts them over all connections. A slot leaves the queue only by being
//!    answered (`served`) or aborted (`aborted`, its signal fired), and its guards drop then.
//! 3. Once `closing` is set no further request is parsed; once `closed` is set nothing more is
//!    written.
//! 4. Refusals and rejections write a fixed answer into buffers that already exist.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use super::accounting::Accounting;
use super::dispatch::{call_handler, call_resume, Dispatcher};
use super::parse::{decode_chunked, parse_head, Framing, Reject};
use super::response::{write_response, write_status, Response, Wire};
use super::router::{Reply, Request, Route};
use crate::signal::AbortReason;

enum Slot<'r, H> {
    /// A deferred response: the request's guards wait here until `due`.
    Waiting {
        held: H,
        due: Instant,
        route: &'r Route,
        token: u64,
        http10: bool,
        close: bool,
    },
    /// An answer behind a deferred one.
    Ready { bytes: Vec<u8>, close: bool },
}

/// One HTTP/1.1 connection's state machine, independent of any socket.
///
/// Feed it what the socket read with [`receive`](Connection::receive), write out
/// [`pending_output`](Connection::pending_output) and report it with
/// [`consume_output`](Connection::consume_output), call [`on_timer`](Connection::on_timer) at
/// [`next_deadline`](Connection::next_deadline), and [`abort`](Connection::abort) when the
/// socket fails. [`Session`](crate::http::Session) wraps one with its own dispatcher and clock.
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
/// connection.receive(&mut dispatcher, b"GET / HTTP/1.1\r\n\r\n", now); // what the socket read
/// let written = connection.pending_output().len(); // what the socket wrote
/// connection.consume_output(written);
/// assert_eq!(connection.next_deadline(&dispatcher), Some(now + Limits::default().get_idle_timeout()));
///
/// connection.abort(&mut dispatcher, AbortReason::ClientDisconnected); // the socket failed
/// assert_eq!(dispatcher.stats().served, 1);
/// ```
pub struct Connection<'r, H> {
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    queue: VecDeque<Slot<'r, H>>,
    body: Vec<u8>,
    /// Emptied answer buffers, reused for answers queued behind a deferred one.
    spare: Vec<Vec<u8>>,
    request_started: Option<Instant>,
    last_activity: Instant,
    continue_sent: bool,
    closing: bool,
    closed: bool,
}

/// Buffers above this capacity are given back once empty.
const KEEP_CAPACITY: usize = 64 * 1024;

fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP_CAPACITY {
        buf.shrink_to(KEEP_CAPACITY / 4);
    }
}

/// Appends an answer: straight into `out` when nothing is queued ahead of it, otherwise into a
/// spare buffer queued in order (buffers are recycled, so a warm connection does not allocate).
fn push<H>(
    out: &mut Vec<u8>,
    queue: &mut VecDeque<Slot<'_, H>>,
    spare: &mut Vec<Vec<u8>>,
    close: bool,
    write: impl FnOnce(&mut Vec<u8>),
) {
    if queue.is_empty() {
        write(out);
    } else {
        let mut bytes = spare.pop().unwrap_or_default();
        write(&mut bytes);
        queue.push_back(Slot::Ready { bytes, close });
    }
}

impl<'r, H> Connection<'r, H> {
    /// A new connection, opened at `now`.
    pub fn new(now: Instant) -> Self {
        Connection {
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            queue: VecDeque::new(),
            body: Vec::new(),
            spare: Vec::new(),
            request_started: None,
            last_activity: now,
            continue_sent: false,
            closing: false,
            closed: false,
        }
    }

    /// Takes bytes read from the client and answers every complete request in them.
    pub fn receive<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        bytes: &[u8],
        now: Instant,
    ) {
        if self.closing || self.closed {
            return; // Nothing more will be answered: drop the input.
        }
        self.input.extend_from_slice(bytes);
        self.last_activity = now;
        self.process(d, now);
    }

    /// Whether the server should read more from the socket now.
    pub fn wants_read<A: Accounting>(&self, d: &Dispatcher<'r, A>) -> bool {
        !self.closed && (self.closing || self.input.len() < d.limits.read_cap())
    }

    /// Bytes to write to the client.
    pub fn pending_output(&self) -> &[u8] {
        &self.output[self.written..]
    }

    /// Records that `n` bytes of [`pending_output`](Connection::pending_output) were written.
    pub fn consume_output(&mut self, n: usize) {
        self.written += n;
        if self.written >= self.output.len() {
            self.output.clear();
            self.written = 0;
            shrink(&mut self.output);
        }
    }

    /// Whether the connection is finished: closed, or closing with everything written.
    pub fn is_done(&self) -> bool {
        self.closed || (self.closing && self.queue.is_empty() && self.pending_output().is_empty())
    }

    /// Whether no more request will be parsed.
    pub fn is_closing(&self) -> bool {
        self.closing || self.closed
    }

    /// Deferred responses still waiting (each holds one admitted request's guards).
    pub fn waiting(&self) -> usize {
        self.queue
            .iter()
            .filter(|s| matches!(s, Slot::Waiting { .. }))
            .count()
    }

    fn is_idle(&self) -> bool {
        !self.closing
            && !self.closed
            && self.queue.is_empty()
            && self.input.is_empty()
            && self.pending_output().is_empty()
    }

    fn idle_deadline<A: Accounting>(&self, d: &Dispatcher<'r, A>) -> Instant {
        match d.stopped_at {
            Some(stopped) => {
                let linger = d.limits.get_stop_linger().min(d.limits.get_idle_timeout());
                self.last_activity.max(stopped) + linger
            }
            None => self.last_activity + d.limits.get_idle_timeout(),
        }
    }

    /// When [`on_timer`](Connection::on_timer) has something to do next.
    pub fn next_deadline<A: Accounting>(&self, d: &Dispatcher<'r, A>) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let due = self.queue.iter().filter_map(|s| match s {
            Slot::Waiting { due, .. } => Some(*due),
            Slot::Ready { .. } => None,
        });
        let request = self
            .request_started
            .filter(|_| !self.closing)
            .map(|t| t + d.limits.get_request_timeout());
        let idle = self.is_idle().then(|| self.idle_deadline(d));
        due.chain(request).chain(idle).min()
    }

    /// Completes deferred responses that are due, answers `408` to a request too slow to
    /// arrive, and closes an idle connection whose keep-alive ran out.
    pub fn on_timer<A: Accounting<Held = H>>(&mut self, d: &mut Dispatcher<'r, A>, now: Instant) {
        if self.closed {
            return;
        }
        self.complete_due(d, now);
        if let Some(started) = self.request_started {
            if !self.closing && now >= started + d.limits.get_request_timeout() {
                self.reject(d, Reject::Timeout, false);
            }
        }
        if self.is_idle() && now >= self.idle_deadline(d) {
            self.closed = true;
            return;
        }
        self.process(d, now);
    }

    /// The client went away (read end closed): waiting requests are aborted with
    /// [`AbortReason::ClientDisconnected`]; what is already answered may still be written.
    pub fn peer_closed<A: Accounting<Held = H>>(&mut self, d: &mut Dispatcher<'r, A>) {
        self.drop_waiting(d, AbortReason::ClientDisconnected);
        self.closing = true;
    }

    /// The connection is lost or force-closed: every waiting request is aborted with `reason`
    /// and its guards released; nothing more is written.
    pub fn abort<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        reason: AbortReason,
    ) {
        self.drop_waiting(d, reason);
        self.closed = true;
    }

    fn drop_waiting<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        reason: AbortReason,
    ) {
        // Answers queued behind a waiting one can no longer go out in order: drop them too.
        for slot in self.queue.drain(..) {
            if let Slot::Waiting { held, .. } = slot {
                if let Some(signal) = A::signal(&held) {
                    signal.abort(reason);
                }
                drop(held);
                d.in_flight -= 1;
                d.stats.aborted += 1;
            }
        }
    }

    fn reject<A: Accounting<Held = H>>(
        &mut self,
        d: &mut Dispatcher<'r, A>,
        reject: Reject,
        http10: bool,
    ) {
        d.stats.rejected += 1;
        push(
            &mut self.output,
            &mut self.queue,
            &mut self.spare,
            true,
            |out| {
                write_status(
                    out,
                    Wire {
                        http10,
                        close: true,
                    },
                    reject.status(),
                );
            },
        );
        self.closing = true;
        self.request_started = None;
    }

    fn process<A: Accounting<Held = H>>(&mut self, d: &mut Dispatcher<'r, A>, now: Instant) {
        let mut consumed = 0;
        while !self.closing && !self.closed && self.queue.len() < d.limits.get_max_pipeline() {
            let buf = &self.input[consumed..];
            if buf.is_empty() {
                self.request_started = None;
                break;
            }
            self.request_started.get_or_insert(now);
            let head = match parse_head(buf, &d.limits) {
                Ok(Some(head)) => head,
                Ok(None) => break,
                Err(reject) => {
                    self.reject(d, reject, false);
                    break;
                }
            };
            let (body, total) = match head.framing {
                Framing::Length(n) if buf.len() < head.len + n => {
                    self.send_continue(head.expect_continue && !head.http10);
                    break;
                }
                Framing::Length(n) => (Some(head.len..head.len + n), head.len + n),
                Framing::Chunked => {
                    match decode_chunked(&buf[head.len..], &mut self.body, d.limits.get_max_body())
                    {
                        Ok(Some(used)) => (None, head.len + used),
                        Ok(None) if buf.len() >= d.limits.read_cap() => {
                            self.reject(d, Reject::BodyTooLarge, head.http10);
                            break;
                        }
                        Ok(None) => {
                            self.send_continue(head.expect_continue);
                            break;
                        }
                        Err(reject) => {
                            self.reject(d, reject, head.http10);
                            break;
                        }
                    }
                }
            };
            self.continue_sent = false;
            self.request_started = None;

            // Upgrade first, then take the bundle: a refusal has taken nothing.
            let held = match d.accounting.admit() {
                Ok(held) => held,
                Err(refusal) => {
                    d.count_refusal(refusal);
                    // Whatever happens while the answer is written, this connection is done.
                    let closing = scopeguard::guard(&mut self.closing, |closing| *closing = true);
                    push(
                        &mut self.output,
                        &mut self.queue,
                        &mut self.spare,
                        true,
                        |out| {
                            write_status(
                                out,
                                Wire {
                                    http10: head.http10,
                                    close: true,
                                },
                                refusal.status(),
                            );
                        },
                    );
                    drop(closing);
                    consumed += total;
                    break;
                }
            };
            d.in_flight += 1;
            consumed += total;

            let input = &self.input[consumed - total..consumed];
            let request = Request {
                method: std::str::from_utf8(&input[head.method.clone()]).unwrap_or(""),
                target: std::str::from_utf8(&input[head.target.clone()]).unwrap_or(""),
                http10: head.http10,
                body: match &body {
                    Some(range) => &input[range.clone()],
                    None => &self.body,
                },
                signal: A::signal(&held),
            };
            let mut response = Response::new(&mut d.scratch);
            let (reply, route) = match d.router.find(request.method(), request.path()) {
                Err(status) => {
                    response.fail(status);
                    (Reply::Now, None)
                }
                Ok(route) => match call_handler(route.handler(), &request, &mut response) {
                    Ok(reply) => (reply, Some(route)),
                    Err(()) => {
                        d.stats.panics += 1;
                        if let Some(signal) = request.signal() {
                            signal.abort(AbortReason::HandlerFailed);
                        }
                        (Reply::Now, None)
                    }
                },
            };
            if response.wants_stop() {
                d.stop_requested = true;
            }
            let close = !head.keep_alive || d.stopped_at.is_some() || response.wants_close();
            match (reply, route) {
                (Reply::After { delay, token }, Some(route)) => {
                    self.queue.push_back(Slot::Waiting {
                        held,
                        due: now + delay,
                        route,
                        token,
                        http10: head.http10,
                        close,
                    });
                }
                _ => {
                    let wire = Wire {
                        http10: head.http10,
                        close,
                    };
                    push(
                        &mut self.output,
                        &mut self.queue,
                        &mut self.spare,
                        close,
                        |out| {
                            write_response(
                                out,
                                wire,
                                response.status(),
                                response.content_type(),
                                response.body(),
                            );
                        },
                    );
                    d.stats.served += 1;
                    d.in_flight -= 1;
                    drop(held); // the request ends with its answer written
                }
            }
            if close {
                self.closing = true;
            }
        }
        if consumed > 0 {
            self.input.drain(..consumed);
            // A large body should not pin its buffers for the rest of a keep-alive connection.
            if self.input.is_empty() {
                shrink(&mut self.input);
                shrink(&mut self.body);
            }
        }
    }

    fn send_continue(&mut self, expect: bool) {
        if expect && !self.continue_sent && self.queue.is_empty() {
            self.output
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.continue_sent = true;
        }
    }

    fn complete_due<A: Accounting<Held = H>>(&mut self, d: &mut Dispatcher<'r, A>, now: Instant) {
        // Answers at the front go straight into the output buffer (no allocation) ...
        loop {
            let close = match self.queue.front() {
                Some(Slot::Ready { .. }) => match self.queue.pop_front() {
                    Some(Slot::Ready { mut bytes, close }) => {
                        self.output.extend_from_slice(&bytes);
                        bytes.clear();
                        self.spare.push(bytes);
                        close
                    }
                    _ => unreachable!("the front was a ready slot"),
                },
                Some(Slot::Waiting { due, .. }) if *due <= now => match self.queue.pop_front() {
                    Some(Slot::Waiting {
                        held,
                        route,
                        token,
                        http10,
                        close,
                        ..
                    }) => resume(
                        d,
                        held,
                        route,
                        token,
                        Wire { http10, close },
                        &mut self.output,
                    ),
                    _ => unreachable!("the front was a waiting slot"),
                },
                _ => break,
            };
            self.last_activity = now;
            if close {
                self.closing = true;
                // Nothing may follow a `Connection: close` answer.
                self.drop_waiting(d, AbortReason::Other("connection closed"));
                return;
            }
        }
        // ... answers behind a slot still waiting keep their place in the queue as bytes.
        for slot in self.queue.iter_mut() {
            if !matches!(slot, Slot::Waiting { due, .. } if *due <= now) {
                continue;
            }
            let placeholder = Slot::Ready {
                bytes: Vec::new(),
                close: false,
            };
            if let Slot::Waiting {
                held,
                route,
                token,
                http10,
                close,
                ..
            } = std::mem::replace(slot, placeholder)
            {
                let mut bytes = self.spare.pop().unwrap_or_default();
                let close = resume(d, held, route, token, Wire { http10, close }, &mut bytes);
                *slot = Slot::Ready { bytes, close };
            }
        }
    }
}

/// Completes one deferred response into `out`, then ends its request (drops `held`). Returns
/// whether the answer closes the connection.
fn resume<A: Accounting>(
    d: &mut Dispatcher<'_, A>,
    held: A::Held,
    route: &Route,
    token: u64,
    wire: Wire,
    out: &mut Vec<u8>,
) -> bool {
    let mut response = Response::new(&mut d.scratch);
    if call_resume(route.handler(), token, &mut response).is_err() {
        d.stats.panics += 1;
        if let Some(signal) = A::signal(&held) {
            signal.abort(AbortReason::HandlerFailed);
        }
    }
    let close = wire.close || d.stopped_at.is_some() || response.wants_close();
    write_response(
        out,
        Wire { close, ..wire },
        response.status(),
        response.content_type(),
        response.body(),
    );
    d.stats.served += 1;
    d.in_flight -= 1;
    drop(held); // the request ends with its answer written
    close
}

impl<H> fmt::Debug for Connection<'_, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("buffered_input", &self.input.len())
            .field("pending_output", &self.pending_output().len())
            .field("queued", &self.queue.len())
            .field("closing", &self.closing)
            .field("closed", &self.closed)
            .finish()
    }
}
