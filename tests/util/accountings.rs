//! Accountings more than one probe of `reqguard::http`'s embedding API runs a server with.
#![allow(dead_code, unused_imports)] // each probe uses some of them

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use reqguard::http::{Accounting, AccountingReport, StopStatus, Unaccounted};
use reqguard::{AbortSignal, Ledger, Refusal};

/// Writes the [`Accounting`] calls that a probe's accounting passes on unchanged to the one it
/// wraps (`self.$inner`), so that its `impl` shows only the calls it changes:
/// `passes_on!(inner: stop, poll_stop, ledger, report);` inside the `impl`. Only calls with
/// `self` (`signal` and `end` have none: each probe writes its own).
macro_rules! passes_on {
    ($inner:tt: $($call:ident),+ $(,)?) => {
        $(passes_on!(@ $inner $call);)+
    };
    (@ $inner:tt admit) => {
        fn admit(&mut self) -> Result<Self::Held, ::reqguard::Refusal> {
            self.$inner.admit()
        }
    };
    (@ $inner:tt this) => {
        fn this(&self) -> Option<&dyn ::std::any::Any> {
            self.$inner.this()
        }
    };
    (@ $inner:tt handled) => {
        fn handled(&mut self) {
            self.$inner.handled();
        }
    };
    (@ $inner:tt read_ended) => {
        fn read_ended(&mut self) {
            self.$inner.read_ended();
        }
    };
    (@ $inner:tt stop) => {
        fn stop(&mut self, deadline: ::std::time::Instant) {
            self.$inner.stop(deadline);
        }
    };
    (@ $inner:tt poll_stop) => {
        fn poll_stop(
            &mut self,
            now: ::std::time::Instant,
            in_flight: usize,
        ) -> ::reqguard::http::StopStatus {
            self.$inner.poll_stop(now, in_flight)
        }
    };
    (@ $inner:tt ledger) => {
        fn ledger(&self) -> Option<&::reqguard::Ledger> {
            self.$inner.ledger()
        }
    };
    (@ $inner:tt report) => {
        fn report(&self) -> ::reqguard::http::AccountingReport {
            self.$inner.report()
        }
    };
}
pub(crate) use passes_on;

/// An accounting that tells the server its per-request calls cannot panic (`MAY_PANIC`
/// false), and whose `handled` panics all the same, on every request: its loop died of it
/// until probe_embed::v10's round; it now survives it, closing the connections open then.
pub(crate) struct DiesOnHandled(pub(crate) Unaccounted);

impl Accounting for DiesOnHandled {
    type Held = ();
    const MAY_PANIC: bool = false;

    fn signal(_: &()) -> Option<&AbortSignal> {
        None
    }

    fn handled(&mut self) {
        panic!("an accounting's handled panics");
    }

    fn ledger(&self) -> Option<&Ledger> {
        None
    }

    passes_on!(0: admit, stop, poll_stop, report);
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

    fn poll_stop(&mut self, _now: Instant, _in_flight: usize) -> StopStatus {
        self.status
    }

    fn ledger(&self) -> Option<&Ledger> {
        None
    }

    passes_on!(plain: stop, report);
}
