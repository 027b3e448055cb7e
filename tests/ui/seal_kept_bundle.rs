// Rule (G5, G8; round 33, invariant 3 of the kept bundle, src/admit/held.rs): only the crate's
// `Guarded`, with the server's own context `()`, keeps a pipeline's bundle and renews it for the
// next request of the same pass on one flag, which holds because no code a pass runs can reach
// that `Guarded`'s core (to stop it, or start a trace on its ledger) while a bundle is kept.
// An embedder cannot get around it: a context of its own cannot claim to skip its recycling
// (`Recycle::SKIPPED`'s type cannot be named), and an accounting of its own that forwards to a
// `Guarded` it shares with its handlers (an `Rc<RefCell<Guarded>>`, which a handler could stop
// mid-pass) cannot override the sealed calls that keep and renew (`keeps`, `renew_here`,
// `keep_here`, `signal_lent`): their last parameter's type cannot be named either, so such an
// accounting keeps nothing and every request is admitted on its own.
// Right way: `Accounting::admit` and `Accounting::end` (forwarded as they are); a stop through
// `Accounting::stop`, which ends a kept bundle first.
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use reqguard::engines::Embedded;
use reqguard::http::{Accounting, AccountingReport, Guarded, GuardedHeld, NoScope, StopStatus};
use reqguard::{AbortSignal, Ledger, Recycle, Refusal};

#[derive(Default)]
struct Ctx;

impl Recycle for Ctx {
    const SKIPPED: bool = true;
    fn recycle(&mut self) {}
}

struct Shared(Rc<RefCell<Guarded<Embedded<&'static str>, NoScope>>>);

impl Accounting for Shared {
    type Held = GuardedHeld;
    fn admit(&mut self) -> Result<GuardedHeld, Refusal> {
        self.0.borrow_mut().admit()
    }
    fn signal(held: &GuardedHeld) -> Option<&AbortSignal> {
        Some(held.signal())
    }
    fn keeps(_: ()) -> bool {
        true
    }
    fn renew_here(&mut self, here: ()) -> Option<GuardedHeld> {
        let _ = here;
        None
    }
    fn stop(&mut self, deadline: Instant) {
        self.0.borrow_mut().stop(deadline);
    }
    fn poll_stop(&mut self, now: Instant, in_flight: usize) -> StopStatus {
        self.0.borrow_mut().poll_stop(now, in_flight)
    }
    fn ledger(&self) -> Option<&Ledger> {
        None
    }
    fn report(&self) -> AccountingReport {
        self.0.borrow().report()
    }
}

fn main() {}
