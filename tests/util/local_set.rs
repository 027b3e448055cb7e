//! The runtime the hyper adapter serves on, for the probes that drive `HyperServer::serve`
//! themselves (`#[cfg(feature = "hyper")] #[path = "util/local_set.rs"] mod local_set;`).

use std::future::Future;

/// Runs `future` to its end inside a `LocalSet` on a fresh current-thread runtime with I/O and
/// timers, as `tokio_hyper::run` serves; both are dropped (the set first) when it returns.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, future)
}
