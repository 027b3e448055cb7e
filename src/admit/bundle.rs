//! The admitted bundle: everything one request holds, taken all or nothing.

use std::fmt;

use super::request::RequestObject;
use crate::pool::{Recycle, RequestContext};
use crate::signal::{AbortSignal, ActivityRef};

/// Everything an admitted request holds: its request object, its signal's activity ref, and its
/// pooled context (which holds its ticket).
///
/// Made only by [`Live::admit`](crate::Live::admit), which takes all of it or none. Fields are
/// public so a handler can move the request to the engine and keep the rest; each is a guard of
/// its own. They drop in reverse order of acquisition: request, activity ref, context, ticket.
#[must_use = "dropping the bundle ends the request at once"]
pub struct Admitted<C: Recycle, R> {
    /// The request object for the engine.
    pub request: RequestObject<R>,
    /// Keeps the request's abort signal alive while the request is out.
    pub activity: ActivityRef,
    /// The pooled context, holding the request's ticket.
    pub context: RequestContext<C>,
}

impl<C: Recycle, R> Admitted<C, R> {
    /// The request's abort signal.
    pub fn signal(&self) -> &AbortSignal {
        self.activity.signal()
    }
}

impl<C: Recycle, R: fmt::Debug> fmt::Debug for Admitted<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admitted")
            .field("request", &self.request)
            .field("activity", &self.activity)
            .field("context", &self.context)
            .finish()
    }
}
