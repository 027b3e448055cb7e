//! A hyper server on a thread of its own, listening on 127.0.0.1 until stopped: the setup the
//! hyper-stack tests share (a fresh embedded core and heap on the server's thread, where they
//! stay, `tokio_hyper::run`, its address, and a one-shot stop).

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use reqguard::engines::{Embedded, Heap};
use reqguard::tokio_hyper::{EnterScope, Handler, HyperReport, HyperServer};
use reqguard::Recycle;
use reqguard::{Config, ServerCore};

/// The engine the tests' servers run on.
pub type Engine = Embedded<&'static str>;

/// `tokio_hyper::run` on its own thread. [`stop`](HyperThread::stop) ends it and gives its
/// report; dropping it unstopped stops it too (and joins, so no server outlives its test).
pub struct HyperThread {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Whether the server had already ended when it was asked to stop (its stop unheard).
    ended_unasked: bool,
    thread: Option<JoinHandle<HyperReport>>,
}

impl HyperThread {
    /// Serves what `build` makes of a fresh core ([`Config::default`]).
    pub fn spawn<H, S>(
        build: impl FnOnce(ServerCore<Engine>) -> HyperServer<Engine, (), H, S> + Send + 'static,
    ) -> HyperThread
    where
        H: Handler<Engine, ()>,
        S: EnterScope<Engine>,
    {
        Self::spawn_with(Config::default(), build)
    }

    /// Serves what `build` makes of a fresh core with `config` and request context `C`.
    pub fn spawn_with<C, H, S>(
        config: Config,
        build: impl FnOnce(ServerCore<Engine, C>) -> HyperServer<Engine, C, H, S> + Send + 'static,
    ) -> HyperThread
    where
        C: Recycle,
        H: Handler<Engine, C>,
        S: EnterScope<Engine>,
    {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let heap = Heap::new();
            let core = ServerCore::embedded_with_context::<C>(heap.alloc("server"), config);
            let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
            let stop = async {
                let _ = stopped.await;
            };
            reqguard::tokio_hyper::run(build(core), loopback, |a| addr_tx.send(a).unwrap(), stop)
                .expect("bind 127.0.0.1:0")
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        HyperThread {
            addr,
            stop: Some(stop),
            ended_unasked: false,
            thread: Some(thread),
        }
    }

    /// Asks the server to stop and returns at once (its report is [`stop`](Self::stop)'s).
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            self.ended_unasked = stop.send(()).is_err();
        }
    }

    /// Stops the server (if not begun) and waits for its report.
    ///
    /// # Panics
    ///
    /// If the server thread panicked, or the server had ended before it was asked to stop.
    pub fn stop(mut self) -> HyperReport {
        self.begin_stop();
        let thread = self.thread.take().expect("stopped once");
        let report = thread.join().expect("the server thread");
        assert!(
            !self.ended_unasked,
            "the server ended before its stop: {report}"
        );
        report
    }

    /// [`stop`](Self::stop), waited for at most `bound` on a thread of its own: a stop that
    /// hangs on a broken build fails the test instead of hanging it.
    ///
    /// # Panics
    ///
    /// As `stop`, and past `bound` ("the stop hung").
    pub fn stop_within(self, bound: Duration) -> HyperReport {
        super::bounded::within(bound, move || self.stop()).expect("the stop hung")
    }
}

impl Drop for HyperThread {
    fn drop(&mut self) {
        self.begin_stop();
        if let Some(thread) = self.thread.take() {
            if !thread::panicking() {
                let _ = thread.join();
            }
        }
    }
}

/// Each admitted request counted once: in `served`, `undelivered`, `rejected_admitted` or
/// `aborted` (docs/hyper.md, "When does the request end?"; issue 9 item 1;
/// `HyperReport::admitted_counted`). For reports with no panicking admission.
pub fn counted_once(report: &HyperReport) {
    assert_eq!(
        report.admitted_counted(),
        report.outcomes.total(),
        "served + undelivered + rejected_admitted + aborted is not the admitted requests: {report}"
    );
}

/// Sends `GET path`'s head on a new connection, whose reads wait up to 20 s.
pub fn send(addr: SocketAddr, path: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    stream
}
