//! The event loop: one thread, one mio `Poll`; accept, read, parse, admit, dispatch, write.
//!
//! Try it:
//!
//! ```text
//! cargo run --release --features server --bin reqguard-demo -- serve --addr 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/
//! ```
//!
//! The loop reads top to bottom like mio's `examples/tcp_server.rs`: [`Server::run`] polls,
//! dispatches each event by token, and [`handle_socket_io`] does one connection's read
//! and write (a turn's events read every connection first, then write each: see
//! `EventLoop::connection_read`). The HTTP work itself is sans-IO, in [`Connection`].

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use super::accounting::{Accounting, StopStatus};
use super::connection::{earliest, Connection};
use super::dispatch::{
    Dispatcher, DispatcherId, ASK_SCRATCH, ASK_STOP, SCRATCH_IDLE, SCRATCH_KEEP,
};
use super::limits::Limits;
use super::report::ServerReport;
use super::router::Router;
use super::running::{Control, Phase, StopHandle};
use super::signals::Signals;
use super::timer::Timers;
use crate::callback::{call_caught, caught};
use crate::delivery::Delivery;
use crate::signal::AbortReason;

// The end of a stop, a lone server's and a group loop's (src/http/server/ending.rs).
mod ending;
// The stop ladder as one loop of a group runs it (src/http/server/ladder_loop.rs).
mod ladder_loop;
// The oldest idle and lingering connections, without a scan (src/http/server/oldest.rs).
mod oldest;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);

const ACCEPT_TIMER: usize = usize::MAX - 1;
const STOP_TIMER: usize = usize::MAX - 2;
/// Due at the turn that queued connections in `EventLoop::revisits`: the next turn's poll does
/// not wait, and its timers read them on (`EventLoop::revisit`).
const REVISIT_TIMER: usize = usize::MAX;
/// Due [`SCRATCH_IDLE`] after an answer left the response buffer over its keep: it is given
/// back then if no answer needed it meanwhile (`EventLoop::scratch_idle`).
const SCRATCH_TIMER: usize = usize::MAX - 3;

/// How long accepting pauses after `accept` failed (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long a connection we closed keeps reading (and discarding) after its last byte left the
/// socket and our FIN followed (or, where that is not seen, `src/unsent.rs`, after our FIN), so
/// the client sees our last answer instead of a reset: from the FIN, and again from each read
/// of what the client still sends (an inactivity timeout, as nginx's `lingering_timeout`), within
/// [`LINGER_LIMIT`] in all.
const CLOSE_LINGER: Duration = Duration::from_millis(500);
/// The first wait for the acknowledgement of answers written after the client closed its side
/// ([`acknowledged_or_gone`]); each next one twice the last.
const ACK_CHECK_FIRST: Duration = Duration::from_millis(1);
/// The longest a connection we closed lingers in all, however slowly its client reads what the
/// socket still holds: closing a socket whose client still sends resets the connection, and the
/// reset drops what the socket had not sent yet (answers already counted `served`), so the
/// linger waits for the socket to send it all (RFC 9112 §9.6), but not for ever.
const LINGER_LIMIT: Duration = Duration::from_secs(5);
/// The most a lingering connection reads and drops: past it, it reads no more (the client's
/// sending stalls on TCP flow control) and waits out its linger.
const LINGER_DISCARD: u64 = 16 << 20;

/// Whether a read shorter than its buffer shows the socket drained: so on the edge-triggered
/// selectors mio uses on these systems (epoll, kqueue), as in tokio's `poll_evented.rs`.
const SHORT_READ_DRAINS: bool = cfg!(any(
    target_os = "android",
    target_os = "illumos",
    target_os = "linux",
    target_os = "redox",
    target_os = "dragonfly",
    target_os = "freebsd",
    target_os = "ios",
    target_os = "macos",
    target_os = "netbsd",
    target_os = "openbsd",
));

/// How long a connection must have been idle or reading its head before a newcomer at
/// [`Limits::max_connections`](Limits::with_max_connections) may evict it: far below what a slow
/// client holds a slot for (seconds, up to the request timeout), far above a busy client's gap
/// between requests.
const EVICT_MIN_IDLE: Duration = Duration::from_millis(100);
/// How many candidates one eviction reads before it gives up (each one it reads had a request
/// coming, so is no longer a candidate): a bound on the work one newcomer can cause.
const EVICT_TRIES: usize = 4;

/// Bytes a connection may read, in reads that did not empty its socket, before the other
/// connections get their turn (one read more at most: one read of the loop's buffer, or of a
/// body read in place): its reading then stops, and the loop comes back to it on the next
/// turn, after the events that came meanwhile (`EventLoop::revisits`, [`REVISIT_TIMER`]). Reading every ready
/// connection until `WouldBlock` made one turn as long as all of them took: 200 clients
/// pipelining 4 x 256 KiB echoes held a fast client's `GET /` ~0.5 s under load
/// (docs/benchmarks.md 9e, 9f). Half the loop's [`READ_BUFFER`]: a socket with less than that
/// buffer is drained in one read, which takes nothing from the budget (small requests never
/// count); a read that fills the buffer spends it all at once.
const READ_BUDGET: usize = 64 * 1024;

/// The loop's read buffer, shared by its connections: a request is parsed where a read left it
/// here, and only what it leaves unanswered is kept. Twice [`READ_BUDGET`], so that a read that
/// brings a 64 KiB body and its head is short (the socket emptied) and answered at once: with a
/// 64 KiB buffer it filled the buffer, spent the budget and was cut to the next turn (a poll
/// that does not wait, a read of the head's worth of body left, and a read that found
/// nothing): 5.2 system calls per 64 KiB `POST /echo` where plain hyper makes 2.2
/// (`benches/load/shapes.py`, docs/benchmarks.md "Load shapes"). Allocated zeroed, once per
/// loop: the allocator maps fresh pages for it, touched as far as reads fill it.
const READ_BUFFER: usize = 2 * READ_BUDGET;

/// A loop's read buffer ([`READ_BUFFER`]).
fn read_buffer() -> Vec<u8> {
    vec![0; READ_BUFFER]
}

/// Timer entries allowed beyond twice the open connections before the stale ones are pruned.
const PRUNE_SLACK: usize = 64;

/// Connections over [`Limits::max_connections`](Limits::with_max_connections) kept at once to
/// deliver their `503` (written, then FIN, then a short drain). Past this many, a refused
/// connection is simply closed.
const MAX_REFUSING: usize = 64;

/// What a refusal of the loop's own counts once its answer is written.
#[derive(Clone, Copy)]
enum Owed {
    /// The over-limit `503`: `connections_refused`.
    Refused,
    /// An evicted head's `408`: `rejected`.
    Rejected,
}

impl Owed {
    fn count(self, stats: &mut super::Stats) {
        match self {
            Owed::Refused => stats.connections_refused += 1,
            Owed::Rejected => stats.rejected += 1,
        }
    }
}

/// One accepted connection: its socket and its sans-IO state.
///
/// Laid out by hand: the connection first (at offset 0, so a call on it is passed the socket's
/// own address: elsewhere, an instruction more per event), which ends with its per-read fields
/// (`Connection`'s layout); right after them what every event reads and writes of the socket
/// (its deadlines and counts, the descriptor, the flags); then the delivery marks (their head
/// first); then what only a close, a linger or a stall reads; and each socket begins a cache
/// line. Left to the compiler, the flags every event reads lay in the last of 17 lines and the
/// deadlines and counts in four others: with 64 connections, each event's lines are out of
/// the L1 cache, evicted by the other connections' and the kernel's work in between
/// (docs/benchmarks-history.md, round 27, HTTP path).
#[repr(C, align(64))]
struct Socket<'r, H> {
    http: Connection<'r, H>,
    /// We are done with it (every answer written to the socket) and close it at this instant
    /// at the latest; reads are discarded ([`begin_linger`]).
    lingering: Option<Instant>,
    /// The earliest timer entry for this connection not yet fired.
    scheduled: Option<Instant>,
    /// Since when answers wait for a client reading them slowly: a write hit `WouldBlock` and
    /// the answers have not all gone out since. The client's reading is judged over windows of
    /// the idle timeout from then ([`Limits::min_send_rate`](super::Limits::with_min_send_rate)).
    write_stalled: Option<Instant>,
    /// What is left of its [`READ_BUDGET`]: reads that did not empty the socket take from it;
    /// spent, it is filled again and the connection `read_cut`. Kept from one handling to the
    /// next (no store per event): a connection may be cut short sooner than one budget into a
    /// handling, never later.
    budget: usize,
    /// Bytes written to the socket since it was accepted.
    sent: u64,
    stream: TcpStream,
    /// The client closed its side.
    eof: bool,
    /// The socket may have input we have not read (edge-triggered: no new event will say so).
    read_ready: bool,
    /// An event said the client closed its side (or the socket failed): read until the end,
    /// whatever a short read suggests (the FIN comes with no further event).
    read_closed: bool,
    /// Its reading stopped at its budget with input maybe left in the socket (`read_ready`
    /// turned off meanwhile): the loop must come back to it itself (edge-triggered: no new
    /// event will say so).
    read_cut: bool,
    /// The connection's idle timeout alone was found at or after `scheduled`. It never moves
    /// earlier (its last activity only moves on), so while the connection stays alone after
    /// its answers this need not be computed again on every turn.
    idle_covers_scheduled: bool,
    /// Lingering while the socket has not sent everything written to it (our FIN waits).
    unsent: bool,
    /// Over the connection limit: only here to deliver its `503` (or an evicted head's `408`).
    refused: bool,
    /// That answer's count, taken once the socket has taken it whole (`begin_linger`): an
    /// answer that did not go out (the client reset first) was no answer.
    owed: Option<Owed>,
    /// Where its answers end in what it wrote, for a close that drops output undelivered
    /// ([`count_undelivered`]).
    delivery: Delivery,
    /// When the loop accepted it.
    accepted: Instant,
    /// When its linger began plus [`LINGER_LIMIT`]: input after our FIN moves `lingering` on,
    /// never past this.
    linger_limit: Option<Instant>,
    /// Its client closed its side before its last answer was written, and the client's TCP
    /// has not acknowledged it all yet: when to look again, and the step to the look after
    /// ([`acknowledged_or_gone`]).
    ack_check: Option<(Instant, Duration)>,
    /// It is in `EventLoop::revisits`, queued in the turn of this clock: to be read again on a
    /// later turn, unless it was read again meanwhile (then `None`, or queued anew).
    revisit: Option<Instant>,
    /// Bytes read and dropped while lingering (at most [`LINGER_DISCARD`], then no more reads).
    discarded: u64,
    /// `sent` when the current window of `write_stalled` began.
    sent_at_stall: u64,
}

impl<'r, H> Socket<'r, H> {
    fn new(stream: TcpStream, http: Connection<'r, H>, refused: bool, now: Instant) -> Self {
        Socket {
            stream,
            http,
            eof: false,
            lingering: None,
            linger_limit: None,
            unsent: false,
            ack_check: None,
            discarded: 0,
            scheduled: None,
            idle_covers_scheduled: false,
            read_ready: true,
            read_closed: false,
            budget: READ_BUDGET,
            read_cut: false,
            revisit: None,
            write_stalled: None,
            sent: 0,
            delivery: Delivery::default(),
            sent_at_stall: 0,
            refused,
            owed: refused.then_some(Owed::Refused),
            accepted: now,
        }
    }
}

/// The reference HTTP/1.1 server on a mio event loop.
///
/// Build one with [`Server::bind`] (or run one on a thread with
/// [`ServerBuilder::spawn`](crate::http::ServerBuilder::spawn)), then [`run`](Server::run) it
/// until it stops. `'r` is the lifetime of the route table, `A` the [`Accounting`].
///
/// # Examples
///
/// On the current thread, stopped from another one:
///
/// ```
/// use reqguard::http::{demo_routes, Guarded, Limits, Router, Routes, Server};
/// use reqguard::Config;
///
/// let routes = Routes::new();
/// let mut router = Router::new(&routes);
/// demo_routes(&mut router);
/// let accounting = Guarded::embedded("server", Config::default());
/// let server = Server::bind("127.0.0.1:0".parse().unwrap(), &router, accounting, Limits::default())?;
/// let stop = server.stop_handle();
/// std::thread::spawn(move || stop.stop());
/// let report = server.run()?;
/// assert_eq!(report.leaked, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server<'r, A: Accounting> {
    /// The loop, until [`run`](Server::run) takes it. The accounting it holds is the
    /// embedder's (a `Drop` of what it captured may panic): a server dropped unrun drops it
    /// caught, as every other way out does (QA embed18-1). An `Option` here, not on the
    /// loop's own fields: `run` takes it once, and the request path never sees it.
    unrun: Option<EventLoop<'r, A>>,
    /// The dispatcher the server made: `run` serves with no other (QA embed19b-1).
    own: DispatcherId,
}

/// A [`Server`]'s loop: its sockets, timers and dispatcher (with the accounting).
struct EventLoop<'r, A: Accounting> {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    sockets: Slab<Socket<'r, A::Held>>,
    dispatcher: Dispatcher<'r, A>,
    timers: Timers,
    control: Arc<Control>,
    signals: Option<Signals>,
    accept_paused: bool,
    /// A newcomer accepted at [`Limits::max_connections`](Limits::with_max_connections) with no
    /// slot to free while connections accepted just before it may not have been read yet: it waits
    /// a turn ([`EventLoop::hold_newcomer`]).
    held_newcomer: Option<TcpStream>,
    /// Turns of the loop so far, and the turn a newcomer was last registered in: its first
    /// events come with the next poll, maybe behind the listener's in that turn.
    turns: u64,
    registered_turn: u64,
    stop_deadline: Option<Instant>,
    /// Sockets in `sockets` that are refused connections delivering their `503`.
    refusing: usize,
    deadline_hit: bool,
    force_closed: u64,
    started: Instant,
    /// The clock as read once per turn, when the poll returned: every `now` of that turn, and
    /// the next poll's timeout (see [`EventLoop::turn`]).
    clock: Instant,
    /// The group's stop ladder, when this loop is one of a [`LoopGroup`](super::LoopGroup).
    ladder: Option<Box<ladder_loop::LoopLadder>>,
    /// The end of its stop: the close, and the connections held behind an answer.
    ending: ending::Ending,
    /// Connections whose reading stopped at their budget (`Socket::read_cut`), read again on
    /// the next turn, after its events. While there are any, a [`REVISIT_TIMER`] entry is due
    /// (set when the first is queued: the poll does not wait). A key may be stale: its
    /// connection closed (its slot maybe another's), or was read again and maybe queued anew;
    /// `Socket::revisit` tells.
    revisits: Vec<usize>,
    /// Connections read in this turn's events whose writes and the rest of their handling
    /// wait until the turn's last event is read ([`EventLoop::write_deferred`]): one write per
    /// connection per turn, after every read of the turn. A key is handled once its turn's
    /// reads are done, or before anything else of the turn (an accept, a stop) could close or
    /// reuse its slot.
    deferred: Vec<usize>,
    /// The response buffer's [`SCRATCH_TIMER`] is set (`Some`), and whether an answer needed
    /// the buffer over its keep since it was (`Some(true)`: set again when it fires).
    scratch_timer: Option<bool>,
    /// The connections idle or reading their head, oldest first, for eviction (a snapshot:
    /// `oldest.rs`, invariant 2).
    oldest_idle: oldest::Oldest,
    /// The lingering connections that may close, the one lingering longest first (`oldest.rs`,
    /// invariant 1).
    oldest_lingering: oldest::Oldest,
}

/// A server that could not be made or run: its accounting (the embedder's: a `Drop` of what
/// it captured may panic), or the server holding it, is dropped caught, and `err` is what the
/// caller gets, as the loop drops it caught when it ends (QA embed15-5, embed16-1).
#[cold]
pub(super) fn unserved<T>(holding: T, err: io::Error) -> io::Error {
    call_caught(move || drop(holding));
    err
}

impl<'r, A: Accounting> Server<'r, A> {
    /// Binds `addr` and prepares the loop.
    ///
    /// # Errors
    ///
    /// If `limits` are invalid ([`Limits::validate`]; `InvalidInput`), or the address cannot be
    /// bound, or the poll cannot be created.
    pub fn bind(
        addr: SocketAddr,
        router: &'r Router<'r>,
        accounting: A,
        limits: Limits,
    ) -> io::Result<Self> {
        match TcpListener::bind(addr) {
            Ok(listener) => Server::with_listener(listener, router, accounting, limits),
            Err(err) => Err(unserved(accounting, err)),
        }
    }

    /// Serves on a listener bound elsewhere (a `SO_REUSEPORT` socket of a loop group); it is
    /// made non-blocking.
    ///
    /// # Errors
    ///
    /// If `limits` are invalid ([`Limits::validate`]; `InvalidInput`), or the listener cannot
    /// be made non-blocking, or the poll cannot be created.
    pub fn from_listener(
        listener: std::net::TcpListener,
        router: &'r Router<'r>,
        accounting: A,
        limits: Limits,
    ) -> io::Result<Self> {
        if let Err(err) = listener.set_nonblocking(true) {
            return Err(unserved(accounting, err));
        }
        Server::with_listener(TcpListener::from_std(listener), router, accounting, limits)
    }

    fn with_listener(
        mut listener: TcpListener,
        router: &'r Router<'r>,
        accounting: A,
        limits: Limits,
    ) -> io::Result<Self> {
        let (poll, waker, local_addr) = match Self::prepare(&mut listener, &limits) {
            Ok(prepared) => prepared,
            Err(err) => return Err(unserved(accounting, err)),
        };
        // A `Server` is not `Send`: its loop runs on this thread. A stop handle called here
        // before `run` (`ServerBuilder::serve`'s `ready`) must not wait for a loop that cannot
        // begin until it returns.
        let control = Arc::new(Control::new(waker));
        control.running_here();
        let event_loop = EventLoop {
            local_addr,
            poll,
            listener: Some(listener),
            sockets: Slab::new(),
            dispatcher: Dispatcher::lending(router, accounting, limits),
            timers: Timers::default(),
            control,
            signals: None,
            accept_paused: false,
            held_newcomer: None,
            turns: 0,
            registered_turn: 0,
            stop_deadline: None,
            refusing: 0,
            deadline_hit: false,
            force_closed: 0,
            started: Instant::now(),
            clock: Instant::now(),
            ladder: None,
            ending: ending::Ending::default(),
            revisits: Vec::new(),
            deferred: Vec::new(),
            scratch_timer: None,
            oldest_idle: oldest::Oldest::snapshot(),
            oldest_lingering: oldest::Oldest::eager(),
        };
        Ok(Server {
            own: event_loop.dispatcher.id,
            unrun: Some(event_loop),
        })
    }

    /// What can fail before the loop takes the accounting: the limits, the poll, the
    /// listener's registration, its waker and address.
    fn prepare(
        listener: &mut TcpListener,
        limits: &Limits,
    ) -> io::Result<(Poll, Waker, SocketAddr)> {
        limits
            .validate()
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let poll = Poll::new()?;
        poll.registry()
            .register(listener, LISTENER, Interest::READABLE)?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        Ok((poll, waker, listener.local_addr()?))
    }

    /// The loop, which only [`run`](Server::run) and the server's drop take.
    fn event_loop(&self) -> &EventLoop<'r, A> {
        self.unrun
            .as_ref()
            .expect("a server holds its loop until it runs")
    }

    fn event_loop_mut(&mut self) -> &mut EventLoop<'r, A> {
        self.unrun
            .as_mut()
            .expect("a server holds its loop until it runs")
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.event_loop().local_addr
    }

    /// A `Send` handle that stops the server from another thread (through a mio `Waker`).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle::new(Arc::clone(&self.event_loop().control))
    }

    /// Stops gracefully on SIGINT and SIGTERM (through signal-hook). For a server that owns
    /// the process (the demo's `serve` mode); the handlers are removed when the server drops.
    /// As with `tokio::signal`, the two signals' default action (ending the process) stays off
    /// for the rest of the process once installed (signal-hook keeps its own handler): a
    /// process that goes on after its server and should end on them listens for them itself.
    ///
    /// # Errors
    ///
    /// If the signal pipe cannot be made or the handlers cannot be registered, and
    /// [`io::ErrorKind::Unsupported`] off Unix (stop through a [`StopHandle`] there).
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let event_loop = self.event_loop_mut();
        event_loop.signals = Some(Signals::install(event_loop.poll.registry(), SIGNALS)?);
        Ok(())
    }

    /// The dispatcher: accounting, limits and figures. A stop begun through it before
    /// [`run`](Server::run) ([`Dispatcher::begin_stop`]) is the server's, as
    /// [`stop`](Server::stop) is: `run` drains and returns its report.
    ///
    /// It stays this server's, counting only the server's own requests: `run` refuses
    /// (`InvalidInput`) one put in its place (`std::mem::swap`, `replace`: its limits never
    /// validated, its figures another's), and one that counts requests in flight, which only a
    /// [`Connection`](crate::http::Connection) driven by hand with it can have made (no socket
    /// of the server holds them: its drain would wait for them until its deadline) (QA
    /// embed19b-1).
    pub fn dispatcher(&mut self) -> &mut Dispatcher<'r, A> {
        &mut self.event_loop_mut().dispatcher
    }

    /// Begins a graceful stop: closes the listener, stops admission, and gives in-flight requests
    /// until [`Limits::drain_timeout`](Limits::with_drain_timeout). Callable from the loop's
    /// thread.
    pub fn stop(&mut self, now: Instant) {
        self.event_loop_mut().stop(now);
    }

    /// Runs the loop until a graceful stop completes, and reports.
    ///
    /// # Errors
    ///
    /// If polling fails, and `InvalidInput` (at once, nothing served) if the dispatcher is not
    /// the server's own or counts requests in flight (see [`dispatcher`](Server::dispatcher)).
    pub fn run(mut self) -> io::Result<ServerReport> {
        let event_loop = self
            .unrun
            .take()
            .expect("a server holds its loop until it runs");
        let d = &event_loop.dispatcher;
        if d.id != self.own || d.in_flight != 0 {
            let err = io::Error::new(
                io::ErrorKind::InvalidInput,
                "Server::run: the dispatcher was replaced, or counts requests in flight that no \
                 connection of the server holds (a Connection driven by hand with it)",
            );
            return Err(unserved(event_loop, err));
        }
        event_loop.run()
    }

    /// The loop, for the unit tests that turn it by hand.
    #[cfg(test)]
    fn into_loop(mut self) -> EventLoop<'r, A> {
        self.unrun
            .take()
            .expect("a server holds its loop until it runs")
    }
}

impl<'r, A: Accounting> EventLoop<'r, A> {
    /// [`Server::run`].
    fn run(mut self) -> io::Result<ServerReport> {
        let mut events = Events::with_capacity(1024);
        let mut buf = read_buffer();
        self.clock = Instant::now();
        // A stop the embedder began through `dispatcher()` before the loop ran (nothing else
        // reaches the dispatcher once it runs) is the server's stop: its deadline, the
        // listener closed, the loop ending once drained. Left to the dispatcher alone, it
        // closed admission and the loop ran on forever.
        if let Some(at) = self.dispatcher.stopped_at {
            if self.ladder.is_none() && self.stop_deadline.is_none() {
                self.stop(at);
            }
            // The first turn checks the drain at once: with nothing out and no client, no
            // event would wake it before the drain deadline (`Limits::drain_timeout` of
            // sleep for a stop that had nothing to wait for).
            self.timers.schedule(self.clock, STOP_TIMER);
        }
        // One catch around the turns, entered again only after a panic: none per turn or per
        // request, so the guarded path costs what it did.
        let ended = loop {
            match caught(|| self.turns(&mut events, &mut buf)) {
                Some(ended) => break ended,
                None => self.survive_panic(),
            }
        };
        match ended {
            Ok(()) => Ok(self.finish()),
            // Polling failed: no report, and what the loop holds is dropped caught all the same.
            Err(err) => Err(unserved(self, err)),
        }
    }

    /// Turns until a graceful stop completes.
    fn turns(&mut self, events: &mut Events, buf: &mut [u8]) -> io::Result<()> {
        while !self.turn(events, buf)? {}
        Ok(())
    }

    /// A panic unwound out of a turn: an embedder's accounting whose per-request calls said
    /// they cannot panic ([`Accounting::MAY_PANIC`] `false`) did. Which connection it left
    /// half-done the loop cannot tell, so it closes every connection open (each request on
    /// them ends once, *force closed* unless its signal fired first; each close caught, as it
    /// calls the accounting again), counts the panic, and goes on serving.
    #[cold]
    #[inline(never)]
    fn survive_panic(&mut self) {
        self.dispatcher.stats.panics += 1;
        // Their connections are closed below (their keys maybe reused after).
        self.deferred.clear();
        self.close_every_connection(AbortReason::ForceClosed);
        // The turn the panic cut short did not finish its checks (a stop that may now end):
        // the next one comes at once, not at the next event or timer (an idle timeout away).
        self.timers.schedule(self.clock, STOP_TIMER);
    }

    /// One turn of the loop: wait for events or the earliest timer, handle them; true when the
    /// loop may end.
    fn turn(&mut self, events: &mut Events, buf: &mut [u8]) -> io::Result<bool> {
        // Sleep until an event or the earliest timer (a deferred response, a timeout). One clock
        // read per turn, after the poll, as libuv's loop time: the timeout is measured from the
        // last one, so a timer may fire late by as long as the turn before it took to run
        // (microseconds; a turn that long had events, and the next poll returns at once).
        let timeout = self.timers.timeout(self.clock);
        let polled = self.poll.poll(events, timeout);
        let now = Instant::now();
        self.clock = now;
        self.turns += 1;
        if let Err(err) = polled {
            // A signal interrupted the wait; the signal pipe reports it as an event.
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(err);
        }
        // The turn's last event is handled whole at once: its connection is the turn's last
        // read, so its writes wait behind no other read (and a turn of one event, as with a
        // single busy connection, pays nothing for the deferral).
        let last = events.iter().count().wrapping_sub(1);
        for (i, event) in events.iter().enumerate() {
            match event.token() {
                // New connections are waiting.
                LISTENER => {
                    self.write_deferred(buf, now);
                    self.accept(now);
                }
                // Another thread asked us to stop.
                WAKER => {
                    self.write_deferred(buf, now);
                    if self.control.take_room_request() {
                        self.evict_oldest(now, false);
                    }
                    if self.control.stop_requested() {
                        self.stop(now);
                    }
                }
                // SIGINT or SIGTERM.
                SIGNALS => {
                    self.write_deferred(buf, now);
                    self.drain_signal_pipe();
                    self.stop(now);
                }
                // A client connection is readable or writable.
                token if i == last => self.connection_event(token, Some(event), buf, now),
                token => self.connection_read(token, event, buf, now),
            }
        }
        self.write_deferred(buf, now);
        self.fire_timers(now, buf);
        // A handler asked for a stop, or an answer grew the response buffer: one byte read.
        // Else a buffer over its keep with no timer set was grown by a body that never went
        // out (a handler that panicked, or took its body back), which no answer noted: its
        // timer is set now (QA embed33-4: it was kept for the rest of the run).
        if self.dispatcher.asks != 0 {
            self.answer_asks(now);
        } else if self.scratch_timer.is_none() && self.dispatcher.scratch.capacity() > SCRATCH_KEEP
        {
            self.dispatcher.asks = ASK_SCRATCH;
            self.answer_asks(now);
        }
        if self.ladder.is_some() {
            return Ok(self.ladder_turn(now, buf));
        }
        Ok(self.stop_deadline.is_some() && self.poll_stop(now, buf))
    }

    /// What the turn's answers asked of the loop ([`Dispatcher::asks`]): the response buffer
    /// over its keep (its [`SCRATCH_TIMER`] set, or noted for it), then a handler's stop
    /// (`Response::stop_server`).
    #[cold]
    #[inline(never)]
    fn answer_asks(&mut self, now: Instant) {
        let asks = std::mem::take(&mut self.dispatcher.asks);
        if asks & ASK_SCRATCH != 0 {
            match self.scratch_timer {
                Some(_) => self.scratch_timer = Some(true),
                None => {
                    self.scratch_timer = Some(false);
                    self.timers
                        .schedule(later(now, SCRATCH_IDLE), SCRATCH_TIMER);
                }
            }
        }
        if asks & ASK_STOP != 0 {
            self.stop(now);
        }
    }

    /// [`SCRATCH_TIMER`]: the response buffer is given back if no answer needed it over its
    /// keep since the timer was set, else the timer is set again.
    #[cold]
    fn scratch_idle(&mut self, now: Instant) {
        if self.scratch_timer == Some(true) {
            self.scratch_timer = Some(false);
            self.timers
                .schedule(later(now, SCRATCH_IDLE), SCRATCH_TIMER);
        } else {
            self.scratch_timer = None;
            self.dispatcher.shrink_scratch();
        }
    }

    /// [`Server::stop`], from the loop's events, a handler's `stop_server`, or a stop begun
    /// before it ran.
    fn stop(&mut self, now: Instant) {
        if self.ladder.is_some() {
            return self.ladder_stop(now);
        }
        if self.stop_deadline.is_some() {
            return;
        }
        // Close the listener first: no new connection may arrive while we drain.
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.dispatcher.begin_stop(now);
        let deadline = later(now, self.dispatcher.limits.drain_timeout());
        self.stop_deadline = Some(deadline);
        self.timers.schedule(deadline, STOP_TIMER);
        self.control.set_phase(Phase::Stopping);
        // Idle connections now linger only briefly: re-arm their timers.
        let keys: Vec<usize> = self.sockets.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.reschedule(key, now);
        }
    }

    fn accept(&mut self, now: Instant) {
        self.accept_from_backlog(now, true);
    }

    /// Takes the listener's backlog (see `accept`); a newcomer with no slot to free waits a
    /// turn if `may_hold` (not at the close step, which takes the whole backlog).
    pub(super) fn accept_from_backlog(&mut self, now: Instant, may_hold: bool) {
        // A newcomer held waits for its timer, after this turn's events: so does the backlog.
        if self.accept_paused || (may_hold && self.held_newcomer.is_some()) {
            return;
        }
        self.take_held_newcomer(now);
        // An eviction made room and no `accept` has taken it yet: one per accepted connection.
        let mut made_room = false;
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, _peer)) => {
                    made_room = false;
                    // A newcomer registered in this turn or the last may not be read yet.
                    let unread = self.registered_turn + 1 >= self.turns;
                    self.take_newcomer(stream, may_hold && unread, now);
                    if self.held_newcomer.is_some() {
                        return;
                    }
                }
                // The backlog is empty.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                // The client gave up in the backlog, or a signal interrupted us: try the next.
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                // Out of file descriptors (EMFILE, ENFILE) or memory: make room as at
                // `max_connections`, with no linger (its descriptor is what is short), and take
                // the next one from the backlog: slow heads must not hold every descriptor until
                // their timeout while newcomers wait. With none to evict (or the room made not
                // enough: ENFILE, memory), the other loops of a group evict theirs (descriptors
                // are the process's); `accept` would fail again at once and the listener stays
                // ready, so retrying now spins: pause, and retry from a timer.
                Err(_) => {
                    if !made_room && self.evict_oldest(now, false) {
                        made_room = true;
                        continue;
                    }
                    self.ask_group_for_room();
                    self.dispatcher.stats.accept_backoffs += 1;
                    self.accept_paused = true;
                    self.timers.schedule(now + ACCEPT_BACKOFF, ACCEPT_TIMER);
                    return;
                }
            }
        }
    }

    /// The newcomer held for this turn, if any: registered, or refused if still no slot can
    /// be freed or the listener closed meanwhile (a stop: nothing new is registered then).
    fn take_held_newcomer(&mut self, now: Instant) {
        if let Some(stream) = self.held_newcomer.take() {
            if self.listener.is_some() {
                self.take_newcomer(stream, false, now);
            } else {
                self.refuse_connection(stream, now);
            }
        }
    }

    /// An accepted connection: registered, at `max_connections` once a slot is freed (a
    /// lingering connection closed, or the oldest idle or slow one evicted), else refused `503`,
    /// or, if `may_hold`, held for the next turn ([`EventLoop::hold_newcomer`]).
    fn take_newcomer(&mut self, stream: TcpStream, may_hold: bool, now: Instant) {
        let open = self.sockets.len() - self.refusing;
        if open >= self.dispatcher.limits.max_connections()
            && !self.close_oldest_lingering()
            && !self.evict_oldest(now, true)
        {
            if may_hold {
                self.hold_newcomer(stream, now);
            } else {
                self.refuse_connection(stream, now);
            }
            return;
        }
        if self.register(stream, Connection::new(now), false, now) {
            self.dispatcher.stats.connections += 1;
            self.registered_turn = self.turns;
        }
    }

    /// No slot to free for `stream`, but a connection was accepted in this turn or the last:
    /// its first events come with the next poll, or later in this turn than the listener's.
    /// Clients that connect and go at once
    /// (TCP health checks, port scans, clients that gave up) wait in the backlog with their FIN
    /// or reset behind them, and their slots are free once read; refusing the newcomer now
    /// answered `503` to live clients behind a burst of them (`probe_client::v15::
    /// clients_gone_in_the_backlog_do_not_lock_a_newcomer_out_on_either_stack`). So it waits,
    /// and accepting stops (a listener's event in the next turn may come before those events),
    /// until the next turn's timers ([`ACCEPT_TIMER`], due then: the poll does not wait), after
    /// those events; then it is refused only if still no slot can be freed.
    #[cold]
    #[inline(never)]
    fn hold_newcomer(&mut self, stream: TcpStream, now: Instant) {
        self.held_newcomer = Some(stream);
        // Past this turn's `now`: it fires in the next turn, not in this one's timers.
        self.timers
            .schedule(now + Duration::from_nanos(1), ACCEPT_TIMER);
    }

    /// Registers an accepted stream and adds it to the loop; false if it could not be (the
    /// stream is then dropped, which closes it; nothing was admitted).
    fn register(
        &mut self,
        mut stream: TcpStream,
        http: Connection<'r, A::Held>,
        refused: bool,
        now: Instant,
    ) -> bool {
        // Answers leave as soon as they are written, as the floor's and hyper's do: with Nagle,
        // an answer written while an earlier one is unacknowledged waits for that ACK, which a
        // client pipelining in separate writes delays up to 40 ms (delayed ACK). Every answer is
        // already written whole, so nothing is gained by holding it. Best effort: without it the
        // connection still works.
        let _ = stream.set_nodelay(true);
        let entry = self.sockets.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE.add(Interest::WRITABLE);
        if self
            .poll
            .registry()
            .register(&mut stream, Token(key), interest)
            .is_err()
        {
            return false;
        }
        entry.insert(Socket::new(stream, http, refused, now));
        self.reschedule(key, now);
        true
    }

    /// At capacity, frees a slot for a new connection: closes the one that has been idle or
    /// reading its head the longest (slowloris holds slots that way), never one with a request
    /// admitted or an answer being written. One mid-head gets `408` and `Connection: close`,
    /// delivered like a refused connection's `503`, outside the limit (without `linger`, or past
    /// [`MAX_REFUSING`], written if the socket takes it at once, then closed). False if none
    /// qualifies.
    fn evict_oldest(&mut self, now: Instant, linger: bool) -> bool {
        for _ in 0..EVICT_TRIES {
            let Some((since, key)) = self.oldest_evictable(now) else {
                return false;
            };
            // Read what has arrived on it first: a request that came in the same turn as the
            // newcomer (its event not handled yet) is a sign of life, and a bare close would
            // lose it. A slow head's trickle is not: its head began long ago.
            let mut scratch = [0; 4096];
            self.connection_event(Token(key), None, &mut scratch, now);
            match self.sockets.get(key) {
                None => return true, // it ended (the client had closed): its slot is free
                Some(socket) if socket.http.evictable_since() == Some(since) => {
                    self.evict(key, linger, now);
                    return true;
                }
                Some(_) => {} // it had a request coming: the next oldest
            }
        }
        false
    }

    /// At capacity, closes the connection lingering longest after its last answer and our FIN
    /// (waiting only for the client's FIN; not one whose socket still sends its answers): it is
    /// done, and its slot is the first to take back.
    /// Under connection-per-request load the loop accepts before it reads those FINs, and
    /// newcomers were refused `503` while such slots held the limit (`ab -c 1000`: 8 % of
    /// connections refused at 1,024 slots). Refused connections keep their linger (outside
    /// the limit). False if none lingers.
    fn close_oldest_lingering(&mut self) -> bool {
        // The least `(linger end, key)` over those that may close, as a scan of every
        // connection found it (`oldest.rs`).
        let sockets = &self.sockets;
        let oldest = self.oldest_lingering.least(
            self.clock,
            Duration::ZERO,
            |key| sockets.get(key).and_then(closable_at),
            || {
                sockets
                    .iter()
                    .filter_map(|(k, s)| closable_at(s).map(|at| (k, at)))
            },
        );
        let Some((_, key)) = oldest else {
            return false;
        };
        self.close(key);
        true
    }

    /// The connection idle or reading its head the longest, if held so for at least
    /// [`EVICT_MIN_IDLE`]: since when, and its key.
    fn oldest_evictable(&mut self, now: Instant) -> Option<(Instant, usize)> {
        // The least `(since, key)` over the evictable connections, as a scan of every
        // connection found it, from a snapshot built at most once per `EVICT_MIN_IDLE`
        // (`oldest.rs`, invariant 2).
        let sockets = &self.sockets;
        let oldest = self.oldest_idle.least(
            now,
            EVICT_MIN_IDLE,
            |key| sockets.get(key).and_then(evictable_at),
            || {
                sockets
                    .iter()
                    .filter_map(|(k, s)| evictable_at(s).map(|at| (k, at)))
            },
        );
        // Only a slot held without a request for a while: a connection idle or silent for less
        // is between two requests, or its request is not read yet (accepted in the same burst).
        // Evicting those closed busy clients' connections under them, and with more clients
        // than slots the loop evicted its own newcomers round and round.
        oldest.filter(|(since, _)| later(*since, EVICT_MIN_IDLE) <= now)
    }

    /// Evicts connection `key`: `408` and `Connection: close` if it is mid-head (lingering
    /// after it when `linger` and there is room), a plain close if idle.
    fn evict(&mut self, key: usize, linger: bool, now: Instant) {
        self.dispatcher.stats.connections_evicted += 1;
        self.dispatcher.date.refresh(now);
        let socket = &mut self.sockets[key];
        let answered = socket.http.evict(&mut self.dispatcher);
        if answered && linger && self.refusing < MAX_REFUSING {
            socket.refused = true;
            socket.owed = Some(Owed::Rejected);
            self.refusing += 1;
            // Write the 408 and start the linger now: its writable edge has long passed.
            let mut scratch = [0; 4096];
            self.connection_event(Token(key), None, &mut scratch, now);
        } else {
            // Best effort, counted only if the socket took it whole.
            if answered && written_whole(&mut socket.stream, socket.http.pending_output()) {
                self.dispatcher.stats.rejected += 1;
            }
            self.close(key);
        }
    }

    /// A connection over the limit: it gets `503` and `Connection: close`, then FIN, then a
    /// short drain of what it sent, so the client reads the answer instead of a reset.
    fn refuse_connection(&mut self, mut stream: TcpStream, now: Instant) {
        if self.refusing >= MAX_REFUSING {
            // Too many at once to say goodbye properly: best effort, then close.
            self.dispatcher.date.refresh(now);
            let date = self.dispatcher.date.line();
            let mut answer = Connection::<A::Held>::over_capacity(now, date);
            if written_whole(&mut stream, answer.pending_output()) {
                self.dispatcher.stats.connections_refused += 1;
            }
            answer.consume_output(usize::MAX);
            return;
        }
        self.dispatcher.date.refresh(now);
        let answer = Connection::over_capacity(now, self.dispatcher.date.line());
        if self.register(stream, answer, true, now) {
            self.refusing += 1; // counted once written whole (`Socket::owed`)
        }
    }

    #[inline(never)]
    fn connection_event(
        &mut self,
        token: Token,
        event: Option<&Event>,
        buf: &mut [u8],
        now: Instant,
    ) {
        // A stale event for a connection closed earlier in this turn.
        let Some(socket) = self.sockets.get_mut(token.0) else {
            return;
        };
        mark_event(socket, event);
        let handled = handle_socket_io(socket, &mut self.dispatcher, buf, now);
        self.handled(token.0, handled, now);
    }

    /// Connection `key`'s handling deferred by [`connection_read`](EventLoop::connection_read):
    /// its writes, reads again, end ([`handle_socket_io`]), then its close or its timer.
    #[inline(never)]
    fn handle_socket(&mut self, key: usize, buf: &mut [u8], now: Instant) {
        // A key whose connection closed since (a duplicate event's: kqueue reports reading
        // and writing apart).
        let Some(socket) = self.sockets.get_mut(key) else {
            return;
        };
        let handled = handle_socket_io(socket, &mut self.dispatcher, buf, now);
        self.handled(key, handled, now);
    }

    /// After connection `key`'s handling: closed when done or failed, else its timer set.
    #[inline(always)]
    fn handled(&mut self, key: usize, handled: io::Result<bool>, now: Instant) {
        match handled {
            Ok(true) => self.close(key),
            Ok(false) => self.reschedule(key, now),
            Err(_) => self.socket_failed(key),
        }
    }

    /// Connection `key`'s socket failed (reset, broken pipe): the client is gone, and what the
    /// socket had not delivered with it; it is closed.
    #[cold]
    #[inline(never)]
    fn socket_failed(&mut self, key: usize) {
        let socket = &mut self.sockets[key];
        count_undelivered(socket, &mut self.dispatcher.stats);
        socket
            .http
            .abort(&mut self.dispatcher, AbortReason::ClientDisconnected);
        self.close(key);
    }

    /// A connection's event in the turn's events, but the last: its input read and answered
    /// now, its writes and the rest of its handling (resuming, its end, its timer) deferred to
    /// [`write_deferred`](EventLoop::write_deferred), after the turn's other events are read.
    /// Each client is then woken by its answers only once the server has read every
    /// connection of the turn, not in the middle of it (the guarded server's CPU per request
    /// fell about 4 % against the floor's with 64 connections: docs/benchmarks-history.md,
    /// round 28, HTTP path). Nothing a connection writes or decides depends on another's: its
    /// own answers go out in order, whole, as before.
    #[inline]
    fn connection_read(&mut self, token: Token, event: &Event, buf: &mut [u8], now: Instant) {
        // A stale event for a connection closed earlier in this turn.
        let Some(socket) = self.sockets.get_mut(token.0) else {
            return;
        };
        mark_event(socket, Some(event));
        match read_available(socket, &mut self.dispatcher, buf, now) {
            Ok(()) => self.deferred.push(token.0),
            Err(_) => self.socket_failed(token.0),
        }
    }

    /// The handling the turn's connection events deferred
    /// ([`connection_read`](EventLoop::connection_read)), in the order they were read: each
    /// connection writes its answers, reads again if the client's reading let parsing resume,
    /// and ends or has its timer set, as [`connection_event`](EventLoop::connection_event)
    /// does.
    #[inline]
    fn write_deferred(&mut self, buf: &mut [u8], now: Instant) {
        // Nothing deferred (a turn of one event): not even the clear's store.
        if self.deferred.is_empty() {
            return;
        }
        // By index, the list left in place: its handling adds to no list (taken out and put
        // back, the `Vec`'s three words were stored and loaded twice per turn).
        let mut i = 0;
        while let Some(&key) = self.deferred.get(i) {
            self.handle_socket(key, buf, now);
            i += 1;
        }
        self.deferred.clear();
    }

    /// Queues connection `key`, whose reading its budget cut short in this turn, to be read on
    /// in the next (`reschedule` comes here: a cut clears `idle_covers_scheduled`, so no
    /// instruction is added to a handling that was not cut). A queue entry it had is void:
    /// this handling was its read.
    #[cold]
    #[inline(never)]
    fn queue_revisit(&mut self, key: usize, now: Instant) {
        let socket = &mut self.sockets[key];
        socket.read_cut = false;
        socket.revisit = Some(now);
        if self.revisits.is_empty() {
            self.timers.schedule(now, REVISIT_TIMER);
        }
        self.revisits.push(key);
    }

    /// The [`REVISIT_TIMER`] set at `at`: reads on the connections queued in an earlier turn
    /// (each gets its budget again, as a readable event would give it; one cut short again is
    /// queued anew), after this turn's events. Those queued in this turn wait for the next:
    /// the timer is set again for them (due: the next poll does not wait). Returns false when
    /// the timer was set in this turn: it is set again and the turn's timers stop there
    /// (its key is the largest: nothing else due at `now` comes after it).
    #[cold]
    #[inline(never)]
    fn revisit(&mut self, at: Instant, buf: &mut [u8], now: Instant) -> bool {
        if at >= now {
            self.timers.schedule(at, REVISIT_TIMER);
            return false;
        }
        let mut queued = std::mem::take(&mut self.revisits);
        for &key in &queued {
            match self.sockets.get_mut(key) {
                Some(socket) if socket.revisit.is_some_and(|t| t < now) => socket.revisit = None,
                // Closed since (its slot maybe another's), read again and maybe queued anew
                // in this turn, or a duplicate entry read already.
                _ => continue,
            }
            self.connection_event(Token(key), None, buf, now);
        }
        // Those queued in this turn, behind the ones queued while reading these (which set the
        // timer again if they were the first).
        let sockets = &self.sockets;
        queued.retain(|&key| sockets.get(key).is_some_and(|s| s.revisit == Some(now)));
        if !queued.is_empty() {
            if self.revisits.is_empty() {
                self.timers.schedule(now, REVISIT_TIMER);
            }
            queued.append(&mut self.revisits);
            self.revisits = queued;
        }
        true
    }

    fn fire_timers(&mut self, now: Instant, buf: &mut [u8]) {
        while let Some((at, key)) = self.timers.pop_due(now) {
            match key {
                ACCEPT_TIMER => {
                    self.accept_paused = false;
                    self.take_held_newcomer(now);
                    self.accept(now);
                }
                STOP_TIMER => {} // `poll_stop` checks the deadline on every turn.
                SCRATCH_TIMER => self.scratch_idle(now),
                REVISIT_TIMER => {
                    if !self.revisit(at, buf, now) {
                        break;
                    }
                }
                key => {
                    let Some(socket) = self.sockets.get_mut(key) else {
                        continue; // The connection closed since; its entry is stale.
                    };
                    if socket.scheduled == Some(at) {
                        socket.scheduled = None;
                        socket.idle_covers_scheduled = false;
                    }
                    let stall_limit = self.dispatcher.limits.idle_timeout();
                    let window_over = socket
                        .write_stalled
                        .is_some_and(|since| now >= later(since, stall_limit));
                    let too_slow =
                        window_over && reads_too_slowly(socket, &self.dispatcher.limits, now);
                    if too_slow || socket.lingering.is_some_and(|until| now >= until) {
                        // Lingering is over, or the client has read less than the minimum
                        // send rate over a window while answers wait: close (what waits is
                        // aborted). Closed with its client still sending (unread input), the
                        // socket resets the connection, and what it had not sent is dropped.
                        if too_slow || socket.unsent || socket.ack_check.is_some() {
                            count_undelivered(socket, &mut self.dispatcher.stats);
                        }
                        self.close(key);
                        continue;
                    }
                    socket.http.on_timer_unchecked(&mut self.dispatcher, now);
                    self.connection_event(Token(key), None, buf, now);
                }
            }
        }
    }

    /// Sets the connection's timer for its next deadline, unless the one set stands.
    #[inline]
    fn reschedule(&mut self, key: usize, now: Instant) {
        let Some(socket) = self.sockets.get(key) else {
            return;
        };
        // Kept alive after its answer and its idle timeout already found no earlier than its
        // timer (nearly every turn): the timer stands, checked here in a few instructions.
        let stands = socket.idle_covers_scheduled
            && socket.scheduled.is_some_and(|s| s > now)
            && socket.lingering.is_none()
            && socket.write_stalled.is_none()
            && socket.http.is_alone(&self.dispatcher);
        if !stands {
            self.reschedule_anew(key, now);
        }
    }

    #[inline(never)]
    fn reschedule_anew(&mut self, key: usize, now: Instant) {
        let Some(socket) = self.sockets.get(key) else {
            return;
        };
        // Its instants as the eviction and the lingering close order them: noted where the
        // heaps need them (`oldest.rs`: invariants 1 and 2; the fast path above never changes
        // them so).
        let (evictable, closable) = (evictable_at(socket), closable_at(socket));
        let (sockets, open) = (&self.sockets, self.sockets.len());
        self.oldest_idle.note(key, evictable, open, || {
            sockets
                .iter()
                .filter_map(|(k, s)| evictable_at(s).map(|at| (k, at)))
        });
        self.oldest_lingering.note(key, closable, open, || {
            sockets
                .iter()
                .filter_map(|(k, s)| closable_at(s).map(|at| (k, at)))
        });
        let socket = &mut self.sockets[key];
        if socket.read_cut {
            self.queue_revisit(key, now);
        }
        let socket = &mut self.sockets[key];
        // Kept alive after its answer (nearly every turn): its only deadline is the idle
        // timeout, which never moves earlier; a timer already set at or before it stands (and
        // once found so, stays so: no need to add the timeout again on the next turn).
        if let Some(s) = socket.scheduled.filter(|&s| s > now) {
            let d = &self.dispatcher;
            let alone = socket.lingering.is_none()
                && socket.write_stalled.is_none()
                && socket.http.is_alone(d);
            if alone
                && (socket.idle_covers_scheduled
                    || socket
                        .http
                        .idle_deadline_alone(d)
                        .is_some_and(|idle| idle >= s))
            {
                socket.idle_covers_scheduled = true;
                return;
            }
        }
        let stall_limit = self.dispatcher.limits.idle_timeout();
        let next = earliest(
            earliest(
                socket.http.next_deadline(&self.dispatcher),
                socket.lingering,
            ),
            earliest(
                socket.write_stalled.map(|since| later(since, stall_limit)),
                socket.ack_check.map(|(at, _)| at),
            ),
        );
        if let Some(next) = next {
            if socket.scheduled.is_none_or(|s| next < s || s <= now) {
                socket.scheduled = Some(next);
                socket.idle_covers_scheduled = false;
                self.timers.schedule(next, key);
                if self.timers.len() > 2 * self.sockets.len() + PRUNE_SLACK {
                    self.prune_timers();
                }
            }
        }
    }

    /// Drops the timer entries nothing waits for: those of closed connections, and those of
    /// a connection other than its `scheduled` one (the only one it needs: when it fires, the
    /// connection schedules its next deadline). Called when entries outnumber twice the open
    /// connections, so the heap is bounded by them and not by every connection opened within
    /// the idle timeout: under connection-per-request load, each closed connection left its
    /// idle-timeout entry behind until it fired (RSS grew 1.3 MB per 50,000 connections with
    /// `--idle-timeout-ms 300000`, and the stale entries woke the loop for 5 s after the load).
    fn prune_timers(&mut self) {
        let sockets = &self.sockets;
        self.timers.retain(|at, key| match key {
            ACCEPT_TIMER | STOP_TIMER | REVISIT_TIMER | SCRATCH_TIMER => true,
            key => sockets.get(key).is_some_and(|s| s.scheduled == Some(at)),
        });
    }

    fn close(&mut self, key: usize) {
        let mut socket = self.sockets.remove(key);
        if socket.refused {
            self.refusing -= 1;
        }
        // Whatever was still waiting on this connection is aborted and its guards released.
        socket
            .http
            .abort(&mut self.dispatcher, AbortReason::ClientDisconnected);
        // Dropped registered: closing its descriptor (the only one of its socket: the loop
        // never duplicates one) takes it out of the epoll set, so `EPOLL_CTL_DEL` first was a
        // system call per connection for nothing (one of 13 per connection under churn,
        // `benches/load/shapes.py`; mio asks for no deregistration on epoll). Elsewhere
        // (kqueue and the rest) it is deregistered as before.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = self.poll.registry().deregister(&mut socket.stream);
        drop(socket);
    }

    fn drain_signal_pipe(&mut self) {
        if let Some(signals) = &mut self.signals {
            signals.take();
        }
    }

    /// Checks the stop; true when the loop may end. At the drain deadline the stop ends as a
    /// group's ladder ends it at its force and close steps (`server/ending.rs`): the requests
    /// still out end, every request not whole gets `503` + close, idle connections close (as
    /// the stop's idle linger closes them), and the answers already computed go out, the loop
    /// ending once every connection has closed or [`LINGER_LIMIT`] later. It closed every connection at the deadline before, cutting
    /// answers already computed (a client reading slowly) and leaving a head in progress
    /// without a word (stop31).
    fn poll_stop(&mut self, now: Instant, buf: &mut [u8]) -> bool {
        if self.ending.closing() {
            if self.ending.holds_some() {
                self.answer_held_behind(now);
            }
            return self.close_done(now);
        }
        let in_flight = self.dispatcher.in_flight;
        let deadline_passed = self.stop_deadline.is_some_and(|d| now >= d);
        let status = match self.dispatcher.poll_stop(now, in_flight) {
            // The server's own deadline rules both ways, as a loop group's ladder's does: an
            // accounting (the embedder's) that says the deadline passed before it did waits
            // for it; its requests in flight have until then.
            StopStatus::Expired { .. } if !deadline_passed => StopStatus::Pending,
            status => status,
        };
        match status {
            // Drained and every connection closed (answered, idle linger over, or gone).
            StopStatus::Complete if self.sockets.is_empty() => true,
            StopStatus::Complete | StopStatus::Pending if !deadline_passed => false,
            // Past the deadline: drained, but connections outlived it (idle, or answers still
            // being written), or requests still in flight, their signals aborted. The
            // server's own deadline and count rule: an accounting still pending past it is
            // escalated all the same, and one that says complete with requests in flight
            // has them ended.
            status => {
                // An embedder's accounting may say complete with requests still in flight:
                // the server's own count says whether the deadline ended some.
                self.deadline_hit |= in_flight > 0 || status != StopStatus::Complete;
                self.end_what_is_out(now, buf);
                if status != StopStatus::Complete {
                    // The accounting sees its requests ended (its drain completes).
                    let _ = self.dispatcher.poll_stop(now, self.dispatcher.in_flight);
                }
                self.begin_close(now, buf, ending::Idle::Closed);
                self.close_done(now)
            }
        }
    }

    /// Closes every connection at the drain deadline.
    fn force_close_all(&mut self) {
        self.close_every_connection(AbortReason::DrainDeadline);
    }

    /// Closes every connection, ending what is on it with `reason`; counts as force-closed
    /// those the server had not closed already (a lingering one had its last answer and our
    /// FIN and waits only for its client's FIN, a refused one its `503`). Each close calls the
    /// accounting, which may panic (one that says it cannot may): caught one by one and
    /// counted, so the rest still close.
    fn close_every_connection(&mut self, reason: AbortReason) {
        let keys: Vec<usize> = self.sockets.iter().map(|(k, _)| k).collect();
        for key in keys {
            let mut socket = self.sockets.remove(key);
            let _ = self.poll.registry().deregister(&mut socket.stream);
            if socket.refused {
                self.refusing -= 1;
            } else if socket.lingering.is_none() {
                self.force_closed += 1;
            }
            if socket.lingering.is_none() || socket.unsent || socket.ack_check.is_some() {
                count_undelivered(&socket, &mut self.dispatcher.stats);
            }
            let dispatcher = &mut self.dispatcher;
            if call_caught(move || socket.http.abort(dispatcher, reason)) {
                self.dispatcher.stats.panics += 1;
            }
        }
        // Every request in flight was on one of them, whatever count a panic cut short.
        self.dispatcher.in_flight = 0;
    }

    fn finish(mut self) -> ServerReport {
        self.force_close_all();
        let accounting = self.dispatcher.accounting_report();
        let scratch = self.dispatcher.scratch.capacity();
        self.dispatcher.stats.response_buffer = u64::try_from(scratch).unwrap_or(u64::MAX);
        let report = ServerReport {
            stats: self.dispatcher.stats,
            leaked: accounting.leaked,
            leaks: accounting.leaks,
            drain_time: accounting.drain_time,
            drain_deadline_hit: self.deadline_hit,
            force_closed: self.force_closed,
            pool: accounting.pool,
            uptime: self.started.elapsed(),
            steps: self.ladder.take().map(|l| l.records).unwrap_or_default(),
            outcomes: accounting.outcomes,
        };
        self.control.set_phase(Phase::Done);
        // The accounting (its engine, scope, hooks) is the embedder's: a `Drop` of it that
        // panics must not lose the report.
        call_caught(move || drop(self));
        report
    }
}

/// Since when `socket` may be evicted for a newcomer at the limit (`Server::evict_oldest`):
/// idle or reading its head (or a body too slowly) since then; `None` if it may not be
/// (a request out, an answer being written, lingering, refused).
fn evictable_at<H>(socket: &Socket<'_, H>) -> Option<Instant> {
    if socket.refused || socket.lingering.is_some() {
        return None;
    }
    socket.http.evictable_since()
}

/// Until when `socket` lingers, if it may be closed for a newcomer at the limit
/// (`EventLoop::close_oldest_lingering`): not one refused, nor one whose socket has not sent
/// its answers yet (closing it would lose them).
fn closable_at<H>(socket: &Socket<'_, H>) -> Option<Instant> {
    if socket.refused || socket.unsent || socket.ack_check.is_some() {
        return None;
    }
    socket.lingering
}

/// What an event says of a connection's socket (`event` is `None` when a timer, not the
/// socket, woke the connection): whether input may wait, and whether the client closed its
/// side.
#[inline(always)]
fn mark_event<H>(socket: &mut Socket<'_, H>, event: Option<&Event>) {
    // Input may be waiting after a readable event, and after a timer too: input we left unread
    // (over the buffering cap, or under back-pressure) gets no new event of its own.
    if event.is_none_or(|e| e.is_readable() || e.is_read_closed() || e.is_error()) {
        socket.read_ready = true;
    }
    if event.is_some_and(|e| e.is_read_closed() || e.is_error()) {
        socket.read_closed = true;
    }
}

/// One connection's reads and writes after an event ([`mark_event`]) or a timer: reads and
/// answers what there is, writes it, and again while the client's reading lets parsing
/// resume; then, its work done, its end (linger, close). Whether to close it now. Inlined
/// into its two callers (one lookup and no call per event: out of line, a one-event turn paid
/// about 12 instructions more, callgrind, depth 1).
#[inline(always)]
fn handle_socket_io<'r, A: Accounting>(
    socket: &mut Socket<'r, A::Held>,
    d: &mut Dispatcher<'r, A>,
    buf: &mut [u8],
    now: Instant,
) -> io::Result<bool> {
    loop {
        // Tested here too, not only in `read_available`: after a turn's deferred reads the
        // socket is nearly always drained, and the call was paid for nothing.
        if socket.read_ready {
            read_available(socket, d, buf, now)?;
        }
        write_pending(socket, now)?;
        // The client read enough for parsing to go on: answer what is buffered, then read
        // and write again (the readable edge was consumed while we paused).
        if !socket.http.resume_unchecked(d, now) {
            break;
        }
    }

    if !socket.http.is_done() {
        return Ok(false);
    }
    if let Some(owed) = socket.owed.take() {
        owed.count(&mut d.stats); // its answer is written whole
    }
    // Done and the client already closed its side: nothing left to say, once it has what
    // was written.
    if socket.eof {
        return Ok(acknowledged_or_gone(socket, &mut d.stats, now));
    }
    // Done on our side: linger until the client closes, reading and dropping what it still
    // sends, while the socket sends what it holds, then our FIN, then briefly.
    if socket.lingering.is_none() {
        begin_linger(socket, now);
        read_available(socket, d, buf, now)?;
    } else if socket.unsent {
        linger_sent_yet(socket, now);
    }
    Ok(socket.eof)
}

/// Every answer of the connection is written to its socket, and it is to close (a
/// `connection: close` answer, an error or a refusal answered, the stop's close step): its
/// linger begins (RFC 9112 §9.6). Closing it while its client still sends would reset the
/// connection, and the reset drops what the socket has not sent yet (answers counted `served`
/// that a client reading slowly had not received). So it reads and drops what comes (at most
/// [`LINGER_DISCARD`]) while the socket sends what it holds (`src/unsent.rs`: its writable event
/// says when the last byte left), then sends our FIN and lingers [`CLOSE_LINGER`] more for the
/// client's acknowledgement or close; in all at most [`LINGER_LIMIT`]. Where the socket cannot
/// tell, the FIN goes at once and the linger is [`CLOSE_LINGER`], as before.
#[cold]
#[inline(never)]
fn begin_linger<H>(socket: &mut Socket<'_, H>, now: Instant) {
    socket.lingering = Some(later(now, LINGER_LIMIT));
    socket.linger_limit = socket.lingering;
    // Nearly always nothing is unsent by now (one `TCP_INFO` read says so): our FIN goes at
    // once, as after the watch's poll found all sent, two system calls fewer per close.
    socket.unsent = crate::unsent::unsent_bytes(&socket.stream) != Some(0)
        && crate::unsent::watch(&socket.stream);
    if socket.unsent {
        linger_sent_yet(socket, now);
    } else {
        let _ = socket.stream.shutdown(std::net::Shutdown::Write);
        socket.lingering = Some(later(now, CLOSE_LINGER));
    }
}

/// Whether a connection whose client closed its side, every answer written, may close now. A
/// client that closed rather than half-closed resets the connection when our answers reach
/// it, so answers written after its FIN may never arrive: this waits for its TCP to
/// acknowledge them all (the answers are delivered) or to reset (those it had not
/// acknowledged are `undelivered`: [`count_undelivered`]), looking again 1 ms later, then 2,
/// 4, ... (an acknowledgement brings no event; a reset does), at most [`CLOSE_LINGER`] in all
/// (then, nothing unread and the connection up, what the socket holds goes on behind our FIN:
/// delivered). At once where that cannot be known, or nothing was answered.
#[cold]
#[inline(never)]
fn acknowledged_or_gone<H>(
    socket: &mut Socket<'_, H>,
    stats: &mut super::Stats,
    now: Instant,
) -> bool {
    use crate::unsent::Acknowledged;
    if socket.http.served() == 0 {
        return true;
    }
    match crate::unsent::acknowledged(&socket.stream, socket.sent) {
        Acknowledged::All | Acknowledged::Unknown => true,
        Acknowledged::Reset => {
            count_undelivered(socket, stats);
            socket.ack_check = None; // counted: the close counts nothing more
            true
        }
        Acknowledged::Pending => {
            let until = later(now, CLOSE_LINGER);
            let until = socket.lingering.map_or(until, |end| end.min(until));
            socket.lingering = Some(until);
            let step = socket
                .ack_check
                .map_or(ACK_CHECK_FIRST, |(_, step)| step * 2);
            socket.ack_check = Some((later(now, step).min(until), step));
            false
        }
    }
}

/// A lingering connection whose socket had bytes unsent: if it has sent them all now, our FIN
/// follows and the linger ends [`CLOSE_LINGER`] from now (or sooner, at its limit).
#[cold]
#[inline(never)]
fn linger_sent_yet<H>(socket: &mut Socket<'_, H>, now: Instant) {
    if !crate::unsent::all_sent(&socket.stream) {
        return; // Its writable event comes once the last byte has left.
    }
    socket.unsent = false;
    let _ = socket.stream.shutdown(std::net::Shutdown::Write);
    socket.lingering = socket
        .lingering
        .map(|end| end.min(later(now, CLOSE_LINGER)));
}

/// A lingering connection's client still sends after our FIN (an upload refused before its
/// end): the linger runs [`CLOSE_LINGER`] on from this read, within its [`LINGER_LIMIT`].
/// Closing under a client still sending resets the connection: its next write fails, and a
/// client that reads its answer only once it has sent everything (as `http.client` does) never
/// reads it. While the socket still sends (`unsent`) the linger's end is its limit already.
#[cold]
#[inline(never)]
fn linger_on<H>(socket: &mut Socket<'_, H>, now: Instant) {
    if socket.unsent || socket.ack_check.is_some() {
        return;
    }
    if let (Some(until), Some(limit)) = (socket.lingering, socket.linger_limit) {
        socket.lingering = Some(until.max(later(now, CLOSE_LINGER).min(limit)));
    }
}

/// The connection is closed before its answers are delivered (the slow-reader cut, a linger
/// that ran out with bytes unsent, a failed socket, a force-close): its answers counted
/// `served` whose bytes do not all reach the client (those in its buffers; at a reset, those
/// the client's TCP had not acknowledged) are taken back out of `served` and counted
/// `undelivered` (`src/delivery.rs`: conservative). One look-up of the socket's queues
/// (`src/unsent.rs`), for a connection that answered anything.
#[cold]
#[inline(never)]
fn count_undelivered<H>(socket: &Socket<'_, H>, stats: &mut super::Stats) {
    let served = socket.http.served();
    if served == 0 {
        return;
    }
    let deliverable = crate::unsent::deliverable(&socket.stream, socket.sent);
    let lost = socket.delivery.lost(served, deliverable);
    stats.served -= lost;
    stats.undelivered += lost;
}

/// Reads until `WouldBlock` (edge-triggered: or we would never hear of the rest), unless the
/// connection stops wanting input (buffer cap, back-pressure) or has spent its read budget (it
/// is then `read_cut`, and the loop comes back to it on the next turn).
fn read_available<'r, A: Accounting>(
    socket: &mut Socket<'r, A::Held>,
    d: &mut Dispatcher<'r, A>,
    buf: &mut [u8],
    now: Instant,
) -> io::Result<()> {
    while socket.read_ready
        && !socket.eof
        && (if socket.lingering.is_some() {
            socket.discarded < LINGER_DISCARD
        } else {
            socket.http.wants_read(d)
        })
    {
        // The rest of a body goes straight into its request's input, not through `buf` and a
        // copy (unless the connection says otherwise: closing, or the body already whole).
        if socket.http.reads_body() && socket.lingering.is_none() {
            if let Some(read) = read_body_in_place(socket, d, now) {
                read?;
                continue;
            }
        }
        match read_socket(&socket.stream, buf) {
            // The client closed its side: waiting requests are aborted (their signals fire),
            // what is already answered may still be written.
            Ok(0) => {
                socket.eof = true;
                socket.http.peer_closed_unchecked(d);
            }
            // After our own close we only drain, so the client's unread bytes do not turn our
            // last answer into a reset.
            Ok(n) => {
                if socket.lingering.is_none() {
                    socket.http.receive_unchecked(d, &buf[..n], now);
                } else {
                    socket.discarded += n as u64;
                    linger_on(socket, now);
                }
                // A short read emptied the socket's buffer: on epoll and kqueue, more input
                // brings a new event, so the read that would only say `WouldBlock` is saved
                // (tokio does the same: tokio/src/io/poll_evented.rs, tokio#5866). Not when the
                // client closed its side: its end of input brings no further event.
                if n < buf.len() && !socket.read_closed && SHORT_READ_DRAINS {
                    socket.read_ready = false;
                } else {
                    spend(socket, n);
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => socket.read_ready = false,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Reads more of the body being read straight into its request's input
/// ([`Connection::receive_body_with`]) and answers it, as `read_available` does a read into its
/// buffer (the same end of input, short read and errors). `None` when the connection has no
/// room for it (closing, or the body already whole): read into the buffer instead.
#[inline(never)]
fn read_body_in_place<'r, A: Accounting>(
    socket: &mut Socket<'r, A::Held>,
    d: &mut Dispatcher<'r, A>,
    now: Instant,
) -> Option<io::Result<()>> {
    let stream = &socket.stream;
    let mut room = 0;
    let read = socket.http.receive_body_with(d, now, |input| {
        room = input.capacity() - input.len();
        read_spare(stream, input)
    })?;
    match read {
        Ok(0) => {
            socket.eof = true;
            socket.http.peer_closed(d);
        }
        Ok(n) => {
            if n < room && !socket.read_closed && SHORT_READ_DRAINS {
                socket.read_ready = false;
            } else {
                spend(socket, n);
            }
        }
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => socket.read_ready = false,
        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
        Err(err) => return Some(Err(err)),
    }
    Some(Ok(()))
}

/// A read of `n` bytes that left input in the socket (or may have) takes them from the
/// connection's budget. Once it is spent the connection stops reading (`read_ready` off, so
/// nothing reads it again in this turn, however often parsing resumes) and is `read_cut`: the
/// loop reads it on next turn (`EventLoop::revisit`), as a readable event would, with its budget
/// filled again. A read that emptied the socket takes nothing: small requests never get here.
#[inline]
fn spend<H>(socket: &mut Socket<'_, H>, n: usize) {
    socket.budget = socket.budget.saturating_sub(n);
    if socket.budget == 0 {
        socket.budget = READ_BUDGET;
        socket.read_ready = false;
        socket.read_cut = true;
        // Sends the handling's end through `EventLoop::reschedule_anew`, which queues it.
        socket.idle_covers_scheduled = false;
    }
}

/// One write of `answer` (a refusal's, written outside the loop's turn): whether the socket
/// took it whole.
fn written_whole(stream: &mut TcpStream, answer: &[u8]) -> bool {
    stream.write(answer).is_ok_and(|n| n == answer.len())
}

/// One `read(2)` of the connection's socket into `buf`, the system call made by rustix
/// itself: libc's `recv` wrapper and its cancellation point (`__pthread_enable_asynccancel` and
/// `disable`) with std's around it took about 77 instructions a call, callgrind, mio depth 16
/// (docs/benchmarks-history.md, round 32, HTTP path). What it returns is what `recv` with no
/// flags returns on a stream socket.
#[cfg(unix)]
#[inline(always)]
fn read_socket(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    rustix::io::read(stream, buf).map_err(io::Error::from)
}

/// One read of the connection's socket into `buf` (std's).
#[cfg(not(unix))]
fn read_socket(mut stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    io::Read::read(&mut stream, buf)
}

/// One `send(2)` of `out` on the connection's socket with `MSG_NOSIGNAL`, as std's `write` makes
/// it on Linux (a client gone is `EPIPE`, never `SIGPIPE`, whatever the embedder does with that
/// signal), the system call made by rustix itself: no libc wrapper, no cancellation point (see
/// [`read_socket`]).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline(always)]
fn write_socket(stream: &TcpStream, out: &[u8]) -> io::Result<usize> {
    rustix::net::send(stream, out, rustix::net::SendFlags::NOSIGNAL).map_err(io::Error::from)
}

/// One write of `out` on the connection's socket (std's: `SO_NOSIGPIPE` where there is no
/// `MSG_NOSIGNAL`).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn write_socket(mut stream: &TcpStream, out: &[u8]) -> io::Result<usize> {
    stream.write(out)
}

/// One read into `input`'s spare capacity (no zeroed room to fill first: rustix's
/// `spare_capacity` sets the length to what the read wrote).
#[cfg(unix)]
fn read_spare(stream: &TcpStream, input: &mut Vec<u8>) -> io::Result<usize> {
    rustix::io::read(stream, rustix::buffer::spare_capacity(input)).map_err(io::Error::from)
}

/// One read into `input`'s spare capacity, zeroed first (safe Rust reads into initialized
/// bytes only).
#[cfg(not(unix))]
fn read_spare(mut stream: &TcpStream, input: &mut Vec<u8>) -> io::Result<usize> {
    let len = input.len();
    input.resize(input.capacity(), 0);
    let read = io::Read::read(&mut stream, &mut input[len..]);
    input.truncate(len + *read.as_ref().unwrap_or(&0));
    read
}

/// Writes whatever is answered; on `WouldBlock` the writable event brings us back.
// Always inlined (into the event's handling): left to the heuristics, the window's count kept
// it out of line, +28 instructions per event (callgrind, mio depth 1).
#[inline(always)]
fn write_pending<H>(socket: &mut Socket<'_, H>, now: Instant) -> io::Result<()> {
    while !socket.http.pending_output().is_empty() {
        if !socket.http.lent_output().is_empty() {
            if write_lent(socket, now)? {
                continue;
            }
            return Ok(());
        }
        match write_socket(&socket.stream, socket.http.pending_output()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                socket.http.consume_unlent(n);
                // Counted, not a reset of the stall: a client reading a few bytes now and
                // then is judged by how many (`reads_too_slowly`).
                socket.sent += n as u64;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if socket.write_stalled.is_none() {
                    stall_begins(socket, now);
                }
                return Ok(());
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    socket.write_stalled = None;
    // The socket has taken every answer written so far.
    socket.delivery.mark(socket.sent, socket.http.served());
    Ok(())
}

/// One write of the connection's pending output and, after it, the large body its last answer
/// lent (instead of having it copied after its head), in one vectored write; as
/// `write_pending` does a plain one. Returns whether to write on (false: the socket is full).
#[cold]
#[inline(never)]
fn write_lent<H>(socket: &mut Socket<'_, H>, now: Instant) -> io::Result<bool> {
    let (out, lent) = (socket.http.pending_output(), socket.http.lent_output());
    let parts = [io::IoSlice::new(out), io::IoSlice::new(lent)];
    match socket.stream.write_vectored(&parts) {
        Ok(0) => Err(io::ErrorKind::WriteZero.into()),
        Ok(n) => {
            socket.http.consume_output(n);
            socket.sent += n as u64;
            Ok(true)
        }
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
            if socket.write_stalled.is_none() {
                stall_begins(socket, now);
            }
            Ok(false)
        }
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(true),
        Err(err) => Err(err),
    }
}

/// A write found the socket full: a window of the send rate's judgement begins.
#[cold]
#[inline(never)]
fn stall_begins<H>(socket: &mut Socket<'_, H>, now: Instant) {
    socket.write_stalled = Some(now);
    socket.sent_at_stall = socket.sent;
}

/// A window of the idle timeout is over while answers wait for the client: whether it read
/// them slower than [`Limits::min_send_rate`](super::Limits::with_min_send_rate) (it is then
/// disconnected). The socket is written first (what the client read since the last writable
/// event counts: Linux signals one only once a third of a full send buffer has drained, which
/// a slow but steady reader of a large answer takes longer than a window to do). A client fast
/// enough begins a new window; one whose answers all went out has none.
#[cold]
#[inline(never)]
fn reads_too_slowly<H>(socket: &mut Socket<'_, H>, limits: &super::Limits, now: Instant) -> bool {
    if write_pending(socket, now).is_err() {
        return true; // The socket failed: the client is gone.
    }
    if socket.write_stalled.is_none() {
        return false; // Everything went out.
    }
    if socket.sent - socket.sent_at_stall < limits.min_sent_per_window() {
        return true;
    }
    stall_begins(socket, now);
    false
}

/// `at + by`, or as late as an `Instant` can be.
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by)
        .unwrap_or(at + super::limits::MAX_TIMEOUT)
}

/// A loop that is gone has stopped, however it ended (its report made, an error, a panic
/// unwinding its thread, or its server dropped unrun): its stop handles stop waiting for a
/// stop that can no longer begin.
impl<A: Accounting> Drop for EventLoop<'_, A> {
    fn drop(&mut self) {
        self.control.set_phase(Phase::Done);
    }
}

/// A server dropped without running drops its loop, and the embedder's accounting in it,
/// caught (QA embed18-1): a `Drop` of theirs that panics neither escapes the drop nor, while
/// another panic unwinds, aborts the process.
impl<A: Accounting> Drop for Server<'_, A> {
    fn drop(&mut self) {
        if let Some(event_loop) = self.unrun.take() {
            call_caught(move || drop(event_loop));
        }
    }
}

impl<A: Accounting> std::fmt::Debug for Server<'_, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let event_loop = self.event_loop();
        f.debug_struct("Server")
            .field("local_addr", &event_loop.local_addr)
            .field("connections", &event_loop.sockets.len())
            .field("stats", event_loop.dispatcher.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::http::{demo_routes, Guarded, Reply, Routes};
    use crate::Config;

    /// Tells the loop the client is done, even if it panicked, and wakes it for a last turn.
    struct Finished(Arc<AtomicBool>, SocketAddr);

    impl Drop for Finished {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
            let _ = StdStream::connect(self.1);
        }
    }

    /// Accepted sockets send at once (`TCP_NODELAY`): with Nagle, a client that pipelines
    /// requests in separate writes had an answer held behind the ACK of the one before, which
    /// the client delays (40 ms stalls, seen with 8 requests written a few microseconds apart).
    #[test]
    fn accepted_connections_send_without_nagle() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let accounting = Guarded::embedded("server", Config::default());
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, &router, accounting, Limits::default())
            .unwrap()
            .into_loop();
        let _client = StdStream::connect(server.local_addr).unwrap();
        let (mut events, mut buf) = (Events::with_capacity(8), vec![0; 4096]);
        // The listener's event: one turn accepts the connection.
        while server.sockets.is_empty() {
            assert!(!server.turn(&mut events, &mut buf).unwrap());
        }
        let (_, socket) = server.sockets.iter().next().unwrap();
        assert!(socket.stream.nodelay().unwrap());
    }

    /// A 64 KiB `POST /echo` that arrived whole, head and body, is read in one read of the
    /// loop's buffer and answered in the turn that reads it (round 33, load33). With a 64 KiB
    /// buffer that read filled it, spent the connection's read budget and was cut to the next
    /// turn, which read the body's last bytes in place and then found nothing: a poll and two
    /// reads more per 64 KiB echo than plain hyper makes (docs/benchmarks.md, "Load shapes").
    #[test]
    fn a_64_kib_post_that_arrived_whole_is_answered_in_the_turn_that_reads_it() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let accounting = Guarded::embedded("server", Config::default());
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, &router, accounting, Limits::default())
            .unwrap()
            .into_loop();
        let mut client = StdStream::connect(server.local_addr).unwrap();
        let (mut events, mut buf) = (Events::with_capacity(8), read_buffer());
        while server.sockets.is_empty() {
            assert!(!server.turn(&mut events, &mut buf).unwrap());
        }
        let body = vec![b'a'; 64 * 1024];
        let head = format!(
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        client
            .write_all(&[head.as_bytes(), &body].concat())
            .unwrap();
        // All of it in the server's socket before the turn that reads it.
        wait_delivered([&client]);
        assert!(!server.turn(&mut events, &mut buf).unwrap());
        let stats = &server.dispatcher.stats;
        assert_eq!(stats.served, 1, "answered in the turn that read it");
        assert_eq!(
            stats.body_bytes_read_in_place, 0,
            "the body came in the one read"
        );
    }

    /// Answers small whatever the body (no back-pressure however many are pipelined).
    fn sink(_: &crate::http::Request<'_>, response: &mut crate::http::Response<'_>) -> Reply {
        response.write(b"ok");
        Reply::Now
    }

    /// Answers read so far on a non-blocking client: how many status lines it has in all.
    fn count_answers(client: &mut StdStream, seen: &mut Vec<u8>) -> usize {
        let mut chunk = [0; 64 * 1024];
        loop {
            match client.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => panic!("{err}"),
            }
        }
        memchr::memmem::find_iter(seen, b"HTTP/1.1 200 OK\r\n").count()
    }

    /// Waits until every byte written to each of `sockets` is in its peer's kernel. Loopback
    /// hands bytes over in the writer's system call only when the kernel has the time: under
    /// valgrind or load it may leave them to a kernel thread, so a test that reads the other
    /// end at once counts by timing. Bounded: fails rather than hangs.
    fn wait_delivered<'s, S: 's>(sockets: impl IntoIterator<Item = &'s S> + Clone)
    where
        socket2::SockRef<'s>: From<&'s S>,
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        let pending = || {
            sockets
                .clone()
                .into_iter()
                .any(|socket| !crate::unsent::all_acknowledged(socket))
        };
        while pending() {
            assert!(
                Instant::now() < deadline,
                "bytes still unacknowledged after 60 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Turns `server` once; then how many answers each of `clients` has read in all.
    fn turn_and_count<A: Accounting>(
        server: &mut EventLoop<'_, A>,
        clients: &mut [StdStream],
        seen: &mut [Vec<u8>],
    ) -> Vec<usize> {
        let (mut events, mut buf) = (Events::with_capacity(64), vec![0; 64 * 1024]);
        assert!(!server.turn(&mut events, &mut buf).unwrap());
        clients
            .iter_mut()
            .zip(seen)
            .map(|(client, seen)| count_answers(client, seen))
            .collect()
    }

    /// Turns `server` until each of `clients` has read `answers` in all (bounded: a broken loop
    /// fails the test rather than hangs it).
    fn turn_until<A: Accounting>(
        server: &mut EventLoop<'_, A>,
        clients: &mut [StdStream],
        seen: &mut [Vec<u8>],
        answers: usize,
    ) {
        for _ in 0..10_000 {
            let counts = turn_and_count(server, clients, seen);
            if counts.iter().all(|&n| n == answers) {
                return;
            }
        }
        panic!("the clients did not all read {answers} answers");
    }

    /// A turn reads every connection its events name before it writes to any (round 28,
    /// load28): one write per connection per turn, after every read of the turn, so no client
    /// is woken by its answers while the turn still reads others. Three clients each send a
    /// request whose handler looks (with `peek`) whether any client has an answer to read
    /// yet: in the turn that answers all three, none has. Before, each event was read,
    /// answered and written in turn, and the handlers after the first saw the earlier
    /// answers. Each client then reads its own answer, whole.
    #[test]
    fn a_turn_writes_its_answers_after_every_read_of_the_turn() {
        use std::cell::RefCell;
        use std::rc::Rc;
        const CLIENTS: usize = 3;
        let peers: Rc<RefCell<Vec<StdStream>>> = Rc::default();
        let seen_answers: Rc<RefCell<Vec<bool>>> = Rc::default();
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        let (clients_in_handler, seen_in_handler) = (Rc::clone(&peers), Rc::clone(&seen_answers));
        router.route(
            "GET",
            "/peek",
            move |_: &crate::http::Request<'_>, response: &mut crate::http::Response<'_>| {
                let any_answer = clients_in_handler.borrow().iter().any(|client| {
                    match client.peek(&mut [0; 1]) {
                        Ok(n) => n > 0,
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => false,
                        Err(err) => panic!("{err}"),
                    }
                });
                seen_in_handler.borrow_mut().push(any_answer);
                response.write(b"peeked");
                Reply::Now
            },
        );
        let accounting = Guarded::embedded("server", Config::default());
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, &router, accounting, Limits::default())
            .unwrap()
            .into_loop();
        let mut clients: Vec<StdStream> = (0..CLIENTS)
            .map(|_| StdStream::connect(server.local_addr).unwrap())
            .collect();
        for client in &clients {
            client.set_nonblocking(true).unwrap();
            peers.borrow_mut().push(client.try_clone().unwrap());
        }
        let (mut events, mut buf) = (Events::with_capacity(64), vec![0; 64 * 1024]);
        for _ in 0..10_000 {
            if server.sockets.len() == CLIENTS {
                break;
            }
            assert!(!server.turn(&mut events, &mut buf).unwrap());
        }
        assert_eq!(
            server.sockets.len(),
            CLIENTS,
            "the loop accepted every client"
        );
        for client in &mut clients {
            client
                .write_all(b"GET /peek HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
        }
        // Every request in the server's kernel before the turn: one poll names all three.
        wait_delivered(clients.iter());
        assert!(!server.turn(&mut events, &mut buf).unwrap());
        assert_eq!(
            *seen_answers.borrow(),
            [false; CLIENTS],
            "a handler of the turn found an answer already written"
        );
        wait_delivered(server.sockets.iter().map(|(_, socket)| &socket.stream));
        for client in &mut clients {
            let mut seen = Vec::new();
            assert_eq!(count_answers(client, &mut seen), 1);
            assert!(seen.ends_with(b"\r\n\r\npeeked"), "{seen:?}");
        }
    }

    /// Fairness between connections (load round 10, finding 4; docs/benchmarks.md 9e and 9f):
    /// a turn read every ready connection until `WouldBlock`, so a fast client's `GET /` waited
    /// until every other ready connection's backlog was read and answered (200 clients
    /// pipelining 4 x 256 KiB echoes: ~0.5 s per turn under load). Now one handling of a
    /// connection reads less than `READ_BUDGET` and one read more, and the loop comes back to
    /// the ones it cut short on the next turn, after the events that came meanwhile. Four
    /// connections each send 128 pipelined requests of 8 KiB (four rounds first, answered, so
    /// the kernel grows their receive windows to hold a whole backlog, as a busy connection's
    /// is), then a `GET /` comes last: it is answered in the first turn, when each backlog has
    /// at most what one handling reads answered (before: all 128 of each, in the same turn).
    /// Counted, not timed: the test turns the loop itself.
    #[test]
    fn a_get_is_answered_before_large_pipelined_backlogs_on_other_connections() {
        const BACKLOGS: usize = 4;
        const PIPELINED: usize = 128;
        const ROUNDS: usize = 4;
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        router.route("POST", "/sink", sink);
        let accounting = Guarded::embedded("server", Config::default());
        let addr = "127.0.0.1:0".parse().unwrap();
        // The fast connection waits, idle, while the backlogs are answered: seconds under
        // valgrind, past the default idle timeout (it was closed, and its `GET` then reset).
        let limits = Limits::default().with_idle_timeout(Duration::from_secs(3600));
        let mut server = Server::bind(addr, &router, accounting, limits)
            .unwrap()
            .into_loop();
        let connect = || {
            let client = StdStream::connect(server.local_addr).unwrap();
            // The kernel holds a backlog (about 1 MB) unread; a timeout, not a hang, if not.
            client
                .set_write_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            client
        };
        let mut clients: Vec<StdStream> = (0..=BACKLOGS).map(|_| connect()).collect();
        let body = vec![b'a'; 8 * 1024];
        let head = format!(
            "POST /sink HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let request = [head.as_bytes(), &body].concat();
        let backlog = request.repeat(PIPELINED);
        let mut seen = vec![Vec::new(); BACKLOGS + 1];
        let (backlogs, fast) = clients.split_at_mut(BACKLOGS);
        // Each backlog whole in the kernel's buffers before the loop reads any of it (it runs
        // only when this thread turns it); the last round's, then the `GET`, read together.
        for round in 1..=ROUNDS + 1 {
            for client in backlogs.iter_mut() {
                client.set_nonblocking(false).unwrap();
                client
                    .write_all(&backlog)
                    .expect("the kernel buffers a backlog");
                client.set_nonblocking(true).unwrap();
            }
            if round > ROUNDS {
                break;
            }
            turn_until(&mut server, backlogs, &mut seen, round * PIPELINED);
        }
        fast[0]
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        fast[0].set_nonblocking(true).unwrap();
        // The `GET` in the server's kernel before the turn, and the turn's answers in the
        // clients' before they are counted: what one turn answers, whatever the timing.
        wait_delivered(fast.iter());
        let (mut events, mut buf) = (Events::with_capacity(64), vec![0; 64 * 1024]);
        assert!(!server.turn(&mut events, &mut buf).unwrap());
        wait_delivered(server.sockets.iter().map(|(_, socket)| &socket.stream));
        let counts: Vec<usize> = clients
            .iter_mut()
            .zip(&mut seen)
            .map(|(client, seen)| count_answers(client, seen))
            .collect();
        // One handling reads less than the budget and one read more (of the loop's 64 KiB
        // buffer, or of a body in place: at most the body, here); a request begun in the
        // handling before may end in it too.
        let per_handling = (READ_BUDGET + 64 * 1024) / request.len() + 1;
        let before = ROUNDS * PIPELINED;
        let backlogs_then: Vec<usize> = counts[..BACKLOGS].iter().map(|n| n - before).collect();
        assert_eq!(counts[BACKLOGS], 1, "the GET is answered in the first turn");
        assert!(
            backlogs_then.iter().all(|&n| n <= per_handling),
            "answers each backlog had when the GET was answered: {backlogs_then:?} of \
             {PIPELINED}, at most {per_handling} expected"
        );
        // And every backlog is answered in the end.
        let (backlogs, seen) = (&mut clients[..BACKLOGS], &mut seen[..BACKLOGS]);
        turn_until(&mut server, backlogs, seen, before + PIPELINED);
    }

    /// What an event reads and writes of its socket follows the connection's per-read fields
    /// (its end) within two cache lines, ahead of the delivery marks and of what only a close,
    /// a linger or a stall reads; the connection begins the socket, and a socket begins a
    /// cache line (see `Socket`).
    #[test]
    fn an_events_fields_follow_the_connections() {
        use std::mem::{align_of, offset_of, size_of};
        type S = Socket<'static, ()>;
        assert_eq!(align_of::<S>(), 64);
        assert_eq!(offset_of!(S, http), 0);
        let after_http = size_of::<Connection<'static, ()>>();
        let per_event = [
            offset_of!(S, lingering),
            offset_of!(S, scheduled),
            offset_of!(S, write_stalled),
            offset_of!(S, budget),
            offset_of!(S, sent),
            offset_of!(S, stream),
            offset_of!(S, eof),
            offset_of!(S, read_ready),
            offset_of!(S, read_closed),
            offset_of!(S, read_cut),
            offset_of!(S, idle_covers_scheduled),
        ];
        let delivery = offset_of!(S, delivery);
        assert!(per_event
            .iter()
            .all(|&at| at >= after_http && at < after_http + 128 && at < delivery));
        let seldom = [
            offset_of!(S, accepted),
            offset_of!(S, linger_limit),
            offset_of!(S, ack_check),
            offset_of!(S, revisit),
            offset_of!(S, discarded),
            offset_of!(S, sent_at_stall),
        ];
        assert!(seldom.iter().all(|&at| at > delivery));
    }

    /// A connection per request (`ab` without `-k`): each closed connection left its
    /// idle-timeout entry in the heap until it fired, so the heap (and RSS) grew with every
    /// connection opened within the idle timeout. Now it stays within twice the open ones.
    #[test]
    fn closed_connections_leave_no_timer_entries_behind() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let accounting = Guarded::embedded("server", Config::default());
        let limits = Limits::default().with_idle_timeout(Duration::from_secs(300));
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, &router, accounting, limits)
            .unwrap()
            .into_loop();
        let addr = server.local_addr;
        let done = Arc::new(AtomicBool::new(false));
        let finished = Finished(Arc::clone(&done), addr);
        let client = std::thread::spawn(move || {
            let _finished = finished;
            for _ in 0..1_000 {
                let mut stream = StdStream::connect(addr).unwrap();
                stream
                    .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                    .unwrap();
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).unwrap();
                assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"));
            }
        });
        let (mut events, mut buf) = (Events::with_capacity(64), vec![0; 64 * 1024]);
        while !done.load(Ordering::SeqCst) {
            assert!(!server.turn(&mut events, &mut buf).unwrap());
        }
        client.join().expect("every connection answered 200");
        let bound = 2 * server.sockets.len() + PRUNE_SLACK;
        assert!(
            server.timers.len() <= bound,
            "{} timer entries for {} open connections",
            server.timers.len(),
            server.sockets.len()
        );
    }

    /// One turn that sleeps at most 50 ms when nothing happens (a `STOP_TIMER` entry, which
    /// fires as nothing).
    fn bounded_turn<A: Accounting>(server: &mut EventLoop<'_, A>) {
        let (mut events, mut buf) = (Events::with_capacity(256), vec![0; 64 * 1024]);
        let wake = Instant::now() + Duration::from_millis(50);
        server.timers.schedule(wake, STOP_TIMER);
        assert!(!server.turn(&mut events, &mut buf).unwrap());
    }

    /// The choice the loop made by a scan of every connection before round 32.
    fn scanned_choice<A: Accounting>(
        server: &EventLoop<'_, A>,
        now: Instant,
    ) -> Option<(Instant, usize)> {
        server
            .sockets
            .iter()
            .filter(|(_, socket)| !socket.refused && socket.lingering.is_none())
            .filter_map(|(key, socket)| socket.http.evictable_since().map(|since| (since, key)))
            .min()
            .filter(|(since, _)| later(*since, EVICT_MIN_IDLE) <= now)
    }

    /// At the connection limit each newcomer scanned every connection twice (the lingering
    /// ones, then the evictable ones): 10,000 connections held made each newcomer read 20,000.
    /// `oldest.rs` keeps them in heaps: the choice is the scan's (checked against it below,
    /// with connections idle since their accept, others answered since, heads begun, clients
    /// gone), and the connections read per newcomer are a few (one scan per `EVICT_MIN_IDLE`
    /// at most, amortized over the newcomers it serves). On main: 2 x 300 per newcomer.
    #[test]
    fn at_the_limit_a_newcomer_does_not_read_every_connection() {
        const HELD: usize = 300;
        const NEWCOMERS: usize = 100;
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        demo_routes(&mut router);
        let accounting = Guarded::embedded("server", Config::default());
        let limits = Limits::default()
            .with_max_connections(HELD)
            .with_idle_timeout(Duration::from_secs(300));
        let addr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(addr, &router, accounting, limits)
            .unwrap()
            .into_loop();
        let mut clients: Vec<StdStream> = Vec::new();
        for i in 0..HELD {
            clients.push(StdStream::connect(server.local_addr).unwrap());
            if i % 32 == 31 {
                bounded_turn(&mut server); // the backlog is short: accept as they come
            }
        }
        for turn in 0.. {
            if server.sockets.len() >= HELD {
                break;
            }
            assert!(turn < 1_000, "accepted {} of {HELD}", server.sockets.len());
            bounded_turn(&mut server);
        }
        // Older than `EVICT_MIN_IDLE`: the condition is the time itself.
        std::thread::sleep(EVICT_MIN_IDLE + Duration::from_millis(20));
        // Some answered since (newer), some with a head begun, some gone.
        for client in &mut clients[..40] {
            client
                .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
        }
        for client in &mut clients[40..80] {
            client.write_all(b"GET / HTTP/1.1\r\nho").unwrap();
        }
        for client in clients.drain(80..90) {
            drop(client);
        }
        for turn in 0.. {
            let stats = &server.dispatcher.stats;
            if stats.served >= 40 && server.sockets.len() <= HELD - 10 {
                break;
            }
            assert!(turn < 1_000, "{stats:?}, {} open", server.sockets.len());
            bounded_turn(&mut server);
        }
        // Back to the limit, with connections newer than the rest.
        let mut newcomers = Vec::new();
        for turn in 0.. {
            if server.sockets.len() >= HELD {
                break;
            }
            assert!(turn < 1_000, "{} open", server.sockets.len());
            newcomers.push(StdStream::connect(server.local_addr).unwrap());
            bounded_turn(&mut server);
        }
        let examined = |server: &EventLoop<'_, _>| {
            server.oldest_idle.examined + server.oldest_lingering.examined
        };
        let mut by_newcomers = 0;
        for i in 0..NEWCOMERS {
            // The heaps' choice is the scan's, at each step.
            let now = Instant::now();
            assert_eq!(
                server.oldest_evictable(now),
                scanned_choice(&server, now),
                "{i}"
            );
            newcomers.push(StdStream::connect(server.local_addr).unwrap());
            let before = examined(&server);
            let evicted = server.dispatcher.stats.connections_evicted;
            for turn in 0.. {
                let stats = &server.dispatcher.stats;
                if stats.connections_evicted > evicted || stats.connections_refused > 0 {
                    break;
                }
                assert!(turn < 1_000, "newcomer {i}: {stats:?}");
                bounded_turn(&mut server);
            }
            by_newcomers += examined(&server) - before;
        }
        assert_eq!(server.dispatcher.stats.connections_refused, 0);
        assert_eq!(
            server.dispatcher.stats.connections_evicted,
            NEWCOMERS as u64
        );
        // At most one scan (the first newcomer's) and a few reads per newcomer; the scan read
        // 2 x HELD per newcomer.
        assert!(
            by_newcomers <= HELD + 8 * NEWCOMERS,
            "{by_newcomers} connections read for {NEWCOMERS} newcomers"
        );
        eprintln!("{by_newcomers} connections read for {NEWCOMERS} newcomers at {HELD} held");
    }
}
