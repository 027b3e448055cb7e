//! The response body that holds the request's bundle until its last frame is written.

use std::fmt;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Method, StatusCode};
use pin_project_lite::pin_project;

use super::bundle::Bundle;
use super::connections::{Conn, Owing};
use crate::callback::{call_caught, caught};
use crate::pool::Recycle;
use crate::signal::AbortReason;

/// The error type of a [`GuardedBody`]: the handler body's own error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// The response body the adapter hands to hyper: the handler's body, or a fixed answer of
    /// the adapter's own (`503`, `500`), holding the request's [`Bundle`] when there is one.
    ///
    /// The bundle ends *completed* right after the body yields its last frame (hyper may drop
    /// a body without polling it to the end once it says [`is_end_stream`](Body::is_end_stream),
    /// and drops the body of an answer that has none unpolled, right after writing its head:
    /// to `HEAD`, `204`, `304`; a handler's `1xx` is a `500`: `service::unsendable`), and *client gone* (or *force
    /// closed*) when hyper drops the body before that. A body error mid-stream, a panic in the
    /// body's code, a reply the handler dropped instead of returning it, or a body that yields
    /// another length than the exact [`size_hint`](Body::size_hint) hyper framed the answer by
    /// (the answer on the wire is not the one made) ends it *dropped*.
    pub struct GuardedBody<B: Body, C: Recycle = ()> {
        #[pin]
        source: Source<B>,
        bundle: Option<Bundle<C>>,
        // Whether the adapter handed it to hyper (until then it is the handler's, in its
        // `Reply`), and whether hyper writes it (pin-project-lite takes no doc comment on a
        // field).
        handed: Handed,
        // Whether its request's signal had fired when its answer was counted at its head
        // (`aborted_at_head`): that count was the abort's, and `ending` adds none. Also set
        // for another request's bundle (`written_on`), whose own dispatch counts it.
        fired_at_head: bool,
    }

    impl<B: Body, C: Recycle> PinnedDrop for GuardedBody<B, C> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if let Some(bundle) = this.bundle.take() {
                let fired_at_head = *this.fired_at_head;
                match *this.handed {
                    // The handler dropped its reply instead of returning it (nothing of it
                    // was written, nor counted), or its body panicked under hyper's poll
                    // (nothing else of the request's runs there): the request ends *dropped*,
                    // as a handler's error or panic ends it, and the body's code is not called
                    // again.
                    Handed::No | Handed::Broken | Handed::Flushed => drop(bundle),
                    _ if std::thread::panicking() => ending(bundle, fired_at_head, false),
                    // Hyper wrote the head of an answer without a body and let the body go.
                    Handed::Bodiless => completed(bundle, fired_at_head),
                    Handed::WithBody if this.source.is_end_stream() => {
                        completed(bundle, fired_at_head);
                    }
                    Handed::WithBody => match bundle.conn().owing() {
                        // hyper wrote the whole length it was told and stops there, whether
                        // the body says it has ended or not: complete, unless it had more.
                        Owing::Nothing if !yields_more(this.source.as_mut()) => {
                            completed(bundle, fired_at_head);
                        }
                        // More than it said: hyper cut the answer at the length. Dropped.
                        Owing::Nothing | Owing::Overpaid => ending(bundle, fired_at_head, false),
                        Owing::More | Owing::Unframed => {
                            count_aborted_after_head(&bundle, fired_at_head, true);
                            bundle.cut_short();
                        }
                    },
                }
            }
            // The handler's body is the embedder's (an engine's stream): a `Drop` of it that
            // panics must not unwind through hyper, which drops a body before it has flushed
            // its last frame (the answer would be lost with the connection's task).
            let source = &mut this.source;
            call_caught(|| source.set(Source::Fixed { data: None }));
        }
    }
}

/// Its answer was counted at its head (`served`, or `rejected`) with its signal unfired
/// (`fired_at_head` false): if the request ends *client gone*, *deadline aborted* or *force
/// closed* (its signal fired since with that reason, or `cut`: the body is cut short now), it
/// is counted in `HyperStats::aborted_after_head`, which `HyperReport::aborted` leaves out,
/// so the request is counted once. Before the bundle ends (its end runs user code).
#[inline]
fn count_aborted_after_head<C: Recycle>(bundle: &Bundle<C>, fired_at_head: bool, cut: bool) {
    let ends_aborted = match bundle.signal().reason() {
        None => cut,
        Some(reason) => matches!(
            reason,
            AbortReason::ClientDisconnected | AbortReason::DrainDeadline | AbortReason::ForceClosed
        ),
    };
    if ends_aborted && !fired_at_head {
        bundle.conn().tally.bump(|s| &mut s.aborted_after_head);
    }
}

/// The bundle of an answer counted at its head ends *completed* (or as an abort since named).
#[inline]
fn completed<C: Recycle>(bundle: Bundle<C>, fired_at_head: bool) {
    count_aborted_after_head(&bundle, fired_at_head, false);
    bundle.complete();
}

/// The bundle of an answer counted at its head ends *dropped* (or as an abort since named).
#[cold]
#[inline(never)]
fn ending<C: Recycle>(bundle: Bundle<C>, fired_at_head: bool, cut: bool) {
    count_aborted_after_head(&bundle, fired_at_head, cut);
    drop(bundle);
}

/// A handler body that hyper let go once it had written the exact length the body gave, and
/// that did not say it had ended: polled once more (outside hyper, no waker: nothing will
/// poll it again), it is honest if it ends or has nothing yet, and had more than it said if it
/// yields data. A panic there (the embedder's code, caught) counts as more.
#[cold]
#[inline(never)]
fn yields_more<B: Body>(source: Pin<&mut Source<B>>) -> bool {
    let SourceProj::Handler { body } = source.project() else {
        return false;
    };
    let mut cx = Context::from_waker(Waker::noop());
    caught(|| match body.poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.data_ref().is_some_and(|data| data.has_remaining()),
        _ => false,
    })
    .unwrap_or(true)
}

/// Where a [`GuardedBody`] is: still the handler's, or hyper's and written, or hyper's with
/// no body to write (RFC 9110 section 6.4.1; hyper's `can_have_body`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handed {
    No,
    WithBody,
    Bodiless,
    /// Handed, then broken off at its last frame (an empty frame given in its place): hyper's
    /// turn to flush comes at the next poll, which returns `Pending` (as [`break_off`]).
    Broken,
    /// Handed, broken off, and hyper had its turn to flush ([`break_off`]): the next poll fails.
    Flushed,
}

/// What of a request decides whether its answer has a body on the wire (RFC 9110 section
/// 6.4.1): its method, kept in one byte until the answer's status is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyRule {
    /// `HEAD`: never a body.
    Head,
    /// `CONNECT`: no body with a `2xx`.
    Connect,
    /// Any other method: a body unless `1xx`, `204` or `304`.
    Other,
}

impl BodyRule {
    #[inline]
    pub(crate) fn of(method: &Method) -> Self {
        if method == Method::HEAD {
            BodyRule::Head
        } else if method == Method::CONNECT {
            BodyRule::Connect
        } else {
            BodyRule::Other
        }
    }

    /// Whether the answer with `status` has a body (hyper's `can_have_body`).
    #[inline]
    pub(crate) fn has_body(self, status: StatusCode) -> bool {
        match self {
            BodyRule::Head => false,
            BodyRule::Connect if status.is_success() => false,
            _ => {
                !(status.is_informational()
                    || status == StatusCode::NO_CONTENT
                    || status == StatusCode::NOT_MODIFIED)
            }
        }
    }
}

pin_project! {
    #[project = SourceProj]
    enum Source<B> {
        Handler { #[pin] body: B },
        Fixed { data: Option<Bytes> },
    }
}

impl<B: Body> Source<B> {
    fn is_end_stream(&self) -> bool {
        match self {
            Source::Handler { body } => body.is_end_stream(),
            Source::Fixed { data } => data.is_none(),
        }
    }
}

impl<B: Body, C: Recycle> GuardedBody<B, C> {
    #[inline]
    pub(crate) fn holding(body: B, bundle: Bundle<C>) -> Self {
        GuardedBody {
            source: Source::Handler { body },
            bundle: Some(bundle),
            handed: Handed::No,
            fired_at_head: false,
        }
    }

    /// The adapter hands the body to hyper: from now on the request ends with what hyper does
    /// with it (the last frame written, or no body to write: completed; dropped before the
    /// last frame: client gone). `has_body` from [`BodyRule::has_body`].
    #[inline]
    pub(crate) fn hand_to_hyper(&mut self, has_body: bool) {
        self.handed = if has_body {
            Handed::WithBody
        } else {
            Handed::Bodiless
        };
    }

    /// Its request's signal had fired when its answer was counted (at its head): that count
    /// was the abort's (`answered_after_abort`; or none: the client had gone), so its end adds
    /// none (`count_aborted_after_head`).
    #[cold]
    pub(crate) fn aborted_at_head(&mut self) {
        self.fired_at_head = true;
    }

    /// Replaces the handler's body with `text`, keeping the bundle: the handler's answer could
    /// not go on the wire as it was made (a `1xx`: `service::unsendable`), and its request
    /// ends with the adapter's answer as it would have with the handler's. Returns whether the
    /// handler body's `Drop` panicked (the embedder's code: counted by the caller).
    pub(crate) fn replace_with(&mut self, text: &'static [u8]) -> bool {
        let source = &mut self.source;
        let data = Some(Bytes::from_static(text));
        call_caught(|| *source = Source::Fixed { data })
    }

    /// The exact length the body gives (its `size_hint`, the embedder's code: the caller
    /// catches), without counting it owed as hyper's asking does.
    #[cold]
    pub(crate) fn exact_len(&self) -> Option<u64> {
        match &self.source {
            Source::Handler { body } => body.size_hint().exact(),
            Source::Fixed { data } => Some(data.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }

    /// Whether the body says it has ended (its `is_end_stream`: the embedder's code, the
    /// caller catches).
    #[cold]
    pub(crate) fn says_ended(&self) -> bool {
        self.source.is_end_stream()
    }

    /// The request's bundle, while the body holds it.
    pub(crate) fn bundle(&self) -> Option<&Bundle<C>> {
        self.bundle.as_ref()
    }

    /// The body is written on `conn`, which may not be its bundle's (an answer made with
    /// another request's bundle, of another connection or another server): the bundle moves
    /// there, so what the body owes, pays and completes is that connection's (QA embed20-3).
    #[cold]
    #[inline(never)]
    pub(crate) fn written_on(&mut self, conn: &Rc<Conn>) {
        if let Some(bundle) = &mut self.bundle {
            bundle.move_to(conn);
        }
        // The answer's head is counted for the request it answers; this bundle's request is
        // counted by its own dispatch (`service::dropped_unanswered`, `watch_own_request`):
        // its end here adds no `aborted_after_head` (QA embed22-3).
        self.fired_at_head = true;
    }

    /// An answer of the adapter's own, holding nothing (a refusal, a `500`).
    pub(crate) fn fixed(text: &'static [u8]) -> Self {
        GuardedBody {
            source: Source::Fixed {
                data: Some(Bytes::from_static(text)),
            },
            bundle: None,
            handed: Handed::No,
            fired_at_head: false,
        }
    }
}

impl<B, C> Body for GuardedBody<B, C>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    C: Recycle,
{
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let mut frame = match this.source.project() {
            SourceProj::Fixed { data } => return Poll::Ready(data.take().map(Frame::data).map(Ok)),
            SourceProj::Handler { mut body } => {
                if matches!(*this.handed, Handed::Broken | Handed::Flushed) {
                    if *this.handed == Handed::Broken {
                        *this.handed = Handed::Flushed;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    return Poll::Ready(Some(Err(BrokenLength.into())));
                }
                let frame = std::task::ready!(body.as_mut().poll_frame(cx));
                match frame {
                    Some(Ok(frame)) if !body.is_end_stream() => {
                        let whole = match pay(&frame, this.bundle) {
                            Owing::More | Owing::Unframed => true,
                            owing => {
                                paid_in_full(owing, body, this.bundle, *this.fired_at_head, cx)
                            }
                        };
                        if whole {
                            return Poll::Ready(Some(Ok(frame)));
                        }
                        if let Some(bundle) = this.bundle.take() {
                            ending(bundle, *this.fired_at_head, false);
                        }
                        return break_off(this.handed, cx);
                    }
                    Some(Err(err)) => {
                        // The handler's body failed: dropped.
                        if let Some(bundle) = this.bundle.take() {
                            ending(bundle, *this.fired_at_head, false);
                        }
                        return Poll::Ready(Some(Err(err.into())));
                    }
                    Some(Ok(frame)) => Some(frame),
                    None => None,
                }
            }
        };
        // The last frame (or the end): the request is complete, unless the answer on the wire
        // would not be the one made: the body gave less than the length hyper frames it by, or
        // more. Short with its last frame, hyper writes it and closes the connection (an
        // incomplete answer); at its end, or past the length, the answer is broken off (hyper
        // would fail with what it holds unflushed, or cut the frame at the length, an answer
        // that looks whole). Dropped either way.
        if let Some(bundle) = this.bundle.take() {
            let len = frame
                .as_ref()
                .and_then(Frame::data_ref)
                .map_or(0, Bytes::len);
            let fired_at_head = *this.fired_at_head;
            match bundle.conn().settle(len) {
                Owing::More if frame.is_some() => ending(bundle, fired_at_head, false),
                Owing::More | Owing::Overpaid => {
                    // An empty frame in its place, and not ended: hyper polls again, and the
                    // body breaks off then (`Handed::Broken`). (A `return` here made every answer's
                    // last frame about 45 instructions dearer in hyper's write loop.)
                    ending(bundle, fired_at_head, false);
                    *this.handed = Handed::Broken;
                    frame = Some(Frame::data(Bytes::new()));
                }
                Owing::Nothing | Owing::Unframed => completed(bundle, fired_at_head),
            }
        }
        Poll::Ready(frame.map(Ok))
    }

    /// A body broken off at its last frame has not ended: hyper polls it again, and it breaks
    /// off then (`Handed::Broken`).
    #[inline]
    fn is_end_stream(&self) -> bool {
        self.handed != Handed::Broken && self.source.is_end_stream()
    }

    /// Asked by hyper once, before the head: an exact hint is the length hyper frames the
    /// answer by (`content-length`), which the body then owes (checked as it is paid). Also
    /// for a fixed answer holding a bundle (a handler's `1xx` made a `500`), so that what is
    /// owed is always this body's, never the connection's previous one.
    fn size_hint(&self) -> SizeHint {
        let hint = match &self.source {
            Source::Handler { body } => body.size_hint(),
            Source::Fixed { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        };
        if let Some(bundle) = &self.bundle {
            bundle.conn().owe(hint.exact());
        }
        hint
    }
}

/// A data frame of the handler body, not its last, pays what the body owes: where it stands
/// then.
#[inline]
fn pay<C: Recycle>(frame: &Frame<Bytes>, bundle: &Option<Bundle<C>>) -> Owing {
    match (frame.data_ref(), bundle) {
        (Some(data), Some(bundle)) => bundle.conn().pay(data.len()),
        _ => Owing::Unframed,
    }
}

/// Whether a body that has paid the whole length hyper frames its answer by, without saying it
/// has ended, ends there.
enum Ends {
    /// It ended (or yields nothing more but trailers).
    Now,
    /// It has more data, failed, or panicked: the length was a lie.
    Later,
    /// Not known yet (`Pending`): judged when hyper lets it go (`yields_more`).
    Unknown,
}

/// A data frame, not the body's last, that pays the whole length hyper frames the answer by
/// (`owing` [`Owing::Nothing`]) or more ([`Owing::Overpaid`]): whether it goes to hyper. Paid
/// in full without saying it has ended: hyper stops polling at the length, so the body is
/// asked once more now ([`ends_after`]): ended, its request completes and the frame goes to
/// hyper; not known yet, the frame goes (judged when hyper lets the body go); more, or past
/// the length, the caller breaks the answer off ([`break_off`]: hyper would write the length
/// and drop the rest, an answer that looks whole). Out of line: the common frame pays less.
#[cold]
#[inline(never)]
fn paid_in_full<B: Body, C: Recycle>(
    owing: Owing,
    body: Pin<&mut B>,
    bundle: &mut Option<Bundle<C>>,
    fired_at_head: bool,
    cx: &mut Context<'_>,
) -> bool {
    if owing != Owing::Nothing {
        return false;
    }
    match ends_after(body, cx) {
        Ends::Now => {
            if let Some(bundle) = bundle.take() {
                completed(bundle, fired_at_head); // paid in full, and ended
            }
            true
        }
        Ends::Unknown => true,
        Ends::Later => false,
    }
}

/// Polls a body that has just paid the whole length hyper frames its answer by, without saying
/// it has ended, once more before hyper gets its last bytes: hyper stops polling at the length,
/// and a body with more than that must break the answer off short of it (not let hyper cut it
/// at the length, where it looks whole). The embedder's code: a panic is a lie too.
#[cold]
#[inline(never)]
fn ends_after<B: Body>(body: Pin<&mut B>, cx: &mut Context<'_>) -> Ends {
    match caught(|| body.poll_frame(cx)) {
        Some(Poll::Ready(None)) => Ends::Now,
        Some(Poll::Ready(Some(Ok(frame)))) => match frame.data_ref() {
            Some(data) if data.has_remaining() => Ends::Later,
            Some(_) => Ends::Unknown,
            None => Ends::Now, // trailers: no room for them in a length-framed answer
        },
        Some(Poll::Pending) => Ends::Unknown,
        Some(Poll::Ready(Some(Err(_)))) | None => Ends::Later,
    }
}

/// The handler's body broke the length hyper frames its answer by (its exact `size_hint`, or
/// the handler's own `content-length` over a stream), its request ended *dropped*: the answer
/// is broken off. hyper gets one turn to flush what it holds (`Pending`, the task woken), then
/// the body fails at its next poll and hyper closes the connection: the answer short of its length
/// (incomplete, RFC 9112 §8), never cut to a length that looks whole. (Kept in `Handed`, one
/// compare per poll, rather than in a third `Source`, and the last frame's break-off made at
/// the next poll rather than by a `return` there: each made every answer about 45 to 90
/// instructions dearer in hyper's write loop, which this body's `poll_frame` is inlined into.)
#[cold]
#[inline(never)]
fn break_off(
    handed: &mut Handed,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    *handed = Handed::Flushed;
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// The error a broken body ends with (see [`break_off`]).
#[derive(Debug)]
struct BrokenLength;

impl fmt::Display for BrokenLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the response body does not match the length its answer is framed by")
    }
}

impl std::error::Error for BrokenLength {}

impl<B: Body, C: Recycle> fmt::Debug for GuardedBody<B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedBody")
            .field("holds_bundle", &self.bundle.is_some())
            .finish_non_exhaustive()
    }
}
