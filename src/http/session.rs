//! A whole server for one connection, with no network and a virtual clock: for fuzzing, tests
//! and docs.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use super::accounting::{Accounting, StopStatus};
use super::connection::Connection;
use super::dispatch::{Dispatcher, Stats};
use super::limits::Limits;
use super::router::Router;
use crate::callback::call_caught;
use crate::ledger::Ledger;
use crate::signal::AbortReason;

/// One connection through parse, admit, dispatch and respond, with no socket.
///
/// Bytes go in with [`feed`](Session::feed), answers come out with
/// [`take_output`](Session::take_output). Time moves only with [`advance`](Session::advance), so
/// deferred responses and timeouts are deterministic. A fuzz target feeds arbitrary bytes and
/// checks the ledger at the end.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use reqguard::http::{demo_routes, Guarded, Limits, Router, Routes, Session};
/// use reqguard::Config;
///
/// let routes = Routes::new();
/// let mut router = Router::new(&routes);
/// demo_routes(&mut router);
/// let mut session = Session::new(&router, Guarded::embedded("server", Config::default()), Limits::default());
///
/// session.feed(b"GET /delay?ms=50 HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n");
/// assert!(session.take_output().is_empty()); // the first answer is deferred, the second waits
/// // Both requests are in flight until their answers are written, in order.
/// assert_eq!(session.ledger().unwrap().outstanding(reqguard::GuardKind::Ticket), 2);
///
/// session.advance(Duration::from_millis(50));
/// let out = String::from_utf8(session.take_output()).unwrap();
/// assert!(out.find("delayed 50 ms").unwrap() < out.find("hello").unwrap()); // in order
/// assert_eq!(session.stats().served, 2);
///
/// session.disconnect();
/// session.ledger().unwrap().assert_quiescent();
/// ```
///
/// Dropping a session is dropping its server with its connection: requests still out (a
/// deferred answer, answers queued behind one) end *force closed*, once, through the
/// accounting ([`Accounting::end`], their signals fired with [`AbortReason::ForceClosed`]), as
/// a server's force-close ends them; a [`stop`](Session::stop) under way then completes, as a
/// server's does after its force-close (the accounting's drain hooks run:
/// [`Guarded::after_drain`](crate::http::Guarded::after_drain)); then the accounting is
/// dropped. Both caught, as a
/// server's loop drops what is the embedder's: a `Drop` of the accounting's (its scope
/// provider, what its hooks captured, a `Held` of its own) that panics does not escape the
/// drop, nor abort the process when the session is dropped by another panic's unwinding.
pub struct Session<'r, A: Accounting> {
    /// The embedder's accounting is in it: dropped caught (see the `Drop`).
    dispatcher: Owned<Dispatcher<'r, A>>,
    /// The rest: each method takes the dispatcher out of its shell once and hands it to these.
    run: Run<'r, A::Held>,
}

/// A session but its dispatcher.
struct Run<'r, H> {
    connection: Connection<'r, H>,
    now: Instant,
    /// The stop has run its course: the accounting's drain completed (its hooks run).
    drained: bool,
    /// The stop ended at its deadline: what the connection held is ended; the accounting's
    /// drain is still polled at each call, until it completes (a request out of the
    /// connection, admitted through the accounting's core: QA embed32-1).
    ended: bool,
    /// Answers counted `served` that the client has taken ([`take_output`](Session::take_output)
    /// or [`clear_output`](Session::clear_output) empty the output): those it disconnects
    /// with are the rest, `undelivered`.
    served_taken: u64,
}

impl<'r, A: Accounting> Session<'r, A> {
    /// A session answering with `router`, admitting through `accounting`.
    ///
    /// `limits` are taken as they are: unlike a server's ([`Server::bind`](crate::http::Server::bind)),
    /// a session does not [validate](Limits::validate) them (a fuzz target may try any), and
    /// `max_connections` means nothing to its one connection. Limits a server refuses make a
    /// session that serves nothing useful (a `max_head` of 0 answers every request `501`, a
    /// zero timeout times every request out): for limits that come from a user, build with
    /// [`try_new`](Session::try_new), which refuses them as a server does.
    pub fn new(router: &'r Router<'r>, accounting: A, limits: Limits) -> Self {
        let now = Instant::now();
        Session {
            dispatcher: Owned(Some(Dispatcher::new(router, accounting, limits))),
            run: Run {
                connection: Connection::new(now),
                now,
                drained: false,
                ended: false,
                served_taken: 0,
            },
        }
    }

    /// [`new`](Session::new), with `limits` checked first as [`Server::bind`](crate::http::Server::bind)
    /// checks a server's ([`Limits::validate`]; `max_connections` too, although a session has
    /// one connection).
    ///
    /// # Errors
    ///
    /// What `Server::bind` returns for the same limits: [`InvalidInput`](io::ErrorKind::InvalidInput)
    /// carrying the [`LimitsError`](crate::http::LimitsError) that names the knob. The
    /// accounting is then dropped, a panic of its `Drop` caught (as a server that fails to
    /// start drops it).
    pub fn try_new(router: &'r Router<'r>, accounting: A, limits: Limits) -> io::Result<Self> {
        if let Err(err) = limits.validate() {
            call_caught(move || drop(accounting));
            return Err(io::Error::new(io::ErrorKind::InvalidInput, err));
        }
        Ok(Session::new(router, accounting, limits))
    }

    /// Delivers bytes from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        let d = &mut *self.dispatcher;
        let run = &mut self.run;
        run.connection.receive(d, bytes, run.now);
        run.after_call(d);
    }

    /// Everything answered so far and not yet taken, as a client that reads it all: input held
    /// back by back-pressure ([`Limits::max_output`](Limits::with_max_output)) is answered too.
    pub fn take_output(&mut self) -> Vec<u8> {
        let d = &mut *self.dispatcher;
        let run = &mut self.run;
        let mut out = Vec::new();
        loop {
            let pending = run.connection.pending_output();
            let n = pending.len();
            out.extend_from_slice(pending);
            run.connection.consume_output(n);
            let resumed = run.connection.resume(d, run.now);
            run.after_call(d);
            if !resumed {
                run.served_taken = run.connection.served();
                return out;
            }
        }
    }

    /// Everything answered so far and not yet taken, without copying it.
    pub fn pending_output(&self) -> &[u8] {
        self.run.connection.pending_output()
    }

    /// Discards the answers not yet taken (keeping the buffer for the next ones), and answers
    /// input that back-pressure held back.
    pub fn clear_output(&mut self) {
        let d = &mut *self.dispatcher;
        let run = &mut self.run;
        loop {
            let n = run.connection.pending_output().len();
            run.connection.consume_output(n);
            let resumed = run.connection.resume(d, run.now);
            run.after_call(d);
            if !resumed {
                run.served_taken = run.connection.served();
                return;
            }
        }
    }

    /// Moves the clock forward by `by` and runs what became due (deferred responses, `408`,
    /// idle close). A step past what the clock can count (`Duration::MAX`) moves it as far as
    /// it goes.
    pub fn advance(&mut self, by: Duration) {
        let d = &mut *self.dispatcher;
        let run = &mut self.run;
        run.now = saturating_add(run.now, by);
        run.connection.on_timer(d, run.now);
        run.after_call(d);
    }

    /// The client disconnects: waiting requests are aborted and their guards released, and
    /// the answers it had not taken are counted [`undelivered`](Stats::undelivered), no longer
    /// `served`, as a socket's server counts those a close drops. They are dropped with the
    /// connection: [`take_output`](Session::take_output) has nothing more to give.
    pub fn disconnect(&mut self) {
        let d = &mut *self.dispatcher;
        let run = &mut self.run;
        run.connection.abort(d, AbortReason::ClientDisconnected);
        run.drop_untaken(d);
        run.poll_drain(d);
    }

    /// Begins a graceful stop now, as a server's: later requests are refused `503` and close,
    /// deferred answers still complete when due, and once nothing is out the drain completes (the
    /// accounting's drain hooks run, e.g. [`Guarded::embedded`]'s collection). What is still out at
    /// [`Limits::drain_timeout`](Limits::with_drain_timeout) on the session's clock (checked by
    /// every call, [`advance`](Session::advance) moves it) ends as at a server's drain deadline:
    /// its signal is aborted ([`AbortReason::DrainDeadline`]) and the connection closes; answers
    /// the client had not taken then are counted [`undelivered`](Stats::undelivered) and dropped,
    /// as at [`disconnect`](Session::disconnect).
    ///
    /// [`Guarded::embedded`]: crate::http::Guarded::embedded
    pub fn stop(&mut self) {
        let d = &mut *self.dispatcher;
        d.begin_stop(self.run.now);
        self.run.poll_drain(d);
    }

    /// Whether the server would close this connection now.
    pub fn is_closed(&self) -> bool {
        self.run.connection.is_done()
    }

    /// The figures so far.
    pub fn stats(&self) -> &Stats {
        self.dispatcher.stats()
    }

    /// The accounting's ledger (`None` when unaccounted).
    pub fn ledger(&self) -> Option<&Ledger> {
        self.dispatcher.accounting().ledger()
    }

    /// The dispatcher (accounting, limits, figures). It stays this session's: one put in its
    /// place (`std::mem::swap` with another session's, `replace`) is not the one its
    /// connection counts its requests with, and the next call panics, saying so (as a
    /// [`Connection`](crate::http::Connection) used with another dispatcher does); the session's
    /// drop still lets go of what it holds, caught (QA embed19-2).
    pub fn dispatcher(&mut self) -> &mut Dispatcher<'r, A> {
        &mut self.dispatcher
    }
}

impl<'r, H> Run<'r, H> {
    /// What the server loop does at the end of a turn: a stop a handler asked for
    /// ([`Response::stop_server`](crate::http::Response::stop_server)) begins, and a stop under
    /// way is checked against its drain deadline.
    #[inline]
    fn after_call<A: Accounting<Held = H>>(&mut self, d: &mut Dispatcher<'r, A>) {
        if d.take_stop_request() {
            d.begin_stop(self.now);
        }
        if d.stopped_at.is_some() {
            self.poll_drain(d);
        }
    }

    /// Once stopping, the accounting's drain at the session's clock, as the server loop polls it:
    /// complete (the drain hooks run), or past
    /// [`Limits::drain_timeout`](Limits::with_drain_timeout) with a request still out, which then
    /// ends as at the server's deadline (its signal aborted, the connection closed).
    fn poll_drain<A: Accounting<Held = H>>(&mut self, d: &mut Dispatcher<'r, A>) {
        let Some(stopped_at) = d.stopped_at else {
            return;
        };
        if self.drained {
            return;
        }
        let (now, in_flight) = (self.now, d.in_flight);
        if self.ended {
            self.drained = matches!(d.poll_stop(now, in_flight), StopStatus::Complete);
            return;
        }
        let timeout = d.limits().drain_timeout();
        let passed = stopped_at.checked_add(timeout).is_some_and(|at| now >= at);
        match d.poll_stop(now, in_flight) {
            StopStatus::Complete if in_flight == 0 => self.drained = true,
            // The session's own count rules, as the server's sockets do: an accounting that
            // says complete with a request out waits for it, or for the deadline.
            // Nor does one that says the deadline passed before it did (its own deadline
            // rules both ways).
            StopStatus::Complete | StopStatus::Pending | StopStatus::Expired { .. } if !passed => {}
            StopStatus::Complete | StopStatus::Pending | StopStatus::Expired { .. } => {
                self.connection.abort(d, AbortReason::DrainDeadline);
                // The connection closes, as a server's force-close at its deadline: what the
                // client had not taken is lost.
                self.drop_untaken(d);
                // Every request of the connection has ended now: the drain completes (its
                // hooks run), unless a request out of the connection is still out (admitted
                // through the accounting's core: a runtime's `server.fetch()`); later calls
                // poll it until it completes (QA embed32-1: it was never polled again, and
                // `Guarded::after_drain`'s hooks never ran).
                let in_flight = d.in_flight;
                self.drained = matches!(d.poll_stop(now, in_flight), StopStatus::Complete);
                self.ended = true;
            }
        }
    }

    /// The connection is gone with answers the client had not taken: they are counted
    /// [`undelivered`](Stats::undelivered), no longer `served`, and dropped, so never handed
    /// to the client after all (a later `take_output` gave them: counted lost, yet read).
    fn drop_untaken<A: Accounting<Held = H>>(&mut self, d: &mut Dispatcher<'r, A>) {
        let untaken = self.connection.served().saturating_sub(self.served_taken);
        self.served_taken = self.connection.served();
        let stats = &mut d.stats;
        stats.served -= untaken;
        stats.undelivered += untaken;
        let unsent = self.connection.pending_output().len();
        self.connection.consume_output(unsent);
    }
}

/// QA embed19-1. A session the embedder drops with requests still out (a runtime that lets go
/// of its server, or a test's session dropped by a failing assertion) ended them as a
/// connection dropped alone does: *dropped*, its signals fired `Dropped`, never through the
/// accounting (an embedder's own `end`, a runtime's pending count, was never called), after
/// the accounting itself was dropped, uncaught: a panicking `Drop` of the embedder's escaped
/// the drop, and aborted the process under another panic. Now the session does what the
/// crate's loops do before they let a connection go (`Connection::abort`, *force closed* as
/// at a server's force-close), then drops the accounting, each caught.
///
/// Three steps, each caught on its own, so that a panic in one (an accounting's `end` that
/// says it cannot panic, a dispatcher the embedder swapped for another through
/// [`Session::dispatcher`]) neither keeps the next from running nor unwinds through it: the
/// abort, the connection's drop (a request the abort left), the dispatcher's drop. Between the
/// last two, a stop under way completes once the abort has ended what was out (QA embed20-2:
/// the accounting's drain hooks were dropped unrun, though its drain had completed).
impl<A: Accounting> Drop for Session<'_, A> {
    fn drop(&mut self) {
        let mut connection =
            std::mem::replace(&mut self.run.connection, Connection::new(self.run.now));
        let mut dispatcher = self.dispatcher.0.take();
        let aborted = dispatcher.as_mut().is_some_and(|dispatcher| {
            !call_caught(|| connection.abort(dispatcher, AbortReason::ForceClosed))
        });
        call_caught(move || drop(connection));
        if let Some(dispatcher) = dispatcher.as_mut().filter(|_| aborted) {
            if dispatcher.stopped_at.is_some() && !self.run.drained {
                // A stop under way has nothing out now: its drain completes and its hooks run
                // (`Guarded::after_drain`: a runtime's `server.stop()` resolved, the wrapper
                // collected), as a server's stop completes after its force-close (QA
                // embed20-2). The accounting's code: caught by `poll_stop`, and here.
                let (now, in_flight) = (self.run.now, dispatcher.in_flight);
                call_caught(|| {
                    let _ = dispatcher.poll_stop(now, in_flight);
                });
            }
        }
        call_caught(move || drop(dispatcher));
    }
}

/// The session's dispatcher, there until the session's `Drop` takes it to drop it caught
/// (no `unsafe` `ManuallyDrop`).
struct Owned<T>(Option<T>);

impl<T> std::ops::Deref for Owned<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        self.0.as_ref().expect("taken only by the session's drop")
    }
}

impl<T> std::ops::DerefMut for Owned<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("taken only by the session's drop")
    }
}

/// `at + by`, or the latest instant the clock can count on the way there.
fn saturating_add(at: Instant, by: Duration) -> Instant {
    if let Some(later) = at.checked_add(by) {
        return later;
    }
    // Past the clock's end: close in on it, halving the step each time it does not fit (less
    // than twice what is left fits at most once), a few hundred turns at most.
    let (mut at, mut step) = (at, by / 2);
    while !step.is_zero() {
        match at.checked_add(step) {
            Some(next) => at = next,
            None => step /= 2,
        }
    }
    at
}

impl<A: Accounting> fmt::Debug for Session<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("connection", &self.run.connection)
            .field("stats", self.dispatcher.stats())
            .finish_non_exhaustive()
    }
}
