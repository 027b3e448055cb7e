//! The accept loop and the stop: stop accepting, keep-alive off, drain both sides, escalate.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use super::connections::{Conn, Connections, HeadTimer, Reads, Registered, Watched};
use super::gate::Gated;
use super::handler::{EnterScope, Handler, NoScope};
use super::linger::{closing_answer, closing_answer_to, linger, LingeringIo, Stall, LINGER_LIMIT};
use super::report::HyperReport;
use super::room::Room;
use super::service::{made_here, MadeAt, RequestService, Shared};
use super::steps::{StepKind, Steps};
use super::tally::Tally;
use crate::callback::{call_caught, caught, DropCaught};
use crate::pool::Recycle;
use crate::ticket::{Drain, DrainReport, DrainStatus};
use crate::wrapper::Engine;
use crate::ServerCore;

/// The hyper server's knobs.
///
/// Every timeout is capped at one year (effectively never; the mio server's `MAX_TIMEOUT`), so
/// `Duration::MAX` means "no timeout" rather than an `Instant` overflow.
///
/// Setters are named `with_*` and getters are plain (`max_head()`), as [`Config`](crate::Config)'s
/// (Rust API guideline C-GETTER); the `get_*` getters of 0.2 are deprecated.
///
/// # Examples
///
/// Every knob, set and read back (a timeout past one year reads back as one year):
///
/// ```
/// use std::time::Duration;
/// use reqguard::tokio_hyper::Options;
///
/// let options = Options::default()
///     .with_drain_timeout(Duration::from_secs(2))
///     .with_stop_linger(Duration::from_millis(500))
///     .with_idle_timeout(Duration::from_secs(3))
///     .with_min_send_rate(512)
///     .with_max_connections(64)
///     .with_max_buffer(16 * 1024)
///     .with_max_head(4 * 1024)
///     .with_unready(Duration::from_secs(1))
///     .with_force_after(Duration::from_millis(250))
///     .with_probe_max_body(1024)
///     .with_probe_body_timeout(Duration::from_secs(7));
/// assert_eq!(options.drain_timeout(), Duration::from_secs(2));
/// assert_eq!(options.stop_linger(), Duration::from_millis(500));
/// assert_eq!(options.idle_timeout(), Duration::from_secs(3));
/// assert_eq!(options.min_send_rate(), 512);
/// assert_eq!(options.max_connections(), 64);
/// assert_eq!(options.max_buffer(), 16 * 1024);
/// assert_eq!(options.max_head(), 4 * 1024);
/// assert_eq!(options.unready(), Duration::from_secs(1));
/// assert_eq!(options.force_after(), Duration::from_millis(250));
/// assert_eq!(options.probe_max_body(), 1024);
/// assert_eq!(options.probe_body_timeout(), Duration::from_secs(7));
///
/// // The switches, off by default, each turned on alone:
/// let switches =
///     |o: Options| (o.keep_listening(), o.health_checks(), o.record_activity(), o.half_close());
/// assert_eq!(switches(Options::default()), (false, false, false, false));
/// assert_eq!(switches(options.with_keep_listening(true)), (true, false, false, false));
/// assert_eq!(switches(options.with_health_checks(true)), (false, true, false, false));
/// assert_eq!(switches(options.with_record_activity(true)), (false, false, true, false));
/// assert_eq!(switches(options.with_half_close(true)), (false, false, false, true));
///
/// let never = Options::default().with_drain_timeout(Duration::MAX);
/// assert_eq!(never.drain_timeout(), Duration::from_secs(365 * 24 * 3600));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    drain_timeout: Duration,
    stop_linger: Duration,
    idle_timeout: Duration,
    min_send_rate: u64,
    max_connections: usize,
    max_buffer: usize,
    max_head: usize,
    unready: Duration,
    force_after: Duration,
    keep_listening: bool,
    health_checks: bool,
    probe_body: ProbeBody,
    record_activity: bool,
    half_close: bool,
}

/// The body of a health probe, which the adapter reads and drops itself
/// (`Options::probe_max_body`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProbeBody {
    pub(crate) max: usize,
    pub(crate) timeout: Duration,
}

/// The longest timeout the knobs keep (the mio server's too): a longer one (`Duration::MAX`
/// for "no timeout") is capped to it, as hyper and the stop add it to an `Instant`.
use crate::MAX_TIMEOUT;

/// The smallest read and write buffer hyper accepts (`http1::Builder::max_buf_size` panics below).
pub const MIN_BUFFER: usize = 8 * 1024;

/// The default buffer: the mio server's `max_output`, and room for a head past
/// [`Options::max_head`](Options::with_max_head) so the adapter, not hyper, decides between `414`
/// and `431`.
pub const DEFAULT_BUFFER: usize = 64 * 1024;

impl Default for Options {
    /// 5 s of drain, 1 s of linger for idle connections after stop, 5 s idle (and request head)
    /// timeout, 1,024 connections, 8 KiB request heads (a longer target gets `414`, a longer head
    /// `431`), 64 KiB buffers, no unready
    /// phase, 1 s from the deadline's aborts to the force-close: the mio server's defaults where
    /// hyper has the knob. The listener closes at stop, and there are no health routes.
    fn default() -> Self {
        Options {
            drain_timeout: Duration::from_secs(5),
            stop_linger: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            min_send_rate: 1024,
            max_connections: 1024,
            max_buffer: DEFAULT_BUFFER,
            max_head: 8 * 1024,
            unready: Duration::ZERO,
            force_after: Duration::from_secs(1),
            keep_listening: false,
            health_checks: false,
            probe_body: ProbeBody {
                max: super::MAX_ECHO_BODY,
                timeout: super::ECHO_BODY_TIMEOUT,
            },
            record_activity: false,
            half_close: false,
        }
    }
}

impl Options {
    /// How long a stop waits for the last ticket and the last connection before it aborts what
    /// is out and force-closes the connections.
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// How long idle keep-alive connections stay open after stop before hyper's graceful
    /// shutdown closes them; requests they deliver meanwhile get `503` and `connection: close`.
    pub fn with_stop_linger(mut self, linger: Duration) -> Self {
        self.stop_linger = linger.min(MAX_TIMEOUT);
        self
    }

    /// How long a connection may take to send a request head, idle keep-alive included
    /// (hyper's header read timeout), and the window over which a client's reading of its
    /// answers is judged (see [`min_send_rate`](Options::with_min_send_rate)). Zero is refused as
    /// `with_max_connections(0)` is (every connection would time out at once).
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// The slowest a client may read its answers, in bytes per second (1 KiB/s by default), as the
    /// mio server's `Limits::min_send_rate`: once a write finds the socket full, the bytes the
    /// socket takes are counted over windows of the [`idle_timeout`](Options::with_idle_timeout)
    /// until a write is taken whole; a window in which it took fewer than the rate earns (at least
    /// one byte) ends the connection (its request still being answered ends *client gone*). A slow
    /// but steady reader of a large answer is kept; a slow-read attacker (`slowhttptest -X`) is
    /// not.
    pub fn with_min_send_rate(mut self, bytes_per_second: u64) -> Self {
        self.min_send_rate = bytes_per_second;
        self
    }

    /// Connections open at once; more are answered `503` and closed. At least 1: a server
    /// that could serve no one is refused, as the mio server's `Limits` refuses it
    /// ([`run`] and [`HyperGroup::spawn`](super::HyperGroup::spawn) return
    /// [`InvalidInput`](io::ErrorKind::InvalidInput), [`HyperServer::serve`] panics).
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// hyper's read and write buffer limit (`max_buf_size`): a request head that does not fit
    /// gets hyper's own `431`, and a connection's unsent output stops its reads at this size.
    /// Raised to [`MIN_BUFFER`] if smaller (hyper's minimum).
    pub fn with_max_buffer(mut self, bytes: usize) -> Self {
        self.max_buffer = bytes.max(MIN_BUFFER);
        self
    }

    /// The longest request head served, as the mio server's `Limits::max_head`: a request whose
    /// target alone is longer gets `414`, one whose head is longer `431`, both with `connection:
    /// close` and before admission (RFC 9112 §3, RFC 6585 §5). Checked by the adapter when the head
    /// fits [`max_buffer`](Options::with_max_buffer), by hyper (`431`) past it. At least 64 bytes
    /// (the mio server's `MIN_HEAD`), as there: a smaller one is refused as
    /// `with_max_connections(0)` is.
    pub fn with_max_head(mut self, bytes: usize) -> Self {
        self.max_head = bytes;
        self
    }

    /// Before the stop proper, stay up this long *unready*: `GET /healthz/ready` answers `503`
    /// and every answer carries `connection: close`, but requests are still admitted (load
    /// balancers take the server out of rotation first).
    pub fn with_unready(mut self, unready: Duration) -> Self {
        self.unready = unready.min(MAX_TIMEOUT);
        self
    }

    /// From the deadline's aborts to the force-close: handlers that watch their signal may
    /// still answer meanwhile.
    pub fn with_force_after(mut self, after: Duration) -> Self {
        self.force_after = after.min(MAX_TIMEOUT);
        self
    }

    /// Keep the listener open during the drain (as the mio loop group does, so the kernel's
    /// accept queue is not dropped): requests on new connections are refused `503` with
    /// `connection: close`. The listener closes when the drain ends. Off by default: the stop
    /// closes the listener at once, as Deno's `op_http_close` does.
    pub fn with_keep_listening(mut self, keep: bool) -> Self {
        self.keep_listening = keep;
        self
    }

    /// Answer `GET /healthz/live` (`200` until the server is gone) and `GET /healthz/ready`
    /// (`200`, then `503` from the unready phase on) without admission: they take nothing.
    pub fn with_health_checks(mut self, on: bool) -> Self {
        self.health_checks = on;
        self
    }

    /// The largest body a health probe may be sent with (1 MiB by default, the mio server's
    /// `Limits::max_body`). The adapter reads such a body and drops it before it answers the
    /// probe, as the mio server reads every body whole first: one declared or read past this
    /// gets `413` + close, one that breaks its chunked framing `400` + close, each counted
    /// `rejected`. A handler's request body is the handler's to read and limit.
    pub fn with_probe_max_body(mut self, bytes: usize) -> Self {
        self.probe_body.max = bytes;
        self
    }

    /// How long a health probe's body may take to arrive (10 s by default, the mio server's
    /// `Limits::request_timeout`): slower gets `408` + close, counted `rejected`. Zero is
    /// refused as `with_max_connections(0)` is.
    pub fn with_probe_body_timeout(mut self, timeout: Duration) -> Self {
        self.probe_body.timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// Record what each connection is doing, for the stop's step records
    /// ([`HyperReport::steps`](super::HyperReport), feature `server`) as the mio loops give
    /// them: the route of each request in its handler (`GET /delay`) and how long each
    /// connection has been in its state. Costs a copy of the route per request and a clock read
    /// per poll of the connection's task (about 160 instructions per request; no allocation
    /// once a connection's longest route fits): off by default; without
    /// it, the records count connections in a handler from the tickets out, without routes or
    /// ages.
    pub fn with_record_activity(mut self, on: bool) -> Self {
        self.record_activity = on;
        self
    }

    /// Whether a client that shuts down its write side (a FIN after its request:
    /// `shutdown(SHUT_WR)`, `nc -N`) still gets the answer to the request in its handler then,
    /// as the mio server's `Limits::with_half_close`.
    /// Off by default (hyper's default): its end of input is taken for a client gone, and that
    /// request ends *client gone*, unanswered. On: it is answered (bounded as any request is:
    /// its handler, the drain deadline and the force step), with `connection: close` (RFC 9112
    /// section 9.6), then the connection closes; requests it sent before its end of input and
    /// hyper has not read yet are served first, in order. A client that half-closes with
    /// nothing in its handler is closed as without it. (hyper's own `half_close` stays off:
    /// the adapter holds the end of input back from hyper while a request is out.)
    pub fn with_half_close(mut self, on: bool) -> Self {
        self.half_close = on;
        self
    }

    /// Whether these options can serve, by the rules the mio server's `Limits::validate` checks
    /// its own by (`src/knobs.rs`): `InvalidInput` naming the first knob out of range, for a
    /// `max_connections` of 0 (QA embed17-1: every connection was refused `503`), a `max_head`
    /// below `MIN_HEAD` (64 bytes: every request was refused `414` or `501`), a zero
    /// `idle_timeout` (hyper's header read timeout: every connection timed out at once) or
    /// `probe_body_timeout` (QA embed25-3).
    pub(crate) fn check(&self) -> io::Result<()> {
        let knobs = crate::knobs::Knobs {
            // No size rule: hyper's buffers grow as they fill, so a size past `isize::MAX` (no
            // limit) serves here (probe_embed::v14b::options_at_their_extremes_serve_and_stop).
            sizes: &[],
            max_head: self.max_head,
            max_connections: self.max_connections,
            timeouts: &[
                ("idle_timeout", self.idle_timeout, false),
                ("probe_body_timeout", self.probe_body.timeout, false),
                ("drain_timeout", self.drain_timeout, true),
                ("stop_linger", self.stop_linger, true),
                ("unready", self.unready, true),
                ("force_after", self.force_after, true),
            ],
        };
        crate::knobs::check(&knobs).map_err(|(knob, problem)| {
            let message = format!("invalid Options: {knob} {problem}");
            io::Error::new(io::ErrorKind::InvalidInput, message)
        })
    }

    /// See [`with_drain_timeout`](Options::with_drain_timeout).
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// See [`with_stop_linger`](Options::with_stop_linger).
    pub fn stop_linger(&self) -> Duration {
        self.stop_linger
    }

    /// See [`with_idle_timeout`](Options::with_idle_timeout).
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// See [`with_min_send_rate`](Options::with_min_send_rate).
    pub fn min_send_rate(&self) -> u64 {
        self.min_send_rate
    }

    /// See [`with_max_connections`](Options::with_max_connections).
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// See [`with_max_buffer`](Options::with_max_buffer).
    pub fn max_buffer(&self) -> usize {
        self.max_buffer
    }

    /// See [`with_max_head`](Options::with_max_head).
    pub fn max_head(&self) -> usize {
        self.max_head
    }

    /// See [`with_unready`](Options::with_unready).
    pub fn unready(&self) -> Duration {
        self.unready
    }

    /// See [`with_force_after`](Options::with_force_after).
    pub fn force_after(&self) -> Duration {
        self.force_after
    }

    /// See [`with_keep_listening`](Options::with_keep_listening).
    pub fn keep_listening(&self) -> bool {
        self.keep_listening
    }

    /// See [`with_health_checks`](Options::with_health_checks).
    pub fn health_checks(&self) -> bool {
        self.health_checks
    }

    /// See [`with_probe_max_body`](Options::with_probe_max_body).
    pub fn probe_max_body(&self) -> usize {
        self.probe_body.max
    }

    /// See [`with_probe_body_timeout`](Options::with_probe_body_timeout).
    pub fn probe_body_timeout(&self) -> Duration {
        self.probe_body.timeout
    }

    /// See [`with_record_activity`](Options::with_record_activity).
    pub fn record_activity(&self) -> bool {
        self.record_activity
    }

    /// See [`with_half_close`](Options::with_half_close).
    pub fn half_close(&self) -> bool {
        self.half_close
    }
}

// The 0.2 names of the getters, kept one release (deprecated): each forwards to its plain name
// (C-GETTER).
impl Options {
    /// Renamed [`drain_timeout`](Options::drain_timeout).
    #[deprecated(since = "0.3.0", note = "renamed `drain_timeout`: C-GETTER")]
    pub fn get_drain_timeout(&self) -> Duration {
        self.drain_timeout()
    }

    /// Renamed [`stop_linger`](Options::stop_linger).
    #[deprecated(since = "0.3.0", note = "renamed `stop_linger`: C-GETTER")]
    pub fn get_stop_linger(&self) -> Duration {
        self.stop_linger()
    }
}

/// The embedder's hooks of one kind, in the order set. Each runs on its own: a panic in one is
/// caught (the panic hook has reported it) and keeps neither the others from running nor the
/// stop from going on (as the mio stack's `Guarded` hooks). A hook is `FnMut`, called through
/// `&mut`: what it captured stays here while it runs, so a panic unwinds past none of it; each
/// hook is dropped after its run, caught (what it captured is the embedder's, and its `Drop`
/// may panic). An `FnOnce` hook owned its captures while it ran: one that panicked
/// dropped them while the panic unwound, and a capture whose `Drop` panicked too aborted the
/// process (a panic in a destructor during unwinding; api29, round 29). Hooks never run (the
/// drain did not complete, or the server was dropped unserved) are dropped the same way.
#[derive(Default)]
struct Hooks(Vec<Box<dyn FnMut()>>);

impl Hooks {
    fn push(&mut self, hook: impl FnMut() + 'static) {
        self.0.push(Box::new(hook));
    }

    /// Runs each hook once, caught, and drops it, caught, before the next runs (what a hook
    /// captured, a strong handle, is gone before a later hook collects): how many panicked,
    /// for the core's [`DrainReport::panicked_hooks`](crate::DrainReport::panicked_hooks) (QA
    /// embed33-3).
    fn run(mut self) -> u64 {
        let mut panicked = 0;
        for mut hook in std::mem::take(&mut self.0) {
            panicked += u64::from(call_caught(&mut hook));
            call_caught(move || drop(hook));
        }
        panicked
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        for hook in std::mem::take(&mut self.0) {
            call_caught(move || drop(hook));
        }
    }
}

/// A reqguard-accounted HTTP/1.1 server on hyper, for tokio's current-thread runtime and a
/// [`LocalSet`](tokio::task::LocalSet) (Deno's model: one engine per thread, `Rc` state).
///
/// See the [module docs](super) for the request path and the drain.
///
/// # Examples
///
/// A server with its knobs and a hook, serving one client on its own thread's `LocalSet`; the
/// client's answer stops it:
///
/// ```
/// use std::cell::{Cell, RefCell};
/// use std::rc::Rc;
/// use std::time::Duration;
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use reqguard::engines::{Handle, Heap};
/// use reqguard::tokio_hyper::{Bundle, HandlerError, HyperServer, Options};
/// use reqguard::{Config, ServerCore};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let stopped = Rc::new(Cell::new(false));
/// let seen = Rc::clone(&stopped);
/// let hello = |this: Handle<&'static str>, _request, bundle: Bundle| async move {
///     let body = Full::new(Bytes::from(format!("hello from {}", *this)));
///     Ok::<_, HandlerError>(bundle.respond(hyper::Response::new(body)))
/// };
/// let server = HyperServer::new(core, hello)
///     .options(Options::default().with_drain_timeout(Duration::from_secs(2)))
///     .after_stop(move || seen.set(true));
///
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let answer = Rc::new(RefCell::new(String::new()));
/// let kept = Rc::clone(&answer);
/// let report = tokio::task::LocalSet::new().block_on(&runtime, async move {
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     let (read, stop) = tokio::sync::oneshot::channel::<String>();
///     tokio::task::spawn_local(async move {
///         let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
///         let head = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
///         client.write_all(head).await.unwrap();
///         let mut text = String::new();
///         client.read_to_string(&mut text).await.unwrap();
///         let _ = read.send(text);
///     });
///     let stop = async move { *kept.borrow_mut() = stop.await.unwrap_or_default() };
///     std::io::Result::Ok(server.serve(listener, stop).await)
/// })?;
/// assert!(answer.borrow().ends_with("hello from server"));
/// assert!(stopped.get());
/// assert_eq!((report.stats.served, report.outcomes.completed, report.leaked), (1, 1, 0));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct HyperServer<E: Engine, C: Recycle, H, S = NoScope> {
    core: ServerCore<E, C>,
    // Where the embedder made it: its requests' mint site in leak reports.
    made_at: MadeAt,
    // The embedder's: dropped caught if the server is dropped unserved.
    handler: DropCaught<H>,
    scope: DropCaught<S>,
    // Checked by a group's loop before it serves.
    pub(super) options: Options,
    after_stop: Hooks,
    after_drain: Hooks,
}

impl<E, C, H> HyperServer<E, C, H, NoScope>
where
    E: for<'s> Engine<Scope<'s> = ()>,
    C: Recycle,
    H: Handler<E, C>,
{
    /// A server admitting through `core` and answering with `handler`. In builds that record
    /// mint sites (debug, `leak-check`), its requests' bundles are minted here: a leak report
    /// names this call.
    #[track_caller]
    pub fn new(core: ServerCore<E, C>, handler: H) -> Self {
        HyperServer::with_scope(core, handler, NoScope)
    }
}

impl<E, C, H, S> HyperServer<E, C, H, S>
where
    E: Engine,
    C: Recycle,
    H: Handler<E, C>,
    S: EnterScope<E>,
{
    /// A server whose engine needs a scope to upgrade (QuickJS: an `rquickjs::Context`). Its
    /// requests' mint site is this call, as [`new`](HyperServer::new)'s.
    #[track_caller]
    pub fn with_scope(core: ServerCore<E, C>, handler: H, scope: S) -> Self {
        HyperServer {
            core,
            made_at: made_here(),
            handler: DropCaught::new(handler),
            scope: DropCaught::new(scope),
            options: Options::default(),
            after_stop: Hooks::default(),
            after_drain: Hooks::default(),
        }
    }

    /// Sets the knobs.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// The knobs set with [`options`](HyperServer::options) ([`Options::default`] until then),
    /// read back: the setter takes the plain name, so the getter is this view, as the builders'
    /// `settings()` (`LoopGroup`, `HyperGroup`, `ServerBuilder`).
    ///
    /// # Examples
    ///
    /// Change one knob of a server made elsewhere, keep the rest:
    ///
    /// ```
    /// use std::time::Duration;
    /// use reqguard::engines::Heap;
    /// use reqguard::tokio_hyper::{demo_routes, HyperServer, Options};
    /// use reqguard::{Config, ServerCore};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// let server = HyperServer::new(core, demo_routes())
    ///     .options(Options::default().with_max_connections(64));
    /// let options = server.settings().with_drain_timeout(Duration::from_secs(2));
    /// let server = server.options(options);
    /// assert_eq!(server.settings().max_connections(), 64);
    /// assert_eq!(server.settings().drain_timeout(), Duration::from_secs(2));
    /// ```
    pub fn settings(&self) -> &Options {
        &self.options
    }

    /// Runs `hook` right after [`ServerCore::stop`] (collect the wrapper there for the PR's
    /// scenario), after any hook set before. A hook that panics is caught, and counted in the
    /// core's [`DrainReport::panicked_hooks`](crate::DrainReport::panicked_hooks) (QA
    /// embed33-3): the others run and the stop goes on. If `serve`'s future is dropped before its stop (which stops the
    /// server and force-closes its connections), the hooks run in that drop, right after its
    /// stop, before any [`after_drain`](HyperServer::after_drain) hook; a future dropped
    /// before its first poll served nothing and stops nothing: its hooks are dropped unrun.
    ///
    /// The hook is `FnMut` (called once), as the mio stack's `Guarded::after_stop`: the
    /// server keeps what it captured while it runs and drops it afterwards, caught, so a hook
    /// that panics while it owns a value whose `Drop` panics too is one caught panic and a
    /// caught drop, not a process abort. A hook that used to move a capture out (`FnOnce`)
    /// takes it out of an `Option` instead
    /// (`move || if let Some(tx) = tx.take() { let _ = tx.send(()); }`).
    pub fn after_stop(mut self, hook: impl FnMut() + 'static) -> Self {
        self.after_stop.push(hook);
        self
    }

    /// Runs `hook` once the drain has completed, after any hook set before. A hook that panics
    /// is caught, and counted in the core's
    /// [`DrainReport::panicked_hooks`](crate::DrainReport::panicked_hooks) (QA embed33-3): the
    /// others run and `serve` returns its report. If `serve`'s future is dropped
    /// before it returns (which stops the server and force-closes its connections), the hooks
    /// not run yet run when that drain completes, as the connections' tasks let their requests
    /// go; they are dropped unrun (caught) only if it never completes (a leak). So too when
    /// `serve` returns before the drain completes (a bundle a handler's task kept past the
    /// force step, or a request admitted through [`core`](HyperServer::core)): they run when
    /// that request ends, where the embedder lets it go (QA embed32-1; inside a QuickJS
    /// `Context::with`, a hook that takes the runtime's lock, `Runtime::run_gc`, panics:
    /// caught and counted in [`DrainReport::panicked_hooks`](crate::DrainReport::panicked_hooks)).
    ///
    /// `FnMut` (called once), for the reason [`after_stop`](HyperServer::after_stop) gives.
    pub fn after_drain(mut self, hook: impl FnMut() + 'static) -> Self {
        self.after_drain.push(hook);
        self
    }

    /// The server core. A [`stop`](ServerCore::stop) through it before the server serves
    /// closes admission only: every request is refused `503` + `connection: close`, and the
    /// server runs until its own `stop` (QA embed18-6).
    pub fn core(&self) -> &ServerCore<E, C> {
        &self.core
    }

    /// Serves `listener` until `stop` resolves, then stops and drains; returns the report.
    ///
    /// Must run inside a [`LocalSet`](tokio::task::LocalSet) on a current-thread runtime: each
    /// connection is a local task.
    ///
    /// # Panics
    ///
    /// At once, with options that cannot serve (a
    /// [`max_connections`](Options::with_max_connections) of 0, a
    /// [`max_head`](Options::with_max_head) below 64 bytes, a zero
    /// [`idle_timeout`](Options::with_idle_timeout) or
    /// [`probe_body_timeout`](Options::with_probe_body_timeout): the rules of the mio server's
    /// `Limits::validate`; [`run`] and `HyperGroup::spawn` return them as an error). Outside a
    /// `LocalSet`, at the first connection accepted (tokio's
    /// [`spawn_local`](tokio::task::spawn_local) panics): the future unwinds into the caller's
    /// `block_on`, as if dropped (see below; nothing was admitted on that connection). The stop:
    /// after the [unready](Options::with_unready) phase (if any), admission closes (a late request
    /// is refused `503`, `connection: close`) and the listener closes (unless
    /// [`Options::keep_listening`](Options::with_keep_listening)); every answer carries
    /// `connection: close`; idle connections linger for
    /// [`Options::stop_linger`](Options::with_stop_linger) and then hyper's graceful shutdown
    /// closes them. The drain ends when the last ticket is released **and** the last connection is
    /// closed; past [`Options::drain_timeout`](Options::with_drain_timeout) it aborts the signals
    /// of what is out, force-closes every connection
    /// [`Options::force_after`](Options::with_force_after) later, and reports what was out.
    ///
    /// Dropping the future before it returns (a `select!` on Ctrl-C, a timeout, an aborted
    /// task) leaves no server to drain the connections: admission closes (a late request is
    /// refused `503`) and every connection is force-closed, its request ending *force closed*.
    /// The [`after_drain`](HyperServer::after_drain) hooks not run yet run when that drain
    /// completes, as the connections' tasks let their requests go.
    ///
    /// `stop` is polled caught: if it panics, the panic is counted in `stats.panics` and the
    /// stop begins as if it had resolved. It is dropped caught too (its `Drop` may panic): the
    /// report comes back either way. (A `force` of [`serve_with_force`] that panics is counted
    /// and never fires.)
    ///
    /// [`serve_with_force`]: HyperServer::serve_with_force
    ///
    /// The report is large (392 bytes): run under `block_on`, box it (`async {
    /// Box::new(server.serve(listener, stop).await) }`), as [`run`] does. `block_on` copies its
    /// future's whole `Poll<Output>` up a few layers on every turn of the loop, once per request
    /// at least: about 200 instructions per request for the bare report.
    // Plain `fn`s returning the loop's future, not `async fn`s awaiting it: the `LocalSet`
    // polls this future on every wake of any connection, and each `async` layer is a state
    // machine to step through on each of those polls.
    pub fn serve(
        self,
        listener: TcpListener,
        stop: impl Future<Output = ()>,
    ) -> impl Future<Output = HyperReport> {
        self.serve_with_force(listener, stop, std::future::pending())
    }

    /// As [`serve`](HyperServer::serve); when `force` resolves (a second SIGTERM), the stop
    /// skips to the end at once: it force-closes every connection, so each request still out
    /// ends *force closed* (its signal fires as its connection closes), as on mio. A `force`
    /// that resolves before `stop` (or with a `stop` that never does) stops the server too,
    /// straight to the force-close (admission closes, the [`after_stop`] hooks run), as
    /// `HyperGroupStop::force` does.
    ///
    /// # Panics
    ///
    /// As [`serve`](HyperServer::serve): at once with options that cannot serve, and outside a
    /// `LocalSet` at the first connection accepted.
    ///
    /// [`after_stop`]: HyperServer::after_stop
    pub fn serve_with_force(
        self,
        listener: TcpListener,
        stop: impl Future<Output = ()>,
        force: impl Future<Output = ()>,
    ) -> impl Future<Output = HyperReport> {
        if let Err(invalid) = self.options.check() {
            panic!("HyperServer::serve: {invalid}");
        }
        let alone = GroupLinger {
            drained: || {},
            all_drained: std::future::ready(()),
            forced: || false,
            room: None,
        };
        Gated::new(self.serve_in(listener, stop, force, alone))
    }

    /// One loop of a [`HyperGroup`](super::HyperGroup): as [`serve_with_force`], keeping the
    /// listener open (answering `503` + `connection: close`) after this loop has drained, until
    /// `all_drained` resolves, so that closing it drops no accept queue (pingora#427).
    ///
    /// [`serve_with_force`]: HyperServer::serve_with_force
    #[cfg(feature = "server")]
    pub(crate) async fn serve_in_group(
        mut self,
        listener: TcpListener,
        stop: impl Future<Output = ()>,
        force: impl Future<Output = ()>,
        linger: GroupLinger<impl FnOnce(), impl Future<Output = ()>, impl Fn() -> bool>,
    ) -> HyperReport {
        self.options.keep_listening = true;
        Gated::new(self.serve_in(listener, stop, force, linger)).await
    }

    async fn serve_in(
        self,
        listener: TcpListener,
        stop: impl Future<Output = ()>,
        force: impl Future<Output = ()>,
        linger: GroupLinger<impl FnOnce(), impl Future<Output = ()>, impl Fn() -> bool>,
    ) -> HyperReport {
        let started = Instant::now();
        let HyperServer {
            core,
            made_at,
            handler,
            scope,
            options,
            after_stop,
            after_drain,
        } = self;
        let tally = Rc::new(Tally::default());
        let health_checks = options.health_checks;
        // The handler and the scope are the embedder's: a `Drop` of theirs that panics must
        // not lose the report, nor escape a drop of this future.
        let shared = DropCaught::new(Rc::new(Shared {
            core,
            made_at,
            handler: handler.into_inner(),
            scope: scope.into_inner(),
            tally,
            health_checks,
            max_head: options.max_head,
            probe_body: options.probe_body,
        }));
        let connections = Rc::new(Connections::default());
        let abandoned = Abandoned {
            shared: &shared,
            connections: &connections,
            armed: Cell::new(true),
            after_stop: Cell::new(Some(after_stop)),
            after_drain: Cell::new(Some(after_drain)),
        };
        // The embedder's stop and force futures: polled and dropped caught (QA embed18-4).
        let (never, tally) = (|| false, Rc::clone(&shared.tally));
        let stop = Trigger::new(stop, &never, &tally).firing_on_panic();
        let forced = Trigger::new(force, &linger.forced, &tally);
        let acceptor = Acceptor {
            shared: &shared,
            connections: &connections,
            options,
            refusing: Rc::default(),
            room: linger.room.as_ref(),
        };
        // A force alone (before the stop, or with none) stops too, straight to the force-close,
        // as a group's `force` does: a second signal is never ignored for want of a first.
        let stop_or_forced = async {
            tokio::select! {
                biased;
                () = stop.fired() => {}
                () = forced.fired() => {}
            }
        };
        acceptor.run(&listener, stop_or_forced).await;
        let steps = Steps::default();
        steps.start();
        // A force by now skips the unready phase, not entered (nor recorded at 0 ms: QA
        // embed16-2): the stop goes straight to the force-close.
        if !options.unready.is_zero() && !forced.fired_by_now().await {
            steps.record(StepKind::Unready, shared.core.ledger(), &connections);
            shared.tally.set_unready();
            connections.answers_close();
            let unready = async {
                tokio::select! {
                    () = tokio::time::sleep(options.unready) => {}
                    () = forced.fired() => {}
                }
            };
            acceptor.run(&listener, unready).await;
        }

        steps.record(StepKind::Drain, shared.core.ledger(), &connections);
        shared.tally.set_stopping();
        connections.answers_close();
        let drain = shared.core.stop();
        if let Some(after_stop) = abandoned.after_stop.take() {
            drain.count_hook_panics(after_stop.run());
        }
        let stopper = Stopper {
            shared: &shared,
            connections: &connections,
            drain: &drain,
            forced: &forced,
            steps: &steps,
            options,
        };
        let stopped = if options.keep_listening {
            let stopped = tokio::select! {
                stopped = stopper.run() => stopped,
                () = acceptor.run(&listener, std::future::pending()) => unreachable!(),
            };
            (linger.drained)();
            acceptor
                .run(&listener, stopper.hold(linger.all_drained))
                .await;
            acceptor.close_listener(listener);
            stopper.close_late_connections().await;
            stopped
        } else {
            acceptor.close_listener(listener); // stop accepting
            let stopped = stopper.run().await;
            (linger.drained)();
            stopped
        };
        if !stopped.forced {
            acceptor.let_lingering_finish(&forced).await;
        }
        abandoned.armed.set(false);
        let after_drain = abandoned.after_drain.take().unwrap_or_default();
        // Now if the drain is complete; else when it completes (a request out of every
        // connection past the force: a handler's task that kept its bundle, one admitted
        // through `core`), as a dropped future's hooks do (QA embed32-1: they were dropped
        // unrun, though the drain completed once that request ended). Dropped unrun, each
        // caught, only if it never completes (a leak).
        drain.on_complete_counted(move || after_drain.run());
        let report = report(&shared, stopped, started, steps);
        drop(abandoned);
        drop(shared);
        report
    }
}

/// Held by `serve`'s future until its stop has run: dropped before that (the embedder dropped
/// the future: a `select!` on Ctrl-C, a timeout, an aborted task; or a hook panicked), no
/// server is left to stop the connections' tasks, which hold the core and would go on
/// admitting. So it stops the core (a late request is refused `503`), runs the `after_stop`
/// hooks if the stop had not run them yet (right after that stop, as the stop's own step runs
/// them: QA embed21-4; before, they were dropped unrun, while the `after_drain` hooks ran), and
/// force-closes every connection (each request still out ends *force closed*). The
/// `after_drain` hooks not run yet run when that drain completes, as the tasks let their
/// bundles go (a runtime's `server.stop()` promise resolves; QA embed20-5): before, they were
/// dropped unrun.
struct Abandoned<'a, E: Engine, C: Recycle, H, S> {
    shared: &'a Rc<Shared<E, C, H, S>>,
    connections: &'a Rc<Connections>,
    armed: Cell<bool>,
    /// Until the stop's step runs them.
    after_stop: Cell<Option<Hooks>>,
    after_drain: Cell<Option<Hooks>>,
}

impl<E: Engine, C: Recycle, H, S> Drop for Abandoned<'_, E, C, H, S> {
    fn drop(&mut self) {
        if self.armed.get() {
            let tally = &self.shared.tally;
            tally.set_stopping();
            self.connections.answers_close();
            tally.set_force_closing();
            let drain = self.shared.core.stop();
            if let Some(hooks) = self.after_stop.take() {
                drain.count_hook_panics(hooks.run());
            }
            if let Some(hooks) = self.after_drain.take() {
                drain.on_complete_counted(move || hooks.run());
            }
            self.connections.abort_all();
        }
    }
}

fn report<E: Engine, C: Recycle, H, S>(
    shared: &Shared<E, C, H, S>,
    stopped: Stopped,
    started: Instant,
    steps: Steps,
) -> HyperReport {
    let ledger = shared.core.ledger();
    // Recorded only with `server` (StepRecord is the mio loops' type).
    steps.add_answered(shared.tally.answered_at_end_count());
    HyperReport {
        stats: shared.tally.stats(),
        outcomes: ledger.outcomes(),
        leaked: ledger.total_outstanding(),
        leaks: ledger.report(),
        drain_time: stopped.drain_time,
        drain_deadline_hit: stopped.deadline_hit,
        deadline: stopped.deadline,
        forced: stopped.forced,
        force_closed: stopped.force_closed,
        pool: shared.core.pool_metrics(),
        uptime: started.elapsed(),
        #[cfg(feature = "server")]
        steps: steps.take(),
    }
}

/// The stop or force signal: the caller's future, polled wherever the stop waits, or a group's
/// phase, read at each look (`level`); once either says so, it stays fired.
///
/// The future is the embedder's (`serve`'s `stop`, `serve_with_force`'s `force`): polled caught,
/// a panic counted in `panics` and the future not polled again, and dropped caught. Before,
/// either panic unwound out of `serve` and lost the report (QA embed18-4). A stop that panics
/// has fired (else nothing could stop the server); a force that panics never fires (a broken
/// force future must not force-close a serving server: the stop and its deadlines still run).
struct Trigger<'f> {
    fired: Cell<bool>,
    future: RefCell<Pin<Box<dyn Future<Output = ()> + 'f>>>,
    tally: &'f Tally,
    /// The future panicked: not polled again.
    panicked: Cell<bool>,
    /// What a panic of the future reads as.
    panic_fires: bool,
    /// A group's force read at once: its watch future may still be `Pending` just after the
    /// phase changed (tokio wakes a watch's receivers through several `Notify`s in turn, and a
    /// parked `wait_for` does not look at the value until its own is woken), so a force that
    /// came with the stop was missed now and then: an unready step entered, or a drain that
    /// happened to complete first reported not forced (about 1 run in 100 under load,
    /// `probe_embed_v16::hyper_embed::a_force_before_the_unready_phase_skips_it`).
    level: &'f dyn Fn() -> bool,
}

impl<'f> Trigger<'f> {
    fn new(
        future: impl Future<Output = ()> + 'f,
        level: &'f dyn Fn() -> bool,
        tally: &'f Tally,
    ) -> Self {
        Trigger {
            fired: Cell::new(false),
            future: RefCell::new(Box::pin(future)),
            tally,
            panicked: Cell::new(false),
            panic_fires: false,
            level,
        }
    }

    /// A trigger that fires if its future panics (the stop).
    fn firing_on_panic(mut self) -> Self {
        self.panic_fires = true;
        self
    }

    async fn fired(&self) {
        poll_fn(|cx| {
            if self.poll_fired(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// Whether it has fired by now (polled once: a force that came with the stop).
    async fn fired_by_now(&self) -> bool {
        poll_fn(|cx| Poll::Ready(self.poll_fired(cx))).await
    }

    fn poll_fired(&self, cx: &mut std::task::Context<'_>) -> bool {
        if !self.fired.get() && ((self.level)() || self.poll_future(cx)) {
            self.fired.set(true);
        }
        self.fired.get()
    }

    /// Whether the future is ready; after a panic in it, `panic_fires`.
    fn poll_future(&self, cx: &mut std::task::Context<'_>) -> bool {
        if self.panicked.get() {
            return self.panic_fires;
        }
        let mut future = self.future.borrow_mut();
        caught(|| future.as_mut().poll(cx).is_ready()).unwrap_or_else(|| {
            self.tally.bump(|s| &mut s.panics);
            self.panicked.set(true);
            self.panic_fires
        })
    }
}

impl Drop for Trigger<'_> {
    fn drop(&mut self) {
        let future = std::mem::replace(self.future.get_mut(), Box::pin(std::future::pending()));
        call_caught(move || drop(future));
    }
}

/// The accept loop: until the stop future resolves, then (with `keep_listening`) in the drain.
struct Acceptor<'a, E: Engine, C: Recycle, H, S> {
    shared: &'a Rc<Shared<E, C, H, S>>,
    connections: &'a Rc<Connections>,
    /// Watches connections until the stop signals them (then it is taken).
    options: Options,
    /// Connections refused over the limit still lingering (see `refuse_over_limit`).
    refusing: Rc<Cell<usize>>,
    /// This loop's group, if any: out of descriptors the loops free them for each other.
    room: Option<&'a Room>,
}

/// How many connections may linger at once (refused over the limit, or closed by hyper with
/// input maybe still coming: `linger.rs`) outside the stop (as on the mio server).
const MAX_REFUSING: usize = 64;

/// Whether an accept error says the process (`EMFILE`) or the system (`ENFILE`) is out of
/// descriptors (24 and 23 on Linux, macOS and the BSDs).
fn out_of_descriptors(error: &std::io::Error) -> bool {
    cfg!(unix) && matches!(error.raw_os_error(), Some(23 | 24))
}

/// How many yields in a row that free no slot the accept loop makes, at the connection limit,
/// for the connections it accepted and has not read yet (`let_unread_connections_read`): one
/// reactor poll does not always bring every one of them (24 threads connecting and closing,
/// 9,600 connections: 16 of 40 yields freed none, and with one yield 1,100 of them were
/// refused).
const UNREAD_YIELDS: usize = 4;

/// How long the accept loop pauses after an accept error (`EMFILE`): it must not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

impl<E, C, H, S> Acceptor<'_, E, C, H, S>
where
    E: Engine,
    C: Recycle,
    H: Handler<E, C>,
    S: EnterScope<E>,
{
    async fn run(&self, listener: &TcpListener, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        // Connections registered since the last wait for unread ones (at the limit): maybe not
        // read yet.
        let mut unread = false;
        loop {
            tokio::select! {
                biased;
                () = &mut stop => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        // At the limit, an idle or slow connection makes room first, as on the
                        // mio loops: only with none to evict does the newcomer wait for those
                        // not read yet (QA load21-1: waiting first, each newcomer of a flood
                        // waited four turns of every busy connection's task).
                        if unread
                            && self.connections.staying() >= self.options.max_connections
                            && !self.evict_oldest(false)
                        {
                            self.let_unread_connections_read().await;
                            unread = false;
                        }
                        unread |= self.serve_connection(stream);
                    }
                    Err(error) => {
                        // Out of descriptors: the connection idle or reading its head the
                        // longest gives its descriptor up, as at max_connections (slow heads
                        // must not lock newcomers out), one at a time; its task closes it
                        // before the next accept. Else (or a transient error) pause, do not
                        // spin.
                        if out_of_descriptors(&error) {
                            if self.connections.evicting() == 0 && self.evict_oldest(true) {
                                tokio::task::yield_now().await;
                                continue;
                            }
                            // None of this loop's own: the other loops of its group free one.
                            if let Some(room) = self.room {
                                room.ask_others();
                            }
                        }
                        self.shared.tally.bump(|s| &mut s.accept_backoffs);
                        tokio::select! {
                            () = &mut stop => return,
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        }
                    }
                },
                // Another loop of the group is out of descriptors with none of its own to free.
                () = Room::asked(self.room) => {
                    if self.connections.evicting() == 0 {
                        self.evict_oldest(true);
                    }
                }
            }
        }
    }

    /// At the limit with none to evict and connections just accepted and not read yet: clients that
    /// connected and went at once (TCP health checks, port scans, clients that gave up; their FIN
    /// or reset behind them in the backlog) hold slots that are free once read, and a newcomer
    /// refused now was refused for nothing (`probe_client::v15::
    /// clients_gone_in_the_backlog_do_not_lock_a_newcomer_out_on_either_stack`). Yields to their
    /// tasks (tokio defers a yield until its reactor has been polled) until a slot is free, or
    /// [`UNREAD_YIELDS`] yields in a row freed none.
    #[cold]
    #[inline(never)]
    async fn let_unread_connections_read(&self) {
        let mut fruitless = 0;
        while fruitless < UNREAD_YIELDS
            && self.connections.staying() >= self.options.max_connections
        {
            let before = self.connections.staying();
            tokio::task::yield_now().await;
            fruitless = if self.connections.staying() < before {
                0
            } else {
                fruitless + 1
            };
        }
    }

    /// Serves an accepted connection, or refuses it `503` over the limit; true if served.
    fn serve_connection(&self, stream: TcpStream) -> bool {
        let tally = &self.shared.tally;
        if self.connections.staying() >= self.options.max_connections && !self.evict_oldest(false) {
            self.refuse_over_limit(stream);
            return false;
        }
        tally.bump(|s| &mut s.connections);
        let _ = stream.set_nodelay(true);
        // Accepted during a drain that keeps the listener open: it answers 503 and closes by
        // itself, and must not hold the drain (clients reconnecting would hold it forever).
        let late = self.options.keep_listening && tally.is_stopping();
        let (registered, conn) = self.connections.register(
            tally,
            self.options.record_activity,
            late,
            self.options.max_head,
            self.options.half_close,
        );
        let watched = Rc::clone(&conn);
        let handoff = Rc::clone(&conn);
        let stall = Stall::new(self.options.idle_timeout, self.options.min_send_rate);
        let stream = LingeringIo::new(stream, Rc::clone(&conn), stall);
        // A connection accepted during the drain answers once (503) and closes.
        let conn = hyper_http1(self.options, !tally.is_stopping(), &conn).serve_connection(
            TokioIo::new(stream),
            RequestService::new(Rc::clone(self.shared), conn),
        );
        // Watched by the stop's graceful shutdown, unless accepted once stopping: then it
        // answers once and closes by itself (the shutdown would close it before its request is
        // read).
        self.spawn(registered, Watched::new(conn, watched), handoff);
        true
    }

    /// At the connection limit, or out of descriptors (`at_once`): the connection idle or
    /// reading its head the longest makes room (as on the mio loops: slow heads must not lock
    /// newcomers out); counted.
    fn evict_oldest(&self, at_once: bool) -> bool {
        let evicted = self.connections.evict_oldest(Instant::now(), at_once);
        if evicted {
            self.shared.tally.bump(|s| &mut s.connections_evicted);
        }
        evicted
    }

    /// Closes the listener after taking the connections already in its accept queue, which
    /// closing it would reset (each is served: `503` + `connection: close` once admission is
    /// closed), as the mio loops do at their close step. Through a real `accept` call: tokio's
    /// `poll_accept` trusts the readiness its reactor last saw, which may predate them.
    fn close_listener(&self, listener: TcpListener) {
        let Ok(listener) = listener.into_std() else {
            return;
        };
        while let Ok((stream, _)) = listener.accept() {
            let stream = stream
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(stream));
            if let Ok(stream) = stream {
                self.serve_connection(stream);
            }
        }
    }

    /// Answers `503` to a connection over the limit and closes it as the mio server does: its
    /// write side first, then what the client sent is read and dropped for a moment, so the
    /// close is a clean end and not a reset that could discard the `503` before the client
    /// reads it (RFC 9112 §9.6). At most [`MAX_REFUSING`] linger at once; past that, or when
    /// the send buffer is full, the connection just closes.
    fn refuse_over_limit(&self, stream: TcpStream) {
        // Best effort: a full send buffer just closes it without the answer. Counted only if
        // the socket took it whole: one that did not go out (the client reset first) was none.
        let answer = closing_answer("503 Service Unavailable", "");
        if !stream.try_write(&answer).is_ok_and(|n| n == answer.len()) {
            return;
        }
        self.shared.tally.bump(|s| &mut s.connections_refused);
        if self.refusing.get() >= MAX_REFUSING {
            return;
        }
        tokio::task::spawn_local(linger(stream, &self.refusing, None, None));
    }

    /// Lets the connections still lingering after their last answer (a `503` or `413` whose
    /// request body was still arriving, answers a slow reader has not taken yet) finish, up
    /// to their linger, unless forced: the runtime (often the process) ends after `serve`, and
    /// closing them under a client still sending resets the connection, and the reset drops
    /// what the socket had not sent yet (a client that stops at the failed write never reads
    /// the answer).
    async fn let_lingering_finish(&self, forced: &Trigger<'_>) {
        let end = tokio::time::Instant::now() + LINGER_LIMIT;
        while self.refusing.get() > 0 && tokio::time::Instant::now() < end {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
                () = forced.fired() => return,
            }
        }
    }

    /// Runs a connection as a local task, registered for the drain and a force-close. If hyper
    /// closes it while its client is still sending, it lingers (`linger.rs`), no longer counted
    /// open, and at most [`MAX_REFUSING`] at once with the refused ones; past that it closes.
    fn spawn(
        &self,
        registered: Registered,
        mut conn: Watched<HyperConnection<E, C, H, S>>,
        handoff: Rc<Conn>,
    ) {
        let key = registered.key();
        let tally = Rc::clone(&self.shared.tally);
        let lingering = Rc::clone(&self.refusing);
        let options = self.options;
        let task = tokio::task::spawn_local(async move {
            // Whether the poll below is hyper's second after its end (the upgrade's close).
            let mut polled_again = false;
            loop {
                // The one place the task awaits hyper: with a second one for the re-poll
                // below (`let _ = InPlace(&mut conn).await`, round 32), `Watched::poll` was
                // no longer inlined here and every wake of the task paid a call of its own,
                // about 25 instructions per request (callgrind section 9, round 33).
                let ended = InPlace(&mut conn).await;
                if !std::mem::take(&mut polled_again) {
                    // hyper answered 400 or 431 (not to an HTTP/2 preface, which it closes on
                    // without a word: counted, the exit JSON had a rejection no client saw).
                    let answered_bad_input = ended.as_ref().is_err_and(|err| {
                        (err.is_parse() || err.is_parse_too_large()) && !err.is_parse_version_h2()
                    });
                    if let Err(err) = &ended {
                        if answered_bad_input {
                            tally.bump(|s| &mut s.rejected);
                        }
                        if err.is_timeout() {
                            head_timed_out(conn.into_connection());
                            break;
                        }
                    }
                    if (ended.is_ok() || answered_bad_input)
                        && !handoff.was_shut_by_hyper()
                        && handoff.reads_as_usual()
                    {
                        // hyper ended the connection by its choice without shutting its
                        // socket's write side: a request on it asked for an upgrade (a
                        // `CONNECT`, or an `Upgrade` field in HTTP/1.1), which hyper 1.x arms
                        // and never disarms when the answer is not a `101` (or a `2xx` to
                        // `CONNECT`); at the connection's end (an answer that closes, its own
                        // `400`) it hands the socket to that upgrade (`Dispatched::Upgrade`,
                        // its buffer not flushed), which the adapter never takes (no
                        // `with_upgrades`). The socket was closed as an aborted one: what hyper
                        // had not flushed was lost, and with input unread the close reset the
                        // connection, dropping what the socket had not sent (a client reading a
                        // 256 KiB echo answer through a small window read 47 to 133 KiB of it,
                        // then the reset; QA client32-1). Polled once more (the loop's await
                        // again, its outcome not looked at), hyper finds the upgrade gone and
                        // ends as at any close: it flushes, shuts the write side, and the
                        // socket lingers.
                        polled_again = true;
                        continue;
                    }
                }
                if handoff.reads_as_usual() {
                    drop(conn);
                    break;
                }
                // The server ended hyper's reads (an eviction, the stop): what hyper's buffer
                // held is answered, or given back to hyper.
                match reads_ended(conn.into_connection(), options) {
                    Some(again) => conn = Watched::new(again, Rc::clone(&handoff)),
                    None => break,
                }
            }
            drop(registered);
            if let Some((stream, written, owed)) = handoff.take_handoff() {
                // Past the cap during the stop too: its graceful shutdown closes every busy
                // connection at once, and one closed with input unread is reset, its last
                // answer (counted) lost in the client's socket. No newcomer takes the slot then.
                if lingering.get() < MAX_REFUSING || tally.is_stopping() {
                    let answers = Some((Rc::clone(&handoff), written));
                    linger(stream, &lingering, answers, owed).await;
                } else {
                    // Closed at once: what the socket had not sent may go with it.
                    handoff.count_undelivered(&stream, &written);
                }
            }
        });
        self.connections.set_abort_handle(key, task.abort_handle());
    }
}

/// A future polled where it is, kept for what follows its end (`Acceptor::spawn`: the
/// connection, for `head_timed_out`). `(&mut future).await` made the connection's poll a
/// call of its own, about 19 instructions more per request (callgrind section 9).
struct InPlace<'a, F>(&'a mut F);

impl<F: Future + Unpin> Future for InPlace<'_, F> {
    type Output = F::Output;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        Pin::new(&mut *self.0).poll(cx)
    }
}

/// A connection's hyper future, as the connection's task polls it.
type HyperConnection<E, C, H, S> =
    http1::Connection<TokioIo<LingeringIo>, RequestService<E, C, H, S>>;

/// hyper's header read timeout (`Options::idle_timeout`) ended the connection. With a request head
/// in progress (bytes of it in hyper's read buffer: empty lines before a request line count, as the
/// mio loops time a request from them), the client is answered `408` + close, counted `rejected` if
/// the socket takes it whole, and the socket lingers as after any answer that closes, as the mio
/// loops answer a head still incomplete at their request timeout (RFC 9110 §15.5.9); an idle
/// connection (nothing of a head) just closes, as there. hyper writes no answer at its timeout:
/// before, the slow head got an EOF on hyper, `408` on mio
/// (`probe_client::v18::a_slow_head_gets_408_and_an_idle_connection_an_eof_on_hyper`).
#[cold]
#[inline(never)]
fn head_timed_out<E, C, H, S>(connection: HyperConnection<E, C, H, S>)
where
    E: Engine,
    C: Recycle,
    H: Handler<E, C>,
    S: EnterScope<E>,
{
    let parts = connection.into_parts();
    if !parts.read_buf.is_empty() {
        let answer = timed_out_head_answer(&parts.read_buf, parts.service.max_head());
        parts.io.into_inner().answer_slow_head(&answer);
    }
}

/// A connection's hyper builder: as `serve` configures it, keep-alive on if `keep_alive`, its
/// timer `conn`'s (`HeadTimer`: hyper's header read timer tells when a head read begins).
fn hyper_http1(options: Options, keep_alive: bool, conn: &Conn) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(HeadTimer::of(conn))
        .header_read_timeout(options.idle_timeout)
        .max_buf_size(options.max_buffer)
        // The adapter's half-close is its own (`Conn::holds_client_end`): hyper, with its
        // own off, reads the socket inside a request only with its buffer empty, which tells
        // the adapter that the client's end of input comes after every request it sent.
        .half_close(false)
        .keep_alive(keep_alive);
    builder
}

/// hyper's connection ended because the server ended its reads (`Reads`, src/tokio_hyper/
/// connections.rs); its read buffer is taken back. Evicted: a head in progress there is
/// answered as the mio loops answer it at their request timeout (`408`; a head already past
/// `max_head` `501`, `414` or `431`; to a `HEAD` without a body: `timed_out_head_answer`), and
/// a connection with nothing of a head closes without an answer (since round 33 also one
/// that never sent a byte, as on the mio loops: it got `408` before). Before, the adapter answered the eviction from its socket, not seeing hyper's
/// buffer: `408` with its body to a `HEAD` (a strict client read the body as the start of the
/// next answer: QA client19-1), and no answer to a head begun after an earlier answer (mio:
/// `408`). The stop: a connection with nothing of a head closes (as hyper's graceful shutdown
/// closed it), and a head in progress is given back to a new hyper connection of the same
/// socket with keep-alive off (returned, to be run): its `503` once whole (admission is
/// closed) or `408` at the header timeout, as the mio loops answer it, where hyper's graceful
/// shutdown closed it unanswered (QA client19-3).
#[cold]
#[inline(never)]
fn reads_ended<E, C, H, S>(
    connection: HyperConnection<E, C, H, S>,
    options: Options,
) -> Option<HyperConnection<E, C, H, S>>
where
    E: Engine,
    C: Recycle,
    H: Handler<E, C>,
    S: EnterScope<E>,
{
    let parts = connection.into_parts();
    let mut io = parts.io.into_inner();
    let max_head = parts.service.max_head();
    // A head of `max_head` bytes with a byte more waiting is past the limit too.
    let continues = io.take_head_continues();
    let at_limit = continues && after_empty_lines(&parts.read_buf).len() >= max_head;
    let past = at_limit || past_max_head(&parts.read_buf, max_head);
    let answer = match io.conn().reads() {
        // A head in progress the stop reaches past the drain deadline (behind an answer the
        // force step let go out: `Connections::abort_what_is_out`): the deadline's `503` +
        // close now, as the mio loops answer it once that answer is written. Held for the
        // deadline gone by, it waited for hyper's header timeout and was closed unanswered at
        // the close linger's end.
        Reads::Stop if io.reads_ended() && held_past_deadline(&io, &parts.read_buf) => {
            let refused = closing_answer("503 Service Unavailable", "");
            let _ = io.answer_ended(Some(&refused), Tally::answered_at_end);
            return None;
        }
        Reads::Stop if io.reads_ended() && !parts.read_buf.is_empty() => {
            let io = io.replay(parts.read_buf);
            let http1 = hyper_http1(options, false, io.conn());
            return Some(http1.serve_connection(TokioIo::new(io), parts.service));
        }
        Reads::Stop | Reads::Hyper | Reads::Replay | Reads::Chunked => None,
        // Counted in no total, as the mio loops' close step counts its `503`s only in its
        // step's `answered`: here in the last step's (QA load21-2: in none before).
        Reads::Deadline => {
            let refused = closing_answer("503 Service Unavailable", "");
            let _ = io.answer_ended(Some(&refused), Tally::answered_at_end);
            return None;
        }
        Reads::HeadTooLong if past => Some(head_answer(&parts.read_buf, max_head, true)),
        // The stop reached the connection while an answer was on its way, and the count
        // ended hyper's reads as that answer went out: the head is the stop's to keep, as its
        // keep-alive step keeps one (held: `503` + close at the drain deadline; an idle
        // connection closes). Given back as before the stop, it was kept by no one: the drain
        // deadline passed it by, and it was force-closed or timed out `408` where mio answers
        // `503` (QA client21-3).
        Reads::HeadTooLong if io.conn().stop_reached() => {
            if held_past_deadline(&io, &parts.read_buf) {
                let refused = closing_answer("503 Service Unavailable", "");
                let _ = io.answer_ended(Some(&refused), Tally::answered_at_end);
                return None;
            }
            // Nothing of a head in hyper's buffer (it had empty lines alone), but more waits
            // in the socket: kept too (`read_near_head_limit`).
            if parts.read_buf.is_empty() && !continues {
                None
            } else {
                let io = io.replay(parts.read_buf);
                let http1 = hyper_http1(options, false, io.conn());
                return Some(http1.serve_connection(TokioIo::new(io), parts.service));
            }
        }
        Reads::HeadTooLong => {
            let keep_alive = io.conn().keeps_alive();
            let io = io.give_back(parts.read_buf);
            let http1 = hyper_http1(options, keep_alive, io.conn());
            return Some(http1.serve_connection(TokioIo::new(io), parts.service));
        }
        Reads::Evicted if !parts.read_buf.is_empty() => Some(timed_out_head_answer(
            &parts.read_buf,
            parts.service.max_head(),
        )),
        // Nothing of a request (idle after an answer, or silent since its accept): closed
        // without an answer, as on the mio loops. A `408` there answers no request, and a
        // client that opened the connection to send on it reads it as the answer to its
        // first request (it was written to a connection that never spoke before round 33).
        Reads::Evicted => None,
    };
    // Bad input, as the mio loops count it.
    let _ = io.answer_ended(answer.as_deref(), |tally| tally.bump(|s| &mut s.rejected));
    None
}

/// Whether the stop keeps `buf`, a head in progress, for a drain deadline already gone by
/// (reached behind an answer the force step let go out): it gets the deadline's `503` now.
fn held_past_deadline(io: &LingeringIo, buf: &[u8]) -> bool {
    !buf.is_empty() && io.conn().tally.is_past_deadline()
}

/// What the mio loops answer the head `buf` begins (after any empty lines), incomplete when its
/// time ran out: `408`, unless it is already longer than `max_head`, which mio refuses as soon
/// as it is (src/http/parse.rs, `too_large`): `501` if the method does not end within
/// `max_head` bytes, `414` if the target does not, else `431` (hyper waits for a head to end
/// until its buffer, `Options::max_buffer`, is full). To a `HEAD`, the explanation's length
/// alone. Before, the `408` went to every head, its body to a `HEAD` too (a strict client read
/// it as the start of the next answer).
fn timed_out_head_answer(buf: &[u8], max_head: usize) -> Vec<u8> {
    head_answer(buf, max_head, past_max_head(buf, max_head))
}

/// What the mio loops answer the head `buf` begins, incomplete: `408`, or if it is `past`
/// `max_head`, as [`timed_out_head_answer`] says.
fn head_answer(buf: &[u8], max_head: usize, past: bool) -> Vec<u8> {
    let head = after_empty_lines(buf);
    let window = &head[..head.len().min(max_head)];
    let mut spaces = window.iter().enumerate().filter(|(_, byte)| **byte == b' ');
    let (status, explanation) = match (past, spaces.next(), spaces.next()) {
        (false, ..) => ("408 Request Timeout", "Request Timeout"),
        (true, None, _) => ("501 Not Implemented", "Not Implemented"),
        (true, Some(_), None) => ("414 URI Too Long", "URI Too Long"),
        (true, Some(_), Some(_)) => (
            "431 Request Header Fields Too Large",
            "Request Header Fields Too Large",
        ),
    };
    closing_answer_to(status, explanation, head.starts_with(b"HEAD "))
}

/// The head `buf` begins, after any empty lines (as httparse skips them).
pub(crate) fn after_empty_lines(buf: &[u8]) -> &[u8] {
    let mut head = buf;
    while let [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] = head {
        head = rest;
    }
    head
}

/// Whether the head in progress `buf` begins is longer than `max_head`: the mio loops refuse
/// it at once (`timed_out_head_answer` says how).
fn past_max_head(buf: &[u8], max_head: usize) -> bool {
    after_empty_lines(buf).len() > max_head
}

/// The stop after admission closed: linger, graceful shutdown, drain, and the deadline.
struct Stopper<'a, 'f, E: Engine, C: Recycle, H, S> {
    shared: &'a Rc<Shared<E, C, H, S>>,
    connections: &'a Connections,
    drain: &'a Drain,
    forced: &'a Trigger<'f>,
    steps: &'a Steps,
    options: Options,
}

/// How a stop went.
struct Stopped {
    /// What the deadline (or the force signal) found.
    deadline: Option<DrainReport>,
    /// Whether the force signal ended the drain.
    forced: bool,
    /// Whether the drain deadline passed with requests out (not only connections open).
    deadline_hit: bool,
    /// Connections closed by the server at the end.
    force_closed: u64,
    /// From stop to the last ticket released and the last connection closed, if both happened.
    drain_time: Option<Duration>,
}

impl<E: Engine, C: Recycle, H, S> Stopper<'_, '_, E, C, H, S> {
    async fn run(&self) -> Stopped {
        let stopped_at = Instant::now();
        let deadline = stopped_at + self.options.drain_timeout;
        self.drain.set_deadline(deadline);
        let linger_end = stopped_at + self.options.stop_linger.min(self.options.drain_timeout);
        // Idle keep-alive connections linger: a late request gets 503 + connection: close.
        // Forced first: a force that came before (or with) the stop is not lost to a drain
        // that happens to be complete.
        tokio::select! {
            biased;
            () = self.forced.fired() => return self.escalate(stopped_at, true).await,
            () = self.both_done() => {}
            () = tokio::time::sleep_until(linger_end.into()) => {}
        }
        // Keep-alive off for what is left (hyper's graceful shutdown): idle connections close
        // now, busy ones after their answer.
        // Every connection task gets a first turn to read what its client already sent: hyper's
        // graceful shutdown closes a connection that has read nothing yet.
        tokio::task::yield_now().await;
        self.connections
            .shut_down_gracefully(self.options.keep_listening);
        tokio::select! {
            () = self.both_done() => Stopped {
                deadline: None,
                forced: false,
                deadline_hit: false,
                force_closed: 0,
                drain_time: Some(stopped_at.elapsed()),
            },
            () = tokio::time::sleep_until(deadline.into()) => self.escalate(stopped_at, false).await,
            () = self.forced.fired() => self.escalate(stopped_at, true).await,
        }
    }

    /// The last ticket released **and** the last connection closed (but late ones: accepted
    /// during the drain, they answer `503` and close by themselves).
    async fn both_done(&self) {
        let _ = self.drain.clone().await;
        self.connections.drained().await;
    }

    /// Past the deadline: abort what is out, then `force_after` later (unless all ended
    /// meanwhile) force-close the connections; reports what was out. Forced (a second signal):
    /// as on mio, the connections close at once and each request still out ends *force
    /// closed* (its signal fires as its connection closes).
    async fn escalate(&self, stopped_at: Instant, forced: bool) -> Stopped {
        let ledger = self.shared.core.ledger();
        if forced {
            self.steps.record(StepKind::Force, ledger, self.connections);
            let before = ledger.outcomes();
            let force_closed = self.force_close().await;
            let ended = self.steps.set_ended(before, ledger.outcomes());
            // Whatever the force-close did not end (nothing, normally) is aborted now.
            let mut found = self.drain.escalate();
            found.aborted_signals += ended.force_closed as usize;
            return self.stopped(stopped_at, found, (true, false), force_closed);
        }
        self.steps.record(StepKind::Abort, ledger, self.connections);
        self.connections.answer_held_heads();
        // Hit only with requests out: connections still closing (an idle one hyper's graceful
        // shutdown has not closed yet, a close linger) are not requests, as on mio.
        let requests_out = !self.drain.is_complete();
        let found = match self.drain.poll_deadline(Instant::now()) {
            DrainStatus::Expired(report) => report,
            _ => self.drain.report(),
        };
        // Handlers that watch their signal may still answer.
        tokio::select! {
            () = self.both_done() => {}
            () = tokio::time::sleep(self.options.force_after) => {}
            () = self.forced.fired() => {}
        }
        // What the force-close would close unanswered with no request out (a connection
        // spared by the keep-alive step, silent since) first gets its `503` + close, as the mio
        // loops' close step answers it: one turn for their tasks to write it.
        self.connections.answer_silent_at_close(true);
        tokio::task::yield_now().await;
        let before = ledger.outcomes();
        self.steps.record(StepKind::Force, ledger, self.connections);
        let force_closed = self.force_what_is_out().await;
        self.steps.set_ended(before, ledger.outcomes());
        self.stopped(stopped_at, found, (false, requests_out), force_closed)
    }

    /// The force step the stop's time reaches: ends what is still out (the tasks of the
    /// connections with a request out and no answer waiting for the socket), and lets the
    /// others write the answers they have computed and close (keep-alive is off), as the mio
    /// loops' force step does; what is still open [`LINGER_LIMIT`] later (a client that does
    /// not read), or at a force signal meanwhile (a second SIGTERM), is closed then. Returns
    /// how many connections the server closed. Before, every connection was closed here, and
    /// an answer hyper had not written whole into the socket was cut, counted `undelivered`
    /// (QA client30-1).
    async fn force_what_is_out(&self) -> u64 {
        // A force signal by now (it cut the `force_after` wait short): every connection closes
        // at once, as at any step.
        if self.connections.len() == 0 || self.forced.fired_by_now().await {
            return self.force_close().await;
        }
        self.shared.tally.set_force_closing();
        let out = self.connections.abort_what_is_out() as u64;
        tokio::select! {
            () = self.connections.drained() => {}
            () = tokio::time::sleep(LINGER_LIMIT) => {}
            () = self.forced.fired() => {}
        }
        out + self.force_close().await
    }

    /// Closes every connection still open (their tasks are aborted); returns how many.
    async fn force_close(&self) -> u64 {
        if self.connections.len() == 0 {
            return 0;
        }
        self.shared.tally.set_force_closing();
        let force_closed = self.connections.abort_all() as u64;
        // Aborted tasks are dropped on their next turn; bounded, in case one never is.
        let _ = tokio::time::timeout(FORCE_CLOSE_WAIT, self.connections.closed()).await;
        force_closed
    }

    fn stopped(
        &self,
        stopped_at: Instant,
        found: DrainReport,
        (forced, deadline_hit): (bool, bool),
        force_closed: u64,
    ) -> Stopped {
        let done = self.drain.is_complete() && self.connections.len() == 0;
        Stopped {
            deadline: Some(found),
            forced,
            deadline_hit,
            force_closed,
            drain_time: done.then(|| stopped_at.elapsed()),
        }
    }
}

/// How a loop of a group tells the others it has drained, and waits for them all.
pub(crate) struct GroupLinger<D, A, F> {
    /// Called once this loop's drain has ended (completed or escalated).
    pub(crate) drained: D,
    /// Resolves once every loop of the group has drained.
    pub(crate) all_drained: A,
    /// Whether the group was forced (read when it closes).
    pub(crate) forced: F,
    /// Out of descriptors, how this loop and the others free them for each other.
    pub(crate) room: Option<Room>,
}

impl<E: Engine, C: Recycle, H, S> Stopper<'_, '_, E, C, H, S> {
    /// After this loop's drain: until `all_drained`; a force signal meanwhile is recorded (this
    /// loop had nothing left to force). Then the close step.
    async fn hold(&self, all_drained: impl Future<Output = ()>) {
        let ledger = self.shared.core.ledger();
        tokio::select! {
            () = all_drained => {}
            () = async {
                self.forced.fired().await;
                if !self.steps.has(StepKind::Force) {
                    self.steps.record(StepKind::Force, ledger, self.connections);
                }
                std::future::pending::<()>().await;
            } => {}
        }
        // A force that reached the group as it closed (it is what ended the other loops'
        // drains) is this loop's too, as on mio: the trigger reads the group's phase.
        if !self.steps.has(StepKind::Force) && self.forced.fired_by_now().await {
            self.steps.record(StepKind::Force, ledger, self.connections);
        }
        self.steps.record(StepKind::Close, ledger, self.connections);
    }

    /// Connections accepted while the listener lingered after the drain answer `503` and close
    /// by themselves; one still open after a bounded wait (silent since its accept) is answered
    /// `503` + close, as the mio loops' close step answers it (QA client19-3; it was closed
    /// without an answer), and what is left after a second wait is closed. One with part of a
    /// head read (its first bytes came after the stop's keep-alive step spared it as silent)
    /// is kept to the drain deadline, as the mio loops keep it: refused `503` + close once
    /// whole, answered `503` + close at the deadline if still in progress (QA client23-3).
    async fn close_late_connections(&self) {
        let waited = tokio::time::timeout(FORCE_CLOSE_WAIT, self.connections.closed()).await;
        if waited.is_ok() {
            return;
        }
        self.connections.answer_silent_at_close(false);
        if self.connections.head_in_progress() {
            if let Some(deadline) = self.drain.deadline() {
                tokio::select! {
                    () = self.connections.closed() => {}
                    () = tokio::time::sleep_until(deadline.into()) => {}
                    () = self.forced.fired() => {}
                }
            }
        }
        self.connections.answer_silent_at_close(true);
        let answered = tokio::time::timeout(FORCE_CLOSE_WAIT, self.connections.closed()).await;
        if answered.is_err() {
            self.connections.abort_all();
            let _ = tokio::time::timeout(FORCE_CLOSE_WAIT, self.connections.closed()).await;
        }
    }
}

/// How long the stop waits for force-closed connections' tasks to be dropped.
const FORCE_CLOSE_WAIT: Duration = Duration::from_secs(1);

impl<E: Engine, C: Recycle, H, S> fmt::Debug for HyperServer<E, C, H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperServer")
            .field("core", &self.core)
            .field("options", &self.options)
            .field("after_stop_hooks", &self.after_stop.0.len())
            .field("after_drain_hooks", &self.after_drain.0.len())
            .finish_non_exhaustive()
    }
}

/// Binds `addr` on a fresh current-thread runtime and `LocalSet` on this thread, serves until
/// `stop` resolves, drains, and returns the report. `ready` is called with the bound address.
///
/// # Errors
///
/// Options that cannot serve ([`io::ErrorKind::InvalidInput`]: see
/// [`Options::max_connections`](Options::with_max_connections)); building the runtime or binding
/// the address; and [`io::ErrorKind::Other`] when called inside a tokio runtime (an `async`
/// context, or a thread that entered one), where no runtime can be started: serve there with
/// [`HyperServer::serve`] inside a [`LocalSet`](tokio::task::LocalSet) instead.
///
/// # Examples
///
/// The server on this thread, a client on another; the client's answer stops it:
///
/// ```
/// use std::io::{Read, Write};
/// use reqguard::engines::Heap;
/// use reqguard::tokio_hyper::{demo_routes, run, HyperServer};
/// use reqguard::{Config, ServerCore};
///
/// let heap = Heap::new();
/// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
/// let (answered, stop) = tokio::sync::oneshot::channel::<String>();
/// let answer = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
/// let kept = answer.clone();
/// let report = run(
///     HyperServer::new(core, demo_routes()),
///     "127.0.0.1:0".parse().unwrap(),
///     move |addr| {
///         std::thread::spawn(move || {
///             let mut client = std::net::TcpStream::connect(addr).unwrap();
///             client.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
///             let mut text = String::new();
///             client.read_to_string(&mut text).unwrap();
///             answered.send(text).unwrap();
///         });
///     },
///     async move { *kept.borrow_mut() = stop.await.unwrap_or_default() },
/// )?;
/// assert!(answer.borrow().starts_with("HTTP/1.1 200 OK"));
/// assert_eq!((report.stats.served, report.outcomes.completed, report.leaked), (1, 1, 0));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn run<E, C, H, S>(
    server: HyperServer<E, C, H, S>,
    addr: std::net::SocketAddr,
    ready: impl FnOnce(std::net::SocketAddr),
    stop: impl Future<Output = ()>,
) -> io::Result<HyperReport>
where
    E: Engine,
    C: Recycle,
    H: Handler<E, C>,
    S: EnterScope<E>,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        // `block_on` would panic ("Cannot start a runtime from within a runtime").
        return Err(io::Error::other(
            "tokio_hyper::run called inside a tokio runtime, which cannot start one of its \
             own: serve the HyperServer there with HyperServer::serve in a LocalSet",
        ));
    }
    server.options.check()?;
    let runtime = current_thread_runtime()?;
    let local = tokio::task::LocalSet::new();
    // The report boxed: `block_on` copies the future's whole `Poll<Output>` up a few layers on
    // every turn of the loop (see `group.rs`).
    let report = local.block_on(&runtime, async move {
        let listener = TcpListener::bind(addr).await?;
        ready(listener.local_addr()?);
        io::Result::Ok(Box::new(server.serve(listener, stop).await))
    })?;
    Ok(*report)
}

/// A current-thread runtime with I/O and timers: what a server (or a loop of a group) runs on.
pub(crate) fn current_thread_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

#[cfg(test)]
mod tests {
    use super::Trigger;

    /// A group's force is read from its phase (`level`) even while the force future is still
    /// `Pending` (a watch whose wake has not come yet): the race of d4f3d92, made certain.
    #[tokio::test(flavor = "current_thread")]
    async fn a_trigger_fires_on_its_level_while_its_future_is_pending() {
        let phase_forced = std::cell::Cell::new(false);
        let level = || phase_forced.get();
        let tally = super::Tally::default();
        let trigger = Trigger::new(std::future::pending(), &level, &tally);
        assert!(!trigger.fired_by_now().await);
        phase_forced.set(true);
        assert!(trigger.fired_by_now().await);
        phase_forced.set(false);
        assert!(trigger.fired_by_now().await, "once fired, it stays fired");
    }
}
