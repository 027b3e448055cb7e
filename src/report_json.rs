//! The exit JSON's keys both HTTP stacks print first, written in one place so that a script
//! reads either stack's line alike (`served`, `refused`, `aborted`, `leaked`, `drain_ms`, ...).

use std::fmt::{self, Write};
use std::time::Duration;

/// The counts every stack's exit JSON starts with, in their order.
pub(crate) struct CommonCounts {
    pub(crate) served: u64,
    pub(crate) refused: u64,
    pub(crate) aborted: u64,
    pub(crate) leaked: usize,
    pub(crate) drain_ms: f64,
    pub(crate) rejected: u64,
    pub(crate) panics: u64,
    pub(crate) refused_finalized: u64,
    pub(crate) refused_stopped: u64,
    pub(crate) connections: u64,
    pub(crate) connections_refused: u64,
    pub(crate) connections_evicted: u64,
    pub(crate) accept_backoffs: u64,
    pub(crate) force_closed: u64,
    pub(crate) drain_deadline_hit: bool,
    /// Answers a close dropped undelivered (`Stats::undelivered`, `HyperStats::undelivered`).
    pub(crate) undelivered: u64,
    /// Of `rejected`: admitted requests whose handler refused their input (hyper's
    /// `HyperStats::rejected_admitted`; 0 on mio, which rejects bad input before admission).
    pub(crate) rejected_admitted: u64,
}

/// The [`CommonCounts`] of a stack's report (`http::ServerReport`, `tokio_hyper::HyperReport`),
/// with `aborted` the stack's own (a count on mio, a sum of outcomes on hyper). Both stacks'
/// stats are public types with public fields that keep these counts under the same names, so
/// a macro lists them once where a function would need a trait of eleven getters.
macro_rules! common_counts {
    ($report:expr, aborted: $aborted:expr, rejected_admitted: $rejected_admitted:expr) => {{
        let report = $report;
        let s = &report.stats;
        $crate::report_json::CommonCounts {
            served: s.served,
            refused: s.refused,
            aborted: $aborted,
            leaked: report.leaked,
            drain_ms: report.drain_ms(),
            rejected: s.rejected,
            panics: s.panics,
            refused_finalized: s.refused_finalized,
            refused_stopped: s.refused_stopped,
            connections: s.connections,
            connections_refused: s.connections_refused,
            connections_evicted: s.connections_evicted,
            accept_backoffs: s.accept_backoffs,
            force_closed: report.force_closed,
            drain_deadline_hit: report.drain_deadline_hit,
            undelivered: s.undelivered,
            rejected_admitted: $rejected_admitted,
        }
    }};
}
pub(crate) use common_counts;

/// A report's drain time in milliseconds: 0 when it never started or never completed (`None`:
/// a guard leaked), as the exit JSON's `drain_ms` says it on both stacks.
pub(crate) fn drain_ms(drain_time: Option<Duration>) -> f64 {
    drain_time.map_or(0.0, |t| t.as_secs_f64() * 1e3)
}

impl CommonCounts {
    /// `{"served":N,...,"drain_deadline_hit":B,"undelivered":N,"rejected_admitted":N` with no
    /// closing brace: the stack appends its
    /// own keys, the outcomes and the steps, then closes it.
    pub(crate) fn open_json(&self) -> String {
        let mut json = String::with_capacity(400);
        let _ = write!(
            json,
            "{{\"served\":{},\"refused\":{},\"aborted\":{},\"leaked\":{},\"drain_ms\":{:.3},\
             \"rejected\":{},\"panics\":{},\"refused_finalized\":{},\"refused_stopped\":{},\
             \"connections\":{},\"connections_refused\":{},\"connections_evicted\":{},\
             \"accept_backoffs\":{},\"force_closed\":{},\"drain_deadline_hit\":{},\"undelivered\":{},\
             \"rejected_admitted\":{}",
            self.served,
            self.refused,
            self.aborted,
            self.leaked,
            self.drain_ms,
            self.rejected,
            self.panics,
            self.refused_finalized,
            self.refused_stopped,
            self.connections,
            self.connections_refused,
            self.connections_evicted,
            self.accept_backoffs,
            self.force_closed,
            self.drain_deadline_hit,
            self.undelivered,
            self.rejected_admitted,
        );
        json
    }

    /// Both stacks' `Display` line for `refused`, with its two parts.
    pub(crate) fn write_refused(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  refused    {:>8}   refused by admission, 503 ({} wrapper finalized, {} stopping; 500 if it panicked)",
            self.refused, self.refused_finalized, self.refused_stopped
        )
    }

    /// Both stacks' `Display` lines for `undelivered` and `leaked`, in that order.
    pub(crate) fn write_undelivered_and_leaked(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  undelivered {:>7}   answers a close dropped unread (not in served)",
            self.undelivered
        )?;
        writeln!(f, "  leaked     {:>8}   guards never released", self.leaked)
    }

    /// Both stacks' `Display` line for the connections, with no newline after it.
    pub(crate) fn write_connections(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "  connections {:>7}   ({} over the limit, {} evicted, {} force-closed)",
            self.connections, self.connections_refused, self.connections_evicted, self.force_closed
        )
    }
}
