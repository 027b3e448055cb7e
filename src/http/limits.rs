//! What the server accepts, how much it buffers, and how long it waits.

use std::fmt;
use std::time::Duration;

/// Limits and timeouts of the reference server.
///
/// Every knob is listed, with its default, in the limits table of `docs/server.md`. No value
/// makes the server panic or overflow (sizes are compared as `u64` with checked arithmetic);
/// [`Server::bind`](crate::http::Server::bind) refuses a value that could not serve a request
/// ([`validate`](Limits::validate)).
///
/// Setters are named `with_*` and getters are plain (`max_body()`), as [`Config`](crate::Config)'s
/// (Rust API guideline C-GETTER); the `get_*` getters of 0.2 are deprecated.
///
/// # Examples
///
/// Every knob, set and read back:
///
/// ```
/// use std::time::Duration;
/// use reqguard::http::Limits;
///
/// let limits = Limits::default()
///     .with_max_head(4 * 1024)
///     .with_max_body(64 * 1024)
///     .with_max_chunk_overhead(96 * 1024)
///     .with_max_chunk_extensions(2 * 1024)
///     .with_max_trailers(3 * 1024)
///     .with_max_output(32 * 1024)
///     .with_max_connections(64)
///     .with_max_pipeline(8)
///     .with_request_timeout(Duration::from_secs(2))
///     .with_idle_timeout(Duration::from_secs(3))
///     .with_min_send_rate(512)
///     .with_stop_linger(Duration::from_millis(250))
///     .with_drain_timeout(Duration::from_secs(4))
///     .with_half_close(true);
/// assert_eq!(limits.max_head(), 4 * 1024);
/// assert_eq!(limits.max_body(), 64 * 1024);
/// assert_eq!(limits.max_chunk_overhead(), 96 * 1024);
/// assert_eq!(limits.max_chunk_extensions(), 2 * 1024);
/// assert_eq!(limits.max_trailers(), 3 * 1024);
/// assert_eq!(limits.max_output(), 32 * 1024);
/// assert_eq!(limits.max_connections(), 64);
/// assert_eq!(limits.max_pipeline(), 8);
/// assert_eq!(limits.request_timeout(), Duration::from_secs(2));
/// assert_eq!(limits.idle_timeout(), Duration::from_secs(3));
/// assert_eq!(limits.min_send_rate(), 512);
/// assert_eq!(limits.stop_linger(), Duration::from_millis(250));
/// assert_eq!(limits.drain_timeout(), Duration::from_secs(4));
/// assert!(limits.half_close());
/// assert!(limits.validate().is_ok());
/// assert!(limits.with_max_head(10).validate().is_err()); // no request line fits in 10 bytes
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    max_head: usize,
    max_body: usize,
    max_chunk_overhead: usize,
    max_chunk_extensions: usize,
    max_trailers: usize,
    max_output: usize,
    max_connections: usize,
    max_pipeline: usize,
    request_timeout: Duration,
    idle_timeout: Duration,
    min_send_rate: u64,
    stop_linger: Duration,
    drain_timeout: Duration,
    half_close: bool,
}

/// The smallest [`Limits::max_head`](Limits::with_max_head) that [`Limits::validate`] accepts: room
/// for a request line and a `Host` header. The hyper adapter's `Options` take the same.
pub const MIN_HEAD: usize = crate::knobs::MIN_HEAD;

/// The longest timeout [`Limits::validate`] accepts (one year): longer is a mistake, and far
/// longer would overflow `Instant` arithmetic.
pub const MAX_TIMEOUT: Duration = crate::MAX_TIMEOUT;

/// At the connection limit (or out of descriptors) a request body arriving slower than this
/// on average, bytes per second from the request's first byte, is evicted as a slow head is
/// (`408` + close): a slow-body client (R-U-Dead-Yet, `slowhttptest -B`) must not lock
/// newcomers out until `request_timeout`. Fixed, not a knob; with [`SLOW_BODY_GRACE`].
pub(crate) const MIN_BODY_RATE: u64 = 1024;

/// ... counted only once the request has taken this long: a body is not judged on its first
/// bytes.
pub(crate) const SLOW_BODY_GRACE: Duration = Duration::from_secs(1);

impl Default for Limits {
    /// 8 KiB of headers, 1 MiB of body (2 MiB of chunk framing, 16 KiB of chunk extensions,
    /// 8 KiB of trailers), 64 KiB of unsent answers before reading pauses, 1,024 connections, 32
    /// pipelined requests, 10 s to send a whole request, 5 s idle keep-alive, answers read at
    /// 1 KiB/s at least, 1 s of linger for idle connections after stop, 5 s of drain, no
    /// half-close (a client's end of input drops the requests still in their handler).
    fn default() -> Self {
        Limits {
            max_head: 8 * 1024,
            max_body: 1024 * 1024,
            max_chunk_overhead: 2 * 1024 * 1024,
            max_chunk_extensions: 16 * 1024,
            max_trailers: 8 * 1024,
            max_output: 64 * 1024,
            max_connections: 1024,
            max_pipeline: 32,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            min_send_rate: 1024,
            stop_linger: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(5),
            half_close: false,
        }
    }
}

impl Limits {
    /// Largest request line plus headers, in bytes; larger gets `431`, or `414` when the
    /// request target does not end within it (`501` if the method does not).
    pub fn with_max_head(mut self, bytes: usize) -> Self {
        self.max_head = bytes;
        self
    }

    /// Largest request body (after chunked decoding), in bytes; larger gets `413`.
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Most framing bytes in one chunked body (size lines, extensions, CRLFs, trailers), bounded
    /// apart from the body so framing never counts against [`max_body`](Limits::with_max_body);
    /// more gets `413`.
    pub fn with_max_chunk_overhead(mut self, bytes: usize) -> Self {
        self.max_chunk_overhead = bytes;
        self
    }

    /// Most bytes of chunk extensions (`;name=value`) in one chunked body; more gets `413`.
    pub fn with_max_chunk_extensions(mut self, bytes: usize) -> Self {
        self.max_chunk_extensions = bytes;
        self
    }

    /// Largest trailer section of a chunked body; larger gets `431`.
    pub fn with_max_trailers(mut self, bytes: usize) -> Self {
        self.max_trailers = bytes;
        self
    }

    /// Back-pressure: once a connection has more than this many bytes of answers not yet
    /// written to its socket, the server stops reading and parsing it until the client reads.
    pub fn with_max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Most open connections; a connection over the limit gets `503` and is closed.
    pub fn with_max_connections(mut self, count: usize) -> Self {
        self.max_connections = count;
        self
    }

    /// Most requests in flight on one connection; further pipelined input waits unread. At
    /// least 1 (0 is taken as 1: a connection must be able to serve one request).
    pub fn with_max_pipeline(mut self, count: usize) -> Self {
        self.max_pipeline = count.max(1);
        self
    }

    /// How long a client may take to send a whole request (head and body) once it has started;
    /// slower gets `408` and the connection is closed. A request whose `100 Continue` is held
    /// back behind earlier answers is not timed while the client may be waiting for it; its
    /// body is timed from the `100`.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long an idle keep-alive connection stays open, and the window over which a client's
    /// reading of its pending answers is judged (see
    /// [`min_send_rate`](Limits::with_min_send_rate)).
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The slowest a client may read its answers, in bytes per second. While answers wait for
    /// a socket that was found full, the bytes the socket takes are counted over windows of
    /// [`idle_timeout`](Limits::with_idle_timeout) from the first full write; a window in which it
    /// took fewer than this rate earns (at least one byte) disconnects the client, and what
    /// waits is aborted. A client that keeps reading at this rate or faster is kept however
    /// long its answers take (a slow but steady reader of a large answer); one that reads
    /// nothing, or a few bytes now and then (a slow-read attack, `slowhttptest -X`), is
    /// disconnected within two windows of its last real read. `0`: only a client that reads
    /// nothing for a whole window is disconnected.
    pub fn with_min_send_rate(mut self, bytes_per_second: u64) -> Self {
        self.min_send_rate = bytes_per_second;
        self
    }

    /// How long an idle keep-alive connection stays open after stop (capped by the idle
    /// timeout). Requests it delivers meanwhile get `503` and `Connection: close`.
    pub fn with_stop_linger(mut self, linger: Duration) -> Self {
        self.stop_linger = linger;
        self
    }

    /// How long a graceful stop waits for in-flight requests before it aborts them. At this
    /// deadline a [`Server`](crate::http::Server) ends the requests still out (their
    /// connections close once the answers before them are written), answers a request not
    /// whole `503` + close, closes idle connections, and lets the answers already computed go
    /// out within the close linger (at most 5 s), as a loop group's force and close steps do.
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Whether a client that shuts down its write side (a FIN after its request:
    /// `shutdown(SHUT_WR)`, `nc -N`, some HTTP/1.0 tools and scripts) still gets the answers to
    /// the requests in their handler then. Off (the default, as hyper's
    /// `http1::Builder::half_close(false)`): its end of input is taken for a client gone, and
    /// those requests end *client gone* (their abort signals fire), unanswered. On: they are
    /// answered, each bounded as any request is (its handler, the drain deadline), the answers
    /// written, then the connection closes; nothing more is read or parsed after the end of
    /// input (a request not whole then, or held back unread by
    /// [`max_pipeline`](Limits::with_max_pipeline) or [`max_output`](Limits::with_max_output),
    /// is dropped). A client that closes with nothing in its handler is closed as without it,
    /// after the answers already made are written. A client that closed both sides, not just
    /// its write side, resets the connection when the answer reaches it: the answer is counted
    /// `undelivered`, not `served`.
    pub fn with_half_close(mut self, on: bool) -> Self {
        self.half_close = on;
        self
    }

    /// See [`with_max_head`](Limits::with_max_head).
    #[inline]
    pub fn max_head(&self) -> usize {
        self.max_head
    }

    /// See [`with_max_body`](Limits::with_max_body).
    #[inline]
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// See [`with_max_chunk_overhead`](Limits::with_max_chunk_overhead).
    #[inline]
    pub fn max_chunk_overhead(&self) -> usize {
        self.max_chunk_overhead
    }

    /// See [`with_max_chunk_extensions`](Limits::with_max_chunk_extensions).
    #[inline]
    pub fn max_chunk_extensions(&self) -> usize {
        self.max_chunk_extensions
    }

    /// See [`with_max_trailers`](Limits::with_max_trailers).
    #[inline]
    pub fn max_trailers(&self) -> usize {
        self.max_trailers
    }

    /// See [`with_max_output`](Limits::with_max_output).
    #[inline]
    pub fn max_output(&self) -> usize {
        self.max_output
    }

    /// See [`with_max_connections`](Limits::with_max_connections).
    #[inline]
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// See [`with_max_pipeline`](Limits::with_max_pipeline).
    #[inline]
    pub fn max_pipeline(&self) -> usize {
        self.max_pipeline
    }

    /// See [`with_request_timeout`](Limits::with_request_timeout).
    #[inline]
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// See [`with_idle_timeout`](Limits::with_idle_timeout).
    #[inline]
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// See [`with_min_send_rate`](Limits::with_min_send_rate).
    #[inline]
    pub fn min_send_rate(&self) -> u64 {
        self.min_send_rate
    }

    /// The fewest bytes a client must read in one window of the idle timeout while answers
    /// wait for it (see [`min_send_rate`](Limits::with_min_send_rate)): at least one.
    pub(crate) fn min_sent_per_window(&self) -> u64 {
        min_sent_in(self.min_send_rate, self.idle_timeout)
    }

    /// See [`with_stop_linger`](Limits::with_stop_linger).
    #[inline]
    pub fn stop_linger(&self) -> Duration {
        self.stop_linger
    }

    /// See [`with_drain_timeout`](Limits::with_drain_timeout).
    #[inline]
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// See [`with_half_close`](Limits::with_half_close).
    #[inline]
    pub fn half_close(&self) -> bool {
        self.half_close
    }

    /// Checks that these limits can serve a request: `max_head` of at least [`MIN_HEAD`], no
    /// size above `isize::MAX` (no buffer can be larger), at least one connection, and request
    /// and idle timeouts above zero and at most [`MAX_TIMEOUT`] (as every other timeout).
    ///
    /// # Errors
    ///
    /// The first knob out of range, named.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let knobs = crate::knobs::Knobs {
            sizes: &[
                ("max_head", self.max_head),
                ("max_body", self.max_body),
                ("max_chunk_overhead", self.max_chunk_overhead),
                ("max_chunk_extensions", self.max_chunk_extensions),
                ("max_trailers", self.max_trailers),
                ("max_output", self.max_output),
            ],
            max_head: self.max_head,
            max_connections: self.max_connections,
            timeouts: &[
                ("request_timeout", self.request_timeout, false),
                ("idle_timeout", self.idle_timeout, false),
                ("stop_linger", self.stop_linger, true),
                ("drain_timeout", self.drain_timeout, true),
            ],
        };
        crate::knobs::check(&knobs).map_err(|(knob, problem)| LimitsError::new(knob, problem))
    }

    /// Most bytes buffered from one connection before the server stops reading it: a whole
    /// head and `Content-Length` body, and one read more.
    #[inline]
    pub(crate) fn read_cap(&self) -> usize {
        self.max_head
            .saturating_add(self.max_body)
            .saturating_add(64 * 1024)
    }
}

// The 0.2 names of the getters, kept one release (deprecated): each forwards to its plain name
// (C-GETTER).
impl Limits {
    /// Renamed [`max_head`](Limits::max_head).
    #[deprecated(since = "0.3.0", note = "renamed `max_head`: C-GETTER")]
    pub fn get_max_head(&self) -> usize {
        self.max_head()
    }

    /// Renamed [`max_body`](Limits::max_body).
    #[deprecated(since = "0.3.0", note = "renamed `max_body`: C-GETTER")]
    pub fn get_max_body(&self) -> usize {
        self.max_body()
    }

    /// Renamed [`max_chunk_overhead`](Limits::max_chunk_overhead).
    #[deprecated(since = "0.3.0", note = "renamed `max_chunk_overhead`: C-GETTER")]
    pub fn get_max_chunk_overhead(&self) -> usize {
        self.max_chunk_overhead()
    }

    /// Renamed [`max_chunk_extensions`](Limits::max_chunk_extensions).
    #[deprecated(since = "0.3.0", note = "renamed `max_chunk_extensions`: C-GETTER")]
    pub fn get_max_chunk_extensions(&self) -> usize {
        self.max_chunk_extensions()
    }

    /// Renamed [`max_trailers`](Limits::max_trailers).
    #[deprecated(since = "0.3.0", note = "renamed `max_trailers`: C-GETTER")]
    pub fn get_max_trailers(&self) -> usize {
        self.max_trailers()
    }

    /// Renamed [`max_output`](Limits::max_output).
    #[deprecated(since = "0.3.0", note = "renamed `max_output`: C-GETTER")]
    pub fn get_max_output(&self) -> usize {
        self.max_output()
    }

    /// Renamed [`max_connections`](Limits::max_connections).
    #[deprecated(since = "0.3.0", note = "renamed `max_connections`: C-GETTER")]
    pub fn get_max_connections(&self) -> usize {
        self.max_connections()
    }

    /// Renamed [`max_pipeline`](Limits::max_pipeline).
    #[deprecated(since = "0.3.0", note = "renamed `max_pipeline`: C-GETTER")]
    pub fn get_max_pipeline(&self) -> usize {
        self.max_pipeline()
    }

    /// Renamed [`request_timeout`](Limits::request_timeout).
    #[deprecated(since = "0.3.0", note = "renamed `request_timeout`: C-GETTER")]
    pub fn get_request_timeout(&self) -> Duration {
        self.request_timeout()
    }

    /// Renamed [`idle_timeout`](Limits::idle_timeout).
    #[deprecated(since = "0.3.0", note = "renamed `idle_timeout`: C-GETTER")]
    pub fn get_idle_timeout(&self) -> Duration {
        self.idle_timeout()
    }

    /// Renamed [`min_send_rate`](Limits::min_send_rate).
    #[deprecated(since = "0.3.0", note = "renamed `min_send_rate`: C-GETTER")]
    pub fn get_min_send_rate(&self) -> u64 {
        self.min_send_rate()
    }

    /// Renamed [`stop_linger`](Limits::stop_linger).
    #[deprecated(since = "0.3.0", note = "renamed `stop_linger`: C-GETTER")]
    pub fn get_stop_linger(&self) -> Duration {
        self.stop_linger()
    }

    /// Renamed [`drain_timeout`](Limits::drain_timeout).
    #[deprecated(since = "0.3.0", note = "renamed `drain_timeout`: C-GETTER")]
    pub fn get_drain_timeout(&self) -> Duration {
        self.drain_timeout()
    }
}

/// The bytes `rate` (per second) earns over `window`: at least one, saturating.
pub(crate) fn min_sent_in(rate: u64, window: Duration) -> u64 {
    let earned = u128::from(rate) * window.as_millis() / 1000;
    u64::try_from(earned).unwrap_or(u64::MAX).max(1)
}

/// A [`Limits`] value the server refuses, from [`Limits::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsError {
    knob: &'static str,
    problem: &'static str,
}

impl LimitsError {
    fn new(knob: &'static str, problem: &'static str) -> Self {
        LimitsError { knob, problem }
    }

    /// The knob out of range, e.g. `"max_head"`.
    pub fn knob(&self) -> &'static str {
        self.knob
    }
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid Limits: {} {}", self.knob, self.problem)
    }
}

impl std::error::Error for LimitsError {}
