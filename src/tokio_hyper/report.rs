//! What a hyper server run did, for people (`Display`) and scripts ([`HyperReport::to_json`]).

use std::fmt;
use std::time::Duration;

use super::tally::HyperStats;
use crate::admit::OutcomeCounts;
use crate::ledger::LeakReport;
use crate::pool::PoolMetrics;
use crate::ticket::DrainReport;

/// What a [`HyperServer`](super::HyperServer) run did, from
/// [`serve`](super::HyperServer::serve).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HyperReport {
    /// Requests, refusals and connections.
    pub stats: HyperStats,
    /// How each admitted request ended, from the core's ledger: one outcome per request.
    pub outcomes: OutcomeCounts,
    /// Guards still outstanding when the run ended: 0 unless something leaked.
    pub leaked: usize,
    /// The leaked guards and where they were minted.
    pub leaks: LeakReport,
    /// From stop until the last ticket was released **and** the last connection closed.
    pub drain_time: Option<Duration>,
    /// What was still out when the drain deadline passed (or the force signal came): its
    /// signals were aborted, then the connections force-closed; `None` when the drain completed
    /// in time.
    pub deadline: Option<DrainReport>,
    /// Whether the force signal (a second SIGTERM), not the deadline, ended the drain early.
    pub forced: bool,
    /// Connections the server closed at the end of the drain.
    pub force_closed: u64,
    /// The context pool's figures.
    pub pool: PoolMetrics,
    /// From the start of `serve` to its end.
    pub uptime: Duration,
}

impl HyperReport {
    /// The drain time in milliseconds (0 when it never started).
    pub fn drain_ms(&self) -> f64 {
        self.drain_time.map_or(0.0, |t| t.as_secs_f64() * 1e3)
    }

    /// Signals the drain deadline aborted.
    pub fn aborted(&self) -> u64 {
        self.deadline
            .as_ref()
            .map_or(0, |d| d.aborted_signals as u64)
    }

    /// One JSON line with the mio server's keys (`served`, `refused`, `aborted`, `leaked`,
    /// `drain_ms`, ...) and the outcome counts.
    pub fn to_json(&self) -> String {
        let s = &self.stats;
        format!(
            "{{\"served\":{},\"refused\":{},\"aborted\":{},\"leaked\":{},\"drain_ms\":{:.3},\
             \"rejected\":{},\"panics\":{},\"refused_finalized\":{},\"refused_stopped\":{},\
             \"connections\":{},\"connections_refused\":{},\"accept_backoffs\":{},\
             \"force_closed\":{},\"drain_deadline_hit\":{},\"outcomes\":{},\"stack\":\"hyper\"}}",
            s.served,
            s.refused,
            self.aborted(),
            self.leaked,
            self.drain_ms(),
            s.rejected,
            s.panics,
            s.refused_finalized,
            s.refused_stopped,
            s.connections,
            s.connections_refused,
            s.accept_backoffs,
            self.force_closed,
            self.deadline.is_some() && !self.forced,
            self.outcomes.to_json(),
        )
    }
}

impl fmt::Display for HyperReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, o) = (&self.stats, &self.outcomes);
        writeln!(
            f,
            "  served     {:>8}   requests answered by the handler (or 500)",
            s.served
        )?;
        writeln!(
            f,
            "  refused    {:>8}   503 before anything was taken ({} wrapper finalized, {} stopping)",
            s.refused, s.refused_finalized, s.refused_stopped
        )?;
        writeln!(
            f,
            "  panics     {:>8}   handler panics answered 500",
            s.panics
        )?;
        writeln!(
            f,
            "  outcomes   {:>8}   completed {}, client gone {}, deadline aborted {}, force closed {}, dropped {}",
            o.total(),
            o.completed,
            o.client_gone,
            o.deadline_aborted,
            o.force_closed,
            o.dropped
        )?;
        writeln!(f, "  leaked     {:>8}   guards never released", self.leaked)?;
        match self.drain_time {
            Some(t) => writeln!(
                f,
                "  drain time {:>8.3} ms (tickets and connections)",
                t.as_secs_f64() * 1e3
            )?,
            None => writeln!(f, "  drain time        -")?,
        }
        write!(
            f,
            "  connections {:>7}   ({} over the limit, {} force-closed)",
            s.connections, s.connections_refused, self.force_closed
        )?;
        if let Some(deadline) = &self.deadline {
            write!(f, "\n  deadline: {deadline}")?;
        }
        if !self.leaks.is_empty() {
            write!(f, "\n{}", self.leaks)?;
        }
        Ok(())
    }
}
