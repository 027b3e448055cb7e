//! The `!Send` hyper service: upgrade first, then admit and call the handler, or refuse.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING,
};
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode, Version};
use pin_project_lite::pin_project;

use super::body::{BodyRule, GuardedBody};
use super::bundle::Bundle;
use super::checks::{self, Refused};
use super::connections::Conn;
use super::demo::BodyLeft;
use super::handler::{EnterScope, Handler};
use super::server::ProbeBody;
use super::tally::Tally;
use crate::admit::{Admitted, Refusal};
use crate::callback::caught;
use crate::pool::Recycle;
use crate::signal::{AbortReason, AbortSignal};
use crate::wrapper::Engine;
use crate::ServerCore;

/// Where the embedder made its server (the `HyperServer::new` or `with_scope` call): the mint
/// site of its requests' bundles in builds that record sites (debug, `leak-check`), so that a
/// leak report names the embedder's code rather than this file (QA embed18-3). Nothing in
/// other builds: their request path is what it was.
#[cfg(any(debug_assertions, feature = "leak-check"))]
pub(crate) type MadeAt = &'static std::panic::Location<'static>;
/// See the other `MadeAt`: nothing, where no site is recorded.
#[cfg(not(any(debug_assertions, feature = "leak-check")))]
pub(crate) type MadeAt = ();

/// The caller's [`MadeAt`].
#[track_caller]
#[inline]
pub(crate) fn made_here() -> MadeAt {
    #[cfg(any(debug_assertions, feature = "leak-check"))]
    {
        std::panic::Location::caller()
    }
}

/// What every connection of one server shares: the core, the handler, the scope, the tally.
pub(crate) struct Shared<E: Engine, C: Recycle, H, S> {
    pub(crate) core: ServerCore<E, C>,
    /// The mint site of its requests' bundles (in builds that record one).
    #[cfg_attr(not(any(debug_assertions, feature = "leak-check")), allow(dead_code))]
    pub(crate) made_at: MadeAt,
    pub(crate) handler: H,
    pub(crate) scope: S,
    pub(crate) tally: Rc<Tally>,
    /// Answer `GET /healthz/live` and `GET /healthz/ready` without admission.
    pub(crate) health_checks: bool,
    /// The longest request head served (`Options::max_head`).
    pub(crate) max_head: usize,
    /// The limits of a health probe's body (`Options::probe_max_body`).
    pub(crate) probe_body: ProbeBody,
}

/// The hyper service of one connection (cloning it is one `Rc` increment).
///
/// Per request, in this order (Bun PR 28246's rule): **upgrade** the wrapper; if that fails,
/// or admission is closed, answer `503` with `connection: close` having taken nothing;
/// otherwise **admit** the bundle and call the handler with `this`, the request and the bundle.
pub struct RequestService<E: Engine, C: Recycle, H, S> {
    shared: Rc<Shared<E, C, H, S>>,
    /// What the connection's requests share: the tally, the activity record.
    conn: Rc<Conn>,
}

impl<E: Engine, C: Recycle, H, S> RequestService<E, C, H, S> {
    pub(crate) fn new(shared: Rc<Shared<E, C, H, S>>, conn: Rc<Conn>) -> Self {
        RequestService { shared, conn }
    }

    /// The longest request head served (`Options::max_head`).
    pub(crate) fn max_head(&self) -> usize {
        self.shared.max_head
    }
}

impl<E, C, H, S> RequestService<E, C, H, S>
where
    E: Engine,
    C: Recycle,
    H: Handler<E, C>,
    S: EnterScope<E>,
{
    /// Upgrade first; only then take the bundle. A refusal holds nothing (G4).
    #[inline]
    fn admit(&self) -> Result<(E::Strong, Admitted<C, ()>), Refusal> {
        let core = &self.shared.core;
        self.shared.scope.enter(|scope| {
            let live = core.upgrade_in(scope).ok_or(Refusal::WRAPPER_FINALIZED)?;
            #[cfg(any(debug_assertions, feature = "leak-check"))]
            let admitted = live.admit_at(self.shared.made_at, |_ctx| Ok(()))?;
            #[cfg(not(any(debug_assertions, feature = "leak-check")))]
            let admitted = live.admit(|_ctx| Ok(()))?;
            Ok((live.into_wrapper(), admitted))
        })
    }

    /// A panic is counted at once; the refusal itself once its answer is written (see
    /// [`Conn::refused`]).
    fn count_refusal(&self, refusal: Refusal) {
        if refusal == Refusal::PANICKED {
            self.shared.tally.bump(|s| &mut s.panics);
        }
        self.conn.refused(refusal);
    }
}

impl<E, C, H, S> Service<Request<Incoming>> for RequestService<E, C, H, S>
where
    E: Engine,
    C: Recycle,
    H: Handler<E, C>,
    S: EnterScope<E>,
{
    type Response = Response<GuardedBody<H::Body, C>>;
    type Error = Infallible;
    type Future = Dispatch<H::Future, H::Body, C>;

    #[inline]
    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let conn = Rc::clone(&self.conn);
        let tally = &conn.tally;
        // hyper reads a request once it has the last answer whole (`src/delivery.rs`).
        conn.all_whole();
        conn.set_http10(request.version() == Version::HTTP_10);
        // Whether hyper may still read a body of this request (`Conn::head_room`).
        conn.head_parsed(!hyper::body::Body::is_end_stream(request.body()));
        let read_within_limit = || !conn.head_overdrawn();
        if let Some(refused) = checks::refusal(&request, self.shared.max_head, read_within_limit) {
            // The mio server's head limits (414, 431) and the framing and `Host` hyper would
            // trust and the mio server refuses (400): close, nothing taken.
            drop(request);
            tally.bump(|s| &mut s.rejected);
            let answer = match refused {
                Refused::TooLarge(status) => Fixed::too_large(status),
                Refused::BadRequest(why) => Fixed::closing(StatusCode::BAD_REQUEST, why),
                Refused::UnknownCoding => {
                    let why = "transfer coding not implemented";
                    Fixed::closing(StatusCode::NOT_IMPLEMENTED, why)
                }
            };
            return Dispatch::fixed(answer, conn);
        }
        if let Some(activity) = &conn.activity {
            // Noted here, where the checks borrowed the request anyway (a borrow next to the
            // move into the handler would cost a copy of the request on every request).
            activity.note(request.method(), request.uri().path());
        }
        if self.shared.health_checks {
            if let Some(probe) = probe(&request, tally) {
                return Dispatch::probe(probe, request, conn, self.shared.probe_body);
            }
        }
        // The scope is the embedder's code: a panic in it is this request's `500`, never an
        // unwinding through hyper (the connection's task would die unanswered).
        match caught(|| self.admit()).unwrap_or(Err(Refusal::PANICKED)) {
            Ok((this, admitted)) => {
                let signal = admitted.signal().clone();
                let body_rule = BodyRule::of(request.method());
                let bundle = Bundle::new(admitted, Rc::clone(&conn));
                if let Some(activity) = &conn.activity {
                    activity.begin();
                }
                // A handler may panic before it returns its future (a closure that panics
                // building it): answered `500` as a panic inside the future is, its bundle
                // (dropped while unwinding) ending *dropped*.
                let handler = &self.shared.handler;
                match caught(|| handler.call(this, request, bundle)) {
                    Some(handler) => Dispatch::handling(handler, signal, conn, body_rule),
                    None => {
                        // A bundle the closure gave away before it panicked lives on: counted
                        // once if it ends aborted, as a failing future's (`failed`).
                        watch_own_request(&signal, tally);
                        drop(signal);
                        if let Some(activity) = &conn.activity {
                            activity.end();
                        }
                        tally.bump(|s| &mut s.panics);
                        tally.bump(|s| &mut s.served);
                        conn.served_one();
                        Dispatch::fixed(Fixed::internal_error(), conn)
                    }
                }
            }
            Err(refusal) => {
                drop(request); // nothing was taken; the body is not read
                self.count_refusal(refusal);
                Dispatch::fixed(Fixed::refusal(refusal), conn)
            }
        }
    }
}

impl<E: Engine, C: Recycle, H, S> Clone for RequestService<E, C, H, S> {
    fn clone(&self) -> Self {
        RequestService {
            shared: Rc::clone(&self.shared),
            conn: Rc::clone(&self.conn),
        }
    }
}

impl<E: Engine, C: Recycle, H, S> fmt::Debug for RequestService<E, C, H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestService")
            .field("core", &self.shared.core)
            .finish_non_exhaustive()
    }
}

/// Whether the adapter's answer to `refusal` closes its connection: every refusal's does, the
/// `500` of a panicking admission included (as on the mio server), though the core's
/// [`Refusal::closes_connection`] keeps the connection for an engine's refusal. One rule for
/// the answer (`Fixed::refusal`) and for when the refusal is counted
/// (`Conn::refused`: once its answer is written): the
/// two read different rules, and a panicking admission's `500` was counted `refused` when
/// made, even when its connection was lost before it was written (QA embed28-1).
pub(crate) fn refusal_closes(refusal: Refusal) -> bool {
    refusal == Refusal::PANICKED || refusal.closes_connection()
}

pin_project! {
    /// The future of one request: the handler's future, with its panics caught (`500`), and
    /// the client-gone signal fired if hyper drops it before the handler answered.
    pub struct Dispatch<F, B, C: Recycle> {
        #[pin]
        state: State<F>,
        conn: Rc<Conn>,
        // Whether the answer will have a body, by the request's method.
        body_rule: BodyRule,
        _body: std::marker::PhantomData<fn() -> (B, C)>,
    }

    impl<F, B, C: Recycle> PinnedDrop for Dispatch<F, B, C> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let StateProj::Handling { .. } = this.state.as_mut().project() {
                dropped_unanswered(this.state, this.conn);
            }
        }
    }
}

/// Hyper dropped the request before the handler answered: the connection went away (or the
/// drain force-closed it). Fires the signal while the handler's future (and its listeners) are
/// still alive, then drops that future; its bundle ends with that outcome. Out of line: the
/// answered path's drop stays small.
#[cold]
#[inline(never)]
fn dropped_unanswered<F>(mut state: Pin<&mut State<F>>, conn: &Conn) {
    if let StateProj::Handling { signal, .. } = state.as_mut().project() {
        let tally = &conn.tally;
        if conn.take_lent(signal) {
            // Its bundle is being written on another connection as the answer of a request
            // there (QA embed16-3, embed20-3): that connection ends it, not this one's client
            // (QA embed22-2), told now that this client went (`take_lent`): cut short there,
            // it ends *client gone*, not *dropped* (QA embed23-1). This request got no answer:
            // counted so now, and not again if its bundle ends aborted there (QA embed22-1);
            // unless its signal fired already (the drain deadline), whose abort its outcome
            // will be, counted by it (QA embed22-6).
            if !ends_aborted(request_reason(signal)) {
                tally.bump(|s| &mut s.unanswered_not_aborted);
                watch_own_request(signal, tally);
            }
        } else if signal.state().is_request_out() {
            signal.abort(if tally.is_force_closing() {
                AbortReason::ForceClosed
            } else {
                AbortReason::ClientDisconnected
            });
        } else if !ends_aborted(request_reason(signal)) {
            // Its request has ended without an abort (its bundle, given away, was written
            // whole as another request's answer: *completed*, and a completed request's
            // signal never fires, G8, QA embed21-3; or its handler dropped it: *dropped*), and
            // it gets no answer: counted in `HyperReport::aborted` all the same (QA embed22-1).
            // An abort's end is counted there by its outcome already.
            tally.bump(|s| &mut s.unanswered_not_aborted);
        }
        if let Some(activity) = &conn.activity {
            activity.end();
        }
    }
    // The handler's future is the embedder's: a `Drop` of it that panics is counted, as its
    // other panics are, and does not unwind through hyper.
    if caught(|| state.set(State::Done)).is_none() {
        conn.tally.bump(|s| &mut s.panics);
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        /// The handler runs; `signal` is its request's, to fire if hyper drops it first, and
        /// to tell its bundle from another's (`Admitted::has_signal`).
        Handling { #[pin] handler: F, signal: AbortSignal },
        /// An answer of the adapter's own, taking nothing.
        Fixed { answer: Fixed },
        /// A health probe's answer, given once its request's body is read and dropped (the
        /// probe is kept by the connection: `Conn::hold_probe`).
        Probing,
        /// Answered.
        Done,
    }
}

impl<F, B: hyper::body::Body, C: Recycle> Dispatch<F, B, C> {
    #[inline]
    fn handling(handler: F, signal: AbortSignal, conn: Rc<Conn>, body_rule: BodyRule) -> Self {
        Dispatch {
            state: State::Handling { handler, signal },
            conn,
            body_rule,
            _body: std::marker::PhantomData,
        }
    }

    /// A health probe's answer: at once if its request has no body to read (nearly every
    /// probe), or waits for the client to be told (`100 Continue`: answered from the head
    /// with `connection: close`, as on mio); else once the body is read and dropped.
    #[cold]
    #[inline(never)]
    fn probe(probe: Fixed, request: Request<Incoming>, conn: Rc<Conn>, limits: ProbeBody) -> Self {
        use hyper::body::Body as _;
        let body = request.into_body();
        if probe.close || body.is_end_stream() {
            return Dispatch::fixed(probe, conn);
        }
        if body.size_hint().lower() > limits.max as u64 {
            // A declared length past the limit is refused before any of it is read.
            return Dispatch::fixed(
                Fixed::body_failed(StatusCode::PAYLOAD_TOO_LARGE, &conn),
                conn,
            );
        }
        // A request in progress while its body is read (until `Conn::request_ended`): the
        // eviction at the connection limit judges it by how its body arrives, as a route's
        // (`408` + close when too slow), and the stop's graceful shutdown waits for its answer.
        conn.request_began();
        conn.hold_probe(Box::new(Probing {
            answer: probe,
            body: BodyLeft::within(body, limits.max, limits.timeout, conn.count_began()),
        }));
        Dispatch {
            state: State::Probing,
            conn,
            body_rule: BodyRule::Other,
            _body: std::marker::PhantomData,
        }
    }

    fn fixed(answer: Fixed, conn: Rc<Conn>) -> Self {
        conn.answered_unadmitted();
        Dispatch {
            state: State::Fixed { answer },
            conn,
            body_rule: BodyRule::Other,
            _body: std::marker::PhantomData,
        }
    }
}

type Answer<B, C> = Result<Response<GuardedBody<B, C>>, Infallible>;

/// How a handler's poll ended, when it did.
enum Failure {
    Error,
    Panic,
}

impl<F, B, C> Future for Dispatch<F, B, C>
where
    F: Future<Output = Result<super::Reply<B, C>, super::HandlerError>>,
    B: hyper::body::Body,
    C: Recycle,
{
    type Output = Answer<B, C>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer<B, C>> {
        let mut this = self.project();
        let tally = &this.conn.tally;
        let (handler, signal) = match this.state.as_mut().project() {
            StateProj::Handling { handler, signal } => (handler, signal),
            StateProj::Fixed { answer } => {
                let answer = *answer;
                this.conn.unadmitted_given();
                this.state.set(State::Done);
                return Poll::Ready(Ok(fixed_response(answer, this.conn)));
            }
            StateProj::Probing => return probe_answer(this.state, this.conn, cx),
            StateProj::Done => panic!("a dispatch is polled after it answered"),
        };
        // A panicking handler is answered 500 and its future dropped (its bundle ends
        // *dropped*); the connection and the loop carry on.
        let polled = caught(|| match handler.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(reply)) => Poll::Ready(Ok(reply.response)),
            Poll::Ready(Err(_)) => Poll::Ready(Err(Failure::Error)),
        })
        .unwrap_or(Poll::Ready(Err(Failure::Panic)));
        let mut response = match ready!(polled) {
            Ok(response) => response,
            Err(failure) => failed(failure, signal, tally),
        };
        if !holds_own_bundle(&response, signal) {
            // Another request's bundle answers it, on this connection.
            not_own(&mut response, signal, this.conn);
        }
        // Most answers are a `200` to a request other than `HEAD` or `CONNECT`: one compare
        // decides all three questions its status asks below.
        let plain = response.status() == StatusCode::OK && *this.body_rule == BodyRule::Other;
        if !plain && unsendable(*this.body_rule, response.status()) {
            internal_error_keeping_bundle(&mut response, tally);
        }
        let signal_reason = signal.reason();
        // Hyper's from here: a body the handler dropped instead of returning ends its request
        // dropped, one hyper drops before its end, client gone (unless it has none to write).
        let has_body = plain || this.body_rule.has_body(response.status());
        // The handler's own head: fields or a version hyper would write wrongly, or panic
        // on. Answers without either (most) pay these compares alone.
        if !response.headers().is_empty() || response.version() != Version::HTTP_11 {
            own_head(&mut response, has_body, this.conn);
        }
        response.body_mut().hand_to_hyper(has_body);
        if signal_reason.is_some() {
            // Counted below by that abort (or not at all): not again when its request ends.
            response.body_mut().aborted_at_head();
        }
        // The handler's future is the embedder's: a future type of its own whose `Drop`
        // panics must not lose the answer it made (the panic would unwind through hyper, and
        // the connection's task die unanswered). Counted; the state is `Done` all the same.
        let state = &mut this.state;
        if caught(|| state.set(State::Done)).is_none() {
            tally.bump(|s| &mut s.panics);
        }
        if let Some(activity) = &this.conn.activity {
            activity.end();
        }
        if client_left(signal_reason) {
            // The client went away first (its body failed with the connection): nothing
            // will reach it, and its request ends *client gone* (counted in `aborted`).
        } else {
            if !plain && counts_rejected(&response) {
                tally.bump(|s| &mut s.rejected); // as the mio server counts them
                tally.bump(|s| &mut s.rejected_admitted); // admitted: its outcome is counted
            } else {
                tally.bump(|s| &mut s.served);
                this.conn.served_one();
            }
            if matches!(
                signal_reason,
                Some(AbortReason::DrainDeadline | AbortReason::ForceClosed)
            ) {
                // Answered past the deadline's abort: its outcome is the abort's, but it is
                // not one of the requests that got no answer (`HyperReport::aborted`).
                tally.bump(|s| &mut s.answered_after_abort);
            }
        }
        if this.conn.answers_close() {
            // Keep-alive is off once the server is unready or stopped, or the client has
            // half-closed (`Options::with_half_close`): every answer closes.
            closing_answer(&mut response, this.conn);
        }
        Poll::Ready(Ok(response))
    }
}

/// A handler's answer holding another request's bundle (a runtime whose response was made
/// from the wrong request object): its own request is watched ([`watch_own_request`]), the
/// bundle moves to this connection (`GuardedBody::written_on`), and its own request's signal,
/// if it fired after that request ended, is let go ([`forget_abort_after_end`]).
#[cold]
#[inline(never)]
fn not_own<B: hyper::body::Body, C: Recycle>(
    response: &mut Response<GuardedBody<B, C>>,
    signal: &mut AbortSignal,
    conn: &Rc<Conn>,
) {
    watch_own_request(signal, &conn.tally);
    response.body_mut().written_on(conn);
    forget_abort_after_end(signal);
}

/// An answer not holding its own request's bundle (another request's, or the adapter's `500`
/// for a failed handler) is the only one that can follow its own request's end (its bundle
/// written whole as another's answer: *completed*), and a signal the handler then aborted
/// itself, through a handle kept past that end, is no abort of that request. The dispatch's
/// handle to it is replaced by an unfired one of no request's (a spare of its server's), which
/// the answered path reads as it reads any (`Dispatch::poll`'s `signal.reason()`: nothing
/// added there). Before, that
/// path read the abort: a `ClientDisconnected` made the answer one whose client had gone
/// (counted in none of `served`, `rejected` and `aborted`); a `DrainDeadline` or `ForceClosed`
/// counted it `served` and `answered_after_abort`, which took another request's abort out of
/// `aborted` (QA embed24-1). One allocation, on this path only.
#[cold]
#[inline(never)]
fn forget_abort_after_end(signal: &mut AbortSignal) {
    if signal.state().fired_after_its_request() {
        if let Some(home) = signal.state().home() {
            *signal = AbortSignal::mint(&home); // a spare, reset: no request's
        }
    }
}

/// A poll of a health probe whose body is being read (`Dispatch::probe`): its answer once the
/// body has ended or failed.
#[cold]
#[inline(never)]
fn probe_answer<F, B: hyper::body::Body, C: Recycle>(
    mut state: Pin<&mut State<F>>,
    conn: &Conn,
    cx: &mut Context<'_>,
) -> Poll<Answer<B, C>> {
    let mut probe = conn
        .take_probe()
        .expect("a probe's dispatch is polled without its probe");
    match probe.poll(conn, cx) {
        Poll::Pending => {
            conn.hold_probe(probe);
            Poll::Pending
        }
        Poll::Ready(answer) => {
            conn.request_ended();
            state.set(State::Done);
            Poll::Ready(Ok(fixed_response(answer, conn)))
        }
    }
}

/// A handler that returned `Err` or panicked: counted, and answered `500`, which is counted
/// `served` as its request's answer. Its bundle normally ended with the handler (*dropped*);
/// one the handler gave to a task of its own lives on, and if that request then ends aborted
/// (the drain deadline, a force-close), it is counted once ([`watch_own_request`]).
#[cold]
#[inline(never)]
fn failed<B: hyper::body::Body, C: Recycle>(
    failure: Failure,
    signal: &mut AbortSignal,
    tally: &Rc<Tally>,
) -> Response<GuardedBody<B, C>> {
    match failure {
        Failure::Error => tally.bump(|s| &mut s.failed),
        Failure::Panic => tally.bump(|s| &mut s.panics),
    }
    watch_own_request(signal, tally);
    forget_abort_after_end(signal); // QA embed24-1
    status_response(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_SERVER_ERROR)
}

/// Whether the handler answers with its own request's bundle (or none: an answer that cannot
/// hold one). A handler may answer with another request's (`other.respond(..)`: a runtime whose
/// response was made from the wrong request object), while its own lives on elsewhere, or
/// has ended: a bundle is told by its signal, `own` (the dispatch's handle of its request's),
/// not by its pooled slot, which the handler's own bundle, dropped, gave to the next
/// admission at once (QA embed21-1).
#[inline]
fn holds_own_bundle<B: hyper::body::Body, C: Recycle>(
    response: &Response<GuardedBody<B, C>>,
    own: &AbortSignal,
) -> bool {
    response
        .body()
        .bundle()
        .is_none_or(|bundle| bundle.admitted().has_signal(own))
}

/// The request's answer is counted at its head (`served`, a `500` or another request's
/// bundle's answer) while its own bundle is not the answer's: if that bundle ends aborted
/// later (the drain deadline, a force-close, the client gone), the request is counted in
/// `aborted_after_head`, which `HyperReport::aborted` leaves out, so it is counted once
/// (QA embed15-2, embed16-3). A listener on this path only (none if the signal already fired:
/// a bundle dropped inside the handler).
///
/// An abort after its request ended *completed* (a handle the embedder kept) is not counted:
/// its request did not end aborted (QA embed23-2), and such an abort runs no listener (nor is
/// one added once the request has ended: a request's listeners live at most until its end).
#[cold]
#[inline(never)]
fn watch_own_request(signal: &AbortSignal, tally: &Rc<Tally>) {
    let tally = Rc::clone(tally);
    signal.on_abort(move |reason| {
        if matches!(
            reason,
            AbortReason::ClientDisconnected | AbortReason::DrainDeadline | AbortReason::ForceClosed
        ) {
            tally.bump(|s| &mut s.aborted_after_head);
        }
    });
}

/// The request's abort, if its signal fired while it was out: a signal the embedder aborted
/// through a handle kept past its request's end (a request that ended *completed*, its bundle
/// written whole as another request's answer) says nothing of how that request ended, and the
/// adapter's counts of a request its handler never answered read it as unfired. Before, such
/// a request was counted in none of `served`, `rejected` and `aborted` (taken for one whose
/// abort its outcome counts; QA embed23-2), and so does the answer of a handler that did not
/// answer with its own bundle ([`forget_abort_after_end`], QA embed24-1). The answered path of a
/// handler's own bundle reads the reason as it is: that bundle is still out.
#[cold]
#[inline(never)]
fn request_reason(signal: &AbortSignal) -> Option<AbortReason> {
    signal
        .reason()
        .filter(|_| !signal.state().fired_after_its_request())
}

/// The answer of the adapter's own (`Fixed`), closing while the server is unready or stopped.
#[cold]
#[inline(never)]
fn fixed_response<B: hyper::body::Body, C: Recycle>(
    answer: Fixed,
    conn: &Conn,
) -> Response<GuardedBody<B, C>> {
    let mut response = answer.response(conn.answers_close());
    if conn.is_http10() {
        http10_closing(&mut response);
    }
    response
}

/// Keep-alive is off once the server is unready or stopped: every answer closes.
#[cold]
#[inline(never)]
fn closing_answer<B>(response: &mut Response<B>, conn: &Conn) {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    if conn.is_http10() {
        *response.version_mut() = Version::HTTP_10; // `http10_closing`
    }
}

/// An answer to an HTTP/1.0 request that closes its connection (`connection: close`, the
/// adapter's or the handler's: a handler's fields are looked at in `own_head`, off the path
/// of an answer without any) is handed to hyper as HTTP/1.0, which hyper writes for an
/// HTTP/1.0 peer anyway. As HTTP/1.1, hyper appended `keep-alive` to its `connection` field
/// when the client had asked for keep-alive (its `fix_keep_alive` looks for `keep-alive`
/// only): `connection: close, keep-alive`, then the close; clients that look for
/// `keep-alive` (`ab -k`) reused the closed connection (RFC 9112 §9.3: the answer that closes
/// says `close`). As HTTP/1.0 without `keep-alive`, hyper turns its keep-alive off instead.
#[cold]
#[inline(never)]
fn http10_closing<B>(response: &mut Response<B>) {
    let closes = response.headers().get_all(CONNECTION).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
        })
    });
    if closes {
        *response.version_mut() = Version::HTTP_10;
    }
}

/// Whether a handler's answer with `status` cannot be sent as made: a `1xx` is interim, never
/// a request's answer (RFC 9110 §15.2), and a `101` (or a `2xx` to `CONNECT`, §9.3.6) would
/// switch the connection to another protocol, which the adapter cannot hand a handler (hyper's
/// upgrades are not enabled: hyper would write the `101` and close). Nor is a status past
/// `599` an HTTP status (RFC 9110 §15: the `http` crate takes any three digits, and hyper
/// wrote `600 <none>`). As on the mio server, where a status outside `200..=599` is a `500`.
#[inline]
fn unsendable(body_rule: BodyRule, status: StatusCode) -> bool {
    !(200..600).contains(&status.as_u16())
        || (body_rule == BodyRule::Connect && status.is_success())
}

/// Makes `response` a plain `500` (none of the handler's fields: no `upgrade`), its bundle kept
/// until the `500` is written, as the mio server answers a status it cannot send.
#[cold]
#[inline(never)]
fn internal_error_keeping_bundle<B: hyper::body::Body, C: Recycle>(
    response: &mut Response<GuardedBody<B, C>>,
    tally: &Tally,
) {
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    let headers = response.headers_mut();
    headers.clear();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if response.body_mut().replace_with(INTERNAL_SERVER_ERROR) {
        tally.bump(|s| &mut s.panics);
    }
}

/// The head of a handler's answer, as made: see [`own_version`] and [`own_length`], and
/// [`http10_closing`] for an answer to an HTTP/1.0 request.
#[cold]
#[inline(never)]
fn own_head<B: hyper::body::Body, C: Recycle>(
    response: &mut Response<GuardedBody<B, C>>,
    has_body: bool,
    conn: &Conn,
) {
    own_version(response);
    own_length(response, has_body, &conn.tally);
    if conn.is_http10() {
        http10_closing(response);
    }
}

/// A response version hyper's HTTP/1 writer cannot write (`HTTP/0.9`, `HTTP/3`): it panics,
/// in release builds too, and the panic unwound through hyper (the connection's task dead, no
/// answer, `served` counted, the panic not). The answer is written in HTTP/1.1, as the mio
/// server writes every answer. `HTTP/1.0`, and `HTTP/2` (which hyper writes as `HTTP/1.1`),
/// are hyper's to write.
fn own_version<B: hyper::body::Body, C: Recycle>(response: &mut Response<GuardedBody<B, C>>) {
    let version = response.version();
    if version != Version::HTTP_10 && version != Version::HTTP_2 {
        *response.version_mut() = Version::HTTP_11;
    }
}

/// A `content-length` field of the handler's own (`Reply::headers_mut`): hyper frames the
/// answer by the body's exact length and writes the field as set, so one that is not that
/// length framed the answer wrongly on the wire (a client reading the next answer from inside
/// this one), and a debug build of hyper asserts they match (a panic in the connection's task:
/// no answer, nothing counted). The answer's length is its body's, as the mio server writes
/// it: such a field (or more than one, or one that is not a length) is removed, and hyper
/// writes the body's; beside a `transfer-encoding` of the handler's (which hyper refused to
/// write: no answer), it is removed too (RFC 9112 §6.2). Kept: the field of an answer without
/// a body on the wire (to `HEAD`,
/// `304`) whose body is empty (the length of the representation it stands for: RFC 9110
/// §8.6), and a single one framing a body of no exact length (a stream), which the body then
/// owes as it would owe an exact `size_hint` ([`Conn::declare`]: short of it or past it, the
/// request ends *dropped* and the connection closes). A value hyper cannot read as a length
/// (a sign, whitespace: hyper wrote no answer over a stream) is not one. A panic in the body's
/// `size_hint` or `is_end_stream` here is the handler's: a `500`, counted.
fn own_length<B: hyper::body::Body, C: Recycle>(
    response: &mut Response<GuardedBody<B, C>>,
    has_body: bool,
    tally: &Tally,
) {
    let headers = response.headers();
    let Some(field) = headers.get(CONTENT_LENGTH) else {
        return;
    };
    if headers.contains_key(TRANSFER_ENCODING) {
        // Both: hyper refuses to write the head (the connection closed, no answer). The
        // transfer coding frames it (RFC 9112 §6.2: no `content-length` beside it).
        response.headers_mut().remove(CONTENT_LENGTH);
        return;
    }
    let said = digits(field.as_bytes());
    let single = headers.get_all(CONTENT_LENGTH).iter().nth(1).is_none();
    let body = response.body();
    let Some((exact, ended)) = caught(|| (body.exact_len(), body.says_ended())) else {
        tally.bump(|s| &mut s.panics);
        internal_error_keeping_bundle(response, tally);
        return;
    };
    let stands_for = !has_body && exact == Some(0);
    if said.is_none() || !single || exact.is_some_and(|e| said != Some(e) && !stands_for) {
        response.headers_mut().remove(CONTENT_LENGTH);
        return;
    }
    // A stream under the handler's length: hyper frames the answer by the field, and the
    // body owes it as it would owe an exact `size_hint` (judged as it is paid: short of it or
    // past it, the request ends *dropped* and the connection closes).
    if let (None, true, false, Some(len)) = (exact, has_body, ended, said) {
        if let Some(bundle) = response.body().bundle() {
            bundle.conn().declare(len);
        }
    }
}

/// A `content-length` value as hyper reads it: one or more ASCII digits, nothing else (no
/// sign, no whitespace: hyper refuses to write an answer whose field it cannot read), within
/// `u64`.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Whether a request whose signal says `reason` ends with an outcome that
/// `HyperReport::aborted` counts: *client gone*, *deadline aborted*, *force closed*
/// (`Outcome::after_abort`).
#[cold]
fn ends_aborted(reason: Option<AbortReason>) -> bool {
    matches!(
        reason,
        Some(
            AbortReason::ClientDisconnected | AbortReason::DrainDeadline | AbortReason::ForceClosed
        )
    )
}

/// Whether the request's signal says its client went away before its answer.
#[inline]
fn client_left(reason: Option<AbortReason>) -> bool {
    reason == Some(AbortReason::ClientDisconnected)
}

/// A handler's answer counted `rejected`, not `served`: a `4xx` the handler marked
/// ([`Reply::count_rejected`](super::Reply::count_rejected); the demo routes' for a body that
/// failed). Every other answer a handler made is `served`, as on mio, whose `rejected` counts
/// the server's own refusals. Off the path of a `200`.
#[cold]
#[inline(never)]
fn counts_rejected<B>(response: &Response<B>) -> bool {
    response.status().is_client_error() && response.extensions().get::<Rejection>().is_some()
}

/// The mark of an answer that refuses the client's input ([`Reply::count_rejected`]): counted
/// `rejected`, as the mio server counts its own refusals (a body that broke its framing, came
/// too slowly or too large, which the mio server refuses before any handler runs). Before, the
/// adapter counted every handler's `400`, `408`, `413` and `431` `rejected` (mio: `served`),
/// and the demo routes marked their own `400` for a query they could not use the other way
/// (`probe_client::v18::a_routes_own_400_is_counted_served_on_hyper`; QA embed22-4).
///
/// [`Reply::count_rejected`]: super::Reply::count_rejected
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rejection;

/// The explanations of the adapter's own answers: the reason phrases, as the mio server's
/// (RFC 9110 §15.5, §15.6).
const INTERNAL_SERVER_ERROR: &[u8] = b"Internal Server Error";
const SERVICE_UNAVAILABLE: &[u8] = b"Service Unavailable";
const METHOD_NOT_ALLOWED: &[u8] = b"Method Not Allowed";

/// An answer of the adapter's own with a plain-text `text` (`content-type: text/plain` unless
/// empty: RFC 9110 §8.3, as the mio server's).
fn status_response<B: hyper::body::Body, C: Recycle>(
    status: StatusCode,
    text: &'static [u8],
) -> Response<GuardedBody<B, C>> {
    let mut response = Response::new(GuardedBody::fixed(text));
    *response.status_mut() = status;
    if !text.is_empty() {
        let plain = HeaderValue::from_static("text/plain");
        response.headers_mut().insert(CONTENT_TYPE, plain);
    }
    response
}

/// An answer of the adapter's own, taking nothing: a refusal or a health probe.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fixed {
    status: StatusCode,
    text: &'static [u8],
    close: bool,
    /// The `allow` of a `405` or an `OPTIONS` answer.
    allow: Option<&'static str>,
}

impl Fixed {
    /// `500`, the connection kept: the handler panicked before it returned its future.
    fn internal_error() -> Self {
        Fixed {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            text: INTERNAL_SERVER_ERROR,
            close: false,
            allow: None,
        }
    }

    /// `400` (or `501`) with `connection: close`: input the adapter will not frame or route
    /// (`checks`).
    fn closing(status: StatusCode, why: &'static str) -> Self {
        Fixed {
            status,
            text: why.as_bytes(),
            close: true,
            allow: None,
        }
    }

    /// `414` or `431` with `connection: close`: a head over `max_head` (`checks`).
    fn too_large(status: StatusCode) -> Self {
        Fixed {
            status,
            text: status.canonical_reason().unwrap_or("too large").as_bytes(),
            close: true,
            allow: None,
        }
    }

    /// `400`, `408` or `413` with `connection: close`, explained by its reason phrase as the
    /// demo routes' (`413 Content Too Large`): a health probe's body failed.
    fn failed_body(status: StatusCode) -> Self {
        Fixed {
            status,
            text: crate::admit::status::reason_phrase(status.as_u16()),
            close: true,
            allow: None,
        }
    }

    /// [`Fixed::failed_body`] for a body refused before it is read, counted `rejected` now.
    fn body_failed(status: StatusCode, conn: &Conn) -> Self {
        conn.tally.bump(|s| &mut s.rejected);
        Fixed::failed_body(status)
    }

    /// `503` (or the refusal's status), with `connection: close`: the refusal holds nothing.
    fn refusal(refusal: Refusal) -> Self {
        let close = refusal_closes(refusal);
        if refusal == Refusal::PANICKED {
            return Fixed {
                close,
                ..Fixed::internal_error()
            };
        }
        Fixed {
            status: StatusCode::from_u16(refusal.status())
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            text: SERVICE_UNAVAILABLE,
            close,
            allow: None,
        }
    }

    fn response<B: hyper::body::Body, C: Recycle>(
        self,
        closing: bool,
    ) -> Response<GuardedBody<B, C>> {
        let mut response = status_response(self.status, self.text);
        let headers = response.headers_mut();
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        if self.close || closing {
            let close = HeaderValue::from_static("close");
            response.headers_mut().insert(CONNECTION, close);
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // RFC 9110's phrase, as the demo routes' (the `http` crate's is the old one).
            let phrase = hyper::ext::ReasonPhrase::from_static(b"Content Too Large");
            response.extensions_mut().insert(phrase);
        }
        response
    }
}

/// A health probe sent with a body (`Dispatch::probe`): its answer waits while the body is
/// read and dropped, as the mio server reads every body whole before it answers; a body
/// arriving too slowly at the connection limit is evicted as a route's is (`408` + close). Before, the
/// probe was answered from its head, the body never read: `200` + close to a broken chunked
/// body or one past the limit (mio: `400`, `413`), and a whole chunked body closed the
/// connection, losing the request behind it
/// (`probe_client::v17::a_probe_with_a_body_is_answered_for_its_body_on_hyper`).
pub(crate) struct Probing {
    answer: Fixed,
    body: BodyLeft,
}

impl Probing {
    /// The probe's answer once the body has ended whole (with `connection: close` after a
    /// trailer section, as the demo routes answer), else the error the body earned (`400`,
    /// `408`, `413`, with `connection: close`, counted `rejected`).
    fn poll(&mut self, conn: &Conn, cx: &mut Context<'_>) -> Poll<Fixed> {
        let Poll::Ready(end) = self.body.poll_unadmitted(conn, cx) else {
            // Its body still coming at the drain deadline: the deadline's `503` + close, as
            // the mio loops answer a request not whole then (and a route's here), counted in
            // the last step's `answered` once written, as theirs is (QA client25-1, 26-2).
            if !conn.tally.is_past_deadline() {
                conn.wake_at_deadline(cx);
                return Poll::Pending;
            }
            conn.answered_at_end();
            return Poll::Ready(Fixed::failed_body(StatusCode::SERVICE_UNAVAILABLE));
        };
        Poll::Ready(match end {
            // Readiness is judged when the answer is given, as on mio (which answers once the
            // body is whole): a stop that came while the body arrived makes it `503`.
            Ok(closes) if self.answer.text == READY && conn.tally.is_closing() => Fixed {
                status: StatusCode::SERVICE_UNAVAILABLE,
                text: UNREADY,
                close: self.answer.close || closes,
                allow: None,
            },
            Ok(closes) => Fixed {
                close: self.answer.close || closes,
                ..self.answer
            },
            Err(Some(status)) => {
                conn.tally.bump(|s| &mut s.rejected);
                Fixed::failed_body(status)
            }
            // The client reset the connection: nothing will reach it, nothing is counted.
            Err(None) => Fixed::failed_body(StatusCode::BAD_REQUEST),
        })
    }
}

/// The texts of `/healthz/ready`'s answers.
const READY: &[u8] = b"ready";
const UNREADY: &[u8] = b"unready";

/// `GET /healthz/live`: 200 until the process exits. `GET /healthz/ready`: 200 while the
/// server admits requests and is not going down, 503 from the unready phase on. The probe
/// paths are resources, as on the mio loops (`Dispatcher::probe_other_method`): `HEAD` is
/// answered as `GET` (hyper writes no body), `OPTIONS` is `204` and another method the
/// server knows `405`, both with `allow: GET, HEAD` (RFC 9110 §9.3.2, §9.3.7, §15.5.6); an
/// unknown method goes to the handler (its `501`). A client waiting for `100 Continue` with a
/// body to come gets its answer at once, with `connection: close` (the body is not read: RFC
/// 9110 §10.1.1), as on the mio loops; before, the answer said nothing of the body, and the
/// connection stayed open for it.
fn probe(request: &Request<Incoming>, tally: &Tally) -> Option<Fixed> {
    let path = request.uri().path();
    if path.len() < "/healthz/live".len() || !path.starts_with("/healthz/") {
        return None; // nearly every request: a length compare
    }
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        return probe_other_method(request, method, path);
    }
    let (status, text): (_, &'static [u8]) = match path {
        "/healthz/live" => (StatusCode::OK, b"live"),
        "/healthz/ready" if tally.is_closing() => (StatusCode::SERVICE_UNAVAILABLE, UNREADY),
        "/healthz/ready" => (StatusCode::OK, READY),
        _ => return None,
    };
    Some(Fixed {
        status,
        text,
        close: checks::awaits_continue(request),
        allow: None,
    })
}

/// A probe path with a method other than `GET` or `HEAD`: see [`probe`].
#[cold]
fn probe_other_method(request: &Request<Incoming>, method: &Method, path: &str) -> Option<Fixed> {
    const KNOWN: [Method; 6] = [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    if !matches!(path, "/healthz/live" | "/healthz/ready") || !KNOWN.contains(method) {
        return None;
    }
    let (status, text): (_, &'static [u8]) = match *method {
        Method::OPTIONS => (StatusCode::NO_CONTENT, b""),
        _ => (StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED),
    };
    Some(Fixed {
        status,
        text,
        close: checks::awaits_continue(request),
        allow: Some("GET, HEAD"),
    })
}
