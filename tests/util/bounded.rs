//! Bounded waits for calls that may hang: the call runs on a thread of its own, and a test
//! that gives up on it fails instead of hanging (the thread is left behind, detached).

use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on a new thread and waits at most `timeout` for its result: `None` if it did not
/// return in time (or panicked).
pub fn within<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(timeout).ok()
}
