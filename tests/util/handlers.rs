//! Handlers more than one probe of `reqguard::http`'s embedding API routes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqguard::http::{Handler, Reply, Request, Response};

/// Defers its answer by its duration and answers `late` on resume.
pub(crate) struct Later(pub(crate) Duration);

impl Handler for Later {
    fn handle(&self, _: &Request<'_>, _: &mut Response<'_>) -> Reply {
        Reply::After {
            delay: self.0,
            token: 1,
        }
    }

    fn resume(&self, _: u64, response: &mut Response<'_>) {
        response.write(b"late");
    }
}

/// As [`Later`] (a promise that resolves late), counting the requests it was called for.
#[allow(dead_code)] // not every probe that routes `Later` counts
pub(crate) struct CountingLater(pub(crate) Duration, pub(crate) Arc<AtomicUsize>);

impl Handler for CountingLater {
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>) -> Reply {
        self.1.fetch_add(1, Ordering::SeqCst);
        Later(self.0).handle(request, response)
    }

    fn resume(&self, token: u64, response: &mut Response<'_>) {
        Later(self.0).resume(token, response);
    }
}
