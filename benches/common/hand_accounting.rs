//! The hand-written server of `mod.rs` as the mio server's [`Accounting`]: the PR's counters,
//! free-list pool, recycled `Rc` signals and explicit releases, doing per request the work
//! [`Guarded`](reqguard::http::Guarded) does (the wrapper checked and kept as the handler's
//! `this`, a pending-request count, a pooled context, a signal with an activity count, a request
//! object handed to the engine, each released at the end), with none of its guarantees. It is
//! what "the guards cost what hand-written counters cost" compares against in the server.

use std::rc::Rc;
use std::time::Instant;

use reqguard::engines::{Handle, Heap};
use reqguard::http::{Accounting, AccountingReport, StopStatus, Unaccounted};
use reqguard::{AbortSignal, Ledger, Outcome, Refusal, RefusalReason};

use super::{App, HandBundle, HandServer};

/// Contexts the hand-written pool keeps (the guarded server's default pool capacity).
const CAPACITY: usize = 1024;

/// The mio server's accounting, by hand.
pub struct HandAccounting {
    server: Rc<HandServer<()>>,
    /// The wrapper while a handler runs: its `this`.
    this: Option<Handle<App>>,
    heap: Heap,
    /// The stop's bookkeeping (deadline, drain time), as the baseline without accounting keeps it.
    stop: Unaccounted,
}

/// An admitted request: the bundle and the server to release it to (the PR's
/// `RequestContext` points at its server).
pub struct HandHeld {
    server: Rc<HandServer<()>>,
    bundle: HandBundle<(), ()>,
}

impl HandAccounting {
    pub fn new() -> Self {
        let heap = Heap::new();
        HandAccounting {
            server: Rc::new(HandServer::new(&heap, CAPACITY, true)),
            this: None,
            heap,
            stop: Unaccounted::new(),
        }
    }
}

impl Accounting for HandAccounting {
    type Held = HandHeld;
    // As `Guarded`: the baseline's per-request calls are not caught (the same work as before).
    const MAY_PANIC: bool = false;

    #[inline(always)]
    fn admit(&mut self) -> Result<HandHeld, Refusal> {
        let Some(js) = self.server.try_get_js_value() else {
            return Err(Refusal::WRAPPER_FINALIZED);
        };
        let Some(mut bundle) = self.server.prepare_with(|_ctx| ()) else {
            return Err(Refusal::new(RefusalReason::Stopped));
        };
        bundle.request.take(); // `request.toJS()`: the engine owns it now
        self.this = Some(js);
        Ok(HandHeld {
            server: Rc::clone(&self.server),
            bundle,
        })
    }

    fn signal(_: &HandHeld) -> Option<&AbortSignal> {
        None
    }

    #[inline(always)]
    fn end(held: HandHeld, _outcome: Outcome) {
        held.server.finish(held.bundle);
    }

    #[inline]
    fn handled(&mut self) {
        self.this = None;
    }

    fn stop(&mut self, deadline: Instant) {
        self.this = None;
        self.server.stop();
        self.heap.collect();
        self.stop.stop(deadline);
    }

    fn poll_stop(&mut self, now: Instant, in_flight: usize) -> StopStatus {
        self.stop.poll_stop(now, in_flight)
    }

    fn ledger(&self) -> Option<&Ledger> {
        None
    }

    fn report(&self) -> AccountingReport {
        AccountingReport {
            leaked: self.server.pending_requests.get(),
            ..self.stop.report()
        }
    }
}
