//! The dispatcher: what every connection of one server shares (routes, accounting, limits,
//! figures, and the response scratch buffer).

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::accounting::{Accounting, AccountingReport, StopStatus};
use super::date::DateCache;
use super::limits::Limits;
use super::parse::{FieldSlots, Head, NO_FIELDS};
use super::response::{reason, Answer, Response};
use super::router::{After, Call, Reply, Request, Route, Router};
use crate::admit::{Refusal, RefusalReason};
use crate::callback::caught;
use crate::signal::AbortReason;

/// Figures of one server (or one [`Session`](crate::http::Session)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections accepted and served.
    pub connections: u64,
    /// Connections over the limit, answered `503` and closed: counted once the socket has
    /// taken the `503` whole (one to a client already gone is not).
    pub connections_refused: u64,
    /// Connections closed at capacity to admit a new one: the one idle or reading its head
    /// the longest (`408` if mid-head), never one with a request admitted.
    pub connections_evicted: u64,
    /// Times `accept` failed for lack of file descriptors and accepting was paused.
    pub accept_backoffs: u64,
    /// Admitted requests whose answer was written to their connection's output, in order
    /// (handler answers, `404`, `405`, and the `500` of a panicking handler). An answer
    /// computed but never sent (the client left first) is not counted here but in `aborted`;
    /// one whose bytes a close then dropped undelivered, not here but in `undelivered`.
    pub served: u64,
    /// Answers counted in `served` when written to their connection's output, then taken
    /// back out of it: the connection was closed with them not delivered (the slow-reader
    /// cut, a close linger that ran out with bytes unsent, a socket that failed, a
    /// force-close), and its client's TCP had not acknowledged all their bytes (see
    /// "Undelivered answers" in `docs/server.md`: conservative). Their requests ended
    /// *completed* when their answers were written (their signals did not fire).
    pub undelivered: u64,
    /// Requests refused with `503` (the [`Refusal`] path), in all; `500` for an admission that
    /// panicked (also counted in `panics`). Counted when the refusal is made, and taken back
    /// (with the two counts below) if its connection is aborted before its socket took the
    /// answer whole: a refusal counts once written whole, as on the hyper adapter.
    pub refused: u64,
    /// ... of which because the wrapper was finalized (the upgrade failed).
    pub refused_finalized: u64,
    /// ... of which because the server was stopping.
    pub refused_stopped: u64,
    /// Bad input answered `400`, `408`, `413` or `431` (never admitted), counted when the
    /// answer is made, read or not (a reset does not take it back: docs/server.md, "Undelivered
    /// answers"); an evicted head's `408` once the socket has taken it whole (one to a client
    /// already gone is not).
    pub rejected: u64,
    /// Panics caught in the embedder's code: handlers (answered `500`), and the accounting's
    /// `admit` (answered `500`, counted in `refused` too), `stop`, `poll_stop`, `report` and
    /// `ledger` (read by a loop group's stop ladder). Not the core's: abort listeners and
    /// drain hooks (`Guarded::after_stop` and `after_drain` among them) that panic are counted
    /// in `DrainReport::panicked_listeners` / `panicked_hooks`, which this report does not carry (docs/hyper.md, "Limits").
    pub panics: u64,
    /// Admitted requests whose response was never completed: the client went away, the drain
    /// deadline passed, or the stop force-closed their connection (the outcomes *client gone*,
    /// *deadline aborted* and *force closed*). Their signals were aborted. Also the `500` of a
    /// panicking handler that was never sent (queued behind a deferred answer when the client
    /// left): its request ended *dropped* at the panic. Every admitted request is counted once,
    /// in `served`, `undelivered` or here: the three add up to the outcomes' total, less the
    /// admissions that panicked after taking their bundle (an embedder's
    /// [`ScopeProvider`](crate::http::ScopeProvider) or `admit`): those are answered `500` and
    /// counted in `refused` and `panics`, their outcome *dropped* (the server cannot tell
    /// whether a panicking admission had taken one); and less the requests the embedder
    /// admitted itself through the core ([`Guarded::core`](crate::http::Guarded::core): a
    /// runtime's `server.fetch()`), which have outcomes in the core's ledger but were no
    /// request of a connection: counted in none of the three, however they end (QA
    /// embed33-2).
    ///
    /// An outcome of *deadline aborted* is not always here: a request whose signal the
    /// embedder's own escalation aborted before the server's deadline (`Drain::escalate` or
    /// `poll_deadline` on the core's drain, through `Guarded::core`) is still answered if its
    /// handler answers it (a deferred answer coming due), and that answer is counted in
    /// `served` though its outcome is *deadline aborted* (the first cause), as the hyper
    /// adapter counts an answer made after the deadline's abort (docs/hyper.md; checked with a
    /// `Session` in round 32). The server's own deadline ends what is out unanswered.
    pub aborted: u64,
    /// The most bytes one connection held in its buffers at once (input, decoded body,
    /// answers; by capacity). Back-pressure keeps it bounded whatever a client sends: see the
    /// limits table in `docs/server.md`.
    pub buffered_high_water: u64,
    /// Bytes of request heads handed to the parser. A head is parsed on its first bytes and
    /// again only when its end may have arrived, so this stays linear in the bytes received
    /// however a client splits its heads (a head sent a byte at a time is not parsed again
    /// on every read). Each parse counts the input it is handed, from its head's start to the
    /// end of what was read, up to `max_head`: the parse reads no further than the head's end,
    /// but a read of pipelined requests counts up to `max_head` for each (100 requests of 37
    /// bytes in one read count about 185,000 bytes), not the bytes of the heads alone.
    pub head_bytes_parsed: u64,
    /// Bytes of request bodies the loop read from the socket straight into their request's
    /// input, rather than into its read buffer and copied from there: the rest of a body that
    /// did not come whole with its head (see "Large bodies" in `docs/server.md`).
    pub body_bytes_read_in_place: u64,
    /// Bytes of answer bodies lent to their connection's output by the response the handler
    /// filled, and written from there after their head (one vectored write), rather than
    /// copied after the head: bodies longer than [`Limits::max_output`](Limits::with_max_output).
    pub body_bytes_lent: u64,
    /// Bytes the loop's response buffer held at the end of the run (its capacity; every
    /// handler of a loop writes its body there): at most 64 KiB kept, more only if an answer
    /// needed it within the last second or two (see `response_buffer_shrinks`). 0 in a
    /// [`Session`](crate::http::Session)'s stats.
    pub response_buffer: u64,
    /// Times the loop gave its response buffer back to 16 KiB: grown past 64 KiB by an answer
    /// (a large body), it is given back once no answer needed it for a second (between one and
    /// two seconds after the last that did), where it kept the largest answer's size for the
    /// rest of the run (docs/server.md, "Memory per connection").
    pub response_buffer_shrinks: u64,
}

impl Stats {
    fn count_refusal(&mut self, refusal: Refusal) -> RefusalCount {
        self.refused += 1;
        match refusal.reason() {
            RefusalReason::WrapperFinalized => {
                self.refused_finalized += 1;
                RefusalCount::Finalized
            }
            RefusalReason::Stopped => {
                self.refused_stopped += 1;
                RefusalCount::Stopped
            }
            _ if refusal == Refusal::PANICKED => {
                self.panics += 1;
                RefusalCount::Other
            }
            _ => RefusalCount::Other,
        }
    }

    /// A refusal counted by [`count_refusal`](Stats::count_refusal) whose answer its connection
    /// lost before the socket took it whole: no answer, no refusal (as the hyper adapter counts
    /// one once written). A panicking admission stays counted in `panics`: it did panic.
    fn take_back_refusal(&mut self, counted: RefusalCount) {
        self.refused -= 1;
        match counted {
            RefusalCount::Finalized => self.refused_finalized -= 1,
            RefusalCount::Stopped => self.refused_stopped -= 1,
            RefusalCount::Other => {}
        }
    }
}

/// Which of [`Stats`]' refusal counts a refusal went into (`refused`, and
/// `refused_finalized` or `refused_stopped`): one byte, kept by its connection until the socket
/// has taken its answer whole, to take the counts back if it never does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefusalCount {
    Finalized,
    Stopped,
    Other,
}

/// The shared half of the sans-IO server: routes, accounting, limits and figures.
///
/// Each [`Connection`](crate::http::Connection) borrows it for every call, so one dispatcher
/// serves every connection of a server without `Rc`.
pub struct Dispatcher<'r, A: Accounting> {
    pub(crate) router: &'r Router<'r>,
    pub(crate) accounting: A,
    pub(crate) limits: Limits,
    pub(crate) stats: Stats,
    pub(crate) scratch: Vec<u8>,
    /// Where a handler that defers its answer leaves its `Reply::After` fields
    /// ([`route_and_call`]), read right after the call and only then: here, not a local of
    /// the dispatch, so the common call stores nothing to it first.
    pub(crate) after: After,
    /// A response body longer than this is lent to its connection's output rather than copied there
    /// (the body and the head go out in one vectored write). The mio loop lends bodies longer than
    /// [`Limits::max_output`](Limits::with_max_output) (whose back-pressure then holds the
    /// connection's parsing until the body is written); `usize::MAX`, never, for a [`Session`] and
    /// a [`Connection`] driven by hand, whose `pending_output` is all the output.
    ///
    /// [`Session`]: crate::http::Session
    /// [`Connection`]: crate::http::Connection
    pub(crate) lend_over: usize,
    /// The header fields of the head being parsed (see [`Head::fields`]).
    pub(crate) fields: FieldSlots,
    /// The `date` of every answer, formatted once a second.
    pub(crate) date: DateCache,
    /// The instant the reading states run at (set where they begin): a deferred answer's
    /// delay counts from it. Here rather than an argument of the dispatch, which has no
    /// register left for it.
    pub(crate) now: Instant,
    pub(crate) in_flight: usize,
    pub(crate) stopped_at: Option<Instant>,
    /// What the loop sees to at the turn's end, set off the hot path (one byte the loop reads
    /// once a turn): [`ASK_STOP`], a handler asked for a stop ([`Response::stop_server`]);
    /// [`ASK_SCRATCH`], an answer left `scratch` over [`SCRATCH_KEEP`] bytes (the loop gives
    /// it back once no answer needed it for [`SCRATCH_IDLE`]).
    pub(crate) asks: u8,
    /// A loop of a group: answers `GET /healthz/live` and `/healthz/ready` before admission,
    /// and keeps connections that have sent nothing yet open through the drain (the group's
    /// listeners keep accepting, so their first request is on its way).
    pub(crate) in_group: bool,
    /// The stop ladder's unready step has begun: readiness 503, keep-alive off.
    pub(crate) unready: bool,
    /// Every answer closes its connection: unready, or stopping (`unready` or `stopped_at`
    /// set, kept in one flag: the dispatch reads it for every answer).
    pub(crate) keep_alive_off: bool,
    /// Tells this dispatcher from every other in the process: a [`Connection`] is bound to
    /// the first one it is used with, whose counts its requests are in.
    ///
    /// [`Connection`]: crate::http::Connection
    pub(crate) id: DispatcherId,
}

/// [`Dispatcher::asks`]: a handler asked for a stop.
pub(crate) const ASK_STOP: u8 = 1;
/// [`Dispatcher::asks`]: an answer left the response buffer over [`SCRATCH_KEEP`].
pub(crate) const ASK_SCRATCH: u8 = 2;

/// The response buffer (`scratch`, where every handler of a loop writes its body) keeps up to
/// this capacity; past it, grown by a large answer, it is given back to a quarter of it once no
/// answer needed it for [`SCRATCH_IDLE`] (docs/server.md, "Memory per connection").
pub(crate) const SCRATCH_KEEP: usize = 64 * 1024;
/// How long the response buffer stays over [`SCRATCH_KEEP`] with no answer needing it before
/// the loop gives it back: between one and two of these after the last such answer (a client
/// sending large bodies one after another keeps it: no regrowth per answer).
pub(crate) const SCRATCH_IDLE: Duration = Duration::from_secs(1);

/// A dispatcher's identity ([`Dispatcher::id`]), unique in the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DispatcherId(NonZeroU64);

impl DispatcherId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        // Wrapping past 2^64 dispatchers would take centuries at any rate.
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        DispatcherId(NonZeroU64::new(id).unwrap_or(NonZeroU64::MIN))
    }
}

impl<'r, A: Accounting> Dispatcher<'r, A> {
    /// A dispatcher for `router`, admitting through `accounting`.
    pub fn new(router: &'r Router<'r>, accounting: A, limits: Limits) -> Self {
        Dispatcher {
            router,
            accounting,
            limits,
            stats: Stats::default(),
            scratch: Vec::with_capacity(4096),
            after: After::default(),
            lend_over: usize::MAX,
            fields: NO_FIELDS,
            date: DateCache::new(),
            now: Instant::now(),
            in_flight: 0,
            stopped_at: None,
            asks: 0,
            in_group: false,
            unready: false,
            keep_alive_off: false,
            id: DispatcherId::next(),
        }
    }

    /// A dispatcher for the mio loop, which writes a lent body after its head with one
    /// vectored write: response bodies longer than `limits`' `max_output` are lent to their
    /// connection's output rather than copied there (see `lend_over`).
    pub(crate) fn lending(router: &'r Router<'r>, accounting: A, limits: Limits) -> Self {
        Dispatcher {
            lend_over: limits.max_output(),
            ..Dispatcher::new(router, accounting, limits)
        }
    }

    /// The accounting.
    pub fn accounting(&self) -> &A {
        &self.accounting
    }

    /// The accounting, mutably.
    pub fn accounting_mut(&mut self) -> &mut A {
        &mut self.accounting
    }

    /// The figures so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Admitted requests whose response is not complete yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether a stop has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopped_at.is_some()
    }

    /// Begins a graceful stop at `now`: admission closes (through the accounting), responses carry
    /// `Connection: close`, idle connections linger for
    /// [`Limits::stop_linger`](Limits::with_stop_linger). The drain's deadline is `now` plus
    /// [`Limits::drain_timeout`](Limits::with_drain_timeout), or as late as an `Instant` goes when
    /// `now` is near the end of what the clock can count (a session's clock moved by
    /// `Duration::MAX`).
    pub fn begin_stop(&mut self, now: Instant) {
        if self.stopped_at.is_none() {
            self.stopped_at = Some(now);
            self.keep_alive_off = true;
            // At the end of what the clock can count (a session's clock moved by
            // `Duration::MAX`, an embedder's own instants) as late as it can be: at worst `now`.
            let deadline = now
                .checked_add(self.limits.drain_timeout())
                .or_else(|| now.checked_add(super::limits::MAX_TIMEOUT))
                .unwrap_or(now);
            // The embedder's code: a panic is counted, and the server's own deadline rules.
            if caught(|| self.accounting.stop(deadline)).is_none() {
                self.stats.panics += 1;
            }
        }
    }

    /// The accounting's [`poll_stop`](Accounting::poll_stop), `in_flight` requests out. A
    /// panic in it is counted and read from the server's own count: `Complete` when nothing
    /// is in flight, else `Pending` (the server's deadline ends the wait).
    pub(crate) fn poll_stop(&mut self, now: Instant, in_flight: usize) -> StopStatus {
        if let Some(status) = caught(|| self.accounting.poll_stop(now, in_flight)) {
            return status;
        }
        self.stats.panics += 1;
        match in_flight {
            0 => StopStatus::Complete,
            _ => StopStatus::Pending,
        }
    }

    /// The accounting's end-of-run figures; a panic in its `report` (the embedder's code) is
    /// counted, and the figures are empty rather than the run's report lost.
    pub(crate) fn accounting_report(&mut self) -> AccountingReport {
        caught(|| self.accounting.report()).unwrap_or_else(|| {
            self.stats.panics += 1;
            AccountingReport::default()
        })
    }

    /// Whether a handler asked the server to stop ([`Response::stop_server`]); clears the flag.
    pub fn take_stop_request(&mut self) -> bool {
        let stop = self.asks & ASK_STOP != 0;
        self.asks &= !ASK_STOP;
        stop
    }

    /// An answer was just made in `scratch` off the hot path (a body lent or copied past
    /// [`LEND_FROM`](super::response::LEND_FROM), an answer queued or deferred): if it left
    /// the buffer over [`SCRATCH_KEEP`], the loop is told ([`ASK_SCRATCH`]).
    #[inline]
    pub(crate) fn note_scratch(&mut self) {
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.asks |= ASK_SCRATCH;
        }
    }

    /// Gives back the response buffer's capacity over [`SCRATCH_KEEP`] / 4 if it holds more
    /// than [`SCRATCH_KEEP`] (the loop: once no answer needed it for [`SCRATCH_IDLE`]).
    #[cold]
    pub(crate) fn shrink_scratch(&mut self) {
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch.clear();
            self.scratch.shrink_to(SCRATCH_KEEP / 4);
            self.stats.response_buffer_shrinks += 1;
        }
    }

    /// Whether answers close their connection now (unready, or stopping).
    pub(crate) fn closes_connections(&self) -> bool {
        debug_assert_eq!(
            self.keep_alive_off,
            self.unready || self.stopped_at.is_some()
        );
        self.keep_alive_off
    }

    /// The answer to a health probe (its status and body: [`probe_response`] writes it), or
    /// `None` when the request whose head is at `input[start..]` is not one (or probes are off:
    /// then `input` is not even sliced).
    #[inline]
    pub(crate) fn health_probe(
        &self,
        input: &[u8],
        start: usize,
        head: &Head,
    ) -> Option<(u16, &'static [u8])> {
        if !self.in_group {
            return None;
        }
        self.probe_answer(&input[start..], head)
    }

    fn probe_answer(&self, input: &[u8], head: &Head) -> Option<(u16, &'static [u8])> {
        let method = &input[head.method.range()];
        if method != b"GET" && method != b"HEAD" {
            return self.probe_other_method(method, input, head);
        }
        match probe_path(input, head) {
            b"/healthz/live" => Some((200, b"live")),
            b"/healthz/ready" if self.closes_connections() => Some((503, b"unready")),
            b"/healthz/ready" => Some((200, b"ready")),
            _ => None,
        }
    }

    /// A probe's path with another method, when no route of the embedder's has that path:
    /// `OPTIONS` is `204` and a method the server knows `405`, both with `allow: GET, HEAD`
    /// (RFC 9110 9.3.7, 15.5.6), as for any routed path. `None` otherwise: an unknown method is
    /// the router's `501`.
    #[cold]
    fn probe_other_method(
        &self,
        method: &[u8],
        input: &[u8],
        head: &Head,
    ) -> Option<(u16, &'static [u8])> {
        let path = probe_path(input, head);
        let probe = path == b"/healthz/live" || path == b"/healthz/ready";
        if !probe || self.router.allow_bytes(path).is_some() || !self.router.knows_bytes(method) {
            return None;
        }
        Some(match method {
            b"OPTIONS" => (204, b""),
            _ => (405, reason(405).as_bytes()),
        })
    }

    /// Whether the request whose head is `head` (at the start of `input`) will be answered
    /// without a handler, as its head alone says: admission is closed (the `503`), it is a
    /// health probe, or no route takes it (`404`, `405`, `501`, an `OPTIONS` the router
    /// answers). For `Expect: 100-continue` (`Connection::await_body`).
    #[cold]
    pub(crate) fn takes_no_handler(&self, input: &[u8], head: &Head) -> bool {
        if self.stopped_at.is_some() || self.health_probe(input, 0, head).is_some() {
            return true;
        }
        let request = Request::new(input, head, &self.fields, &[], None, None);
        find_route(self.router, &request).is_err()
    }

    pub(crate) fn count_refusal(&mut self, refusal: Refusal) -> RefusalCount {
        self.stats.count_refusal(refusal)
    }

    /// See [`Stats::take_back_refusal`].
    #[cold]
    pub(crate) fn take_back_refusal(&mut self, counted: RefusalCount) {
        self.stats.take_back_refusal(counted);
    }
}

impl<A: Accounting + fmt::Debug> fmt::Debug for Dispatcher<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("accounting", &self.accounting)
            .field("stats", &self.stats)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

/// The answer to a health probe with `status` and `body` ([`Dispatcher::health_probe`]): a
/// `204` or `405` names the methods a probe's path answers.
pub(crate) fn probe_response(status: u16, body: &'static [u8]) -> Answer<'static> {
    let allow = matches!(status, 204 | 405).then_some("GET, HEAD");
    Answer {
        body,
        allow,
        ..Answer::plain(status)
    }
}

/// The path of the request whose head is `head` in `input`, without its query.
#[inline(always)]
fn probe_path<'i>(input: &'i [u8], head: &Head) -> &'i [u8] {
    let target = &input[head.origin.range()];
    // A fragment is dropped as the router drops it (`Request::path_and_query`).
    target
        .split(|&b| b == b'?' || b == b'#')
        .next()
        .unwrap_or(target)
}

/// The route for `request`, or the status the router answers it with (`404`, `405`, `501`).
/// The common request (origin-form, a short method, a route for its path and method) by the
/// router's loop that asks nothing else; every other by the whole search, out of line, which
/// finds the same route for the common one (the first entry with its path and method).
#[inline(always)]
fn find_route<'r>(router: &'r Router<'r>, request: &Request<'_>) -> Result<&'r Route, u16> {
    let origin = request.origin_bytes();
    if origin.first() == Some(&b'/') {
        let found = router.find_origin_common(request.method_key(), origin, request.origin_word());
        if let Some(route) = found {
            return Ok(route);
        }
    }
    find_route_whole(router, request)
}

/// [`find_route`]'s whole search: a long method, absolute-form, a `HEAD` served by `GET`,
/// and every request no route takes.
#[cold]
#[inline(never)]
fn find_route_whole<'r>(router: &'r Router<'r>, request: &Request<'_>) -> Result<&'r Route, u16> {
    // The method's bytes only where its key cannot tell (not sliced on the common path).
    let (method, key) = (|| request.method_bytes(), request.method_key());
    let origin = request.origin_bytes();
    match origin.first() {
        // Origin-form (nearly always): matched with its query on, if any.
        Some(b'/') => router.find_origin(method, key, origin, request.origin_word()),
        _ => router.find_bytes(method(), key, request.path_and_query().0),
    }
}

/// Finds the route for `request` and calls its handler, filling `response`: the handler's
/// answer, or `404`, `405` (with `allow`), `501`, `204` with `allow` for an `OPTIONS` no route
/// answers, or the `500` of a panic (counted in `stats`,
/// the request's signal aborted, or `panicked` called where the request has no signal of its
/// own: an accounting that keeps its bundles, `Accounting::keeps`). Returns the reply and, for
/// a handler that ran, its route; `after` is where the handler's call leaves a deferral's
/// fields.
#[inline(always)]
pub(crate) fn route_and_call<'r: 'a, 'a>(
    router: &'r Router<'r>,
    stats: &mut Stats,
    request: &Request<'_>,
    response: &mut Response<'a>,
    after: &mut After,
    panicked: impl FnOnce(),
) -> (Reply, Option<&'r Route>) {
    let route = match find_route(router, request) {
        Ok(route) => route,
        Err(status) => {
            no_route(router, request, response, status);
            return (Reply::Now, None);
        }
    };
    match call_handler(route.handler(), request, response, after) {
        Ok(false) => (Reply::Now, Some(route)),
        // Read on this path alone: the call just wrote it.
        Ok(true) => {
            let After { delay, token } = *after;
            (Reply::After { delay, token }, Some(route))
        }
        Err(()) => {
            stats.panics += 1;
            match request.signal {
                Some(signal) => {
                    signal.abort(AbortReason::Dropped);
                }
                // No call here: one on this path, cold as it is, cost the reading loop four
                // instructions per request in its registers (round 33).
                None => panicked(),
            }
            (Reply::Now, None)
        }
    }
}

/// The answer to a request no route takes: `404`, `405` (with `allow`), `501`, or `204` with
/// `allow` for an `OPTIONS` no route answers (RFC 9110 §9.3.7; `*`: every route's methods).
/// A request that asked for `100 Continue` closes its connection: the same answer as when its
/// body had not arrived yet (`Connection::answer_without_body`), however the bytes were split.
#[cold]
#[inline(never)]
fn no_route<'r: 'a, 'a>(
    router: &'r Router<'r>,
    request: &Request<'_>,
    response: &mut Response<'a>,
    status: u16,
) {
    let path = request.path_and_query().0;
    match status {
        404 | 405 if request.method_bytes() == b"OPTIONS" => match router.allow_bytes(path) {
            Some(allow) => response.options(allow),
            None => response.fail(404),
        },
        405 => response.method_not_allowed(router.allow_bytes(path).unwrap_or("")),
        status => response.fail(status),
    }
    if request.parsed.awaits_continue() {
        response.close_connection();
    }
}

/// Calls the handler; a panic is caught and turned into a `500` (returns `Err`).
///
/// The `500` replaces whatever the handler wrote once `catch_unwind` has stopped the panic
/// (no guard on the happy path: one that runs on unwinding only still asks, when dropped,
/// whether the thread is panicking). The request's guards are owned by the caller, so they are
/// released on this path too.
#[inline]
pub(crate) fn call_handler(
    handler: &dyn Call,
    request: &Request<'_>,
    response: &mut Response<'_>,
    after: &mut After,
) -> Result<bool, ()> {
    let Some(deferred) = caught(|| handler.call(request, response, after)) else {
        response.fail(500);
        return Err(());
    };
    response.settle();
    Ok(deferred)
}

/// As [`call_handler`], for [`Handler::resume`](super::router::Handler::resume).
pub(crate) fn call_resume(
    handler: &dyn Call,
    token: u64,
    response: &mut Response<'_>,
) -> Result<(), ()> {
    if caught(|| handler.resume(token, response)).is_none() {
        response.fail(500);
        return Err(());
    }
    response.settle();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse::{parse_head, NO_FIELDS};
    use crate::http::response::Answer;
    use std::time::Duration;

    use crate::http::router::Handler;
    use crate::http::{Limits, Routes};

    /// Writes an answer of its own, then panics.
    struct WritesThenPanics;

    impl Handler for WritesThenPanics {
        fn handle(&self, _: &Request<'_>, response: &mut Response<'_>) -> Reply {
            response.set_status(201);
            response.set_content_type("application/json");
            response.write(b"{\"partial\":");
            panic!("a handler panics on purpose");
        }

        fn resume(&self, _: u64, response: &mut Response<'_>) {
            response.set_status(202);
            response.set_content_type("application/json");
            response.write(b"{\"partial\":");
            panic!("a resume panics on purpose");
        }
    }

    /// A handler's panic leaves the plain `500` and nothing of what it wrote, from `handle` and
    /// from `resume` alike.
    #[test]
    fn a_panicking_handler_leaves_a_500_and_nothing_it_wrote() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut slots = NO_FIELDS;
        let head = parse_head(input, &Limits::default(), &mut slots)
            .unwrap()
            .unwrap();
        let request = Request::new(input, &head, &slots, b"", None, None);
        let expected = Answer::plain(500);
        let mut scratch = Vec::new();
        let mut response = Response::new(&mut scratch);
        assert!(call_handler(
            &WritesThenPanics,
            &request,
            &mut response,
            &mut After::default()
        )
        .is_err());
        let answer = response.answer();
        assert_eq!(
            (answer.status, answer.content_type, answer.body),
            (500, None, expected.body)
        );
        let mut response = Response::new(&mut scratch);
        assert!(call_resume(&WritesThenPanics, 7, &mut response).is_err());
        let answer = response.answer();
        assert_eq!(
            (answer.status, answer.content_type, answer.body),
            (500, None, expected.body)
        );
    }

    /// A handler's `Reply` comes back from its call taken apart (round 26: a word in a
    /// register, not 32 bytes through memory) and is made again for the dispatch: `Now` with
    /// `after` left as it was, `After` with its fields, both with the route; no route or a
    /// panic, `Now` and no route.
    #[test]
    fn a_call_gives_back_its_handler_s_reply_and_route() {
        let routes = Routes::new();
        let mut router = Router::new(&routes);
        let now = router.route("GET", "/now", |_: &Request<'_>, res: &mut Response<'_>| {
            res.write(b"now");
            Reply::Now
        });
        let deferred = Reply::After {
            delay: Duration::new(3, 7),
            token: 11,
        };
        let later = router.route(
            "GET",
            "/later",
            move |_: &Request<'_>, _: &mut Response<'_>| deferred,
        );
        router.route("GET", "/panics", WritesThenPanics);
        let unset = After {
            delay: Duration::new(99, 99),
            token: 99,
        };
        let written = After {
            delay: Duration::new(3, 7),
            token: 11,
        };
        for (path, reply, route, after_call) in [
            ("/now", Reply::Now, Some(now), unset),
            ("/later", deferred, Some(later), written),
            ("/none", Reply::Now, None, unset),
            ("/panics", Reply::Now, None, unset),
        ] {
            let input = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut slots = NO_FIELDS;
            let head = parse_head(input.as_bytes(), &Limits::default(), &mut slots)
                .unwrap()
                .unwrap();
            let request = Request::new(input.as_bytes(), &head, &slots, b"", None, None);
            let mut scratch = Vec::new();
            let mut response = Response::new(&mut scratch);
            let (mut stats, mut after) = (Stats::default(), unset);
            let (got, got_route) = route_and_call(
                &router,
                &mut stats,
                &request,
                &mut response,
                &mut after,
                || {},
            );
            let same_route = match (got_route, route) {
                (Some(got), Some(route)) => std::ptr::eq(got, route),
                (got, route) => got.is_none() && route.is_none(),
            };
            assert_eq!(
                (got, same_route, after),
                (reply, true, after_call),
                "{path}"
            );
        }
    }
}
