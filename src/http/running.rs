//! Running a server: on a thread (tests, benches, the demo) or on the current thread (serve
//! mode), and stopping it from anywhere.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use mio::Waker;

use super::accounting::Accounting;
use super::limits::{Limits, MAX_TIMEOUT};
use super::report::ServerReport;
use super::router::{serve_with_routes, Router};
use super::server::{unserved, Server};
use super::settings::ServerSettings;
use super::waits;
use crate::callback::{call_caught, panic_error, thread_caught};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Running,
    Stopping,
    Done,
}

/// What the loop shares with its stop handles.
pub(crate) struct Control {
    waker: Waker,
    stop: AtomicBool,
    /// Another loop of the group is out of file descriptors with none of its own to free.
    room_wanted: AtomicBool,
    phase: Mutex<Phase>,
    changed: Condvar,
    /// The thread running the loop, the one its `Server` was made on (a `Server` is not
    /// `Send`): a handle called there (from a handler, or before `run`) cannot wait for the
    /// loop.
    loop_thread: OnceLock<ThreadId>,
}

impl Control {
    pub(crate) fn new(waker: Waker) -> Self {
        Control {
            waker,
            stop: AtomicBool::new(false),
            room_wanted: AtomicBool::new(false),
            phase: Mutex::new(Phase::Running),
            changed: Condvar::new(),
            loop_thread: OnceLock::new(),
        }
    }

    /// The loop runs on this thread (its `Server` was made here).
    pub(crate) fn running_here(&self) {
        let _ = self.loop_thread.set(thread::current().id());
    }

    fn on_loop_thread(&self) -> bool {
        self.loop_thread.get() == Some(&thread::current().id())
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Asks the loop to free a file descriptor (evict its oldest idle or slow connection):
    /// descriptors are the process's, so a loop out of them may have none of its own to free.
    pub(crate) fn want_room(&self) {
        self.room_wanted.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    /// Whether a loop asked for room since the last call.
    pub(crate) fn take_room_request(&self) -> bool {
        self.room_wanted.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        let mut current = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if phase > *current {
            *current = phase;
            self.changed.notify_all();
        }
    }
}

/// Stops a server from any thread: `Send`, `Sync` and `Clone`.
///
/// It sets a flag and wakes the loop through a mio `Waker`; the loop then closes its listener
/// and drains.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use reqguard::http::{demo_routes, ServerBuilder, Unaccounted};
///
/// let running = ServerBuilder::new().spawn(Unaccounted::new, demo_routes).unwrap();
/// let stop = running.stop_handle();
/// std::thread::spawn(move || assert!(stop.stop_and_wait(Duration::from_secs(10))))
///     .join()
///     .unwrap();
/// assert!(std::net::TcpStream::connect(running.addr()).is_err()); // the listener is closed
/// running.join().unwrap();
/// ```
#[derive(Clone)]
pub struct StopHandle {
    control: Arc<Control>,
}

impl StopHandle {
    pub(crate) fn new(control: Arc<Control>) -> Self {
        StopHandle { control }
    }

    /// Asks the loop to free a file descriptor (see [`Control::want_room`]).
    pub(crate) fn want_room(&self) {
        self.control.want_room();
    }

    /// Asks the server to stop gracefully; returns at once.
    pub fn stop(&self) {
        self.control.stop.store(true, Ordering::Release);
        // If the wake fails the loop is gone already: nothing left to stop.
        let _ = self.control.waker.wake();
    }

    /// Asks the server to stop and waits (at most `timeout`) until its loop has begun the stop:
    /// the listener is closed, admission is closed, and stop hooks (a collection) have run.
    /// Returns whether it had. A `timeout` past what the clock can count (`Duration::MAX`)
    /// waits as long as it takes. A loop that has ended, however (its thread panicked, or
    /// polling failed), counts as stopped: this returns `true` at once.
    ///
    /// Called on the loop's own thread (from a handler; or before [`Server::run`], on the
    /// thread that made the server, as in [`ServerBuilder::serve`]'s `ready`) it cannot see
    /// the stop begin: the loop begins it once the handler returns (or at its first turn). It
    /// asks for the stop and returns at once, whatever the `timeout` (waiting would hold the
    /// loop): `false`, unless the stop had begun before the handler ran. A handler stops the server with
    /// [`Response::stop_server`](crate::http::Response::stop_server) or
    /// [`stop`](StopHandle::stop). So it does on a thread the loop waits for, directly or
    /// through other servers' handles (a handler of a second server, while a handler of this
    /// one waits for that server with this very call, or drops its [`Running`]; or the setup
    /// of a second server, its accounting or routes, while a handler of this one waits in
    /// [`ServerBuilder::spawn`] for it to be ready): neither could go on.
    ///
    /// In a stop hook ([`Guarded::after_stop`](crate::http::Guarded::after_stop), an
    /// embedder's [`Accounting::stop`](crate::http::Accounting::stop)), on the loop's thread
    /// too, it returns `false` at once: the stop is under way, but it has not *begun* in the
    /// sense above until its hooks have run ([`is_stopping`](StopHandle::is_stopping) is
    /// `false` there as well; QA embed17-2). In a drain hook
    /// ([`Guarded::after_drain`](crate::http::Guarded::after_drain)) it returns `true`.
    pub fn stop_and_wait(&self, timeout: Duration) -> bool {
        self.stop();
        if self.control.on_loop_thread() {
            return self.is_stopping();
        }
        // A loop that waits for this thread (its handler waits for ours) cannot begin its
        // stop until this one returns.
        let loop_thread = self.control.loop_thread.get().copied();
        let Some(_waiting) = waits::begin(loop_thread) else {
            return self.is_stopping();
        };
        let until = Instant::now().checked_add(timeout);
        let mut phase = self.control.phase.lock().unwrap_or_else(|e| e.into_inner());
        while *phase < Phase::Stopping {
            // No instant that far: wait in the longest steps the clock can count.
            let left = until.map_or(MAX_TIMEOUT, |until| {
                until.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return false;
            }
            phase = self
                .control
                .changed
                .wait_timeout(phase, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Whether the loop has begun stopping: its listener and admission closed and its stop
    /// hooks run (`false` while they run: see [`stop_and_wait`](StopHandle::stop_and_wait)).
    pub fn is_stopping(&self) -> bool {
        *self.control.phase.lock().unwrap_or_else(|e| e.into_inner()) >= Phase::Stopping
    }
}

impl fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopHandle")
            .field("stopping", &self.is_stopping())
            .finish()
    }
}

/// Configures and starts a server.
///
/// # Examples
///
/// A guarded server on a thread, on `127.0.0.1` and a free port:
///
/// ```
/// use std::io::{Read, Write};
/// use reqguard::http::{demo_routes, Guarded, ServerBuilder};
/// use reqguard::Config;
///
/// let running = ServerBuilder::new()
///     .spawn(|| Guarded::embedded("server", Config::default()), demo_routes)
///     .unwrap();
/// let mut client = std::net::TcpStream::connect(running.addr()).unwrap();
/// client.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nConnection: close\r\n\r\n").unwrap();
/// let mut answer = String::new();
/// client.read_to_string(&mut answer).unwrap();
/// assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("hello"));
///
/// let report = running.stop().unwrap();
/// assert_eq!((report.stats.served, report.leaked), (1, 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBuilder {
    settings: ServerSettings,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder::new()
    }
}

impl ServerBuilder {
    /// Listens on `127.0.0.1:0` (a free port) with default limits, no signal handling.
    pub fn new() -> Self {
        ServerBuilder {
            settings: ServerSettings::initial(),
        }
    }

    /// The address to listen on.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.settings.addr = addr;
        self
    }

    /// The limits and timeouts.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.settings.limits = limits;
        self
    }

    /// Whether SIGINT and SIGTERM stop the server (see [`Server::handle_signals`]).
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.settings.handle_signals = on;
        self
    }

    /// What this builder has been given, read back: each setter's value under the setter's
    /// name (`.limits(l)` reads back as `.settings().limits()`; see [`ServerSettings`]).
    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    /// Runs the server on a new thread. `accounting` and `routes` run on that thread, so the
    /// engine and the handlers need not be `Send`.
    ///
    /// # Errors
    ///
    /// If the server cannot bind, the thread cannot start, or `accounting` or `routes` panics
    /// (the error names the panic, whatever its payload: none reaches the caller).
    ///
    /// # Aborts
    ///
    /// If `accounting` or `routes` panics while it owns a value whose `Drop` panics too: an
    /// `FnOnce` drops its captures while its panic unwinds, and Rust aborts on a destructor's
    /// panic there. A [`LoopGroup`](super::LoopGroup)'s factories are `Fn`, dropped caught by
    /// the loops: that panic is its `spawn`'s error (docs/server.md, "Not done").
    pub fn spawn<A, F, R>(self, accounting: F, routes: R) -> io::Result<Running>
    where
        A: Accounting,
        F: FnOnce() -> A + Send + 'static,
        R: FnOnce(&mut Router<'_>) + Send + 'static,
    {
        let (ready, ready_rx) = mpsc::channel();
        let spawner = thread::current().id();
        let thread = thread::Builder::new()
            .name("reqguard-server".into())
            .spawn(move || {
                thread_caught(move || {
                    // The spawner waits below until `ready` (see `waits::Awaited`).
                    let mut awaited = Some(waits::awaited_by(spawner));
                    serve_with_routes(routes, |router| {
                        self.serve(router, accounting(), |addr, stop| {
                            // Before the send: once it is sent, the spawner waits no more.
                            drop(awaited.take());
                            let _ = ready.send(Ok((addr, stop)));
                        })
                        .inspect_err(|err| {
                            let _ = ready.send(Err(io::Error::new(err.kind(), err.to_string())));
                        })
                    })
                })
            })?;
        match ready_rx.recv() {
            Ok(Ok((addr, stop))) => Ok(Running {
                addr,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(err)) => Err(err),
            // The thread ended (it dropped its sender): its error names why (a panic of the
            // routes or the accounting).
            Err(_) => Err(thread.join().map_or_else(panic_error, |ended| {
                ended.err().unwrap_or_else(|| {
                    io::Error::other("the server thread ended before it was ready")
                })
            })),
        }
    }

    /// Runs the server on the current thread until it stops; `ready` gets the address and a
    /// stop handle once it listens.
    ///
    /// # Errors
    ///
    /// If the server cannot bind, register its signals, or poll. On each, the accounting is
    /// dropped caught before the error is returned (a `Drop` of what it captured may panic).
    ///
    /// # Panics
    ///
    /// If `ready` panics: that panic goes on to the caller, the server (never run, its
    /// accounting dropped caught) gone first.
    pub fn serve<'r, A: Accounting>(
        self,
        router: &'r Router<'r>,
        accounting: A,
        ready: impl FnOnce(SocketAddr, StopHandle),
    ) -> io::Result<ServerReport> {
        let ServerSettings {
            addr,
            limits,
            handle_signals,
        } = self.settings;
        let mut server = Server::bind(addr, router, accounting, limits)?;
        if handle_signals {
            if let Err(err) = server.handle_signals() {
                return Err(unserved(server, err));
            }
        }
        let (addr, stop) = (server.local_addr(), server.stop_handle());
        // `ready` is the caller's: its panic is theirs, but the server it unwinds past holds
        // the accounting (also theirs), dropped caught first: a panicking `Drop` there while
        // unwinding would abort the process (QA embed16-1).
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| ready(addr, stop))) {
            call_caught(move || drop(server));
            resume_unwind(payload);
        }
        server.run()
    }
}

/// A server running on its own thread, from [`ServerBuilder::spawn`].
///
/// Dropping it stops the server and waits for its thread.
pub struct Running {
    addr: SocketAddr,
    stop: StopHandle,
    thread: Option<JoinHandle<io::Result<ServerReport>>>,
}

impl Running {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server from any thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Stops the server gracefully and waits for its report.
    ///
    /// # Errors
    ///
    /// If the loop failed, or its thread panicked (the error carries the panic's message; the
    /// report is lost; the loop itself survives a panic of an [`Accounting`] that says it
    /// cannot panic, [`Accounting::MAY_PANIC`]), or if called on the server's own thread (from
    /// a handler): a thread cannot wait for itself, so the stop is asked for, begins once the handler returns, and
    /// its report is not waited for. So too on a thread the server's loop waits for, directly
    /// or through other servers' handles (two servers whose handlers stop each other).
    pub fn stop(self) -> io::Result<ServerReport> {
        self.stop.stop();
        self.join()
    }

    /// Waits for the server to stop (someone else stops it) and returns its report.
    ///
    /// # Errors
    ///
    /// If the loop failed, or its thread panicked (as [`stop`](Running::stop) says), or if
    /// called on the server's own thread (from a handler: a thread cannot wait for itself; the
    /// server runs on, detached from this handle), or on a thread the server's loop waits for,
    /// directly or through other servers' handles (the same).
    pub fn join(mut self) -> io::Result<ServerReport> {
        let thread = self.thread.take().expect("joined once");
        if is_current(&thread) {
            return Err(io::Error::other(
                "Running::join on the server's own thread: it cannot wait for itself",
            ));
        }
        let Some(_waiting) = waits::begin([thread.thread().id()]) else {
            return Err(io::Error::other(
                "Running::join on a thread the server's loop waits for: neither could end",
            ));
        };
        thread
            .join()
            .unwrap_or_else(|payload| Err(panic_error(payload)))
    }
}

/// Whether `thread` is the one running this code: a handler holding its own server's
/// `Running` or group's handle (joining it there would wait for itself: `pthread_join`
/// refuses, std panics).
pub(crate) fn is_current<T>(thread: &JoinHandle<T>) -> bool {
    thread.thread().id() == thread::current().id()
}

impl Drop for Running {
    /// Stops the server and waits for its thread (bounded by the drain timeout, and the close
    /// linger's 5 s after it while answers already made go out). Dropped on
    /// the server's own thread (by a handler), it asks for the stop and does not wait: the
    /// loop stops once the handler returns. So too on a thread the server's loop waits for,
    /// directly or through other servers' handles (two servers whose handlers drop each
    /// other's `Running`: each would wait for the other's handler forever).
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.stop();
            if !is_current(&thread) {
                if let Some(_waiting) = waits::begin([thread.thread().id()]) {
                    let _ = thread.join();
                }
            }
        }
    }
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running").field("addr", &self.addr).finish()
    }
}
