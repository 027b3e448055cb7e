//! The handler's bundle: the admitted request's guards, ended exactly once with its outcome.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use hyper::body::Body;
use hyper::Response;

use super::body::GuardedBody;
use super::connections::Conn;
use crate::admit::{Admitted, Outcome};
use crate::pool::Recycle;
use crate::signal::{AbortReason, AbortSignal, ListenerKey};

/// What an admitted request holds: its ticket, pooled context and abort signal (an
/// [`Admitted`] bundle), handed to the handler and then to the response body.
///
/// The handler gets it by value and gives it back with [`respond`](Bundle::respond): the
/// response body then holds it, so **the request lives as long as its response body** and ends
/// when the body's last frame is written. There is no other way to make a [`Reply`], so a
/// handler cannot answer and keep (or lose) the request's guards.
///
/// # Drop
///
/// Dropping the bundle without responding (or dropping the [`Reply`] instead of returning it)
/// ends the request at once: outcome *dropped* (the handler returned an error or panicked) and its abort signal fires, or *client gone* when
/// hyper dropped the handler's future because the connection went away (the adapter fires the
/// signal with [`AbortReason::ClientDisconnected`] first, so the handler's listeners see it).
/// A signal the drain deadline aborted makes the outcome *deadline aborted* whatever comes
/// after (the first cause wins).
///
/// # Examples
///
/// One request answered through [`respond`](Bundle::respond), one whose handler fails (the
/// bundle dropped with its future: `500`, *dropped*):
///
/// ```
/// use std::io::{Read, Write};
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use hyper::{body::Incoming, Request};
/// use reqguard::engines::Heap;
/// use reqguard::tokio_hyper::{run, Bundle, HandlerError, HyperServer};
/// use reqguard::{Config, ServerCore};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let handler = |_this, request: Request<Incoming>, bundle: Bundle| async move {
///     assert!(!bundle.signal().is_aborted());
///     if request.uri().path() == "/fail" {
///         return Err(HandlerError::from("no answer")); // drops the bundle
///     }
///     let body = Full::new(Bytes::from_static(b"hello"));
///     Ok(bundle.respond(hyper::Response::new(body)))
/// };
/// let server = HyperServer::new(core, handler);
/// let get = |addr, path: &str| {
///     let mut client = std::net::TcpStream::connect(addr).unwrap();
///     let head = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
///     client.write_all(head.as_bytes()).unwrap();
///     let mut answer = String::new();
///     client.read_to_string(&mut answer).unwrap();
///     answer
/// };
/// let (done, stop) = tokio::sync::oneshot::channel::<[String; 2]>();
/// let answers = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let kept = answers.clone();
/// let report = run(
///     server,
///     "127.0.0.1:0".parse().unwrap(),
///     move |addr| {
///         std::thread::spawn(move || done.send([get(addr, "/"), get(addr, "/fail")]).unwrap());
///     },
///     async move { kept.borrow_mut().extend(stop.await.unwrap()) },
/// )?;
/// assert!(answers.borrow()[0].starts_with("HTTP/1.1 200 OK"));
/// assert!(answers.borrow()[1].starts_with("HTTP/1.1 500"));
/// assert_eq!((report.outcomes.completed, report.outcomes.dropped), (1, 1));
/// assert_eq!(report.leaked, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "dropping the bundle ends the request as dropped (its abort signal fires)"]
#[clippy::has_significant_drop]
pub struct Bundle<C: Recycle = ()> {
    admitted: Admitted<C, ()>,
    /// Dropped after `admitted` (field order): the request's end is done when the
    /// connection hears of it.
    busy: Busy,
}

/// Keeps the request's connection busy (never evicted) until the request ends.
struct Busy(Rc<Conn>);

impl Drop for Busy {
    #[inline]
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// The response a handler built with [`Bundle::respond`]: its body holds the bundle.
#[must_use = "a reply does nothing unless returned to the adapter"]
pub struct Reply<B: Body, C: Recycle = ()> {
    pub(crate) response: Response<GuardedBody<B, C>>,
}

impl<C: Recycle> Bundle<C> {
    #[inline]
    pub(crate) fn new(admitted: Admitted<C, ()>, conn: Rc<Conn>) -> Self {
        conn.request_began();
        Bundle {
            admitted,
            busy: Busy(conn),
        }
    }

    /// The admitted guards: ticket, context, signal activity ref and request object.
    pub fn admitted(&self) -> &Admitted<C, ()> {
        &self.admitted
    }

    /// The request's abort signal.
    pub fn signal(&self) -> &AbortSignal {
        self.admitted().signal()
    }

    /// The request's pooled context.
    pub fn context(&mut self) -> &mut C {
        self.admitted.context_mut()
    }

    /// A future that resolves when the request's signal is aborted (client gone, drain
    /// deadline), with the reason. Registers one listener on first poll.
    pub fn aborted(&self) -> Aborted {
        Aborted::of(self.signal())
    }

    /// Gives the bundle to `response`'s body: the request ends when its last frame is written.
    ///
    /// # Panics
    ///
    /// If the body's `is_end_stream` or `size_hint` panics: they are asked here first, as
    /// hyper asks them before it writes the head, so that such a panic is the handler's
    /// (answered `500`, counted, the request *dropped*), not one that unwinds through hyper
    /// (the connection's task dying with no answer). Free for a body whose answers cannot
    /// panic (`Full`): unused, they are not computed.
    #[inline]
    pub fn respond<B: Body>(self, response: Response<B>) -> Reply<B, C> {
        let (parts, body) = response.into_parts();
        if !body.is_end_stream() {
            let _ = body.size_hint();
        }
        Reply {
            response: Response::from_parts(parts, GuardedBody::holding(body, self)),
        }
    }

    /// What the requests of its connection share.
    #[inline]
    pub(crate) fn conn(&self) -> &Rc<Conn> {
        &self.busy.0
    }

    /// Its answer is written on `conn` (the handler of a request there answered with this
    /// bundle, not its own): from now on the request keeps that connection busy, and its
    /// body's length, its end and its counts are that connection's and that server's, not the
    /// ones of the connection it arrived on, which may be writing an answer of its own (QA
    /// embed20-3).
    #[cold]
    pub(crate) fn move_to(&mut self, conn: &Rc<Conn>) {
        if Rc::ptr_eq(&self.busy.0, conn) {
            return;
        }
        conn.request_began();
        // Its own handler's future, dropped there (its client gone), leaves it to `conn`.
        self.busy.0.lent_away(self.admitted.signal(), conn);
        // The old `Busy` drops: as far as the connection it arrived on knows, it has ended.
        self.busy = Busy(Rc::clone(conn));
    }

    /// The response body wrote its last frame.
    #[inline]
    pub(crate) fn complete(self) {
        self.busy.0.all_whole(); // hyper has its last frame (`src/delivery.rs`)
        self.admitted.complete(); // unless an earlier abort named another outcome
    }

    /// Hyper dropped the response body before its last frame: the client went away, or the
    /// server force-closed the connection at the end of a drain. The core fires the signal
    /// once and counts the outcome (the first cause wins: a deadline abort stays one).
    ///
    /// A bundle lent to another connection's request's answer ([`Bundle::move_to`]) cut short
    /// there: the client that went is that other request's, not this one's. This request ends
    /// *dropped* (its bundle dropped without completing its answer), its signal fired
    /// `Dropped`, not `ClientDisconnected`, so that its own handler, still serving its own
    /// client, is not told that client went, and its later answer there is counted `served`
    /// (QA embed23-1). Unless its own client went too (its handler's future dropped there
    /// first: [`Conn::take_lent`]): *client gone*; or its own server force-closed its own
    /// connection first (a bundle lent to another server's request): *force closed* (QA
    /// embed24-2).
    pub(crate) fn cut_short(self) {
        let conn = &self.busy.0;
        let outcome = if conn.tally.is_force_closing() {
            Outcome::ForceClosed
        } else {
            match conn.take_lent_in(self.admitted.signal()) {
                Some(None) => Outcome::Dropped,
                // Its own connection closed first: by its client, or by its own server's
                // force-close (another server's: QA embed24-2).
                Some(Some(orphaned)) => orphaned,
                None => Outcome::ClientGone,
            }
        };
        self.admitted.end(outcome);
    }
}

impl<C: Recycle> fmt::Debug for Bundle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("admitted", &self.admitted)
            .finish_non_exhaustive()
    }
}

impl<B: Body, C: Recycle> Reply<B, C> {
    /// The response head, to add headers after [`Bundle::respond`]. The answer is framed by
    /// its body, as on the mio server: a `content-length` that is not the body's exact length
    /// (or several, or one that is not a length, or one beside a `transfer-encoding`) is
    /// removed and hyper writes the body's (docs/hyper.md, "Limits and differences").
    pub fn headers_mut(&mut self) -> &mut hyper::HeaderMap {
        self.response.headers_mut()
    }

    /// The status code.
    pub fn status(&self) -> hyper::StatusCode {
        self.response.status()
    }

    /// Counts this answer in [`HyperStats::rejected`](super::HyperStats::rejected), not in
    /// `served`, if its status is a `4xx`: for an answer that refuses the client's input as
    /// the server's own refusals do (a request body that broke its framing, came too slowly
    /// or was too large: the mio server refuses such a request before any handler runs, and
    /// counts it `rejected`). Unmarked, every answer a handler makes is `served`, whatever its
    /// status, as on the mio server (docs/hyper.md, "When does the request end?"). The demo
    /// routes mark theirs so.
    pub fn count_rejected(&mut self) {
        self.response
            .extensions_mut()
            .insert(super::service::Rejection);
    }
}

impl<B: Body, C: Recycle> fmt::Debug for Reply<B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.response.status())
            .finish_non_exhaustive()
    }
}

/// Resolves with the reason when a request's signal is aborted; from [`Bundle::aborted`].
///
/// It registers one listener on the signal when first polled, and takes it back when dropped
/// before the abort: a handler may make one per turn of a loop (a `select!` on
/// `bundle.aborted()` and its next chunk) without the listeners piling up.
///
/// A request that completes never fires its signal (G8): an `Aborted` kept past the request's
/// end (moved into a spawned task) then waits forever. Select it against the work it guards.
#[must_use = "futures do nothing unless polled"]
pub struct Aborted {
    signal: AbortSignal,
    waker: Option<(Rc<Cell<Option<Waker>>>, ListenerKey)>,
}

impl Aborted {
    /// Resolves when `signal` is aborted.
    pub(crate) fn of(signal: &AbortSignal) -> Aborted {
        Aborted {
            signal: signal.clone(),
            waker: None,
        }
    }
}

impl Future for Aborted {
    type Output = AbortReason;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<AbortReason> {
        if let Some(reason) = self.signal.reason() {
            return Poll::Ready(reason);
        }
        // Cloning the waker is the executor's code, which may abort this signal (QA
        // embed33-1: read before the clone only, the abort came with no listener in place and
        // the future waited for a wake-up that never came): cloned first, read again after.
        let waker = cx.waker().clone();
        if let Some(reason) = self.signal.reason() {
            return Poll::Ready(reason);
        }
        match &self.waker {
            // The waker it replaces is dropped (the executor's code again): an abort from there
            // finds this one in place and wakes it.
            Some((slot, _)) => slot.set(Some(waker)),
            None => {
                let slot = Rc::new(Cell::new(Some(waker)));
                let listener = Rc::clone(&slot);
                let key = self.signal.on_abort_keyed(move |_| {
                    if let Some(waker) = listener.take() {
                        waker.wake();
                    }
                });
                // Not aborted a moment ago, so the listener is in.
                self.waker = key.map(|key| (slot, key));
            }
        }
        Poll::Pending
    }
}

impl Drop for Aborted {
    /// Takes its listener back if the signal has not fired (a dropped `select!` branch).
    fn drop(&mut self) {
        if let Some((_, key)) = self.waker.take() {
            self.signal.remove_listener(key);
        }
    }
}

impl fmt::Debug for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aborted")
            .field("signal", &self.signal)
            .finish()
    }
}
