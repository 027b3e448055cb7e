//! What a server run did, for people (`Display`) and for scripts ([`ServerReport::to_json`]).

use std::fmt;
use std::time::Duration;

use super::dispatch::Stats;
use super::ladder::StepRecord;
use crate::admit::OutcomeCounts;
use crate::ledger::LeakReport;
use crate::pool::PoolMetrics;
use crate::report_json::{self, common_counts, CommonCounts};

/// What a server run did, returned by [`Server::run`](crate::http::Server::run).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerReport {
    /// Requests, refusals, rejections, panics, aborts and connections.
    pub stats: Stats,
    /// Guards still outstanding when the loop ended: 0 unless something leaked.
    pub leaked: usize,
    /// The leaked guards and where they were minted.
    pub leaks: LeakReport,
    /// From stop to the last admitted request ending.
    pub drain_time: Option<Duration>,
    /// Whether the drain deadline passed with requests in flight (they were aborted); not
    /// when a loop group's force step (a second signal) ended them before it.
    pub drain_deadline_hit: bool,
    /// Connections with a request still out when the drain ended (a lone server's deadline, or
    /// a loop group's force step), each ended there (closed once the answers before it were
    /// written; at once when forced by a second signal), and those still open when the close
    /// linger ran out (5 s after the close). Not those the server answered or closed cleanly
    /// (the `503` and close of the deadline or the close step, an idle connection a lone
    /// server closes at its deadline, a `connection: close` answer). Also
    /// every connection open when a panic unwound out of a turn of the loop (an accounting
    /// whose [`MAY_PANIC`](crate::http::Accounting::MAY_PANIC) is `false` that panicked: the
    /// loop closes them all and serves on).
    pub force_closed: u64,
    /// The context pool's figures (guarded accounting only).
    pub pool: Option<PoolMetrics>,
    /// From bind to the end of the loop.
    pub uptime: Duration,
    /// The stop ladder's steps this loop reached, in order (a loop of a
    /// [`LoopGroup`](crate::http::LoopGroup) only; empty otherwise).
    pub steps: Vec<StepRecord>,
    /// How the admitted requests ended, per outcome (guarded accounting only; zero otherwise).
    pub outcomes: OutcomeCounts,
}

impl ServerReport {
    /// Requests served: [`Stats::served`](super::Stats::served), answers written (refused,
    /// rejected, aborted and panicked requests are the other fields of `stats`).
    pub fn served(&self) -> u64 {
        self.stats.served
    }

    /// The drain time in milliseconds: 0 when it never started, and when it never completed
    /// (`drain_time` is `None`: a guard leaked), as the exit JSON's `drain_ms` says it.
    pub fn drain_ms(&self) -> f64 {
        report_json::drain_ms(self.drain_time)
    }

    /// Admitted requests as the exit JSON counts them, each once: `served + undelivered +
    /// aborted` ([`Stats::served`](super::Stats::served), [`Stats::undelivered`](super::Stats::undelivered),
    /// [`Stats::aborted`](super::Stats::aborted); the JSON's `rejected_admitted` is always 0
    /// here: this server rejects bad input before admission, where the hyper adapter's handlers
    /// may refuse it after). It equals [`outcomes.total()`](OutcomeCounts::total) (one outcome
    /// per admitted request, guarded accounting), less the admissions that panicked after
    /// taking their bundle (an embedder's [`ScopeProvider`](crate::http::ScopeProvider) or
    /// `admit`): those are answered `500` and counted in `refused` and `panics`, their outcome
    /// *dropped*; and less the requests the embedder admitted itself through the server's core
    /// ([`Guarded::core`](crate::http::Guarded::core): a runtime's `server.fetch()`, a saved
    /// request) that ended before this report was made: `outcomes` is the core's ledger, which
    /// counts theirs, but the server answered none of them and counts them nowhere else (the
    /// hyper adapter, whose `aborted` is made from the outcomes, counts those that ended
    /// otherwise than *completed* in its `aborted`: QA embed33-2).
    ///
    /// # Examples
    ///
    /// ```
    /// # use reqguard::http::{ServerBuilder, Unaccounted, demo_routes};
    /// let running = ServerBuilder::new().spawn(Unaccounted::new, demo_routes).unwrap();
    /// let report = running.stop().unwrap();
    /// assert_eq!(report.admitted_counted(), report.outcomes.total());
    /// ```
    pub fn admitted_counted(&self) -> u64 {
        let s = &self.stats;
        s.served
            .saturating_add(s.undelivered)
            .saturating_add(s.aborted)
    }

    /// One JSON line: `served`, `refused`, `aborted`, `leaked`, `drain_ms`, the rest (`undelivered`
    /// among them: [`Stats::undelivered`](super::Stats::undelivered)), and last
    /// `"outcomes":{"completed":N,"client_gone":N,"deadline_aborted":N,"force_closed":N,"dropped":N}`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use reqguard::http::{ServerBuilder, Unaccounted, demo_routes};
    /// let running = ServerBuilder::new().spawn(Unaccounted::new, demo_routes).unwrap();
    /// let report = running.stop().unwrap();
    /// let json = report.to_json();
    /// assert!(json.starts_with("{\"served\":0,\"refused\":0,\"aborted\":0,\"leaked\":0,"));
    /// ```
    pub fn to_json(&self) -> String {
        format!(
            "{},\"buffered_high_water\":{},\"outcomes\":{}{}",
            self.common().open_json(),
            self.stats.buffered_high_water,
            self.outcomes.to_json(),
            self.steps_json()
        )
    }

    /// The counts both stacks print first (`aborted` is the loop's own count).
    fn common(&self) -> CommonCounts {
        common_counts!(self, aborted: self.stats.aborted, rejected_admitted: 0)
    }

    fn steps_json(&self) -> String {
        steps_json(&self.steps)
    }
}

/// `,"steps":[...]}` when a loop ran a ladder, else `}` (the hyper loops print it too).
pub(crate) fn steps_json(steps: &[StepRecord]) -> String {
    if steps.is_empty() {
        return "}".into();
    }
    let steps: Vec<String> = steps.iter().map(StepRecord::to_json).collect();
    format!(",\"steps\":[{}]}}", steps.join(","))
}

impl fmt::Display for ServerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, common) = (&self.stats, self.common());
        writeln!(
            f,
            "  served     {:>8}   requests answered by a handler",
            s.served
        )?;
        common.write_refused(f)?;
        writeln!(
            f,
            "  rejected   {:>8}   bad input (400/408/413/431)",
            s.rejected
        )?;
        writeln!(
            f,
            "  panics     {:>8}   panics caught: handlers and admissions (answered 500), accounting calls",
            s.panics
        )?;
        writeln!(
            f,
            "  aborted    {:>8}   in-flight requests whose signal was aborted",
            s.aborted
        )?;
        common.write_undelivered_and_leaked(f)?;
        writeln!(f, "  outcomes   {}", self.outcomes)?;
        match self.drain_time {
            Some(t) => writeln!(f, "  drain time {:>8.3} ms", t.as_secs_f64() * 1e3)?,
            None => writeln!(f, "  drain time        -")?,
        }
        common.write_connections(f)?;
        if !self.leaks.is_empty() {
            write!(f, "\n{}", self.leaks)?;
        }
        Ok(())
    }
}
