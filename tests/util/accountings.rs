//! Accountings more than one probe of `reqguard::http`'s embedding API runs a server with.
#![allow(dead_code)] // each probe uses some of them

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use reqguard::http::{Accounting, AccountingReport, StopStatus, Unaccounted};
use reqguard::{AbortSignal, Ledger, Refusal};

/// An accounting that tells the server its per-request calls cannot panic (`MAY_PANIC`
/// false), and whose `handled` panics all the same, on every request: its loop died of it
/// until probe_embed_v10's round; it now survives it, closing the connections open then.
pub(crate) struct DiesOnHandled(pub(crate) Unaccounted);

impl Accounting for DiesOnHandled {
    type Held = ();
    const MAY_PANIC: bool = false;

    fn admit(&mut self) -> Result<(), Refusal> {
        self.0.admit()
    }

    fn signal(_: &()) -> Option<&AbortSignal> {
        None
    }

    fn handled(&mut self) {
        panic!("an accounting's handled panics");
    }

    fn stop(&mut self, deadline: Instant) {
        self.0.stop(deadline);
    }

    fn poll_stop(&mut self, now: Instant, in_flight: usize) -> StopStatus {
        self.0.poll_stop(now, in_flight)
    }

    fn ledger(&self) -> Option<&Ledger> {
        None
    }

    fn report(&self) -> AccountingReport {
        self.0.report()
    }
}

/// An accounting of the embedder's whose `poll_stop` says `status` as soon as it is asked,
/// however many requests are out (its drain complete, or its deadline passed long before the
/// deadline the server gave its `stop`), and which sets `admitted` at each admission: else
/// [`Unaccounted`].
pub(crate) struct SaysAtStop {
    plain: Unaccounted,
    status: StopStatus,
    admitted: Arc<AtomicBool>,
}

impl SaysAtStop {
    pub(crate) fn new(status: StopStatus, admitted: Arc<AtomicBool>) -> Self {
        SaysAtStop {
            plain: Unaccounted::new(),
            status,
            admitted,
        }
    }
}

impl Accounting for SaysAtStop {
    type Held = ();

    fn admit(&mut self) -> Result<(), Refusal> {
        self.admitted.store(true, Ordering::SeqCst);
        self.plain.admit()
    }

    fn signal(_: &()) -> Option<&AbortSignal> {
        None
    }

    fn stop(&mut self, deadline: Instant) {
        self.plain.stop(deadline);
    }

    fn poll_stop(&mut self, _now: Instant, _in_flight: usize) -> StopStatus {
        self.status
    }

    fn ledger(&self) -> Option<&Ledger> {
        None
    }

    fn report(&self) -> AccountingReport {
        self.plain.report()
    }
}
