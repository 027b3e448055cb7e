//! The demo routes on hyper: `GET /`, `GET /delay?ms=N`, `POST /echo`, `GET /panic`, as the mio
//! server's [`demo_routes`](crate::http::demo_routes) answer them.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use super::bundle::{Aborted, Bundle, Reply};
use super::checks;
use super::connections::Conn;
use super::handler::{Handler, HandlerError};
use crate::pool::Recycle;
use crate::signal::{AbortReason, AbortSignal};
use crate::wrapper::Engine;

/// The longest `/delay` accepted, in milliseconds (as the mio server's).
pub const MAX_DELAY_MS: u64 = 60_000;
/// The largest `/echo` body accepted; larger gets `413`.
pub const MAX_ECHO_BODY: usize = 1024 * 1024;

/// The demo handler:
///
/// | route | answer |
/// |---|---|
/// | `GET /` | `200 hello` |
/// | `GET /delay?ms=N` | `200 delayed N ms` after N ms (a drain deadline force-closes it) |
/// | `POST /echo` | `200` with the request body (`413` over 1 MiB) |
/// | `GET /panic` | the handler panics: `500`, and the connection keeps serving |
///
/// `HEAD` is answered by the `GET` route. Anything else is `404`, `405` with `allow` for a known
/// path with another method, `501` for a method the server does not know.
pub fn demo_routes<E: Engine, C: Recycle>() -> impl Handler<E, C, Body = Full<Bytes>> {
    demo_routes_with(MAX_ECHO_BODY, ECHO_BODY_TIMEOUT)
}

/// How long `/echo` waits for its whole body by default; slower gets `408`.
pub const ECHO_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// [`demo_routes`] with `/echo` bodies limited to `max_body` bytes (`413` above) and to
/// `body_timeout` to arrive (`408` after).
pub fn demo_routes_with<E: Engine, C: Recycle>(
    max_body: usize,
    body_timeout: Duration,
) -> impl Handler<E, C, Body = Full<Bytes>> {
    move |_this: E::Strong, request: Request<Incoming>, bundle: Bundle<C>| {
        route(
            request,
            bundle,
            EchoLimits {
                max_body,
                body_timeout,
            },
        )
    }
}

#[derive(Clone, Copy)]
struct EchoLimits {
    max_body: usize,
    body_timeout: Duration,
}

type Answer<C> = Result<Reply<Full<Bytes>, C>, HandlerError>;

/// The demo handler's future. Most routes answer at once, and their future is the answer
/// alone; `/echo` is a small future of its own, `/delay` waits in a box. (One `async fn` for
/// every route made every request's future 1.4 KiB, the size of `/echo`'s: hyper moves the
/// future, and the copies cost about 250 instructions on every request.)
///
/// The head of a request answered at once is dropped at once (hyper reclaims its read buffer in
/// place: 2 allocations fewer per request), but its body lives until the answer is taken, as
/// it did in the `async fn`: dropped before hyper read it, a chunked body makes hyper close the
/// connection after the answer (the request pipelined behind it is lost).
enum Routed<C: Recycle> {
    Answered(Option<Reply<Full<Bytes>, C>>, #[allow(dead_code)] Incoming),
    Draining(Drain<C>),
    Echo(Echo<C>),
    Waiting(Pin<Box<dyn Future<Output = Answer<C>>>>),
    /// `GET /panic`: panics once its body is read, where the adapter catches it (and drops the
    /// bundle).
    Panics(Panics<C>),
}

// Nothing in `Routed` is pinned in place: the answer is moved out, the waiting future is boxed.
impl<C: Recycle> Unpin for Routed<C> {}

impl<C: Recycle> Future for Routed<C> {
    type Output = Answer<C>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer<C>> {
        match self.get_mut() {
            Routed::Answered(reply, _body) => match reply.take() {
                Some(reply) => Poll::Ready(Ok(reply)),
                None => panic!("a demo route is polled after it answered"),
            },
            Routed::Draining(drain) => drain.poll(cx).map(Ok),
            Routed::Echo(echo) => echo.poll(cx).map(Ok),
            Routed::Waiting(future) => future.as_mut().poll(cx),
            Routed::Panics(panics) => panics.poll(cx).map(Ok),
        }
    }
}

fn route<C: Recycle>(
    request: Request<Incoming>,
    bundle: Bundle<C>,
    limits: EchoLimits,
) -> Routed<C> {
    // A `GET` route answers `HEAD` too; hyper sends the head of its answer only.
    let method = match request.method() {
        &Method::HEAD => &Method::GET,
        method => method,
    };
    let answer = match (method, request.uri().path()) {
        (&Method::GET, "/") => text(bundle, StatusCode::OK, Bytes::from_static(b"hello")),
        (&Method::GET, "/delay") => {
            return Routed::Waiting(Box::pin(delay(request, bundle, limits)))
        }
        (&Method::POST, "/echo") => return echo(request, bundle, limits),
        (&Method::GET, "/panic") => return Panics::route(bundle, request, limits),
        (method, path) => {
            let answer = unrouted(bundle, method, path);
            if checks::awaits_continue(&request) {
                return answered_before_body(answer, request.into_body());
            }
            answer
        }
    };
    if checks::awaits_continue(&request) {
        watch_chunks(&request, bundle_conn(&answer), limits);
    }
    answered(answer, request.into_body(), limits)
}

/// The connection of a route's answer (the demo's answers hold their request's bundle).
fn bundle_conn<C: Recycle>(answer: &Reply<Full<Bytes>, C>) -> Option<&Conn> {
    answer
        .response
        .body()
        .bundle()
        .map(|bundle| &**bundle.conn())
}

/// A request whose client waits for `100 Continue` before it sends a chunked body: hyper reads
/// nothing of the body before the route asks for it, so the connection watches its chunk
/// sizes from its first byte (`Conn::watch_chunks`), and a size that takes the body past
/// `max_body` is answered `413` + close at once ([`BodyLeft`], [`Echo`]), as the mio server
/// answers it at the size line. Before, the route waited for the chunk's data (`408` at the
/// body timeout). A body sent without waiting may be in hyper's buffer already: not watched,
/// as before (its sizes are hyper's alone).
#[cold]
#[inline(never)]
fn watch_chunks(request: &Request<Incoming>, conn: Option<&Conn>, limits: EchoLimits) {
    use hyper::body::Body as _;
    // hyper frames a request body by its `content-length` (an exact size) or as chunked.
    if let (Some(conn), None) = (conn, request.body().size_hint().exact()) {
        conn.watch_chunks(limits.max_body as u64);
    }
}

/// An answer decided from the head alone, to a client waiting for `100 Continue`: given now,
/// with `connection: close`, and the body not read (RFC 9110 §10.1.1: the final status
/// instead of the `100`), as the mio server answers. hyper sends its `100` only when a body
/// is first read, so it sends none, and closes the connection after the answer; what the
/// client sends meanwhile is read and dropped by the adapter's linger (`linger.rs`).
fn answered_before_body<C: Recycle>(answer: Reply<Full<Bytes>, C>, body: Incoming) -> Routed<C> {
    Routed::Answered(Some(closing(answer)), body)
}

/// A route's answer, given once the request's body is all read. A body still coming is read
/// and dropped first, as the mio server does: hyper keeps a connection open only if the body
/// was read to its end, and it would close it after an answer that said nothing of it (the
/// request pipelined behind lost without a word).
fn answered<C: Recycle>(
    answer: Reply<Full<Bytes>, C>,
    body: Incoming,
    limits: EchoLimits,
) -> Routed<C> {
    use hyper::body::Body as _;
    if body.is_end_stream() {
        return Routed::Answered(Some(answer), body);
    }
    // A declared length past the limit is refused before any of the body is read (`/echo`).
    if body.size_hint().lower() > limits.max_body as u64 {
        let refused = body_failed(answer, StatusCode::PAYLOAD_TOO_LARGE);
        return Routed::Answered(Some(refused), body);
    }
    let since = answer
        .response
        .body()
        .bundle()
        .map_or(0, |b| b.conn().count_began());
    Routed::Draining(Drain {
        answer: Some(answer),
        body: BodyLeft::new(body, limits, since),
    })
}

/// Reads and drops what is left of a request's body, then gives its route's answer; a body
/// that fails gets the error it earned instead (`BodyLeft`), with `connection: close`.
struct Drain<C: Recycle> {
    answer: Option<Reply<Full<Bytes>, C>>,
    body: BodyLeft,
}

impl<C: Recycle> Drain<C> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Reply<Full<Bytes>, C>> {
        let bundle = self
            .answer
            .as_ref()
            .and_then(|r| r.response.body().bundle());
        let end = ready!(self.body.poll(bundle, cx));
        let answer = self
            .answer
            .take()
            .expect("a drained route is polled after it answered");
        Poll::Ready(match end {
            Ok(false) => answer,
            Ok(true) => closing(answer),
            Err(status) => body_failed(answer, status),
        })
    }
}

/// `GET /panic`: reads and drops its request's body, then panics, as the mio route does (the
/// mio server calls a handler once the body is whole). A body that fails gets the error it
/// earned instead (`400` for broken chunked framing, `408`, `413`, with `connection: close`),
/// as on mio. Before, it panicked at once: a broken body got the `500`, then hyper closed the
/// connection without saying so (mio: `400` + close). A body with a trailer section (or one
/// chosen for eviction as it ended) gets the `500` with `connection: close` without a panic:
/// the demo routes close the connection after any trailer section (the bare-LF rule above),
/// and the adapter's `500` for a panic cannot say `close`.
struct Panics<C: Recycle> {
    bundle: Option<Bundle<C>>,
    body: BodyLeft,
}

impl<C: Recycle> Panics<C> {
    /// A declared length past the limit is refused before any of the body is read (`413`, as
    /// `answered` refuses it).
    fn route(bundle: Bundle<C>, request: Request<Incoming>, limits: EchoLimits) -> Routed<C> {
        use hyper::body::Body as _;
        if checks::awaits_continue(&request) {
            watch_chunks(&request, Some(bundle.conn()), limits);
        }
        let body = request.into_body();
        if body.size_hint().lower() > limits.max_body as u64 {
            let refused = closing(error(bundle, StatusCode::PAYLOAD_TOO_LARGE));
            return Routed::Answered(Some(refused), body);
        }
        let since = bundle.conn().count_began();
        Routed::Panics(Panics {
            bundle: Some(bundle),
            body: BodyLeft::new(body, limits, since),
        })
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Reply<Full<Bytes>, C>> {
        let end = ready!(self.body.poll(self.bundle.as_ref(), cx));
        let bundle = self
            .bundle
            .take()
            .expect("GET /panic is polled after it answered");
        Poll::Ready(match end {
            Ok(false) => panic!("GET /panic: this handler panics on purpose"),
            Ok(true) => closing(error(bundle, StatusCode::INTERNAL_SERVER_ERROR)),
            Err(status) => closing(error(bundle, status)),
        })
    }
}

/// How a request body that its route does not read ended.
enum BodyEnd {
    /// Read to its end, no trailer section.
    Whole,
    /// Read to its end, a trailer section with fields after it.
    Trailers,
    /// `400` (an empty trailer section: `0\r\n\n`, no well-formed body makes one), `408`
    /// (slower than the body timeout, or evicted at the limit as too slow), `413` (past
    /// `max_body`): what the mio server answers such a request, which it reads whole before
    /// any route sees it.
    Failed(StatusCode),
    /// The body broke its framing, or its connection failed (`note_client_reset` tells).
    Broken(hyper::Error),
}

/// What is left of a request body a route answers without reading (`GET /`, `/delay`, the
/// `404`, `405`, `501` and `OPTIONS` answers), read and dropped within the `/echo` limits, so
/// that the route's answer is given only to a request that arrived whole, as on mio. Before,
/// such a body was read and dropped too, but a body that broke its framing, went past
/// `max_body` or took longer than the body timeout still got the route's answer (`200 hello`
/// to a `GET /` whose chunked body was malformed, or whose 2 MB body stopped at 1 MiB),
/// counted `served`, where mio answers `400`, `413`, `408`, counted `rejected`. The health
/// probes read a body sent with them the same way (`service::probe`), within
/// `Options::probe_max_body` and `Options::probe_body_timeout`.
pub(crate) struct BodyLeft {
    left: usize,
    /// The body's data read so far, and its connection's count of head bytes as its reading
    /// began (`Conn::body_ended`).
    read: u64,
    since: u64,
    body: Incoming,
    timeout: Duration,
    wait: Option<Pin<Box<BodyWait>>>,
}

impl BodyLeft {
    fn new(body: Incoming, limits: EchoLimits, since: u64) -> Self {
        BodyLeft::within(body, limits.max_body, limits.body_timeout, since)
    }

    /// What is left of `body`, to read within `max_body` bytes and `timeout`; `since`, its
    /// connection's `Conn::count_began` now.
    pub(crate) fn within(body: Incoming, max_body: usize, timeout: Duration, since: u64) -> Self {
        BodyLeft {
            left: max_body,
            read: 0,
            since,
            body,
            timeout,
            wait: None,
        }
    }

    /// Whether the body made its reader wait (the timer and the slow-body notes began).
    fn waited(&self) -> bool {
        self.wait.is_some()
    }

    /// [`BodyLeft::poll`] for a request without a bundle (a health probe's body): the
    /// connection takes the slow-body eviction's notes. A body cut by the client's reset is
    /// `Err(None)`: no answer will reach the client, none is counted.
    pub(crate) fn poll_unadmitted(
        &mut self,
        conn: &Conn,
        cx: &mut Context<'_>,
    ) -> Poll<Result<bool, Option<StatusCode>>> {
        Poll::Ready(match ready!(self.read(Some(conn), None, cx)) {
            BodyEnd::Whole => Ok(self.waited() && conn.body_read()),
            BodyEnd::Trailers => Ok(true),
            BodyEnd::Failed(status) => Err(Some(status)),
            BodyEnd::Broken(err) if client_reset(&err) => Err(None),
            BodyEnd::Broken(_) => Err(Some(StatusCode::BAD_REQUEST)),
        })
    }

    /// Reads on, to the end: `Ok` with whether the answer must close the connection (a
    /// trailer section, or chosen for eviction as the body ended), or the error status the body
    /// earned. The request's `bundle` takes the slow-body eviction's notes.
    pub(crate) fn poll<C: Recycle>(
        &mut self,
        bundle: Option<&Bundle<C>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<bool, StatusCode>> {
        let conn = bundle.map(|bundle| &**bundle.conn());
        let signal = bundle.map(Bundle::signal);
        Poll::Ready(match ready!(self.read(conn, signal, cx)) {
            BodyEnd::Whole => Ok(self.waited() && conn.is_some_and(Conn::body_read)),
            BodyEnd::Trailers => Ok(true),
            BodyEnd::Failed(status) => Err(status),
            BodyEnd::Broken(err) => {
                if let Some(bundle) = bundle {
                    note_client_reset(&err, bundle);
                }
                Err(StatusCode::BAD_REQUEST)
            }
        })
    }

    /// Reads on; `signal`, the request's (none for a health probe's body).
    fn read(
        &mut self,
        conn: Option<&Conn>,
        signal: Option<&AbortSignal>,
        cx: &mut Context<'_>,
    ) -> Poll<BodyEnd> {
        let end = ready!(self.read_on(conn, signal, cx));
        if let Some(conn) = conn {
            conn.unwatch_chunks();
        }
        Poll::Ready(end)
    }

    fn read_on(
        &mut self,
        conn: Option<&Conn>,
        signal: Option<&AbortSignal>,
        cx: &mut Context<'_>,
    ) -> Poll<BodyEnd> {
        use hyper::body::Body as _;
        loop {
            let len = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(None) => {
                    if let Some(conn) = conn {
                        conn.body_ended(self.read, self.since);
                    }
                    return Poll::Ready(BodyEnd::Whole);
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data.len(),
                    Err(frame) if frame.trailers_ref().is_some_and(HeaderMap::is_empty) => {
                        return Poll::Ready(BodyEnd::Failed(StatusCode::BAD_REQUEST))
                    }
                    Err(_) => return Poll::Ready(BodyEnd::Trailers),
                },
                Poll::Ready(Some(Err(err))) => return Poll::Ready(BodyEnd::Broken(err)),
                Poll::Pending => {
                    // A chunk size past the limit (`watch_chunks`): `413` now, as on mio.
                    if conn.is_some_and(Conn::chunk_past_limit) {
                        return Poll::Ready(BodyEnd::Failed(StatusCode::PAYLOAD_TOO_LARGE));
                    }
                    // Evicted at the limit for a body too slow: as at the body timeout.
                    if conn.is_some_and(|conn| conn.body_awaited(Instant::now())) {
                        return Poll::Ready(BodyEnd::Failed(StatusCode::REQUEST_TIMEOUT));
                    }
                    let status = ready!(body_waited(&mut self.wait, self.timeout, signal, cx));
                    return Poll::Ready(BodyEnd::Failed(status));
                }
            };
            self.read += len as u64;
            if let Some(conn) = conn.filter(|_| self.waited()) {
                conn.body_arrived(len);
            }
            match self.left.checked_sub(len) {
                Some(left) => self.left = left,
                None => return Poll::Ready(BodyEnd::Failed(StatusCode::PAYLOAD_TOO_LARGE)),
            }
        }
    }
}

/// A route's `answer`, made before its request's body was read, turned into the error answer
/// the body earned (`error`'s, field for field), with `connection: close`. Its bundle stays:
/// the request ends with this answer, as it would have with the route's.
#[cold]
fn body_failed<C: Recycle>(
    mut answer: Reply<Full<Bytes>, C>,
    status: StatusCode,
) -> Reply<Full<Bytes>, C> {
    let phrase = crate::admit::status::reason_phrase(status.as_u16());
    let response = &mut answer.response;
    *response.status_mut() = status;
    response.headers_mut().clear(); // the route's `allow`, its `content-type`
    response.headers_mut().insert(CONTENT_TYPE, TEXT);
    response.extensions_mut().clear();
    if status.canonical_reason().map(str::as_bytes) != Some(phrase) {
        let phrase = hyper::ext::ReasonPhrase::from_static(phrase);
        response.extensions_mut().insert(phrase);
    }
    // The route's body is a `Full`, whose drop cannot panic.
    let _ = response.body_mut().replace_with(phrase);
    answer.count_rejected(); // as `error`'s
    closing(answer)
}

/// As the mio router: `501` for a method the server does not know, `204` with `allow` for an
/// `OPTIONS` of a known path or of `*` (every route's methods, RFC 9110 §9.3.7), `405` with
/// `allow` for another method on a known path, else `404`.
fn unrouted<C: Recycle>(bundle: Bundle<C>, method: &Method, path: &str) -> Reply<Full<Bytes>, C> {
    if method == Method::OPTIONS {
        let allow = match path {
            "*" => "GET, HEAD, POST",
            "/" | "/delay" | "/panic" => "GET, HEAD",
            "/echo" => "POST",
            _ => return error(bundle, StatusCode::NOT_FOUND),
        };
        let mut reply = text(bundle, StatusCode::NO_CONTENT, Bytes::new());
        reply
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
        return reply;
    }
    const STANDARD: [Method; 8] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    let allow = match path {
        "/" | "/delay" | "/panic" => "GET, HEAD",
        "/echo" => "POST",
        _ if STANDARD.contains(method) => return error(bundle, StatusCode::NOT_FOUND),
        _ => return error(bundle, StatusCode::NOT_IMPLEMENTED),
    };
    if !STANDARD.contains(method) {
        return error(bundle, StatusCode::NOT_IMPLEMENTED);
    }
    let mut reply = error(bundle, StatusCode::METHOD_NOT_ALLOWED);
    reply
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    reply
}

/// An answer with a plain-text `body` (`content-type: text/plain` unless it is empty: RFC 9110
/// §8.3, and what the mio router sends).
fn text<C: Recycle>(bundle: Bundle<C>, status: StatusCode, body: Bytes) -> Reply<Full<Bytes>, C> {
    let content_type = (!body.is_empty()).then_some(TEXT);
    typed(bundle, status, body, content_type)
}

/// An error answer as the mio router makes it: its reason phrase as a plain-text explanation
/// (RFC 9110 §15.5, §15.6: a server SHOULD send one, except to `HEAD`, where hyper writes the
/// length alone), and the phrase RFC 9110 names (`413 Content Too Large`, where the `http` crate
/// still says `Payload Too Large`): the one table of reason phrases, `admit::status`. Before,
/// the routes' `400`, `404`, `405`, `408`, `413` and `501` had an empty body.
#[cold]
#[inline(never)]
fn error<C: Recycle>(bundle: Bundle<C>, status: StatusCode) -> Reply<Full<Bytes>, C> {
    let phrase = crate::admit::status::reason_phrase(status.as_u16());
    let mut reply = text(bundle, status, Bytes::from_static(phrase));
    if status.canonical_reason().map(str::as_bytes) != Some(phrase) {
        let phrase = hyper::ext::ReasonPhrase::from_static(phrase);
        reply.response.extensions_mut().insert(phrase);
    }
    if is_bad_input(status) {
        // The routes answer these for a body that failed (its framing, its size, its time),
        // which the mio server refuses before any route runs: `rejected` on both stacks. The
        // mark an embedder's handler sets too.
        reply.count_rejected();
    }
    reply
}

/// `400`, `408`, `413`, `431`: what the mio server answers bad input with.
fn is_bad_input(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 408 | 413 | 431)
}

/// Made once (a value checked byte by byte per answer cost 100 instructions).
const TEXT: HeaderValue = HeaderValue::from_static("text/plain");
/// `/echo`'s answers are bytes, whatever their length (as the mio route's).
const OCTETS: HeaderValue = HeaderValue::from_static("application/octet-stream");

/// An answer with `body` and its `content-type`, if any.
fn typed<C: Recycle>(
    bundle: Bundle<C>,
    status: StatusCode,
    body: Bytes,
    content_type: Option<HeaderValue>,
) -> Reply<Full<Bytes>, C> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Some(value) = content_type {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    bundle.respond(response)
}

/// `GET /delay?ms=N`: answers after N ms, unless the request's signal fires first.
async fn delay<C: Recycle>(
    request: Request<Incoming>,
    bundle: Bundle<C>,
    limits: EchoLimits,
) -> Result<Reply<Full<Bytes>, C>, HandlerError> {
    use hyper::body::Body as _;
    let ms = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms <= MAX_DELAY_MS);
    // The body first (`BodyLeft`): the route answers a request once it is whole, as on mio.
    if checks::awaits_continue(&request) {
        watch_chunks(&request, Some(bundle.conn()), limits);
    }
    let body = request.into_body();
    if body.size_hint().lower() > limits.max_body as u64 {
        return Ok(closing(error(bundle, StatusCode::PAYLOAD_TOO_LARGE)));
    }
    let mut close = false;
    if !body.is_end_stream() {
        let mut left = BodyLeft::new(body, limits, bundle.conn().count_began());
        match std::future::poll_fn(|cx| left.poll(Some(&bundle), cx)).await {
            Ok(closes) => close = closes,
            Err(status) => return Ok(closing(error(bundle, status))),
        }
    }
    let reply = match ms {
        // As the mio route: an abort (the drain deadline) does not cut the wait short; the
        // stop's force-close ends the request (its outcome stays *deadline aborted*: the first
        // cause).
        Some(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let done = Bytes::from(format!("delayed {ms} ms"));
            text(bundle, StatusCode::OK, done)
        }
        None => {
            let why = Bytes::from_static(b"expected ?ms=N with N <= 60000");
            // The route's judgement, not a refusal of the input's framing: `served`, as on mio
            // (unmarked: `Reply::count_rejected`).
            text(bundle, StatusCode::BAD_REQUEST, why)
        }
    };
    Ok(if close { closing(reply) } else { reply })
}

/// `POST /echo`: the request body back, up to `max_body` bytes within `body_timeout`.
fn echo<C: Recycle>(
    request: Request<Incoming>,
    bundle: Bundle<C>,
    limits: EchoLimits,
) -> Routed<C> {
    use hyper::body::Body as _;
    // A declared length past the limit is refused before any of the body is read.
    if request.body().size_hint().lower() > limits.max_body as u64 {
        let refused = closing(error(bundle, StatusCode::PAYLOAD_TOO_LARGE));
        return Routed::Answered(Some(refused), request.into_body());
    }
    if checks::awaits_continue(&request) {
        watch_chunks(&request, Some(bundle.conn()), limits);
    }
    let body = Counted {
        body: request.into_body(),
        conn: Rc::clone(bundle.conn()),
        read: 0,
        since: bundle.conn().count_began(),
    };
    Routed::Echo(Echo {
        body: Limited::new(body, limits.max_body).collect(),
        timeout: limits.body_timeout,
        wait: None,
        bundle: Some(bundle),
    })
}

/// A request body whose data, once its route began to wait for it, is counted for the
/// slow-body eviction ([`Conn::body_arrived`]).
struct Counted {
    body: Incoming,
    conn: Rc<Conn>,
    /// Its data read so far, and its connection's count of head bytes as its reading began
    /// (`Conn::body_ended`).
    read: u64,
    since: u64,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.read += data.len() as u64;
                    self.conn.body_arrived(data.len());
                }
            }
            Poll::Ready(None) => self.conn.body_ended(self.read, self.since),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// `/echo` collecting its body. The timer is armed only when the body is not all there at the
/// first poll (a small body comes with its head): the `408` deadline runs from that poll, as a
/// `tokio::time::timeout` made there would, without a timer for the body that needs none.
struct Echo<C: Recycle> {
    body: Collect<Limited<Counted>>,
    timeout: Duration,
    wait: Option<Pin<Box<BodyWait>>>,
    bundle: Option<Bundle<C>>,
}

impl<C: Recycle> Echo<C> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Reply<Full<Bytes>, C>> {
        let reply = ready!(self.poll_on(cx));
        if let Some(bundle) = reply.response.body().bundle() {
            bundle.conn().unwatch_chunks();
        }
        Poll::Ready(reply)
    }

    fn poll_on(&mut self, cx: &mut Context<'_>) -> Poll<Reply<Full<Bytes>, C>> {
        let collected = match Pin::new(&mut self.body).poll(cx) {
            Poll::Ready(collected) => collected,
            Poll::Pending => {
                let conn = self.bundle.as_ref().map(|bundle| bundle.conn());
                // A chunk size past the limit (`watch_chunks`): `413` now, as on mio.
                let status = if conn.is_some_and(|conn| conn.chunk_past_limit()) {
                    StatusCode::PAYLOAD_TOO_LARGE
                // Evicted at the limit for a body too slow: as at the body timeout.
                } else if conn.is_some_and(|conn| conn.body_awaited(Instant::now())) {
                    StatusCode::REQUEST_TIMEOUT
                } else {
                    let signal = self.bundle.as_ref().map(Bundle::signal);
                    ready!(body_waited(&mut self.wait, self.timeout, signal, cx))
                };
                return Poll::Ready(closing(error(self.bundle(), status)));
            }
        };
        let chosen = self.wait.is_some()
            && self
                .bundle
                .as_ref()
                .is_some_and(|bundle| bundle.conn().body_read());
        let bundle = self.bundle();
        let reply = match collected {
            Ok(body) if body.trailers().is_some_and(HeaderMap::is_empty) => {
                closing(error(bundle, StatusCode::BAD_REQUEST))
            }
            Ok(body) if body.trailers().is_some() => {
                closing(typed(bundle, StatusCode::OK, body.to_bytes(), Some(OCTETS)))
            }
            Ok(body) => typed(bundle, StatusCode::OK, body.to_bytes(), Some(OCTETS)),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                closing(error(bundle, StatusCode::PAYLOAD_TOO_LARGE))
            }
            // The body broke its framing (a bad chunk size, a trailer without a colon): the
            // client's fault, and hyper cannot read on past it. (Or the connection failed:
            // then no answer reaches the client, `note_client_reset`.)
            Err(err) => {
                if let Some(err) = err.downcast_ref::<hyper::Error>() {
                    note_client_reset(err, &bundle);
                }
                closing(error(bundle, StatusCode::BAD_REQUEST))
            }
        };
        // Chosen for eviction as its body ended: answered, then the connection closes.
        Poll::Ready(if chosen { closing(reply) } else { reply })
    }

    fn bundle(&mut self) -> Bundle<C> {
        self.bundle
            .take()
            .expect("the echo is polled after it answered")
    }
}

/// A request body that failed because its connection did (the client reset it): no answer
/// can reach the client, so the request ends *client gone*, as one whose client left while
/// its handler ran (its signal fires; the adapter counts no answer for it), not with the
/// `400` a broken framing gets. On the mio server such a request was never admitted.
fn note_client_reset<C: Recycle>(err: &hyper::Error, bundle: &Bundle<C>) {
    if client_reset(err) {
        bundle
            .signal()
            .abort(crate::signal::AbortReason::ClientDisconnected);
    }
}

/// Whether a request body failed because the client reset its connection.
fn client_reset(err: &hyper::Error) -> bool {
    use std::error::Error as _;
    let mut cause = err.source();
    let mut reset = false;
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
            reset |= matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe);
        }
        cause = error.source();
    }
    reset
}

pin_project_lite::pin_project! {
    /// What a request body that made its reader wait is waited with: its timer, and the drain
    /// deadline's abort of its request (one listener on its signal; none for a health probe's
    /// body, which has no request admitted). Boxed together, made the first time the body
    /// makes its reader wait: a body already here costs neither, and a route's future no byte.
    struct BodyWait {
        #[pin]
        timer: tokio::time::Sleep,
        aborted: Option<Aborted>,
    }
}

/// A body's wait ([`BodyWait`]), armed the first time the body makes its reader wait: `Ready`
/// with the answer the request earned, `408` once the body took longer than `timeout`, or
/// `503` once the drain deadline aborted the request (`signal`'s) while its body was still
/// coming: the mio loops answer a request not whole at the deadline `503` + close (a head in
/// progress and a body in progress alike), and a route kept waiting here was closed at the
/// force step without an answer (QA client25-1).
fn body_waited(
    wait: &mut Option<Pin<Box<BodyWait>>>,
    timeout: Duration,
    signal: Option<&AbortSignal>,
    cx: &mut Context<'_>,
) -> Poll<StatusCode> {
    let wait = wait.get_or_insert_with(|| {
        Box::pin(BodyWait {
            timer: tokio::time::sleep(timeout),
            aborted: signal.map(Aborted::of),
        })
    });
    let wait = wait.as_mut().project();
    if let Some(aborted) = wait.aborted {
        // Another reason (the client gone) ends the request otherwise: the wait goes on.
        if Pin::new(aborted).poll(cx) == Poll::Ready(AbortReason::DrainDeadline) {
            return Poll::Ready(StatusCode::SERVICE_UNAVAILABLE);
        }
    }
    ready!(wait.timer.poll(cx));
    Poll::Ready(StatusCode::REQUEST_TIMEOUT)
}

// A trailer section ends the connection (the routes answer with `connection: close`). hyper's
// decoder reads the section up to the next CRLF CRLF and httparse then takes a bare LF in it
// for its end, so whatever came between (a pipelined request, `0\r\nx: 1\n\r\n` + `GET /`)
// was swallowed, and the trailers hyper reports hold only the fields before the LF: nothing in
// them tells such a section from a well-formed one. Closing reads nothing more as a request
// and leaves no request silently eaten on a connection kept open (a proxy in front that ends
// the section at the LF gets an EOF for the request it forwarded, not the next client's
// answer). An empty trailers frame (the section began with the LF, `0\r\n\n`: no
// well-formed body makes one, no field: no frame) is a framing error: `/echo` answers it
// `400`, as on mio (`probe_client::v8::a_trailer_section_beginning_with_a_bare_lf_swallows_no_request`,
// `probe_client::v12::a_bare_lf_inside_a_trailer_section_swallows_no_request_on_either_stack`).

fn closing<C: Recycle>(mut reply: Reply<Full<Bytes>, C>) -> Reply<Full<Bytes>, C> {
    reply
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    reply
}
