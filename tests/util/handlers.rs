//! Handlers more than one probe of `reqguard::http`'s embedding API routes.

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
