//! A loop group: N mio loops on N threads, one port, one stop ladder.
//!
//! # Invariants
//!
//! 1. Each loop owns its accounting (its `ServerCore`, pool and ledger), router and
//!    connections; nothing on the request path is shared between loops, so no atomic and no
//!    lock is touched per request. The loops share only [`GroupShared`], read on a stop.
//! 2. Every loop runs the ladder from the same instant (the group's stop), so the steps line
//!    up across loops.
//! 3. No loop closes its listener before every loop has drained: closing a `SO_REUSEPORT`
//!    listener resets the connections in its accept queue, so a loop that drains early keeps
//!    accepting (and answering `503` + `connection: close`) until the last loop has drained.
//!    Then every loop closes its listener in the same instant ([`Step::Close`](crate::http::Step::Close)).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use super::accounting::Accounting;
use super::group_report::GroupReport;
use super::ladder::Ladder;
use super::limits::Limits;
use super::listener::{self, ListenMode, MAX_LOOPS};
use super::report::ServerReport;
use super::router::{serve_with_routes, Router};
use super::running::{is_current, StopHandle};
use super::server::Server;
use super::settings::GroupSettings;
use super::waits;
use crate::callback::{drop_caught, thread_caught, DropCaught};

/// What the loops of a group share: the stop instant and the group-wide commands.
pub(crate) struct GroupShared {
    loops: usize,
    stop_at: Mutex<Option<Instant>>,
    force: AtomicBool,
    close: AtomicBool,
    /// Which loops have drained (or ended), and how many.
    drained_loops: Vec<AtomicBool>,
    drained: AtomicUsize,
    wake: Mutex<Vec<StopHandle>>,
}

impl GroupShared {
    fn new(loops: usize) -> Self {
        GroupShared {
            loops,
            stop_at: Mutex::new(None),
            force: AtomicBool::new(false),
            close: AtomicBool::new(false),
            drained_loops: (0..loops).map(|_| AtomicBool::new(false)).collect(),
            drained: AtomicUsize::new(0),
            wake: Mutex::new(Vec::new()),
        }
    }

    /// Starts the ladder (once) and wakes every loop.
    pub(crate) fn stop(&self) {
        self.stop_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
        self.wake_all();
    }

    fn wake_all(&self) {
        // Each wake sets the loop's stop flag and wakes its poll; the loop then reads the
        // group's state in its ladder turn.
        for handle in self.wake.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            handle.stop();
        }
    }

    /// A loop is out of file descriptors and has no connection of its own to evict: every
    /// loop evicts one of its oldest idle or slow connections, if it has one. With
    /// `SO_REUSEPORT` the kernel chose the loop a newcomer waits on, so without this a
    /// slowloris held by one loop locks out the newcomers queued on another until the slow
    /// heads' timeout.
    pub(crate) fn want_room(&self) {
        for handle in self.wake.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            handle.want_room();
        }
    }

    /// The group's stop instant, once stopped.
    pub(crate) fn stop_at(&self) -> Option<Instant> {
        *self.stop_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn force_requested(&self) -> bool {
        self.force.load(Ordering::Acquire)
    }

    pub(crate) fn close_requested(&self) -> bool {
        self.close.load(Ordering::Acquire)
    }

    /// Loop `index` has drained, or ended (a failed or panicking loop must not hold the
    /// others open); the last one tells every loop to close. Counts each loop once.
    pub(crate) fn report_drained(&self, index: usize) {
        if self.drained_loops[index].swap(true, Ordering::AcqRel) {
            return;
        }
        if self.drained.fetch_add(1, Ordering::AcqRel) + 1 == self.loops {
            self.close.store(true, Ordering::Release);
            self.wake_all();
        }
    }
}

/// One loop's membership of its group, held by the loop's [`Server`].
pub(crate) struct Member {
    pub(crate) shared: Arc<GroupShared>,
    pub(crate) index: usize,
}

/// Stops a loop group from any thread: `Send`, `Sync` and `Clone`. A second
/// [`stop`](GroupStop::stop) does nothing; [`force`](GroupStop::force) jumps to the force step.
#[derive(Clone)]
pub struct GroupStop {
    shared: Arc<GroupShared>,
}

impl GroupStop {
    /// Starts the stop ladder on every loop (once); returns at once.
    pub fn stop(&self) {
        self.shared.stop();
    }

    /// Skips to the force step on every loop: sockets close now, the outcome of each request
    /// still out is recorded (what a second SIGTERM or SIGINT does).
    pub fn force(&self) {
        self.shared.force.store(true, Ordering::Release);
        self.shared.stop();
    }

    /// Whether the ladder has started.
    pub fn is_stopping(&self) -> bool {
        self.shared.stop_at().is_some()
    }
}

impl fmt::Debug for GroupStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupStop")
            .field("loops", &self.shared.loops)
            .field("stopping", &self.is_stopping())
            .finish()
    }
}

/// Configures and starts a group of event loops sharing one port.
///
/// Each loop runs on its own thread with its own accounting (built on that thread by the
/// factory, so engines need not be `Send`), router and connections; the kernel spreads new
/// connections over the loops (`SO_REUSEPORT`, or one shared listener with
/// [`ListenMode::Shared`]). A stop runs the [`Ladder`] on every loop from the same instant.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use reqguard::http::{demo_routes, Guarded, LoopGroup};
/// use reqguard::Config;
///
/// let group = LoopGroup::new()
///     .loops(2)
///     .spawn(|_loop| Guarded::embedded("server", Config::default()), demo_routes)
///     .unwrap();
/// let mut client = std::net::TcpStream::connect(group.addr()).unwrap();
/// client.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
/// let mut answer = String::new();
/// client.read_to_string(&mut answer).unwrap();
/// assert!(answer.ends_with("hello"));
///
/// let report = group.stop().unwrap();
/// assert_eq!(report.loops.len(), 2);
/// assert_eq!(report.totals.stats.served, 1);
/// assert!(report.is_clean()); // nothing leaked on any loop
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopGroup {
    settings: GroupSettings,
}

impl Default for LoopGroup {
    fn default() -> Self {
        LoopGroup::new()
    }
}

impl LoopGroup {
    /// One loop on `127.0.0.1:0` (a free port), default limits and ladder, `SO_REUSEPORT`.
    pub fn new() -> Self {
        LoopGroup {
            settings: GroupSettings::initial(),
        }
    }

    /// The address every loop listens on.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.settings.addr = addr;
        self
    }

    /// How many loops (threads); one per core is the usual choice. Zero, or more than 1,024
    /// (more threads than any machine has cores: a mistake), is an error at spawn.
    pub fn loops(mut self, count: usize) -> Self {
        self.settings.loops = count;
        self
    }

    /// The limits of every loop (the ladder's drain timeout and idle linger override theirs).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.settings.limits = limits;
        self
    }

    /// The stop ladder.
    pub fn ladder(mut self, ladder: Ladder) -> Self {
        self.settings.ladder = ladder;
        self
    }

    /// How the loops share the port.
    pub fn listen_mode(mut self, mode: ListenMode) -> Self {
        self.settings.listen_mode = mode;
        self
    }

    /// What this group has been given, read back: each setter's value under the setter's
    /// name (`.loops(n)` reads back as `.settings().loops()`; see [`GroupSettings`]).
    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// Binds the port and starts every loop on its own thread. `accounting` is called once per
    /// loop, on that loop's thread, with the loop's index; `routes` likewise fills each loop's
    /// router.
    ///
    /// # Errors
    ///
    /// If the ladder is invalid ([`Ladder::validate`]), `loops` is zero or over 1,024 (both
    /// `InvalidInput`), the port cannot be bound, the limits are invalid, or a loop cannot start
    /// (`accounting` or `routes` panics there, whatever its payload) (the loops already started
    /// are stopped first).
    pub fn spawn<A, F, R>(self, accounting: F, routes: R) -> io::Result<GroupHandle>
    where
        A: Accounting,
        F: Fn(usize) -> A + Send + Sync + 'static,
        R: Fn(&mut Router<'_>) + Send + Sync + 'static,
    {
        let GroupSettings {
            addr,
            loops,
            limits,
            ladder,
            listen_mode,
        } = self.settings;
        ladder
            .validate()
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        if loops > MAX_LOOPS {
            // Checked before anything is sized by it: a huge count would overflow (or exhaust)
            // the allocation of one listener and one thread per loop.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a loop group has at most 1,024 loops",
            ));
        }
        let listeners = listener::bind(addr, loops, listen_mode)?;
        let addr = listeners[0].local_addr()?;
        let shared = Arc::new(GroupShared::new(loops));
        let (accounting, routes) = (Arc::new(accounting), Arc::new(routes));
        let limits = limits
            .with_drain_timeout(ladder.drain_timeout())
            .with_stop_linger(ladder.idle_linger());
        let (ready, ready_rx) = mpsc::channel();
        let mut threads = Vec::with_capacity(loops);
        let mut failure = None;
        for (index, listener) in listeners.into_iter().enumerate() {
            let start = LoopStart {
                member: Member {
                    shared: Arc::clone(&shared),
                    index,
                },
                listener,
                limits,
                ladder,
                ready: ready.clone(),
            };
            match start.spawn(Arc::clone(&accounting), Arc::clone(&routes)) {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        // The embedder's factories: the last loop to end drops them (a `Drop` that panics is
        // caught there, or here should every loop have ended already).
        drop_caught(accounting);
        drop_caught(routes);
        // Each started thread sends one message, or drops its sender if it panicked first.
        drop(ready);
        for _ in 0..threads.len() {
            match ready_rx.recv() {
                Ok(Ok(handle)) => shared
                    .wake
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(handle),
                Ok(Err(err)) => {
                    failure.get_or_insert(err);
                }
                Err(_) => {
                    failure
                        .get_or_insert(io::Error::other("a loop thread ended before it was ready"));
                    break;
                }
            }
        }
        if let Some(err) = failure {
            return Err(abandon(&shared, threads, err));
        }
        Ok(GroupHandle {
            addr,
            shared,
            threads,
        })
    }
}

type LoopThread = JoinHandle<io::Result<ServerReport>>;

/// What one loop's thread starts from.
struct LoopStart {
    member: Member,
    listener: std::net::TcpListener,
    limits: Limits,
    ladder: Ladder,
    /// Gets the loop's stop handle once it listens, or why it could not.
    ready: mpsc::Sender<io::Result<StopHandle>>,
}

impl LoopStart {
    /// Starts the loop's thread: routes and accounting are built there (they need not be
    /// `Send`), then the loop runs until the group closes.
    fn spawn<A, F, R>(self, accounting: Arc<F>, routes: Arc<R>) -> io::Result<LoopThread>
    where
        A: Accounting,
        F: Fn(usize) -> A + Send + Sync + 'static,
        R: Fn(&mut Router<'_>) + Send + Sync + 'static,
    {
        let index = self.member.index;
        let spawner = thread::current().id();
        // However this loop ends (done, failed, panicked), it no longer holds the group; and
        // one that ends before any stop died: the others stop too, so `wait` returns its error.
        let ended = scopeguard::guard(Arc::clone(&self.member.shared), move |shared| {
            if shared.stop_at().is_none() {
                shared.stop();
            }
            shared.report_drained(index);
        });
        // This loop's shares of the factories, dropped caught even while a panic of theirs
        // unwinds past them (the last share drops the factory's captures: a `Drop` of theirs
        // that panicked there aborted the process).
        let (accounting, routes) = (DropCaught::new(accounting), DropCaught::new(routes));
        thread::Builder::new()
            .name(format!("reqguard-loop-{index}"))
            .spawn(move || {
                thread_caught(move || {
                    let _ended = ended;
                    // `spawn` waits until this loop is ready (see `waits::Awaited`).
                    let awaited = waits::awaited_by(spawner);
                    let LoopStart {
                        member,
                        listener,
                        limits,
                        ladder,
                        ready,
                    } = self;
                    let ran = serve_with_routes(
                        |router| routes(router),
                        |router| {
                            let server =
                                Server::from_listener(listener, router, accounting(index), limits)
                                    .map(|server| server.join_group(member, ladder));
                            run_when_ready(server, ready, awaited)
                        },
                    );
                    // The factories, which the last loop to end drops, are the embedder's too:
                    // a `Drop` that panics must not lose the loop's report.
                    drop(routes);
                    drop(accounting);
                    ran
                })
            })
    }
}

/// Runs a loop's server once it is ready (its stop handle sent), or sends why it could not
/// start. The server (it borrows the routes) is gone when this returns.
fn run_when_ready<A: Accounting>(
    server: io::Result<Server<'_, A>>,
    ready: mpsc::Sender<io::Result<StopHandle>>,
    awaited: waits::Awaited,
) -> io::Result<ServerReport> {
    match server {
        Ok(server) => {
            // Before the send: once it is sent, the spawner waits no more for this loop.
            drop(awaited);
            let _ = ready.send(Ok(server.stop_handle()));
            // Senders all gone tells `spawn` that a loop died before ready.
            drop(ready);
            server.run()
        }
        Err(err) => {
            let _ = ready.send(Err(io::Error::new(err.kind(), err.to_string())));
            Err(err)
        }
    }
}

/// A loop failed to start: stop the loops that did (force, so it is quick) and wait for them.
fn abandon(shared: &Arc<GroupShared>, threads: Vec<LoopThread>, err: io::Error) -> io::Error {
    // Loops that never started count as ended (a started one reports as its thread ends).
    for index in threads.len()..shared.loops {
        shared.report_drained(index);
    }
    GroupStop {
        shared: Arc::clone(shared),
    }
    .force();
    for thread in threads {
        let _ = thread.join();
    }
    err
}

/// A running loop group, from [`LoopGroup::spawn`]: `Send`, so any thread can stop and wait
/// for it. Dropping it stops the group and waits for every loop.
pub struct GroupHandle {
    addr: SocketAddr,
    shared: Arc<GroupShared>,
    threads: Vec<LoopThread>,
}

impl GroupHandle {
    /// The address every loop listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many loops run.
    pub fn loops(&self) -> usize {
        self.shared.loops
    }

    /// A handle that stops or forces the group from any thread.
    pub fn stopper(&self) -> GroupStop {
        GroupStop {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Starts the stop ladder and waits for every loop's report.
    ///
    /// # Errors
    ///
    /// If a loop failed or panicked, or if called on one of the group's loops (from a
    /// handler: the stop starts, the reports are not waited for), or on a thread one of them
    /// waits for, directly or through other servers' handles (the same).
    pub fn stop(self) -> io::Result<GroupReport> {
        self.stopper().stop();
        self.wait()
    }

    /// Waits for every loop to end (someone else stops the group) and merges their reports.
    ///
    /// # Errors
    ///
    /// If a loop failed or panicked, or if called on one of the group's loops (from a
    /// handler: a loop cannot wait for itself; the group runs on, detached from this handle),
    /// or on a thread one of them waits for, directly or through other servers' handles (two
    /// groups whose handlers stop each other: the same).
    pub fn wait(mut self) -> io::Result<GroupReport> {
        if self.threads.iter().any(is_current) {
            // A handler of one of the loops: the group runs on, detached from this handle.
            self.threads.clear();
            return Err(io::Error::other(
                "GroupHandle::wait on one of the group's own loops: it cannot wait for itself",
            ));
        }
        let Some(_waiting) = waits::begin(self.threads.iter().map(|t| t.thread().id())) else {
            // A handler of a loop that waits for this thread: neither could end.
            self.threads.clear();
            return Err(io::Error::other(
                "GroupHandle::wait on a thread one of the group's loops waits for: neither could end",
            ));
        };
        let mut reports = Vec::with_capacity(self.threads.len());
        let mut failure = None;
        for (index, thread) in std::mem::take(&mut self.threads).into_iter().enumerate() {
            match thread.join() {
                Ok(Ok(report)) => reports.push(report),
                Ok(Err(err)) => {
                    failure.get_or_insert(err);
                }
                Err(_) => {
                    failure.get_or_insert(io::Error::other(format!("loop {index} panicked")));
                }
            }
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(GroupReport::merge(reports)),
        }
    }
}

impl Drop for GroupHandle {
    /// Stops the group and waits for its loops (bounded by the ladder). Dropped on one of its
    /// loops (by a handler), or on a thread one of them waits for (directly or through other
    /// servers' handles), it starts the stop and does not wait for the loops.
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stopper().stop();
            if self.threads.iter().any(is_current) {
                return;
            }
            let Some(_waiting) = waits::begin(self.threads.iter().map(|t| t.thread().id())) else {
                return;
            };
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        }
    }
}

impl fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupHandle")
            .field("addr", &self.addr)
            .field("loops", &self.shared.loops)
            .finish()
    }
}
