//! Accountings more than one probe of `reqguard::http`'s embedding API runs a server with.

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
