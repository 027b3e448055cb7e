//! QA probes, twelfth round, of the embedding API as a hostile or careless embedder uses it:
//! two servers whose handlers hold each other's handles, callbacks that call back into the
//! server that runs them, values at their extremes. Public API only. Each test that found a
//! bug failed on `main` before its fix (the test's doc says so); the others pin what was found
//! to hold.
#![cfg(feature = "server")]

#[path = "util/quiet.rs"]
mod quiet;
mod util;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use reqguard::http::{
    Handler, Ladder, LoopGroup, Reply, Request, Response, ServerBuilder, Unaccounted,
};
use util::bounded::within;

/// How long a probe waits for a call that hangs on a broken build.
const HANG: Duration = Duration::from_secs(10);

/// What a handler does with the other server's handle: drop it, or stop it and wait.
type Close = Box<dyn FnOnce() + Send>;
type Slot = Arc<Mutex<Option<Close>>>;

/// Meets the other server's handler at `meet`, then closes the other server with what it
/// finds in `slot`: two runtimes in one process whose JS `server.close()` closes the other
/// server.
fn close_the_other(meet: &Barrier, slot: &Slot) -> &'static [u8] {
    meet.wait();
    let close = slot.lock().unwrap().take();
    if let Some(close) = close {
        close();
    }
    b"let go"
}

struct CloseOther {
    meet: Arc<Barrier>,
    slot: Slot,
}

impl Handler for CloseOther {
    fn handle(&self, _: &Request<'_>, response: &mut Response<'_>) -> Reply {
        response.write(close_the_other(&self.meet, &self.slot));
        Reply::Now
    }

    fn resume(&self, _: u64, _: &mut Response<'_>) {}
}

/// The server kinds whose handles wait for a loop's thread.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Running,
    Group,
    #[cfg(feature = "hyper")]
    Hyper,
}

/// How a handler closes the other server.
#[derive(Clone, Copy, Debug, PartialEq)]
enum How {
    Drop,
    /// `Running::stop`, `GroupHandle::stop`, `HyperGroupHandle::wait` (after its stopper).
    StopAndWait,
    /// `StopHandle::stop_and_wait(Duration::MAX)` (a `Running` only).
    StopHandleWait,
}

/// A running server of `kind` whose handler closes the other; its address, its close as
/// `how` says (for the other's handler), and a stop for the test.
fn spawn(kind: Kind, meet: &Arc<Barrier>, slot: &Slot, how: How) -> (SocketAddr, Close, Close) {
    let (meet, slot) = (Arc::clone(meet), Arc::clone(slot));
    match kind {
        Kind::Running => {
            let handler = CloseOther { meet, slot };
            let running = ServerBuilder::new()
                .spawn(Unaccounted::new, move |router| {
                    router.route("GET", "/other", handler);
                })
                .unwrap();
            let (addr, stop) = (running.addr(), running.stop_handle());
            let close: Close = match how {
                How::Drop => Box::new(move || drop(running)),
                How::StopAndWait => Box::new(move || drop(running.stop())),
                How::StopHandleWait => Box::new(move || {
                    running.stop_handle().stop_and_wait(Duration::MAX);
                    drop(running);
                }),
            };
            (addr, close, Box::new(move || stop.stop()))
        }
        Kind::Group => {
            let group = LoopGroup::new()
                .loops(2)
                .ladder(Ladder::default().unready(Duration::ZERO))
                .spawn(
                    |_| Unaccounted::new(),
                    move |router| {
                        let handler = CloseOther {
                            meet: Arc::clone(&meet),
                            slot: Arc::clone(&slot),
                        };
                        router.route("GET", "/other", handler);
                    },
                )
                .unwrap();
            let (addr, stop) = (group.addr(), group.stopper());
            let close: Close = match how {
                How::Drop => Box::new(move || drop(group)),
                _ => Box::new(move || drop(group.stop())),
            };
            (addr, close, Box::new(move || stop.stop()))
        }
        #[cfg(feature = "hyper")]
        Kind::Hyper => hyper_embed::spawn(meet, slot, how),
    }
}

/// Two servers whose handlers, at the same time, close each other (drop the other's handle,
/// or stop it and wait): a handler cannot wait for a loop that waits for it. Both answer,
/// both stop. Before, every such pair hung forever, each loop joined to the other (found on
/// `main` at 8472f2c: each case timed out).
#[test]
fn two_servers_whose_handlers_close_each_other_both_answer_and_stop() {
    quiet::quiet_panics();
    let pairs = [
        (Kind::Running, Kind::Running, How::Drop),
        (Kind::Running, Kind::Running, How::StopAndWait),
        (Kind::Running, Kind::Running, How::StopHandleWait),
        (Kind::Group, Kind::Group, How::Drop),
        (Kind::Group, Kind::Group, How::StopAndWait),
        (Kind::Running, Kind::Group, How::Drop),
    ];
    #[cfg(feature = "hyper")]
    let pairs = pairs.into_iter().chain([
        (Kind::Hyper, Kind::Hyper, How::Drop),
        (Kind::Hyper, Kind::Hyper, How::StopAndWait),
        (Kind::Running, Kind::Hyper, How::StopAndWait),
        (Kind::Group, Kind::Hyper, How::Drop),
    ]);
    let mut hung = Vec::new();
    for (first, second, how) in pairs {
        let case = format!("{first:?} and {second:?}, {how:?}");
        let meet = Arc::new(Barrier::new(2));
        let slots: [Slot; 2] = Default::default();
        // Each server's handler closes the other: the first finds the second's close.
        let (addr_a, close_a, stop_a) = spawn(first, &meet, &slots[0], how);
        let (addr_b, close_b, stop_b) = spawn(second, &meet, &slots[1], how);
        *slots[0].lock().unwrap() = Some(close_b);
        *slots[1].lock().unwrap() = Some(close_a);
        let answers = [addr_a, addr_b].map(|addr| {
            std::thread::spawn(move || {
                within(HANG, move || util::try_get(addr, "/other").ok()).flatten()
            })
        });
        let answers = answers.map(|t| t.join().unwrap());
        if answers
            .iter()
            .any(|answer| answer.map(|(status, _)| status) != Some(200))
        {
            hung.push(case); // both loops are stuck: leave them
            continue;
        }
        for stop in [stop_a, stop_b] {
            stop(); // `stop_and_wait` and a failed wait leave the stop begun or to us
        }
        for addr in [addr_a, addr_b] {
            util::wait_until("the server stops", || {
                std::net::TcpStream::connect(addr).is_err()
            });
        }
    }
    assert!(
        hung.is_empty(),
        "handlers hung waiting for each other: {hung:?}"
    );
}

#[cfg(feature = "hyper")]
mod hyper_embed {
    use std::net::SocketAddr;
    use std::sync::{Arc, Barrier};

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::Response;
    use reqguard::engines::Heap;
    use reqguard::tokio_hyper::{Bundle, HandlerError, HyperGroup, HyperServer};
    use reqguard::{Config, ServerCore};

    use super::{close_the_other, Close, How, Slot};

    /// A one-loop hyper group whose handler closes the other server.
    pub(super) fn spawn(meet: Arc<Barrier>, slot: Slot, how: How) -> (SocketAddr, Close, Close) {
        let group = HyperGroup::new()
            .loops(1)
            .spawn(move |_| {
                let core = ServerCore::embedded(Heap::new().alloc("server"), Config::default());
                let (meet, slot) = (Arc::clone(&meet), Arc::clone(&slot));
                HyperServer::new(core, move |_this, _request, bundle: Bundle| {
                    let body = close_the_other(&meet, &slot);
                    async move {
                        let body = Full::new(Bytes::from_static(body));
                        Ok::<_, HandlerError>(bundle.respond(Response::new(body)))
                    }
                })
            })
            .unwrap();
        let (addr, stop) = (group.addr(), group.stopper());
        let close: Close = match how {
            How::Drop => Box::new(move || drop(group)),
            _ => Box::new(move || {
                group.stopper().stop();
                drop(group.wait());
            }),
        };
        (addr, close, Box::new(move || stop.stop()))
    }
}
