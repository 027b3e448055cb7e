//! A group of hyper loops on one port (features `hyper` and `server`): N threads, each with its
//! own current-thread runtime, `LocalSet` and [`HyperServer`] (server core, pool, ledger), so
//! nothing is shared per request. The port is shared as the mio
//! [`LoopGroup`](crate::http::LoopGroup) shares it (the same listener code: one `SO_REUSEPORT`
//! socket per loop, or one shared socket), and every listener stays open until every loop has
//! drained, so closing one drops no accept queue (pingora#427).

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};

use tokio::sync::watch;

use super::handler::{EnterScope, Handler};
use super::report::HyperReport;
use super::room::Room;
use super::server::{current_thread_runtime, GroupLinger, HyperServer};
use super::settings::HyperGroupSettings;
use crate::callback::{drop_caught, thread_caught, DropCaught};
use crate::http::{awaited_by, begin_wait, Awaited, ListenMode};
use crate::pool::Recycle;
use crate::wrapper::Engine;

/// Builds a [`HyperGroupHandle`]: where to listen, how many loops, how they share the port.
///
/// # Examples
///
/// ```
/// use reqguard::engines::Heap;
/// use reqguard::tokio_hyper::{demo_routes, HyperGroup, HyperServer};
/// use reqguard::{Config, ServerCore};
///
/// let group = HyperGroup::new()
///     .loops(2)
///     .spawn(|_loop| {
///         let heap = Heap::new();
///         HyperServer::new(ServerCore::embedded(heap.alloc("server"), Config::default()), demo_routes())
///     })
///     .unwrap();
/// let addr = group.addr();
/// drop(std::net::TcpStream::connect(addr).unwrap());
/// group.stopper().stop();
/// let report = group.wait().unwrap();
/// assert_eq!((report.loops.len(), report.is_clean()), (2, true));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HyperGroup {
    settings: HyperGroupSettings,
}

impl Default for HyperGroup {
    /// One loop on `127.0.0.1:0` (a free port), `SO_REUSEPORT` mode.
    fn default() -> Self {
        HyperGroup {
            settings: HyperGroupSettings::initial(),
        }
    }
}

/// What the loops of a group share: the stop phase and how many have drained. Touched only
/// by a stop, never per request.
struct Shared {
    phase: watch::Sender<Phase>,
    drained: watch::Sender<usize>,
    loops: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Running,
    Stopping,
    Forcing,
}

impl Shared {
    fn advance(&self, to: Phase) {
        self.phase.send_if_modified(|phase| {
            let later = to > *phase;
            if later {
                *phase = to;
            }
            later
        });
    }
}

impl HyperGroup {
    /// One loop on a free port of `127.0.0.1`.
    pub fn new() -> Self {
        HyperGroup::default()
    }

    /// Where to listen.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.settings.addr = addr;
        self
    }

    /// How many loops (threads): 1 to 1,024 (any other count is `InvalidInput` at
    /// [`spawn`](HyperGroup::spawn)).
    pub fn loops(mut self, loops: usize) -> Self {
        self.settings.loops = loops;
        self
    }

    /// How the loops share the port.
    pub fn listen_mode(mut self, mode: ListenMode) -> Self {
        self.settings.listen_mode = mode;
        self
    }

    /// What this group has been given, read back: each setter's value under the setter's
    /// name (`.loops(n)` reads back as `.settings().loops()`; see [`HyperGroupSettings`]).
    pub fn settings(&self) -> &HyperGroupSettings {
        &self.settings
    }

    /// Binds the port and starts every loop: loop `i` runs the server `make(i)` builds on its
    /// own thread. Returns once every loop is serving.
    ///
    /// # Errors
    ///
    /// Binding the port, building a runtime, a server whose options cannot serve
    /// ([`InvalidInput`](io::ErrorKind::InvalidInput): see
    /// [`Options::max_connections`](super::Options::with_max_connections)), or a loop that failed
    /// (or panicked) before it served; the loops already started are stopped and joined first.
    pub fn spawn<F, E, C, H, S>(self, make: F) -> io::Result<HyperGroupHandle>
    where
        F: Fn(usize) -> HyperServer<E, C, H, S> + Send + Sync + 'static,
        E: Engine,
        C: Recycle,
        H: Handler<E, C>,
        S: EnterScope<E>,
    {
        let HyperGroupSettings {
            addr,
            loops,
            listen_mode,
        } = self.settings;
        let listeners = crate::http::bind_listeners(addr, loops, listen_mode)?;
        let addr = listeners[0].local_addr()?;
        let shared = Arc::new(Shared {
            phase: watch::Sender::new(Phase::Running),
            drained: watch::Sender::new(0),
            loops,
        });
        let make = Arc::new(make);
        let (ready_tx, ready) = mpsc::channel();
        let mut handle = HyperGroupHandle {
            addr,
            stop: HyperGroupStop(Arc::clone(&shared)),
            threads: Vec::with_capacity(loops),
        };
        let rooms = Room::for_group(loops);
        let spawner = thread::current().id();
        for ((index, listener), room) in listeners.into_iter().enumerate().zip(rooms) {
            // This loop's share of the factory, dropped caught even while a panic of the
            // factory unwinds past it (the last share drops the factory's captures: a `Drop`
            // of theirs that panicked there aborted the process).
            let make = DropCaught::new(Arc::clone(&make));
            let (shared, ready) = (Arc::clone(&shared), ready_tx.clone());
            let start = LoopStart {
                index,
                listener,
                room,
                ready,
            };
            let thread = thread::Builder::new()
                .name(format!("reqguard-hyper-{index}"))
                .spawn(move || {
                    thread_caught(move || {
                        // `spawn` waits until this loop is ready (see `waits::Awaited`).
                        let awaited = awaited_by(spawner);
                        let ran = run_loop(start, &shared, || make(index), awaited);
                        // The embedder's factory, which the last loop to end drops: a `Drop`
                        // that panics must not lose the loop's report.
                        drop(make);
                        ran
                    })
                })?;
            handle.threads.push(thread);
        }
        drop(ready_tx);
        // Should every loop have ended already, the last `Drop` of the factory is here.
        drop_caught(make);
        for _ in 0..loops {
            // A loop that ends before it is ready drops its sender without sending.
            if let Err(err) = ready.recv().unwrap_or_else(|_| Err(loop_died())) {
                handle.stop.stop();
                let _ = handle.join();
                return Err(err);
            }
        }
        Ok(handle)
    }
}

fn loop_died() -> io::Error {
    io::Error::other("a hyper loop ended (or panicked) before it served")
}

/// Counts this loop as drained exactly once: when its drain ends, or when its thread ends in
/// any other way (an error, a panic), so the other loops never wait for it forever. A loop
/// that ends while the group runs starts the group's stop.
struct DrainedOnce {
    shared: Arc<Shared>,
    counted: Rc<Cell<bool>>,
}

impl DrainedOnce {
    fn mark(shared: &Shared, counted: &Cell<bool>) {
        if !counted.replace(true) {
            shared.advance(Phase::Stopping);
            shared.drained.send_modify(|n| *n += 1);
        }
    }
}

impl Drop for DrainedOnce {
    fn drop(&mut self) {
        DrainedOnce::mark(&self.shared, &self.counted);
    }
}

/// What one loop's thread starts from.
struct LoopStart {
    index: usize,
    listener: std::net::TcpListener,
    room: Room,
    /// Gets `Ok` once the loop serves, or why it could not.
    ready: mpsc::Sender<io::Result<()>>,
}

fn run_loop<E, C, H, S>(
    start: LoopStart,
    shared: &Arc<Shared>,
    make: impl FnOnce() -> HyperServer<E, C, H, S>,
    awaited: Awaited,
) -> io::Result<HyperReport>
where
    E: Engine,
    C: Recycle,
    H: Handler<E, C>,
    S: EnterScope<E>,
{
    let LoopStart {
        index,
        listener,
        room,
        ready,
    } = start;
    let guard = DrainedOnce {
        shared: Arc::clone(shared),
        counted: Rc::new(Cell::new(false)),
    };
    let started = (|| {
        let runtime = current_thread_runtime()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        io::Result::Ok((runtime, listener))
    })();
    let (runtime, listener) = match started {
        Ok(started) => started,
        Err(err) => {
            let _ = ready.send(Err(io::Error::new(
                err.kind(),
                format!("loop {index}: {err}"),
            )));
            return Err(err);
        }
    };
    let server = make();
    if let Err(err) = server.options.check() {
        let _ = ready.send(Err(io::Error::new(
            err.kind(),
            format!("loop {index}: {err}"),
        )));
        return Err(err);
    }
    // Before the send: once it is sent, the spawner waits no more for this loop.
    drop(awaited);
    let _ = ready.send(Ok(()));
    let (phase, drained) = (shared.phase.subscribe(), shared.drained.subscribe());
    let counted = Rc::clone(&guard.counted);
    let linger = GroupLinger {
        drained: move || DrainedOnce::mark(shared, &counted),
        all_drained: reached(drained, move |&n| n >= shared.loops),
        forced: || *shared.phase.borrow() >= Phase::Forcing,
        room: Some(room),
    };
    let stop = reached(phase.clone(), |&p| p >= Phase::Stopping);
    let force = reached(phase, |&p| p >= Phase::Forcing);
    let local = tokio::task::LocalSet::new();
    // Boxed: tokio's `block_on` passes the future's `Poll<Output>` up through a few layers on
    // every turn of the loop (once per request), copying it whole each time; a 392-byte report
    // cost about 200 instructions per request that way, a box 8 bytes.
    let report = local.block_on(&runtime, async {
        Box::new(server.serve_in_group(listener, stop, force, linger).await)
    });
    Ok(*report)
}

/// Resolves once the watched value satisfies `done`. If every sender is gone the value can no
/// longer change: that counts as reached (the group is gone, nothing can wait on it).
async fn reached<T>(mut rx: watch::Receiver<T>, done: impl Fn(&T) -> bool) {
    let _ = rx.wait_for(|value| done(value)).await;
}

/// A running group: its address, its stop, and [`wait`](HyperGroupHandle::wait) for the
/// report. `Send`; dropping it stops the group and joins its threads.
#[derive(Debug)]
pub struct HyperGroupHandle {
    addr: SocketAddr,
    stop: HyperGroupStop,
    threads: Vec<JoinHandle<io::Result<HyperReport>>>,
}

impl HyperGroupHandle {
    /// The bound address (the port picked when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many loops run (as the mio stack's
    /// [`GroupHandle::loops`](crate::http::GroupHandle::loops)).
    pub fn loops(&self) -> usize {
        self.stop.0.loops
    }

    /// A `Send + Sync + Clone` stop for the group (give it to a signal thread).
    pub fn stopper(&self) -> HyperGroupStop {
        self.stop.clone()
    }

    /// Waits until every loop has stopped and drained; returns their merged report.
    ///
    /// # Errors
    ///
    /// A loop that failed or panicked (the others were stopped and drained first); or called
    /// on one of the group's loops (from a handler: a loop cannot wait for itself; the group
    /// runs on, detached from this handle), or on a thread one of them waits for, directly or
    /// through other servers' handles (two groups whose handlers stop each other: the same).
    pub fn wait(mut self) -> io::Result<super::HyperGroupReport> {
        if self.on_own_loop() {
            self.threads.clear();
            return Err(io::Error::other(
                "HyperGroupHandle::wait on one of the group's own loops: it cannot wait for itself",
            ));
        }
        self.join()
    }

    /// Whether this code runs on one of the group's loops (a handler holding the handle).
    fn on_own_loop(&self) -> bool {
        let me = thread::current().id();
        self.threads.iter().any(|t| t.thread().id() == me)
    }

    fn join(&mut self) -> io::Result<super::HyperGroupReport> {
        let Some(_waiting) = begin_wait(self.threads.iter().map(|t| t.thread().id())) else {
            // A handler of a loop that waits for this thread: neither could end.
            self.threads.clear();
            return Err(io::Error::other(
                "HyperGroupHandle::wait on a thread one of the group's loops waits for: neither could end",
            ));
        };
        let mut loops = Vec::with_capacity(self.threads.len());
        let mut failed = None;
        for (index, thread) in self.threads.drain(..).enumerate() {
            match thread.join() {
                Ok(Ok(report)) => loops.push(report),
                Ok(Err(err)) => failed = failed.or(Some(err)),
                Err(_) => {
                    failed = failed.or(Some(io::Error::other(format!("loop {index} panicked"))))
                }
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(super::HyperGroupReport::merge(loops)),
        }
    }
}

impl Drop for HyperGroupHandle {
    /// Stops the group and joins its loops; on one of its own loops (dropped by a handler), or
    /// on a thread one of them waits for (directly or through other servers' handles), starts
    /// the stop without waiting.
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop.stop();
            if !self.on_own_loop() {
                let _ = self.join();
            }
        }
    }
}

/// Stops a [`HyperGroupHandle`]'s loops from any thread.
#[derive(Clone)]
pub struct HyperGroupStop(Arc<Shared>);

impl HyperGroupStop {
    /// Starts every loop's stop (the first SIGTERM): unready (if set), drain, deadline.
    pub fn stop(&self) {
        self.0.advance(Phase::Stopping);
    }

    /// Skips every loop's drain to force (the second SIGTERM): aborts what is out and closes
    /// the connections.
    pub fn force(&self) {
        self.0.advance(Phase::Forcing);
    }
}

impl std::fmt::Debug for HyperGroupStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperGroupStop")
            .field("phase", &*self.0.phase.borrow())
            .field("drained", &*self.0.drained.borrow())
            .finish()
    }
}
