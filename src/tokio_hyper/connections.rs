//! The server's open connections: counted, awaitable until none is left, force-closable, and
//! (with [`Options::record_activity`](super::Options::with_record_activity)) what each is doing,
//! for the stop's step records.
//!
//! # Invariants
//!
//! 1. A connection is in `open` from before its task is spawned until its task's future is
//!    dropped (it ended, or was aborted): the [`Registered`] guard inside the task removes it.
//! 2. `empty_waker` is woken whenever no connection but late ones is left in `open`
//!    (`late` counts those in `open` registered late).
//! 3. An [`Activity`] is in a handler only between its request's admission and the handler's
//!    answer (or the request's end without one).
//! 4. A connection accepted before the stop is [`Watched`] by the graceful shutdown: once
//!    [`Connections::shut_down_gracefully`] asked for it, the next poll of its task (which the
//!    request wakes) turns its keep-alive off, exactly once. One accepted during the stop is not
//!    watched: it answers once and closes by itself.
//! 5. `busy` counts the connection's admitted requests whose bundle is alive: one is never
//!    evicted while it has any (unless its route waits for a body arriving slower than
//!    [`MIN_BODY_RATE`]: the route then answers `408` + close), nor while its last write found
//!    the socket full. `evicting` counts the slots chosen for eviction whose task has not
//!    ended yet.
//! 6. `closing` holds the connection's one answer of the adapter's that closes it and is
//!    counted once written (a refusal, or the drain deadline's `503` to a health probe whose
//!    body is still coming), from its decision until hyper, having flushed it, shuts the
//!    socket's write side (then it is counted, once: [`Conn::closing_written`]); a connection
//!    lost before that never counts it.
//! 7. `owed` is the response body's being written (HTTP/1: one at a time per connection): set
//!    when hyper asks its `size_hint` before the head, lowered by each data frame it yields,
//!    judged at its end or when hyper lets it go.
//! 8. `whole <= served`: of the connection's answers counted `served`, `whole` are whole in
//!    hyper's output (their last frame given to it); hyper writes one answer at a time, so
//!    every answer before the one being written is.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use hyper_util::rt::TokioTimer;
use hyper_util::server::graceful::GracefulConnection;
use pin_project_lite::pin_project;
use slab::Slab;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;

use super::chunks::{ChunkWatch, Scan};
use super::linger::{Owed, Written};
use super::service::Probing;
use super::tally::Tally;
use crate::admit::{Outcome, Refusal};
use crate::signal::AbortSignal;

#[derive(Default)]
pub(crate) struct Connections {
    open: RefCell<Slab<Slot>>,
    /// Open connections accepted late: during a drain that keeps the listener open. They
    /// answer `503` and close by themselves, and do not hold the drain (as on the mio loops).
    late: Cell<usize>,
    /// Woken whenever no connection but late ones is left open.
    empty_waker: Cell<Option<Waker>>,
    /// Open connections chosen for eviction whose task has not ended yet.
    evicting: Cell<usize>,
}

/// A socket hyper closed, handed back to its connection's task: what was written to it, and
/// the rest of an answer of the server's own it still owes (`linger.rs`, [`Owed`]).
pub(crate) type Handoff = (TcpStream, Written, Option<Owed>);
/// How long a connection must have shown no sign of life to be evicted (as on the mio loops):
/// a client that just connected, or was just answered, is about to send.
const EVICTABLE_AFTER: Duration = Duration::from_millis(100);

/// One open connection: its task's abort handle (once spawned), and what its requests share.
struct Slot {
    late: bool,
    abort: Option<AbortHandle>,
    conn: Rc<Conn>,
    /// The connection's `ended` count when the eviction scan last saw it change (or at
    /// accept), and when: it has shown no sign of life since.
    seen: (u64, Instant),
    /// Chosen for eviction.
    evicted: bool,
    /// Its task aborted ([`Connections::abort_what_is_out`], [`Connections::abort_all`]):
    /// counted once, its task dropped at its next turn.
    aborted: bool,
}

/// What the requests of one connection share: the server's tally and, with
/// [`Options::record_activity`](super::Options::with_record_activity), the connection's activity.
/// (One `Rc` for both: a request's dispatch holds this one handle.)
pub(crate) struct Conn {
    pub(crate) tally: Rc<Tally>,
    pub(crate) activity: Option<Activity>,
    /// Where the graceful shutdown is with this connection.
    graceful: Cell<Graceful>,
    /// The connection task's waker, for the shutdown to wake it (an idle connection sleeps on
    /// its socket).
    waker: RefCell<Option<Waker>>,
    /// Its admitted requests whose bundle is alive (in the handler, or the body being written).
    busy: Cell<u32>,
    /// Its requests ended so far: the eviction scan's sign of life.
    ended: Cell<u64>,
    /// Its last write found the socket full: an answer is on its way.
    write_pending: Cell<bool>,
    /// Who ends its socket's reads (`LingeringIo`): hyper, or the server (chosen for
    /// eviction: its socket ends it at the next read, unless a request began on it since, its
    /// head on its way: it is served, then it closes; or the stop's look for a head in
    /// progress); or a head in progress given back to hyper. One check per read.
    reads: Cell<Reads>,
    /// Its `ended` count when its reads were taken from hyper (chosen for eviction, or the
    /// stop's keep-alive step: it had no request in progress then), to see a request begin
    /// since ([`Conn::reprieve_if_a_request_began`]).
    evicted_at: Cell<u64>,
    /// Evicted for its descriptor (the process is out of them): closed at once, no linger.
    close_at_once: Cell<bool>,
    /// hyper shut its socket's write side (`LingeringIo::poll_shutdown`): it ended the
    /// connection as at any close. hyper ends one on which a request asked for an upgrade
    /// without it (`server::Acceptor::spawn`, QA client32-1).
    shut_by_hyper: Cell<bool>,
    /// The socket, once hyper has closed it with input maybe still coming: the connection's
    /// task lingers on it (`linger.rs`), with what was written to it. Boxed: `Written` is 448
    /// bytes, used once at the connection's end, and inline it spread the fields every request
    /// reads over twelve cache lines instead of five (docs/benchmarks.md, 9i).
    handoff: Cell<Option<Box<Handoff>>>,
    /// Its answers counted `served` (see invariant 8): what a close that drops output
    /// undelivered takes back (`src/delivery.rs`).
    served: Cell<u64>,
    /// Of those, the ones whole in hyper's output.
    whole: Cell<u64>,
    /// A request body its route waits for: since when, and its bytes so far (noted by the
    /// route, [`Conn::body_awaited`]); at the limit one slower than [`MIN_BODY_RATE`] is evicted.
    body: Cell<Option<(Instant, u64)>>,
    /// Chosen for eviction while its body arrived too slowly: its route answers `408` + close.
    body_cut: Cell<bool>,
    /// An answer of the adapter's that closes it, not counted until hyper has written it
    /// (`refused`, `answered_at_end`).
    closing: Cell<Option<Closing>>,
    /// What the response body being written on it still owes the exact length hyper frames
    /// it by (its `size_hint` when hyper asked, before the head), less what it yielded (below
    /// 0: more than it said); from [`FRAMED_BELOW`] up, a length hyper does not know (chunked).
    /// Here rather than in the body: hyper writes one answer at a time on a connection, and a
    /// larger body is a larger copy each time the response moves.
    owed: Cell<i64>,
    /// A `content-length` of the handler's own framing a body of no exact length (a stream):
    /// what that body owes once hyper asks its `size_hint`, if asked for the same request
    /// (the connection's `ended` count when declared, then the length).
    declared: Cell<Option<(u64, u64)>>,
    /// The request being answered said HTTP/1.0 (set at each request: a client may change
    /// versions between requests): `service::http10_closing`. Here rather than in the
    /// request's future, whose every field hyper's dispatcher pays for as it polls it.
    http10: Cell<bool>,
    /// A health probe's body being read before its answer (`Dispatch::probe`): here, not in
    /// the dispatch's state, whose drop every request pays (a variant holding it cost 5
    /// instructions per request).
    probe: Cell<Option<Box<Probing>>>,
    /// `Options::max_head` less the bytes read from the socket since a read hyper made inside
    /// a request (a request out, or a body that may still be read: [`Conn::head_began`]; hyper
    /// reads the socket then only with its buffer empty: for the client's end, or the body),
    /// and less a head given back to hyper ([`LingeringIo::give_back`]), plus the data of a
    /// request body read to its end since it began ([`Conn::body_ended`]): below zero, hyper,
    /// asking for more while no request is out and no body may be read, holds a head in
    /// progress past `max_head`, which the mio loops refuse at once
    /// (`LingeringIo::head_past_limit`); while hyper reads a head, a read takes at most what is
    /// left (`LingeringIo::read_near_head_limit`). The count is of bytes read, not of hyper's buffer:
    /// never less than the head in progress, and more after requests read in one go with it
    /// and answered without admission (pipelined health probes); the buffer, taken back,
    /// tells those apart and goes back to hyper (`server::reads_ended`). Not reset when a
    /// request ends: bytes of the next head may be in hyper's buffer by then (review20).
    head_room: Cell<isize>,
    /// Whether the last request hyper parsed has a body (not known empty from its head):
    /// hyper may still read it, after the request ended too (a handler may read it after
    /// its answer). Its bytes are not a head: the count ([`Conn::head_room`]) does not end
    /// hyper's reads while this holds, else the rest of the body went to a new hyper
    /// connection as requests (review20). Until the next request is parsed, or hyper begins
    /// to read the next head ([`Conn::head_read`]).
    body_may_follow: Cell<bool>,
    /// hyper began to read a head since the last head with a body was parsed (its header read
    /// timer, [`HeadTimer`], sets it; a head parsed with a body clears it): the body before
    /// it is done, read to its end or dropped, whoever read it. Shared with that timer, which
    /// hyper requires to be `Send + Sync`.
    head_read: Arc<AtomicBool>,
    /// How often the count began again ([`Conn::head_began`]), for [`Conn::body_ended`].
    counts_begun: Cell<u64>,
    /// An answer of the adapter's own (a health probe's, a refusal: [`Conn::answered_unadmitted`])
    /// is not yet given to hyper: hyper, looking for the client's end meanwhile, reads with
    /// the request parsed, and an end of input there (the count's, `Reads::HeadTooLong`) lost
    /// the answer: the last of pipelined probes read past `max_head` went unanswered (review20).
    unadmitted_out: Cell<bool>,
    /// The signals of its requests whose bundle went to another connection, to be written
    /// there as another request's answer ([`Conn::lent_away`]), while those requests are out:
    /// their handler's future, dropped here, leaves them to that connection (QA embed22-2).
    /// And the signals of the bundles written here whose own request's handler future was
    /// dropped on their connection ([`Conn::take_lent`]): their own client gone (QA embed23-1),
    /// or their own server's force-close (QA embed24-2).
    /// Empty unless a handler answers with another request's bundle.
    lent: Cell<Vec<Lent>>,
    /// `Options::max_head`.
    max_head: isize,
    /// `Options::half_close`: a client's end of input read while a request of it is out is
    /// held back from hyper ([`Conn::holds_client_end`]).
    half_close: bool,
    /// The answers made from now on say `connection: close` ([`Conn::answers_close`]): the
    /// server is unready or stopping (its tally's [`is_closing`](Tally::is_closing), set on
    /// every open connection by [`Connections::answers_close`] and at the register of one
    /// accepted later), or, with [`Conn::half_close`], hyper read the client's end of input
    /// (its buffer empty: nothing of a request left to serve) while a request of it was out
    /// (RFC 9112 section 9.6: the server closes after them, as the mio loops' last answer
    /// does). One flag, so that an answer asks one question (callgrind section 9, round 33:
    /// the tally's flag and the half-close's apart were a load and compare more per answer).
    answers_close: Cell<bool>,
    /// The chunk sizes of the body a route reads, watched against its limit
    /// ([`Conn::watch_chunks`]); and whether one took it past ([`Conn::chunk_past_limit`]).
    chunks: Cell<Option<Box<ChunkWatch>>>,
    chunk_past: Cell<bool>,
}

/// A request's bundle moved between connections (see `Conn::lent`).
pub(crate) struct Lent {
    signal: AbortSignal,
    kind: Kind,
}

/// Which end of the move a [`Lent`] record is.
enum Kind {
    /// On the connection the bundle came from: the connection writing it.
    Away(Weak<Conn>),
    /// On the connection writing it; `orphan` once its own request's handler future was
    /// dropped on its connection: how it ends if cut short here (*client gone*, or *force
    /// closed* if its own server was force-closing: QA embed24-2).
    In { orphan: Option<Outcome> },
}

impl Lent {
    /// Whether its request is still out (an ended one is forgotten).
    fn is_out(&self) -> bool {
        self.signal.state().is_request_out()
    }
}

// What every request of a connection reads stays within five cache lines (752 bytes, twelve
// lines, with the hand-off inline: docs/benchmarks.md, 9i).
#[cfg(target_pointer_width = "64")]
static_assertions::const_assert!(std::mem::size_of::<Conn>() <= 320);

/// [`Conn::owed`] of a body whose length hyper does not know: counted down as it is paid, it
/// stays at least [`FRAMED_BELOW`] (no answer comes near 2^61 bytes).
const NOT_OWED: i64 = 1 << 62;

/// The exact lengths tracked are below this; what is owed from here up is no length.
const FRAMED_BELOW: i64 = 1 << 61;

/// Where a response body stands against the exact length it gave hyper ([`Conn::owing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owing {
    /// It yielded that length, so far.
    Nothing,
    /// It yielded less so far.
    More,
    /// It yielded more: hyper wrote the length and dropped the rest.
    Overpaid,
    /// hyper knows no length (chunked).
    Unframed,
}

/// An answer of the adapter's that closes its connection, counted once hyper has written it.
#[derive(Clone, Copy)]
enum Closing {
    /// A refusal (`503`, or `500` if the admission panicked): `refused`.
    Refused(Refusal),
    /// The drain deadline's `503` to a health probe: the last step's `answered`.
    AtEnd,
}

/// What is owed, judged.
#[inline]
fn owing(owed: i64) -> Owing {
    match owed {
        0 => Owing::Nothing,
        ..0 => Owing::Overpaid,
        FRAMED_BELOW.. => Owing::Unframed,
        _ => Owing::More,
    }
}

/// At the connection limit (or out of descriptors) a request body arriving slower than this,
/// in bytes per second on average from when its route began to wait for it, is evicted (its
/// route answers `408` + close), as on the mio loops (`Limits`' fixed `MIN_BODY_RATE`):
/// slow-body clients (`slowhttptest -B`) must not lock newcomers out until the body timeout.
const MIN_BODY_RATE: u64 = 1024;

/// ... counted only once the body has been awaited this long: it is not judged on its first bytes.
const SLOW_BODY_GRACE: Duration = Duration::from_secs(1);

/// Who ends a connection's socket reads ([`Conn::reads`]): hyper, as ever, but where the
/// server ends them to take hyper's read buffer back (`into_parts`): what a head in progress
/// holds is there, and only there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reads {
    /// hyper reads the socket.
    Hyper,
    /// Chosen for eviction: once nothing more has arrived, the read ends hyper's connection,
    /// and the connection's task answers the head in progress hyper held (`408`, or what mio
    /// answers a head past `max_head`; to a `HEAD` without a body), as the mio loops answer it.
    Evicted,
    /// The stop turns keep-alive off on a connection with no answer on its way: once nothing
    /// more has arrived, the read ends hyper's connection, and the connection's task closes an
    /// idle one (as hyper's graceful shutdown did) or gives a head in progress back to a new
    /// hyper connection with keep-alive off, as the mio loops keep such a head (its `503` once
    /// whole, as admission is closed, or `408` at the header timeout).
    Stop,
    /// A head in progress given back: hyper reads it first, then the socket.
    Replay,
    /// The drain deadline reaches a head in progress kept through the stop
    /// ([`Graceful::Held`]): as [`Reads::Stop`], and the connection's task answers it `503` +
    /// close, as the mio loops' close step answers it.
    Deadline,
    /// hyper asked for more with more than `Options::max_head` bytes read since it parsed a
    /// head or a request ended ([`Conn::head_room`]), no request out: the read ends hyper's connection at
    /// once, and the connection's task answers a head past the limit as the mio loops refuse
    /// it at once (`501`, `414` or `431` + close), or gives hyper's buffer back to a new hyper
    /// connection when what it holds is within the limit (the count held more than the head).
    HeadTooLong,
    /// hyper reads the socket as usual, and the chunk sizes of the body its route reads are
    /// watched as it reads them ([`Conn::watch_chunks`]).
    Chunked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Graceful {
    /// Accepted during the stop: it answers once and closes by itself.
    Unwatched,
    /// Serving; the shutdown will reach it.
    Watched,
    /// A head in progress the stop found (its keep-alive off): the drain deadline reaches it
    /// ([`Connections::answer_held_heads`]).
    Held,
    /// The shutdown asked: its next poll turns keep-alive off.
    Asked,
    /// The stop's shutdown asked: keep-alive goes off once no answer is on its way (no request
    /// admitted out, nothing waiting for the socket). hyper's shutdown turns it off at once,
    /// and an answer whose head went out before the stop, without `connection: close`, was
    /// then the last: the requests pipelined behind it met the end of input, unanswered. Once
    /// it has gone, hyper reads the next request, refused `503` + close (admission is closed),
    /// as on the mio server; an answer made after the stop says `close` itself.
    Draining,
    /// Keep-alive is off.
    Done,
}

pin_project! {
    /// A connection's hyper future, watched by the stop's graceful shutdown (what hyper-util's
    /// `GracefulShutdown::watch` does, for a flag check per poll instead of polling a
    /// `watch` channel's `Notified` on every poll: about 230 instructions per request).
    pub(crate) struct Watched<F> {
        #[pin]
        connection: F,
        conn: Rc<Conn>,
    }
}

/// hyper's timer for a connection (tokio's, as `TokioTimer`), which also tells the connection
/// when hyper begins to read a request head: hyper starts its header read timer then, and only
/// then (`sleep_until` at the head's first read, `reset` for a timer kept), and it reads a
/// head only once the request before it is done, its body read to its end or dropped. So no
/// body follows from there ([`Conn::head_read`]), whoever read it: an embedder's own handler
/// reading hyper's `Incoming` too, where the adapter does not see the body's end. Before, a
/// head past `max_head` after such a body waited for hyper's header timeout, and with the
/// client's FIN right after it was closed unanswered (mio answers `431` at once; QA
/// client22-1). One store per request, where hyper's head read begins.
pub(crate) struct HeadTimer(Arc<AtomicBool>);

impl HeadTimer {
    /// The timer of `conn`'s hyper connections.
    pub(crate) fn of(conn: &Conn) -> Self {
        HeadTimer(Arc::clone(&conn.head_read))
    }
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        TokioTimer::new().sleep(duration)
    }

    /// `TokioTimer`'s, written out (calling `TokioTimer`'s methods from here cost 11 instructions
    /// per request: docs/benchmarks.md, section 9).
    #[inline]
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        self.0.store(true, Relaxed);
        Box::pin(HeadSleep {
            inner: tokio::time::sleep_until(deadline.into()),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        self.0.store(true, Relaxed);
        match sleep.as_mut().downcast_mut_pin::<HeadSleep>() {
            Some(sleep) => sleep.project().inner.reset(new_deadline.into()),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }

    /// tokio's clock, as `TokioTimer` reads it (its deadlines are tokio's).
    #[inline]
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

pin_project! {
    /// [`HeadTimer`]'s sleep: tokio's.
    struct HeadSleep {
        #[pin]
        inner: tokio::time::Sleep,
    }
}

impl Future for HeadSleep {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().inner.poll(cx)
    }
}

impl Sleep for HeadSleep {}

impl Conn {
    /// Keeps a health probe whose body is being read (`Dispatch::probe`).
    #[cold]
    pub(crate) fn hold_probe(&self, probe: Box<Probing>) {
        self.probe.set(Some(probe));
    }

    /// A health probe whose body is still coming waits for the drain deadline too: its task
    /// is woken there ([`Connections::answer_held_heads`]), whatever the stop did to hyper's
    /// connection (a task past hyper's graceful shutdown keeps no waker of its own).
    #[cold]
    pub(crate) fn wake_at_deadline(&self, cx: &Context<'_>) {
        *self.waker.borrow_mut() = Some(cx.waker().clone());
    }

    /// The health probe whose body is being read, taken to be polled.
    #[cold]
    pub(crate) fn take_probe(&self) -> Option<Box<Probing>> {
        self.probe.take()
    }

    /// The bundle of a request of this connection, with `signal`, moved to `to` to be written
    /// there as the answer of a request of its own ([`Bundle::move_to`](super::Bundle)): while
    /// it is out, its end is that connection's, which notes it too.
    #[cold]
    #[inline(never)]
    pub(crate) fn lent_away(&self, signal: &AbortSignal, to: &Rc<Conn>) {
        self.note(Lent {
            signal: signal.clone(),
            kind: Kind::Away(Rc::downgrade(to)),
        });
        to.note(Lent {
            signal: signal.clone(),
            kind: Kind::In { orphan: None },
        });
    }

    /// Adds `record` to [`Conn::lent`], forgetting those of requests that have ended.
    fn note(&self, record: Lent) {
        let mut lent = self.lent.take();
        lent.retain(Lent::is_out);
        lent.push(record);
        self.lent.set(lent);
    }

    /// Whether the request with `signal` is out with its bundle moved to another connection
    /// ([`Conn::lent_away`]); forgets it (its handler's future is being dropped: its client
    /// gone, or a force-close), and tells the connection writing it, where it is an orphan now
    /// (its own client gone: [`Conn::take_lent_in`]).
    #[cold]
    #[inline(never)]
    pub(crate) fn take_lent(&self, signal: &AbortSignal) -> bool {
        let mut lent = self.lent.take();
        let mut to = None;
        if signal.state().is_request_out() {
            for record in &lent {
                if let (Kind::Away(away), true) = (&record.kind, record.signal.same_as(signal)) {
                    to = Some(away.clone());
                }
            }
        }
        lent.retain(|record| {
            record.is_out()
                && !(matches!(record.kind, Kind::Away(_)) && record.signal.same_as(signal))
        });
        self.lent.set(lent);
        let Some(to) = to else {
            return false;
        };
        // Its own connection closed by its server's force-close, not by its client: cut short
        // on another server's connection (not force-closing), it ends *force closed* all the
        // same (QA embed24-2).
        let orphaned = if self.tally.is_force_closing() {
            Outcome::ForceClosed
        } else {
            Outcome::ClientGone
        };
        if let Some(to) = to.upgrade() {
            let mut lent = to.lent.take();
            for record in &mut lent {
                if record.signal.same_as(signal) {
                    if let Kind::In { orphan } = &mut record.kind {
                        *orphan = Some(orphaned);
                    }
                }
            }
            to.lent.set(lent);
        }
        true
    }

    /// Whether the bundle with `signal`, written here, is another connection's request's
    /// ([`Conn::lent_away`]): `None` if not, else the outcome its own request's handler
    /// future, dropped on its connection, left it (its client gone, or its server's
    /// force-close: [`Conn::take_lent`]), if it was. Forgets it: the bundle ends now
    /// ([`Bundle::cut_short`](super::Bundle)).
    #[cold]
    #[inline(never)]
    pub(crate) fn take_lent_in(&self, signal: &AbortSignal) -> Option<Option<Outcome>> {
        let mut lent = self.lent.take();
        let mut found = None;
        lent.retain(|record| match record.kind {
            Kind::In { orphan } if record.signal.same_as(signal) => {
                found = Some(orphan);
                false
            }
            _ => record.is_out(),
        });
        self.lent.set(lent);
        found
    }

    /// A request was admitted on the connection (its bundle is made).
    #[inline]
    pub(crate) fn request_began(&self) {
        self.busy.set(self.busy.get() + 1);
    }

    /// An admitted request ended (its bundle is gone): a sign of life.
    #[inline]
    pub(crate) fn request_ended(&self) {
        self.busy.set(self.busy.get() - 1);
        self.ended.set(self.ended.get() + 1);
    }

    /// hyper reads inside a request (a request out, or a body that may still be read), or
    /// a head is given back to it: hyper's buffer is empty (or is that head), and what hyper
    /// reads from here on is counted against `max_head` ([`Conn::head_room`]).
    #[inline]
    pub(crate) fn head_began(&self) {
        self.head_room.set(self.max_head);
        self.counts_begun
            .set(self.counts_begun.get().wrapping_add(1));
    }

    /// hyper parsed a request head; `body` if its request has a body not known empty from the
    /// head ([`Conn::body_may_follow`]; hyper has not begun the next head, [`Conn::head_read`],
    /// cleared for a body only: nothing more per request without one).
    #[inline]
    pub(crate) fn head_parsed(&self, body: bool) {
        self.body_may_follow.set(body);
        if body {
            self.head_read.store(false, Relaxed);
        }
    }

    /// The body of the last request hyper parsed was read to its end (its route saw hyper's
    /// `Incoming` end: hyper's decoder has taken the last of it, and reads the socket for a
    /// head from here on): no body follows ([`Conn::body_may_follow`]), so a head past
    /// `max_head` after a request with a body is refused at once, as after any other. Before,
    /// it waited for hyper's header timeout (QA client21-2). The body's `len` bytes of data
    /// were counted as they were read; if the count has not begun again since its route began
    /// to read it (`since`, [`Conn::count_began`]), they go back to it, so that what it holds
    /// is the head in progress and what was read before it since the count began, never less
    /// (a body's chunked framing, not given back, is counted too: at worst hyper's buffer is
    /// judged and given back, `server::reads_ended`). Else the bytes since that reset stay
    /// counted, the body's among them: more than the head, never less.
    #[cold]
    pub(crate) fn body_ended(&self, len: u64, since: u64) {
        self.body_may_follow.set(false);
        if since == self.counts_begun.get() {
            let credited = self.head_room.get().saturating_add_unsigned(len as usize);
            self.head_room.set(credited.min(self.max_head));
        }
    }

    /// How often the count against `max_head` began again ([`Conn::head_began`]): a route
    /// notes it when it begins to read a body, for [`Conn::body_ended`].
    #[inline]
    pub(crate) fn count_began(&self) -> u64 {
        self.counts_begun.get()
    }

    /// `bytes` were read from the socket for hyper.
    #[inline]
    pub(crate) fn read_for_hyper(&self, bytes: usize) {
        self.head_room
            .set(self.head_room.get().wrapping_sub_unsigned(bytes));
    }

    /// What is left of `max_head` after the bytes read since the count began
    /// ([`Conn::head_room`]; below zero, past it).
    #[inline]
    pub(crate) fn head_room(&self) -> isize {
        self.head_room.get()
    }

    /// Whether a read of up to `room` bytes could take the count past `max_head`
    /// ([`Conn::head_room`]): `LingeringIo::read_near_head_limit`.
    #[inline]
    pub(crate) fn head_room_under(&self, room: usize) -> bool {
        self.head_room.get() < room as isize
    }

    /// Whether more than `max_head` bytes were read since the count began ([`Conn::head_room`]).
    #[inline]
    pub(crate) fn head_overdrawn(&self) -> bool {
        self.head_room.get() < 0
    }

    /// Whether hyper keeps the connection alive after an answer: the stop has not turned
    /// keep-alive off (nor was it accepted during the stop, or its head held through it).
    #[cold]
    pub(crate) fn keeps_alive(&self) -> bool {
        matches!(self.graceful.get(), Graceful::Watched | Graceful::Asked)
    }

    /// Whether the stop's keep-alive step has reached it: keep-alive goes off once no answer
    /// is on its way, or went off then (or a head in progress is kept through the stop).
    #[cold]
    pub(crate) fn stop_reached(&self) -> bool {
        match self.graceful.get() {
            Graceful::Draining | Graceful::Held => true,
            Graceful::Done => self.tally.is_stopping(),
            Graceful::Unwatched | Graceful::Watched | Graceful::Asked => false,
        }
    }

    /// When its last request was answered (or arrived, if still unanswered), from the
    /// activity record (`Options::record_activity`); `None` without one.
    fn last_answer(&self) -> Option<Instant> {
        self.activity.as_ref().map(|activity| activity.since.get())
    }

    /// A request answered without admission (a health probe, a refusal): a sign of life, and
    /// an answer (evicted, the connection just closes: no `408` after it).
    pub(crate) fn answered_unadmitted(&self) {
        self.ended.set(self.ended.get() + 1);
        self.unadmitted_out.set(true);
    }

    /// The answer of [`Conn::answered_unadmitted`] goes to hyper (or its hyper connection
    /// ended: `LingeringIo::give_back`).
    #[inline]
    pub(crate) fn unadmitted_given(&self) {
        self.unadmitted_out.set(false);
    }

    /// Whether hyper is inside a request, where its reads of the socket are not of a head:
    /// a request admitted out, an answer of the adapter's own not yet given to hyper, or a
    /// body hyper may still read ([`Conn::body_may_follow`]). hyper then reads only with its
    /// buffer empty (for the client's end, or the body).
    #[inline]
    pub(crate) fn inside_a_request(&self) -> bool {
        self.is_busy()
            || self.unadmitted_out.get()
            || (self.body_may_follow.get() && !self.head_read.load(Relaxed))
    }

    /// A write to the socket returned; `pending` if it found the socket full.
    #[inline]
    pub(crate) fn wrote(&self, pending: bool) {
        self.write_pending.set(pending);
    }

    /// A request on it was refused (`503`, or `500` if the admission panicked). Its answer
    /// closes the connection: it is counted (`refused`) when hyper, having flushed it, shuts
    /// the socket's write side ([`Conn::closing_written`]), so a refusal the connection loses
    /// first (the force-close of a second signal aborting its task, the client gone) is not
    /// counted: every refusal counted is one whose `503` reached the socket. (Counted when
    /// decided, 1 or 2 per forced run of the SIGTERM battery were counted and never sent.) One
    /// that keeps the connection (none the adapter makes) is counted at once. Whether it
    /// closes is the answer's own rule (`service::refusal_closes`), not the core's
    /// `Refusal::closes_connection`, which keeps the connection for the `500` of a panicking
    /// admission that the adapter's answer closes (QA embed28-1: counted though lost).
    #[cold]
    pub(crate) fn refused(&self, refusal: Refusal) {
        if super::service::refusal_closes(refusal) {
            self.closing.set(Some(Closing::Refused(refusal)));
        } else {
            self.tally.count_refusal(refusal);
        }
    }

    /// hyper has written all it had for the socket and shuts its write side: a refusal
    /// answered on it went out (see [`Conn::refused`]).
    /// Notes the version of the request hyper hands the service (`call`).
    #[inline]
    pub(crate) fn set_http10(&self, http10: bool) {
        self.http10.set(http10);
    }

    /// Whether the request being answered said HTTP/1.0.
    #[inline]
    pub(crate) fn is_http10(&self) -> bool {
        self.http10.get()
    }

    pub(crate) fn closing_written(&self) {
        match self.closing.take() {
            Some(Closing::Refused(refusal)) => self.tally.count_refusal(refusal),
            Some(Closing::AtEnd) => self.tally.answered_at_end(),
            None => {}
        }
    }

    /// The drain deadline's `503` + close answers a health probe whose body is still coming
    /// (`service::Probing`): counted in the last step's `answered` once hyper has written it
    /// ([`Conn::closing_written`]), as a refusal is. Before, it was counted when made: one
    /// the socket never took (a client not reading its earlier answers, closed at the force
    /// step) counted as answered (QA client26-2).
    #[cold]
    pub(crate) fn answered_at_end(&self) {
        self.closing.set(Some(Closing::AtEnd));
    }

    /// hyper asked the response body being written for its length: `exact` is what hyper
    /// frames it by, and what the body owes. An exact length past what is tracked (from
    /// 2^61: no body yields that much, so it is a lie) owes the most that is: hyper frames
    /// the answer by it all the same, and the body's end short of it is judged (it was taken
    /// for no length, and the lie ended *completed*).
    /// A body of no exact length owes the `content-length` its handler set (hyper frames the
    /// answer by that field), if one was declared for this request ([`Conn::declare`]).
    #[inline]
    pub(crate) fn owe(&self, exact: Option<u64>) {
        let owed = match exact {
            Some(n) => n,
            None => match self.declared.take() {
                Some((at, n)) if at == self.ended.get() => n,
                _ => {
                    self.owed.set(NOT_OWED);
                    return;
                }
            },
        };
        self.owed.set(owed.min(FRAMED_BELOW as u64 - 1) as i64);
    }

    /// The handler set `content-length: len` on an answer whose body gives no exact length (a
    /// stream): hyper frames the answer by it, and the body owes it once hyper asks its
    /// `size_hint` for this request.
    #[cold]
    pub(crate) fn declare(&self, len: u64) {
        self.declared.set(Some((self.ended.get(), len)));
    }

    /// The response body yielded `len` bytes, more to come: where it stands then.
    #[inline]
    pub(crate) fn pay(&self, len: usize) -> Owing {
        let owed = self.owed.get().wrapping_sub(len as i64);
        self.owed.set(owed);
        owing(owed)
    }

    /// The response body yielded its last `len` bytes (`0`: its end): where it stands against
    /// the length it gave.
    #[inline]
    pub(crate) fn settle(&self, len: usize) -> Owing {
        owing(self.owed.get().wrapping_sub(len as i64))
    }

    /// Where the response body being written stands so far against the length it gave.
    #[inline]
    pub(crate) fn owing(&self) -> Owing {
        owing(self.owed.get())
    }

    /// Hands the socket hyper closed back to the connection's task.
    pub(crate) fn hand_off(&self, stream: TcpStream, written: Written, owed: Option<Owed>) {
        self.handoff.set(Some(Box::new((stream, written, owed))));
    }

    /// The socket hyper closed, if it did with input maybe still coming and it may linger
    /// (not if evicted for its descriptor: it closes at once).
    pub(crate) fn take_handoff(&self) -> Option<Handoff> {
        let handoff = self.handoff.take();
        if self.close_at_once.get() {
            return None;
        }
        handoff.map(|handoff| *handoff)
    }

    /// An answer on it was counted `served`.
    #[inline]
    pub(crate) fn served_one(&self) {
        self.served.set(self.served.get() + 1);
    }

    /// Every answer counted `served` on it so far is whole in hyper's output: its last frame
    /// was given to hyper, or hyper reads the next request.
    #[inline]
    pub(crate) fn all_whole(&self) {
        self.whole.set(self.served.get());
    }

    /// Its answers counted `served` whole in hyper's output (invariant 8).
    #[inline]
    pub(crate) fn whole(&self) -> u64 {
        self.whole.get()
    }

    /// Its socket, `stream`, is closed before its answers are delivered (the slow-reader cut, a
    /// failed socket, a linger that ran out with bytes unsent, a force-close): its answers
    /// counted `served` and whole in hyper's output (their request ended *completed*) whose
    /// bytes do not all reach the client (those hyper still held; at a reset, those the
    /// client's TCP had not acknowledged) are taken back out of `served` and counted
    /// `undelivered`, as the mio loops count them (`src/delivery.rs`: conservative). One cut
    /// short in its body keeps its counts (`served` at its head, its outcome *client gone*,
    /// *force closed* or *dropped*). One look-up of the socket's queues (`src/unsent.rs`), for
    /// a connection that answered anything.
    #[cold]
    #[inline(never)]
    pub(crate) fn count_undelivered(&self, stream: &TcpStream, written: &Written) {
        let whole = self.whole.get();
        if whole == 0 {
            return;
        }
        let deliverable = crate::unsent::deliverable(stream, written.bytes);
        let lost = written.delivery.lost(whole, deliverable);
        // Taken back once: the socket is closed.
        self.served.set(self.served.get() - lost);
        self.whole.set(whole - lost);
        self.tally.take_back(lost);
    }

    /// Whether an answer is on its way: a request admitted out (in its handler, or its body
    /// being written), or written bytes waiting for the socket. With neither, hyper has
    /// flushed its last answer and is past it (reading the next request, or idle).
    fn answer_on_its_way(&self) -> bool {
        self.busy.get() != 0 || self.write_pending.get()
    }

    /// Bytes of a head have been read since the count against `max_head` began
    /// ([`Conn::head_room`]), with no request ended on it: a head in progress on a connection
    /// that has answered nothing yet.
    fn head_begun(&self) -> bool {
        self.ended.get() == 0 && self.head_room.get() != self.max_head
    }

    /// hyper read the client's end of input: with [`Conn::half_close`] and a request of it
    /// out, the end is noted ([`Conn::answers_close`]) and held back from hyper (true): hyper
    /// reads the socket inside a request only with its buffer empty (its
    /// `mid_message_detect_eof`, run with its own `half_close` off; or the body the handler
    /// asks for), so no request it holds is lost, and the request out is answered, with
    /// `connection: close`, as on the mio loops. False: hyper is told, as without the knob.
    #[cold]
    pub(crate) fn holds_client_end(&self) -> bool {
        if self.half_close && self.is_busy() {
            self.answers_close.set(true);
            return true;
        }
        false
    }

    /// Whether the answers made from now on close the connection: the server is unready or
    /// stopping (keep-alive is off), or the client's end of input was held back from hyper
    /// ([`Conn::holds_client_end`]).
    #[inline]
    pub(crate) fn answers_close(&self) -> bool {
        self.answers_close.get()
    }

    /// A route begins to read a chunked body whose first byte hyper has not read yet (its
    /// client waits for `100 Continue`: `demo`'s routes): its chunk sizes are watched as hyper
    /// reads them ([`Reads::Chunked`], `LingeringIo`), and one that takes the body past
    /// `max_body` is told at once ([`Conn::chunk_past_limit`]), as the mio server answers `413`
    /// at the size line; hyper hands the route data only, and it waited for the chunk's data.
    /// Not if the server ends hyper's reads otherwise.
    #[cold]
    pub(crate) fn watch_chunks(&self, max_body: u64) {
        if self.reads.get() == Reads::Hyper {
            self.chunks.set(Some(Box::new(ChunkWatch::new(max_body))));
            self.chunk_past.set(false);
            self.reads.set(Reads::Chunked);
        }
    }

    /// hyper read `bytes` while the chunk sizes are watched ([`Conn::watch_chunks`]).
    #[cold]
    pub(crate) fn scan_chunks(&self, bytes: &[u8]) {
        let Some(mut watch) = self.chunks.take() else {
            return self.unwatch_chunks();
        };
        match watch.scan(bytes) {
            Scan::Within => self.chunks.set(Some(watch)),
            Scan::PastLimit => {
                self.unwatch_chunks();
                self.chunk_past.set(true);
            }
            Scan::Ended => self.unwatch_chunks(),
        }
    }

    /// Whether a chunk size took the body watched past its limit (told once).
    #[cold]
    pub(crate) fn chunk_past_limit(&self) -> bool {
        self.chunk_past.take()
    }

    /// The route is done with the body ([`Conn::watch_chunks`]): its chunks are not watched.
    #[cold]
    pub(crate) fn unwatch_chunks(&self) {
        self.chunks.set(None);
        self.chunk_past.set(false);
        if self.reads.get() == Reads::Chunked {
            self.reads.set(Reads::Hyper);
        }
    }

    /// Whether a request of it is out (admitted, its bundle alive).
    #[inline]
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.get() != 0
    }

    /// Whether hyper reads its socket as usual (not evicted, stopping, or replaying a head).
    #[inline]
    /// hyper shut the socket's write side.
    #[cold]
    pub(crate) fn shut_by_hyper(&self) {
        self.shut_by_hyper.set(true);
    }

    /// Whether hyper shut the socket's write side.
    pub(crate) fn was_shut_by_hyper(&self) -> bool {
        self.shut_by_hyper.get()
    }

    pub(crate) fn reads_as_usual(&self) -> bool {
        self.reads.get() == Reads::Hyper
    }

    /// Who ends its socket's reads.
    #[inline]
    pub(crate) fn reads(&self) -> Reads {
        self.reads.get()
    }

    /// Its socket's reads go back to hyper, or replay a head in progress first.
    #[cold]
    pub(crate) fn set_reads(&self, reads: Reads) {
        self.reads.set(reads);
    }

    /// A head in progress the stop found is kept: the drain deadline answers it if it is
    /// still in progress then ([`Connections::answer_held_heads`]).
    #[cold]
    pub(crate) fn hold_head(&self) {
        self.graceful.set(Graceful::Held);
    }

    /// Its request's route waits for the body (noted from `now` on the first wait). Returns
    /// whether the eviction chose the connection for a body arriving too slowly: the route
    /// then answers as at its body timeout (`408` + close for `/echo`).
    #[cold]
    pub(crate) fn body_awaited(&self, now: Instant) -> bool {
        if self.body.get().is_none() {
            self.body.set(Some((now, 0)));
        }
        self.body_cut.get()
    }

    /// `bytes` more of the body its route waits for arrived (counted once the wait began).
    #[inline]
    pub(crate) fn body_arrived(&self, bytes: usize) {
        if let Some((since, received)) = self.body.get() {
            self.body
                .set(Some((since, received.saturating_add(bytes as u64))));
        }
    }

    /// The body its route waited for is all read (or its answer given without it). Returns
    /// whether the eviction chose the connection meanwhile: its answer then closes it (it no
    /// longer counts towards the limit, and a later request must not find it chosen).
    #[cold]
    pub(crate) fn body_read(&self) -> bool {
        self.body.set(None);
        self.body_cut.get()
    }

    /// When the body awaited falls below [`MIN_BODY_RATE`]: when its wait began plus the time
    /// its bytes so far earn at that rate (at least [`SLOW_BODY_GRACE`]), as on the mio loops.
    fn slow_body_since(&self) -> Option<Instant> {
        let (since, received) = self.body.get()?;
        let earned = Duration::from_millis(received.saturating_mul(1000) / MIN_BODY_RATE);
        since.checked_add(earned.max(SLOW_BODY_GRACE))
    }

    /// Whether its last write found the socket full (an answer waits for the socket).
    pub(crate) fn write_is_pending(&self) -> bool {
        self.write_pending.get()
    }

    /// Chosen for eviction (or reached by the stop's keep-alive step, [`Reads::Stop`]), whether
    /// a request began on it since: its head had arrived by the time its task read the socket.
    /// If so the eviction (the end of hyper's reads) is called off for this request, which is
    /// answered with keep-alive off (the connection then closes; it no longer counts towards
    /// the limit; at the stop, admission is closed: `503` + close). Else hyper, having begun
    /// it, looks for the client's end (`mid_message_detect_eof`), would read the end of input
    /// and drop the connection before writing the answer (review19). Returns whether it was.
    #[cold]
    pub(crate) fn reprieve_if_a_request_began(&self) -> bool {
        if self.ended.get() + u64::from(self.busy.get()) == self.evicted_at.get() {
            return false;
        }
        self.reads.set(Reads::Hyper);
        if self.graceful.get() == Graceful::Watched {
            self.graceful.set(Graceful::Asked);
        }
        true
    }
}

impl<F> Watched<F> {
    pub(crate) fn new(connection: F, conn: Rc<Conn>) -> Self {
        Watched { connection, conn }
    }

    /// The connection's hyper future, once it has ended.
    pub(crate) fn into_connection(self) -> F {
        self.connection
    }
}

impl<F: GracefulConnection> Future for Watched<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Some(activity) = &this.conn.activity {
            activity.new_turn();
        }
        // One compare for the three states of a connection the shutdown has not reached (the
        // `match` of all six was a jump table on every poll).
        if !matches!(
            this.conn.graceful.get(),
            Graceful::Unwatched | Graceful::Watched | Graceful::Held
        ) {
            return shutting_down(this.connection, this.conn, cx);
        }
        // Woken by the stop's steps (`Unwatched` and `Held` only by the close step and the
        // drain deadline: `Connections::answer_held_heads`, `answer_silent_at_close`). The
        // connection's future is polled by its own task alone (`Acceptor::spawn`), whose
        // wakers all carry the task as their data: a waker kept with the same data wakes this
        // task, whatever its functions' addresses (`same_waker` compares those too, four
        // loads and compares more per poll, callgrind section 9, round 33).
        let mut waker = this.conn.waker.borrow_mut();
        if waker.as_ref().is_none_or(|w| w.data() != cx.waker().data()) {
            *waker = Some(cx.waker().clone());
        }
        drop(waker);
        this.connection.poll(cx)
    }
}

/// A poll of a connection the shutdown has reached: [`Graceful::Asked`] turns keep-alive off
/// (hyper's graceful shutdown) and polls, [`Graceful::Draining`] polls as [`drain`] says,
/// [`Graceful::Done`] just polls.
#[cold]
#[inline(never)]
fn shutting_down<F: GracefulConnection>(
    mut connection: Pin<&mut F>,
    conn: &Conn,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    match conn.graceful.get() {
        Graceful::Asked => {
            conn.graceful.set(Graceful::Done);
            conn.waker.take();
            connection.as_mut().graceful_shutdown();
        }
        Graceful::Draining => return drain(connection, conn, cx),
        Graceful::Unwatched | Graceful::Watched | Graceful::Held | Graceful::Done => {}
    }
    connection.poll(cx)
}

/// A poll of a connection the stop is shutting down ([`Graceful::Draining`]): keep-alive goes
/// off (hyper's graceful shutdown) once no answer is on its way, before or after hyper's turn
/// (an answer ends within it: hyper then reads the next request, or waits idle).
#[cold]
#[inline(never)]
fn drain<F: GracefulConnection>(
    mut connection: Pin<&mut F>,
    conn: &Conn,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    if !conn.answer_on_its_way() {
        conn.stop_reads();
        return connection.poll(cx);
    }
    let polled = connection.as_mut().poll(cx);
    if polled.is_ready() || conn.answer_on_its_way() {
        return polled;
    }
    conn.stop_reads();
    connection.poll(cx)
}

impl Conn {
    /// Wakes its task, if it waits (the waker is taken: the task's next poll sets it again).
    fn wake_task(&self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// The stop reaches a connection with no answer on its way: its keep-alive goes off.
    /// hyper's graceful shutdown closed it at once if hyper was between requests, a head in
    /// progress in its buffer too (unanswered, where the mio loops keep it until its request
    /// timeout, `408`, or the drain deadline, `503`: QA client19-3). So its reads end instead
    /// ([`Reads::Stop`]): once nothing more has arrived, the connection's task takes hyper's
    /// buffer back, closes an idle connection and gives a head in progress to a connection of
    /// its own with keep-alive off (`server::reads_ended`). A head that arrives whole meanwhile
    /// is hyper's as before (refused `503` + close: admission is closed).
    #[cold]
    fn stop_reads(&self) {
        self.graceful.set(Graceful::Done);
        if self.reads.get() == Reads::Hyper {
            // A request that begins from what has arrived meanwhile is answered, as after an
            // eviction (`reprieve_if_a_request_began`).
            self.evicted_at
                .set(self.ended.get() + u64::from(self.busy.get()));
            self.reads.set(Reads::Stop);
        }
    }
}

/// What a connection is doing, as the mio loops know it of theirs: since when (its last
/// request's admission, or its last answer), and the route of the request in its handler.
///
/// The clock is read once per poll of the connection's task, as a mio loop reads it once per
/// turn: a request answered in the poll that read it (most are) costs one clock read, not two.
/// The times are those of the poll's start, late by what the poll did before (the handler's
/// synchronous work), as the mio loops' are by their turn's.
#[derive(Debug)]
pub(crate) struct Activity {
    since: Cell<Instant>,
    /// The time read in this poll of the connection's task, if read yet.
    turn: Cell<Option<Instant>>,
    /// `METHOD /path` of the connection's last request (the buffer is kept: no allocation per
    /// request once it has grown to the connection's longest route).
    route: RefCell<String>,
    /// Whether that request is in its handler.
    in_handler: Cell<bool>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            since: Cell::new(Instant::now()),
            turn: Cell::new(None),
            route: RefCell::new(String::new()),
            in_handler: Cell::new(false),
        }
    }

    /// A poll of the connection's task begins: the clock is read again when next needed.
    #[inline]
    pub(crate) fn new_turn(&self) {
        self.turn.set(None);
    }

    /// The time of this poll of the connection's task (read at its first use).
    #[inline]
    fn clock(&self) -> Instant {
        match self.turn.get() {
            Some(now) => now,
            None => {
                let now = Instant::now();
                self.turn.set(Some(now));
                now
            }
        }
    }

    /// A request arrived: since when, and its route should it be admitted. Inlined: a call
    /// taking pointers into the request costs a copy of the request when it moves on.
    #[inline(always)]
    pub(crate) fn note(&self, method: &hyper::Method, path: &str) {
        self.since.set(self.clock());
        let mut route = self.route.borrow_mut();
        route.clear();
        route.push_str(method.as_str());
        route.push(' ');
        route.push_str(path);
    }

    /// The request noted last was admitted and handed to the handler.
    #[inline]
    pub(crate) fn begin(&self) {
        self.in_handler.set(true);
    }

    /// The handler answered (or its request ended without an answer).
    pub(crate) fn end(&self) {
        self.since.set(self.clock());
        self.in_handler.set(false);
    }

    /// The route in the handler, if any, and how long since the connection's last event.
    #[cfg(feature = "server")]
    pub(crate) fn now(&self, now: Instant) -> (Option<String>, Duration) {
        let route = self.in_handler.get().then(|| self.route.borrow().clone());
        (route, now.saturating_duration_since(self.since.get()))
    }
}

/// Held by a connection's task: dropping it (task ended or aborted) unregisters the connection.
pub(crate) struct Registered {
    connections: Rc<Connections>,
    key: usize,
}

impl Connections {
    pub(crate) fn len(&self) -> usize {
        self.open.borrow().len()
    }

    /// Open connections chosen for eviction whose task has not ended yet.
    pub(crate) fn evicting(&self) -> usize {
        self.evicting.get()
    }

    /// Open connections not chosen for eviction: what the connection limit counts.
    pub(crate) fn staying(&self) -> usize {
        self.len() - self.evicting.get()
    }

    /// At the connection limit: chooses the connection that has shown no sign of life the
    /// longest (at least [`EVICTABLE_AFTER`]) among those idle or reading a head (no request
    /// admitted, no answer waiting for the socket), and wakes its task, whose socket then ends
    /// it (`408` if it holds part of a head, as a slow head on the mio loops gets; else closed
    /// without an answer, whether it answered requests before or never sent a byte).
    /// Returns whether one was chosen.
    ///
    /// A connection's sign of life is a request ended on it: the scan notes each one's count
    /// of ended requests and when it last saw that change (at the latest at accept), so no
    /// clock is read per request. With the activity record (`Options::record_activity`, as
    /// `serve` runs), the change is dated by the record's time of the last answer, and a
    /// connection idle since its answer is evictable [`EVICTABLE_AFTER`] after it, as on the
    /// mio loops; without it, from the second scan at least that long after its answer (after
    /// a burst that filled every slot, the first newcomer found every slot "just active" and
    /// was refused). One that never finished a request (a slow head), from its accept.
    ///
    /// `at_once` when the process is out of descriptors: the evicted socket then closes as
    /// soon as its task has ended it (its `408` written if the socket takes it), without the
    /// linger, as on the mio loops.
    pub(crate) fn evict_oldest(&self, now: Instant, at_once: bool) -> bool {
        let mut open = self.open.borrow_mut();
        let mut oldest: Option<(usize, Instant)> = None;
        for (key, slot) in open.iter_mut() {
            let conn = &slot.conn;
            let ended = conn.ended.get();
            if ended != slot.seen.0 {
                slot.seen = (ended, conn.last_answer().unwrap_or(now));
            }
            // Idle or reading a head since its last sign of life, or reading a body too slowly.
            let since = match conn.busy.get() {
                0 => Some(slot.seen.1),
                _ => conn.slow_body_since(),
            };
            let evictable = !slot.late
                && !slot.evicted
                && !conn.write_pending.get()
                && conn.graceful.get() == Graceful::Watched
                && conn.waker.borrow().is_some()
                && since
                    .is_some_and(|since| now.saturating_duration_since(since) >= EVICTABLE_AFTER);
            if let Some(since) = since.filter(|_| evictable) {
                if oldest.is_none_or(|(_, at)| since < at) {
                    oldest = Some((key, since));
                }
            }
        }
        let Some((key, _)) = oldest else {
            return false;
        };
        let slot = &mut open[key];
        slot.evicted = true;
        if slot.conn.busy.get() > 0 {
            // Its route answers `408` + close when woken (its connection then ends as any
            // that answered `connection: close`).
            slot.conn.body_cut.set(true);
            slot.conn.close_at_once.set(at_once);
            self.evicting.set(self.evicting.get() + 1);
            slot.conn.wake_task();
            return true;
        }
        slot.conn.reads.set(Reads::Evicted);
        slot.conn.evicted_at.set(slot.conn.ended.get());
        slot.conn.close_at_once.set(at_once);
        self.evicting.set(self.evicting.get() + 1);
        slot.conn.wake_task();
        true
    }

    /// Registers a connection whose task is about to be spawned, with an activity record if
    /// `activity`, [`late`](Connections::late) if `late`; returns what its requests share, for
    /// the connection's service. Accepted before the stop, the graceful shutdown watches it.
    pub(crate) fn register(
        self: &Rc<Self>,
        tally: &Rc<Tally>,
        activity: bool,
        late: bool,
        max_head: usize,
        half_close: bool,
    ) -> (Registered, Rc<Conn>) {
        let graceful = if tally.is_stopping() {
            Graceful::Unwatched
        } else {
            Graceful::Watched
        };
        let conn = Rc::new(Conn {
            tally: Rc::clone(tally),
            activity: activity.then(Activity::new),
            graceful: Cell::new(graceful),
            waker: RefCell::new(None),
            busy: Cell::new(0),
            ended: Cell::new(0),
            write_pending: Cell::new(false),
            reads: Cell::new(Reads::Hyper),
            evicted_at: Cell::new(0),
            close_at_once: Cell::new(false),
            shut_by_hyper: Cell::new(false),
            handoff: Cell::new(None),
            served: Cell::new(0),
            whole: Cell::new(0),
            body: Cell::new(None),
            body_cut: Cell::new(false),
            closing: Cell::new(None),
            owed: Cell::new(NOT_OWED),
            declared: Cell::new(None),
            http10: Cell::new(false),
            probe: Cell::new(None),
            head_room: Cell::new(max_head.try_into().unwrap_or(isize::MAX)),
            body_may_follow: Cell::new(false),
            head_read: Arc::new(AtomicBool::new(false)),
            counts_begun: Cell::new(0),
            unadmitted_out: Cell::new(false),
            lent: Cell::new(Vec::new()),
            max_head: max_head.try_into().unwrap_or(isize::MAX),
            half_close,
            answers_close: Cell::new(tally.is_closing()),
            chunks: Cell::new(None),
            chunk_past: Cell::new(false),
        });
        let key = self.open.borrow_mut().insert(Slot {
            late,
            abort: None,
            conn: Rc::clone(&conn),
            seen: (0, Instant::now()),
            evicted: false,
            aborted: false,
        });
        self.late.set(self.late.get() + usize::from(late));
        let registered = Registered {
            connections: Rc::clone(self),
            key,
        };
        (registered, conn)
    }

    /// Records the spawned task's abort handle, for a force-close.
    pub(crate) fn set_abort_handle(&self, key: usize, handle: AbortHandle) {
        if let Some(slot) = self.open.borrow_mut().get_mut(key) {
            slot.abort = Some(handle);
        }
    }

    /// Turns keep-alive off on every watched connection (hyper's graceful shutdown: an idle
    /// one closes, a busy one after its answer), on its task's next poll: each is woken.
    ///
    /// With `spare_silent` (a listener kept open through the drain), a connection that has had
    /// no request yet is left open and counted late instead, as if accepted during the drain:
    /// hyper's shutdown closes a connection that has read nothing, and a client that had just
    /// connected lost the request it was sending (SIGTERM under connection-per-request load:
    /// EOF, no answer). Its request is answered `503` + close; the close step ends it if silent.
    /// Not one that has sent part of a head (bytes read, [`Conn::head_room`]): it is kept as a
    /// head in progress after an answer is (`503` + close once whole, at the drain deadline if
    /// still in progress), as the mio loops keep it. Spared, it got the close step's `503`
    /// about a second after the drain (2 s into the stop with `serve`'s defaults, where mio
    /// answers at the drain deadline, 5 s), and a head finished meanwhile was never read
    /// (QA client22-2).
    pub(crate) fn shut_down_gracefully(&self, spare_silent: bool) {
        let mut open = self.open.borrow_mut();
        for (_, slot) in open.iter_mut() {
            let conn = &slot.conn;
            if spare_silent
                && conn.ended.get() == 0
                && conn.busy.get() == 0
                && conn.head_room.get() == conn.max_head
            {
                if !slot.late {
                    slot.late = true;
                    self.late.set(self.late.get() + 1);
                }
                continue;
            }
            if conn.graceful.get() == Graceful::Watched {
                conn.graceful.set(Graceful::Draining);
                conn.wake_task();
            }
        }
    }

    /// The drain deadline: each head in progress the stop found and kept ([`Graceful::Held`])
    /// is answered `503` + close by its task ([`Reads::Deadline`]), as the mio loops' close
    /// step answers one. Before, it was closed at the force step without an answer. A health
    /// probe whose body is still coming is answered so too, its task woken to see the deadline
    /// passed (`service::Probing`; QA client25-1: closed at the force step unanswered).
    #[cold]
    pub(crate) fn answer_held_heads(&self) {
        self.answer_at_deadline_each(|conn| conn.graceful.get() == Graceful::Held);
        let open = self.open.borrow();
        for (_, slot) in open.iter() {
            let conn = &slot.conn;
            conn.tally.set_past_deadline();
            if let Some(probe) = conn.take_probe() {
                conn.hold_probe(probe);
                conn.wake_task();
            }
        }
    }

    /// The force step after a drain deadline, and the close step (after the drain, a listener
    /// kept open through it): every connection still open with no request out and no answer
    /// on its way (a late one silent since its accept, one spared by the stop's keep-alive
    /// step, a head in progress) is answered `503` with `connection: close` by its task
    /// ([`Reads::Deadline`]), once what has arrived is read (a whole request then is refused
    /// `503` as any late one), as the mio loops' close step answers them. Not one whose
    /// keep-alive went off after an answer: it closes by itself. Before, they were closed
    /// without an answer.
    ///
    /// Without `heads_too`, a connection with part of a head read is left out: one silent at
    /// the stop's keep-alive step whose first bytes came after it, kept to the drain deadline
    /// as the mio loops keep it ([`Connections::head_in_progress`]).
    #[cold]
    pub(crate) fn answer_silent_at_close(&self, heads_too: bool) {
        self.answer_at_deadline_each(|conn| {
            !conn.answer_on_its_way()
                && conn.graceful.get() != Graceful::Done
                && (heads_too || !conn.head_begun())
        });
    }

    /// Whether a connection hyper reads as usual, with no answer on its way, has part of a
    /// head read: at the close step, one spared by the stop's keep-alive step as silent whose
    /// first bytes came after it. The mio loops keep it to the drain deadline (`503` + close
    /// once whole, counted `refused`; `503` + close at the deadline if still in progress), and
    /// so does the close step here (QA client23-3: it was answered about a second after the
    /// drain, its head cut).
    #[cold]
    pub(crate) fn head_in_progress(&self) -> bool {
        let open = self.open.borrow();
        open.iter().any(|(_, slot)| {
            let conn = &slot.conn;
            matches!(conn.reads.get(), Reads::Hyper | Reads::Chunked)
                && !conn.answer_on_its_way()
                && conn.head_begun()
        })
    }

    /// Each open connection `chosen` whose socket hyper reads as usual has its reads ended and
    /// its task woken to answer `503` + close ([`Reads::Deadline`]).
    fn answer_at_deadline_each(&self, chosen: impl Fn(&Conn) -> bool) {
        let open = self.open.borrow();
        for (_, slot) in open.iter() {
            let conn = &slot.conn;
            if matches!(conn.reads.get(), Reads::Hyper | Reads::Chunked) && chosen(conn) {
                conn.reads.set(Reads::Deadline);
                conn.wake_task();
            }
        }
    }

    /// The force step the stop's time reaches: aborts the task of each open connection with
    /// a request still out (admitted, its bundle alive) and no answer waiting for the socket
    /// (its last write did not find the socket full), as the mio loops' force step ends only
    /// what is still out; returns how many. The others are left to write what they have
    /// computed (an answer to a client reading slowly, a `503` of the adapter's own) and close,
    /// keep-alive being off, bounded by the stop (`Stopper::force_close`). Before, every task
    /// was aborted, and an answer hyper had not written whole was cut (QA client30-1).
    #[cold]
    pub(crate) fn abort_what_is_out(&self) -> usize {
        let mut open = self.open.borrow_mut();
        let mut aborted = 0;
        for (_, slot) in open.iter_mut() {
            let conn = &slot.conn;
            let out = conn.is_busy() && !conn.write_is_pending();
            if let (Some(handle), true) = (&slot.abort, out) {
                handle.abort();
                slot.aborted = true;
                aborted += 1;
            }
        }
        aborted
    }

    /// Keep-alive goes off (the server's tally is closing: unready, or stopping): every open
    /// connection's answers from now on say `connection: close` ([`Conn::answers_close`]);
    /// one accepted later is registered with it set.
    #[cold]
    pub(crate) fn answers_close(&self) {
        for (_, slot) in self.open.borrow().iter() {
            slot.conn.answers_close.set(true);
        }
    }

    /// Aborts every open connection's task (hyper drops the connection, its request futures
    /// and its response bodies); returns how many, not counting those aborted already.
    pub(crate) fn abort_all(&self) -> usize {
        let mut open = self.open.borrow_mut();
        let mut aborted = 0;
        for (_, slot) in open.iter_mut() {
            if let Some(handle) = &slot.abort {
                handle.abort();
            }
            aborted += usize::from(!slot.aborted);
            slot.aborted = true;
        }
        aborted
    }

    /// Each open connection's route in its handler (if any) and age, from its activity
    /// record; `None` where none is kept.
    #[cfg(feature = "server")]
    pub(crate) fn activities(&self, now: Instant) -> Vec<Option<(Option<String>, Duration)>> {
        let open = self.open.borrow();
        open.iter()
            .map(|(_, slot)| slot.conn.activity.as_ref().map(|a| a.now(now)))
            .collect()
    }

    /// Resolves once no connection is open.
    pub(crate) async fn closed(&self) {
        self.wait_until(|open| open == 0).await;
    }

    /// Resolves once no connection is open but late ones: what a drain waits for.
    pub(crate) async fn drained(&self) {
        self.wait_until(|open| open == self.late.get()).await;
    }

    async fn wait_until(&self, done: impl Fn(usize) -> bool) {
        poll_fn(|cx| {
            if done(self.len()) {
                Poll::Ready(())
            } else {
                self.empty_waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
    }
}

impl Registered {
    pub(crate) fn key(&self) -> usize {
        self.key
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let connections = &self.connections;
        let mut open = connections.open.borrow_mut();
        if let Some(slot) = open.try_remove(self.key) {
            if slot.late {
                connections.late.set(connections.late.get() - 1);
            }
            if slot.evicted {
                connections.evicting.set(connections.evicting.get() - 1);
            }
        }
        let only_late_left = open.len() == connections.late.get();
        drop(open);
        if only_late_left {
            if let Some(waker) = self.connections.empty_waker.take() {
                waker.wake();
            }
        }
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("activity", &self.activity)
            .field("graceful", &self.graceful.get())
            .field("busy", &self.busy.get())
            .field("ended", &self.ended.get())
            .field("reads", &self.reads.get())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections")
            .field("open", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QA client26-2. The drain deadline's `503` to a health probe whose body is still coming
    /// (`service::Probing`) is counted in the last step's `answered` once hyper has flushed it
    /// and shuts the socket's write side, as a refusal is: not when made (before, at once), and
    /// never if its connection is lost first (a client that reads nothing, its connection
    /// closed at the force step; one that reset). Over a real socket the window is narrow (both
    /// stacks stop reading while an answer waits for a full socket, so the probe is read only
    /// with room left): pinned here.
    #[test]
    fn a_probes_deadline_503_counts_once_written_not_when_made() {
        let connections = Rc::new(Connections::default());
        let tally = Rc::new(Tally::default());
        let (registered, conn) = connections.register(&tally, false, false, 8192, false);
        conn.answered_at_end();
        assert_eq!(tally.answered_at_end_count(), 0, "made, not written");
        conn.closing_written();
        assert_eq!(tally.answered_at_end_count(), 1, "written: counted");
        conn.closing_written();
        assert_eq!(tally.answered_at_end_count(), 1, "counted once");
        drop((registered, conn));

        let (registered, lost) = connections.register(&tally, false, false, 8192, false);
        lost.answered_at_end();
        drop((registered, lost)); // its task aborted at the force step, nothing flushed
        assert_eq!(
            tally.answered_at_end_count(),
            1,
            "a 503 never written is not counted"
        );
    }

    /// The slow-body rule of the eviction at the limit: a body awaited by its route is not
    /// judged in its first second, nor while its bytes keep ahead of 1 KiB/s; past that (and
    /// 100 ms) its connection is chosen, no longer counts towards the limit, and its route is
    /// told, whether the body is still awaited (`408`) or ended meanwhile (its answer closes
    /// the connection: it must not stay chosen for the requests after it).
    #[test]
    fn a_body_arriving_too_slowly_is_chosen_and_its_route_told() {
        let connections = Rc::new(Connections::default());
        let tally = Rc::new(Tally::default());
        let (_registered, conn) = connections.register(&tally, false, false, 8192, false);
        *conn.waker.borrow_mut() = Some(Waker::noop().clone());
        conn.request_began();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(
            !connections.evict_oldest(at(5000), false),
            "a request in its handler, no body awaited: never evicted"
        );
        assert!(!conn.body_awaited(t0));
        conn.body_arrived(100);
        assert!(
            !connections.evict_oldest(at(900), false),
            "its first second"
        );
        conn.body_arrived(2000); // 2,100 bytes: 2.05 s at 1 KiB/s
        assert!(!connections.evict_oldest(at(2000), false), "at pace so far");
        assert!(
            connections.evict_oldest(at(2200), false),
            "too slow: chosen"
        );
        assert_eq!((connections.staying(), connections.evicting()), (0, 1));
        assert!(
            conn.body_awaited(at(2200)),
            "still awaited: the route answers 408"
        );
        assert!(conn.body_read(), "or it ended meanwhile: the answer closes");
    }
}
