//! Who waits for whom: the handles that block a thread until a loop's thread ends or begins
//! its stop ([`Running`](super::Running), [`StopHandle::stop_and_wait`](super::StopHandle),
//! [`GroupHandle`](super::GroupHandle), the hyper group's handle) record each wait while it
//! lasts. A handler of one server that waits for a second server whose handler waits for the
//! first (two runtimes in one process closing each other) would hold both loops forever: a
//! wait that would close such a cycle is refused, and the handle does what it does on the
//! loop's own thread (the stop is asked for, not waited for).
//!
//! # Invariants
//!
//! 1. An edge `(from, to)` is in [`WAITS`] exactly while thread `from` is blocked (or about to
//!    block) waiting for thread `to`: through a live [`Waiting`] (a thread blocks in one such
//!    wait at a time, so dropping its `Waiting` removes every edge from it), or through an
//!    [`Awaited`] that `to`, a server thread just started, holds until it is ready for `from`,
//!    the thread that started it and waits in `spawn` (dropping it removes that edge alone).
//! 2. The edges never form a cycle: [`begin`] checks and inserts under one lock.

use std::sync::Mutex;
use std::thread::{self, ThreadId};

/// The waits under way: `(waiting thread, thread waited for)`. Cold: touched only by a
/// handle that is about to block.
static WAITS: Mutex<Vec<(ThreadId, ThreadId)>> = Mutex::new(Vec::new());

/// A wait recorded in [`WAITS`]; dropping it (the wait is over) removes it.
#[must_use = "the wait is recorded only while this lives"]
pub(crate) struct Waiting {
    from: ThreadId,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut waits = WAITS.lock().unwrap_or_else(|e| e.into_inner());
        waits.retain(|(from, _)| *from != self.from);
    }
}

/// A new server thread's record that the thread which started it (`ServerBuilder::spawn`, a
/// group's `spawn`) waits for it to be ready. Made by the new thread before it runs the
/// embedder's setup (routes, accounting, `make`), which may wait for the spawner's own loop (a
/// handler starting a second server whose setup stops the first): that wait then closes a
/// cycle, is refused, and neither thread hangs. Dropped once the thread is ready, or ended.
#[must_use = "the spawner's wait is recorded only while this lives"]
pub(crate) struct Awaited {
    edge: (ThreadId, ThreadId),
}

impl Drop for Awaited {
    fn drop(&mut self) {
        let mut waits = WAITS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = waits.iter().position(|edge| *edge == self.edge) {
            waits.swap_remove(at);
        }
    }
}

/// Records, on a server thread just started, that `spawner` waits for it. This thread waits
/// for no one yet, so the edge closes no cycle (invariant 2).
pub(crate) fn awaited_by(spawner: ThreadId) -> Awaited {
    let edge = (spawner, thread::current().id());
    WAITS.lock().unwrap_or_else(|e| e.into_inner()).push(edge);
    Awaited { edge }
}

/// Records that this thread is about to wait for `targets`, or `None` if one of them waits,
/// directly or through others, for this thread (or is this thread): that wait would never
/// end.
pub(crate) fn begin(targets: impl IntoIterator<Item = ThreadId>) -> Option<Waiting> {
    let me = thread::current().id();
    let targets: Vec<ThreadId> = targets.into_iter().collect();
    let mut waits = WAITS.lock().unwrap_or_else(|e| e.into_inner());
    let mut seen = Vec::new();
    let mut next = targets.clone();
    while let Some(thread) = next.pop() {
        if thread == me {
            return None;
        }
        if !seen.contains(&thread) {
            seen.push(thread);
            next.extend(
                waits
                    .iter()
                    .filter(|(from, _)| *from == thread)
                    .map(|(_, to)| *to),
            );
        }
    }
    waits.extend(targets.into_iter().map(|to| (me, to)));
    Some(Waiting { from: me })
}
