//! What the server accepts, and how long it waits.

use std::time::Duration;

/// Limits and timeouts of the reference server.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use reqguard::http::Limits;
///
/// let limits = Limits::default()
///     .max_head(4 * 1024)
///     .max_body(64 * 1024)
///     .request_timeout(Duration::from_secs(2))
///     .max_connections(64);
/// assert_eq!(limits.get_max_body(), 64 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    max_head: usize,
    max_body: usize,
    max_connections: usize,
    max_pipeline: usize,
    request_timeout: Duration,
    idle_timeout: Duration,
    stop_linger: Duration,
    drain_timeout: Duration,
}

impl Default for Limits {
    /// 8 KiB of headers, 1 MiB of body, 1,024 connections, 32 pipelined requests, 10 s to send a
    /// request, 5 s idle keep-alive, 1 s of linger for idle connections after stop, 5 s of drain.
    fn default() -> Self {
        Limits {
            max_head: 8 * 1024,
            max_body: 1024 * 1024,
            max_connections: 1024,
            max_pipeline: 32,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            stop_linger: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// Largest request line plus headers, in bytes; larger gets `431`.
    pub fn max_head(mut self, bytes: usize) -> Self {
        self.max_head = bytes;
        self
    }

    /// Largest request body (after chunked decoding), in bytes; larger gets `413`.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Most open connections; a connection over the limit gets `503` and is closed.
    pub fn max_connections(mut self, count: usize) -> Self {
        self.max_connections = count;
        self
    }

    /// Most requests in flight on one connection; further pipelined input waits unread.
    pub fn max_pipeline(mut self, count: usize) -> Self {
        self.max_pipeline = count.max(1);
        self
    }

    /// How long a client may take to send a whole request (head and body) once it has started;
    /// slower gets `408` and the connection is closed.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long an idle keep-alive connection stays open.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long an idle keep-alive connection stays open after stop (capped by the idle
    /// timeout). Requests it delivers meanwhile get `503` and `Connection: close`.
    pub fn stop_linger(mut self, linger: Duration) -> Self {
        self.stop_linger = linger;
        self
    }

    /// How long a graceful stop waits for in-flight requests before it aborts them and
    /// force-closes every connection.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// See [`max_head`](Limits::max_head).
    pub fn get_max_head(&self) -> usize {
        self.max_head
    }

    /// See [`max_body`](Limits::max_body).
    pub fn get_max_body(&self) -> usize {
        self.max_body
    }

    /// See [`max_connections`](Limits::max_connections).
    pub fn get_max_connections(&self) -> usize {
        self.max_connections
    }

    /// See [`max_pipeline`](Limits::max_pipeline).
    pub fn get_max_pipeline(&self) -> usize {
        self.max_pipeline
    }

    /// See [`request_timeout`](Limits::request_timeout).
    pub fn get_request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// See [`idle_timeout`](Limits::idle_timeout).
    pub fn get_idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// See [`stop_linger`](Limits::stop_linger).
    pub fn get_stop_linger(&self) -> Duration {
        self.stop_linger
    }

    /// See [`drain_timeout`](Limits::drain_timeout).
    pub fn get_drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// Most bytes buffered from one connection before the server stops reading it.
    pub(crate) fn read_cap(&self) -> usize {
        self.max_head + self.max_body + 64 * 1024
    }
}
