// Rule (G5, G6; round 26): only the crate's server ends a request through an accounting's
// `end_here`, the release that gives a `Guarded` bundle's pooled slot back to the accounting's
// own pool with no check that it is the slot's (the server calls it only for a request the same
// accounting admitted within the same borrow of its dispatcher). Its last parameter is of a type
// no one outside the crate can name nor make, so an embedder can neither call it (a bundle of
// one server ended through another's) nor override it.
// Right way: end a request with `Accounting::end` (a `Guarded` bundle goes back to its own pool,
// whatever accounting it is ended through), or let it drop (Outcome::Dropped).
use std::time::Instant;

use reqguard::http::{Accounting, AccountingReport, Guarded, StopStatus};
use reqguard::{AbortSignal, Config, Ledger, Outcome, Refusal};

struct Mine;

impl Accounting for Mine {
    type Held = ();
    fn admit(&mut self) -> Result<(), Refusal> {
        Ok(())
    }
    fn signal(_: &()) -> Option<&AbortSignal> {
        None
    }
    fn end_here(&self, held: (), outcome: Outcome) {
        let _ = (held, outcome);
    }
    fn stop(&mut self, _: Instant) {}
    fn poll_stop(&mut self, _: Instant, _: usize) -> StopStatus {
        StopStatus::Complete
    }
    fn ledger(&self) -> Option<&Ledger> {
        None
    }
    fn report(&self) -> AccountingReport {
        AccountingReport::default()
    }
}

fn main() {
    let mut one = Guarded::embedded("one", Config::default());
    let mut other = Guarded::embedded("other", Config::default());
    let theirs = other.admit().unwrap();
    one.end_here(theirs, Outcome::Completed); // round 25's call
    let theirs = other.admit().unwrap();
    // Nor can the last argument be named, nor made.
    one.end_here(theirs, Outcome::Completed, reqguard::http::accounting::seal::AdmittedHere);
}
