//! What a hyper server run did, for people (`Display`) and scripts ([`HyperReport::to_json`]).

use std::fmt;
use std::time::Duration;

use super::tally::HyperStats;
use crate::admit::OutcomeCounts;
use crate::ledger::LeakReport;
use crate::pool::PoolMetrics;
use crate::report_json::{self, common_counts, CommonCounts};
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
    /// What was still out when the drain deadline passed (its signals were aborted, then the
    /// connections force-closed), or after the force signal's force-close (its
    /// `aborted_signals` counts the requests that force-close ended); `None` when the drain
    /// completed in time. Its `panicked_listeners` and `panicked_hooks` are the only place the
    /// report shows abort listeners and drain hooks that panicked (`stats.panics` does not
    /// count them).
    pub deadline: Option<DrainReport>,
    /// Whether the force signal (a second SIGTERM), not the deadline, ended the drain early.
    /// A force that comes after the deadline's aborts (in the [`force_after`] wait) cuts that
    /// wait short, the force-close happening at once, but leaves this `false`: the deadline
    /// ended the drain (`drain_deadline_hit` if requests were out; steps `drain`, `abort`,
    /// `force`), as a mio loop group records the same stop (its reports have no `forced`: a
    /// force there is the `force` step coming before any `abort` step).
    ///
    /// [`force_after`]: super::Options::with_force_after
    pub forced: bool,
    /// Whether the drain deadline passed with requests out (`deadline` is its report and
    /// `forced` is false): the exit JSON's `drain_deadline_hit`. A deadline that found only
    /// connections still open (an idle one hyper had not closed yet), no request out, has a
    /// report in `deadline` and is not hit, as on the mio server. A group's totals say whether
    /// it was on any loop, as the mio `GroupReport`'s do (a loop whose deadline passed before
    /// another loop was forced).
    pub drain_deadline_hit: bool,
    /// Connections the server closed at the end of the drain.
    pub force_closed: u64,
    /// The context pool's figures.
    pub pool: PoolMetrics,
    /// From the start of `serve` to its end.
    pub uptime: Duration,
    /// The stop's steps this server reached, in order, as the mio loops record them (feature
    /// `server`; see docs/hyper.md for what hyper cannot tell).
    #[cfg(feature = "server")]
    pub steps: Vec<crate::http::StepRecord>,
}

impl HyperReport {
    /// The drain time in milliseconds: 0 when it never started, and when it never completed
    /// (`drain_time` is `None`: a guard leaked), as the exit JSON's `drain_ms` says it.
    pub fn drain_ms(&self) -> f64 {
        report_json::drain_ms(self.drain_time)
    }

    /// Admitted requests that ended without their answer: the client went away, the drain
    /// deadline aborted them, or the stop force-closed their connection (the outcomes *client
    /// gone*, *deadline aborted* and *force closed*), as the mio server's
    /// `Stats::aborted` counts them. What the deadline alone
    /// aborted is in [`deadline`](HyperReport::deadline). A request the deadline aborted
    /// whose handler still answered (before the force-close) got its answer: it is counted
    /// in `served` (or `rejected`) and [`HyperStats::answered_after_abort`], not here; so is
    /// an answer counted at its head whose request then ended so (its body cut short, or
    /// aborted by the deadline while it was written), in
    /// [`HyperStats::aborted_after_head`]. Each admitted request is counted once: also one
    /// that got no answer though it did not end aborted (its bundle, given away, was written
    /// as another request's answer, or its handler dropped it, before its client went away),
    /// in [`HyperStats::unanswered_not_aborted`].
    ///
    /// Made from the outcomes, which are the core's ledger's: a request the embedder admitted
    /// itself through [`HyperServer::core`](super::HyperServer::core) (a runtime's
    /// `server.fetch()`, a saved request) and ended otherwise than *completed* before the
    /// report is counted here too, though no connection of the server had it; one it ended
    /// *completed* is counted nowhere but in `outcomes` (the mio server counts neither in its
    /// `Stats::aborted`: QA embed33-2).
    ///
    /// [`HyperStats::unanswered_not_aborted`]: super::HyperStats::unanswered_not_aborted
    /// [`HyperStats::answered_after_abort`]: super::HyperStats::answered_after_abort
    /// [`HyperStats::aborted_after_head`]: super::HyperStats::aborted_after_head
    pub fn aborted(&self) -> u64 {
        let o = &self.outcomes;
        o.client_gone
            .saturating_add(o.deadline_aborted)
            .saturating_add(o.force_closed)
            .saturating_add(self.stats.unanswered_not_aborted)
            .saturating_sub(self.stats.answered_after_abort)
            .saturating_sub(self.stats.aborted_after_head)
    }

    /// Admitted requests as the exit JSON counts them, each once: `served + undelivered +
    /// rejected_admitted + aborted` ([`HyperReport::aborted`]). It equals
    /// [`outcomes.total()`](OutcomeCounts::total) (one outcome per admitted request), less
    /// the admissions that panicked after taking their bundle (an embedder's
    /// [`EnterScope`](super::EnterScope)): those are answered `500` and counted in `refused`
    /// and `panics`, their outcome *dropped*; and less the requests the embedder admitted
    /// itself through [`HyperServer::core`](super::HyperServer::core) that ended *completed*
    /// before the report (see [`aborted`](HyperReport::aborted) for those that ended
    /// otherwise: QA embed33-2). The mio server's
    /// [`ServerReport::admitted_counted`](crate::http::ServerReport::admitted_counted) is the
    /// same sum (its `rejected_admitted` is 0).
    ///
    /// # Examples
    ///
    /// ```
    /// # use reqguard::tokio_hyper::HyperReport;
    /// fn adds_up(report: &HyperReport) -> bool {
    ///     report.admitted_counted() == report.outcomes.total()
    /// }
    /// ```
    pub fn admitted_counted(&self) -> u64 {
        let s = &self.stats;
        s.served
            .saturating_add(s.undelivered)
            .saturating_add(s.rejected_admitted)
            .saturating_add(self.aborted())
    }

    /// One JSON line with the mio server's keys (`served`, `refused`, `aborted`, `leaked`,
    /// `drain_ms`, ...) and the outcome counts.
    pub fn to_json(&self) -> String {
        let s = &self.stats;
        #[allow(unused_mut)] // without `server`: no steps to add
        let mut json = format!(
            "{},\"failed\":{},\"answered_after_abort\":{},\"aborted_after_head\":{},\"unanswered_not_aborted\":{},\"outcomes\":{},\"stack\":\"hyper\"}}",
            self.common().open_json(),
            s.failed,
            s.answered_after_abort,
            s.aborted_after_head,
            s.unanswered_not_aborted,
            self.outcomes.to_json(),
        );
        #[cfg(feature = "server")]
        {
            json.pop(); // the closing brace
            json.push_str(&crate::http::steps_json(&self.steps));
        }
        json
    }

    /// The counts both stacks print first (`aborted` as [`HyperReport::aborted`] sums it).
    fn common(&self) -> CommonCounts {
        common_counts!(
            self,
            aborted: self.aborted(),
            rejected_admitted: self.stats.rejected_admitted
        )
    }
}

impl fmt::Display for HyperReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, o, common) = (&self.stats, &self.outcomes, self.common());
        writeln!(
            f,
            "  served     {:>8}   requests answered by the handler (or 500)",
            s.served
        )?;
        common.write_refused(f)?;
        writeln!(
            f,
            "  panics     {:>8}   panics caught: handlers and admissions (answered 500), handler drops",
            s.panics
        )?;
        writeln!(
            f,
            "  failed     {:>8}   handlers that returned an error (answered 500)",
            s.failed
        )?;
        writeln!(
            f,
            "  late       {:>8}   answers made after the drain deadline aborted their signal (in served)",
            s.answered_after_abort
        )?;
        writeln!(
            f,
            "  cut        {:>8}   answers aborted after their head (in served; client gone, deadline, force)",
            s.aborted_after_head
        )?;
        writeln!(
            f,
            "  unanswered {:>8}   admitted, never answered, not aborted (in aborted: bundle given away or dropped)",
            s.unanswered_not_aborted
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
        common.write_undelivered_and_leaked(f)?;
        match self.drain_time {
            Some(t) => writeln!(
                f,
                "  drain time {:>8.3} ms (tickets and connections)",
                t.as_secs_f64() * 1e3
            )?,
            None => writeln!(f, "  drain time        -")?,
        }
        common.write_connections(f)?;
        if let Some(deadline) = &self.deadline {
            write!(f, "\n  deadline: {deadline}")?;
        }
        if !self.leaks.is_empty() {
            // Under its own heading: after the deadline's list (often the same guards) it
            // would read as more of them.
            write!(f, "\n  still out at the end:\n{}", self.leaks)?;
        }
        Ok(())
    }
}

/// What a [`HyperGroup`](super::HyperGroup) did: one [`HyperReport`] per loop and `totals`,
/// their sum, in the mio [`GroupReport`](crate::http::GroupReport)'s shape.
///
/// Counts add up, `drain_time` and `uptime` are the longest of the loops (no `drain_time` if
/// a loop's drain never completed: a guard leaked there), `forced` and
/// `drain_deadline_hit` are true if they were on any loop, and `totals.deadline` sums what
/// every loop's deadline found.
#[cfg(feature = "server")]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HyperGroupReport {
    /// The sum over every loop.
    pub totals: HyperReport,
    /// Each loop's own report, by loop index.
    pub loops: Vec<HyperReport>,
}

#[cfg(feature = "server")]
impl HyperGroupReport {
    pub(crate) fn merge(loops: Vec<HyperReport>) -> Self {
        HyperGroupReport {
            totals: crate::http::sum_loops(&loops),
            loops,
        }
    }

    /// Whether nothing leaked on any loop (what `serve`'s exit status says).
    pub fn is_clean(&self) -> bool {
        self.loops.iter().all(|r| r.leaked == 0)
    }

    /// One JSON line: the totals' fields (as [`HyperReport::to_json`]), then `"loops":[...]`
    /// with one object per loop, as the mio group prints it.
    pub fn to_json(&self) -> String {
        crate::http::json_with_loops(
            self.totals.to_json(),
            self.loops.iter().map(HyperReport::to_json),
        )
    }
}

/// A hyper loop's report in a group: summed and printed as the mio loops' are.
#[cfg(feature = "server")]
impl crate::http::LoopReport for HyperReport {
    fn zero() -> Self {
        HyperReport {
            stats: HyperStats::default(),
            outcomes: OutcomeCounts::default(),
            leaked: 0,
            leaks: LeakReport::default(),
            drain_time: None,
            deadline: None,
            forced: false,
            drain_deadline_hit: false,
            force_closed: 0,
            pool: PoolMetrics::default(),
            uptime: Duration::ZERO,
            steps: Vec::new(),
        }
    }

    fn add(&mut self, report: &Self) {
        let HyperReport {
            stats,
            outcomes,
            leaked,
            leaks,
            drain_time,
            deadline,
            forced,
            drain_deadline_hit,
            force_closed,
            pool,
            uptime,
            steps: _, // per loop only
        } = report;
        add_stats(&mut self.stats, stats);
        self.outcomes += *outcomes;
        self.leaked += leaked;
        self.leaks = crate::http::merge_leaks(&self.leaks, leaks);
        self.drain_time = self.drain_time.max(*drain_time);
        self.deadline = match (self.deadline.take(), deadline) {
            (Some(a), Some(b)) => Some(add_deadline(a, b)),
            (a, b) => a.or_else(|| b.clone()),
        };
        self.forced |= forced;
        // Not `deadline.is_some() && !forced` of the sums: a loop forced after another's
        // deadline passed made `forced` true and hid that deadline.
        self.drain_deadline_hit |= drain_deadline_hit;
        self.force_closed += force_closed;
        self.pool = crate::http::add_pool(self.pool, pool);
        self.uptime = self.uptime.max(*uptime);
    }

    fn drain_time(&self) -> &Option<Duration> {
        &self.drain_time
    }

    fn drain_time_mut(&mut self) -> &mut Option<Duration> {
        &mut self.drain_time
    }
}

#[cfg(feature = "server")]
fn add_stats(total: &mut HyperStats, s: &HyperStats) {
    let HyperStats {
        served,
        undelivered,
        refused,
        refused_finalized,
        refused_stopped,
        panics,
        answered_after_abort,
        aborted_after_head,
        unanswered_not_aborted,
        failed,
        rejected,
        rejected_admitted,
        connections,
        connections_refused,
        connections_evicted,
        accept_backoffs,
    } = *s;
    total.served += served;
    total.undelivered += undelivered;
    total.refused += refused;
    total.refused_finalized += refused_finalized;
    total.refused_stopped += refused_stopped;
    total.panics += panics;
    total.answered_after_abort += answered_after_abort;
    total.aborted_after_head += aborted_after_head;
    total.unanswered_not_aborted += unanswered_not_aborted;
    total.failed += failed;
    total.rejected += rejected;
    total.rejected_admitted += rejected_admitted;
    total.connections += connections;
    total.connections_refused += connections_refused;
    total.connections_evicted += connections_evicted;
    total.accept_backoffs += accept_backoffs;
}

#[cfg(feature = "server")]
fn add_deadline(a: DrainReport, b: &DrainReport) -> DrainReport {
    let DrainReport {
        complete,
        drain_time,
        aborted_signals,
        outcomes,
        panicked_listeners,
        panicked_hooks,
        outstanding,
    } = b;
    let mut sum = a;
    sum.complete &= complete;
    sum.drain_time = sum.drain_time.max(*drain_time);
    sum.aborted_signals += aborted_signals;
    sum.outcomes += *outcomes;
    sum.panicked_listeners += panicked_listeners;
    sum.panicked_hooks += panicked_hooks;
    sum.outstanding = crate::http::merge_leaks(&sum.outstanding, outstanding);
    sum
}

#[cfg(feature = "server")]
impl fmt::Display for HyperGroupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::http::write_group(f, &self.totals, &self.loops)
    }
}
