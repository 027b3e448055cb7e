//! The stop's steps on a hyper server, recorded (with the `server` feature) as the mio loops
//! record them: [`StepRecord`](crate::http::StepRecord)s, so a [`HyperGroup`](super::HyperGroup)'s
//! JSON gives each loop's `"steps"` in the mio shape.
//!
//! With [`Options::record_activity`](super::Options::with_record_activity) (the demo's `serve
//! --stack hyper` turns it on), each connection's record gives its state and age and the route
//! of the request in its handler (`GET /delay`), as on mio. What hyper cannot tell is not
//! invented: a connection is `in_handler` from its request's admission to the handler's answer
//! and `idle` otherwise (hyper does not expose reading or writing: a connection writing a long
//! body counts as idle, since the handler's answer). Without the records, a connection is
//! `in_handler` if it holds one of the requests in flight, ages are 0 and no routes are
//! listed.

use std::cell::Cell;
#[cfg(feature = "server")]
use std::cell::RefCell;
use std::time::Instant;

use super::connections::Connections;
use crate::admit::OutcomeCounts;
use crate::Ledger;

/// A step of the stop (the mio ladder's [`Step`](crate::http::Step)s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StepKind {
    Unready,
    Drain,
    Abort,
    Force,
    Close,
}

/// The steps one server reached, from its stop on.
#[derive(Default)]
pub(crate) struct Steps {
    stop_at: Cell<Option<Instant>>,
    /// Which steps were recorded, one bit per `StepKind`.
    seen: Cell<u8>,
    #[cfg(feature = "server")]
    records: RefCell<Vec<crate::http::StepRecord>>,
}

impl Steps {
    /// The stop began: step times count from here.
    pub(crate) fn start(&self) {
        self.stop_at.set(Some(Instant::now()));
    }

    pub(crate) fn has(&self, kind: StepKind) -> bool {
        self.seen.get() & (1 << kind as u8) != 0
    }

    /// Records `kind` with what is outstanding now.
    pub(crate) fn record(&self, kind: StepKind, ledger: &Ledger, connections: &Connections) {
        self.seen.set(self.seen.get() | (1 << kind as u8));
        #[cfg(feature = "server")]
        self.records
            .borrow_mut()
            .push(self.step_record(kind, ledger, connections));
        #[cfg(not(feature = "server"))]
        let _ = (ledger, connections);
    }

    /// The requests the last step ended: the outcomes counted since `before` (returned).
    pub(crate) fn set_ended(&self, before: OutcomeCounts, now: OutcomeCounts) -> OutcomeCounts {
        let ended = OutcomeCounts {
            completed: now.completed - before.completed,
            client_gone: now.client_gone - before.client_gone,
            deadline_aborted: now.deadline_aborted - before.deadline_aborted,
            force_closed: now.force_closed - before.force_closed,
            dropped: now.dropped - before.dropped,
        };
        #[cfg(feature = "server")]
        if let Some(last) = self.records.borrow_mut().last_mut() {
            last.ended = ended;
        }
        ended
    }

    /// The `503`s the stop's end answered connections with nothing out, in the last step's
    /// `answered` (the close step's in a group, as the mio loops count theirs there).
    pub(crate) fn add_answered(&self, answered: usize) {
        #[cfg(feature = "server")]
        if let Some(last) = self.records.borrow_mut().last_mut() {
            last.answered += answered;
        }
        #[cfg(not(feature = "server"))]
        let _ = answered;
    }

    #[cfg(feature = "server")]
    pub(crate) fn take(&self) -> Vec<crate::http::StepRecord> {
        self.records.take()
    }

    #[cfg(feature = "server")]
    fn step_record(
        &self,
        kind: StepKind,
        ledger: &Ledger,
        connections: &Connections,
    ) -> crate::http::StepRecord {
        use crate::http::{ConnState, Outstanding, Step, StepRecord};
        let step = match kind {
            StepKind::Unready => Step::Unready,
            StepKind::Drain => Step::Drain,
            StepKind::Abort => Step::Abort,
            StepKind::Force => Step::Force,
            StepKind::Close => Step::Close,
        };
        let in_flight = ledger.outstanding(crate::GuardKind::Ticket);
        let mut outstanding = Outstanding {
            in_flight,
            guards: ledger.report(),
            ..Outstanding::default()
        };
        let now = Instant::now();
        let mut tally = crate::http::HandlerTally::default();
        for (at, activity) in connections.activities(now).into_iter().enumerate() {
            let Some((route, age)) = activity else {
                // No record kept: one of the requests in flight, or idle; no age.
                let state = if at < in_flight {
                    ConnState::InHandler
                } else {
                    ConnState::Idle
                };
                outstanding.count(state, std::time::Duration::ZERO);
                continue;
            };
            match route {
                Some(route) => {
                    outstanding.count(ConnState::InHandler, age);
                    // Grouped by route, at most `Outstanding::MAX_ROUTES` of them, each cut
                    // to `MAX_ROUTE_LEN`: the path here is the client's.
                    tally.add(&route, age);
                }
                None => outstanding.count(ConnState::Idle, age),
            }
        }
        tally.finish(&mut outstanding);
        StepRecord {
            step,
            at: self
                .stop_at
                .get()
                .map_or_else(Default::default, |t| t.elapsed()),
            outstanding,
            answered: 0,
            ended: OutcomeCounts::default(),
        }
    }
}
